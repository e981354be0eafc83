"""Run trained Keras models in numlstm: read ``.keras`` archives and legacy ``.h5`` files.

:func:`load_keras_model` turns a Keras ``Sequential`` model file into a
:class:`numlstm.Sequential` with the same layers and the same weights, so that ``predict``
gives Keras's numbers. Keras itself is never imported; the weights are read with h5py (extra
``numlstm[keras]``) and the configuration is plain JSON.

The two file kinds
------------------
``.keras`` (Keras 3, and tf-keras ≥ 2.13)
    A ZIP archive with ``config.json`` (the model's configuration), ``metadata.json`` (which
    Keras wrote it) and ``model.weights.h5``. In the HDF5 file each layer's variables are the
    datasets ``vars/0``, ``vars/1``, ... of the group ``layers/<name>``, where ``<name>`` is the
    layer's class in snake case with ``_1``, ``_2``, ... added for repeated classes (``lstm``,
    ``lstm_1``, ...) — not the layer's own name. An LSTM's variables are in its ``cell/vars``,
    a Bidirectional's in ``forward_layer/cell/vars`` and ``backward_layer/cell/vars``.
``.h5`` (legacy full-model files of Keras 2, and of Keras 3's ``model.save("x.h5")``)
    One HDF5 file: the attribute ``model_config`` (JSON), ``keras_version``, and the group
    ``model_weights`` with one group per layer, named by the layer's name, whose attribute
    ``weight_names`` lists the layer's weights in ``get_weights()`` order. Keras 2 names them
    ``lstm/lstm_cell/kernel:0``, Keras 3 ``sequential/lstm/lstm_cell/kernel``; both end in the
    weight's role (``kernel``, ``recurrent_kernel``, ``bias``, ``embeddings``), which is checked.

Both store Keras's LSTM layout, which is numlstm's: ``kernel (features, 4·units)``,
``recurrent_kernel (units, 4·units)``, ``bias (4·units,)``, gate order i, f, c, o (Keras 2 and 3
alike), so the weights are copied as they are.

What "hard_sigmoid" means depends on the Keras that wrote the file: ``clip(0.2x + 0.5, 0, 1)`` in
Keras 2 (numlstm's ``"hard_sigmoid_keras2"``) and ``clip(x/6 + 1/2, 0, 1)`` in Keras 3 (numlstm's
``"hard_sigmoid"``). The version comes from the file (``metadata.json`` or the ``keras_version``
attribute); a file that does not say is refused when it uses ``hard_sigmoid``.

Safety: nothing from the file is executed. Every layer is checked against what numlstm
supports — class, arguments, dtype, sizes — before any layer is built or any weight is read;
``Lambda`` layers, custom classes and custom activations are refused by name. Every weight's
shape is checked against the configuration before it is read, links and external storage in
the HDF5 file are refused, and a file, a member or the weights together may not exceed
``max_bytes``. Every problem raises :class:`numlstm.errors.ModelFileError` naming the file.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..archive import _MAX_HEADER_BYTES, _check_path, _read_member, open_zip_archive
from ..errors import MissingExtraError, ModelFileError

__all__ = ["load_keras_model", "MAX_KERAS_FILE_BYTES", "SUPPORTED_KERAS_LAYERS"]

#: The default of ``max_bytes``: the largest file, archive member or total of weights accepted.
MAX_KERAS_FILE_BYTES = 1 << 31
#: The Keras layer classes numlstm imports.
SUPPORTED_KERAS_LAYERS = ("InputLayer", "LSTM", "Dense", "Dropout", "Masking", "Embedding",
                          "Bidirectional")
#: What a .keras archive's weight groups are called: the class in snake case.
_SNAKE_NAMES = {"LSTM": "lstm", "Dense": "dense", "Dropout": "dropout", "Masking": "masking",
                "Embedding": "embedding", "Bidirectional": "bidirectional"}
_LSTM_ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear", "hard_sigmoid", "softsign", "elu",
                     "selu", "exponential", "softplus", "relu6", "leaky_relu", "hard_tanh",
                     "log_sigmoid")
_DENSE_ACTIVATIONS = ("celu", "elu", "exponential", "gelu", "hard_shrink", "hard_sigmoid",
                      "hard_silu", "hard_swish", "hard_tanh", "leaky_relu", "linear",
                      "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "selu", "sigmoid",
                      "silu", "soft_shrink", "softmax", "softplus", "softsign", "sparse_plus",
                      "sparse_sigmoid", "squareplus", "swish", "tanh", "tanh_shrink")
_MERGE_MODES = ("concat", "sum", "mul", "ave", None)   # None: refused
#: Arguments that only matter while training in Keras: numlstm imports the regularizers and
#: constraints it has and drops the others with a warning (see _note_training_only).
_TRAINING_ONLY = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                  "activity_regularizer", "kernel_constraint", "recurrent_constraint",
                  "bias_constraint", "embeddings_regularizer", "embeddings_constraint",
                  "noise_shape")
#: Configuration keys that change nothing numlstm computes (initializers: the weights come from
#: the file; unroll and implementation: other loops with the same results from zero states).
_IGNORED = ("name", "trainable", "dtype", "kernel_initializer", "recurrent_initializer",
            "bias_initializer", "embeddings_initializer", "unroll", "implementation",
            "use_cudnn", "batch_input_shape", "batch_shape", "input_shape", "input_length",
            "input_dim_for_shape", "build_config", "sparse", "lora_rank", "lora_alpha",
            "quantization_config", "bias_axes", "seed", "time_major")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"


# -- the plan: what the file describes, checked before anything is built --------------------

@dataclass
class _WeightSpec:
    role: str               # kernel, recurrent_kernel, bias, embeddings
    shape: tuple


@dataclass
class _LayerPlan:
    """One Keras layer as numlstm will build it."""

    name: str
    dtype: str
    make: object            # () -> numlstm layer
    weights: list = field(default_factory=list)           # [_WeightSpec]
    # where the weights of a .keras archive live, relative to the layer's group, in order
    keras_paths: list = field(default_factory=list)
    # for a Bidirectional: which weights belong to which direction (for .h5 name checks)
    directions: list = field(default_factory=list)


class _Reader:
    """Raises ModelFileError naming the file; keeps the Keras version for the activations."""

    def __init__(self, path):
        self.shown = os.fspath(path)
        self.keras_major = None

    def fail(self, reason):
        raise ModelFileError(self.shown, reason) from None


def _where(layer: str | None, key: str) -> str:
    return f"layer {layer!r}: {key}" if layer else key


def _get_int(config, key, reader, layer, minimum=1, default=None):
    value = config.get(key, default)
    if type(value) is not int or value < minimum or value > 2 ** 31:
        reader.fail(f"{_where(layer, key)} must be an integer in [{minimum}, 2**31]; got "
                    f"{value!r}")
    return value


def _get_bool(config, key, reader, layer, default=False):
    value = config.get(key, default)
    if type(value) is not bool:
        reader.fail(f"{_where(layer, key)} must be true or false; got {value!r}")
    return value


def _get_float(config, key, reader, layer, low=None, high=None, default=0.0):
    value = config.get(key, default)
    if type(value) not in (int, float) or not math.isfinite(value) or \
            (low is not None and value < low) or (high is not None and value >= high):
        bounds = f" in [{low}, {high})" if low is not None else ""
        reader.fail(f"{_where(layer, key)} must be a finite number{bounds}; got {value!r}")
    return float(value)


def _dtype(config, reader, layer) -> str:
    policy = config.get("dtype", "float32")
    if isinstance(policy, dict):           # Keras 3: {"class_name": "DTypePolicy", ...}
        if policy.get("class_name") != "DTypePolicy":
            reader.fail(f"{_where(layer, 'dtype')} policy {policy.get('class_name')!r} is not "
                        "supported (numlstm runs float32 or float64; no mixed precision or "
                        "quantization)")
        policy = (policy.get("config") or {}).get("name")
    if policy is None:
        policy = "float32"
    if policy not in ("float32", "float64"):
        reader.fail(f"{_where(layer, 'dtype')} {policy!r} is not supported: numlstm runs "
                    "float32 or float64 (no mixed precision or quantization)")
    return policy


def _activation(value, key, reader, layer, allowed) -> str:
    """numlstm's activation name for a Keras one (Keras 2's hard_sigmoid is another function)."""
    if value is None:
        return "linear"
    if isinstance(value, dict):
        reader.fail(f"{_where(layer, key)} is a custom function "
                    f"({value.get('config') or value.get('class_name')!r}); numlstm never runs "
                    f"code from a file and supports {list(allowed)}")
    if not isinstance(value, str) or value not in allowed:
        reader.fail(f"{_where(layer, key)} {value!r} is not supported; numlstm supports "
                    f"{list(allowed)}")
    if value == "hard_sigmoid":
        if reader.keras_major is None:
            reader.fail(f"{_where(layer, key)} is 'hard_sigmoid', which is clip(0.2x + 0.5) in "
                        "Keras 2 and clip(x/6 + 1/2) in Keras 3, and the file does not say "
                        "which Keras wrote it")
        return "hard_sigmoid_keras2" if reader.keras_major < 3 else "hard_sigmoid"
    return value


def _refuse_custom(entry, reader, where="") -> str:
    """The class name of a layer entry, refusing custom and unsupported classes."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str) or \
            not isinstance(entry.get("config"), dict):
        reader.fail(f"{where}a layer entry is not an object with 'class_name' and 'config'")
    class_name = entry["class_name"]
    name = entry["config"].get("name")
    module = entry.get("module")
    registered = entry.get("registered_name")
    described = f"{where}layer {name!r} ({class_name})"
    if class_name == "Lambda":
        reader.fail(f"{described}: Lambda layers hold Python code, and numlstm never runs code "
                    f"from a file; numlstm imports {', '.join(SUPPORTED_KERAS_LAYERS)}")
    custom = (module is not None and not str(module).startswith("keras")) or \
        (registered not in (None, class_name))
    if custom:
        reader.fail(f"{described} is a custom object (module {module!r}, registered as "
                    f"{registered!r}); numlstm never runs code from a file and imports only "
                    f"Keras's own {', '.join(SUPPORTED_KERAS_LAYERS)}")
    if class_name not in SUPPORTED_KERAS_LAYERS:
        reader.fail(f"{described} is not supported; numlstm imports "
                    f"{', '.join(SUPPORTED_KERAS_LAYERS)}")
    return class_name


