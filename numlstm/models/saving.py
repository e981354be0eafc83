"""Models as plain data and as files: configurations (``get_config``/``from_config``, JSON),
whole models (:func:`load_model`), weights alone (``save_weights``/``load_weights``).

Every file is a numlstm archive (:mod:`numlstm.archive`: JSON configuration plus arrays, no
pickle, written atomically). Three formats:

``numlstm.sequential`` (version 1)
    A :class:`~numlstm.Sequential`: ``layers`` (class name and config each), ``input`` (the
    Input's config or null), ``batch_shape``; files written before functional models exist
    are of this format and load unchanged.
``numlstm.model`` (version 1)
    A functional :class:`~numlstm.Model`: ``layers`` in the model's order, ``inputs`` (Input
    configs), ``nodes`` -- each ``{"layer": index into layers, "inputs": [ref, ...]}`` in
    an order that runs every node after its inputs' -- and ``outputs`` (refs). A ref is
    ``["input", i]`` or ``["node", n, k]`` (output ``k`` of node ``n``, an earlier node).
``numlstm.weights`` (version 1)
    ``layers``: each layer's name, class and weight shapes; the arrays ``weights/i``.

A whole-model file also holds the weights (``weights/i``, the order of ``model.weights``),
``compile`` settings, the optimizer's iterations and slots (``optimizer/<slot>/<i>``; Nadam
also the 0-d ``optimizer/u_product``) and the training generator's state
(``save_model(..., include_compile=False)`` leaves out the compile settings and the
optimizer). Loading checks the whole configuration (every value by the layers' own
constructors, which allocate nothing) and every array's shape against what the configuration
calls for before anything is built; the weights then come from the file and no initializer
runs.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np

from .. import losses as L
from .. import optimizers as O
from .. import validation as V
from ..backends import BACKEND_NAMES, backend_status, get_backend
from ..layers import LAYER_CLASSES
from ..layers.base import WeightFeed, loading_weights
from ..layers.symbolic import Input, call_on_symbolic
from .model import Model
from .sequential import Sequential

#: The name and version of the saved Sequential format (inside a numlstm archive).
MODEL_FORMAT = "numlstm.sequential"
MODEL_FORMAT_VERSION = 1
#: ... of a functional Model.
FUNCTIONAL_FORMAT = "numlstm.model"
FUNCTIONAL_FORMAT_VERSION = 1
#: ... of a weights-only file.
WEIGHTS_FORMAT = "numlstm.weights"
WEIGHTS_FORMAT_VERSION = 1


# -- configurations -----------------------------------------------------------------------------

def _layer_entry(layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def sequential_config(model: Sequential) -> dict:
    return {"name": model.name, "seed": model._seed, "backend": model._backend_name,
            "trainable": model.trainable,
            "input": None if model._input is None else model._input.get_config(),
            "batch_shape": list(model._graph.inputs[0].shape) if model.built else None,
            "layers": [_layer_entry(layer) for layer in model.layers]}


def functional_config(model: Model) -> dict:
    graph = model._require_built()
    layer_index = {id(layer): i for i, layer in enumerate(graph.layers)}
    input_index = {id(t): i for i, t in enumerate(graph.inputs)}
    node_index = {id(node): i for i, node in enumerate(graph.nodes)}

    def ref(tensor):
        if id(tensor) in input_index:
            return ["input", input_index[id(tensor)]]
        return ["node", node_index[id(tensor.node)], tensor.index]
    return {"name": model.name, "seed": model._seed, "backend": model._backend_name,
            "trainable": model.trainable,
            "layers": [_layer_entry(layer) for layer in graph.layers],
            "inputs": [tensor.get_config() for tensor in graph.inputs],
            "nodes": [{"layer": layer_index[id(node.layer)],
                       "inputs": [ref(t) for t in node.inputs]} for node in graph.nodes],
            "outputs": [ref(t) for t in graph.outputs],
            "single_input": model._single_input, "single_output": model._single_output}


def _layers_from_entries(entries) -> list:
    if not isinstance(entries, list):
        raise TypeError(f"'layers' must be a list; got {V.kind_of(entries)}")
    layers = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise TypeError(f"a layer entry must be an object with a 'config' object; got "
                            f"{_short(repr(entry), 80)}")
        class_name = entry.get("class_name")
        if class_name not in LAYER_CLASSES:
            raise ValueError(f"the configuration names an unknown layer class {class_name!r}; "
                             f"known: {sorted(LAYER_CLASSES)}")
        layers.append(LAYER_CLASSES[class_name].from_config(dict(entry["config"])))
    return layers


def model_from_config(entry: dict, *, backend=None, weights=None, name_clashes_ok=False):
    """The model ``{"class_name": "Sequential" | "Model", "config": ...}`` describes; with
    ``weights`` (a list in ``model.weights`` order) the layers take them, else they are
    initialised."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise TypeError("a model configuration must be {'class_name': ..., 'config': {...}}; "
                        f"got {_short(repr(entry), 80)}")
    kind, config = entry.get("class_name"), entry["config"]
    functional = "nodes" in config
    if kind == "Sequential" and functional:
        raise ValueError("this is a functional Model's configuration (it has 'nodes'); "
                         "rebuild it with Model.from_config or model_from_json")
    if kind in ("Model", "Functional") and not functional:
        raise ValueError("this is not a functional Model's configuration (it has no "
                         "'nodes'); a Sequential's rebuilds with Sequential.from_config")
    if kind == "Sequential":
        return _sequential_from_config(config, backend, weights, name_clashes_ok)
    if kind in ("Model", "Functional"):
        return _functional_from_config(config, backend, weights)
    raise ValueError(f"unknown model class {kind!r}; known: ['Model', 'Sequential']")


