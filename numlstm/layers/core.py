"""Non-recurrent layers: ``Dense``, ``Dropout``, ``Masking`` and ``Embedding``."""

from __future__ import annotations

import numpy as np

from .. import constraints, initializers, regularizers
from .. import validation as V
from . import dense_activations
from .base import Layer, to_xp

#: Activations a Dense layer accepts (None means "linear"): every Keras 3 activation but glu
#: and threshold (see :mod:`numlstm.layers.dense_activations`).
DENSE_ACTIVATIONS = tuple(sorted(dense_activations.DENSE_ACTIVATIONS))


def _check_dense_activation(activation) -> str:
    if isinstance(activation, str) and activation in dense_activations.REFUSED:
        raise ValueError(f"activation={activation!r} is not supported by Dense: "
                         f"{dense_activations.REFUSED[activation]}")
    return V.check_name(activation, "activation", DENSE_ACTIVATIONS)


def _weight_arguments(layer, names) -> None:
    """Check and keep ``<name>_regularizer`` and ``<name>_constraint`` for each weight
    ``name`` (see :mod:`numlstm.regularizers`, :mod:`numlstm.constraints`)."""
    for name, (regularizer, constraint) in names.items():
        setattr(layer, f"{name}_regularizer",
                regularizers.get(regularizer, f"{name}_regularizer"))
        setattr(layer, f"{name}_constraint", constraints.get(constraint, f"{name}_constraint"))


def _weight_config(layer, names) -> dict:
    config = {}
    for name in names:
        config[f"{name}_regularizer"] = regularizers.serialize(
            getattr(layer, f"{name}_regularizer"))
        config[f"{name}_constraint"] = constraints.serialize(getattr(layer, f"{name}_constraint"))
    return config


class Dense(Layer):
    """Fully connected layer on the last axis: ``y = act(x @ kernel + bias)``.

    Works on 2-D ``(batch, features)`` input and per timestep on 3-D ``(batch, timesteps,
    features)`` input (the incoming mask is passed on unchanged).

    Parameters
    ----------
    units : int
    activation : str or None (linear)
        Any Keras 3 activation but ``glu`` and ``threshold``: see
        :mod:`numlstm.layers.dense_activations` (relu, sigmoid, tanh, softmax, gelu, silu,
        swish, mish, elu, selu, softplus, softsign, log_softmax, ...).
    use_bias : bool, default True
    kernel_initializer : str or initializer object, default "glorot_uniform"
    bias_initializer : str or initializer object, default "zeros"
        See :mod:`numlstm.initializers`.
    kernel_regularizer, bias_regularizer : optional
        See :mod:`numlstm.regularizers` (``activity_regularizer``, a base-layer keyword, too).
    kernel_constraint, bias_constraint : optional
        See :mod:`numlstm.constraints`.
    seed, dtype, name, backend : as for every layer

    Notes
    -----
    Weights: ``kernel (features, units)``, ``bias (units,)``.
    """

    _weight_names = ("kernel", "bias")

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", seed=None,
                 dtype="float32", name=None, backend=None, trainable=True,
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None):
        super().__init__(name=name if name is not None else "dense", dtype=dtype, seed=seed,
                         backend=backend, trainable=trainable)
        self.units = V.check_positive_int(units, "units", V.MAX_LAYER_SIZE)
        activation = "linear" if activation is None else activation
        self.activation = _check_dense_activation(activation)
        self.use_bias = V.check_bool(use_bias, "use_bias")
        self._kernel_init = initializers.resolve(kernel_initializer, "kernel_initializer")
        self._bias_init = initializers.resolve(bias_initializer, "bias_initializer")
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        _weight_arguments(self, {"kernel": (kernel_regularizer, kernel_constraint),
                                 "bias": (bias_regularizer, bias_constraint)})
        self._kernel = self._bias = None

    def _weight_rules(self) -> list[tuple]:
        rules = [(self.kernel_regularizer, self.kernel_constraint)]
        return rules + [(self.bias_regularizer, self.bias_constraint)] if self.use_bias \
            else rules

    @property
    def kernel(self):
        return self._kernel

    @property
    def bias(self):
        return self._bias

    def weight_specs(self, input_shape) -> list[tuple[str, tuple]]:
        input_shape = tuple(input_shape)
        if len(input_shape) not in (2, 3):
            raise ValueError(f"Dense input must be 2-D (batch, features) or 3-D (batch, "
                             f"timesteps, features); got shape {input_shape}")
        features = V.check_positive_int(input_shape[-1], "Dense input features")
        specs = [("kernel", (features, self.units))]
        return specs + [("bias", (self.units,))] if self.use_bias else specs

    def build(self, input_shape) -> None:
        input_shape = tuple(input_shape)
        specs = self.weight_specs(input_shape)
        constraints.check_weight_rules(self, specs)
        kernel_shape = specs[0][1]
        rng = self._rng()
        self._kernel = np.asarray(self._kernel_init(kernel_shape, self.dtype, rng),
                                  self.dtype)
        self._bias = (np.asarray(self._bias_init((self.units,), self.dtype, rng), self.dtype)
                      if self.use_bias else None)
        super().build(input_shape)

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, mask=None, training=False, backend=None, rng=None):
        xp = backend.xp
        z = x @ to_xp(backend, self._kernel)
        if self.use_bias:
            z = z + to_xp(backend, self._bias)
        y = dense_activations.forward(xp, self.activation, z)
        self._cache = (x, z, y, backend)
        return y

    def backward(self, grad):
        x, z, y, backend = self._cache
        xp = backend.xp
        dz = dense_activations.backward(xp, self.activation, z, y, grad)
        flat_x = x.reshape(-1, x.shape[-1])
        flat_dz = dz.reshape(-1, self.units)
        self.grads = [backend.to_numpy(flat_x.T @ flat_dz)]
        if self.use_bias:
            self.grads.append(backend.to_numpy(flat_dz.sum(axis=0)))
        self._cache = None
        return dz @ to_xp(backend, self._kernel).T

    def get_config(self) -> dict:
        config = {"units": self.units, "activation": self.activation,
                  "use_bias": self.use_bias,
                  "kernel_initializer": initializers.serialize(self.kernel_initializer),
                  "bias_initializer": initializers.serialize(self.bias_initializer),
                  **super().get_config()}
        # Regularizers and constraints only when set: configs without them stay as they were.
        config.update({k: v for k, v in _weight_config(self, ("kernel", "bias")).items()
                       if v is not None})
        return config


