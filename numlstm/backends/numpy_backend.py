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
    dtype = z.dtype
    if code == A.SOFTSIGN:
        return z / (1 + np.abs(z))
    if code in (A.ELU, A.SELU):
        # exp only of the non-positive part: no overflow warning for large positive z.
        negative = np.expm1(np.minimum(z, 0))
        y = np.where(z > 0, z, negative)
        if code == A.SELU:
            y = A.SELU_SCALE * np.where(z > 0, z, A.SELU_ALPHA * negative)
        return y.astype(dtype, copy=False)
    if code == A.EXPONENTIAL:
        return np.exp(z)
    if code == A.SOFTPLUS:
        return np.logaddexp(np.zeros_like(z), z)
    if code == A.RELU6:
        return np.clip(z, 0, 6).astype(dtype, copy=False)
    if code == A.LEAKY_RELU:
        return np.where(z > 0, z, A.LEAKY_RELU_SLOPE * z).astype(dtype, copy=False)
    if code == A.HARD_TANH:
        return np.clip(z, -1, 1).astype(dtype, copy=False)
    if code == A.LOG_SIGMOID:
        return -np.logaddexp(np.zeros_like(z), -z)
    raise ValueError(f"unknown activation code {code}")


def activation_derivative(code: int, y: np.ndarray) -> np.ndarray:
    """d act(z) / dz, expressed through the activation's *output* ``y = act(z)``.

    Every supported activation allows this, so the backward pass needs only the stored
    activated values. At the kinks of relu, relu6, hard_tanh and the hard sigmoids the
    derivative is taken as 0; leaky_relu's is its negative slope there.
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
    if code == A.SOFTSIGN:                      # 1/(1+|z|)^2 = (1-|y|)^2
        return (one - np.abs(y)) ** 2
    if code == A.ELU:                           # exp(z) = y + 1 for z <= 0
        return np.where(y > 0, one, y + one)
    if code == A.SELU:                          # λ α exp(z) = y + λ α for z <= 0
        return np.where(y > 0, A.SELU_SCALE, y + A.SELU_SCALE * A.SELU_ALPHA).astype(y.dtype)
    if code == A.EXPONENTIAL:
        return y.copy()
    if code == A.SOFTPLUS:                      # σ(z) = 1 - exp(-y)
        return -np.expm1(-y)
    if code == A.RELU6:
        return ((y > 0) & (y < 6)).astype(y.dtype)
    if code == A.LEAKY_RELU:                    # the negative slope at the kink too
        return np.where(y > 0, one, A.LEAKY_RELU_SLOPE).astype(y.dtype)
    if code == A.HARD_TANH:
        return ((y > -1) & (y < 1)).astype(y.dtype)
    if code == A.LOG_SIGMOID:                   # σ(-z) = 1 - σ(z) = 1 - exp(y)
        return -np.expm1(y)
    raise ValueError(f"unknown activation code {code}")


def gate_update(z, c_prev, activation, recurrent_activation):
    """One step's gates and states from its pre-activations, for every row.

    ``z (B, 4H)`` holds the pre-activations ``[z_i | z_f | z_g | z_o]`` and ``c_prev (B, H)``
    the cell state before the step. Returns ``(gates, c, h)``: ``gates (B, 4H) = [i | f | g |
    o]`` with ``i = σ(z_i)``, ``f = σ(z_f)``, ``g = act(z_g)``, ``o = σ(z_o)`` (σ the recurrent
    activation, act the activation), ``c = f*c_prev + i*g`` and ``h = o*act(c)``, both
    ``(B, H)``. Masks are the caller's: every row takes the step.
    """
    units = c_prev.shape[1]
    i = activate(recurrent_activation, z[:, 0 * units:1 * units])
    f = activate(recurrent_activation, z[:, 1 * units:2 * units])
    g = activate(activation, z[:, 2 * units:3 * units])
    o = activate(recurrent_activation, z[:, 3 * units:4 * units])
    c = f * c_prev + i * g
    h = o * activate(activation, c)
    return np.concatenate([i, f, g, o], axis=1), c, h


def gate_update_backward(gates, c, c_prev, dh, dc, activation, recurrent_activation):
    """Back-propagate :func:`gate_update` for every row.

    From the step's ``gates (B, 4H)``, its cell states after (``c``) and before (``c_prev``)
    and the gradients ``dh``, ``dc (B, H)`` reaching its ``h`` and ``c``, returns
    ``(dz, dc_prev)``: the pre-activation gradients ``dz (B, 4H)`` and the gradient of
    ``c_prev (B, H)``::

        dc_t = dc + dh*o*act'(c)
        dz = [dc_t*g*σ'(z_i) | dc_t*c_prev*σ'(z_f) | dc_t*i*act'(z_g) | dh*act(c)*σ'(z_o)]
        dc_prev = dc_t*f

    each derivative written through the activation's output (:func:`activation_derivative`).
    """
    i, f, g, o = np.split(gates, 4, axis=1)
    act_c = activate(activation, c)

    do = dh * act_c
    dc_t = dc + dh * o * activation_derivative(activation, act_c)
    di = dc_t * g
    df = dc_t * c_prev
    dg = dc_t * i
    dz = np.concatenate([
        di * activation_derivative(recurrent_activation, i),
        df * activation_derivative(recurrent_activation, f),
        dg * activation_derivative(activation, g),
        do * activation_derivative(recurrent_activation, o),
    ], axis=1)
    return dz, dc_t * f


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
            step_gates, c_new, h_new = gate_update(z, c, activation, recurrent_activation)

            step = mask[:, t, None]
            c = np.where(step, c_new, c)
            h = np.where(step, h_new, h)
            # The output is the hidden state, carried over at masked steps, unless those are
            # to be zeros.
            outputs[:, t] = np.where(step, h_new, 0) if zero_output_for_mask else h
            gates[:, t] = step_gates
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

            dz, dc_prev = gate_update_backward(cache.gates[:, t], cache.cells[:, t], c_prev, dh,
                                               dc, act, rec_act)
            dz = np.where(step, dz, 0)
            dz_all[:, t] = dz

            dh = np.where(step, (dz @ cache.recurrent_kernel.T) * r, dh)
            dc = np.where(step, dc_prev, dc)

        return Gradients(
            x=np.einsum("btg,dg->btd", dz_all, cache.kernel),
            kernel=np.einsum("btd,btg->dg", x, dz_all),
            recurrent_kernel=np.einsum("bth,btg->hg", cache.h_prev * r[:, None, :], dz_all),
            bias=dz_all.sum(axis=(0, 1)),
            h0=dh,
            c0=dc,
        )