def _note_training_only(config, reader, layer) -> dict:
    """The file's regularizers and constraints numlstm has (Keras's own L1/L2/L1L2, MaxNorm/
    NonNeg/UnitNorm/MinMaxNorm: :mod:`numlstm.regularizers`, :mod:`numlstm.constraints`), as
    constructor arguments; any other training-only argument (a custom or orthogonal
    regularizer, ``noise_shape``) is dropped with a warning, as it changes no output."""
    from .. import constraints, regularizers
    imported, dropped = {}, []
    for key in _TRAINING_ONLY:
        value = config.get(key)
        if value is None:
            continue
        module = value.get("module") if isinstance(value, dict) else None
        if key.endswith(("_regularizer", "_constraint")) and isinstance(value, dict) and \
                (module is None or str(module).startswith("keras")) and \
                value.get("registered_name") in (None, value.get("class_name")):
            kind = regularizers if key.endswith("_regularizer") else constraints
            try:
                imported[key] = kind.get({"class_name": value.get("class_name"),
                                          "config": value.get("config", {})}, key)
                continue
            except (ValueError, TypeError):
                pass
        dropped.append(key)
    if dropped:
        warnings.warn(f"{reader.shown}: layer {layer!r}: {', '.join(dropped)} only act while "
                      "training in Keras; numlstm does not apply them (outputs are unchanged)",
                      stacklevel=4)
    return imported


