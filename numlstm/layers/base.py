"""The layer protocol shared by every front-end layer, and the ``Input`` placeholder.

A layer holds its weights as host NumPy arrays (the optimizers update them in place) and runs
its math with the array namespace ``backend.xp`` of the backend a model hands it, so the same
layer code runs on NumPy (``numpy``, ``numba`` backends) and CuPy arrays.

Three ways to call a layer:

* on arrays, ``layer(x)``: runs it at once and returns NumPy arrays;
* on symbolic tensors, ``layer(numlstm.Input((5, 3)))``: builds it for that shape and records
  the call in a graph (:mod:`numlstm.layers.symbolic`) for :class:`numlstm.Model`;
* from a model's graph, once per node and batch (the training protocol)::

      outputs, masks, pending = layer._graph_forward(inputs, masks, training, backend, rng)
      input_grads, weight_grads = layer._graph_backward(pending, output_grads)

  ``inputs``/``outputs`` are lists (most layers take one and return one; an LSTM may take
  ``[x, h0, c0]`` and return ``[output, h, c]``). ``pending`` is what the backward needs,
  handed back by the model, so one layer can be called at several nodes of a graph (a shared
  layer) and each call is differentiated with its own record. ``weight_grads`` is aligned
  with :attr:`Layer.weights`.

  Single-input layers implement the simpler pair the default ``_graph_*`` wrap::

      y = layer.forward(x, mask=mask, training=True, backend=backend, rng=rng)
      dx = layer.backward(dy)          # fills layer.grads, aligned with layer.weights

  where ``forward`` keeps what ``backward`` needs in the attributes named by
  ``_pending_attributes``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect

import numpy as np

from .. import regularizers
from .. import validation as V
from ..backends import BACKEND_NAMES, get_backend
from .symbolic import Input, call_on_symbolic, is_symbolic

__all__ = ["Input", "Layer", "WeightFeed", "loading_weights", "to_xp"]

class WeightFeed:
    """A saved model's weight arrays, handed out in order to the layers as its graph is
    rebuilt: each layer, at its first call, takes as many as it has weights."""

    def __init__(self, arrays: list):
        self.arrays, self.position = list(arrays), 0

    def take(self, layer, shape) -> list:
        count = len(layer.weight_specs(shape))
        if self.position + count > len(self.arrays):
            raise ValueError(f"the layers need more than the {len(self.arrays)} weight arrays "
                             f"given (layer {layer.name!r} needs {count} more)")
        taken = self.arrays[self.position:self.position + count]
        self.position += count
        return taken

    def check_all_taken(self) -> None:
        if self.position != len(self.arrays):
            raise ValueError(f"the layers need {self.position} weight arrays; got "
                             f"{len(self.arrays)}")


_WEIGHT_FEED: contextvars.ContextVar = contextvars.ContextVar("weight_feed", default=None)


@contextlib.contextmanager
def loading_weights(feed: WeightFeed):
    """Within the block, an unbuilt layer called on a symbolic tensor takes its weights from
    ``feed`` (checked against the shape it is called on) instead of running its
    initializers: how a saved model is rebuilt without allocating anything the file does
    not hold."""
    token = _WEIGHT_FEED.set(feed)
    try:
        yield
    finally:
        _WEIGHT_FEED.reset(token)


def to_xp(backend, array):
    """``array`` in the backend's namespace ``xp``, for the front-end's own (non-recurrent)
    math: CuPy arrays when ``xp`` is CuPy, host NumPy arrays when it is NumPy -- also for a
    backend whose kernels keep their arrays elsewhere (the ``cuda`` backend's device arrays)."""
    if backend.xp is np:
        return array if type(array) is np.ndarray else np.asarray(backend.to_numpy(array))
    return backend.asarray(array)


#: Keyword arguments of Keras 3's base ``Layer`` that every numlstm layer takes (see
#: :meth:`Layer.__init_subclass__`): ``input_shape``/``input_dim`` (on the first layer of a
#: :class:`~numlstm.Sequential`, its Input's shape, as Keras) and ``activity_regularizer``.
BASE_KERAS_ARGUMENTS = ("input_shape", "input_dim", "activity_regularizer")

#: Keras arguments numlstm refuses, and what to do instead.
UNSUPPORTED_ARGUMENTS = {
    "batch_input_shape": "it is a Keras 2 argument that Keras 3 refuses too; start the model "
                         "with numlstm.Input(batch_shape=...) (or Input(shape, batch_size=))",
    "batch_shape": "give it to numlstm.Input(batch_shape=...) at the start of the model",
    "weights": "it is a Keras 2 argument; build the layer and call set_weights(...)",
    "time_major": "numlstm's layers take batch-major (batch, timesteps, features) input",
    "lora_rank": "LoRA is not supported",
    "lora_alpha": "LoRA is not supported",
    "sparse": "sparse gradients are not supported",
    "autocast": "numlstm computes in the layer's dtype (no mixed precision)",
}


def _refuse_argument(cls, name) -> None:
    reason = UNSUPPORTED_ARGUMENTS.get(name)
    if reason is not None:
        raise ValueError(f"{cls.__name__}: the argument {name}= is not supported by numlstm: "
                         f"{reason}")
    raise ValueError(f"{cls.__name__} got the keyword argument {name!r}, which is not an "
                     f"argument of numlstm's {cls.__name__} (not a Keras 3 argument of this "
                     "layer, or one numlstm does not support)")


def _take_base_arguments(cls, accepted, kwargs) -> dict:
    """Split the Keras base-layer arguments (:data:`BASE_KERAS_ARGUMENTS`) the layer's own
    ``__init__`` does not take off ``kwargs``; refuse any other unknown keyword by name."""
    taken = {}
    for name in list(kwargs):
        if name in accepted:
            continue
        if name in BASE_KERAS_ARGUMENTS:
            taken[name] = kwargs.pop(name)
        else:
            _refuse_argument(cls, name)
    return taken


def _input_shape_of(cls, taken) -> tuple | None:
    """``input_shape`` (or ``input_dim`` as ``(input_dim,)``, as Keras 3) checked: a tuple of
    positive integers or None (any length), without the batch axis."""
    if taken.get("input_dim") is not None:
        if taken.get("input_shape") is not None:
            raise ValueError(f"{cls.__name__}: give input_shape or input_dim, not both")
        return (V.check_positive_int(taken["input_dim"], "input_dim"),)
    shape = taken.get("input_shape")
    if shape is None:
        return None
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise ValueError(f"{cls.__name__}: input_shape must be a tuple of dimensions without "
                         f"the batch axis, e.g. input_shape=(20, 80); got {shape!r}")
    return tuple(None if d is None else V.check_positive_int(d, "input_shape entries")
                 for d in shape)


class Layer:
    """Base class: bookkeeping for shapes, weights, configs and the stand-alone call.

    Subclasses implement ``build``, ``compute_output_shape``, ``forward`` and ``backward``,
    and list their weights in ``_weight_names`` (attribute names, in ``get_weights`` order).

    Every layer also takes Keras's base-layer keyword arguments :data:`BASE_KERAS_ARGUMENTS`
    (``input_shape``, ``input_dim``: the shape of a Sequential's Input when the layer comes
    first, ignored elsewhere as in Keras; ``activity_regularizer``: see
    :mod:`numlstm.regularizers`); an unknown keyword raises a ``ValueError`` that names it.
    """

    #: Set by the constructor wrapper: ``input_shape`` as given (without the batch axis).
    _input_shape_arg: tuple | None = None
    #: A :class:`~numlstm.regularizers.Regularizer` on the layer's outputs, or None.
    activity_regularizer = None

    def __init_subclass__(cls, **kwargs):
        """Wrap each subclass's own ``__init__`` so that it takes the Keras base-layer
        arguments and turns an unknown keyword into a ``ValueError`` naming it (Python's bare
        ``TypeError`` would not say whether Keras has the argument)."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        parameters = inspect.signature(init).parameters
        accepted = frozenset(name for name, p in parameters.items()
                             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            taken = _take_base_arguments(type(self), accepted, kwargs)
            init(self, *args, **kwargs)
            if taken:
                shape = _input_shape_of(type(self), taken)
                if shape is not None:
                    self._input_shape_arg = shape
                if taken.get("activity_regularizer") is not None:
                    self.activity_regularizer = regularizers.get(
                        taken["activity_regularizer"], "activity_regularizer")

        cls.__init__ = __init__

    _weight_names: tuple[str, ...] = ()
    #: Attributes where ``forward`` keeps what ``backward`` needs (see the module docstring).
    _pending_attributes: tuple[str, ...] = ("_cache",)

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls)
        # Whether the caller chose the name: a model gives generated names a suffix to keep
        # them unique (lstm, lstm_1, ...) but refuses two layers given the same name.
        own = {k: v for k, v in kwargs.items() if k not in BASE_KERAS_ARGUMENTS}
        try:
            given = inspect.signature(cls.__init__).bind(
                instance, *args, **own).arguments.get("name")
        except TypeError:                # bad arguments: __init__ reports them
            given = kwargs.get("name")
        instance._name_given = given is not None
        return instance

    def __init__(self, name=None, dtype="float32", seed=None, backend=None, trainable=True):
        if trainable is not None:          # None: a wrapper whose layers keep their own flags
            self.trainable = trainable
        self.name = (V.check_string(name, "name") if name is not None
                     else type(self).__name__.lower())
        self.dtype = V.check_float_dtype(dtype, "dtype")
        self.seed = V.check_seed(seed)
        self.backend = None if backend is None else V.check_name(backend, "backend",
                                                                 BACKEND_NAMES)
        self.built = False
        self.input_shape: tuple | None = None
        self.grads: list = []

    # -- shapes -------------------------------------------------------------------------------
    def build(self, input_shape) -> None:
        self.input_shape = tuple(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def compute_mask(self, mask, inputs=None):
        """The mask handed to the next layer, for a call on ``inputs`` that received ``mask``:
        by default the incoming one, unchanged. Per-call state belongs to the call: a layer
        never keeps the mask of its last call (a model may be called from several threads)."""
        return mask

    @property
    def output_shape(self) -> tuple:
        if self.input_shape is None:
            raise ValueError(f"layer {self.name!r} is not built yet")
        return self.compute_output_shape(self.input_shape)

    # -- weights ------------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        """Whether training updates this layer's weights (Keras's ``trainable``; False freezes
        them: gradients still flow through the layer to the layers before it)."""
        return getattr(self, "_trainable", True)

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = V.check_bool(value, "trainable")

    @property
    def weights(self) -> list[np.ndarray]:
        """Every live weight array (updated in place by the optimizers), in
        :meth:`get_weights` order."""
        return [getattr(self, "_" + n) for n in self._weight_names
                if getattr(self, "_" + n) is not None]

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        """:attr:`weights` when the layer is :attr:`trainable`, else none."""
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        """:attr:`weights` when the layer is frozen (``trainable = False``), else none."""
        return [] if self.trainable else self.weights

    def _weights_trainable(self) -> list[bool]:
        """For each of :attr:`weights`, whether training updates it."""
        return [self.trainable] * len(self.weights)

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights] if self.built else []

    def weight_specs(self, input_shape) -> list[tuple[str, tuple]]:
        """``[(name, shape), ...]`` of the weights ``build(input_shape)`` would create, in
        ``get_weights`` order, computed without allocating anything (a loader compares them
        with a file's arrays before building)."""
        return []

    def check_weights(self, weights, input_shape=None):
        """Validate ``weights`` for this layer without changing it; returns what
        :meth:`install_weights` takes. The expected shapes are the built layer's, or those
        for ``input_shape`` when it is given."""
        if input_shape is not None:
            specs = self.weight_specs(input_shape)
        elif not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: build it (or add it to a "
                             "model with an Input) before set_weights")
        else:
            names = [n for n in self._weight_names if getattr(self, "_" + n) is not None]
            specs = [(n, w.shape) for n, w in zip(names, self.weights)]
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a list of {len(specs)} arrays; got "
                            f"{type(weights).__name__}")
        if len(weights) != len(specs):
            raise ValueError(f"layer {self.name!r} has {len(specs)} weight arrays of shapes "
                             f"{[shape for _, shape in specs]}; got {len(weights)}")
        checked = []
        for (name, shape), new in zip(specs, weights):
            array = V.as_float_array(new, f"weights ({name})", self.dtype)
            V.check_shape(array, f"weights ({name})", shape, str(tuple(shape)))
            checked.append((name, np.array(array, order="C")))
        return checked

    def install_weights(self, checked, input_shape=None) -> None:
        """Put weights returned by :meth:`check_weights` in place (cannot fail); with
        ``input_shape`` the layer is thereby built for it, without running initializers."""
        for name, array in checked:
            setattr(self, "_" + name, array)
        if input_shape is not None:
            Layer.build(self, input_shape)
        self._weights_changed()

    def set_weights(self, weights) -> None:
        """Replace every weight array; all are checked before any is replaced."""
        self.install_weights(self.check_weights(weights))

    def _weights_changed(self) -> None:
        """Hook: drop anything derived from the weight arrays' identity."""

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: call build(input_shape) "
                             "first")
        return int(sum(w.size for w in self.weights))

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.name, "seed": self.seed,
                "backend": self.backend, "trainable": self.trainable,
                **self._activity_config()}

    def _activity_config(self) -> dict:
        """``{"activity_regularizer": {...}}`` when the layer has one, else nothing (configs
        of layers without one are as they always were)."""
        if self.activity_regularizer is None:
            return {}
        return {"activity_regularizer": regularizers.serialize(self.activity_regularizer)}

    def _weight_rules(self) -> list[tuple]:
        """For each of :attr:`weights`, ``(regularizer, constraint)`` (None for none): what
        a model adds to the loss and applies after each optimizer step."""
        return [(None, None)] * len(self.weights)

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    # -- in a graph ---------------------------------------------------------------------------
    def _output_specs(self, inputs: list) -> list[tuple[tuple, str]]:
        """Check the symbolic ``inputs`` of a call, build the layer for them (with a loader's
        weights when :func:`loading_weights` provides them) and return ``[(shape, dtype)]``
        of each output. The default: one input, one output of :meth:`compute_output_shape`."""
        (x,) = self._single_input(inputs)
        self._build_in_graph(x.shape)
        return [(tuple(self.compute_output_shape(x.shape)), self.dtype.name)]

    def _output_suffix(self, index: int) -> str:
        """What follows the layer's name in the name of its output ``index`` (the first:
        nothing)."""
        return "" if index == 0 else f"_output_{index}"

    def _single_input(self, inputs: list) -> list:
        if len(inputs) != 1:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) takes one input; "
                             f"got {len(inputs)}")
        return inputs

    def _build_in_graph(self, shape: tuple) -> None:
        """Build for ``shape`` (batch axis first): from provided weights, with the
        initializers, or -- already built -- check that ``shape`` fits the weights."""
        feed = _WEIGHT_FEED.get()
        if feed is not None and not self.built:
            self.install_weights(self.check_weights(feed.take(self, shape), shape), shape)
        elif not self.built:
            self.build(shape)
        else:
            self._check_built_for(shape)

    def _check_built_for(self, shape: tuple) -> None:
        """A built layer called on ``shape``: its kernel's input features must match."""
        weights = self.weights
        if weights:
            V.check_built_features(weights[0].shape[0], shape, self.name)
        if self.input_shape is None:
            self.input_shape = tuple(shape)

    def _take_pending(self):
        """What ``forward`` kept for ``backward`` (cleared from the layer)."""
        pending = tuple(getattr(self, name, None) for name in self._pending_attributes)
        for name in self._pending_attributes:
            setattr(self, name, None)
        return pending

    def _restore_pending(self, pending) -> None:
        for name, value in zip(self._pending_attributes, pending):
            setattr(self, name, value)

    def _graph_forward(self, inputs: list, masks: list, training: bool, backend, rng):
        """Run one node: ``(outputs, output masks, pending)``; see the module docstring."""
        (x,), (mask,) = inputs, masks
        out_mask = self.compute_mask(mask, x)
        y = self.forward(x, mask=mask, training=training, backend=backend, rng=rng)
        return [y], [out_mask], self._take_pending() if training else None

    def _graph_backward(self, pending, output_grads: list):
        """``(input grads, weight grads)`` of one node's call, from its outputs' grads."""
        self._restore_pending(pending)
        dx = self.backward(output_grads[0])
        return [dx], list(self.grads)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    # -- running ------------------------------------------------------------------------------
    def forward(self, x, mask=None, training=False, backend=None, rng=None):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def _symbolic_list(self, tensors) -> list:
        """A list of symbolic tensors given as ``x`` (merge layers take one)."""
        raise TypeError(f"layer {self.name!r} ({type(self).__name__}) takes one tensor; got a "
                        f"list of {len(tensors)}")

    def _check_input(self, x):
        """Check a stand-alone call's input (floats of this layer's dtype)."""
        return V.as_float_array(x, f"{type(self).__name__} input", self.dtype)

    def __call__(self, x, mask=None, training=False):
        """Run the layer on host arrays and return a NumPy array (inference by default); on a
        symbolic tensor, build the layer and return the symbolic output (see
        :mod:`numlstm.layers.symbolic`)."""
        if is_symbolic(x):
            if mask is not None:
                raise ValueError(f"layer {self.name!r} was called on a symbolic tensor with a "
                                 "mask: in a model graph masks come from Masking or "
                                 "Embedding(mask_zero=True) layers and travel with the data")
            return call_on_symbolic(self, [x] if not isinstance(x, (list, tuple)) else
                                    self._symbolic_list(x))
        x = self._check_input(x)
        if not self.built:
            self.build((None,) + tuple(x.shape[1:]))
        if mask is not None:
            mask = V.check_mask(mask, x.shape[0], x.shape[1] if x.ndim > 1 else 0)
        backend = get_backend(self.backend)
        rng = np.random.default_rng(self.seed) if training else None
        out = self.forward(to_xp(backend, x), mask=None if mask is None else
                           to_xp(backend, mask), training=V.check_bool(training, "training"),
                           backend=backend, rng=rng)
        if isinstance(out, list):           # a layer with several outputs: each its own array
            return [np.array(backend.to_numpy(part)) for part in out]
        return backend.to_numpy(out)
