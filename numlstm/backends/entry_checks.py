"""Argument checks at the public entry points of every backend.

The front-end validates user input thoroughly (:mod:`numlstm.validation`: values, NaN/inf,
names) before anything reaches a backend. A backend object is nevertheless a public object
(``get_backend("numba").lstm_step(...)``), and its compiled kernels index arrays without bounds
checks: a 100000-row input with a 1-row state wrote out of bounds and killed the process, a
wrong feature count read garbage. So every backend's ``lstm_forward``, ``lstm_backward`` and
``lstm_step`` first runs the matching check here (attached once, for every subclass, by
:class:`numlstm.backends.base.Backend`): shapes consistent with one another, one floating
dtype, a boolean mask, valid activation codes, and output buffers that are C-contiguous and
writeable. The checks look only at shapes, dtypes and flags, never at the values, so they cost
the same for any size: a call whose arguments are right passes one chain of comparisons
(measured on the shared 2-core development machine: 2.7 µs for a step, 3.1 µs for a
forward); only a failing one walks through the argument-by-argument checks that word the
error. The kernels inside stay unchecked.

Arrays may be NumPy arrays or device arrays (CuPy, Numba CUDA): anything with ``shape`` and
``dtype``. Every check raises ``ValueError`` (a shape, a value) or ``TypeError`` (a kind of
object, a dtype) naming the entry point and the argument, the expected and the received
value.
"""

from __future__ import annotations

import numpy as np

from ..activations import ACTIVATION_NAMES

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_BOOL = np.dtype(bool)
_CODE_COUNT = len(ACTIVATION_NAMES)


def _plain_code(value) -> bool:
    """A valid activation code as the front-end passes it (a plain int)."""
    return type(value) is int and 0 <= value < _CODE_COUNT


def _plain_output(out, shape, dtype) -> bool:
    """None, or a NumPy output buffer that is right in every respect."""
    return out is None or (type(out) is np.ndarray and out.shape == shape
                           and out.dtype == dtype and out.flags.c_contiguous
                           and out.flags.writeable)


def _array(value, where: str, argument: str, ndim: int, meaning: str):
    """``value`` is an array of ``ndim`` dimensions; returns its shape."""
    shape = getattr(value, "shape", None)
    if shape is None or getattr(value, "dtype", None) is None:
        raise TypeError(f"{where}: {argument} must be an array {meaning}; got "
                        f"{type(value).__name__}")
    if len(shape) != ndim:
        raise ValueError(f"{where}: {argument} must be {ndim}-D {meaning}; got shape "
                         f"{tuple(shape)}")
    return tuple(shape)


def _same(value, where: str, argument: str, expected: tuple, meaning: str, dtype) -> None:
    """``value`` is an array of shape ``expected`` and dtype ``dtype``."""
    shape = _array(value, where, argument, len(expected), meaning)
    if shape != expected:
        raise ValueError(f"{where}: {argument} must have shape {meaning} = {expected}; got "
                         f"shape {shape}")
    if value.dtype != dtype:
        raise TypeError(f"{where}: {argument} must have dtype {dtype} like the input; got "
                        f"dtype {value.dtype}")


def _float_dtype(value, where: str, argument: str) -> np.dtype:
    dtype = np.dtype(value.dtype)
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{where}: {argument} must have dtype float32 or float64; got dtype "
                        f"{dtype}")
    return dtype


def _code(value, where: str, argument: str) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not 0 <= value < len(ACTIVATION_NAMES):
        raise ValueError(f"{where}: {argument} must be an activation code in [0, "
                         f"{len(ACTIVATION_NAMES) - 1}] (numlstm.activations); got {value!r}")


def _flag(value, where: str, argument: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {argument} must be True or False; got "
                        f"{type(value).__name__} {value!r}")


