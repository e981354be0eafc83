"""The ``@njit`` loops of the ``numba`` backend.

Layout: batch-major, as the user's arrays are, so no transposes are needed:
``x (B, T, D)``, ``outputs (B, T, H)``, gate buffers ``(B, T, 4H)``.

Structure (the shape a fast CPU LSTM takes on a few cores, docs/performance.md):

* :func:`forward_rows` and :func:`backward_rows` work on one contiguous range of batch rows
  and release the GIL; the caller splits the batch into one range per thread and runs the
  ranges on Python threads, each thread running the *whole* time loop for its rows (rows are
  independent through time, so the threads never wait for each other). Inside a range every
  matrix product is a single-threaded BLAS call: the caller keeps BLAS at one thread while
  these loops run, which is what avoids oversubscribing the cores with BLAS's own threads.
  (Python threads rather than ``prange``: the same compiled function serves one thread and
  many, so nothing extra is compiled; a ``parallel=True`` wrapper cost 20-30 s of cold
  compilation here.)
* forward, per chunk: one GEMM projects every timestep's input at once,
  ``x (rows·T, D) @ kernel``, into the gate buffer; the time loop then does one
  ``(rows, H) @ (H, 4H)`` GEMM per step, followed by a fused gate loop over the units.
* backward, per chunk: the time loop back-propagates through the gates and does one
  ``(rows, 4H) @ (4H, H)`` GEMM per step for the recurrent path; then the input gradient and
  the chunk's share of the weight gradients are large GEMMs over all its rows and timesteps,
  summed over chunks at the end.
* The gate math is :mod:`.gate_math`'s, called one row of units at a time (no loop here
  computes a gate): for the default activations (sigmoid gates, tanh) its default update
  (``lstm_gates_forward``/``lstm_gates_backward``: rational float32 tanh and sigmoid, pure
  arithmetic on unit-stride views), so LLVM emits packed vector code; ``error_model="numpy"``
  drops the division-by-zero checks that would otherwise block vectorisation (IEEE results
  instead of exceptions; no division here can be by zero). Other activations take its
  generic update (``cell_update_rows``/``cell_update_rows_backward`` given ``activate`` and
  ``activation_derivative``).

Optional inputs arrive as empty placeholders plus a flag, and activations as integer codes, so
one compiled specialisation per dtype serves every combination of options. Nothing is
allocated per timestep: the sequence loops' buffers are passed in (what is allocated here is
per call: a GEMM tile, a transposed copy of the recurrent kernel at one or two rows, and
:func:`lstm_step_kernel`'s one step of pre-activations).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..activations import SIGMOID, TANH
from . import mkl_blas, packed_gemm
from .gate_math import (activate, activation_derivative, cell_update_rows,
                        cell_update_rows_backward, lstm_gates_backward, lstm_gates_forward)

#: Compile options shared by every loop here (see the module docstring for error_model).
#: The small helpers are inlined into the few kernels called from Python (``inline="always"``),
#: so that only those kernels are compiled and cached: each cached function costs time to
#: load in every new process.
_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(inline="always", **_JIT)
def _copy(dst, src):
    """dst[:] = src for 1-D arrays, as a plain loop (no overlap check, no temporary)."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@njit(inline="always", **_JIT)
def _fill(dst, value):
    for j in range(dst.shape[0]):
        dst[j] = value


#: Chunks of at most this many rows do their per-step products with the loops below instead
#: of a BLAS call: at one or two rows a GEMM call costs more than the arithmetic.
SMALL_ROWS = 2


