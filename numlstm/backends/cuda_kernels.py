"""The ``@cuda.jit`` kernels of the ``cuda`` backend (launch code: :mod:`.cuda_backend`).

Layout: batch-major, as the user's arrays are: ``x (B, T, D)``, ``outputs (B, T, H)``, the
input projection ``x_proj (B, T, 4H)`` with the bias folded in, and the backward's
``dz_all (B, T, 4H)``.

The kernels, and what each one computes:

* :func:`gemm` -- ``out = op(a) @ op(b) (+ bias)``, a shared-memory tiled, register-blocked
  matrix product; ``op`` is an optional transpose chosen at run time. Used for the input
  projection of all timesteps at once and for the input and weight gradients over the whole
  sequence when cuBLAS (through CuPy) is not available.
* :func:`forward_step` -- one timestep for every row: the recurrent product
  ``(h_{t-1} * r) @ recurrent_kernel`` tiled through shared memory and fused with the gates,
  the cell update, the mask and the cache writes.
* :func:`forward_persistent` -- the whole sequence in one launch for small batches: each block
  keeps its slice of ``recurrent_kernel`` in shared memory for all timesteps and the grid
  synchronises between steps (a cooperative launch).
* :func:`backward_step_gates` and :func:`backward_step_recurrent` -- one timestep of the
  backward: the gate derivatives, then ``dz @ recurrent_kernel.T`` for the hidden state.
* :func:`backward_persistent` -- every timestep of the backward in one launch for small
  batches, like :func:`forward_persistent`.
* :func:`column_sums` -- the bias gradient, a parallel reduction over the rows.
* small helpers: :func:`scale_rows`, :func:`copy_1d` / ``2d`` / ``3d``.

Every kernel covers its output with grid-stride loops, so any grid size is correct, and guards
every index against the array bounds. Tiled kernels take their output tile's edge from
``blockDim.x`` (square blocks, at most :data:`MAX_TILE`), so that one compiled kernel serves
every launch configuration, including the very small blocks the tests use to span several
blocks; the reduction dimension always advances :data:`MAX_TILE` at a time (a smaller block
loads several elements per thread), which keeps the number of barriers per output tile low.

The gate math is :mod:`.gate_math`'s generic update (:func:`~.gate_math.cell_update` and
:func:`~.gate_math.cell_update_backward` given :func:`~.gate_math.activate` and
:func:`~.gate_math.activation_derivative`, one ``(row, unit)`` per thread, compiled by Numba as
device code): the ``numba`` CPU loops use the same equations, and no kernel here computes a
gate of its own. Its activations are libm's in every float type (the CPU loops' rational
float32 forms are tuned for CPU vector units). Activations arrive as run-time integer codes
and optional inputs as an empty placeholder plus a flag, so each kernel compiles once per
dtype.
"""

from __future__ import annotations

from numba import cuda, types
from numba.cuda.core import config as cuda_config

from .gate_math import activate, activation_derivative, cell_update, cell_update_backward

#: The largest output-tile edge a tiled kernel supports, and the width of the slices of the
#: reduction dimension it stages in shared memory (its shared arrays are this size; the launch
#: code may use any edge up to it).
MAX_TILE = 16
#: Each thread of :func:`gemm` computes this many rows times this many columns of its output.
GEMM_REGISTERS = 4
#: The largest output-tile edge of :func:`gemm` (a shared array's shape must be a constant).
GEMM_MAX_EDGE = MAX_TILE * GEMM_REGISTERS
#: :func:`_index_divmod` divides in 32 bits: the launch code keeps every index it is given
#: below this (``B * H`` for the per-step backward, ``B * 4H`` for the persistent kernels).
INDEX_LIMIT = 2 ** 32


# -- 32-bit index arithmetic ---------------------------------------------------------------------
# Numba types integer arithmetic in 64 bits, and a 64-bit division is a long software routine
# on a GPU (NVPTX at best adds a run-time test for operands that fit 32 bits). The per-step
# loops split flat indices into (row, column) every timestep, so they divide in 32 bits.

