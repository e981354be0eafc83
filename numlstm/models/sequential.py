"""``Sequential``: a :class:`~numlstm.Model` whose graph is a chain, each layer called on the
previous one's output -- the same graph, training loop and files as any model, built from a
list of layers.

With an ``Input`` first the chain is built as layers are added (Keras builds them at once, so
``get_weights``/``count_params``/``summary`` work before any data); without one it is built
from the shape of the first data it sees, or by :meth:`Sequential.build`.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .. import validation as V
from ..layers import Bidirectional, Embedding, Layer, LSTMCell
from ..layers.base import WeightFeed, loading_weights
from ..layers.symbolic import Input
from .graph import Graph, name_is_fixed
from .model import Model, _by_position, _unique_name


class Sequential(Model):
    """A linear stack of layers.

    Parameters
    ----------
    layers : list, optional
        Optionally an :class:`~numlstm.Input` first, then layers.
    backend : str, optional
        The backend that runs the model; None: the one in use at call time.
    seed : int ≥ 0, optional
        Seeds unseeded layers' weights (layer ``i`` gets a seed derived from ``(seed, i)``)
        and the training generator (shuffling, dropout). None draws a random seed.
    name : str, default "sequential"

    Notes
    -----
    The last layer may return several outputs (an ``LSTM(return_state=True)``, a
    ``Bidirectional(merge_mode=None)``): ``predict`` then returns the list, as Keras does.

    Examples
    --------
    >>> model = Sequential([Input((8, 8)), LSTM(64), Dense(10, activation="softmax")], seed=0)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> history = model.fit(x, y, epochs=5, validation_split=0.1)
    """

    def __init__(self, layers=None, backend=None, seed=None, name="sequential"):
        self._setup(name, backend, seed)
        self._single_input = self._single_output = True
        self._layers: list[Layer] = []
        self._input: Input | None = None
        if layers is not None:
            for layer in V.check_layer_list(layers):
                self.add(layer)

    # -- structure ----------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        """The layers in order (also before the model is built)."""
        return list(self._layers)

    def add(self, layer) -> None:
        """Append a layer (or set the ``Input``, which must come first). With an Input the
        new layer is built at once; a layer that does not fit the chain raises and is not
        added."""
        if isinstance(layer, Input):
            if self._input is not None or self._layers:
                raise ValueError("Input must be the first element of the model, and only one")
            self._input = layer
            return
        _check_new_layer(layer, self._layers, self.name)
        implied_input = self._input_from_first_layer(layer)
        name, seed = layer.name, layer.seed
        taken = {existing.name for existing in self._layers}
        if layer.name in taken:                  # a generated name: Keras's _1, _2 suffix
            layer.name = _unique_name(layer.name, taken)
        self._layers.append(layer)
        if self._input is not None or self.built:
            try:
                self._build(self._batch_shape_known())
            except Exception:
                # as if never added: the model as it was, the layer as it came
                self._layers.pop()
                if not getattr(layer, "_name_fixed", False):
                    layer.name = name
                if not layer.built:
                    layer.seed = seed
                if implied_input:
                    self._input = None
                if self._layers:
                    self._build(self._batch_shape_known())
                raise

    def _input_from_first_layer(self, layer) -> bool:
        """Keras's ``input_shape=``/``input_dim=`` on the first layer: the model's Input
        takes that shape (integer token ids for an Embedding). Returns whether it did."""
        shape = getattr(layer, "_input_shape_arg", None)
        if shape is None or self._input is not None or self._layers:
            return False
        self._input = Input(shape, dtype="int64" if isinstance(layer, Embedding)
                            else layer.dtype.name)
        return True

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._layers:
            raise ValueError(f"model {self.name!r} has no layers to pop")
        shape = self._batch_shape_known() if self.built or self._input is not None else None
        layer = self._layers.pop()
        self._graph = None
        if self._layers and shape is not None:
            self._build(shape)
        return layer

    def _batch_shape_known(self):
        if self._input is not None:
            return self._input.shape
        return self._graph.inputs[0].shape

    def _seed_layers(self) -> None:
        for index, layer in enumerate(self._layers):
            if layer.seed is None and not layer.built:
                seed = int(np.random.SeedSequence([self._seed, index]).generate_state(1)[0])
                if isinstance(layer, Bidirectional):
                    layer._assign_seed(seed)
                else:
                    layer.seed = seed

    def build(self, input_shape=None) -> None:
        """Build every layer for ``input_shape`` (with the batch axis, None for any size)."""
        if not self._layers:
            raise ValueError("the model has no layers")
        if input_shape is None:
            if self._input is None:
                raise ValueError("the model has no Input: give Input(shape) as its first "
                                 "element, call build(input_shape), or call fit/predict")
            input_shape = self._input.shape
        self._build(V.check_batch_shape(input_shape, "input_shape"))

    def _build(self, shape: tuple, weights=None) -> None:
        """Build the chain for the batch shape ``shape``: every layer with its initializers,
        or (what loading does) with ``weights``, each checked against the shape its layer is
        called on before it is installed, no initializer run."""
        if not self._layers:
            raise ValueError("the model has no layers")
        self._seed_layers()
        if self._input is not None and tuple(shape) == self._input.shape:
            source = self._input
        else:
            first = self._layers[0]
            source = Input(shape[1:], batch_size=shape[0],
                           dtype="int64" if isinstance(first, Embedding) else first.dtype.name,
                           name=self._input.name if self._input is not None else None)
        feed = WeightFeed(weights) if weights is not None else None
        with loading_weights(feed) if feed is not None else contextlib.nullcontext():
            tensor, previous = source, None
            for layer in self._layers:
                if isinstance(tensor, list):
                    raise ValueError(f"layer {previous.name!r} returns {len(tensor)} outputs "
                                     "(an LSTM with return_state=True, or a Bidirectional with "
                                     "merge_mode=None): only the last layer of a Sequential "
                                     "may; use numlstm.Model to wire them to other layers")
                tensor, previous = layer(tensor), layer
        if feed is not None:
            feed.check_all_taken()
        self._single_output = not isinstance(tensor, list)
        self._set_graph(Graph([source], tensor if isinstance(tensor, list) else [tensor]))

    def _require_built(self):
        if self._graph is None and self._input is not None and self._layers:
            self._build(self._input.shape)
        return super()._require_built()

    def _ensure_built_for(self, x) -> None:
        """Without an Input, build from the first data's shape: (batch, timesteps) token ids
        for an Embedding first, else (batch, timesteps, features) or (batch, features)."""
        if self._graph is not None:
            return
        if not self._layers:
            raise ValueError("the model has no layers")
        if self._input is not None:
            self._build(self._input.shape)
            return
        first = self._layers[0]
        value = _by_position(x, ["x"], "x", "input")[0]
        if isinstance(first, Embedding):
            array = V.check_token_ids(value, first.input_dim, "x")
            shape = (None, None) + tuple(array.shape[2:])
        else:
            array = V.as_float_array(value, "x", first.dtype)
            shape = (None, None) + tuple(array.shape[2:]) if array.ndim == 3 else \
                (None,) + tuple(array.shape[1:])
        self._build(shape)

    def _is_chain(self) -> bool:
        return True

    # -- configuration ------------------------------------------------------------------------
    def get_config(self) -> dict:
        from .saving import sequential_config
        return sequential_config(self)


def _check_new_layer(layer, layers: list, model_name: str) -> None:
    """What a :class:`Sequential` model can append: a numlstm layer not already in
    ``layers``, whose name is unique there unless it was generated (the model suffixes it),
    an ``Embedding`` only first; after a layer with several outputs, nothing."""
    if not isinstance(layer, Layer) or isinstance(layer, LSTMCell):
        raise TypeError(f"layers must be numlstm layers (LSTM, Dense, ...); got "
                        f"{type(layer).__name__}" + (" (one timestep: a model runs "
                        "sequences, with LSTM)" if isinstance(layer, LSTMCell) else ""))
    if any(existing is layer for existing in layers):
        raise ValueError(f"layer {layer.name!r} is already in the model")
    if name_is_fixed(layer) and any(e.name == layer.name for e in layers):
        raise ValueError(f"layer names must be unique within a model: name {layer.name!r} is "
                         f"already used by another layer of {model_name!r}; give this "
                         f"{type(layer).__name__} another name=")
    if isinstance(layer, Embedding) and layers:
        raise ValueError("Embedding must be the first layer of a model (it reads token ids)")
    if layers and _several_outputs(layers[-1]):
        raise ValueError(f"layer {layers[-1].name!r} returns several outputs (return_state="
                         "True, or Bidirectional merge_mode=None), which only the last layer "
                         "of a Sequential may; use numlstm.Model to wire them to other layers")


def _several_outputs(layer) -> bool:
    return bool(getattr(layer, "return_state", False)) or (
        isinstance(layer, Bidirectional) and layer.merge_mode is None)
