"""The CPU thread policy of the ``numba`` backend, and BLAS held at one thread around its loops.

The ``numba`` backend splits the batch into one range of rows per thread and runs the whole
time loop of each range on its thread (compiled loops that release the GIL, on a small pool of
Python threads); every matrix product inside a range is a *single-threaded* BLAS call. Letting
BLAS start its own threads beside numlstm's would put two busy threads on every core
(80-100x slowdowns were measured, docs/performance.md), so while numlstm's loops run, the BLAS
libraries loaded in the process are held at one thread (:func:`enter_blas_single_thread` /
:func:`exit_blas_single_thread`, or :func:`blas_single_thread`) and restored afterwards.

:func:`set_num_threads` also limits the process's BLAS libraries to ``n`` threads (through
``threadpoolctl``), so the ``numpy`` reference backend and the user's own NumPy/SciPy code
honour the same setting, and Numba's own thread count (for ``prange`` code, in the calling
thread) once Numba's thread pool is running. numlstm never starts that pool itself: its kernels
do not use it, and starting it (GNU OpenMP) would make a later ``fork()`` unsafe.

This module takes its arguments as already checked; users reach it through
:mod:`numlstm.threads`, which validates them (``numlstm.set_num_threads``, ``num_threads``).
"""

from __future__ import annotations

import contextlib
import os
import threading


__all__ = ["MAX_THREADS", "max_threads", "get_num_threads", "set_num_threads",
           "requested_threads", "restore_num_threads", "blas_single_thread",
           "enter_blas_single_thread", "exit_blas_single_thread", "saved_blas_threads",
           "running_numba"]

_requested: int | None = None     # None: every thread Numba was started with

#: The most threads :func:`set_num_threads` accepts: BLAS libraries take a C ``int`` and
#: cap it far lower themselves.
MAX_THREADS = 1 << 16


def max_threads() -> int:
    """The most threads numlstm uses: the cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """The number of threads numlstm's CPU loops use (default: every usable core)."""
    return max_threads() if _requested is None else min(_requested, max_threads())


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (an int in [1, MAX_THREADS], checked by the caller) in numlstm's CPU
    loops and in BLAS; more than the usable cores are capped to that number (BLAS gets ``n``)."""
    global _requested
    _requested = n
    _blas_controller().limit(limits=n, user_api="blas")
    numba_threads = running_numba()
    if numba_threads is not None:
        numba_threads.set_num_threads(min(n, numba_threads.config.NUMBA_NUM_THREADS))


def requested_threads() -> int | None:
    """What :func:`set_num_threads` last asked for (None: every usable core)."""
    return _requested


def running_numba():
    """The ``numba`` module when Numba's parallel thread pool has been started in this
    process, else None (so that numlstm never starts it)."""
    import sys
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is None or not getattr(parallel, "_is_initialized", False):
        return None
    return sys.modules["numba"]


def saved_blas_threads() -> list:
    """``[(library controller, its thread count)]`` for every BLAS in the process, to hand
    back to :func:`restore_num_threads`."""
    return [(lib, lib.get_num_threads()) for lib in _blas_controller().lib_controllers
            if lib.user_api == "blas"]


def restore_num_threads(requested: int | None, numba_threads: int | None,
                        blas_counts: list) -> None:
    """Put back settings read earlier with :func:`requested_threads`, Numba's
    ``get_num_threads()`` (None when its pool was not running) and :func:`saved_blas_threads`."""
    global _requested
    _requested = requested
    numba_module = running_numba()
    if numba_threads is not None and numba_module is not None:
        numba_module.set_num_threads(numba_threads)
    for lib, count in blas_counts:
        lib.set_num_threads(count)


# -- BLAS ----------------------------------------------------------------------------------------

_controller = None
_blas_libs: list = []
_lock = threading.Lock()
_depth = 0                 # how many numlstm kernel calls are running (in any thread)
_saved: list = []


def _blas_controller():
    """A threadpoolctl controller that sees every BLAS in the process, including SciPy's (the
    one Numba's ``np.dot`` calls, which is only loaded once ``scipy.linalg`` is imported)."""
    global _controller, _blas_libs
    if _controller is None:
        import scipy.linalg  # noqa: F401  (loads the BLAS behind numba's np.dot)
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
        _blas_libs = [lib for lib in _controller.lib_controllers if lib.user_api == "blas"]
    return _controller


def enter_blas_single_thread() -> None:
    """Hold every BLAS at one thread (counted: see :func:`blas_single_thread`)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _blas_controller()
            _saved = [lib.get_num_threads() for lib in _blas_libs]
            for lib, count in zip(_blas_libs, _saved):
                if count != 1:
                    lib.set_num_threads(1)
        _depth += 1


def exit_blas_single_thread() -> None:
    """Undo one :func:`enter_blas_single_thread`; the last one out restores the counts."""
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0:
            for lib, count in zip(_blas_libs, _saved):
                if count != 1:
                    lib.set_num_threads(count)


@contextlib.contextmanager
def blas_single_thread():
    """Hold every BLAS library at one thread while the block runs (nested and concurrent uses
    from several Python threads are counted; the first one in saves the settings, the last one
    out restores them)."""
    enter_blas_single_thread()
    try:
        yield
    finally:
        exit_blas_single_thread()
