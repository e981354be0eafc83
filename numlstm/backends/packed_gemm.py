"""numlstm's own packed-weights GEMM for the per-step recurrent products (float32, AVX-512).

An LSTM multiplies the *same* weights ``U (K, N)`` by a new ``h_{t-1} (rows, K)`` at every
timestep. A general GEMM (OpenBLAS) re-packs ``U`` into its blocked layout on every call, which
at 16-64 rows costs as much as the arithmetic. Here ``U`` is packed once per sequence pass into
column panels (:func:`pack_panels`) and each step runs a register-blocked micro-kernel over
them (:func:`packed_matmul`).

Layout: ``panels (P, K, 64)`` with ``P = ceil(N / 64)``; panel ``p`` holds columns
``64p : 64p + 64`` of ``U`` row after row (the last panel zero-padded). The micro-kernel
computes a tile of 4 rows × 64 columns: 16 accumulators of 16 float32 lanes (one 512-bit
register each) live in registers for the whole ``k`` loop; per ``k`` it loads 4 vectors of the
panel, broadcasts 4 values of ``h`` and issues 16 fused multiply-adds. It is emitted as LLVM IR
(a Numba ``@intrinsic``) because that register tile cannot be expressed in Numba's array code:
written as loops over arrays, the accumulators live in memory and the loop is load/store bound.

Measured on one core of an AMD Zen 5 (``benchmarks/cpu_breakdown.py``; docs/performance.md):
210-250 GFLOP/s at the per-step shapes of the benchmark configurations, against 94-190 for
OpenBLAS's AVX-512 kernels on the same products.

The kernel needs 512-bit vector registers to keep its 16 accumulators: :func:`usable` says
whether this CPU is one it was measured on (AVX-512 AMD Zen; on Intel's AVX-512 CPUs LLVM
prefers 256-bit vectors, which would split them, so those keep oneMKL or OpenBLAS).
"""

from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["PANEL", "usable", "why_not_usable", "panels_shape", "pack_panels", "packed_matmul"]

#: Columns per panel (four 16-lane float32 vectors).
PANEL = 64
_LANES = 16
_VECTORS = PANEL // _LANES
_TILE_ROWS = 4

_F32 = ir.FloatType()
_V16 = ir.VectorType(_F32, _LANES)
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


@functools.lru_cache(maxsize=None)
def why_not_usable() -> str | None:
    """None when the kernel is known to run at full speed on this CPU, else why not.
    (Asked once per process: LLVM's host queries cost ~0.2 ms, more than a small forward.)"""
    import llvmlite.binding as llvm
    if not llvm.get_host_cpu_features().get("avx512f", False):
        return "the CPU has no AVX-512 (the kernel's 16 accumulators need 512-bit registers)"
    name = llvm.get_host_cpu_name()
    if not name.startswith("znver"):
        # On Intel's AVX-512 CPUs LLVM prefers 256-bit vectors, which would split the
        # accumulators in two: untested there, so not chosen automatically.
        return f"not measured on this CPU (LLVM calls it {name!r}); measured on AMD Zen 4/5"
    return None


def usable() -> bool:
    return why_not_usable() is None


def _fma_declaration(module):
    function = module.globals.get("llvm.fma.v16f32")
    if function is None:
        function = ir.Function(module, ir.FunctionType(_V16, [_V16, _V16, _V16]),
                               "llvm.fma.v16f32")
    return function