class Dropout(Layer):
    """Sets each input element to zero with probability ``rate`` in training and scales the
    rest by ``1/(1 - rate)``; the identity at inference. Passes the mask on.

    Parameters
    ----------
    rate : float in [0, 1)
    """

    _pending_attributes = ("_keep",)

    def __init__(self, rate, seed=None, dtype="float32", name=None, backend=None,
                 trainable=True):
        super().__init__(name=name if name is not None else "dropout", dtype=dtype, seed=seed,
                         backend=backend, trainable=trainable)
        self.rate = V.check_rate(rate, "rate")

    def forward(self, x, mask=None, training=False, backend=None, rng=None):
        if not training or self.rate == 0.0:
            self._keep = None
            return x
        keep = (rng.random(tuple(x.shape)) >= self.rate) / (1.0 - self.rate)
        self._keep = to_xp(backend, keep.astype(x.dtype))
        return x * self._keep

    def backward(self, grad):
        self.grads = []
        return grad if self._keep is None else grad * self._keep

    def get_config(self) -> dict:
        return {"rate": self.rate, **super().get_config()}


class Masking(Layer):
    """Masks timesteps whose features all equal ``mask_value``: the following recurrent layers
    skip them (states carry over). Masked timesteps are zeroed in the output, as in Keras.

    Input (batch, timesteps, features); the mask it produces is ``(batch, timesteps)`` bool.
    """

    _pending_attributes = ("_keep",)

    def __init__(self, mask_value=0.0, dtype="float32", name=None, backend=None,
                 trainable=True):
        super().__init__(name=name if name is not None else "masking", dtype=dtype,
                         backend=backend, trainable=trainable)
        self.mask_value = V.check_finite_number(mask_value, "mask_value",
                                                "inputs are always finite, so a NaN or "
                                                "infinite mask_value would mask nothing")

    def weight_specs(self, input_shape) -> list[tuple[str, tuple]]:
        if len(tuple(input_shape)) != 3:
            raise ValueError("Masking input must be 3-D (batch, timesteps, features); got "
                             f"shape {tuple(input_shape)}")
        return []

    def build(self, input_shape) -> None:
        self.weight_specs(input_shape)
        super().build(input_shape)

    def compute_mask(self, mask, inputs=None):
        """``(batch, timesteps)``: True where some feature of ``inputs`` differs from
        ``mask_value`` (and the incoming ``mask`` is True). Computed from the call's own
        inputs, so concurrent calls on one model never see each other's masks."""
        own = (inputs != self.mask_value).any(axis=-1)
        return own if mask is None else own & mask

    def forward(self, x, mask=None, training=False, backend=None, rng=None):
        self._keep = self.compute_mask(mask, x)[..., None].astype(x.dtype)
        return x * self._keep

    def backward(self, grad):
        self.grads = []
        return grad * self._keep

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("seed")
        return {"mask_value": self.mask_value, **config}