def _writable_output(value, where: str, argument: str) -> None:
    """An output buffer the kernel writes into: C-contiguous and writeable."""
    if hasattr(value, "is_c_contiguous"):         # Numba CUDA device arrays: flags is a dict
        contiguous, writeable = value.is_c_contiguous(), True
    else:                                         # NumPy and CuPy (which has no writeable)
        flags = value.flags
        contiguous, writeable = flags.c_contiguous, getattr(flags, "writeable", True)
    if not contiguous or not writeable:
        problem = "not C-contiguous" if not contiguous else "read-only"
        raise ValueError(f"{where}: {argument} must be a C-contiguous, writeable array to be "
                         f"written in place; got a {problem} array")


def _weights(where, kernel, recurrent_kernel, bias, features, dtype, source) -> int:
    """The weights for the ``features`` of the input named ``source``; returns ``units``."""
    shape = _array(recurrent_kernel, where, "recurrent_kernel", 2, "(units, 4*units)")
    units = shape[0]
    if units == 0 or shape[1] != 4 * units:
        raise ValueError(f"{where}: recurrent_kernel must have shape (units, 4*units) with "
                         f"units >= 1; got shape {shape}")
    _same(recurrent_kernel, where, "recurrent_kernel", shape, "(units, 4*units)", dtype)
    _same(kernel, where, "kernel", (features, 4 * units),
          f"(features of {source}, 4*units)", dtype)
    _same(bias, where, "bias", (4 * units,), "(4*units,)", dtype)
    return units


def check_forward(x, kernel, recurrent_kernel, bias, *, h0, c0, mask, recurrent_dropout_mask,
                  reverse, activation, recurrent_activation, zero_output_for_mask,
                  return_cache) -> None:
    """The arguments of :meth:`~numlstm.backends.base.Backend.lstm_forward`."""
    try:                                          # the common case: all right, in one chain
        batch, timesteps, features = x.shape
        units = recurrent_kernel.shape[0]
        dtype = x.dtype
        state = (batch, units)
        if units and dtype in _FLOAT_DTYPES and recurrent_kernel.shape == (units, 4 * units) \
                and kernel.shape == (features, 4 * units) and bias.shape == (4 * units,) \
                and h0.shape == state and c0.shape == state \
                and kernel.dtype == dtype and recurrent_kernel.dtype == dtype \
                and bias.dtype == dtype and h0.dtype == dtype and c0.dtype == dtype \
                and (mask is None or (mask.shape == (batch, timesteps) and mask.dtype == _BOOL)) \
                and (recurrent_dropout_mask is None or (recurrent_dropout_mask.shape == state
                                                        and recurrent_dropout_mask.dtype == dtype)) \
                and type(reverse) is bool and type(zero_output_for_mask) is bool \
                and type(return_cache) is bool and _plain_code(activation) \
                and _plain_code(recurrent_activation):
            return
    except (AttributeError, TypeError, ValueError):
        pass
    _forward_in_detail(x, kernel, recurrent_kernel, bias, h0=h0, c0=c0, mask=mask,
                       recurrent_dropout_mask=recurrent_dropout_mask, reverse=reverse,
                       activation=activation, recurrent_activation=recurrent_activation,
                       zero_output_for_mask=zero_output_for_mask, return_cache=return_cache)


def _forward_in_detail(x, kernel, recurrent_kernel, bias, *, h0, c0, mask,
                       recurrent_dropout_mask, reverse, activation, recurrent_activation,
                       zero_output_for_mask, return_cache, where: str = "lstm_forward") -> None:
    """Every argument of a forward one by one: raises, naming the first that is wrong."""
    batch, timesteps, features = _array(x, where, "x", 3, "(batch, timesteps, features)")
    dtype = _float_dtype(x, where, "x")
    units = _weights(where, kernel, recurrent_kernel, bias, features, dtype, "x")
    _same(h0, where, "h0", (batch, units), "(batch, units)", dtype)
    _same(c0, where, "c0", (batch, units), "(batch, units)", dtype)
    if mask is not None:
        _same(mask, where, "mask", (batch, timesteps), "(batch, timesteps)", np.dtype(bool))
    if recurrent_dropout_mask is not None:
        _same(recurrent_dropout_mask, where, "recurrent_dropout_mask", (batch, units),
              "(batch, units)", dtype)
    for argument, value in (("reverse", reverse), ("zero_output_for_mask",
                                                   zero_output_for_mask),
                            ("return_cache", return_cache)):
        _flag(value, where, argument)
    _code(activation, where, "activation")
    _code(recurrent_activation, where, "recurrent_activation")


