"""Every check of user input, in one place.

Backends never validate: by the time arrays reach a kernel they have the right number of
dimensions, consistent shapes, one floating dtype and finite values, and names have been
resolved to codes. Each check raises ``ValueError`` (wrong value or shape) or ``TypeError``
(wrong kind of object or dtype) with a message that names the argument, says what was expected
and echoes what was received, e.g.::

    LSTM input must be 3-D (batch, timesteps, features); got shape (32, 28)
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from .activations import ACTIVATION_CODES, NOT_FOR_LSTM

#: The largest layer size (units, embedding dimensions) a layer accepts: the kernels index
#: with machine integers, and no model near this size fits in memory anyway.
MAX_LAYER_SIZE = (1 << 31) - 1

#: The floating dtypes numlstm computes in.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def kind_of(value) -> str:
    """A short description of a value for error messages, echoing small values."""
    if isinstance(value, np.ndarray):
        return f"array of dtype {value.dtype} and shape {value.shape}"
    if isinstance(value, np.generic):              # NumPy scalars: np.bool_(True), np.int8(3)
        return f"{type(value).__name__} {value.item()!r}"
    if hasattr(value, "shape"):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"


def _native(dtype: np.dtype) -> np.dtype:
    """The same dtype in this machine's byte order (big-endian data is computed natively)."""
    return dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype


# -- names and scalars ------------------------------------------------------------------------

def check_name(value, argument: str, valid: Sequence[str]) -> str:
    """Check that ``value`` is one of the strings in ``valid``."""
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a string, one of {list(valid)}; "
                        f"got {kind_of(value)}")
    if value not in valid:
        raise ValueError(f"{argument} must be one of {list(valid)}; got {value!r}")
    return value


def check_activation(value, argument: str = "activation") -> int:
    """Resolve an activation name (or None for linear) to its code."""
    if value is None:
        value = "linear"
    if isinstance(value, str) and value in NOT_FOR_LSTM:
        raise ValueError(f"{argument}={value!r} is not supported by LSTM: "
                         f"{NOT_FOR_LSTM[value]}. LSTM takes one of "
                         f"{sorted(ACTIVATION_CODES)}")
    name = check_name(value, argument, list(ACTIVATION_CODES))
    return ACTIVATION_CODES[name]


def check_positive_int(value, argument: str, maximum: int | None = None) -> int:
    """Check an integer ≥ 1, and ≤ ``maximum`` when given (booleans and floats are refused,
    even 3.0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} must be a positive integer; got {kind_of(value)}")
    if value <= 0:
        raise ValueError(f"{argument} must be a positive integer; got {argument}={value}")
    if maximum is not None and value > maximum:
        shown = value if value < 10 ** 30 else f"an integer of {len(str(value))} digits"
        raise ValueError(f"{argument} must be a positive integer <= {maximum}; got "
                         f"{argument}={shown}")
    return int(value)


def check_seed(value, argument: str = "seed") -> int | None:
    """Check a random seed: None or an integer ≥ 0."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} must be a non-negative int or None; got {kind_of(value)}")
    if value < 0:
        raise ValueError(f"{argument} must be a non-negative int or None; got "
                         f"{argument}={value}")
    return int(value)


