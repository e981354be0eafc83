"""The ``numba`` backend: JIT-compiled CPU loops (the default backend).

This module prepares arrays (contiguity, output buffers, placeholders for absent options),
decides how many threads a call uses, and calls the ``@njit`` loops in
:mod:`numlstm.backends.numba_kernels`. Kernels are compiled on first use per dtype (float32,
float64) and cached on disk (``cache=True``).

Scratch buffers that do not outlive a call (the inference gate buffer, the backward pass's
gate gradients, per-step buffers) are kept between calls, per Python thread, and reused when
the next call has the same shapes: fresh large arrays cost page faults on every call
(docs/performance.md). :meth:`NumbaBackend.clear_workspace` releases them.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from . import cpu_blas, threads
from .base import Backend, ForwardResult, Gradients, SequenceCache
from .numba_kernels import (SMALL_ROWS, backward_rows, backward_rows_mkl, backward_rows_panels,
                            forward_rows, forward_rows_mkl, forward_rows_panels, forward_small,
                            lstm_step_kernel)

#: Below this many multiply-adds per call, one thread does the whole batch: starting the
#: thread team costs more than it saves.
_PARALLEL_MIN_WORK = 1 << 20

#: From this many timesteps on, the batch 1-2 inference path projects the inputs with one BLAS
#: GEMM (about 3x faster per step than its own loop at D32 H64) and so holds BLAS at one
#: thread around the call (a few microseconds); shorter sequences make no BLAS call.
_SMALL_BLAS_MIN_STEPS = 24


def _kernel_array(array) -> np.ndarray:
    """C-contiguous and writeable: Numba compiles a separate specialisation for every
    read-only/writeable combination of arguments, so read-only inputs (e.g. memory-mapped
    files) are copied rather than paid for in compile time."""
    if array.flags.c_contiguous and array.flags.writeable:
        return array
    return np.require(array, requirements=("C", "W"))


_PLACEHOLDERS: dict = {}


def _placeholder(dtype, ndim=2) -> np.ndarray:
    """An empty array standing in for an absent optional input (keeps kernel types fixed)."""
    key = (np.dtype(dtype), ndim)
    array = _PLACEHOLDERS.get(key)
    if array is None:
        array = _PLACEHOLDERS[key] = np.empty((0,) * ndim, dtype=dtype)
    return array


_pool = None
_pool_pid = None
_pool_lock = threading.Lock()


def _thread_pool():
    """The worker threads that run row ranges beside the calling thread (created on first
    parallel call; the kernels release the GIL, so they run truly in parallel)."""
    global _pool, _pool_pid
    with _pool_lock:
        # A forked child inherits the pool object but not its threads: make a new one there.
        if _pool is None or _pool_pid != os.getpid() or \
                _pool._max_workers < threads.max_threads() - 1:
            from concurrent.futures import ThreadPoolExecutor
            _pool = ThreadPoolExecutor(max_workers=max(1, threads.max_threads() - 1),
                                       thread_name_prefix="numlstm")
            _pool_pid = os.getpid()
        return _pool


def _run_row_ranges(kernel, batch: int, n_chunks: int, args_of_chunk) -> None:
    """Run ``kernel(row_start, row_stop, *args_of_chunk(k))`` over ``n_chunks`` equal row
    ranges: range 0 on the calling thread, the others on the pool, with every BLAS held at one
    thread meanwhile."""
    bounds = [(k * batch // n_chunks, (k + 1) * batch // n_chunks) for k in range(n_chunks)]
    threads.enter_blas_single_thread()
    try:
        if n_chunks == 1:
            kernel(0, batch, *args_of_chunk(0))
            return
        pool = _thread_pool()
        futures = [pool.submit(kernel, start, stop, *args_of_chunk(k))
                   for k, (start, stop) in enumerate(bounds) if k > 0]
        try:
            kernel(bounds[0][0], bounds[0][1], *args_of_chunk(0))
        finally:
            for future in futures:
                future.result()
    finally:
        threads.exit_blas_single_thread()


def _chunks(batch: int, timesteps: int, features: int, units: int) -> int:
    """How many row chunks (= threads) a call over this problem uses."""
    n = threads.get_num_threads()
    if n <= 1 or batch < 2 or batch * timesteps * 4 * units * (features + units) < \
            _PARALLEL_MIN_WORK:
        return 1
    return min(n, batch)


def _l2_bytes() -> int:
    """This CPU's per-core L2 cache size (1 MiB when the system does not say)."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size", encoding="ascii") as handle:
            text = handle.read().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        return 1 << 20