def _index_divmod_codegen(context, builder, signature, arguments):
    from llvmlite import ir
    word = ir.IntType(32)
    values = []
    for value, kind in zip(arguments, signature.args):
        if kind.bitwidth > 32:
            value = builder.trunc(value, word)
        elif kind.bitwidth < 32:
            value = builder.zext(value, word)
        values.append(value)
    quotient = builder.udiv(values[0], values[1])
    remainder = builder.urem(values[0], values[1])
    return context.make_tuple(builder, signature.return_type, (quotient, remainder))


def index_divmod_typer(typingctx, index, divisor):
    """The typing of :func:`_index_divmod` (also registered on the CPU target by the tests,
    which run its code generation there)."""
    if not isinstance(index, types.Integer) or not isinstance(divisor, types.Integer):
        return None
    return types.UniTuple(types.uint32, 2)(index, divisor), _index_divmod_codegen


def _python_divmod(index, divisor):
    """``(index // divisor, index % divisor)`` for ``0 <= index, divisor < 2**32``."""
    return index // divisor, index % divisor


try:
    from numba.cuda.extending import intrinsic as _cuda_intrinsic
except ImportError:        # a numba-cuda without the CUDA target's intrinsic: 64-bit division
    _cuda_intrinsic = None
if cuda_config.ENABLE_CUDASIM or _cuda_intrinsic is None:
    # The simulator runs kernels as Python, which has no use for (or way to run) LLVM code.
    _index_divmod = cuda.jit(device=True)(_python_divmod)
else:
    #: ``(index // divisor, index % divisor)`` as unsigned 32-bit division, for
    #: ``0 <= index < INDEX_LIMIT`` and ``0 < divisor < INDEX_LIMIT`` (what the launch code
    #: guarantees); returns two ``uint32``.
    _index_divmod = _cuda_intrinsic(index_divmod_typer)


