"""The ``numpy`` backend: the reference implementation every other backend is tested against.

It is written to be read, not to be fast: a Python loop over time, whole-batch NumPy
expressions inside it, and the backward pass derived line by line from the forward. Its
correctness is established independently of the other backends (hand-computed numbers,
float64 finite differences, saved PyTorch results); see ``tests/``.
"""

from __future__ import annotations

import numpy as np

from .. import activations as A
from .base import Backend, ForwardResult, Gradients, SequenceCache


def activate(code: int, z: np.ndarray) -> np.ndarray:
    """Apply the activation named by ``code`` (see :mod:`numlstm.activations`) elementwise."""
    if code == A.TANH:
        return np.tanh(z)
    if code == A.SIGMOID:
        # exp(-log(1 + e^-z)) = 1/(1 + e^-z), without overflow for large |z|.
        return np.exp(-np.logaddexp(np.zeros_like(z), -z))
    if code == A.RELU:
        return np.maximum(z, np.zeros_like(z))
    if code == A.LINEAR:
        return z.copy()
    if code == A.HARD_SIGMOID:
        return np.clip(z / 6 + 0.5, 0, 1).astype(z.dtype, copy=False)
    if code == A.HARD_SIGMOID_KERAS2:
        return np.clip(0.2 * z + 0.5, 0, 1).astype(z.dtype, copy=False)
    raise ValueError(f"unknown activation code {code}")


def activation_derivative(code: int, y: np.ndarray) -> np.ndarray:
    """d act(z) / dz, expressed through the activation's *output* ``y = act(z)``.

    Every supported activation allows this, so the backward pass needs only the stored
    activated values. At the kinks of relu and the hard sigmoids the derivative is taken as 0.
    """
    one = np.ones_like(y)
    if code == A.TANH:
        return one - y * y
    if code == A.SIGMOID:
        return y * (one - y)
    if code == A.RELU:
        return (y > 0).astype(y.dtype)
    if code == A.LINEAR:
        return one
    if code in (A.HARD_SIGMOID, A.HARD_SIGMOID_KERAS2):
        slope = 1 / 6 if code == A.HARD_SIGMOID else 0.2
        return np.where((y > 0) & (y < 1), slope, 0).astype(y.dtype)
    raise ValueError(f"unknown activation code {code}")


def processing_order(timesteps: int, reverse: bool) -> range:
    """The time indices in the order they are processed."""
    return range(timesteps - 1, -1, -1) if reverse else range(timesteps)


class NumpyBackend(Backend):
    """Vectorised NumPy over the batch, a Python loop over time. float32 and float64."""

    name = "numpy"
    xp = np

    def asarray(self, array, dtype=None):
        return np.asarray(array, dtype=dtype)

    def to_numpy(self, array):
        return np.asarray(array)

    def describe(self) -> str:
        return "CPU (NumPy reference)"

    def lstm_forward(self, x, kernel, recurrent_kernel, bias, *, h0, c0, mask,
                     recurrent_dropout_mask, reverse, activation, recurrent_activation,
                     zero_output_for_mask, return_cache):
        batch, timesteps, _ = x.shape
        units = recurrent_kernel.shape[0]
        dtype = x.dtype
        if mask is None:
            mask = np.ones((batch, timesteps), dtype=bool)
        r = (np.ones((batch, units), dtype) if recurrent_dropout_mask is None
             else recurrent_dropout_mask)

        h, c = h0.copy(), c0.copy()
        outputs = np.zeros((batch, timesteps, units), dtype)
        gates = np.zeros((batch, timesteps, 4 * units), dtype)
        cells = np.zeros((batch, timesteps, units), dtype)
        h_prev = np.zeros((batch, timesteps, units), dtype)

        for t in processing_order(timesteps, reverse):
            h_prev[:, t] = h
            z = x[:, t] @ kernel + (h * r) @ recurrent_kernel + bias
            i = activate(recurrent_activation, z[:, 0 * units:1 * units])
            f = activate(recurrent_activation, z[:, 1 * units:2 * units])
            g = activate(activation, z[:, 2 * units:3 * units])
            o = activate(recurrent_activation, z[:, 3 * units:4 * units])
            c_new = f * c + i * g
            h_new = o * activate(activation, c_new)

            step = mask[:, t, None]
            c = np.where(step, c_new, c)
            h = np.where(step, h_new, h)
            # The output is the hidden state, carried over at masked steps, unless those are
            # to be zeros.
            outputs[:, t] = np.where(step, h_new, 0) if zero_output_for_mask else h
            gates[:, t] = np.concatenate([i, f, g, o], axis=1)
            cells[:, t] = c

        cache = None
        if return_cache:
            cache = SequenceCache(
                x=x, kernel=kernel, recurrent_kernel=recurrent_kernel, c0=c0, mask=mask,
                recurrent_dropout_mask=r, reverse=reverse,
                zero_output_for_mask=zero_output_for_mask, activation=activation,
                recurrent_activation=recurrent_activation, gates=gates, cells=cells,
                h_prev=h_prev, backend=self.name)
        return ForwardResult(outputs=outputs, h=h, c=c, cache=cache, backend=self.name)

    def lstm_backward(self, cache, *, grad_outputs, grad_h, grad_c):
        x, mask, r = cache.x, cache.mask, cache.recurrent_dropout_mask
        timesteps = x.shape[1]
        act, rec_act = cache.activation, cache.recurrent_activation

        dh = grad_h.copy()          # dL/dh_t flowing back through the state
        dc = grad_c.copy()          # dL/dc_t flowing back through the state
        dz_all = np.zeros_like(cache.gates)

        order = list(processing_order(timesteps, cache.reverse))
        for k in range(timesteps - 1, -1, -1):
            t = order[k]
            step = mask[:, t, None]
            c_prev = cache.c0 if k == 0 else cache.cells[:, order[k - 1]]

            # outputs[:, t] is h_t (carried over at masked steps), or zero there.
            if cache.zero_output_for_mask:
                dh = dh + np.where(step, grad_outputs[:, t], 0)
            else:
                dh = dh + grad_outputs[:, t]

            i, f, g, o = np.split(cache.gates[:, t], 4, axis=1)
            c_t = cache.cells[:, t]
            act_c = activate(act, c_t)

            do = dh * act_c
            dc_t = dc + dh * o * activation_derivative(act, act_c)
            di = dc_t * g
            df = dc_t * c_prev
            dg = dc_t * i
            dz = np.concatenate([
                di * activation_derivative(rec_act, i),
                df * activation_derivative(rec_act, f),
                dg * activation_derivative(act, g),
                do * activation_derivative(rec_act, o),
            ], axis=1)
            dz = np.where(step, dz, 0)
            dz_all[:, t] = dz

            dh = np.where(step, (dz @ cache.recurrent_kernel.T) * r, dh)
            dc = np.where(step, dc_t * f, dc)

        return Gradients(
            x=np.einsum("btg,dg->btd", dz_all, cache.kernel),
            kernel=np.einsum("btd,btg->dg", x, dz_all),
            recurrent_kernel=np.einsum("bth,btg->hg", cache.h_prev * r[:, None, :], dz_all),
            bias=dz_all.sum(axis=(0, 1)),
            h0=dh,
            c0=dc,
        )
