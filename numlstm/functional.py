"""Stateless LSTM functions for users who hold their own weights.

>>> from numlstm.functional import lstm_forward, lstm_backward
>>> result = lstm_forward(x, kernel, recurrent_kernel, bias, return_cache=True)
>>> grads = lstm_backward(result.cache, grad_outputs=dy)
>>> grads.kernel.shape == kernel.shape
True

Both validate every argument (clear ``ValueError``/``TypeError``) and then dispatch to a backend
(``backend=`` or the one in use, see :func:`numlstm.get_backend`).
"""

from __future__ import annotations

import numpy as np

from . import validation as V
from .backends import (BACKEND_NAMES, ForwardResult, Gradients, SequenceCache,
                       get_backend)

__all__ = ["lstm_forward", "lstm_backward", "ForwardResult", "Gradients"]


def lstm_forward(x, kernel, recurrent_kernel, bias=None, *, h0=None, c0=None, mask=None,
                 reverse=False, activation="tanh", recurrent_activation="sigmoid",
                 recurrent_dropout_mask=None, zero_output_for_mask=False, return_cache=False,
                 backend=None) -> ForwardResult:
    """Run one LSTM layer in one direction over a batch of sequences.

    Equations (gate order i, f, c, o as in Keras; σ = ``recurrent_activation``,
    act = ``activation``, r = ``recurrent_dropout_mask`` or 1)::

        z_t = x_t @ kernel + (h_{t-1} * r) @ recurrent_kernel + bias
        i, f, g, o = σ(z[:, :H]), σ(z[:, H:2H]), act(z[:, 2H:3H]), σ(z[:, 3H:])
        c_t = f * c_{t-1} + i * g
        h_t = o * act(c_t)

    Parameters
    ----------
    x : array (batch, timesteps, features), float32 or float64
        The input; its dtype is the computation's dtype and every other array is cast to it.
        To compute in float64 with float32 weights, widen the weights *before* any arithmetic
        on them (e.g. summing two biases), or the float32 rounding is kept.
    kernel : array (features, 4*units)
    recurrent_kernel : array (units, 4*units)
    bias : array (4*units,), optional (zeros when None)
    h0, c0 : array (batch, units), optional
        Initial hidden and cell states (zeros when None).
    mask : bool array (batch, timesteps), optional
        True where a step is processed. Any pattern is allowed. At a masked step the states
        carry over unchanged and the output is the carried hidden state (``h0`` before the
        first processed step), or zero when ``zero_output_for_mask`` is True.
    reverse : bool
        Process the timesteps from last to first. ``outputs`` stays aligned with the input:
        ``outputs[:, t]`` is produced while ``x[:, t]`` is processed.
    activation, recurrent_activation : str
        See :mod:`numlstm.activations`.
    recurrent_dropout_mask : array (batch, units), optional
        Multiplier for ``h_{t-1}`` where it enters the recurrent product (already scaled by
        ``1/(1 - rate)``).
    zero_output_for_mask : bool
    return_cache : bool
        Keep what :func:`lstm_backward` needs in ``result.cache``. The cache refers to the
        arrays passed here rather than copying them: change them in place only after the
        backward pass.
    backend : str, optional
        The backend to run on; default: the backend in use.

    Returns
    -------
    ForwardResult
        ``outputs`` (batch, timesteps, units), final ``h`` and ``c`` (batch, units), ``cache``,
        and ``backend``, the name of the backend that ran.
    """
    x = V.check_sequence_input(x, argument="x")
    batch, timesteps, features = x.shape
    dtype = x.dtype
    recurrent_kernel = V.check_recurrent_kernel(recurrent_kernel, dtype)
    units = recurrent_kernel.shape[0]
    kernel = V.check_shape(V.as_float_array(kernel, "kernel", dtype), "kernel",
                           (features, 4 * units), "(features, 4*units)")
    bias = (np.zeros(4 * units, dtype) if bias is None else
            V.check_shape(V.as_float_array(bias, "bias", dtype), "bias", (4 * units,),
                          "(4*units,)"))
    h0 = (np.zeros((batch, units), dtype) if h0 is None
          else V.check_state(h0, "h0", batch, units, dtype))
    c0 = (np.zeros((batch, units), dtype) if c0 is None
          else V.check_state(c0, "c0", batch, units, dtype))
    chosen = get_backend(None if backend is None else V.check_name(backend, "backend",
                                                                   BACKEND_NAMES))
    options = dict(
        mask=V.check_mask(mask, batch, timesteps),
        recurrent_dropout_mask=V.check_recurrent_dropout_mask(recurrent_dropout_mask, batch,
                                                              units, dtype),
        reverse=V.check_bool(reverse, "reverse"),
        activation=V.check_activation(activation, "activation"),
        recurrent_activation=V.check_activation(recurrent_activation, "recurrent_activation"),
        zero_output_for_mask=V.check_bool(zero_output_for_mask, "zero_output_for_mask"),
        return_cache=V.check_bool(return_cache, "return_cache"))

    def to_backend(array):
        return None if array is None else chosen.asarray(array)
    for name in ("mask", "recurrent_dropout_mask"):
        options[name] = to_backend(options[name])
    return chosen.lstm_forward(to_backend(x), to_backend(kernel), to_backend(recurrent_kernel),
                               to_backend(bias), h0=to_backend(h0), c0=to_backend(c0),
                               **options)


def lstm_backward(cache, *, grad_outputs=None, grad_h=None, grad_c=None,
                  backend=None) -> Gradients:
    """Gradients of a loss through one :func:`lstm_forward` call.

    Parameters
    ----------
    cache : the ``cache`` of ``lstm_forward(..., return_cache=True)``
        It remembers the backend that made it; the backward runs there too. It refers to the
        forward's input arrays rather than copying them: modify them in place only after the
        backward pass.
    grad_outputs : array (batch, timesteps, units), optional
        dL/d outputs (zeros when None).
    grad_h, grad_c : array (batch, units), optional
        dL/d of the final states (zeros when None).
    backend : str, optional
        Must name the backend that ran the forward when given (the backward always runs
        there); a different name is an error rather than a silent switch.

    Returns
    -------
    Gradients
        ``x`` (batch, timesteps, features), ``kernel`` (features, 4*units),
        ``recurrent_kernel`` (units, 4*units), ``bias`` (4*units,), ``h0`` and ``c0``
        (batch, units).
    """
    if not isinstance(cache, SequenceCache):
        raise TypeError("cache must be the .cache of lstm_forward(..., return_cache=True); "
                        f"got {type(cache).__name__}")
    if backend is not None and V.check_name(backend, "backend", BACKEND_NAMES) != \
            cache.backend:
        raise ValueError(f"backend must be the one that ran the forward, {cache.backend!r}; "
                         f"got backend={backend!r}")
    batch, timesteps, _, units = cache.problem_shape
    dtype = cache.dtype
    chosen = get_backend(cache.backend)
    grad_outputs = V.check_upstream_gradient(grad_outputs, "grad_outputs",
                                             (batch, timesteps, units),
                                             "(batch, timesteps, units)", dtype)
    grad_h = V.check_upstream_gradient(grad_h, "grad_h", (batch, units), "(batch, units)",
                                       dtype)
    grad_c = V.check_upstream_gradient(grad_c, "grad_c", (batch, units), "(batch, units)",
                                       dtype)
    return chosen.lstm_backward(cache, grad_outputs=chosen.asarray(grad_outputs),
                                grad_h=chosen.asarray(grad_h), grad_c=chosen.asarray(grad_c))
