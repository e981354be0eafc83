"""Which BLAS the ``numba`` backend's per-step products use: OpenBLAS or oneMKL's packed GEMM.

The policy, in order: :func:`set_policy` (``numlstm.set_cpu_blas``), else the environment
variable ``NUMLSTM_BLAS``, else ``"auto"``.

* ``"openblas"`` — every product through ``np.dot`` (SciPy's OpenBLAS, Numba's BLAS).
* ``"mkl"`` — float32 recurrent products through oneMKL's packed API (the weights packed once
  per call, then one compute per timestep); float64, and everything but the recurrent
  products, stay on OpenBLAS. Requires the ``mkl`` extra; asking for it without MKL raises
  :class:`~numlstm.errors.BackendUnavailableError` when the policy is set.
* ``"auto"`` (default) — ``"mkl"`` where it was measured to pay: MKL installed *and* an Intel
  CPU. On AMD CPUs oneMKL's GEMMs ran slower than OpenBLAS's AVX-512 kernels (see
  docs/performance.md), so ``auto`` keeps OpenBLAS there.

:func:`info` says what the policy resolves to on this machine and why.
"""

from __future__ import annotations

import os
import platform

import numpy as np

from ..errors import BackendUnavailableError

POLICIES = ("auto", "mkl", "openblas")
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
    """Why MKL's packed path cannot run here, or None when it can (loads MKL once)."""
    from . import mkl_blas
    return mkl_blas.load()


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


def use_mkl(dtype) -> bool:
    """Whether a call in ``dtype`` takes the packed oneMKL path under the current policy."""
    if np.dtype(dtype) != np.float32:
        return False
    policy = requested()
    if policy == "openblas":
        return False
    if policy == "auto" and cpu_vendor() != "GenuineIntel":
        return False
    return _mkl_problem() is None


def info() -> dict:
    """What the policy resolves to here: ``{"requested", "float32", "float64", "mkl",
    "cpu_vendor", "reason"}`` with ``float32``/``float64`` each ``"mkl"`` or ``"openblas"``."""
    policy = requested()
    problem = _mkl_problem()
    float32 = "mkl" if use_mkl(np.float32) else "openblas"
    if policy == "openblas":
        reason = "OpenBLAS requested"
    elif problem is not None:
        reason = f"OpenBLAS: {problem}"
    elif policy == "auto" and cpu_vendor() != "GenuineIntel":
        reason = (f"OpenBLAS: auto keeps OpenBLAS on this {cpu_vendor() or 'unknown'} CPU "
                  "(set NUMLSTM_BLAS=mkl to use MKL anyway)")
    else:
        reason = "oneMKL packed GEMM for float32 recurrent products"
    return {"requested": policy, "float32": float32, "float64": "openblas",
            "mkl": problem is None, "cpu_vendor": cpu_vendor(), "reason": reason}