@njit(inline="always", **_JIT)
def _vec_mat_add(v, matrix, out):
    """out += v @ matrix for a vector ``v (K,)`` and ``matrix (K, N)``: vectorised
    multiply-adds over rows of ``matrix``, eight rows per pass over ``out`` so that ``out`` is
    loaded and stored once per eight multiply-adds (the right shape for one or two rows: at
    batch 1 this loop is bound by loads, one per multiply-add for the matrix plus ``out``'s;
    eight rows per pass measured ~10-15% faster than four at K = 32-64, N = 256)."""
    depth = matrix.shape[0]
    width = out.shape[0]
    # (A counted for-loop here: LLVM did not vectorise the same body under a while-loop.)
    for octet in range(depth // 8):
        k = 8 * octet
        v0, v1, v2, v3 = v[k], v[k + 1], v[k + 2], v[k + 3]
        v4, v5, v6, v7 = v[k + 4], v[k + 5], v[k + 6], v[k + 7]
        r0, r1, r2, r3 = matrix[k], matrix[k + 1], matrix[k + 2], matrix[k + 3]
        r4, r5, r6, r7 = matrix[k + 4], matrix[k + 5], matrix[k + 6], matrix[k + 7]
        for j in range(width):
            out[j] += ((v0 * r0[j] + v1 * r1[j]) + (v2 * r2[j] + v3 * r3[j])) + \
                ((v4 * r4[j] + v5 * r5[j]) + (v6 * r6[j] + v7 * r7[j]))
    for k in range(depth - depth % 8, depth):
        vk = v[k]
        row = matrix[k]
        for j in range(width):
            out[j] += vk * row[j]


@njit(inline="always", **_JIT)
def _gates_forward_row(z, c, h, units, activation, recurrent_activation):
    """One row's step, in place: ``z (4H,)`` holds the pre-activations and leaves holding the
    activated gates ``[i, f, g, o]``; ``c`` and ``h (H,)`` go from the previous to the new
    states. The default activations take the vectorised default update of :mod:`.gate_math`,
    any others its generic update."""
    zi, zf, zg, zo = z[:units], z[units:2 * units], z[2 * units:3 * units], z[3 * units:]
    if activation == TANH and recurrent_activation == SIGMOID:
        lstm_gates_forward(zi, zf, zg, zo, c, h)
    else:
        cell_update_rows(zi, zf, zg, zo, c, h, activation, recurrent_activation, activate)


# -- forward -----------------------------------------------------------------------------------
#
# One sequence pass is: project every timestep's input (one GEMM), then per timestep the
# recurrent product into the step's pre-activations and the gates row by row. The two
# flavours below differ only in how the recurrent product is done (OpenBLAS ``np.dot`` into a
# scratch buffer, or oneMKL's packed compute accumulating in place); everything else is the
# shared inline helpers.


@njit(inline="always", **_JIT)
def _project_inputs(row_start, row_stop, x, kernel, gates):
    """``gates[rows] = x[rows] @ kernel`` for every timestep, as one GEMM. (The bias is added
    per step, in :func:`_step_gates`, while the row is in cache: a separate pass over the
    whole ``(rows, T, 4H)`` buffer here cost ~10% of a forward at batch 32.)"""
    timesteps, features = x.shape[1], x.shape[2]
    rows = row_stop - row_start
    width = kernel.shape[1]
    z_chunk = gates[row_start:row_stop].reshape(rows * timesteps, width)
    np.dot(x[row_start:row_stop].reshape(rows * timesteps, features), kernel, z_chunk)


@njit(inline="always", **_JIT)
def _recurrent_source(row_start, row_stop, h, h_in, recurrent_dropout_mask, has_dropout):
    """The rows of ``h_{t-1}`` the recurrent product reads: ``h`` itself, or ``h * mask``
    (recurrent dropout) written into ``h_in``."""
    if not has_dropout:
        return h[row_start:row_stop]
    units = h.shape[1]
    for b in range(row_start, row_stop):
        for j in range(units):
            h_in[b, j] = h[b, j] * recurrent_dropout_mask[b, j]
    return h_in[row_start:row_stop]


@njit(inline="always", **_JIT)
def _step_gates(row_start, row_stop, t, bias, mask, has_mask, zero_output_for_mask, store,
                activation, recurrent_activation, outputs, h, c, gates, cells, h_prev,
                recurrent, add_recurrent):
    """Finish timestep ``t`` for rows ``row_start:row_stop`` once ``gates[b, t]`` holds the
    input projection (plus the recurrent product unless ``add_recurrent``, in which case
    ``recurrent[b]`` holds it): bias, masks, gates, new states, outputs, and what backward
    needs."""
    width = gates.shape[2]
    units = h.shape[1]
    for b in range(row_start, row_stop):
        h_b = h[b]
        c_b = c[b]
        out_b = outputs[b, t]
        if store:
            _copy(h_prev[b, t], h_b)
        if has_mask and not mask[b, t]:
            # The state carries over; the output is the carried h, or zero.
            if zero_output_for_mask:
                _fill(out_b, 0.0)
            else:
                _copy(out_b, h_b)
            if store:
                _copy(cells[b, t], c_b)
            continue
        z = gates[b, t]
        if add_recurrent:
            rec_b = recurrent[b]
            for j in range(width):
                z[j] += rec_b[j] + bias[j]
        else:
            for j in range(width):
                z[j] += bias[j]
        _gates_forward_row(z, c_b, h_b, units, activation, recurrent_activation)
        _copy(out_b, h_b)
        if store:
            _copy(cells[b, t], c_b)


@njit(**_JIT)
def forward_rows(row_start, row_stop, x, kernel, recurrent_kernel, bias, mask, has_mask,
                 recurrent_dropout_mask, has_dropout, reverse, activation,
                 recurrent_activation, zero_output_for_mask, store, outputs, h, c, gates,
                 cells, h_prev, recurrent, h_in):
    """Run the recurrence for batch rows ``row_start:row_stop``; results go into the outputs.

    Parameters
    ----------
    x : (B, T, D) C-contiguous;  kernel : (D, 4H);  recurrent_kernel : (H, 4H);  bias : (4H,)
    mask : bool (B, T), read only when ``has_mask``
    recurrent_dropout_mask : (B, H), read only when ``has_dropout``
    store : bool
        Whether to fill ``cells (B, T, H)`` and ``h_prev (B, T, H)`` for the backward pass
        (they may be empty placeholders when False).
    outputs : (B, T, H), written
    h, c : (B, H)
        Hold the initial states on entry and the final states on exit.
    gates : (B, T, 4H), written
        Scratch for the pre-activations; holds the activated gates ``[i, f, g, o]`` of every
        unmasked step on exit (the backward pass reads them when ``store``).
    recurrent : (B, 4H) and h_in : (B, H)
        Scratch.
    """
    timesteps = x.shape[1]
    rows = row_stop - row_start
    if rows <= 0 or timesteps == 0:
        return
    _project_inputs(row_start, row_stop, x, kernel, gates)
    rec_rows = recurrent[row_start:row_stop]
    for step in range(timesteps):
        t = timesteps - 1 - step if reverse else step
        source = _recurrent_source(row_start, row_stop, h, h_in, recurrent_dropout_mask,
                                   has_dropout)
        if rows <= SMALL_ROWS:
            for b in range(rows):
                _fill(rec_rows[b], 0.0)
                _vec_mat_add(source[b], recurrent_kernel, rec_rows[b])
        else:
            np.dot(source, recurrent_kernel, rec_rows)
        _step_gates(row_start, row_stop, t, bias, mask, has_mask, zero_output_for_mask, store,
                    activation, recurrent_activation, outputs, h, c, gates, cells, h_prev,
                    recurrent, True)


@njit(**_JIT)
def forward_rows_panels(row_start, row_stop, x, kernel_panels, recurrent_panels, bias, mask,
                        has_mask, recurrent_dropout_mask, has_dropout, reverse, activation,
                        recurrent_activation, zero_output_for_mask, store, outputs, h, c, gates,
                        cells, h_prev, h_in, block_rows):
    """:func:`forward_rows` with both products through numlstm's own packed GEMM (float32,
    :mod:`.packed_gemm`): ``kernel_panels`` and ``recurrent_panels`` are ``kernel`` and
    ``recurrent_kernel`` packed by :func:`.packed_gemm.pack_panels`. The input projection is
    one packed product over all rows and timesteps; then per timestep and per block of
    ``block_rows`` rows the recurrent product is added straight into the step's
    pre-activations, and the block's gates follow while they are in cache (the caller chooses
    ``block_rows``: all rows when the panels do not fit in L2)."""
    timesteps, features = x.shape[1], x.shape[2]
    rows = row_stop - row_start
    if rows <= 0 or timesteps == 0:
        return
    width = gates.shape[2]
    tile = np.empty((4, packed_gemm.PANEL), np.float32)
    packed_gemm.packed_matmul(x[row_start:row_stop].reshape(rows * timesteps, features),
                              kernel_panels,
                              gates[row_start:row_stop].reshape(rows * timesteps, width),
                              width, False, tile)
    for step in range(timesteps):
        t = timesteps - 1 - step if reverse else step
        source = _recurrent_source(row_start, row_stop, h, h_in, recurrent_dropout_mask,
                                   has_dropout)
        for block_start in range(row_start, row_stop, block_rows):
            block_stop = min(block_start + block_rows, row_stop)
            packed_gemm.packed_matmul(source[block_start - row_start:block_stop - row_start],
                                      recurrent_panels, gates[block_start:block_stop, t],
                                      width, True, tile)
            _step_gates(block_start, block_stop, t, bias, mask, has_mask, zero_output_for_mask,
                        store, activation, recurrent_activation, outputs, h, c, gates, cells,
                        h_prev, gates[0], False)   # (no recurrent buffer: a 2-D stand-in)


@njit(**_JIT)
def forward_rows_mkl(row_start, row_stop, x, kernel, packed_recurrent_kernel, bias, mask,
                        has_mask, recurrent_dropout_mask, has_dropout, reverse, activation,
                        recurrent_activation, zero_output_for_mask, store, outputs, h, c,
                        gates, cells, h_prev, h_in, block_rows):
    """:func:`forward_rows` with the recurrent product through oneMKL's packed GEMM (float32).

    ``packed_recurrent_kernel`` is ``recurrent_kernel (H, 4H)`` packed by
    :func:`numlstm.backends.mkl_blas.pack_b` for at least ``block_rows`` rows. Per timestep
    and per block of ``block_rows`` rows, ``sgemm_compute`` adds ``h_{t-1} @ U`` straight into
    the step's pre-activations (``beta = 1``: no scratch buffer, no add pass), and the block's
    gates follow while its pre-activations are still in cache. The caller chooses
    ``block_rows`` (all rows when the packed weights do not fit in L2).
    """
    timesteps = x.shape[1]
    rows = row_stop - row_start
    if rows <= 0 or timesteps == 0:
        return
    width = gates.shape[2]
    units = h.shape[1]
    _project_inputs(row_start, row_stop, x, kernel, gates)
    for step in range(timesteps):
        t = timesteps - 1 - step if reverse else step
        source = _recurrent_source(row_start, row_stop, h, h_in, recurrent_dropout_mask,
                                   has_dropout)
        for block_start in range(row_start, row_stop, block_rows):
            block_stop = min(block_start + block_rows, row_stop)
            mkl_blas.sgemm_compute(
                mkl_blas.ROW_MAJOR, mkl_blas.NO_TRANS, mkl_blas.PACKED,
                block_stop - block_start, width, units,
                source[block_start - row_start].ctypes.data, units,
                packed_recurrent_kernel.ctypes.data, width,
                np.float32(1.0), gates[block_start, t].ctypes.data, timesteps * width)
            _step_gates(block_start, block_stop, t, bias, mask, has_mask, zero_output_for_mask,
                        store, activation, recurrent_activation, outputs, h, c, gates, cells,
                        h_prev, gates[0], False)   # (no recurrent buffer: a 2-D stand-in)


# -- backward ----------------------------------------------------------------------------------


@njit(inline="always", **_JIT)
def _gates_backward_row(i_f_g_o, c_t, c_prev, dh, dc, dz, units, activation,
                        recurrent_activation):
    """One row's step backward, in place: from the activated gates ``(4H,)``, the cell states
    after and before the step and the gradients ``dh``/``dc (H,)`` reaching this step's
    ``h``/``c``, write the pre-activation gradients into ``dz (4H,)`` and turn ``dc`` into the
    gradient of the previous cell state (the default or the generic update of
    :mod:`.gate_math`, as in :func:`_gates_forward_row`)."""
    i, f, g, o = (i_f_g_o[:units], i_f_g_o[units:2 * units], i_f_g_o[2 * units:3 * units],
                  i_f_g_o[3 * units:])
    dzi, dzf, dzg, dzo = dz[:units], dz[units:2 * units], dz[2 * units:3 * units], dz[3 * units:]
    if activation == TANH and recurrent_activation == SIGMOID:
        lstm_gates_backward(i, f, g, o, c_t, c_prev, dh, dc, dzi, dzf, dzg, dzo)
    else:
        cell_update_rows_backward(i, f, g, o, c_t, c_prev, dh, dc, dzi, dzf, dzg, dzo,
                                  activation, recurrent_activation, activate,
                                  activation_derivative)


@njit(inline="always", **_JIT)
def _step_gates_backward(row_start, row_stop, step, t, t_before, mask, has_mask,
                         zero_output_for_mask, activation, recurrent_activation, c0, gates,
                         cells, grad_outputs, dh, dc, dz_all, dz_step):
    """Timestep ``t`` backward through the gates for rows ``row_start:row_stop``: adds the
    output's gradient into ``dh``, writes the pre-activation gradients into ``dz_step[b]`` and
    ``dz_all[b, t]`` (zeros at a masked step), and turns ``dc`` into the previous cell's."""
    units = c0.shape[1]
    for b in range(row_start, row_stop):
        dh_b = dh[b]
        go_b = grad_outputs[b, t]
        if has_mask and not mask[b, t]:
            # The output here is the carried h (or zero): its gradient joins dh.
            if not zero_output_for_mask:
                for j in range(units):
                    dh_b[j] += go_b[j]
            _fill(dz_step[b], 0.0)
            _fill(dz_all[b, t], 0.0)
            continue
        for j in range(units):
            dh_b[j] += go_b[j]
        c_prev = c0[b] if step == 0 else cells[b, t_before]
        _gates_backward_row(gates[b, t], cells[b, t], c_prev, dh_b, dc[b], dz_step[b],
                            units, activation, recurrent_activation)
        _copy(dz_all[b, t], dz_step[b])


@njit(inline="always", **_JIT)
def _carry_dh(row_start, row_stop, t, mask, has_mask, recurrent_dropout_mask, has_dropout,
              dh, dh_step):
    """``dh[b] = dh_step[b]`` (times the dropout mask) for the rows that took step ``t``;
    a masked row's ``dh`` carries over to the state it held before."""
    units = dh.shape[1]
    for b in range(row_start, row_stop):
        if has_mask and not mask[b, t]:
            continue
        dh_b = dh[b]
        new_b = dh_step[b]
        if has_dropout:
            r_b = recurrent_dropout_mask[b]
            for j in range(units):
                dh_b[j] = new_b[j] * r_b[j]
        else:
            _copy(dh_b, new_b)


@njit(inline="always", **_JIT)
def _input_and_weight_gradients(row_start, row_stop, x, kernel, recurrent_dropout_mask,
                                has_dropout, h_prev, dz_all, h_in_all, dx, dkernel,
                                drecurrent_kernel, dbias):
    """After the time loop: ``dx`` of these rows and their share of the weight gradients, as
    GEMMs over all their rows and timesteps."""
    timesteps, features = x.shape[1], x.shape[2]
    units = h_prev.shape[2]
    width = dz_all.shape[2]
    n = (row_stop - row_start) * timesteps
    dz_flat = dz_all[row_start:row_stop].reshape(n, width)
    np.dot(dz_flat, kernel.T, dx[row_start:row_stop].reshape(n, features))
    np.dot(x[row_start:row_stop].reshape(n, features).T, dz_flat, dkernel)
    if has_dropout:
        for b in range(row_start, row_stop):
            r_b = recurrent_dropout_mask[b]
            for t in range(timesteps):
                src = h_prev[b, t]
                dst = h_in_all[b, t]
                for j in range(units):
                    dst[j] = src[j] * r_b[j]
        h_in_flat = h_in_all[row_start:row_stop].reshape(n, units)
    else:
        h_in_flat = h_prev[row_start:row_stop].reshape(n, units)
    np.dot(h_in_flat.T, dz_flat, drecurrent_kernel)
    _fill(dbias, 0.0)
    for r in range(n):
        dz_r = dz_flat[r]
        for j in range(width):
            dbias[j] += dz_r[j]


@njit(**_JIT)
def backward_rows(row_start, row_stop, x, kernel, recurrent_kernel, c0, mask, has_mask,
                  recurrent_dropout_mask, has_dropout, reverse, activation,
                  recurrent_activation, zero_output_for_mask, gates, cells, h_prev,
                  grad_outputs, dh, dc, dz_all, dz_step, dh_step, h_in_all,
                  dx, dkernel, drecurrent_kernel, dbias):
    """Back-propagate batch rows ``row_start:row_stop`` through a sequence recorded by
    :func:`forward_rows`.

    Parameters mirror the forward's; ``grad_outputs (B, T, H)`` is the upstream gradient of
    the outputs. ``dh``/``dc (B, H)`` hold the upstream gradients of the final states on
    entry and the gradients of the initial states on exit. Scratch: ``dz_all (B, T, 4H)``,
    ``dz_step (B, 4H)``, ``dh_step (B, H)``, ``h_in_all (B, T, H)`` (used with dropout only).
    Written: this chunk's rows of ``dx (B, T, D)``, and this chunk's *share* of
    ``dkernel (D, 4H)``, ``drecurrent_kernel (H, 4H)``, ``dbias (4H,)`` (the caller sums the
    shares of all chunks).
    """
    timesteps = x.shape[1]
    rows = row_stop - row_start
    if rows <= 0 or timesteps == 0:
        return
    dz_rows = dz_step[row_start:row_stop]
    dh_rows = dh_step[row_start:row_stop]
    recurrent_kernel_t = recurrent_kernel.T
    if rows <= SMALL_ROWS:
        # (4H, H) contiguous, so the per-step product is row-wise multiply-adds as well.
        recurrent_kernel_t_copy = np.ascontiguousarray(recurrent_kernel_t)
    else:
        recurrent_kernel_t_copy = recurrent_kernel[:0]
    for step in range(timesteps - 1, -1, -1):
        t = timesteps - 1 - step if reverse else step
        t_before = t + 1 if reverse else t - 1       # the step processed just before t
        _step_gates_backward(row_start, row_stop, step, t, t_before, mask, has_mask,
                             zero_output_for_mask, activation, recurrent_activation, c0,
                             gates, cells, grad_outputs, dh, dc, dz_all, dz_step)
        if rows <= SMALL_ROWS:
            for b in range(rows):
                _fill(dh_rows[b], 0.0)
                _vec_mat_add(dz_rows[b], recurrent_kernel_t_copy, dh_rows[b])
        else:
            np.dot(dz_rows, recurrent_kernel_t, dh_rows)
        _carry_dh(row_start, row_stop, t, mask, has_mask, recurrent_dropout_mask, has_dropout,
                  dh, dh_step)
    _input_and_weight_gradients(row_start, row_stop, x, kernel, recurrent_dropout_mask,
                                has_dropout, h_prev, dz_all, h_in_all, dx, dkernel,
                                drecurrent_kernel, dbias)


@njit(**_JIT)
def backward_rows_panels(row_start, row_stop, x, kernel, recurrent_panels_t, c0, mask,
                         has_mask, recurrent_dropout_mask, has_dropout, reverse, activation,
                         recurrent_activation, zero_output_for_mask, gates, cells, h_prev,
                         grad_outputs, dh, dc, dz_all, dz_step, dh_step, h_in_all,
                         dx, dkernel, drecurrent_kernel, dbias):
    """:func:`backward_rows` with the per-step ``dz (rows, 4H) @ U.T`` through numlstm's own
    packed GEMM (float32): ``recurrent_panels_t`` is ``recurrent_kernel.T`` packed by
    :func:`.packed_gemm.pack_panels`."""
    timesteps = x.shape[1]
    rows = row_stop - row_start
    if rows <= 0 or timesteps == 0:
        return
    units = c0.shape[1]
    tile = np.empty((4, packed_gemm.PANEL), np.float32)
    for step in range(timesteps - 1, -1, -1):
        t = timesteps - 1 - step if reverse else step
        t_before = t + 1 if reverse else t - 1
        _step_gates_backward(row_start, row_stop, step, t, t_before, mask, has_mask,
                             zero_output_for_mask, activation, recurrent_activation, c0,
                             gates, cells, grad_outputs, dh, dc, dz_all, dz_step)
        packed_gemm.packed_matmul(dz_step[row_start:row_stop], recurrent_panels_t,
                                  dh_step[row_start:row_stop], units, False, tile)
        _carry_dh(row_start, row_stop, t, mask, has_mask, recurrent_dropout_mask, has_dropout,
                  dh, dh_step)
    _input_and_weight_gradients(row_start, row_stop, x, kernel, recurrent_dropout_mask,
                                has_dropout, h_prev, dz_all, h_in_all, dx, dkernel,
                                drecurrent_kernel, dbias)


@njit(**_JIT)
def backward_rows_mkl(row_start, row_stop, x, kernel, packed_recurrent_kernel_t, c0, mask,
                      has_mask, recurrent_dropout_mask, has_dropout, reverse, activation,
                      recurrent_activation, zero_output_for_mask, gates, cells, h_prev,
                      grad_outputs, dh, dc, dz_all, dz_step, dh_step, h_in_all,
                      dx, dkernel, drecurrent_kernel, dbias):
    """:func:`backward_rows` with the per-step ``dz (rows, 4H) @ U.T`` through oneMKL's packed
    GEMM (float32): ``packed_recurrent_kernel_t`` is ``recurrent_kernel`` packed transposed by
    :func:`numlstm.backends.mkl_blas.pack_b` for at least ``row_stop - row_start`` rows."""
    timesteps = x.shape[1]
    rows = row_stop - row_start
    if rows <= 0 or timesteps == 0:
        return
    units = c0.shape[1]
    width = 4 * units
    for step in range(timesteps - 1, -1, -1):
        t = timesteps - 1 - step if reverse else step
        t_before = t + 1 if reverse else t - 1
        _step_gates_backward(row_start, row_stop, step, t, t_before, mask, has_mask,
                             zero_output_for_mask, activation, recurrent_activation, c0,
                             gates, cells, grad_outputs, dh, dc, dz_all, dz_step)
        mkl_blas.sgemm_compute(
            mkl_blas.ROW_MAJOR, mkl_blas.NO_TRANS, mkl_blas.PACKED, rows, units, width,
            dz_step[row_start].ctypes.data, width, packed_recurrent_kernel_t.ctypes.data, units,
            np.float32(0.0), dh_step[row_start].ctypes.data, units)
        _carry_dh(row_start, row_stop, t, mask, has_mask, recurrent_dropout_mask, has_dropout,
                  dh, dh_step)
    _input_and_weight_gradients(row_start, row_stop, x, kernel, recurrent_dropout_mask,
                                has_dropout, h_prev, dz_all, h_in_all, dx, dkernel,
                                drecurrent_kernel, dbias)


@njit(**_JIT)
def lstm_step_kernel(x_t, kernel, recurrent_kernel, bias, h, c, activation,
                     recurrent_activation, out_h, out_c):
    """One timestep for every row: ``(x_t (B, D), h, c (B, H)) -> out_h, out_c (B, H)``.

    ``out_h``/``out_c`` may be ``h``/``c`` themselves: each row's pre-activations are complete
    before any of its states is written, and unit ``j`` of the cell update reads only unit
    ``j`` of ``c``. A few rows use register-friendly loops (no BLAS call overhead, which
    dominates at batch 1); larger batches use two GEMMs.
    """
    batch, features = x_t.shape
    units = h.shape[1]
    width = 4 * units
    if batch >= 8:
        z_all = np.dot(x_t, kernel)
        z_all += np.dot(h, recurrent_kernel)
        for b in range(batch):
            z = z_all[b]
            for j in range(width):
                z[j] += bias[j]
    else:
        z_all = np.empty((batch, width), dtype=h.dtype)
        for b in range(batch):
            z = z_all[b]
            _copy(z, bias)
            _vec_mat_add(x_t[b], kernel, z)
            _vec_mat_add(h[b], recurrent_kernel, z)
    for b in range(batch):
        # The new cell state lands in out_c (possibly c itself, where this copy is a no-op).
        out_c_b = out_c[b]
        _copy(out_c_b, c[b])
        _gates_forward_row(z_all[b], out_c_b, out_h[b], units, activation,
                           recurrent_activation)


@njit(**_JIT)
def forward_small(x, kernel, recurrent_kernel, bias, h, c, outputs, reverse, activation,
                  recurrent_activation, zs, project_with_blas):
    """Inference over a few rows (no mask, no recurrent dropout, nothing stored for the
    backward pass) in one compiled call, whose only scratch is the caller's ``zs``.

    Per row: first every step's input projection ``bias + x_t @ kernel`` into one ``(T, 4H)``
    buffer, then the recurrence, which reads only ``recurrent_kernel`` per step (64 KB at
    H = 64 in float32: from L2, the per-step bound at batch 1) and applies the gates straight
    away. The projection is one BLAS GEMM when ``project_with_blas`` (the caller then holds
    BLAS at one thread: worth it for long sequences, where the GEMM is ~3x faster than the
    loop below), else vectorised multiply-adds (no BLAS call at all: short sequences, where
    holding the BLAS thread settings would cost more than the whole call).

    Parameters
    ----------
    x : (B, T, D);  kernel : (D, 4H);  recurrent_kernel : (H, 4H);  bias : (4H,)
    h, c : (B, H)
        Hold the initial states on entry and the final states on exit.
    outputs : (B, T, H), written
    zs : (T, 4H)
        Scratch (kept by the caller between calls, like the other paths' gate buffers).
    """
    batch, timesteps, features = x.shape
    units = h.shape[1]
    for b in range(batch):
        h_b = h[b]
        c_b = c[b]
        if project_with_blas:
            np.dot(x[b], kernel, zs)
            for t in range(timesteps):
                z = zs[t]
                for j in range(4 * units):
                    z[j] += bias[j]
        else:
            for t in range(timesteps):
                z = zs[t]
                _copy(z, bias)
                _vec_mat_add(x[b, t], kernel, z)
        for step in range(timesteps):
            t = timesteps - 1 - step if reverse else step
            z = zs[t]
            _vec_mat_add(h_b, recurrent_kernel, z)
            _gates_forward_row(z, c_b, h_b, units, activation, recurrent_activation)
            _copy(outputs[b, t], h_b)
