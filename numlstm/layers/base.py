"""The layer protocol shared by every front-end layer, and the ``Input`` placeholder.

A layer holds its weights as host NumPy arrays (the optimizers update them in place) and runs
its math with the array namespace ``backend.xp`` of the backend a model hands it, so the same
layer code runs on NumPy (``numpy``, ``numba`` backends) and CuPy arrays.

Training protocol (used by :class:`numlstm.Sequential`)::

    y = layer.forward(x, mask=mask, training=True, backend=backend, rng=rng)
    dx = layer.backward(dy)          # fills layer.grads, aligned with layer.trainable_weights

``forward`` keeps what ``backward`` needs on the layer (one pending backward at a time).
"""

from __future__ import annotations

import inspect

import numpy as np

from .. import validation as V
from ..backends import BACKEND_NAMES, get_backend


def to_xp(backend, array):
    """``array`` in the backend's namespace ``xp``, for the front-end's own (non-recurrent)
    math: CuPy arrays when ``xp`` is CuPy, host NumPy arrays when it is NumPy -- also for a
    backend whose kernels keep their arrays elsewhere (the ``cuda`` backend's device arrays)."""
    if backend.xp is np:
        return array if type(array) is np.ndarray else np.asarray(backend.to_numpy(array))
    return backend.asarray(array)


class Layer:
    """Base class: bookkeeping for shapes, weights, configs and the stand-alone call.

    Subclasses implement ``build``, ``compute_output_shape``, ``forward`` and ``backward``,
    and list their weights in ``_weight_names`` (attribute names, in ``get_weights`` order).
    """

    _weight_names: tuple[str, ...] = ()

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls)
        # Whether the caller chose the name: a model gives generated names a suffix to keep
        # them unique (lstm, lstm_1, ...) but refuses two layers given the same name.
        try:
            given = inspect.signature(cls.__init__).bind(
                instance, *args, **kwargs).arguments.get("name")
        except TypeError:                # bad arguments: __init__ reports them
            given = None
        instance._name_given = given is not None
        return instance

    def __init__(self, name=None, dtype="float32", seed=None, backend=None):
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
    def trainable_weights(self) -> list[np.ndarray]:
        """The live weight arrays (updated in place by the optimizers)."""
        return [getattr(self, "_" + n) for n in self._weight_names
                if getattr(self, "_" + n) is not None]

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.trainable_weights] if self.built else []

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
            specs = [(n, w.shape) for n, w in zip(names, self.trainable_weights)]
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
        return int(sum(w.size for w in self.trainable_weights))

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.name, "seed": self.seed,
                "backend": self.backend}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    # -- running ------------------------------------------------------------------------------
    def forward(self, x, mask=None, training=False, backend=None, rng=None):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def _check_input(self, x):
        """Check a stand-alone call's input (floats of this layer's dtype)."""
        return V.as_float_array(x, f"{type(self).__name__} input", self.dtype)

    def __call__(self, x, mask=None, training=False):
        """Run the layer on host arrays and return a NumPy array (inference by default)."""
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


class Input:
    """The input of a :class:`~numlstm.Sequential` model (not a layer: it holds the shape).

    Parameters
    ----------
    shape : tuple of int or None
        The shape of one sample, e.g. ``(timesteps, features)``; None for any length.
    batch_size : int, optional
        A fixed batch size (needed by ``stateful=True`` LSTMs).
    dtype : str, default "float32"
        "int32"/"int64" for token ids fed to an :class:`Embedding`.
    name : str, optional
    """

    def __init__(self, shape, batch_size=None, dtype="float32", name=None):
        if not isinstance(shape, (tuple, list)) or not shape:
            raise TypeError(f"shape must be a non-empty tuple such as (timesteps, features); "
                            f"got {shape!r}")
        for i, dim in enumerate(shape):
            if dim is not None:
                V.check_positive_int(dim, f"shape[{i}]")
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.batch_size = None if batch_size is None else V.check_positive_int(batch_size,
                                                                               "batch_size")
        if dtype not in ("float32", "float64", "int32", "int64"):
            raise ValueError(f"dtype must be one of ['float32', 'float64', 'int32', 'int64']; "
                             f"got {dtype!r}")
        self.dtype = dtype
        self.name = name if name is not None else "input"

    @property
    def batch_shape(self) -> tuple:
        return (self.batch_size,) + self.shape

    def get_config(self) -> dict:
        return {"shape": list(self.shape), "batch_size": self.batch_size, "dtype": self.dtype,
                "name": self.name}

    def __repr__(self) -> str:
        return f"Input(shape={self.shape}, batch_size={self.batch_size}, dtype={self.dtype!r})"
