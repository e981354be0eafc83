"""The machine a benchmark ran on, and what its BLAS can do.

Nothing here imports torch, CUDA or CuPy: a GPU backend describes its own runtime
(:meth:`numlstm.backends.Backend.runtime_info`) once the registry has constructed it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Sequence

import numpy as np

from .. import validation as V
from ..backends import available_backends, get_backend, max_threads
from .timing import elapsed_seconds, thread_limit

__all__ = ["machine_info", "matmul_peak", "cpu_model", "blas_libraries", "package_version"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; what :mod:`platform` says elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def package_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def blas_libraries() -> list:
    """``[{"file", "version", "architecture"}]`` of the BLAS libraries loaded in this process
    (SciPy's, which Numba's ``np.dot`` calls, is loaded first)."""
    try:
        import scipy.linalg  # noqa: F401
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"file": os.path.basename(entry.get("filepath", "")),
             "version": entry.get("version"), "architecture": entry.get("architecture")}
            for entry in threadpool_info() if entry.get("user_api") == "blas"]


def _cuda_runtime(backend) -> str | None:
    """The CUDA runtime version ``backend`` runs on, ``"12.8"`` say; None for a CPU backend or
    when it cannot be read (a version string is not worth failing a report over)."""
    try:
        return backend.runtime_info().get("cuda_runtime")
    except Exception:
        return None


def _backend_entries() -> tuple[dict, str | None]:
    """``{name: {"available", "reason", "device"}}`` of every backend, and the CUDA runtime
    version the first usable GPU backend reports (None when none does)."""
    entries, cuda_version = {}, None
    for name, status in available_backends().items():
        entry = {"available": status.available, "reason": status.reason, "device": None}
        if status.available:
            try:
                backend = get_backend(name)
                entry["device"] = backend.describe()
            except Exception as error:      # a probe said yes but construction failed
                entry.update(available=False, reason=f"{type(error).__name__}: {error}")
            else:
                cuda_version = cuda_version or _cuda_runtime(backend)
        entries[name] = entry
    return entries, cuda_version


def machine_info() -> dict:
    """The machine and the versions that matter, without importing torch, CUDA or CuPy.

    Keys: ``cpu`` (model name), ``logical_cores``, ``physical_cores`` (None when unknown),
    ``usable_cores`` (this process's affinity), ``platform``, ``python``, ``versions``
    (numlstm, numpy, scipy, numba, numba-cuda, cupy, torch: None when not installed; torch is the
    version installed beside numlstm, the peer may use another interpreter), ``cuda`` (the CUDA
    runtime version a usable GPU backend reports, else None), ``backends``
    (name -> {"available", "reason", "device"}), ``blas`` (each BLAS library loaded:
    file, version and the kernel architecture it runs, from threadpoolctl), ``blas_env``
    (``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` when set: they pin OpenBLAS to other kernels
    than it would pick, which changes every GEMM's speed) and ``cpu_blas`` (what
    :func:`numlstm.cpu_blas_info` resolves to).
    """
    import numlstm
    physical = None
    try:
        import psutil
        physical = psutil.cpu_count(logical=False)
    except ImportError:
        pass
    versions = {"numlstm": numlstm.__version__, "numpy": np.__version__}
    for dist in ("scipy", "numba", "numba-cuda", "torch", "threadpoolctl"):
        versions[dist] = package_version(dist)
    versions["cupy"] = next((v for v in (package_version("cupy-cuda13x"),
                                          package_version("cupy-cuda12x"),
                                          package_version("cupy")) if v), None)
    backends, cuda_version = _backend_entries()
    return {
        "cpu": cpu_model(), "logical_cores": os.cpu_count(), "physical_cores": physical,
        "usable_cores": max_threads(), "platform": platform.platform(),
        "python": platform.python_version(), "versions": versions, "cuda": cuda_version,
        "backends": backends, "blas": blas_libraries(),
        "blas_env": {name: os.environ[name] for name in ("OPENBLAS_CORETYPE",
                                                          "OPENBLAS_L2_SIZE")
                     if name in os.environ},
        "cpu_blas": numlstm.cpu_blas_info(),
    }


def matmul_peak(size: int = 1024, threads: Sequence[int | None] = (1, None), *,
                dtype="float32", repeats: int = 5) -> dict[str, float]:
    """GEMM throughput of NumPy's BLAS in this process, GFLOP/s (``2·n³`` per product).

    For each entry of ``threads`` (None: every usable core), the best of ``repeats`` products of
    two ``size × size`` matrices after one warm-up. Keys are the thread counts as strings.
    """
    size = V.check_positive_int(size, "size")
    dtype = V.check_float_dtype(dtype)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty((size, size), dtype)
    peaks = {}
    for count in threads:
        count = max_threads() if count is None else count
        with thread_limit(count):
            np.matmul(a, b, out=out)
            best = min(elapsed_seconds(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
        peaks[str(count)] = 2 * size ** 3 / best / 1e9
    return peaks