def _check_known_keys(config, reader, layer, known) -> None:
    unknown = sorted(set(config) - set(known) - set(_IGNORED) - set(_TRAINING_ONLY))
    if unknown:
        reader.fail(f"layer {layer!r}: argument(s) {unknown} are not supported by numlstm")


_LSTM_KEYS = ("units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias",
              "return_sequences", "return_state", "go_backwards", "stateful",
              "zero_output_for_mask", "dropout", "recurrent_dropout")


def _lstm_options(config, reader, where_name) -> dict:
    """numlstm LSTM arguments for a Keras LSTM config (checked)."""
    _check_known_keys(config, reader, where_name, _LSTM_KEYS)
    if config.get("time_major"):
        reader.fail(f"layer {where_name!r}: time_major=True is not supported (numlstm is "
                    "batch-major)")
    if _get_bool(config, "return_state", reader, where_name):
        reader.fail(f"layer {where_name!r}: return_state=True is not imported (the Keras "
                    "import reads single-output Sequential files; build the model with "
                    "numlstm.Model and set its layers' weights instead)")
    options = {
        "units": _get_int(config, "units", reader, where_name),
        "activation": _activation(config.get("activation", "tanh"), "activation", reader,
                                  where_name, _LSTM_ACTIVATIONS),
        "recurrent_activation": _activation(config.get("recurrent_activation", "sigmoid"),
                                            "recurrent_activation", reader, where_name,
                                            _LSTM_ACTIVATIONS),
        "use_bias": _get_bool(config, "use_bias", reader, where_name, True),
        "unit_forget_bias": _get_bool(config, "unit_forget_bias", reader, where_name, True),
        "return_sequences": _get_bool(config, "return_sequences", reader, where_name),
        "go_backwards": _get_bool(config, "go_backwards", reader, where_name),
        "stateful": _get_bool(config, "stateful", reader, where_name),
        "zero_output_for_mask": _get_bool(config, "zero_output_for_mask", reader, where_name),
        "dropout": _get_float(config, "dropout", reader, where_name, 0.0, 1.0),
        "recurrent_dropout": _get_float(config, "recurrent_dropout", reader, where_name, 0.0,
                                        1.0),
        "dtype": _dtype(config, reader, where_name),
        "name": where_name,
    }
    seed = config.get("seed")
    if type(seed) is int and 0 <= seed < 2 ** 63:
        options["seed"] = seed
    options.update(_note_training_only(config, reader, where_name))
    return options


def _lstm_weights(options, features) -> list:
    units = options["units"]
    specs = [_WeightSpec("kernel", (features, 4 * units)),
             _WeightSpec("recurrent_kernel", (units, 4 * units))]
    if options["use_bias"]:
        specs.append(_WeightSpec("bias", (4 * units,)))
    return specs


