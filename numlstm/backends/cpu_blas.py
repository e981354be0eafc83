"""What does the ``numba`` backend's per-step recurrent products: which engine, and why.

Three engines (docs/performance.md measures them):

* ``"numlstm"`` — numlstm's own packed-weights GEMM (:mod:`.packed_gemm`): the recurrent
  weights packed into column panels once per call, then a register-blocked AVX-512
  micro-kernel per step. float32.
* ``"mkl"`` — oneMKL's packed API (:mod:`.mkl_blas`, ``pip install "numlstm[mkl]"``): the
  weights packed once per call by ``cblas_sgemm_pack``, one ``cblas_sgemm_compute`` per step.
  float32.
* ``"openblas"`` — ``np.dot`` per step (SciPy's OpenBLAS, Numba's BLAS), which re-packs the
  weights on every call. Every dtype; always used for float64.

The policy, in order: :func:`set_policy` (``numlstm.set_cpu_blas``), else the environment
variable ``NUMLSTM_BLAS``, else ``"auto"``. ``"auto"`` picks, for float32, oneMKL on an Intel
CPU where it is installed, else numlstm's kernel on the CPUs it was measured on (AVX-512 AMD
Zen), else OpenBLAS. Naming an engine forces it for float32 (asking for ``"mkl"`` without MKL
raises :class:`~numlstm.errors.BackendUnavailableError`). Whatever the engine, the input
projection and the weight gradients are single large GEMMs through OpenBLAS. :func:`info` says
what the policy resolves to on this machine and why.
"""

from __future__ import annotations

import os
import platform

import numpy as np

from ..errors import BackendUnavailableError

POLICIES = ("auto", "numlstm", "mkl", "openblas")
ENGINES = ("numlstm", "mkl", "openblas")
ENV_VAR = "NUMLSTM_BLAS"

_policy: str | None = None       # set_policy's choice; None: the environment variable or auto
_vendor_cache: list = []


def cpu_vendor() -> str:
    """The CPU vendor string (``GenuineIntel``, ``AuthenticAMD``, ...; "" when unknown)."""
    if not _vendor_cache:
        vendor = ""
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
                for line in handle:
                    if line.startswith("vendor_id"):
                        vendor = line.split(":", 1)[1].strip()
                        break
        except OSError:
            vendor = "GenuineIntel" if "Intel" in platform.processor() else ""
        _vendor_cache.append(vendor)
    return _vendor_cache[0]


def _mkl_problem() -> str | None:
    """Why oneMKL's packed path cannot run here, or None when it can (loads MKL once)."""
    from . import mkl_blas
    return mkl_blas.load()


def _kernel_problem() -> str | None:
    """Why numlstm's own kernel is not chosen automatically here, or None."""
    from . import packed_gemm
    return packed_gemm.why_not_usable()


def requested() -> str:
    """The policy in force: :func:`set_policy`'s, else ``$NUMLSTM_BLAS``, else ``"auto"``."""
    if _policy is not None:
        return _policy
    value = os.environ.get(ENV_VAR, "").strip().lower()
    return value if value in POLICIES else "auto"


def explicit_policy() -> str | None:
    """The policy :func:`set_policy` set (None: none set)."""
    return _policy


def set_policy(name: str | None) -> None:
    """Set the policy for this process (None: back to ``$NUMLSTM_BLAS`` / auto). The name is
    validated by the caller (:func:`numlstm.set_cpu_blas`)."""
    global _policy
    if name == "mkl":
        problem = _mkl_problem()
        if problem is not None:
            raise BackendUnavailableError("numba", f"the MKL path was requested but {problem}",
                                          'pip install "numlstm[mkl]"')
    _policy = name


def _resolve() -> tuple[str, str]:
    """``(engine, reason)`` for float32 under the current policy."""
    policy = requested()
    if policy == "openblas":
        return "openblas", "OpenBLAS requested"
    if policy == "numlstm":
        return "numlstm", "numlstm's packed kernel requested"
    mkl_problem = _mkl_problem() if (policy == "mkl" or cpu_vendor() == "GenuineIntel") \
        else "auto uses oneMKL on Intel CPUs only (on AMD its GEMMs measured slower)"
    if policy == "mkl":
        return (("mkl", "oneMKL requested") if mkl_problem is None
                else ("openblas", f"OpenBLAS: {mkl_problem}"))
    if mkl_problem is None:
        return "mkl", "auto: oneMKL's packed GEMM on this Intel CPU"
    kernel_problem = _kernel_problem()
    if kernel_problem is None:
        return "numlstm", "auto: numlstm's packed AVX-512 kernel"
    return "openblas", f"OpenBLAS: {mkl_problem}; numlstm's kernel: {kernel_problem}"


def engine(dtype) -> str:
    """The engine a call in ``dtype`` uses for its recurrent products: one of
    :data:`ENGINES` (always ``"openblas"`` for float64)."""
    if np.dtype(dtype) != np.float32:
        return "openblas"
    return _resolve()[0]


def info() -> dict:
    """What the policy resolves to here: ``{"requested", "float32", "float64", "mkl",
    "cpu_vendor", "reason"}``; ``float32``/``float64`` name the engine (:data:`ENGINES`),
    ``mkl`` says whether oneMKL is installed and loads."""
    float32, reason = _resolve()
    return {"requested": requested(), "float32": float32, "float64": "openblas",
            "mkl": _mkl_problem() is None, "cpu_vendor": cpu_vendor(), "reason": reason}