def check_int_at_least(value, argument: str, minimum: int, maximum: int | None = None) -> int:
    """Check an integer ≥ ``minimum`` (and ≤ ``maximum`` when given; booleans and floats are
    refused, even 3.0)."""
    bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} must be an integer {bound}; got {kind_of(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        shown = value if abs(value) < 10 ** 30 else f"an integer of {len(str(abs(value)))} digits"
        raise ValueError(f"{argument} must be an integer {bound}; got {argument}={shown}")
    return int(value)


def check_finite_number(value, argument: str, why: str = "") -> float:
    """Check a finite real number (booleans refused); ``why`` explains a refused NaN/inf."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a number; got {kind_of(value)}")
    if not np.isfinite(float(value)):
        raise ValueError(f"{argument} must be a finite number{f' ({why})' if why else ''}; "
                         f"got {argument}={value!r}")
    return float(value)


def check_fraction(value, argument: str) -> float:
    """Check a real number strictly between 0 and 1 (a split fraction)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a number strictly between 0 and 1; got "
                        f"{kind_of(value)}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{argument} must be strictly between 0 and 1; got "
                         f"{argument}={value!r}")
    return float(value)


def check_non_negative_float(value, argument: str) -> float:
    """Check a finite real number ≥ 0 (booleans refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a non-negative number; got {kind_of(value)}")
    if not (np.isfinite(float(value)) and float(value) >= 0.0):
        raise ValueError(f"{argument} must be a finite number >= 0; got {argument}={value!r}")
    return float(value)


def check_bool(value, argument: str) -> bool:
    """Check a flag is a real boolean (so that ``reverse="no"`` does not mean True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argument} must be True or False; got {kind_of(value)}")
    return bool(value)


def check_float_dtype(value, argument: str = "dtype") -> np.dtype:
    """Check a dtype spec is float32 or float64 (None means float32, as in Keras)."""
    if value is None:
        return np.dtype(np.float32)
    try:
        dtype = _native(np.dtype(value))
    except TypeError:
        raise TypeError(f"{argument} must be 'float32' or 'float64'; got {value!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"{argument} must be 'float32' or 'float64'; got {value!r} "
                         f"(dtype {dtype.str})")
    return dtype


# -- arrays -----------------------------------------------------------------------------------

def as_float_array(value, argument: str, dtype=None) -> np.ndarray:
    """Turn ``value`` into a finite floating NumPy array.

    Integer, boolean, complex, string and object data are refused (casting them silently would
    hide a mistake such as passing token ids to an LSTM without an embedding). Floating data is
    cast to ``dtype`` when given (float16 and float32 data may be computed in float64 and vice
    versa); without ``dtype`` it must already be float32 or float64.
    """
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists and the like
        raise TypeError(f"{argument} must be an array of floats; could not convert "
                        f"{type(value).__name__} to an array ({error})") from None
    if array.dtype.kind == "f":
        array = array.astype(_native(array.dtype), copy=False)
    else:
        kind = {"i": "integer", "u": "unsigned integer", "b": "boolean", "c": "complex",
                "O": "object", "U": "string", "S": "bytes"}.get(array.dtype.kind,
                                                               array.dtype.name)
        raise TypeError(f"{argument} must be an array of floats (float32 or float64); "
                        f"got {kind} data of dtype {array.dtype}")
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    elif array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{argument} must be float32 or float64; got dtype {array.dtype} "
                        f"(cast it with .astype('float32'))")
    if array.size and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{argument} must contain only finite values; got "
                         f"{array[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return array


def check_shape(array: np.ndarray, argument: str, expected: tuple, meaning: str) -> np.ndarray:
    """Check ``array.shape == expected``; ``meaning`` names the axes, e.g. '(batch, units)'."""
    if array.shape != tuple(expected):
        raise ValueError(f"{argument} must have shape {meaning} = {tuple(expected)}; "
                         f"got shape {array.shape}")
    return array


def check_sequence_input(x, *, dtype=None, features: int | None = None,
                         argument: str = "LSTM input") -> np.ndarray:
    """Check the 3-D ``(batch, timesteps, features)`` input of a recurrent layer."""
    x = as_float_array(x, argument, dtype)
    if x.ndim != 3:
        raise ValueError(f"{argument} must be 3-D (batch, timesteps, features); "
                         f"got shape {x.shape}")
    if x.shape[2] == 0:
        raise ValueError(f"{argument} must have at least one feature; got shape {x.shape}")
    if features is not None and x.shape[2] != features:
        raise ValueError(f"{argument} must have {features} features (the layer was built for "
                         f"shape (batch, timesteps, {features})); got shape {x.shape}")
    return x


def check_recurrent_kernel(value, dtype, argument: str = "recurrent_kernel") -> np.ndarray:
    """Check a ``(units, 4*units)`` recurrent kernel; its shape is what defines ``units``."""
    array = as_float_array(value, argument, dtype)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != 4 * array.shape[0]:
        raise ValueError(f"{argument} must have shape (units, 4*units) with units >= 1; "
                         f"got shape {array.shape}")
    return array


