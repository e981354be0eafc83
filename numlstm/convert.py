"""Exact weight conversion between PyTorch's ``nn.LSTM`` layout and numlstm's (Keras) layout.

numlstm keeps one layer's weights as Keras does::

    kernel            (features, 4*units)
    recurrent_kernel  (units, 4*units)
    bias              (4*units,)

with the gate blocks in the order i, f, c, o. PyTorch's ``nn.LSTM`` stores, per layer and
direction::

    weight_ih_l{k}[_reverse]  (4*hidden_size, input_size)
    weight_hh_l{k}[_reverse]  (4*hidden_size, hidden_size)
    bias_ih_l{k}[_reverse]    (4*hidden_size,)
    bias_hh_l{k}[_reverse]    (4*hidden_size,)

with the gate blocks in the order i, f, g, o -- the same order, so a conversion is a transpose
plus, for the bias, a sum (PyTorch adds its two biases before every gate activation)::

    kernel = weight_ih.T      recurrent_kernel = weight_hh.T      bias = bias_ih + bias_hh

Only NumPy is used; torch is never imported. Anything ``np.asarray`` accepts can be passed, for
instance ``tensor.detach().cpu().numpy()`` or the tensors of ``module.state_dict()``.

>>> import numpy as np
>>> from numlstm.convert import from_torch, to_torch
>>> H, D = 3, 2
>>> w_ih, w_hh = np.ones((4 * H, D)), np.ones((4 * H, H))
>>> kernel, recurrent_kernel, bias = from_torch(w_ih, w_hh)
>>> kernel.shape, recurrent_kernel.shape, bias.shape
((2, 12), (3, 12), (12,))
>>> sorted(to_torch(kernel, recurrent_kernel, bias))
['bias_hh', 'bias_ih', 'weight_hh', 'weight_ih']
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from . import validation as V

__all__ = ["from_torch", "to_torch", "from_torch_state_dict"]


def _transposed_copy(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    # Always copy: a transpose of a (n, 1) array is itself C-contiguous, and returning a view
    # would let a later in-place update of the result change the caller's source weights.
    return np.array(array.T, dtype=dtype, order="C", copy=True)


def from_torch(weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
               dtype=None) -> list[np.ndarray]:
    """Convert one layer and direction of a PyTorch ``nn.LSTM`` to numlstm's layout.

    Parameters
    ----------
    weight_ih : array-like (4*H, D)
        PyTorch's input-hidden weights (``weight_ih_l{k}``), gate blocks i, f, g, o.
    weight_hh : array-like (4*H, H)
        PyTorch's hidden-hidden weights (``weight_hh_l{k}``). A ``(4*H, P)`` array with
        ``P != H`` (from ``proj_size=P``) is refused: numlstm has no projection.
    bias_ih, bias_hh : array-like (4*H,), optional
        PyTorch's two biases; a missing one counts as zeros (``nn.LSTM(bias=False)``).
    dtype : np.dtype, optional
        The dtype of the results, float32 or float64. Default: the inputs' common dtype
        (float32 stays float32, float64 stays float64). To run
        float32 torch weights in float64, pass ``dtype=np.float64`` rather than casting the
        results afterwards: the biases are then summed in float64, as torch's float64
        ``.double()`` model sums them, instead of being rounded to float32 first.

    Returns
    -------
    list of np.ndarray
        ``[kernel, recurrent_kernel, bias]`` with shapes ``(D, 4*H)``, ``(H, 4*H)`` and
        ``(4*H,)``: ``kernel = weight_ih.T``, ``recurrent_kernel = weight_hh.T``,
        ``bias = bias_ih + bias_hh``. New C-contiguous arrays (never views of the inputs).
        The same list order as Keras's ``get_weights()``.

    Raises
    ------
    ValueError
        If a shape does not fit the others; the message names the argument, the expected
        shape and the received one.
    TypeError
        If an argument is not a float32/float64 array (or contains NaN or inf: ValueError).
    """
    weight_ih = V.as_float_array(weight_ih, "weight_ih")
    weight_hh = V.as_float_array(weight_hh, "weight_hh")
    bias_ih = None if bias_ih is None else V.as_float_array(bias_ih, "bias_ih")
    bias_hh = None if bias_hh is None else V.as_float_array(bias_hh, "bias_hh")
    V.check_torch_lstm_shapes(weight_ih, weight_hh, bias_ih, bias_hh)

    if dtype is None:
        dtype = np.result_type(*(a for a in (weight_ih, weight_hh, bias_ih, bias_hh)
                                if a is not None))
    else:
        dtype = V.check_float_dtype(dtype)
    kernel = _transposed_copy(weight_ih, dtype)
    recurrent_kernel = _transposed_copy(weight_hh, dtype)
    bias = np.zeros(weight_ih.shape[0], dtype=dtype)
    # Summed once, in the result dtype: torch adds its two biases separately, so float32
    # pre-activations can differ from torch's by rounding (well inside 1e-5).
    for part in (bias_ih, bias_hh):
        if part is not None:
            bias += part.astype(dtype, copy=False)
    return [kernel, recurrent_kernel, bias]


def to_torch(kernel, recurrent_kernel, bias, *, layer: int | None = None,
             reverse: bool = False) -> dict[str, np.ndarray]:
    """Convert numlstm (Keras) weights of one layer and direction to PyTorch's layout.

    Parameters
    ----------
    kernel : array-like (D, 4*H)
    recurrent_kernel : array-like (H, 4*H)
    bias : array-like (4*H,)
    layer : int, optional
        If given, the keys carry PyTorch's state-dict suffix ``_l{layer}`` (and ``_reverse``
        when ``reverse`` is True), so that the dict, its values turned into tensors, can be
        loaded with ``module.load_state_dict(..., strict=False)``.
    reverse : bool
        Only with ``layer``: name the reverse direction of a bidirectional LSTM.

    Returns
    -------
    dict of str to np.ndarray
        ``weight_ih`` (4*H, D) ``= kernel.T``, ``weight_hh`` (4*H, H) ``= recurrent_kernel.T``,
        ``bias_ih`` (4*H,) ``= bias`` and ``bias_hh`` (4*H,) ``= 0`` (PyTorch only ever uses
        their sum). New C-contiguous arrays in the inputs' common floating dtype.

    Raises
    ------
    ValueError
        If a shape does not fit the others, or ``reverse`` is given without ``layer``.
    TypeError
        If an argument is not a float32/float64 array (or contains NaN or inf: ValueError).
    """
    kernel = V.as_float_array(kernel, "kernel")
    recurrent_kernel = V.as_float_array(recurrent_kernel, "recurrent_kernel")
    bias = V.as_float_array(bias, "bias")
    hidden = V.check_keras_lstm_shapes(kernel, recurrent_kernel, bias)
    V.check_reverse_has_layer(layer, reverse)
    suffix = "" if layer is None else _suffix(layer, reverse)

    dtype = np.result_type(kernel, recurrent_kernel, bias)
    return {
        f"weight_ih{suffix}": _transposed_copy(kernel, dtype),
        f"weight_hh{suffix}": _transposed_copy(recurrent_kernel, dtype),
        f"bias_ih{suffix}": np.array(bias, dtype=dtype, order="C", copy=True),
        f"bias_hh{suffix}": np.zeros(4 * hidden, dtype=dtype),
    }


def _suffix(layer, reverse) -> str:
    layer = V.check_layer_index(layer)
    return f"_l{layer}" + ("_reverse" if V.check_bool(reverse, "reverse") else "")


def from_torch_state_dict(state_dict: Mapping, layer: int = 0, reverse: bool = False, *,
                          prefix: str = "", dtype=None) -> list[np.ndarray]:
    """Convert one layer and direction of an ``nn.LSTM`` state dict to numlstm's layout.

    Parameters
    ----------
    state_dict : mapping of str to array-like
        Names to arrays, e.g. ``{k: v.numpy() for k, v in lstm.state_dict().items()}``, or the
        tensors themselves, or an opened ``.npz`` file. Values go through ``np.asarray``.
    layer : int
        The layer index ``k`` of ``weight_ih_l{k}`` (0 is the layer that sees the input).
    reverse : bool
        Take the reverse direction (``..._l{k}_reverse``) of a bidirectional LSTM.
    prefix : str
        Put in front of every key, for an LSTM inside a larger model (e.g. ``"encoder.lstm."``).
    dtype : np.dtype, optional
        The floating dtype of the results, see :func:`from_torch`.

    Returns
    -------
    list of np.ndarray
        ``[kernel (D, 4*H), recurrent_kernel (H, 4*H), bias (4*H,)]``, see :func:`from_torch`.
        Biases absent from the state dict (``nn.LSTM(bias=False)``) count as zeros.

    Raises
    ------
    KeyError
        If a weight of the requested layer and direction is missing; the message lists the
        keys that are there.
    ValueError
        If only one of the two biases is present, if the LSTM was built with ``proj_size``,
        or if a shape is wrong (see :func:`from_torch`).
    """
    suffix = _suffix(layer, reverse)
    V.check_string(prefix, "prefix")
    names = {part: f"{prefix}{part}{suffix}"
             for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    available = sorted(str(key) for key in state_dict.keys())

    V.check_no_projection(state_dict, f"{prefix}weight_hr{suffix}")
    for part in ("weight_ih", "weight_hh"):
        if names[part] not in state_dict:
            raise KeyError(f"state_dict has no key {names[part]!r} (layer={layer}, "
                           f"reverse={bool(reverse)}); available keys: {available}")
    V.check_bias_pair(state_dict, names["bias_ih"], names["bias_hh"], available)

    def get(part):
        return np.asarray(state_dict[names[part]]) if names[part] in state_dict else None

    return from_torch(get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"),
                      dtype=dtype)