def _sequential_from_config(config, backend, weights, name_clashes_ok):
    layers = _layers_from_entries(config.get("layers"))
    if name_clashes_ok:
        for index, layer in enumerate(layers):
            if any(layer.name == earlier.name for earlier in layers[:index]):
                layer._name_given = False        # a file written before names were unique
    # The layers go in without the Input, so that nothing is built yet; then the chain is
    # built once, for the saved shape.
    model = Sequential(layers, backend=backend if backend is not None else
                       config.get("backend"), seed=config.get("seed"),
                       name=V.check_string(config.get("name", "sequential"), "name"))
    if config.get("input") is not None:
        model._input = Input.from_config(config["input"])
    batch_shape = config.get("batch_shape")
    if batch_shape is not None:
        # With weights, every weight's shape is checked as its layer is rebuilt, and the
        # layers take the file's arrays: no initializer runs, nothing large is allocated.
        model._build(V.check_batch_shape(batch_shape), weights)
    elif weights is not None:
        raise ValueError("a saved Sequential needs its 'batch_shape'")
    # the layers' own flags came with their configs; the model's is set without touching them
    model._trainable = V.check_bool(config.get("trainable", True), "trainable")
    return model


def _functional_from_config(config, backend, weights):
    layers = _layers_from_entries(config.get("layers"))
    inputs_config = config.get("inputs")
    if not isinstance(inputs_config, list) or not inputs_config:
        raise TypeError("'inputs' must be a non-empty list of Input configurations")
    inputs = [Input.from_config(entry) for entry in inputs_config]
    nodes = config.get("nodes")
    if not isinstance(nodes, list):
        raise TypeError("'nodes' must be a list")
    produced: list[list] = []

    def resolve(ref, where):
        if not isinstance(ref, list) or not ref:
            raise TypeError(f"{where}: a tensor reference must be ['input', i] or "
                            f"['node', n, k]; got {_short(repr(ref), 80)}")
        if ref[0] == "input" and len(ref) == 2:
            index = V.check_int_at_least(ref[1], f"{where} input index", 0, len(inputs) - 1)
            return inputs[index]
        if ref[0] == "node" and len(ref) == 3:
            node = V.check_int_at_least(ref[1], f"{where} node index", 0, len(produced) - 1) \
                if produced else V.check_int_at_least(ref[1], f"{where} node index", 0, -1)
            outputs = produced[node]
            return outputs[V.check_int_at_least(ref[2], f"{where} output index", 0,
                                                len(outputs) - 1)]
        raise ValueError(f"{where}: a tensor reference must be ['input', i] or ['node', n, k]; "
                         f"got {_short(repr(ref), 80)}")
    feed = WeightFeed(weights) if weights is not None else None
    with loading_weights(feed) if feed is not None else contextlib.nullcontext():
        for position, node in enumerate(nodes):
            if not isinstance(node, dict):
                raise TypeError(f"node {position} must be an object; got {V.kind_of(node)}")
            layer = layers[V.check_int_at_least(node.get("layer"), f"node {position} layer",
                                                0, len(layers) - 1)]
            tensors = [resolve(ref, f"node {position}") for ref in
                       _as_list(node.get("inputs"), f"node {position} inputs")]
            result = call_on_symbolic(layer, tensors)
            produced.append(result if isinstance(result, list) else [result])
    if feed is not None:
        feed.check_all_taken()
    outputs = [resolve(ref, "outputs") for ref in _as_list(config.get("outputs"), "outputs")]
    single_input = bool(config.get("single_input", len(inputs) == 1))
    single_output = bool(config.get("single_output", len(outputs) == 1))
    model = Model(inputs[0] if single_input and len(inputs) == 1 else inputs,
                  outputs[0] if single_output and len(outputs) == 1 else outputs,
                  name=V.check_string(config.get("name", "model"), "name"),
                  backend=backend if backend is not None else config.get("backend"),
                  seed=config.get("seed"))
    if [id(layer) for layer in model.layers] != [id(layer) for layer in layers]:
        raise ValueError("the configuration's layers are not in the order its nodes use them "
                         "(or some layer is used by no node)")
    model._trainable = V.check_bool(config.get("trainable", True), "trainable")
    return model