def check_mask(mask, batch: int, timesteps: int, argument: str = "mask"):
    """Check a ``(batch, timesteps)`` mask; None passes through.

    Boolean masks, and integer masks holding only 0 and 1 (as Keras takes them), are
    accepted; an integer mask is returned as a boolean array. Other dtypes raise
    ``TypeError``, other integer values ``ValueError``."""
    if mask is None:
        return None
    try:
        array = np.asarray(mask)
    except ValueError as error:     # ragged nested lists
        raise TypeError(f"{argument} must be a boolean array of shape (batch, timesteps) = "
                        f"{(batch, timesteps)}; could not convert {type(mask).__name__} to an "
                        f"array ({error})") from None
    if array.dtype.kind in "iu":
        check_shape(array, argument, (batch, timesteps), "(batch, timesteps)")
        outside = (array != 0) & (array != 1)
        if outside.any():
            bad = tuple(int(i) for i in np.argwhere(outside)[0])
            raise ValueError(f"{argument} must hold only 0 and 1 when it is an integer array "
                             f"(1 keeps a timestep, 0 skips it); got {array[bad]} at index "
                             f"{bad}")
        return array.astype(np.bool_)
    if array.dtype != np.bool_:
        raise TypeError(f"{argument} must be a boolean array (or integer 0/1) of shape "
                        f"(batch, timesteps) = {(batch, timesteps)}; got dtype {array.dtype} "
                        f"(convert it with .astype(bool))")
    return check_shape(array, argument, (batch, timesteps), "(batch, timesteps)")


def check_state(value, argument: str, batch: int, units: int, dtype) -> np.ndarray:
    """Check one ``(batch, units)`` state array."""
    state = as_float_array(value, argument, dtype)
    return check_shape(state, argument, (batch, units), "(batch, units)")


def check_initial_state(initial_state, batch: int, units: int, dtype):
    """Check ``initial_state=[h0, c0]``; returns ``(h0, c0)``, zeros where None."""
    if initial_state is None:
        zeros = np.zeros((batch, units), dtype)
        return zeros, zeros.copy()
    if isinstance(initial_state, np.ndarray) or not isinstance(initial_state, (list, tuple)):
        raise TypeError(f"initial_state must be a list [h0, c0] of two arrays of shape "
                        f"(batch, units) = {(batch, units)}; got {kind_of(initial_state)}")
    if len(initial_state) != 2:
        raise ValueError(f"initial_state must be a list [h0, c0] of 2 arrays of shape "
                         f"(batch, units) = {(batch, units)}; got {len(initial_state)} "
                         f"array(s)")
    h0 = check_state(initial_state[0], "initial_state[0] (h0)", batch, units, dtype)
    c0 = check_state(initial_state[1], "initial_state[1] (c0)", batch, units, dtype)
    return h0, c0


def check_lstm_weights(weights, features: int, units: int, dtype, use_bias: bool = True,
                       argument: str = "weights"):
    """Check ``[kernel, recurrent_kernel, bias]`` (Keras layout; no bias when ``use_bias`` is
    False); returns a list of arrays of ``dtype``."""
    expected = [("kernel", (features, 4 * units), "(features, 4*units)"),
                ("recurrent_kernel", (units, 4 * units), "(units, 4*units)"),
                ("bias", (4 * units,), "(4*units,)")][:3 if use_bias else 2]
    layout = ", ".join(f"{name} {shape}" for name, shape, _ in expected)
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"{argument} must be a list [{layout}]; got {kind_of(weights)}")
    if len(weights) != len(expected):
        shapes = [tuple(np.shape(w)) for w in weights]
        raise ValueError(f"{argument} must be a list of {len(expected)} arrays [{layout}]; "
                         f"got {len(weights)} array(s) of shapes {shapes}")
    checked = []
    for value, (name, shape, meaning) in zip(weights, expected):
        array = as_float_array(value, f"{argument} ({name})", dtype)
        checked.append(check_shape(array, f"{argument} ({name})", shape, meaning))
    return checked


def check_recurrent_dropout_mask(mask, batch: int, units: int, dtype):
    """Check the ``(batch, units)`` recurrent dropout multiplier; None passes through."""
    if mask is None:
        return None
    return check_state(mask, "recurrent_dropout_mask", batch, units, dtype)