def _input_spec(layers, reader):
    """``(batch_shape, dtype)`` of the model input, from the InputLayer (Keras 3:
    ``batch_shape``; Keras 2: ``batch_input_shape``) or the first layer's own record."""
    first = layers[0]["config"]
    candidates = [first.get("batch_shape"), first.get("batch_input_shape")]
    if isinstance(layers[0].get("build_config"), dict):     # Keras 3, a model without Input
        candidates.append(layers[0]["build_config"].get("input_shape"))
    shape = next((c for c in candidates if c is not None), None)
    if shape is None and layers[0]["class_name"] == "Embedding":
        length = first.get("input_length")
        shape = [None, length]
    if not isinstance(shape, list) or not 2 <= len(shape) <= 3 or not all(
            d is None or (type(d) is int and 1 <= d <= 2 ** 31) for d in shape):
        reader.fail(f"the model's input shape is missing or not (batch, timesteps[, "
                    f"features]) with positive sizes; got {shape!r}")
    dtype = first.get("dtype") if layers[0]["class_name"] == "InputLayer" else None
    return tuple(shape), dtype


def _sequence_input(shape, name, class_name, reader) -> None:
    if len(shape) != 3:
        reader.fail(f"layer {name!r} ({class_name}) needs (batch, timesteps, features) input; "
                    f"it would get {list(shape)}")


def _plan_lstm(config, name, dtype, shape, group, reader):
    from ..layers import LSTM
    _sequence_input(shape, name, "LSTM", reader)
    options = _lstm_options(config, reader, name)
    if options["stateful"]:
        if shape[0] is None:
            reader.fail(f"layer {name!r} is stateful but the model's batch size is not fixed")
        options["batch_size"] = shape[0]
    plan = _LayerPlan(name, dtype, lambda: LSTM(**options), _lstm_weights(options, shape[2]))
    plan.keras_paths = [f"{group}/cell/vars/{i}" for i in range(len(plan.weights))]
    units = options["units"]
    return plan, (shape[0], shape[1], units) if options["return_sequences"] else (shape[0], units)


def _plan_bidirectional(config, name, dtype, shape, group, reader):
    from ..layers import LSTM, Bidirectional
    _sequence_input(shape, name, "Bidirectional", reader)
    _check_known_keys(config, reader, name, ("layer", "backward_layer", "merge_mode", "weights"))
    merge_mode = config.get("merge_mode", "concat")
    if merge_mode not in _MERGE_MODES:
        reader.fail(f"layer {name!r}: merge_mode {merge_mode!r} is not one of "
                    f"{list(_MERGE_MODES)}")
    if merge_mode is None:
        reader.fail(f"layer {name!r}: merge_mode=None returns two outputs, which the Keras "
                    "import does not read (it reads single-output Sequential files); it "
                    "imports concat, sum, mul and ave")
    forward_entry = config.get("layer")
    if forward_entry is None:
        reader.fail(f"layer {name!r} (Bidirectional) has no wrapped layer")
    forward = _lstm_options(forward_entry["config"], reader, forward_entry["config"].get("name"))
    backward_entry = config.get("backward_layer")
    if backward_entry is not None:
        backward = _lstm_options(backward_entry["config"], reader,
                                 backward_entry["config"].get("name"))
    else:                                       # Keras: a copy of the layer, going the other way
        backward = dict(forward, go_backwards=not forward["go_backwards"],
                        name=f"backward_{forward['name']}")
    for options in (forward, backward):
        if options["stateful"]:
            reader.fail(f"layer {name!r}: a stateful Bidirectional is not supported")
        # Keras's Bidirectional outputs zeros at masked steps of a returned sequence, whatever
        # the wrapped layers' own zero_output_for_mask says
        options["zero_output_for_mask"] = options["return_sequences"]
    if backward["go_backwards"] == forward["go_backwards"] or \
            backward["return_sequences"] != forward["return_sequences"] or \
            backward["units"] != forward["units"]:
        reader.fail(f"layer {name!r}: the backward layer must go the other way with the same "
                    "units and return_sequences as the forward one")
    wrapper = _bidirectional_activity(config, forward, backward, merge_mode, reader, name)
    forward_weights = _lstm_weights(forward, shape[2])
    backward_weights = _lstm_weights(backward, shape[2])
    plan = _LayerPlan(name, dtype, lambda: Bidirectional(
        LSTM(**forward), merge_mode=merge_mode, name=name, backward_layer=LSTM(**backward),
        **wrapper), forward_weights + backward_weights)
    plan.keras_paths = [f"{group}/forward_layer/cell/vars/{i}"
                        for i in range(len(forward_weights))] + \
        [f"{group}/backward_layer/cell/vars/{i}" for i in range(len(backward_weights))]
    plan.directions = ["forward_"] * len(forward_weights) + \
        ["backward_"] * len(backward_weights)
    units = forward["units"] * (2 if merge_mode == "concat" else 1)
    return plan, (shape[0], shape[1], units) if forward["return_sequences"] else \
        (shape[0], units)