def _as_list(value, where) -> list:
    if not isinstance(value, list):
        raise TypeError(f"{where} must be a list; got {V.kind_of(value)}")
    return value


def model_from_json(text, *, backend=None):
    """The model that :meth:`Model.to_json` described, with fresh weights (load a weights
    file with :meth:`Model.load_weights` for trained ones)."""
    if not isinstance(text, (str, bytes)):
        raise TypeError(f"model_from_json takes the JSON text; got {V.kind_of(text)}")
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"model_from_json: not JSON ({error})") from None
    except RecursionError:
        raise ValueError("model_from_json: the JSON nests too deeply to be a model "
                         "configuration") from None
    return model_from_config(entry, backend=backend)


# -- whole models -------------------------------------------------------------------------------

def _compile_config(model: Model):
    if not model.compiled:
        return None
    targets = model._targets
    several = len(targets) > 1
    loss = [None if t.loss is None else t.loss.get_config() for t in targets]
    def specs(values):
        return [v if isinstance(v, str) else v.get_config() for v in values]
    metrics = [specs(getattr(t, "metric_specs", t.metric_names)) for t in targets]
    weighted = [specs(getattr(t, "weighted_specs", [])) for t in targets]
    config = {"optimizer": model.optimizer.get_config(),
              "loss": loss if several else loss[0],
              "metrics": metrics if several else metrics[0],
              "loss_weights": [t.weight for t in targets]}
    if any(weighted):
        config["weighted_metrics"] = weighted if several else weighted[0]
    return config


def save_model(model: Model, path, *, include_compile: bool = True):
    """Write ``model`` to ``path``; with ``include_compile=False`` the file holds the
    architecture and weights only (loaded uncompiled, no optimizer state): what inference
    needs, for models whose compile settings cannot be written (a plain-function metric)."""
    from .. import __version__
    from ..archive import save_archive
    sequential = isinstance(model, Sequential)
    model._require_built()
    compiled = model.compiled and include_compile
    if compiled and not model._targets:
        model._resolve_targets()
    config = {"format": MODEL_FORMAT if sequential else FUNCTIONAL_FORMAT,
              "format_version": MODEL_FORMAT_VERSION if sequential else
              FUNCTIONAL_FORMAT_VERSION,
              "numlstm_version": __version__, "model": model.get_config(),
              "compile": _compile_config(model) if compiled else None,
              "optimizer_iterations": 0,
              "train_rng": _jsonable_rng_state(model._train_rng)}
    arrays = {f"weights/{i}": w for i, w in enumerate(model.weights)}
    if compiled:
        iterations, slots = model.optimizer.get_state()
        config["optimizer_iterations"] = iterations
        arrays.update({f"optimizer/{k}": v for k, v in slots.items()})
    V.check_all_finite({**_named_weights(model),
                        **{f"optimizer state {k[len('optimizer/'):]!r}": v
                           for k, v in arrays.items() if k.startswith("optimizer/")}},
                       f"cannot save the model to {str(path)!r}")
    return save_archive(path, config, arrays)