def _make_micro_kernel(rows: int):
    """The micro-kernel for a tile of ``rows`` (1-4) rows × :data:`PANEL` columns:
    ``c[r, :] (+)= sum_k a[r, k] * panel[k, :]`` with pointers passed as integers, row strides
    in elements, and ``accumulate`` choosing ``+=`` (True) or ``=``."""

    @intrinsic
    def micro_kernel(typingctx, a_address, a_stride, panel_address, c_address, c_stride,
                     depth, accumulate):
        signature = types.void(types.uintp, types.intp, types.uintp, types.uintp, types.intp,
                               types.intp, types.boolean)

        def codegen(context, builder, sig, args):
            a_int, a_step, panel_int, c_int, c_step, k_count, add = args
            float_ptr, vector_ptr = _F32.as_pointer(), _V16.as_pointer()
            a = builder.inttoptr(a_int, float_ptr)
            panel = builder.inttoptr(panel_int, float_ptr)
            c = builder.inttoptr(c_int, float_ptr)
            fma = _fma_declaration(builder.module)
            zero = ir.Constant(_V16, [0.0] * _LANES)

            def tile_vector(row, vector):     # address of c[row, 16 * vector]
                start = builder.gep(c, [builder.mul(ir.Constant(_I64, row), c_step)])
                return builder.bitcast(builder.gep(start, [ir.Constant(_I64, 16 * vector)]),
                                       vector_ptr)

            initial = [builder.select(add, builder.load(tile_vector(r, v), align=4), zero)
                       for r in range(rows) for v in range(_VECTORS)]
            entry = builder.block
            loop = builder.append_basic_block("tile_k_loop")
            done = builder.append_basic_block("tile_done")
            builder.cbranch(builder.icmp_signed(">", k_count, ir.Constant(_I64, 0)), loop, done)

            builder.position_at_end(loop)
            k = builder.phi(_I64)
            k.add_incoming(ir.Constant(_I64, 0), entry)
            sums = []
            for value in initial:
                phi = builder.phi(_V16)
                phi.add_incoming(value, entry)
                sums.append(phi)
            panel_row = builder.gep(panel, [builder.mul(k, ir.Constant(_I64, PANEL))])
            columns = [builder.load(builder.bitcast(
                builder.gep(panel_row, [ir.Constant(_I64, 16 * v)]), vector_ptr), align=4)
                for v in range(_VECTORS)]
            updated = []
            for r in range(rows):
                a_value = builder.load(builder.gep(
                    a, [builder.add(builder.mul(ir.Constant(_I64, r), a_step), k)]))
                broadcast = builder.shuffle_vector(
                    builder.insert_element(ir.Constant(_V16, ir.Undefined), a_value,
                                           ir.Constant(_I32, 0)),
                    ir.Constant(_V16, ir.Undefined),
                    ir.Constant(ir.VectorType(_I32, _LANES), [0] * _LANES))
                for v in range(_VECTORS):
                    updated.append(builder.call(fma, [broadcast, columns[v],
                                                      sums[r * _VECTORS + v]]))
            k_next = builder.add(k, ir.Constant(_I64, 1))
            k.add_incoming(k_next, loop)
            for phi, value in zip(sums, updated):
                phi.add_incoming(value, loop)
            builder.cbranch(builder.icmp_signed("<", k_next, k_count), loop, done)

            builder.position_at_end(done)
            results = []
            for start, end in zip(initial, updated):    # (phi nodes first, then the stores)
                result = builder.phi(_V16)
                result.add_incoming(start, entry)
                result.add_incoming(end, loop)
                results.append(result)
            for index, result in enumerate(results):
                builder.store(result, tile_vector(index // _VECTORS, index % _VECTORS),
                              align=4)
            return context.get_dummy_value()

        return signature, codegen

    return micro_kernel


_tile_4 = _make_micro_kernel(4)
_tile_3 = _make_micro_kernel(3)
_tile_2 = _make_micro_kernel(2)
_tile_1 = _make_micro_kernel(1)


def panels_shape(weights_shape, transpose: bool) -> tuple:
    """Shape of the packed form of ``weights`` (or of its transpose): ``(P, K, 64)``."""
    k, n = (weights_shape[1], weights_shape[0]) if transpose else weights_shape
    return (-(-n // PANEL), k, PANEL)


def pack_panels(weights: np.ndarray, transpose: bool, out: np.ndarray) -> np.ndarray:
    """Write ``weights (K, N)`` -- or ``weights.T`` when ``transpose`` -- into ``out`` as
    column panels ``(P, K, 64)`` (see the module docstring); returns ``out``."""
    source = weights.T if transpose else weights
    depth, width = source.shape
    full = width // PANEL
    if full:
        out[:full] = source[:, :full * PANEL].reshape(depth, full, PANEL).transpose(1, 0, 2)
    tail = width - full * PANEL
    if tail:
        out[full, :, :tail] = source[:, full * PANEL:]
        out[full, :, tail:] = 0
    return out


@njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _tile(rows, a_address, a_stride, panel_address, c_address, c_stride, depth, accumulate):
    if rows == 4:
        _tile_4(a_address, a_stride, panel_address, c_address, c_stride, depth, accumulate)
    elif rows == 3:
        _tile_3(a_address, a_stride, panel_address, c_address, c_stride, depth, accumulate)
    elif rows == 2:
        _tile_2(a_address, a_stride, panel_address, c_address, c_stride, depth, accumulate)
    else:
        _tile_1(a_address, a_stride, panel_address, c_address, c_stride, depth, accumulate)


@njit(inline="always", cache=True, nogil=True, error_model="numpy")
def packed_matmul(a, panels, c, width, accumulate, tile):
    """``c[:, :width] (+)= a @ U`` for float32 ``a (rows, K)`` and ``U (K, width)`` packed as
    ``panels (P, K, 64)`` by :func:`pack_panels`; ``+=`` when ``accumulate``.

    ``a`` and ``c`` may be strided views along their first axis (rows), unit-stride along
    their second. ``tile (4, 64)`` float32 is scratch for the last panel's columns when
    ``width`` is not a multiple of 64 (a full tile is never written past ``width``).
    """
    rows, depth = a.shape
    a_stride = a.strides[0] // 4
    c_stride = c.strides[0] // 4
    full = width // PANEL
    tail = width - full * PANEL
    for p in range(full):
        panel_address = panels[p].ctypes.data
        for r in range(0, rows, _TILE_ROWS):
            block = min(_TILE_ROWS, rows - r)
            _tile(block, a[r].ctypes.data, a_stride, panel_address,
                  c[r, p * PANEL:].ctypes.data, c_stride, depth, accumulate)
    if tail:
        panel_address = panels[full].ctypes.data
        for r in range(0, rows, _TILE_ROWS):
            block = min(_TILE_ROWS, rows - r)
            for i in range(block):
                for j in range(tail):
                    tile[i, j] = c[r + i, full * PANEL + j] if accumulate else np.float32(0.0)
            _tile(block, a[r].ctypes.data, a_stride, panel_address, tile.ctypes.data, PANEL,
                  depth, True)
            for i in range(block):
                for j in range(tail):
                    c[r + i, full * PANEL + j] = tile[i, j]