def _bidirectional_activity(config, forward, backward, merge_mode, reader, name) -> dict:
    """The Bidirectional's ``activity_regularizer`` argument, taking the wrapped LSTMs' out of
    ``forward``/``backward`` (numlstm refuses them inside a Bidirectional). Keras penalises
    each direction's output with its own; with ``merge_mode="concat"``, no regularizer on the
    wrapper and the same one on both directions, that is the wrapper's penalty on the merged
    output, which is imported; other combinations are dropped with a warning (they change no
    output)."""
    outer = _note_training_only(config, reader, name).get("activity_regularizer")
    inner = [options.pop("activity_regularizer", None) for options in (forward, backward)]
    if any(regularizer is not None for regularizer in inner):
        if merge_mode == "concat" and outer is None and inner[0] == inner[1]:
            outer = inner[0]
        else:
            warnings.warn(f"{reader.shown}: layer {name!r}: the wrapped LSTMs' "
                          "activity_regularizer only acts while training in Keras and numlstm "
                          "has no equivalent here (it has one for merge_mode='concat' with the "
                          "same regularizer on both directions and none on the wrapper); it "
                          "is not applied (outputs are unchanged)", stacklevel=4)
    return {} if outer is None else {"activity_regularizer": outer}


def _plan_dense(config, name, dtype, shape, group, reader):
    from ..layers import Dense
    _check_known_keys(config, reader, name, ("units", "activation", "use_bias"))
    if config.get("lora_rank"):
        reader.fail(f"layer {name!r}: LoRA weights are not supported")
    units = _get_int(config, "units", reader, name)
    options = {"units": units, "activation": _activation(
        config.get("activation"), "activation", reader, name, _DENSE_ACTIVATIONS),
        "use_bias": _get_bool(config, "use_bias", reader, name, True), "dtype": dtype,
        "name": name}
    options.update(_note_training_only(config, reader, name))
    plan = _LayerPlan(name, dtype, lambda: Dense(**options),
                      [_WeightSpec("kernel", (shape[-1], units))] +
                      ([_WeightSpec("bias", (units,))] if options["use_bias"] else []))
    plan.keras_paths = [f"{group}/vars/{i}" for i in range(len(plan.weights))]
    return plan, tuple(shape[:-1]) + (units,)


def _plan_dropout(config, name, dtype, shape, group, reader):
    from ..layers import Dropout
    _check_known_keys(config, reader, name, ("rate",))
    options = {"rate": _get_float(config, "rate", reader, name, 0.0, 1.0), "dtype": dtype,
               "name": name}
    options.update(_note_training_only(config, reader, name))
    return _LayerPlan(name, dtype, lambda: Dropout(**options)), shape


def _plan_masking(config, name, dtype, shape, group, reader):
    from ..layers import Masking
    _check_known_keys(config, reader, name, ("mask_value",))
    _sequence_input(shape, name, "Masking", reader)
    options = {"mask_value": _get_float(config, "mask_value", reader, name), "dtype": dtype,
               "name": name}
    return _LayerPlan(name, dtype, lambda: Masking(**options)), shape


def _plan_embedding(config, name, dtype, shape, group, reader):
    from ..layers import Embedding
    _check_known_keys(config, reader, name, ("input_dim", "output_dim", "mask_zero"))
    if len(shape) != 2:
        reader.fail(f"layer {name!r}: an Embedding must be the first layer (it reads token ids)")
    if config.get("lora_rank"):
        reader.fail(f"layer {name!r}: LoRA weights are not supported")
    options = {"input_dim": _get_int(config, "input_dim", reader, name),
               "output_dim": _get_int(config, "output_dim", reader, name),
               "mask_zero": _get_bool(config, "mask_zero", reader, name), "dtype": dtype,
               "name": name}
    options.update(_note_training_only(config, reader, name))
    plan = _LayerPlan(name, dtype, lambda: Embedding(**options), [_WeightSpec(
        "embeddings", (options["input_dim"], options["output_dim"]))])
    plan.keras_paths = [f"{group}/vars/0"]
    return plan, tuple(shape) + (options["output_dim"],)


#: Keras class -> planner(config, name, dtype, input shape, .keras weights group, reader)
#: returning (_LayerPlan, output shape).
_PLANNERS = {"LSTM": _plan_lstm, "Bidirectional": _plan_bidirectional, "Dense": _plan_dense,
             "Dropout": _plan_dropout, "Masking": _plan_masking,
             "Embedding": _plan_embedding}