def load_model(path, backend=None, *, max_bytes=None) -> Model:
    """Rebuild a model written by :meth:`Model.save` (a ``Sequential`` or a functional
    ``Model``): layers, connections, weights, compile settings, optimizer state.
    ``backend`` overrides the saved backend choice (e.g. a model trained on ``cuda`` served
    on ``numba``). Only the known layer classes can be named by a file, and nothing in the
    file is executed. A missing, truncated, tampered or foreign file raises
    :class:`numlstm.errors.ModelFileError` naming the file.

    A bad ``backend`` raises ``ValueError``/``TypeError`` (an unusable one
    :class:`~numlstm.errors.BackendUnavailableError`) before the file is read. Without
    ``backend``, a model saved for a backend that cannot run here (e.g. ``cuda`` on a machine
    without a GPU) raises :class:`~numlstm.errors.BackendUnavailableError` naming the saved
    backend and the call that loads it on another one, rather than failing later in
    ``predict``.

    Nothing is built before the whole configuration has been checked: every value's type and
    range by the layers' own constructors (which allocate nothing), and every weight array's
    shape against what the configuration calls for; the weights then come from the file and
    no initializer runs. ``max_bytes`` bounds the bytes the file's arrays may declare in all
    (None: :data:`numlstm.archive.DEFAULT_MAX_BYTES`, 4 GiB); see :mod:`numlstm.archive` for
    what else the loader refuses."""
    from ..archive import load_archive
    from ..errors import ModelFileError
    if backend is not None:
        V.check_name(backend, "backend", BACKEND_NAMES)
        get_backend(backend)                 # an unusable backend fails before any file work
    config, arrays = load_archive(path, **({} if max_bytes is None else
                                           {"max_bytes": max_bytes}))
    model_config = config.get("model") if isinstance(config, dict) else None
    saved = model_config.get("backend") if isinstance(model_config, dict) else None
    if backend is None and saved in BACKEND_NAMES:
        _require_saved_backend(path, saved)
    try:
        return _model_from_archive(config, arrays, backend)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError, MemoryError) as error:
        # Any of these from a file that passed the archive's checks means a config that no
        # numlstm wrote (MemoryError included, although the checks leave nothing large to
        # allocate): one error type, naming the file.
        raise ModelFileError(path, f"not a valid numlstm model ({type(error).__name__}: "
                                   f"{_short(error)})") from None


def _short(error, limit: int = 300) -> str:
    """An exception's message, cut to ``limit`` characters (a tampered value may be huge)."""
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "..."


def _require_saved_backend(path, saved: str) -> None:
    """Raise BackendUnavailableError when the backend a model was saved for cannot run here,
    with the call that loads it on one that can."""
    from ..errors import BackendUnavailableError
    status = backend_status(saved)
    if status.available:
        return
    usable = [n for n in ("numba", "numpy") if backend_status(n).available]
    alternative = usable[0] if usable else "numpy"
    fix = (f"the model in {str(path)!r} was saved to run on {saved!r}; load it on a backend "
           f"that runs here with load_model({str(path)!r}, backend={alternative!r}) (a loaded "
           "model moves with model.set_backend(...))")
    if status.fix:
        fix += f", or make {saved!r} usable: {status.fix}"
    raise BackendUnavailableError(saved, status.reason, fix)


def _model_from_archive(config, arrays, backend):
    if not isinstance(config, dict) or config.get("format") not in (MODEL_FORMAT,
                                                                     FUNCTIONAL_FORMAT):
        raise ValueError(f"the file holds no numlstm model (format "
                         f"{config.get('format') if isinstance(config, dict) else None!r})")
    if config.get("format_version") != 1:
        raise ValueError(f"unsupported model format version {config.get('format_version')!r}")
    model_config = config["model"]
    if not isinstance(model_config, dict):
        raise TypeError("'model' must be an object")
    n = sum(1 for key in arrays if key.startswith("weights/"))
    weights = [arrays[f"weights/{i}"] for i in range(n)]
    kind = "Sequential" if config["format"] == MODEL_FORMAT else "Model"
    model = model_from_config({"class_name": kind, "config": model_config}, backend=backend,
                              weights=weights, name_clashes_ok=True)
    if backend is not None:
        model.set_backend(backend)           # the layers' own backend settings follow too
    model._train_rng = _restore_rng(config["train_rng"])
    compile_config = config.get("compile")
    if compile_config is not None:
        loss = compile_config["loss"]
        loss = [None if entry is None else L.get(entry) for entry in loss] if isinstance(
            loss, list) else L.get(loss)
        model.compile(optimizer=O.get(compile_config["optimizer"]), loss=loss,
                      metrics=compile_config["metrics"],
                      loss_weights=compile_config.get("loss_weights"),
                      weighted_metrics=compile_config.get("weighted_metrics"))
        model._resolve_targets()
        slots = {k[len("optimizer/"):]: v for k, v in arrays.items()
                 if k.startswith("optimizer/")}
        model.optimizer.set_state(config["optimizer_iterations"], slots, model.weights)
    unknown = sorted(k for k in arrays if not k.startswith(("weights/", "optimizer/")))
    if unknown:
        raise ValueError(f"the file holds an array {unknown[0]!r} that no part of a model uses")
    return model


# -- weights alone ------------------------------------------------------------------------------