class Embedding(Layer):
    """Maps integer token ids ``(batch, timesteps)`` to vectors ``(batch, timesteps,
    output_dim)`` by looking up rows of ``embeddings (input_dim, output_dim)``.

    With ``mask_zero=True`` id 0 is padding: the layer produces the mask ``ids != 0`` for the
    recurrent layers after it (and ``input_dim`` must leave room for it, as in Keras).
    Initial embeddings are uniform in [-0.05, 0.05] (Keras's default
    ``embeddings_initializer="uniform"``); any initializer name or object is taken (see
    :mod:`numlstm.initializers`), and ``embeddings_regularizer``/``embeddings_constraint`` as
    Keras (:mod:`numlstm.regularizers`, :mod:`numlstm.constraints`).

    ``input_length`` (Keras 2) is accepted and ignored, as Keras 3 does (it only warns): the
    sequence length comes from the data or the model's Input. Note that ``input_dim`` here is
    the vocabulary size (Embedding's own argument), not the base layers' ``input_dim``.
    """

    _weight_names = ("embeddings",)

    def __init__(self, input_dim, output_dim, mask_zero=False, seed=None, dtype="float32",
                 name=None, backend=None, trainable=True, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, input_length=None):
        super().__init__(name=name if name is not None else "embedding", dtype=dtype,
                         seed=seed, backend=backend, trainable=trainable)
        self.input_dim = V.check_positive_int(input_dim, "input_dim", V.MAX_LAYER_SIZE)
        self.output_dim = V.check_positive_int(output_dim, "output_dim",
                                                 V.MAX_LAYER_SIZE)
        self.mask_zero = V.check_bool(mask_zero, "mask_zero")
        if input_length is not None:
            V.check_positive_int(input_length, "input_length")
        self._embeddings_init = initializers.resolve(embeddings_initializer,
                                                     "embeddings_initializer")
        self.embeddings_initializer = embeddings_initializer
        _weight_arguments(self, {"embeddings": (embeddings_regularizer, embeddings_constraint)})
        self._embeddings = None

    def _weight_rules(self) -> list[tuple]:
        return [(self.embeddings_regularizer, self.embeddings_constraint)]

    @property
    def embeddings(self):
        return self._embeddings

    def weight_specs(self, input_shape) -> list[tuple[str, tuple]]:
        if len(tuple(input_shape)) != 2:
            raise ValueError("Embedding input must be 2-D (batch, timesteps) token ids; got "
                             f"shape {tuple(input_shape)}")
        return [("embeddings", (self.input_dim, self.output_dim))]

    def build(self, input_shape) -> None:
        specs = self.weight_specs(input_shape)
        constraints.check_weight_rules(self, specs)
        shape = specs[0][1]
        self._embeddings = np.asarray(self._embeddings_init(shape, self.dtype, self._rng()),
                                      self.dtype)
        super().build(input_shape)

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, mask, inputs=None):
        """``ids != 0`` with ``mask_zero`` (and the incoming ``mask``), from the call's own
        token ids ``inputs``; the incoming mask otherwise."""
        own = (inputs != 0) if self.mask_zero else None
        if mask is not None:
            own = mask if own is None else own & mask
        return own

    def _check_input(self, x):
        return V.check_token_ids(x, self.input_dim, "Embedding input")

    def _output_specs(self, inputs: list) -> list[tuple[tuple, str]]:
        (ids,) = self._single_input(inputs)
        if ids.ndim != 2 or not ids.dtype.startswith("int"):
            raise ValueError(f"layer {self.name!r} (Embedding) needs 2-D integer token ids "
                             f"(batch, timesteps), as from Input((timesteps,), dtype='int32'); "
                             f"got a {ids.dtype} tensor of shape {ids.shape}")
        self._build_in_graph(ids.shape)
        return [(tuple(self.compute_output_shape(ids.shape)), self.dtype.name)]

    def _check_built_for(self, shape: tuple) -> None:
        if self.input_shape is None:
            self.input_shape = tuple(shape)

    def forward(self, x, mask=None, training=False, backend=None, rng=None):
        ids = x.astype("int64", copy=False)
        self._cache = (ids, backend)
        return to_xp(backend, self._embeddings)[ids]

    def backward(self, grad):
        ids, backend = self._cache
        flat = backend.to_numpy(grad).reshape(-1, self.output_dim)
        g = np.zeros_like(self._embeddings)
        np.add.at(g, backend.to_numpy(ids).reshape(-1), flat)
        self.grads = [g]
        self._cache = None
        return None                               # no gradient flows into integer ids

    def get_config(self) -> dict:
        config = {"input_dim": self.input_dim, "output_dim": self.output_dim,
                  "mask_zero": self.mask_zero, **super().get_config()}
        if self.embeddings_initializer != "uniform":
            config["embeddings_initializer"] = initializers.serialize(
                self.embeddings_initializer)
        config.update({k: v for k, v in _weight_config(self, ("embeddings",)).items()
                       if v is not None})
        return config