def _model_layers(model_config, reader) -> tuple:
    """The Sequential's layer entries, each of a supported Keras class (refused otherwise)."""
    if not isinstance(model_config, dict):
        reader.fail("the model configuration is not a JSON object")
    top = model_config.get("class_name")
    if top != "Sequential":
        reader.fail(f"the file holds a {top!r} model; the Keras import reads Sequential "
                    "models (a stack of " + ", ".join(SUPPORTED_KERAS_LAYERS) + "); rebuild a "
                    "functional model with numlstm.Model and set each layer's weights")
    body = model_config.get("config")
    layers = body.get("layers") if isinstance(body, dict) else body   # Keras 2.2: a plain list
    if not isinstance(layers, list) or not layers:
        reader.fail("the Sequential model has no list of layers")
    for entry in layers:                        # refuse what is unsupported before anything else
        _refuse_custom(entry, reader)
        if entry["class_name"] == "Bidirectional":
            where = f"Bidirectional {entry['config'].get('name')!r}: "
            for key in ("layer", "backward_layer"):
                inner = entry["config"].get(key)
                if inner is not None and _refuse_custom(inner, reader, where) != "LSTM":
                    reader.fail(f"{where}it wraps a {inner['class_name']}; numlstm supports "
                                "Bidirectional(LSTM)")
    name = body.get("name") if isinstance(body, dict) else None
    return layers, name if isinstance(name, str) and name else "sequential"


def _plan(model_config, reader) -> tuple:
    """Check the whole configuration and return ``(Input, [_LayerPlan], model name)`` without
    building any layer."""
    from ..layers import Input
    layers, model_name = _model_layers(model_config, reader)
    has_input = layers[0]["class_name"] == "InputLayer"
    if has_input and (layers[0]["config"].get("sparse") or layers[0]["config"].get("ragged")):
        reader.fail("sparse and ragged inputs are not supported; numlstm takes dense "
                    "(batch, timesteps[, features]) arrays")
    batch_shape, input_dtype = _input_spec(layers, reader)
    entries = layers[1:] if has_input else layers
    if not entries or any(e["class_name"] == "InputLayer" for e in entries):
        reader.fail("an InputLayer may only come first, and a model needs a layer after it")
    token_input = entries[0]["class_name"] == "Embedding"
    if token_input:
        if len(batch_shape) == 3 and batch_shape[2] is None:
            batch_shape = batch_shape[:2]
        if len(batch_shape) != 2:
            reader.fail(f"an Embedding's input must be (batch, timesteps) token ids; the file "
                        f"records {list(batch_shape)}")
    elif len(batch_shape) != 3 or batch_shape[2] is None:
        reader.fail(f"the input must be (batch, timesteps, features) with a known number of "
                    f"features; the file records {list(batch_shape)}")
    model_dtype, shape, plans = None, batch_shape, []
    counters: dict[str, int] = {}
    for entry in entries:
        class_name, config = entry["class_name"], entry["config"]
        name = config.get("name")
        if not isinstance(name, str) or not name:
            reader.fail(f"a {class_name} layer has no name")
        # the .keras weights group: the class in snake case, _1, _2, ... for repeats
        snake = _SNAKE_NAMES[class_name]
        counters[snake] = counters.get(snake, -1) + 1
        group = snake if counters[snake] == 0 else f"{snake}_{counters[snake]}"
        dtype = _dtype(config, reader, name)
        model_dtype = model_dtype or dtype
        if dtype != model_dtype:
            reader.fail(f"layer {name!r} computes in {dtype} after {model_dtype} layers; "
                        "numlstm imports models whose layers share one dtype")
        plan, shape = _PLANNERS[class_name](config, name, dtype, shape, group, reader)
        plans.append(plan)
    if token_input:
        dtype = input_dtype if input_dtype in ("int32", "int64") else "int64"
    else:
        dtype = model_dtype
    return Input(batch_shape[1:], batch_size=batch_shape[0], dtype=dtype), plans, model_name


# -- reading the weights ----------------------------------------------------------------------

def _import_h5py():
    try:
        import h5py
    except ImportError as error:
        raise MissingExtraError("keras", "h5py", "numlstm.load_keras_model",
                                module=error.name) from None
    return h5py


def _read_dataset(h5py, parent, path, spec, dtype, reader, what):
    """The array at ``parent[path]``, after checking that it is a plain float dataset of the
    expected shape held in this file (no links to other files, no external storage)."""
    node = parent
    for part in path.split("/"):
        if not isinstance(node, h5py.Group) or part not in node:
            reader.fail(f"{what}: {path!r} is missing from the weights")
        link = node.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            reader.fail(f"{what}: {path!r} is a link ({type(link).__name__}); numlstm reads "
                        "only data stored in the file itself")
        node = node[part]
    if not isinstance(node, h5py.Dataset):
        reader.fail(f"{what}: {path!r} is not a dataset")
    if node.external or node.is_virtual:
        reader.fail(f"{what}: {path!r} keeps its data outside the file; refused")
    if node.dtype.kind != "f" or tuple(node.shape) != spec.shape:
        reader.fail(f"{what}: {spec.role} {path!r} must be a float array of shape {spec.shape} "
                    f"(from the layer's configuration); the file holds {node.dtype} "
                    f"{tuple(node.shape)}")
    try:
        array = np.asarray(node[()], dtype=dtype)
    except Exception as error:      # damaged chunks, filters h5py lacks, ...
        reader.fail(f"{what}: {path!r} cannot be read ({type(error).__name__}: {error})")
    if not np.isfinite(array).all():
        reader.fail(f"{what}: {spec.role} {path!r} holds NaN or infinite values")
    return array