def save_weights(model: Model, path):
    from ..archive import save_archive
    model._require_built()
    layers = [{"name": layer.name, "class_name": type(layer).__name__,
               "shapes": [list(w.shape) for w in layer.weights]} for layer in model.layers]
    arrays = {f"weights/{i}": w for i, w in enumerate(model.weights)}
    V.check_all_finite(_named_weights(model), f"cannot save the weights to {str(path)!r}")
    return save_archive(path, {"format": WEIGHTS_FORMAT,
                               "format_version": WEIGHTS_FORMAT_VERSION,
                               "layers": layers}, arrays)


def _named_weights(model) -> dict:
    """Every weight array by a name for messages: ``weights of layer 'lstm' (array 0)``."""
    return {f"weights of layer {layer.name!r} (array {index})": weight
            for layer in model.layers for index, weight in enumerate(layer.weights)}


def load_weights(model: Model, path, *, max_bytes=None) -> None:
    from ..archive import load_archive
    from ..errors import ModelFileError
    model._require_built()
    config, arrays = load_archive(path, **({} if max_bytes is None else
                                           {"max_bytes": max_bytes}))
    if not isinstance(config, dict) or config.get("format") != WEIGHTS_FORMAT:
        raise ModelFileError(path, "not a numlstm weights file (written by save_weights)"
                                   + (": it holds a whole model; use numlstm.load_model"
                                      if isinstance(config, dict) and config.get("format") in
                                      (MODEL_FORMAT, FUNCTIONAL_FORMAT) else ""))
    if config.get("format_version") != WEIGHTS_FORMAT_VERSION:
        raise ModelFileError(path, f"unsupported weights format version "
                                   f"{config.get('format_version')!r}")
    saved = config.get("layers")
    layers = model.layers
    mine = [(layer.name, type(layer).__name__) for layer in layers]
    theirs = [(entry.get("name"), entry.get("class_name")) if isinstance(entry, dict) else None
              for entry in (saved if isinstance(saved, list) else [])]
    if mine != theirs:
        raise ValueError(f"the weights in {str(path)!r} are for the layers {theirs}; this "
                         f"model has {mine}")
    n = sum(len(layer.weights) for layer in layers)
    if sorted(arrays) != sorted(f"weights/{i}" for i in range(n)):
        raise ModelFileError(path, f"expected {n} weight arrays weights/0..{n - 1}; the file "
                                   f"holds {sorted(arrays)[:5]}...")
    try:
        # every array is checked (shape, dtype, finite) before any layer changes
        model.set_weights([arrays[f"weights/{i}"] for i in range(n)])
    except (ValueError, TypeError) as error:
        raise ModelFileError(path, f"its weights do not fit the model: {_short(error)}") \
            from None


# -- the training generator ---------------------------------------------------------------------

def _jsonable_rng_state(rng) -> dict:
    state = rng.bit_generator.state
    # PCG64's 128-bit integers are written as decimal strings (JSON readers differ on big ints).
    return {"bit_generator": state["bit_generator"],
            "state": {k: str(v) for k, v in state["state"].items()},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}


def _restore_rng(data) -> np.random.Generator:
    """The generator whose state :func:`_jsonable_rng_state` wrote, every field checked:
    PCG64's ``state`` and ``inc`` decimal strings of integers in [0, 2**128), ``has_uint32``
    0 or 1, ``uinteger`` in [0, 2**32)."""
    def bad(what):
        return ValueError(f"train_rng {what}")
    if not isinstance(data, dict) or data.get("bit_generator") != "PCG64":
        raise bad(f"names an unknown bit generator "
                  f"{data.get('bit_generator') if isinstance(data, dict) else data!r}")
    state = data.get("state")
    if not isinstance(state, dict) or set(state) != {"state", "inc"}:
        raise bad(f"must hold PCG64's 'state' and 'inc'; got {state!r}")
    values = {}
    for key, text in state.items():
        if not isinstance(text, str) or not text.isdigit() or len(text) > 39 \
                or int(text) >= 1 << 128:
            raise bad(f"{key} must be a decimal integer in [0, 2**128); got {text!r}")
        values[key] = int(text)
    has_uint32 = V.check_int_at_least(data.get("has_uint32"), "train_rng has_uint32", 0, 1)
    uinteger = V.check_int_at_least(data.get("uinteger"), "train_rng uinteger", 0,
                                    (1 << 32) - 1)
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": values,
                               "has_uint32": has_uint32, "uinteger": uinteger}
    return rng


__all__ = ["FUNCTIONAL_FORMAT", "MODEL_FORMAT", "WEIGHTS_FORMAT", "load_model",
           "model_from_config", "model_from_json"]