def check_backward(backend_name: str, cache, *, grad_outputs, grad_h, grad_c,
                   where: str = "lstm_backward") -> None:
    """The arguments of :meth:`~numlstm.backends.base.Backend.lstm_backward`: the cache of a
    forward of the same backend (``return_cache=True``) and gradients shaped like its
    outputs and final states."""
    from .base import SequenceCache
    if not isinstance(cache, SequenceCache) or cache.backend != backend_name:
        made_by = getattr(cache, "backend", None)
        raise TypeError(f"{where}: cache must be what lstm_forward(..., return_cache=True) of "
                        f"the {backend_name!r} backend returned; got {type(cache).__name__}"
                        + (f" of the {made_by!r} backend" if made_by else ""))
    batch, timesteps, _ = cache.x.shape
    units = cache.recurrent_kernel.shape[0]
    dtype = np.dtype(cache.x.dtype)
    _same(grad_outputs, where, "grad_outputs", (batch, timesteps, units),
          "(batch, timesteps, units)", dtype)
    _same(grad_h, where, "grad_h", (batch, units), "(batch, units)", dtype)
    _same(grad_c, where, "grad_c", (batch, units), "(batch, units)", dtype)


def check_step(x_t, kernel, recurrent_kernel, bias, h, c, *, activation, recurrent_activation,
               out_h=None, out_c=None) -> None:
    """The arguments of :meth:`~numlstm.backends.base.Backend.lstm_step`."""
    try:                                          # the common case: all right, in one chain
        batch, features = x_t.shape
        units = recurrent_kernel.shape[0]
        dtype = x_t.dtype
        state = (batch, units)
        if units and dtype in _FLOAT_DTYPES and recurrent_kernel.shape == (units, 4 * units) \
                and kernel.shape == (features, 4 * units) and bias.shape == (4 * units,) \
                and h.shape == state and c.shape == state and kernel.dtype == dtype \
                and recurrent_kernel.dtype == dtype and bias.dtype == dtype \
                and h.dtype == dtype and c.dtype == dtype and _plain_code(activation) \
                and _plain_code(recurrent_activation) and _plain_output(out_h, state, dtype) \
                and _plain_output(out_c, state, dtype):
            return
    except (AttributeError, TypeError, ValueError):
        pass
    _step_in_detail(x_t, kernel, recurrent_kernel, bias, h, c, activation=activation,
                    recurrent_activation=recurrent_activation, out_h=out_h, out_c=out_c)


def _step_in_detail(x_t, kernel, recurrent_kernel, bias, h, c, *, activation,
                    recurrent_activation, out_h=None, out_c=None,
                    where: str = "lstm_step") -> None:
    """Every argument of a step one by one: raises, naming the first that is wrong."""
    batch, features = _array(x_t, where, "x_t", 2, "(batch, features)")
    dtype = _float_dtype(x_t, where, "x_t")
    units = _weights(where, kernel, recurrent_kernel, bias, features, dtype, "x_t")
    _same(h, where, "h", (batch, units), "(batch, units)", dtype)
    _same(c, where, "c", (batch, units), "(batch, units)", dtype)
    for argument, out in (("out_h", out_h), ("out_c", out_c)):
        if out is not None:
            _same(out, where, argument, (batch, units), "(batch, units)", dtype)
            _writable_output(out, where, argument)
    _code(activation, where, "activation")
    _code(recurrent_activation, where, "recurrent_activation")