@cuda.jit(cache=True)
def gemm(a, b, out, trans_a, trans_b, bias, add_bias):
    """``out (M, N) = op(a) @ op(b)``, plus ``bias (N,)`` on every row when ``add_bias``.

    ``op(a)`` is ``a.T`` when ``trans_a`` (then ``a`` is ``(K, M)``), else ``a`` (``(M, K)``);
    likewise ``op(b)`` is ``(K, N)``. Launch with square blocks ``(tile, tile)``,
    ``tile <= MAX_TILE``, over output tiles of edge ``tile * GEMM_REGISTERS``; the grid may have
    any size.

    Register-blocked: thread ``(tx, ty)`` accumulates the ``GEMM_REGISTERS x GEMM_REGISTERS``
    outputs at rows ``ty + i * tile`` and columns ``tx + jj * tile`` of its block's tile in
    registers, so every value read from shared memory feeds ``GEMM_REGISTERS`` products. The
    slices of ``op(a)`` and ``op(b)`` are staged in shared memory ``MAX_TILE`` values of ``K``
    at a time, loaded so that consecutive threads read consecutive addresses whichever
    operand is transposed.
    """
    tile = cuda.blockDim.x
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    threads = tile * tile
    tid = ty * tile + tx
    edge = tile * GEMM_REGISTERS
    a_tile = cuda.shared.array((GEMM_MAX_EDGE, MAX_TILE), dtype=out.dtype)
    b_tile = cuda.shared.array((MAX_TILE, GEMM_MAX_EDGE), dtype=out.dtype)
    acc = cuda.local.array((GEMM_REGISTERS, GEMM_REGISTERS), dtype=out.dtype)
    a_values = cuda.local.array(GEMM_REGISTERS, dtype=out.dtype)
    b_values = cuda.local.array(GEMM_REGISTERS, dtype=out.dtype)
    rows = out.shape[0]
    cols = out.shape[1]
    inner = a.shape[0] if trans_a else a.shape[1]
    zero = out.dtype.type(0)
    for row0 in range(cuda.blockIdx.y * edge, rows, cuda.gridDim.y * edge):
        for col0 in range(cuda.blockIdx.x * edge, cols, cuda.gridDim.x * edge):
            for i in range(GEMM_REGISTERS):
                for jj in range(GEMM_REGISTERS):
                    acc[i, jj] = zero
            for k0 in range(0, inner, MAX_TILE):
                # a_tile[r, kk] = op(a)[row0 + r, k0 + kk]: along k for a, along rows for a.T.
                for index in range(tid, edge * MAX_TILE, threads):
                    if trans_a:
                        kk = index // edge
                        r = index % edge
                    else:
                        r = index // MAX_TILE
                        kk = index % MAX_TILE
                    row = row0 + r
                    k = k0 + kk
                    if row < rows and k < inner:
                        a_tile[r, kk] = a[k, row] if trans_a else a[row, k]
                    else:
                        a_tile[r, kk] = zero
                # b_tile[kk, q] = op(b)[k0 + kk, col0 + q]: along columns for b, along k for b.T.
                for index in range(tid, edge * MAX_TILE, threads):
                    if trans_b:
                        q = index // MAX_TILE
                        kk = index % MAX_TILE
                    else:
                        kk = index // edge
                        q = index % edge
                    col = col0 + q
                    k = k0 + kk
                    if col < cols and k < inner:
                        b_tile[kk, q] = b[col, k] if trans_b else b[k, col]
                    else:
                        b_tile[kk, q] = zero
                cuda.syncthreads()
                for kk in range(MAX_TILE):
                    for i in range(GEMM_REGISTERS):
                        a_values[i] = a_tile[ty + i * tile, kk]
                    for jj in range(GEMM_REGISTERS):
                        b_values[jj] = b_tile[kk, tx + jj * tile]
                    for i in range(GEMM_REGISTERS):
                        for jj in range(GEMM_REGISTERS):
                            acc[i, jj] += a_values[i] * b_values[jj]
                cuda.syncthreads()
            for i in range(GEMM_REGISTERS):
                row = row0 + ty + i * tile
                for jj in range(GEMM_REGISTERS):
                    col = col0 + tx + jj * tile
                    if row < rows and col < cols:
                        value = acc[i, jj]
                        if add_bias:
                            value += bias[col]
                        out[row, col] = value


@cuda.jit(cache=True)
def forward_step(x_proj, t, recurrent_kernel, h_cur, h_next, c, mask, has_mask,
                 dropout, has_dropout, activation, recurrent_activation,
                 zero_output_for_mask, store, outputs, gates, cells, h_prev):
    """One timestep ``t`` for every row: recurrent product fused with the gates.

    Parameters
    ----------
    x_proj : (B, T, 4H), ``x @ kernel + bias``
    t : int, the input position processed
    recurrent_kernel : (H, 4H)
    h_cur : (B, H), read: the hidden state entering the step
    h_next : (B, H), written: the hidden state after it (a different buffer than ``h_cur``,
        since other blocks still read ``h_cur``)
    c : (B, H), updated in place (each element is read and written by one thread only)
    mask : bool (B, T), read when ``has_mask``;  dropout : (B, H), read when ``has_dropout``
    outputs : (B, T, H), written at ``t``
    gates (B, T, 4H), cells (B, T, H), h_prev (B, T, H) : written at ``t`` when ``store``

    Launch with square blocks ``(tile, tile)``: ``threadIdx.y`` walks the batch rows,
    ``threadIdx.x`` the units; each thread accumulates the four gate pre-activations of one
    ``(row, unit)`` over ``MAX_TILE``-wide slices of ``H`` held in shared memory.
    """
    tile = cuda.blockDim.x
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    h_tile = cuda.shared.array((MAX_TILE, MAX_TILE), dtype=c.dtype)
    w_tile = cuda.shared.array((4, MAX_TILE, MAX_TILE), dtype=c.dtype)
    batch = c.shape[0]
    units = c.shape[1]
    zero = c.dtype.type(0)
    for row0 in range(cuda.blockIdx.y * tile, batch, cuda.gridDim.y * tile):
        for col0 in range(cuda.blockIdx.x * tile, units, cuda.gridDim.x * tile):
            b = row0 + ty
            j = col0 + tx
            acc_i = zero
            acc_f = zero
            acc_g = zero
            acc_o = zero
            for k0 in range(0, units, MAX_TILE):
                for kk in range(tx, MAX_TILE, tile):
                    k = k0 + kk
                    if b < batch and k < units:
                        value = h_cur[b, k]
                        if has_dropout:
                            value *= dropout[b, k]
                        h_tile[ty, kk] = value
                    else:
                        h_tile[ty, kk] = zero
                for kk in range(ty, MAX_TILE, tile):
                    k = k0 + kk
                    if k < units and j < units:
                        for gate in range(4):
                            w_tile[gate, kk, tx] = recurrent_kernel[k, gate * units + j]
                    else:
                        for gate in range(4):
                            w_tile[gate, kk, tx] = zero
                cuda.syncthreads()
                for kk in range(MAX_TILE):
                    value = h_tile[ty, kk]
                    acc_i += value * w_tile[0, kk, tx]
                    acc_f += value * w_tile[1, kk, tx]
                    acc_g += value * w_tile[2, kk, tx]
                    acc_o += value * w_tile[3, kk, tx]
                cuda.syncthreads()
            if b < batch and j < units:
                _finish_step(x_proj, t, b, j, units, acc_i, acc_f, acc_g, acc_o, h_cur,
                             h_next, c, mask, has_mask, activation, recurrent_activation,
                             zero_output_for_mask, store, outputs, gates, cells, h_prev)


