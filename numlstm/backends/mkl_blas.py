"""Intel oneMKL's packed-weights GEMM, callable from the ``numba`` backend's compiled loops.

Optional (``pip install "numlstm[mkl]"``). The cost of an LSTM step at batch 32-256 is the
recurrent product ``h_{t-1} (rows, H) @ U (H, 4H)``, done once per timestep with the *same*
``U``. A plain GEMM re-packs ``U`` into its blocked layout on every call; oneMKL's packed API
packs it once per sequence (``cblas_sgemm_pack``) and then only computes
(``cblas_sgemm_compute``) — see docs/performance.md for what that was measured to be worth,
and on which CPUs.

How the compiled loops reach MKL without losing Numba's on-disk cache: a ctypes function
pointer called from ``@njit`` code is a "dynamic global" (its address is baked into the
machine code, so the function cannot be cached). Instead, :func:`load` registers each MKL
entry point's address with LLVM under a numlstm-specific *symbol name*
(``llvmlite.binding.add_symbol``), and the loops call that name as an external function
(:data:`sgemm_compute`, ...). The cached machine code refers to the name only; the name is
bound again in every process by :func:`load`, which the backend calls before it runs a loop
that uses MKL. Nothing here is loaded by ``import numlstm``.

Threading: MKL's threading layer is set to *sequential* before its first call. numlstm runs
its own threads (one range of batch rows each), so MKL threads would oversubscribe the cores,
and MKL's Intel OpenMP runtime clashes with other OpenMP runtimes in the same process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

import numpy as np
from numba import types

__all__ = ["library_path", "load", "is_loaded", "pack_size", "pack_b", "sgemm_compute",
           "sgemm_pack", "sgemm_pack_get_size", "ROW_MAJOR", "NO_TRANS", "TRANS", "PACKED",
           "B_MATRIX"]

# CBLAS constants (mkl_cblas.h).
ROW_MAJOR = 101
NO_TRANS = 111
TRANS = 112
PACKED = 151
B_MATRIX = 162
_THREADING_SEQUENTIAL = 1
_INTERFACE_LP64 = 0          # 32-bit integers, as the signatures below declare

_LIBRARY_NAMES = ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so", "libmkl_rt.3.dylib",
                  "libmkl_rt.2.dylib", "libmkl_rt.dylib", "mkl_rt.3.dll", "mkl_rt.2.dll")

#: The symbol names the compiled loops call (bound by :func:`load`).
_SYMBOLS = {
    "cblas_sgemm_compute": "numlstm_mkl_sgemm_compute",
}

_i32, _ptr = types.int32, types.uintp
#: ``cblas_sgemm_compute(layout, transa, transb, m, n, k, a, lda, b, ldb, beta, c, ldc)``
#: with ``b`` packed by :func:`pack_b`: ``c = a @ b + beta * c``. Pointers are passed as
#: integers (``array.ctypes.data``).
sgemm_compute = types.ExternalFunction(
    _SYMBOLS["cblas_sgemm_compute"],
    types.void(_i32, _i32, _i32, _i32, _i32, _i32, _ptr, _i32, _ptr, _i32, types.float32, _ptr,
               _i32))

_library = None
_load_error: str | None = None
_lock = threading.Lock()


def library_path() -> str | None:
    """Where ``libmkl_rt`` is: the environment's own ``lib`` folder (where the ``mkl`` wheel
    and conda put it), then the system's library search path; None when it is not installed."""
    folders = [os.path.join(prefix, "lib") for prefix in dict.fromkeys(
        (sys.prefix, sys.exec_prefix, sys.base_prefix, os.environ.get("CONDA_PREFIX", "")))
        if prefix]
    for folder in folders:
        for name in _LIBRARY_NAMES:
            candidate = os.path.join(folder, name)
            if os.path.exists(candidate):
                return candidate
    return ctypes.util.find_library("mkl_rt")