def _weights_from_keras_archive(h5py, weights_file, plans, reader) -> list:
    arrays = []
    for plan in plans:
        for spec, path in zip(plan.weights, plan.keras_paths):
            group = path.split("/")[0]
            vars_group = weights_file.get(f"layers/{group}/vars")
            recorded = None if vars_group is None else vars_group.attrs.get("name")
            if isinstance(recorded, bytes):
                recorded = recorded.decode("utf-8", "replace")
            if recorded is not None and recorded != plan.name:
                reader.fail(f"layer {plan.name!r}: its weights group layers/{group} belongs to "
                            f"a layer named {recorded!r}; the archive's layers do not match its "
                            "configuration")
            arrays.append(_read_dataset(h5py, weights_file, f"layers/{path}", spec,
                                        plan.dtype, reader, f"layer {plan.name!r}"))
    return arrays


def _weight_names(group, reader, layer) -> list:
    names = group.attrs.get("weight_names")
    if names is None:
        reader.fail(f"layer {layer!r}: its weights group has no 'weight_names' attribute")
    names = [n.decode("utf-8") if isinstance(n, bytes) else n for n in np.asarray(names).ravel()]
    if not all(isinstance(n, str) for n in names):
        reader.fail(f"layer {layer!r}: 'weight_names' is not a list of strings")
    return names


def _weights_from_legacy_h5(h5py, handle, plans, reader) -> list:
    """Keras 2 and 3 legacy files: per layer, the datasets that ``weight_names`` lists, in
    ``get_weights()`` order; each name must end in the role expected at its position."""
    root = handle.get("model_weights", handle)     # a weights-only file has no model_weights
    arrays = []
    for plan in plans:
        if not plan.weights:
            continue
        if plan.name not in root or not isinstance(root[plan.name], h5py.Group):
            reader.fail(f"layer {plan.name!r}: no weights group of that name in the file")
        group = root[plan.name]
        names = _weight_names(group, reader, plan.name)
        if len(names) != len(plan.weights):
            reader.fail(f"layer {plan.name!r}: the file lists {len(names)} weights {names}, its "
                        f"configuration needs {len(plan.weights)} "
                        f"({[s.role for s in plan.weights]})")
        for position, (spec, name) in enumerate(zip(plan.weights, names)):
            parts = name.split("/")
            role = parts[-1].split(":")[0]
            direction = plan.directions[position] if plan.directions else None
            if role != spec.role or (direction and not any(p.startswith(direction)
                                                           for p in parts)):
                reader.fail(f"layer {plan.name!r}: weight {position} is {name!r}, expected the "
                            f"{(direction or '') + 'layer'} {spec.role}")
            arrays.append(_read_dataset(h5py, group, name, spec, plan.dtype, reader,
                                        f"layer {plan.name!r}"))
    return arrays


# -- the files --------------------------------------------------------------------------------

def _keras_major(version, reader) -> int | None:
    if version is None:
        return None
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        reader.fail(f"unreadable keras_version {version!r}")


def _json(data, what, reader):
    try:
        value = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        reader.fail(f"{what} is not valid UTF-8 JSON ({type(error).__name__}: {error})")
    return value


def _file_start(path, reader, max_bytes) -> bytes:
    """The first bytes of the file, after the checks every model file gets."""
    target = _check_path(path)
    try:
        if target.is_dir():
            reader.fail("it is a directory, not a file")
        size = os.stat(target).st_size
        with open(target, "rb") as handle:
            start = handle.read(8)
    except FileNotFoundError:
        reader.fail("no such file")
    except OSError as error:
        reader.fail(f"cannot read it ({error.strerror or error})")
    if size == 0:
        reader.fail("the file is empty")
    if size > max_bytes:
        reader.fail(f"the file is {size} bytes, more than max_bytes={max_bytes} (raise "
                    "max_bytes to read it)")
    return start