@cuda.jit(device=True, inline="always")
def _finish_step(x_proj, t, b, j, units, acc_i, acc_f, acc_g, acc_o, h_cur, h_next, c,
                 mask, has_mask, activation, recurrent_activation, zero_output_for_mask,
                 store, outputs, gates, cells, h_prev):
    """The gates, cell update, mask and cache writes of one ``(row b, unit j)`` at step ``t``,
    given the recurrent product's four sums."""
    h_old = h_cur[b, j]
    if store:
        h_prev[b, t, j] = h_old
    if has_mask and not mask[b, t]:
        # The state carries over; the output is the carried h, or zero.
        h_next[b, j] = h_old
        outputs[b, t, j] = c.dtype.type(0) if zero_output_for_mask else h_old
        if store:
            cells[b, t, j] = c[b, j]
        return
    i, f, g, o, c_new, h_new = cell_update(
        x_proj[b, t, j] + acc_i, x_proj[b, t, units + j] + acc_f,
        x_proj[b, t, 2 * units + j] + acc_g, x_proj[b, t, 3 * units + j] + acc_o,
        c[b, j], activation, recurrent_activation, activate)   # the generic update
    c[b, j] = c_new
    h_next[b, j] = h_new
    outputs[b, t, j] = h_new
    if store:
        gates[b, t, j] = i
        gates[b, t, units + j] = f
        gates[b, t, 2 * units + j] = g
        gates[b, t, 3 * units + j] = o
        cells[b, t, j] = c_new