def check_upstream_gradient(value, argument: str, shape: tuple, meaning: str, dtype):
    """Check an upstream gradient; None becomes zeros."""
    if value is None:
        return np.zeros(shape, dtype)
    return check_shape(as_float_array(value, argument, dtype), argument, shape, meaning)


# -- front-end layers and models ---------------------------------------------------------------

def check_rate(value, argument) -> float:
    """A dropout rate: a real number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{argument} must be a float in [0, 1); got {type(value).__name__} "
                        f"{value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{argument} must be in [0, 1); got {argument}={value}")
    return float(value)


def check_token_ids(x, input_dim, argument) -> np.ndarray:
    """Integer (or integral float) token ids in ``[0, input_dim)``, as int64."""
    array = np.asarray(x)
    if array.dtype.kind == "f":
        if array.size and (not np.isfinite(array).all() or (array != np.round(array)).any()):
            raise ValueError(f"{argument} must be integer token ids; got non-integer values")
        # Compare as floats before the cast: a float beyond int64 would wrap around.
        if array.size and (array.min() < 0 or array.max() >= input_dim):
            raise ValueError(f"{argument} ids must be in [0, input_dim) = [0, {input_dim}); "
                             f"got values from {array.min()!r} to {array.max()!r}")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise TypeError(f"{argument} must be integer token ids; got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{argument} must be 2-D (batch, timesteps); got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= input_dim):
        raise ValueError(f"{argument} ids must be in [0, input_dim) = [0, {input_dim}); got "
                         f"values from {array.min()} to {array.max()}")
    return array.astype(np.int64, copy=False)


def _shape_fits(shape: tuple, expected: tuple) -> bool:
    """``shape`` matches ``expected``, where None in ``expected`` allows any size."""
    return len(shape) == len(expected) and all(e is None or s == e
                                               for s, e in zip(shape, expected))


def check_targets(y, n: int, output_shape: tuple, *, sparse: bool, dtype, argument="y",
                  probabilities: str | None = None):
    """Check training targets for ``n`` samples and a model output of ``output_shape``.

    None in ``output_shape`` allows any size there (a sequence output of any length).
    ``sparse``: integer class indices of shape ``output_shape[:-1]`` (or with a trailing 1), in
    ``[0, output_shape[-1])``; otherwise finite floats of ``output_shape`` (``(n,)`` is accepted
    for an output of one unit). ``probabilities``: the name of a cross-entropy loss whose
    targets are probabilities: integer and boolean targets (one-hot or 0/1 labels, as Keras
    takes them) are cast to ``dtype``, and every target must lie in ``[0, 1]``. Returns int64
    labels or an array of ``dtype``.
    """
    out = tuple(output_shape)
    if sparse:
        labels = np.asarray(y)
        if labels.dtype.kind == "f":
            if labels.size and not np.isfinite(labels).all():
                raise ValueError(f"{argument} must contain only finite values (class "
                                 "indices); got NaN or inf")
            if (labels != np.round(labels)).any():
                raise ValueError(f"{argument} must be integer class indices for "
                                 "sparse_categorical_crossentropy; got non-integer values")
        elif labels.dtype.kind not in "iu":
            raise TypeError(f"{argument} must be integer class indices; got dtype "
                            f"{labels.dtype}")
        if labels.shape[:1] != (n,):
            raise ValueError(f"x and {argument} must have the same number of samples; got "
                             f"{n} and {labels.shape[0] if labels.ndim else 'a scalar'}")
        if not (_shape_fits(labels.shape, out[:-1]) or _shape_fits(labels.shape,
                                                                    out[:-1] + (1,))):
            raise ValueError(f"{argument} must have shape {out[:-1]} (class indices for an "
                             f"output of shape {out}); got shape {labels.shape}")
        classes = out[-1]
        if classes is None:
            raise ValueError(f"{argument}: class indices need an output with a known number "
                             f"of classes; the output's shape is {out}")
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"{argument} class indices must be in [0, {classes}) for an "
                             f"output of {classes} classes; got values from "
                             f"{labels.min()} to {labels.max()}")
        return labels.astype(np.int64)
    if probabilities is not None and not isinstance(y, np.ndarray):
        try:
            y = np.asarray(y)
        except Exception:
            pass                                  # as_float_array says what is wrong
    if probabilities is not None and isinstance(y, np.ndarray) and y.dtype.kind in "iub":
        y = y.astype(dtype)                       # 0/1 labels and one-hot rows, as Keras
    target = as_float_array(y, argument, dtype)
    if probabilities is not None and target.size and (target.min() < 0 or target.max() > 1):
        raise ValueError(f"{argument} must hold targets in [0, 1] for {probabilities} "
                         f"(probabilities, one-hot rows or 0/1 labels); got values from "
                         f"{target.min()} to {target.max()}")
    if target.shape[:1] != (n,):
        raise ValueError(f"x and {argument} must have the same number of samples; got {n} "
                         f"and {target.shape[0] if target.ndim else 'a scalar'}")
    if not _shape_fits(target.shape, out):
        if _shape_fits(target.shape, out[:-1]) and out[-1] == 1:
            return target[..., None]
        raise ValueError(f"{argument} must have the model's output shape {out}; got "
                         f"shape {target.shape}")
    return target


# -- Sequential models: structure and the arguments of fit / evaluate / predict ---------------

def check_layer_list(layers, argument: str = "layers") -> list:
    """A list or tuple of layers (their kinds are checked one by one as they are added)."""
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"{argument} must be a list of layers; got {kind_of(layers)}")
    return list(layers)


def check_all_finite(arrays: dict, what: str) -> None:
    """Every array of ``arrays`` (name -> array) holds only finite values; ``what`` says what
    they are for the message (e.g. "cannot save the model")."""
    for name, array in arrays.items():
        finite = np.isfinite(array)
        if not finite.all():
            bad = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(f"{what}: {name} holds non-finite values ({array[bad]} at index "
                             f"{bad}, {int((~finite).sum())} in all); a run whose loss became "
                             f"NaN or inf has diverged")


def check_batch_shape(value, argument: str = "batch_shape") -> tuple:
    """A model's input shape with the batch axis: a list of 2 or 3 entries, each None or a
    positive integer, e.g. ``[None, 28, 28]``."""
    if not isinstance(value, (list, tuple)) or len(value) not in (2, 3):
        raise TypeError(f"{argument} must be a list of 2 or 3 sizes (None or integers >= 1); "
                        f"got {kind_of(value)}")
    for index, size in enumerate(value):
        if size is not None:
            check_positive_int(size, f"{argument}[{index}]")
    return tuple(value)


def check_fixed_batch(shape: tuple, layer_name: str) -> int:
    """A stateful LSTM's input ``shape`` must fix the batch size (``shape[0]`` not None)."""
    if shape[0] is None:
        raise ValueError(f"stateful LSTM {layer_name!r} needs a fixed batch size: give the "
                         "model Input(shape, batch_size=...)")
    return shape[0]