def _read_keras_archive(h5py, path, reader, max_bytes):
    with open_zip_archive(path, reader.fail, "Keras model file") as zf:
        names = set(zf.namelist())
        for member in ("config.json", "model.weights.h5"):
            if member not in names:
                reader.fail(f"not a Keras model archive: member {member!r} is missing")
        if "metadata.json" in names:
            metadata = _json(_read_member(zf, "metadata.json", _MAX_HEADER_BYTES, reader.fail),
                             "metadata.json", reader)
            if isinstance(metadata, dict):
                reader.keras_major = _keras_major(metadata.get("keras_version"), reader)
        config = _json(_read_member(zf, "config.json", _MAX_HEADER_BYTES, reader.fail),
                       "config.json", reader)
        input_layer, plans, name = _plan(config, reader)
        _check_total(plans, reader, max_bytes)
        data = _read_member(zf, "model.weights.h5", max_bytes, reader.fail)
    try:
        weights_file = h5py.File(io.BytesIO(data), "r")
    except Exception as error:
        reader.fail(f"member 'model.weights.h5' is not a readable HDF5 file "
                    f"({type(error).__name__}: {error})")
    with weights_file:
        arrays = _weights_from_keras_archive(h5py, weights_file, plans, reader)
    return input_layer, plans, name, arrays


def _read_legacy_h5(h5py, path, reader, max_bytes):
    try:
        handle = h5py.File(os.fspath(path), "r")
    except Exception as error:
        reader.fail(f"not a readable HDF5 file ({type(error).__name__}: {error})")
    with handle:
        raw = handle.attrs.get("model_config")
        if raw is None:
            reader.fail("the HDF5 file holds no model configuration (attribute 'model_config'):"
                        " a weights-only file cannot be imported without its model")
        reader.keras_major = _keras_major(handle.attrs.get("keras_version"), reader)
        input_layer, plans, name = _plan(_json(raw, "the model_config attribute", reader),
                                         reader)
        _check_total(plans, reader, max_bytes)
        arrays = _weights_from_legacy_h5(h5py, handle, plans, reader)
    return input_layer, plans, name, arrays


def _check_total(plans, reader, max_bytes) -> None:
    """Refuse configurations whose weights alone exceed the limit, before anything is built."""
    total = sum(math.prod(spec.shape) * 8 for plan in plans for spec in plan.weights)
    if total > max_bytes:
        reader.fail(f"the configuration declares {total} bytes of weights (at 8 bytes each), "
                    f"more than max_bytes={max_bytes}")


def load_keras_model(path, backend=None, *, max_bytes=MAX_KERAS_FILE_BYTES):
    """Read a trained Keras ``Sequential`` model into a :class:`numlstm.Sequential`.

    Parameters
    ----------
    path : str or os.PathLike
        A Keras 3 ``.keras`` archive or a legacy full-model ``.h5`` file (Keras 2 or 3); the
        kind is recognised from the file's first bytes, not its name.
    backend : str, optional
        The backend the model runs on (None: the one in use at call time).
    max_bytes : int, default 2**31
        The largest file, archive member and total of declared weights accepted.

    Returns
    -------
    numlstm.Sequential
        Built, with Keras's layer names and weights; not compiled (call ``compile`` to train
        it further). ``predict`` gives Keras's outputs (float32: within 1e-5).

    Supported layers: InputLayer, LSTM (every argument numlstm's LSTM has, both hard
    sigmoids, ``stateful`` with a fixed batch size), Dense (every Keras activation numlstm's
    Dense has), Dropout, Masking, Embedding (``mask_zero``) and Bidirectional(LSTM) with every
    merge mode. Keras's ``unroll`` and ``implementation`` are ignored (the same numbers from
    zero initial states). Keras's own regularizers (L1, L2, L1L2) and constraints (MaxNorm,
    NonNeg, UnitNorm, MinMaxNorm) are imported, so that training the model further applies
    them; others (custom, orthogonal), which only act in training, are dropped with a
    warning. A stateful layer's carried states are not imported: they start
    at zero, as after Keras's ``reset_states()``.

    Raises
    ------
    ModelFileError
        Naming the file: missing, empty, too large, not a Keras file, damaged, a model that is
        not Sequential, an unsupported layer, argument, activation or dtype (named, with what
        numlstm supports), a Lambda layer or custom object, weights missing or of the wrong
        shape. Raised before any layer is built.
    MissingExtraError
        When h5py is not installed (``pip install "numlstm[keras]"``).
    """
    from ..models import Sequential
    from .. import validation as V
    reader = _Reader(path)
    max_bytes = V.check_positive_int(max_bytes, "max_bytes")
    if backend is not None:
        from ..backends import BACKEND_NAMES, get_backend
        V.check_name(backend, "backend", BACKEND_NAMES)
        get_backend(backend)
    h5py = _import_h5py()
    start = _file_start(path, reader, max_bytes)
    if start.startswith(_ZIP_SIGNATURE):
        input_layer, plans, name, arrays = _read_keras_archive(h5py, path, reader, max_bytes)
    elif start.startswith(_HDF5_SIGNATURE):
        input_layer, plans, name, arrays = _read_legacy_h5(h5py, path, reader, max_bytes)
    else:
        reader.fail("not a Keras model file (neither a .keras ZIP archive nor an HDF5 .h5 "
                    "file)")
    model = Sequential([input_layer] + [plan.make() for plan in plans], backend=backend,
                       seed=0, name=name)
    model.build()
    model.set_weights(arrays)
    return model