_L2_BYTES = _l2_bytes()
#: Rows per block of the packed engines' per-step products while the packed weights fit in
#: L2: the block's pre-activations are still in L1/L2 when its gates run right after.
_PACKED_BLOCK_ROWS = 16


def _chunk_rows(batch: int, n_chunks: int) -> int:
    """The most rows any of :func:`_run_row_ranges`'s ``n_chunks`` ranges gets."""
    return -(-batch // n_chunks)


def _engine(dtype, batch: int) -> str:
    """The engine of this call's recurrent products (see :mod:`.cpu_blas`). At one or two
    rows the OpenBLAS loops make no BLAS call per step (their own vector loops do the
    products), which is faster there than packing weights for a packed engine."""
    return "openblas" if batch <= SMALL_ROWS else cpu_blas.engine(dtype)


class _Workspace(threading.local):
    """Per-thread scratch arrays by name, reused while their shape and dtype match."""

    def __init__(self):
        self.arrays = {}

    def get(self, name, shape, dtype) -> np.ndarray:
        array = self.arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self.arrays[name] = np.empty(shape, dtype)
        return array

    def packed(self, engine, weights, max_rows, transpose, role="recurrent") -> np.ndarray:
        """``weights`` (or its transpose) packed for ``engine``'s per-step products of up to
        ``max_rows`` rows, in a buffer kept between calls. Packed afresh on every call (it
        costs about one copy of the weights, a few percent of a sequence pass), so an
        in-place weight update can never leave a stale packed copy behind."""
        name = f"packed_{engine}_{role}_{'t' if transpose else 'n'}"
        if engine == "numlstm":
            from . import packed_gemm
            return packed_gemm.pack_panels(
                weights, transpose,
                self.get(name, packed_gemm.panels_shape(weights.shape, transpose),
                         weights.dtype))
        from . import mkl_blas
        size = mkl_blas.pack_size(*weights.shape, max_rows, transpose)
        buffer = self.arrays.get(name)
        if buffer is None or buffer.size < size:
            buffer = self.arrays[name] = mkl_blas.aligned_buffer(size)
        return mkl_blas.pack_b(weights, max_rows, transpose, buffer)


class NumbaBackend(Backend):
    """``@njit`` loops on the CPU; float32 and float64; threads per
    :func:`numlstm.set_num_threads`."""

    name = "numba"
    xp = np

    def __init__(self):
        self._workspace = _Workspace()

    def asarray(self, array, dtype=None):
        return np.asarray(array, dtype=dtype)

    def to_numpy(self, array):
        return np.asarray(array)

    def describe(self) -> str:
        import numba
        products = {"numlstm": "numlstm's packed kernel (float32)",
                    "mkl": "oneMKL packed GEMM (float32)",
                    "openblas": "OpenBLAS"}[cpu_blas.engine(np.float32)]
        return (f"CPU (Numba {numba.__version__} JIT loops, {threads.get_num_threads()} "
                f"threads, recurrent products: {products})")

    def clear_workspace(self) -> None:
        """Release the scratch buffers this thread keeps between calls."""
        self._workspace.arrays.clear()

    def lstm_forward(self, x, kernel, recurrent_kernel, bias, *, h0, c0, mask,
                     recurrent_dropout_mask, reverse, activation, recurrent_activation,
                     zero_output_for_mask, return_cache):
        batch, timesteps, features = x.shape
        if batch <= SMALL_ROWS and not return_cache and mask is None and \
                recurrent_dropout_mask is None and batch > 0 and timesteps > 0:
            # The latency path (batch 1-2 inference): one compiled call on one thread, whose
            # per-step products are its own vector loops. Only from _SMALL_BLAS_MIN_STEPS
            # timesteps on does it make one BLAS call (the input projection), and only then are
            # the BLAS threads held at one around it; its one scratch buffer (the projected
            # gates, T x 4H) comes from the workspace.
            x, kernel, recurrent_kernel, bias, h0, c0 = (
                _kernel_array(a) for a in (x, kernel, recurrent_kernel, bias, h0, c0))
            h = h0.copy()
            c = c0.copy()
            outputs = np.empty((batch, timesteps, h.shape[1]), x.dtype)
            args = (x, kernel, recurrent_kernel, bias, h, c, outputs, bool(reverse),
                    int(activation), int(recurrent_activation),
                    self._workspace.get("gates_small", (timesteps, 4 * h.shape[1]), x.dtype))
            if timesteps < _SMALL_BLAS_MIN_STEPS:
                forward_small(*args, False)
            else:
                threads.enter_blas_single_thread()
                try:
                    forward_small(*args, True)
                finally:
                    threads.exit_blas_single_thread()
            return ForwardResult(outputs=outputs, h=h, c=c, cache=None, backend=self.name)
        units = recurrent_kernel.shape[0]
        dtype = x.dtype
        x, kernel, recurrent_kernel, bias, h0, c0 = (
            _kernel_array(a) for a in (x, kernel, recurrent_kernel, bias, h0, c0))
        if mask is not None:
            mask = _kernel_array(mask)
        if recurrent_dropout_mask is not None:
            recurrent_dropout_mask = _kernel_array(recurrent_dropout_mask)
        outputs = np.empty((batch, timesteps, units), dtype)
        h = h0.copy()
        c = c0.copy()
        space = self._workspace
        if return_cache:
            gates = np.empty((batch, timesteps, 4 * units), dtype)
            cells = np.empty((batch, timesteps, units), dtype)
            h_prev = np.empty((batch, timesteps, units), dtype)
        else:
            gates = space.get("gates", (batch, timesteps, 4 * units), dtype)
            cells = h_prev = _placeholder(dtype, 3)

        # Zero-sized GEMMs are legal but pointless; the answer is already in the buffers.
        if batch > 0 and timesteps > 0:
            n_chunks = _chunks(batch, timesteps, features, units)
            options = (mask if mask is not None else _placeholder(np.bool_), mask is not None,
                       (recurrent_dropout_mask if recurrent_dropout_mask is not None
                        else _placeholder(dtype)),
                       recurrent_dropout_mask is not None,
                       bool(reverse), int(activation), int(recurrent_activation),
                       bool(zero_output_for_mask), bool(return_cache),
                       outputs, h, c, gates, cells, h_prev)
            h_in = space.get("h_in", (batch, units), dtype)
            engine = _engine(dtype, batch)
            if engine == "openblas":
                args = (x, kernel, recurrent_kernel, bias) + options + (
                    space.get("recurrent", (batch, 4 * units), dtype), h_in)
                kernel_function = forward_rows
            else:
                rows = _chunk_rows(batch, n_chunks)
                packed = space.packed(engine, recurrent_kernel, rows, False)
                block_rows = _PACKED_BLOCK_ROWS if packed.nbytes <= _L2_BYTES else rows
                if engine == "mkl":
                    kernel_function, projection = forward_rows_mkl, kernel
                else:   # numlstm's kernel does the input projection too
                    kernel_function = forward_rows_panels
                    projection = space.packed(engine, kernel, rows, False, "input")
                args = (x, projection, packed, bias) + options + (h_in, block_rows)
            _run_row_ranges(kernel_function, batch, n_chunks, lambda k: args)

        cache = None
        if return_cache:
            cache = SequenceCache(
                x=x, kernel=kernel, recurrent_kernel=recurrent_kernel, c0=c0, mask=mask,
                recurrent_dropout_mask=recurrent_dropout_mask, reverse=bool(reverse),
                zero_output_for_mask=bool(zero_output_for_mask), activation=int(activation),
                recurrent_activation=int(recurrent_activation), gates=gates, cells=cells,
                h_prev=h_prev, backend=self.name)
        return ForwardResult(outputs=outputs, h=h, c=c, cache=cache, backend=self.name)

    def lstm_backward(self, cache, *, grad_outputs, grad_h, grad_c):
        x = cache.x
        batch, timesteps, features = x.shape
        units = cache.recurrent_kernel.shape[0]
        width = 4 * units
        dtype = x.dtype
        dh = np.array(grad_h, dtype=dtype, copy=True)
        dc = np.array(grad_c, dtype=dtype, copy=True)
        if batch == 0 or timesteps == 0:
            return Gradients(x=np.zeros_like(x), kernel=np.zeros((features, width), dtype),
                             recurrent_kernel=np.zeros((units, width), dtype),
                             bias=np.zeros(width, dtype), h0=dh, c0=dc)
        dx = np.empty_like(x)
        dkernel = np.empty((features, width), dtype)
        drecurrent_kernel = np.empty((units, width), dtype)
        dbias = np.empty(width, dtype)
        mask = cache.mask
        dropout = cache.recurrent_dropout_mask
        space = self._workspace
        n_chunks = _chunks(batch, timesteps, features, units)
        engine = _engine(dtype, batch)
        if engine == "openblas":
            kernel_function = backward_rows
            recurrent = cache.recurrent_kernel
        else:
            kernel_function = backward_rows_mkl if engine == "mkl" else backward_rows_panels
            recurrent = space.packed(engine, cache.recurrent_kernel,
                                     _chunk_rows(batch, n_chunks), True)
        args = (x, cache.kernel, recurrent, cache.c0,
                mask if mask is not None else _placeholder(np.bool_), mask is not None,
                dropout if dropout is not None else _placeholder(dtype), dropout is not None,
                cache.reverse, cache.activation, cache.recurrent_activation,
                cache.zero_output_for_mask, cache.gates, cache.cells, cache.h_prev,
                _kernel_array(grad_outputs), dh, dc,
                space.get("dz_all", (batch, timesteps, width), dtype),
                space.get("dz_step", (batch, width), dtype),
                space.get("dh_step", (batch, units), dtype),
                (space.get("h_in_all", (batch, timesteps, units), dtype)
                 if dropout is not None else _placeholder(dtype, 3)),
                dx)
        if n_chunks > 1:
            dkernel_parts = space.get("dkernel_parts", (n_chunks - 1, features, width), dtype)
            drecurrent_parts = space.get("drecurrent_kernel_parts",
                                         (n_chunks - 1, units, width), dtype)
            dbias_parts = space.get("dbias_parts", (n_chunks - 1, width), dtype)

        def args_of_chunk(k):
            # Range 0 writes its share of the weight gradients into the results, range k > 0
            # into its own buffers, summed below.
            if k == 0:
                return args + (dkernel, drecurrent_kernel, dbias)
            return args + (dkernel_parts[k - 1], drecurrent_parts[k - 1], dbias_parts[k - 1])

        _run_row_ranges(kernel_function, batch, n_chunks, args_of_chunk)
        for k in range(n_chunks - 1):
            dkernel += dkernel_parts[k]
            drecurrent_kernel += drecurrent_parts[k]
            dbias += dbias_parts[k]
        return Gradients(x=dx, kernel=dkernel, recurrent_kernel=drecurrent_kernel, bias=dbias,
                         h0=dh, c0=dc)

    def step_kernel(self):
        """The compiled step itself (see :meth:`Backend.step_kernel`): at batch 1 a step takes
        about as long as the Python around it, so the layer's streaming loop calls it
        directly. A subclass (or an instrumented instance's class) that replaces
        :meth:`lstm_step` gets the default, which runs its ``lstm_step``."""
        if type(self).lstm_step is not _COMPILED_STEP_OF:
            return super().step_kernel()
        return lstm_step_kernel

    def lstm_step(self, x_t, kernel, recurrent_kernel, bias, h, c, *, activation,
                  recurrent_activation, out_h=None, out_c=None):
        # Per-call inputs may be views (x[:, t] of a batch-major sequence): only those that are
        # not C-contiguous are copied, so the usual streaming loop does no Python-side work.
        # (The front-end keeps the weights C-contiguous.)
        if not (x_t.flags.c_contiguous and h.flags.c_contiguous and c.flags.c_contiguous):
            x_t, h, c = (np.ascontiguousarray(a) for a in (x_t, h, c))
        if out_h is None:
            out_h = np.empty_like(h)
        if out_c is None:
            out_c = np.empty_like(c)
        lstm_step_kernel(x_t, kernel, recurrent_kernel, bias, h, c, activation,
                         recurrent_activation, out_h, out_c)
        return out_h, out_c


#: The ``lstm_step`` whose computation :func:`lstm_step_kernel` is (the class attribute may be
#: replaced later, by a subclass or on the class itself).
_COMPILED_STEP_OF = NumbaBackend.lstm_step