def check_layer_input_rank(shape: tuple, rank: int, layer_name: str, axes: str) -> None:
    """The shape the previous layer gives has the ``rank`` a layer needs (axes in words)."""
    if len(shape) != rank:
        raise ValueError(f"layer {layer_name!r} needs {rank}-D input {axes}; the layer before "
                         f"it gives shape {shape}")


def check_built_features(built: int, shape: tuple, layer_name: str) -> None:
    """An already built layer added to a model sees the feature count it was built for."""
    if shape[-1] is not None and built != shape[-1]:
        raise ValueError(f"layer {layer_name!r} was built for {built} input features; the "
                         f"layer before it gives shape {shape}")


def check_required(value, argument: str, expected: str):
    """An argument that has no default (``None`` given)."""
    if value is None:
        raise ValueError(f"{argument} is required: {expected}")
    return value


def check_verbose(value, argument: str = "verbose") -> int:
    """Keras's verbosity: 0 (silent), 1 (progress bar) or 2 (one line per epoch)."""
    if isinstance(value, (bool, np.bool_)) or value not in (0, 1, 2):
        raise ValueError(f"{argument} must be 0, 1 or 2; got {value!r}")
    return int(value)


def check_validation_split(value, argument: str = "validation_split") -> float:
    """A fraction in [0, 1) of the samples to hold out (0: none)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not 0.0 <= value < 1.0:
        raise ValueError(f"{argument} must be a number in [0, 1); got {value!r}")
    return float(value)


def check_split_sizes(split: float, n: int, argument: str = "validation_split") -> int:
    """The index that splits ``n`` samples into training and the last ``split`` fraction
    (Keras's rule); both parts must hold at least one sample."""
    split_at = int(n * (1.0 - split))
    if split_at == 0 or split_at == n:
        raise ValueError(f"{argument}={split} leaves {split_at} training and {n - split_at} "
                         f"validation samples of {n}; both must be at least 1")
    return split_at


def check_validation_data(value, argument: str = "validation_data") -> tuple:
    """A pair ``(x_val, y_val)`` (its arrays are checked like ``x`` and ``y``)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{argument} must be a tuple (x_val, y_val); got {kind_of(value)}")
    return tuple(value)


def check_sample_count(n: int, argument: str = "x") -> int:
    """At least one sample to train on."""
    if n == 0:
        raise ValueError(f"{argument} must contain at least one sample; got 0")
    return n


def check_targets_given(y, n: int, names=("x", "y")) -> None:
    """Targets exist and hold one entry per sample of ``x`` (``n``)."""
    if y is None:
        raise ValueError(f"{names[1]} is required")
    try:
        length = len(y)
    except TypeError:
        raise TypeError(f"{names[1]} must be an array of targets; got "
                        f"{type(y).__name__}") from None
    if length != n:
        raise ValueError(f"{names[0]} and {names[1]} must have the same number of samples; "
                         f"got {n} and {length}")


def check_model_input_shape(array: np.ndarray, expected: tuple, described: str,
                            argument: str = "x") -> np.ndarray:
    """``array`` matches a model's input ``expected`` (None: any size on that axis);
    ``described`` is the expected shape in words, e.g. ``(batch, timesteps=5, features=3)``."""
    if array.ndim != len(expected):
        raise ValueError(f"{argument} must be {len(expected)}-D with shape {described}; got "
                         f"shape {array.shape}")
    for axis in range(1, len(expected)):
        if expected[axis] is not None and array.shape[axis] != expected[axis]:
            raise ValueError(f"{argument} must have shape {described}; got shape "
                             f"{array.shape}")
    return array


def check_stateful_batch_size(batch_size: int, fixed: int | None, n: int,
                              argument: str = "batch_size", samples: str = "samples") -> int:
    """With stateful layers (fixed batch size ``fixed``) the batch size must equal it and
    divide the sample count ``n`` (of what ``samples`` names); without (``fixed`` None)
    anything goes."""
    if fixed is None:
        return batch_size
    if batch_size != fixed:
        raise ValueError(f"{argument} must be {fixed}, the fixed batch size of the stateful "
                         f"layers; got {argument}={batch_size}")
    if n % batch_size:
        raise ValueError(f"with stateful layers the number of {samples} must be a multiple "
                         f"of the batch size {batch_size}; got {n}")
    return batch_size


def check_callback_list(callbacks, base: type, argument: str = "callbacks") -> list:
    """None (no callbacks) or a list of ``base`` instances."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)) or not all(
            isinstance(c, base) for c in callbacks):
        raise TypeError(f"{argument} must be a list of numlstm.callbacks.Callback objects; "
                        f"got {kind_of(callbacks)}")
    return list(callbacks)