def load() -> str | None:
    """Load oneMKL once per process, set it sequential and LP64, and bind the symbols the
    compiled loops call. Returns None on success, else why MKL cannot be used."""
    global _library, _load_error
    with _lock:
        if _library is not None or _load_error is not None:
            return _load_error
        path = library_path()
        if path is None:
            _load_error = ("oneMKL is not installed (no libmkl_rt in this environment or on "
                           "the library path)")
            return _load_error
        try:
            library = ctypes.CDLL(path)
            library.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
            library.MKL_Set_Threading_Layer.restype = ctypes.c_int
            library.MKL_Set_Interface_Layer.argtypes = [ctypes.c_int]
            library.MKL_Set_Interface_Layer.restype = ctypes.c_int
            library.MKL_Set_Interface_Layer(_INTERFACE_LP64)
            library.MKL_Set_Threading_Layer(_THREADING_SEQUENTIAL)
            _declare_python_side(library)
            import llvmlite.binding as llvm
            for exported, bound in _SYMBOLS.items():
                address = ctypes.cast(getattr(library, exported), ctypes.c_void_p).value
                llvm.add_symbol(bound, address)
        except (OSError, AttributeError) as error:
            _load_error = f"loading oneMKL from {path} failed ({error})"
            return _load_error
        _library = library
        return None


def is_loaded() -> bool:
    return _library is not None


def _declare_python_side(library) -> None:
    """ctypes signatures of the calls made from Python (packing, once per call)."""
    i32, ptr = ctypes.c_int, ctypes.c_void_p
    library.cblas_sgemm_pack_get_size.argtypes = [i32, i32, i32, i32]
    library.cblas_sgemm_pack_get_size.restype = ctypes.c_size_t
    library.cblas_sgemm_pack.argtypes = [i32, i32, i32, i32, i32, i32, ctypes.c_float, ptr, i32,
                                         ptr]
    library.cblas_sgemm_pack.restype = None


def sgemm_pack_get_size(m: int, n: int, k: int) -> int:
    """Bytes of the packed form of a ``(k, n)`` B operand for products with up to ``m`` rows."""
    return int(_library.cblas_sgemm_pack_get_size(B_MATRIX, m, n, k))


def sgemm_pack(transpose: bool, m: int, n: int, k: int, source: np.ndarray,
               destination: np.ndarray) -> None:
    """Pack ``op(source)`` of shape ``(k, n)`` (``op`` = transpose when ``transpose``) into
    ``destination`` (at least :func:`sgemm_pack_get_size` bytes, 64-byte aligned)."""
    _library.cblas_sgemm_pack(ROW_MAJOR, B_MATRIX, TRANS if transpose else NO_TRANS, m, n, k,
                              1.0, source.ctypes.data, source.strides[0] // source.itemsize,
                              destination.ctypes.data)


def pack_size(weights_rows: int, weights_cols: int, max_rows: int, transpose: bool) -> int:
    """Packed bytes for ``weights (weights_rows, weights_cols)`` used as ``weights`` (or its
    transpose when ``transpose``) in products with up to ``max_rows`` rows."""
    k, n = (weights_cols, weights_rows) if transpose else (weights_rows, weights_cols)
    return sgemm_pack_get_size(max_rows, n, k)


def pack_b(weights: np.ndarray, max_rows: int, transpose: bool, buffer: np.ndarray) -> np.ndarray:
    """Pack float32 C-contiguous ``weights`` (or its transpose) for products with up to
    ``max_rows`` rows into the front of ``buffer`` (uint8, from :func:`aligned_buffer`); returns
    the packed view. The view must not be moved or copied: MKL reads it by address."""
    rows, cols = weights.shape
    k, n = (cols, rows) if transpose else (rows, cols)
    size = sgemm_pack_get_size(max_rows, n, k)
    packed = buffer[:size]
    sgemm_pack(transpose, max_rows, n, k, weights, packed)
    return packed


def aligned_buffer(size: int) -> np.ndarray:
    """A uint8 array of ``size`` bytes whose data starts on a 64-byte boundary."""
    raw = np.empty(size + 64, np.uint8)
    offset = (-raw.ctypes.data) % 64
    return raw[offset:offset + size]