@cuda.jit(cache=True)
def forward_persistent(x_proj, recurrent_kernel, h_buffers, c, mask, has_mask, dropout,
                       has_dropout, reverse, activation, recurrent_activation,
                       zero_output_for_mask, store, outputs, gates, cells, h_prev):
    """Every timestep in one launch: the persistent small-batch forward.

    Parameters
    ----------
    x_proj : (B, T, 4H), ``x @ kernel + bias``
    recurrent_kernel : (H, 4H)
    h_buffers : (2, B, H); ``h_buffers[0]`` holds ``h0`` on entry. Step ``s`` reads buffer
        ``s % 2`` and writes the other, so the final state is in ``h_buffers[T % 2]``.
    c : (B, H), ``c0`` on entry, the final cell state on exit
    the rest : as for :func:`forward_step`

    Launch cooperatively with blocks ``(units_per_block, B, k_split)``,
    ``ceil(H / units_per_block)`` blocks and
    ``(4 H units_per_block + B H + 4 units_per_block B k_split) * itemsize`` bytes of dynamic
    shared memory. Block ``k`` owns units ``[k * units_per_block, (k + 1) * units_per_block)``:
    it copies their columns of all four gates of ``recurrent_kernel`` into shared memory once;
    then, every step, its threads stage ``h_{t-1} * r`` (all rows, consecutive threads reading
    consecutive elements) in shared memory, thread ``(unit, row, part)`` sums the four gate
    products over every ``k_split``-th ``k`` starting at ``part`` (the reduction over ``H`` is
    split across warps, so that a block has enough threads even at batch 1), the parts are
    added in shared memory, part 0 finishes the step, and the grid waits at a grid-wide barrier
    until every block has written its part of ``h_t``.
    """
    per_block = cuda.blockDim.x
    rows_in_block = cuda.blockDim.y
    k_split = cuda.blockDim.z
    jl = cuda.threadIdx.x
    b = cuda.threadIdx.y
    part = cuda.threadIdx.z
    nthreads = per_block * rows_in_block * k_split
    tid = (part * rows_in_block + b) * per_block + jl
    batch = c.shape[0]
    units = c.shape[1]
    timesteps = x_proj.shape[1]
    j0 = cuda.blockIdx.x * per_block
    j = j0 + jl
    shared = cuda.shared.array(0, dtype=c.dtype)
    w_size = 4 * units * per_block
    h_base = w_size
    partial_base = h_base + batch * units
    # The four partial sums of thread (jl, b, part) live at partial_base + 4 * slot + gate.
    slot = (part * rows_in_block + b) * per_block + jl
    zero = c.dtype.type(0)
    # shared[(k * 4 + gate) * per_block + jl] = recurrent_kernel[k, gate * H + j0 + jl]
    for index in range(tid, w_size, nthreads):
        k = index // (4 * per_block)
        gate = (index // per_block) % 4
        column = j0 + index % per_block
        shared[index] = (recurrent_kernel[k, gate * units + column] if column < units
                         else zero)
    grid = cuda.cg.this_grid()
    for step in range(timesteps):
        t = timesteps - 1 - step if reverse else step
        h_cur = h_buffers[step % 2]
        h_next = h_buffers[(step + 1) % 2]
        for index in range(tid, batch * units, nthreads):
            row, k = _index_divmod(index, units)
            value = h_cur[row, k]
            if has_dropout:
                value *= dropout[row, k]
            shared[h_base + index] = value
        cuda.syncthreads()
        active = b < batch and j < units
        if active:
            acc_i = zero
            acc_f = zero
            acc_g = zero
            acc_o = zero
            h_row = h_base + b * units
            for k in range(part, units, k_split):
                value = shared[h_row + k]
                w_row = k * 4 * per_block + jl
                acc_i += value * shared[w_row]
                acc_f += value * shared[w_row + per_block]
                acc_g += value * shared[w_row + 2 * per_block]
                acc_o += value * shared[w_row + 3 * per_block]
            shared[partial_base + 4 * slot] = acc_i
            shared[partial_base + 4 * slot + 1] = acc_f
            shared[partial_base + 4 * slot + 2] = acc_g
            shared[partial_base + 4 * slot + 3] = acc_o
        cuda.syncthreads()
        if active and part == 0:
            acc_i = zero
            acc_f = zero
            acc_g = zero
            acc_o = zero
            for other in range(k_split):
                where = partial_base + 4 * ((other * rows_in_block + b) * per_block + jl)
                acc_i += shared[where]
                acc_f += shared[where + 1]
                acc_g += shared[where + 2]
                acc_o += shared[where + 3]
            _finish_step(x_proj, t, b, j, units, acc_i, acc_f, acc_g, acc_o, h_cur, h_next,
                         c, mask, has_mask, activation, recurrent_activation,
                         zero_output_for_mask, store, outputs, gates, cells, h_prev)
        # Every block's part of h_t is written (and the shared h and partial sums are no
        # longer read) before any block starts the next step.
        grid.sync()


@cuda.jit(cache=True)
def backward_step_gates(t, t_before, first, c0, mask, has_mask, zero_output_for_mask,
                        activation, recurrent_activation, gates, cells, grad_outputs, dh, dc,
                        dz_all):
    """The gate derivatives of step ``t`` for every ``(row, unit)`` (grid-stride, 1-D).

    ``dh``, ``dc`` (B, H): on entry the gradients reaching the states after step ``t`` from
    later steps; ``grad_outputs[:, t]`` is added here. On exit: at a masked ``(b, t)``, ``dh``
    holds the carried gradient and ``dz_all[b, t]`` is zero; otherwise ``dz_all[b, t]`` holds
    the pre-activation gradients and ``dc`` the gradient of the previous cell state (``dh`` of
    such rows is then replaced by :func:`backward_step_recurrent`). ``t_before`` is the step
    processed just before ``t``; ``first`` says that there is none (use ``c0``).
    """
    batch = dh.shape[0]
    units = dh.shape[1]
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for index in range(start, batch * units, stride):
        row, unit = _index_divmod(index, units)
        _gate_gradients(row, unit, t, t_before, first, c0, mask, has_mask,
                        zero_output_for_mask, activation, recurrent_activation, gates, cells,
                        grad_outputs, dh, dc, dz_all)


@cuda.jit(device=True, inline="always")
def _gate_gradients(b, j, t, t_before, first, c0, mask, has_mask, zero_output_for_mask,
                    activation, recurrent_activation, gates, cells, grad_outputs, dh, dc,
                    dz_all):
    """:func:`backward_step_gates` for one ``(row b, unit j)``."""
    units = dh.shape[1]
    grad_out = grad_outputs[b, t, j]
    if has_mask and not mask[b, t]:
        if not zero_output_for_mask:
            dh[b, j] += grad_out
        for gate in range(4):
            dz_all[b, t, gate * units + j] = dz_all.dtype.type(0)
        return
    c_prev = c0[b, j] if first else cells[b, t_before, j]
    dzi, dzf, dzg, dzo, dc_prev = cell_update_backward(
        gates[b, t, j], gates[b, t, units + j], gates[b, t, 2 * units + j],
        gates[b, t, 3 * units + j], cells[b, t, j], c_prev, dh[b, j] + grad_out,
        dc[b, j], activation, recurrent_activation, activate,
        activation_derivative)   # the generic update
    dz_all[b, t, j] = dzi
    dz_all[b, t, units + j] = dzf
    dz_all[b, t, 2 * units + j] = dzg
    dz_all[b, t, 3 * units + j] = dzo
    dc[b, j] = dc_prev


@cuda.jit(cache=True)
def backward_persistent(reverse, c0, mask, has_mask, zero_output_for_mask, activation,
                        recurrent_activation, gates, cells, grad_outputs, recurrent_kernel,
                        dropout, has_dropout, dh, dc, dz_all):
    """Every timestep of the backward in one launch: the persistent small-batch backward.

    ``dh``, ``dc`` (B, H) hold the gradients of the final states on entry and those of ``h0``,
    ``c0`` on exit; ``dz_all (B, T, 4H)`` receives the pre-activation gradients of every step
    (for the weight gradients computed afterwards). The other arguments are those of
    :func:`backward_step_gates` and :func:`backward_step_recurrent`.

    Launch cooperatively with blocks ``(units_per_block, B, k_split)``,
    ``ceil(H / units_per_block)`` blocks and
    ``(4 H units_per_block + 4 H B + units_per_block B k_split) * itemsize`` bytes of dynamic
    shared memory. Block ``k`` owns units ``[k * units_per_block, (k + 1) * units_per_block)``
    and keeps their rows of ``recurrent_kernel`` (all ``4H`` columns, gate-column-major so a
    warp reads consecutive words) in shared memory. Every step, processed last to first:

    1. part 0 of each ``(unit, row)`` thread computes the gate derivatives of its unit (as
       :func:`backward_step_gates` does), then the grid waits at a barrier, since the next
       phase reads every unit's ``dz``;
    2. the block stages ``dz[:, t]`` (all rows, all ``4H`` columns) in shared memory, thread
       ``(unit k, row, part)`` sums every ``k_split``-th term of ``dz[row, t] . W[k]``, the
       parts are added in shared memory, and part 0 writes ``dh[row, k] = sum * r[row, k]``
       (rows masked at ``t`` keep their ``dh``).

    The next step's phase 1 at ``(row, unit)`` reads only what the same thread wrote, so one
    grid-wide barrier per step suffices (block barriers guard the shared arrays).
    """
    per_block = cuda.blockDim.x
    rows_in_block = cuda.blockDim.y
    k_split = cuda.blockDim.z
    jl = cuda.threadIdx.x
    b = cuda.threadIdx.y
    part = cuda.threadIdx.z
    nthreads = per_block * rows_in_block * k_split
    tid = (part * rows_in_block + b) * per_block + jl
    batch = dh.shape[0]
    units = dh.shape[1]
    width = 4 * units
    timesteps = dz_all.shape[1]
    j0 = cuda.blockIdx.x * per_block
    j = j0 + jl
    shared = cuda.shared.array(0, dtype=dh.dtype)
    w_size = width * per_block
    dz_base = w_size
    partial_base = dz_base + batch * width
    zero = dh.dtype.type(0)
    # shared[g * per_block + jl] = recurrent_kernel[j0 + jl, g]
    for index in range(tid, w_size, nthreads):
        g = index // per_block
        row = j0 + index % per_block
        shared[index] = recurrent_kernel[row, g] if row < units else zero
    grid = cuda.cg.this_grid()
    active = b < batch and j < units
    for step in range(timesteps - 1, -1, -1):
        t = timesteps - 1 - step if reverse else step
        t_before = t + 1 if reverse else t - 1
        if active and part == 0:
            _gate_gradients(b, j, t, t_before, step == 0, c0, mask, has_mask,
                            zero_output_for_mask, activation, recurrent_activation, gates,
                            cells, grad_outputs, dh, dc, dz_all)
        grid.sync()
        for index in range(tid, batch * width, nthreads):
            row, g = _index_divmod(index, width)
            shared[dz_base + index] = dz_all[row, t, g]
        cuda.syncthreads()
        if active:
            acc = zero
            dz_row = dz_base + b * width
            for g in range(part, width, k_split):
                acc += shared[dz_row + g] * shared[g * per_block + jl]
            shared[partial_base + tid] = acc
        cuda.syncthreads()
        if active and part == 0 and not (has_mask and not mask[b, t]):
            acc = zero
            for other in range(k_split):
                acc += shared[partial_base + (other * rows_in_block + b) * per_block + jl]
            if has_dropout:
                acc *= dropout[b, j]
            dh[b, j] = acc
        # The staged dz and the partial sums are rewritten by the next step.
        cuda.syncthreads()


@cuda.jit(cache=True)
def backward_step_recurrent(t, dz_all, recurrent_kernel, mask, has_mask, dropout, has_dropout,
                            dh):
    """``dh[b] = (dz_all[b, t] @ recurrent_kernel.T) * r[b]`` for the rows processed at ``t``
    (masked rows keep ``dh``). Tiled like :func:`gemm`: square blocks, ``threadIdx.y`` rows,
    ``threadIdx.x`` hidden units, a reduction over the ``4H`` gate columns."""
    tile = cuda.blockDim.x
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    dz_tile = cuda.shared.array((MAX_TILE, MAX_TILE), dtype=dh.dtype)
    w_tile = cuda.shared.array((MAX_TILE, MAX_TILE), dtype=dh.dtype)
    batch = dh.shape[0]
    units = dh.shape[1]
    inner = 4 * units
    zero = dh.dtype.type(0)
    for row0 in range(cuda.blockIdx.y * tile, batch, cuda.gridDim.y * tile):
        for col0 in range(cuda.blockIdx.x * tile, units, cuda.gridDim.x * tile):
            b = row0 + ty
            k_out = col0 + tx
            acc = zero
            for g0 in range(0, inner, MAX_TILE):
                for gg in range(tx, MAX_TILE, tile):
                    g = g0 + gg
                    dz_tile[ty, gg] = dz_all[b, t, g] if b < batch and g < inner else zero
                # w_tile[gg, q] = recurrent_kernel[col0 + q, g0 + gg], loaded along a row of
                # recurrent_kernel by consecutive threads.
                for gg in range(tx, MAX_TILE, tile):
                    g = g0 + gg
                    w_row = col0 + ty
                    w_tile[gg, ty] = (recurrent_kernel[w_row, g] if g < inner and w_row < units
                                      else zero)
                cuda.syncthreads()
                for gg in range(MAX_TILE):
                    acc += dz_tile[ty, gg] * w_tile[gg, tx]
                cuda.syncthreads()
            if b < batch and k_out < units and not (has_mask and not mask[b, t]):
                if has_dropout:
                    acc *= dropout[b, k_out]
                dh[b, k_out] = acc


@cuda.jit(cache=True)
def scale_rows(values, scale, out):
    """``out[b, t, j] = values[b, t, j] * scale[b, j]`` (the dropout-masked hidden states)."""
    batch, timesteps, units = values.shape
    for index in range(cuda.grid(1), batch * timesteps * units, cuda.gridsize(1)):
        b = index // (timesteps * units)
        t = (index // units) % timesteps
        j = index % units
        out[b, t, j] = values[b, t, j] * scale[b, j]


@cuda.jit(cache=True)
def column_sums(values, out):
    """``out[j] = values[:, j].sum()`` for a 2-D ``values`` (the bias gradient), as a parallel
    reduction.

    Launch with square blocks ``(tile, tile)`` (``tile <= MAX_TILE``) on a 1-D grid: a block
    owns ``tile`` consecutive columns (``threadIdx.x``, so a warp reads consecutive addresses),
    its ``threadIdx.y`` threads split the rows between them, and their partial sums are added
    in shared memory by a tree over ``threadIdx.y``.
    """
    tile = cuda.blockDim.x
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    partial = cuda.shared.array((MAX_TILE, MAX_TILE), dtype=out.dtype)
    rows, cols = values.shape
    for col0 in range(cuda.blockIdx.x * tile, cols, cuda.gridDim.x * tile):
        j = col0 + tx
        acc = out.dtype.type(0)
        if j < cols:
            for i in range(ty, rows, tile):
                acc += values[i, j]
        partial[ty, tx] = acc
        cuda.syncthreads()
        stride = 1
        while stride < tile:      # the tree: the block's edge need not be a power of two
            if ty % (2 * stride) == 0 and ty + stride < tile:
                partial[ty, tx] += partial[ty + stride, tx]
            stride *= 2
            cuda.syncthreads()
        if ty == 0 and j < cols:
            out[j] = partial[0, tx]
        cuda.syncthreads()      # partial is reused by the next tile of columns


@cuda.jit(cache=True)
def copy_1d(source, out):
    """``out[...] = source`` for arrays of any strides (to make device inputs contiguous)."""
    for index in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[index] = source[index]


@cuda.jit(cache=True)
def copy_2d(source, out):
    """``out[...] = source`` for 2-D arrays of any strides."""
    rows, cols = out.shape
    for index in range(cuda.grid(1), rows * cols, cuda.gridsize(1)):
        out[index // cols, index % cols] = source[index // cols, index % cols]


@cuda.jit(cache=True)
def copy_3d(source, out):
    """``out[...] = source`` for 3-D arrays of any strides."""
    n0, n1, n2 = out.shape
    for index in range(cuda.grid(1), n0 * n1 * n2, cuda.gridsize(1)):
        i = index // (n1 * n2)
        j = (index // n2) % n1
        k = index % n2
        out[i, j, k] = source[i, j, k]