def check_metric_names(metrics, argument: str = "metrics") -> list:
    """None (no metrics) or a list of metric names (resolved by numlstm.metrics)."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"{argument} must be a list of names such as ['accuracy']; got "
                        f"{metrics!r}")
    return list(metrics)


def check_weight_list(weights, expected: int, argument: str = "weights") -> list:
    """A list of ``expected`` weight arrays (each is checked by its layer)."""
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"{argument} must be a list of arrays; got {type(weights).__name__}")
    if len(weights) != expected:
        raise ValueError(f"the model has {expected} weight arrays; got {len(weights)}")
    return list(weights)


# -- callbacks ---------------------------------------------------------------------------------

def check_monitor(value, argument: str = "monitor") -> str:
    """The name of a logged quantity, such as ``'val_loss'``."""
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a log name such as 'val_loss'; got "
                        f"{kind_of(value)}")
    return value


def check_monitor_mode(value, argument: str = "mode") -> str:
    """``'auto'``, ``'min'`` or ``'max'``: which way a monitored quantity improves."""
    if value not in ("auto", "min", "max") or not isinstance(value, str):
        raise ValueError(f"{argument} must be 'auto', 'min' or 'max'; got {value!r}")
    return value


def check_monitored_in_logs(monitor: str, logs: dict, who: str, hint: str = "") -> None:
    """The quantity a callback watches is among the epoch's logs."""
    if monitor not in logs:
        raise ValueError(f"{who} monitors {monitor!r}, which is not in the logs "
                         f"{sorted(logs)}{hint}")


