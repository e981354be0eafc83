"""How many CPU threads numlstm uses, for its Numba loops and for BLAS alike, and which engine
does the ``numba`` backend's float32 products -- the user-facing, validated settings.

>>> import numlstm
>>> numlstm.set_num_threads(1)          # from now on
>>> with numlstm.num_threads(2):        # for a block, restored afterwards
...     layer(x)

The policy itself (one range of batch rows per thread, BLAS held at one thread while numlstm's
loops run, Numba's pool never started) lives with the backend that follows it, in
:mod:`numlstm.backends.threads`; docs/performance.md explains it. This module checks the
arguments and hands them over.
"""

from __future__ import annotations

import contextlib

from . import validation as V
from .backends import MAX_THREADS, blas_single_thread, cpu_blas_policy, get_num_threads, max_threads
from .backends import thread_policy as _policy

__all__ = ["get_num_threads", "set_num_threads", "num_threads", "blas_single_thread",
           "max_threads", "MAX_THREADS", "set_cpu_blas", "use_cpu_blas", "cpu_blas_info"]


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in numlstm's CPU loops and in BLAS.

    Parameters
    ----------
    n : int in [1, MAX_THREADS]
        More threads than the usable cores are capped to that number (BLAS gets ``n``).
        Larger values raise ``ValueError`` and change nothing.
    """
    _policy.set_num_threads(V.check_positive_int(n, "n", MAX_THREADS))


@contextlib.contextmanager
def num_threads(n: int):
    """Use ``n`` threads inside a ``with`` block (see :func:`set_num_threads`); the previous
    numlstm, Numba and BLAS settings are restored on leaving it."""
    n = V.check_positive_int(n, "n", MAX_THREADS)
    numba_module = _policy.running_numba()
    saved = (_policy.requested_threads(),
             None if numba_module is None else numba_module.get_num_threads(),
             _policy.saved_blas_threads())
    _policy.set_num_threads(n)
    try:
        yield
    finally:
        _policy.restore_num_threads(*saved)


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
    if name is not None:
        name = V.check_name(name, "name", cpu_blas_policy.POLICIES)
    cpu_blas_policy.set_policy(name)


@contextlib.contextmanager
def use_cpu_blas(name: str | None):
    """:func:`set_cpu_blas` inside a ``with`` block; the previous choice is restored after it."""
    previous = cpu_blas_policy.explicit_policy()
    set_cpu_blas(name)
    try:
        yield
    finally:
        cpu_blas_policy.set_policy(previous)


def cpu_blas_info() -> dict:
    """What the engine policy resolves to on this machine: ``{"requested", "float32",
    "float64", "mkl", "cpu_vendor", "reason"}`` (``float32``/``float64``: ``"numlstm"``,
    ``"mkl"`` or ``"openblas"``; ``mkl``: whether oneMKL is installed and loads)."""
    return cpu_blas_policy.info()
