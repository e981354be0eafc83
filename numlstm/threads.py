"""How many CPU threads numlstm uses, for its Numba loops and for BLAS alike.

>>> import numlstm
>>> numlstm.set_num_threads(1)          # from now on
>>> with numlstm.num_threads(2):        # for a block, restored afterwards
...     layer(x)

The ``numba`` backend splits the batch into one range of rows per thread and runs the whole
time loop of each range on its thread (compiled loops that release the GIL, on a small pool of
Python threads); every matrix product inside a range is a *single-threaded* BLAS call. Letting
BLAS start its own threads beside numlstm's would put two busy threads on every core
(80-100x slowdowns were measured, docs/performance.md), so while numlstm's loops run, the BLAS libraries loaded in the
process are held at one thread (:func:`blas_single_thread`) and restored afterwards.

``set_num_threads(n)`` also limits the process's BLAS libraries to ``n`` threads (through
``threadpoolctl``), so the ``numpy`` reference backend and the user's own NumPy/SciPy code
honour the same setting, and Numba's own thread count (for ``prange`` code, in the calling
thread) once Numba's thread pool is running. numlstm never starts that pool itself: its kernels
do not use it, and starting it (GNU OpenMP) would make a later ``fork()`` unsafe.
"""

from __future__ import annotations

import contextlib
import os
import threading

from . import validation as V

__all__ = ["get_num_threads", "set_num_threads", "num_threads", "blas_single_thread",
           "set_cpu_blas", "use_cpu_blas", "cpu_blas_info"]

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
    """Use ``n`` threads in numlstm's CPU loops and in BLAS.

    Parameters
    ----------
    n : int in [1, MAX_THREADS]
        More threads than the usable cores are capped to that number (BLAS gets ``n``).
        Larger values raise ``ValueError`` and change nothing.
    """
    global _requested
    n = V.check_positive_int(n, "n", MAX_THREADS)
    _requested = n
    _blas_controller().limit(limits=n, user_api="blas")
    numba_threads = _running_numba()
    if numba_threads is not None:
        numba_threads.set_num_threads(min(n, numba_threads.config.NUMBA_NUM_THREADS))


def _running_numba():
    """The ``numba`` module when Numba's parallel thread pool has been started in this
    process, else None (so that numlstm never starts it)."""
    import sys
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is None or not getattr(parallel, "_is_initialized", False):
        return None
    return sys.modules["numba"]


@contextlib.contextmanager
def num_threads(n: int):
    """Use ``n`` threads inside a ``with`` block (see :func:`set_num_threads`); the previous
    numlstm and BLAS settings are restored on leaving it."""
    global _requested
    n = V.check_positive_int(n, "n")
    previous = _requested
    numba_module = _running_numba()
    previous_numba = None if numba_module is None else numba_module.get_num_threads()
    controller = _blas_controller()
    previous_blas = [(lib, lib.get_num_threads()) for lib in controller.lib_controllers
                     if lib.user_api == "blas"]
    set_num_threads(n)
    try:
        yield
    finally:
        _requested = previous
        if previous_numba is not None:
            numba_module.set_num_threads(previous_numba)
        for lib, count in previous_blas:
            lib.set_num_threads(count)


def set_cpu_blas(name: str | None) -> None:
    """Choose the engine of the ``numba`` backend's float32 recurrent products for this
    process (float64 always uses OpenBLAS).

    Parameters
    ----------
    name : {"auto", "numlstm", "mkl", "openblas"} or None
        ``"numlstm"``: numlstm's own packed AVX-512 kernel; ``"mkl"``: oneMKL's packed GEMM
        (needs ``pip install "numlstm[mkl]"``; raises
        :class:`~numlstm.errors.BackendUnavailableError` without it); ``"openblas"``: SciPy's
        OpenBLAS; ``"auto"``: oneMKL on an Intel CPU where installed, else numlstm's kernel on
        the CPUs it was measured on (AVX-512 AMD Zen), else OpenBLAS; None: back to the
        ``NUMLSTM_BLAS`` environment variable (default auto). :func:`cpu_blas_info` says what
        this resolves to here; docs/performance.md compares the engines.
    """
    from .backends import cpu_blas
    if name is not None:
        name = V.check_name(name, "name", cpu_blas.POLICIES)
    cpu_blas.set_policy(name)


@contextlib.contextmanager
def use_cpu_blas(name: str | None):
    """:func:`set_cpu_blas` inside a ``with`` block; the previous choice is restored after it."""
    from .backends import cpu_blas
    previous = cpu_blas.explicit_policy()
    set_cpu_blas(name)
    try:
        yield
    finally:
        cpu_blas.set_policy(previous)


def cpu_blas_info() -> dict:
    """What the engine policy resolves to on this machine: ``{"requested", "float32",
    "float64", "mkl", "cpu_vendor", "reason"}`` (``float32``/``float64``: ``"numlstm"``,
    ``"mkl"`` or ``"openblas"``; ``mkl``: whether oneMKL is installed and loads)."""
    from .backends import cpu_blas
    return cpu_blas.info()


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


def _enter_single_thread() -> None:
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _blas_controller()
            _saved = [lib.get_num_threads() for lib in _blas_libs]
            for lib, count in zip(_blas_libs, _saved):
                if count != 1:
                    lib.set_num_threads(1)
        _depth += 1


def _exit_single_thread() -> None:
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
    _enter_single_thread()
    try:
        yield
    finally:
        _exit_single_thread()