def check_path_like(value, argument: str) -> str:
    """A str, bytes or os.PathLike naming a file (returned as str)."""
    if not isinstance(value, (str, bytes)) and not hasattr(value, "__fspath__"):
        raise TypeError(f"{argument} must be a path; got {kind_of(value)}")
    return str(value)


def check_path_template(template: str, argument: str, log_names) -> str:
    """A checkpoint path template such as ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``: it must
    format with ``epoch`` and the names in ``log_names`` (numbers), and name a file in a
    folder that exists and can be written. Returns the path for epoch 1."""
    import os
    import string
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template)
                  if field is not None]
    except ValueError as error:
        raise ValueError(f"{argument} {template!r} is not a valid path template ({error})") \
            from None
    known = ["epoch", *log_names]
    for field in fields:
        key = field.split(".")[0].split("[")[0]
        if not key or key not in known:
            shown = "{" + field + "}"
            raise ValueError(f"{argument} {template!r} uses {shown}, which is not a name "
                             f"training logs; it may use {{epoch}} and {sorted(log_names)}")
    try:
        path = template.format(epoch=1, **dict.fromkeys(log_names, 0.0))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise ValueError(f"{argument} {template!r} does not format with epoch=1 and the "
                         f"logs' numbers ({type(error).__name__}: {error})") from None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{argument} {template!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{argument} {template!r}: the folder {folder!r} is not writable")
    return path


# -- optimizers --------------------------------------------------------------------------------

def check_real_in_range(value, argument: str, low: float = 0.0, low_inclusive: bool = False,
                        high: float | None = None) -> float:
    """A finite real number above ``low`` (or equal, with ``low_inclusive``) and below
    ``high`` when given; booleans refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a number; got {kind_of(value)}")
    value = float(value)
    bad = (value < low or (value == low and not low_inclusive) or not np.isfinite(value)
           or (high is not None and value >= high))
    if bad:
        bound = f"in [{low}, {high})" if high is not None else (
            f">= {low}" if low_inclusive else f"> {low}")
        raise ValueError(f"{argument} must be {bound}; got {argument}={value}")
    return value


def check_registered(identifier, argument: str, known, example: str, kind: str) -> str:
    """A name (or a config dict's ``name``) from the registry ``known``; ``kind`` is the class
    an object may be instead, with its article (``"an Optimizer"``), ``example`` a valid name.
    Returns the name."""
    if isinstance(identifier, dict):
        name = identifier.get("name")
        if name not in known:
            raise ValueError(f"{argument} config names an unknown {argument} {name!r}; known: "
                             f"{sorted(known)}")
        return name
    if isinstance(identifier, str):
        if identifier not in known:
            raise ValueError(f"{argument} must be one of {sorted(known)} or {kind} object; "
                             f"got {identifier!r}")
        return identifier
    raise TypeError(f"{argument} must be a name such as {example!r} or {kind} object; got "
                    f"{kind_of(identifier)}")


# -- weight conversion (numlstm.convert) -------------------------------------------------------

def check_torch_lstm_shapes(weight_ih, weight_hh, bias_ih, bias_hh) -> int:
    """The shapes of one direction of a PyTorch ``nn.LSTM``: ``weight_ih (4*H, D)``,
    ``weight_hh (4*H, H)``, biases ``(4*H,)`` or None. Returns ``H``."""
    if weight_ih.ndim != 2 or weight_ih.shape[0] == 0 or weight_ih.shape[0] % 4 \
            or weight_ih.shape[1] == 0:
        raise ValueError("weight_ih must have shape (4*H, D) with H >= 1 and D >= 1 "
                         f"(4*H rows: one block per gate i, f, g, o); got shape "
                         f"{weight_ih.shape}")
    four_h, _ = weight_ih.shape
    hidden = four_h // 4
    if weight_hh.shape != (four_h, hidden):
        message = (f"weight_hh must have shape (4*H, H) = {(four_h, hidden)} to match "
                   f"weight_ih {weight_ih.shape}; got shape {weight_hh.shape}")
        if weight_hh.ndim == 2 and weight_hh.shape[0] == four_h:
            message += (". A weight_hh of shape (4*H, P) with P != H comes from "
                        "nn.LSTM(proj_size=P); proj_size is not supported by numlstm")
        raise ValueError(message)
    for name, bias in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if bias is not None and bias.shape != (four_h,):
            raise ValueError(f"{name} must have shape (4*H,) = {(four_h,)} to match "
                             f"weight_ih {weight_ih.shape}; got shape {bias.shape}")
    return hidden


def check_keras_lstm_shapes(kernel, recurrent_kernel, bias) -> int:
    """The shapes of Keras-layout LSTM weights: ``kernel (D, 4*H)``, ``recurrent_kernel
    (H, 4*H)``, ``bias (4*H,)``. Returns ``H``."""
    if recurrent_kernel.ndim != 2 or recurrent_kernel.shape[0] == 0 or \
            recurrent_kernel.shape[1] != 4 * recurrent_kernel.shape[0]:
        raise ValueError("recurrent_kernel must have shape (H, 4*H) with H >= 1; got shape "
                         f"{recurrent_kernel.shape}")
    hidden = recurrent_kernel.shape[0]
    if kernel.ndim != 2 or kernel.shape[0] == 0 or kernel.shape[1] != 4 * hidden:
        expected = f"(D, {4 * hidden})" if kernel.ndim != 2 else str((kernel.shape[0],
                                                                       4 * hidden))
        raise ValueError(f"kernel must have shape (D, 4*H) = {expected} with D >= 1 to match "
                         f"recurrent_kernel {recurrent_kernel.shape}; got shape {kernel.shape}")
    if bias.shape != (4 * hidden,):
        raise ValueError(f"bias must have shape (4*H,) = {(4 * hidden,)} to match "
                         f"recurrent_kernel {recurrent_kernel.shape}; got shape {bias.shape}")
    return hidden


def check_reverse_has_layer(layer, reverse) -> None:
    """``reverse=True`` names state-dict keys, so it needs a ``layer`` index."""
    if layer is None and reverse:
        raise ValueError("reverse=True only names keys together with layer=; got layer=None")


def check_layer_index(value, argument: str = "layer") -> int:
    """A layer index of a stacked PyTorch LSTM: an integer >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} must be a non-negative integer; got {argument}={value!r}")
    if value < 0:
        raise ValueError(f"{argument} must be a non-negative integer; got {argument}={value!r}")
    return int(value)


def check_string(value, argument: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a string; got {kind_of(value)}")
    return value


def check_no_projection(state_dict, key: str) -> None:
    """A state dict of ``nn.LSTM(proj_size=P)`` (it has ``weight_hr``) is not supported."""
    if key in state_dict:
        raise ValueError(f"state_dict has {key}: the LSTM was built with proj_size, which "
                         "numlstm does not support")


def check_bias_pair(state_dict, bias_ih: str, bias_hh: str, available) -> None:
    """A state dict holds both biases of a direction or neither (``bias=False``)."""
    present = [bias_ih in state_dict, bias_hh in state_dict]
    if present[0] != present[1]:
        missing = bias_hh if present[0] else bias_ih
        raise ValueError(f"state_dict has only one of {bias_ih!r} and {bias_hh!r}; missing "
                         f"{missing!r} (available keys: {available})")
