"""The ``@njit`` loops of the ``numba`` backend.

Layout: batch-major, as the user's arrays are, so no transposes are needed:
``x (B, T, D)``, ``outputs (B, T, H)``, per-step gate buffers ``(B, 4H)``.

Structure (the shape a fast CPU LSTM takes):

* forward: one GEMM projects every timestep's input at once, ``x (B·T, D) @ kernel``; the time
  loop then does one ``(B, H) @ (H, 4H)`` GEMM per step into a reused buffer, followed by a
  fused scalar loop for the gates and the cell update;
* backward: the time loop back-propagates the gates and does one ``(B, 4H) @ (4H, H)`` GEMM
  per step for the recurrent path; the weight and input gradients are then three large GEMMs
  over the whole sequence.

Optional inputs arrive as empty ``(0, 0)`` placeholders plus a flag, so that one compiled
specialisation per dtype serves every combination of options.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .gate_math import cell_update, cell_update_backward


@njit(cache=True)
def lstm_forward_kernel(x, kernel, recurrent_kernel, bias, h0, c0, mask, has_mask,
                        recurrent_dropout_mask, has_dropout, reverse, activation,
                        recurrent_activation, zero_output_for_mask, store,
                        outputs, h, c, gates, cells, h_prev):
    """Run the recurrence; results are written into the output arguments.

    Parameters
    ----------
    x : (B, T, D) C-contiguous;  kernel : (D, 4H);  recurrent_kernel : (H, 4H);  bias : (4H,)
    h0, c0 : (B, H)
    mask : bool (B, T), read only when ``has_mask``
    recurrent_dropout_mask : (B, H), read only when ``has_dropout``
    store : bool
        Whether to fill ``gates (B, T, 4H)``, ``cells (B, T, H)`` and ``h_prev (B, T, H)`` for
        the backward pass (they may be empty placeholders when False).
    outputs : (B, T, H), written
    h, c : (B, H), written with the final states
    """
    batch, timesteps, features = x.shape
    units = h0.shape[1]
    # Input projection of every timestep in one GEMM, with the bias folded in.
    x_proj = np.dot(x.reshape(batch * timesteps, features), kernel).reshape(
        batch, timesteps, 4 * units)
    x_proj += bias

    h[:, :] = h0
    c[:, :] = c0
    h_in = np.empty_like(h0)
    recurrent = np.empty((batch, 4 * units), dtype=x.dtype)

    for step in range(timesteps):
        t = timesteps - 1 - step if reverse else step
        if has_dropout:
            for b in range(batch):
                for j in range(units):
                    h_in[b, j] = h[b, j] * recurrent_dropout_mask[b, j]
            np.dot(h_in, recurrent_kernel, recurrent)
        else:
            np.dot(h, recurrent_kernel, recurrent)

        for b in range(batch):
            if store:
                for j in range(units):
                    h_prev[b, t, j] = h[b, j]
            if has_mask and not mask[b, t]:
                # The state carries over; the output is the carried h, or zero.
                for j in range(units):
                    outputs[b, t, j] = 0.0 if zero_output_for_mask else h[b, j]
                    if store:
                        cells[b, t, j] = c[b, j]
                continue
            for j in range(units):
                i, f, g, o, c_new, h_new = cell_update(
                    x_proj[b, t, j] + recurrent[b, j],
                    x_proj[b, t, units + j] + recurrent[b, units + j],
                    x_proj[b, t, 2 * units + j] + recurrent[b, 2 * units + j],
                    x_proj[b, t, 3 * units + j] + recurrent[b, 3 * units + j],
                    c[b, j], activation, recurrent_activation)
                c[b, j] = c_new
                h[b, j] = h_new
                outputs[b, t, j] = h_new
                if store:
                    gates[b, t, j] = i
                    gates[b, t, units + j] = f
                    gates[b, t, 2 * units + j] = g
                    gates[b, t, 3 * units + j] = o
                    cells[b, t, j] = c_new


@njit(cache=True)
def lstm_backward_kernel(x, kernel, recurrent_kernel, c0, mask, has_mask,
                         recurrent_dropout_mask, has_dropout, reverse, activation,
                         recurrent_activation, zero_output_for_mask, gates, cells, h_prev,
                         grad_outputs, grad_h, grad_c,
                         dx, dkernel, drecurrent_kernel, dbias, dh, dc):
    """Back-propagate through a sequence recorded by :func:`lstm_forward_kernel`.

    Parameters mirror the forward's; ``grad_outputs (B, T, H)``, ``grad_h``, ``grad_c (B, H)``
    are the upstream gradients. Written: ``dx (B, T, D)``, ``dkernel (D, 4H)``,
    ``drecurrent_kernel (H, 4H)``, ``dbias (4H,)``, ``dh``/``dc (B, H)`` (the gradients of the
    initial states).
    """
    batch, timesteps, features = x.shape
    units = c0.shape[1]
    dz_all = np.zeros((batch, timesteps, 4 * units), dtype=x.dtype)
    dz_step = np.zeros((batch, 4 * units), dtype=x.dtype)
    dh_recurrent = np.empty((batch, units), dtype=x.dtype)
    recurrent_kernel_t = recurrent_kernel.T
    dh[:, :] = grad_h
    dc[:, :] = grad_c

    for step in range(timesteps - 1, -1, -1):
        t = timesteps - 1 - step if reverse else step
        t_before = t + 1 if reverse else t - 1       # the step processed just before t
        for b in range(batch):
            if has_mask and not mask[b, t]:
                # The output here is the carried h (or zero): its gradient joins dh.
                if not zero_output_for_mask:
                    for j in range(units):
                        dh[b, j] += grad_outputs[b, t, j]
                for j in range(4 * units):
                    dz_step[b, j] = 0.0
                continue
            for j in range(units):
                c_prev = c0[b, j] if step == 0 else cells[b, t_before, j]
                dzi, dzf, dzg, dzo, dc_prev = cell_update_backward(
                    gates[b, t, j], gates[b, t, units + j], gates[b, t, 2 * units + j],
                    gates[b, t, 3 * units + j], cells[b, t, j], c_prev,
                    dh[b, j] + grad_outputs[b, t, j], dc[b, j], activation,
                    recurrent_activation)
                dz_step[b, j] = dzi
                dz_step[b, units + j] = dzf
                dz_step[b, 2 * units + j] = dzg
                dz_step[b, 3 * units + j] = dzo
                dc[b, j] = dc_prev
            for j in range(4 * units):
                dz_all[b, t, j] = dz_step[b, j]

        np.dot(dz_step, recurrent_kernel_t, dh_recurrent)
        for b in range(batch):
            if has_mask and not mask[b, t]:
                continue   # dh carries over to the state this row held before
            for j in range(units):
                if has_dropout:
                    dh[b, j] = dh_recurrent[b, j] * recurrent_dropout_mask[b, j]
                else:
                    dh[b, j] = dh_recurrent[b, j]

    # Whole-sequence GEMMs for the input and weight gradients.
    dz_flat = dz_all.reshape(batch * timesteps, 4 * units)
    np.dot(dz_flat, kernel.T, dx.reshape(batch * timesteps, features))
    np.dot(x.reshape(batch * timesteps, features).T, dz_flat, dkernel)
    if has_dropout:
        h_in = np.empty_like(h_prev)
        for b in range(batch):
            for t in range(timesteps):
                for j in range(units):
                    h_in[b, t, j] = h_prev[b, t, j] * recurrent_dropout_mask[b, j]
        np.dot(h_in.reshape(batch * timesteps, units).T, dz_flat, drecurrent_kernel)
    else:
        np.dot(h_prev.reshape(batch * timesteps, units).T, dz_flat, drecurrent_kernel)
    dbias[:] = dz_flat.sum(axis=0)
