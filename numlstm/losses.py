"""Losses with Keras's definitions, each returning its value and its gradient.

Every loss reduces like Keras 3's default ("sum_over_batch_size"): a per-position loss ``l``
(reduced over the last axis; shape ``y_pred.shape[:-1]``), then, with per-position weights
``w`` (``sample_weight`` of shape ``(n,)`` broadcast over timesteps, or ``(n, timesteps)``)::

    L = sum(w * l) / count

where ``count`` is the number of positions -- or, when the output carries a timestep mask, the
number of unmasked positions (masked ones get weight 0). The weights are *not* normalised:
``L`` is not divided by ``sum(w)``, exactly as in Keras 3.
``value_and_grad(y_true, y_pred, mask=None, sample_weight=None)`` returns ``L`` and
``dL/dy_pred``.

Custom losses: subclass :class:`Loss` and implement ``elementwise`` (value and gradient), or
wrap two functions with :class:`LossFunction`. numlstm has no automatic differentiation, so a
plain Python function ``fn(y_true, y_pred)`` is accepted only as a *metric*; as a loss it is
refused with a ``TypeError`` that says how to give its gradient. Losses run on host NumPy
arrays (the model converts its outputs to NumPy before the loss, on every backend).

Probabilities are clipped to ``[EPSILON, 1 - EPSILON]`` (Keras's ``epsilon()`` = 1e-7) before
logarithms; ``from_logits=True`` computes from logits with log-sum-exp instead, which is exact
and stable for any magnitude.
"""

from __future__ import annotations

import numpy as np

from . import validation as V

EPSILON = 1e-7


class Loss:
    """Base class: ``loss(y_true, y_pred)`` is the value, ``value_and_grad`` adds dL/dy_pred."""

    name = "loss"
    #: True when targets are class indices (sparse), for validation and metrics.
    sparse = False

    def __init__(self, from_logits=False):
        self.from_logits = V.check_bool(from_logits, "from_logits")

    def __call__(self, y_true, y_pred, mask=None, sample_weight=None) -> float:
        return self.value_and_grad(y_true, y_pred, mask, sample_weight)[0]

    def elementwise(self, y_true, y_pred):
        """``(per, grad)``: the loss at every position (shape ``y_pred.shape[:-1]``) and
        ``d per / d y_pred`` (shape of ``y_pred``; each position's loss depends only on its own
        row of ``y_pred``)."""
        raise NotImplementedError

    def value_and_grad(self, y_true, y_pred, mask=None, sample_weight=None):
        """The reduced loss and its gradient (see the module docstring). ``mask``: boolean of
        shape ``y_pred.shape[:-1]`` (a sequence output's timestep mask); ``sample_weight``:
        floats of shape ``(n,)`` or ``y_pred.shape[:-1]``."""
        per, grad = self.elementwise(y_true, y_pred)
        weights = position_weights(per.shape, mask, sample_weight, grad.dtype)
        if weights is None:
            n = max(per.size, 1)
            return float(per.sum() / n), grad / n
        n = max(per.size, 1)
        return float((per * weights).sum() / n), grad * (weights[..., None] / n)

    def get_config(self) -> dict:
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"


def per_position(values, y_pred, what: str, dtype) -> np.ndarray:
    """A user function's result as one value per position (shape ``y_pred.shape[:-1]``) of
    ``dtype``; any other shape raises a ``ValueError`` naming ``what`` (e.g. "loss 'f'")."""
    per = np.asarray(values, dtype=dtype)
    if per.shape != y_pred.shape[:-1]:
        raise ValueError(f"{what} must return one value per position, shape "
                         f"{y_pred.shape[:-1]} for predictions of shape {y_pred.shape}; "
                         f"got shape {per.shape}")
    return per


def broadcast_sample_weight(sample_weight, shape, dtype):
    """``sample_weight`` (``(n,)``, ``(n, 1)`` or ``(n, timesteps)``) as an array of
    ``shape`` (the positions: ``(n,)`` or ``(n, timesteps)``) and ``dtype``; None for None."""
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight, dtype=dtype)
    if sw.ndim == len(shape) + 1 and sw.shape[-1] == 1:
        sw = sw[..., 0]
    while sw.ndim < len(shape):
        sw = sw[..., None]
    return np.broadcast_to(sw, shape)


def position_weights(shape, mask, sample_weight, dtype):
    """Keras 3's weights for ``sum_over_batch_size``: ``sample_weight`` broadcast to the
    positions (``shape``), times ``mask * size / count(mask)`` (0 at masked positions; all
    0 when nothing is unmasked, as Keras's ``divide_no_nan``). None when neither is
    given."""
    weights = broadcast_sample_weight(sample_weight, shape, dtype)
    if mask is not None:
        m = np.asarray(mask, dtype=dtype)
        valid = float(m.sum())
        m = m * (m.size / valid) if valid else np.zeros_like(m)
        weights = m if weights is None else weights * m
    return weights


class MeanSquaredError(Loss):
    """mean((y_true - y_pred)²) over the last axis, then over everything else."""

    name = "mean_squared_error"

    def __init__(self):
        super().__init__(False)

    def elementwise(self, y_true, y_pred):
        diff = y_pred - y_true
        units = max(diff.shape[-1], 1)
        return (diff * diff).mean(axis=-1), 2.0 * diff / units

    def get_config(self) -> dict:
        return {"name": self.name}


class MeanAbsoluteError(Loss):
    """mean(|y_true - y_pred|)."""

    name = "mean_absolute_error"

    def __init__(self):
        super().__init__(False)

    def elementwise(self, y_true, y_pred):
        diff = y_pred - y_true
        units = max(diff.shape[-1], 1)
        return np.abs(diff).mean(axis=-1), np.sign(diff) / units

    def get_config(self) -> dict:
        return {"name": self.name}


class BinaryCrossentropy(Loss):
    """-(y log p + (1 - y) log(1 - p)), averaged; targets in [0, 1]."""

    name = "binary_crossentropy"

    def elementwise(self, y_true, y_pred):
        units = max(y_pred.shape[-1], 1)
        if self.from_logits:
            z = y_pred
            # max(z, 0) - z y + log(1 + e^-|z|): stable for any z.
            value = np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))
            sig = np.exp(-np.logaddexp(0, -z))
            return value.mean(axis=-1), (sig - y_true) / units
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        value = -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
        inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
        grad = (-(y_true / p) + (1 - y_true) / (1 - p)) * inside
        return value.mean(axis=-1), grad / units


class CategoricalCrossentropy(Loss):
    """-Σ y log p over the classes (last axis), averaged; ``p`` is renormalised to sum to 1 as
    Keras does (or computed by log-softmax with ``from_logits=True``)."""

    name = "categorical_crossentropy"

    def _from_probs(self, onehot, y_pred):
        total = y_pred.sum(axis=-1, keepdims=True)
        q = y_pred / total
        p = np.clip(q, EPSILON, 1 - EPSILON)
        value = -(onehot * np.log(p)).sum(axis=-1)
        inside = (q > EPSILON) & (q < 1 - EPSILON)
        dq = -(onehot / p) * inside
        # q = y / S: dL/dy_j = (dq_j - Σ_k dq_k q_k) / S
        grad = (dq - (dq * q).sum(axis=-1, keepdims=True)) / total
        return value, grad

    def _from_logits(self, onehot, z):
        shifted = z - z.max(axis=-1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        value = -(onehot * log_softmax).sum(axis=-1)
        grad = np.exp(log_softmax) * onehot.sum(axis=-1, keepdims=True) - onehot
        return value, grad

    def _onehot(self, y_true, y_pred):
        return y_true

    def elementwise(self, y_true, y_pred):
        onehot = self._onehot(y_true, y_pred)
        compute = self._from_logits if self.from_logits else self._from_probs
        return compute(onehot, y_pred)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Categorical crossentropy with integer class targets: ``y_true`` has the shape of
    ``y_pred`` without its last (class) axis, or with a last axis of size 1."""

    name = "sparse_categorical_crossentropy"
    sparse = True

    def _onehot(self, y_true, y_pred):
        labels = np.asarray(y_true)
        if labels.ndim == y_pred.ndim:
            labels = labels[..., 0]
        onehot = np.zeros(y_pred.shape, y_pred.dtype)
        np.put_along_axis(onehot, labels.astype(np.int64)[..., None], 1, axis=-1)
        return onehot


class Huber(Loss):
    """``0.5 e²`` where ``|e| <= delta``, else ``delta (|e| - 0.5 delta)``, ``e = y_pred -
    y_true``; mean over the last axis."""

    name = "huber"

    def __init__(self, delta=1.0):
        super().__init__(False)
        self.delta = V.check_real_in_range(delta, "delta")

    def elementwise(self, y_true, y_pred):
        e = y_pred - y_true
        a = np.abs(e)
        d = y_pred.dtype.type(self.delta)
        small = a <= d
        value = np.where(small, 0.5 * e * e, d * a - 0.5 * d * d)
        units = max(e.shape[-1], 1)
        return value.mean(axis=-1), np.where(small, e, d * np.sign(e)) / units

    def get_config(self) -> dict:
        return {"name": self.name, "delta": self.delta}


class LogCosh(Loss):
    """``log(cosh(e))`` computed as ``e + softplus(-2e) - log 2``; mean over the last axis."""

    name = "log_cosh"

    def __init__(self):
        super().__init__(False)

    def elementwise(self, y_true, y_pred):
        e = y_pred - y_true
        value = e + np.logaddexp(0, -2.0 * e) - np.log(2.0)
        units = max(e.shape[-1], 1)
        return value.mean(axis=-1).astype(y_pred.dtype), np.tanh(e) / units

    def get_config(self) -> dict:
        return {"name": self.name}


class KLDivergence(Loss):
    """``Σ t log(t / p)`` over the last axis, ``t`` and ``p`` clipped to ``[EPSILON, 1]``."""

    name = "kl_divergence"

    def __init__(self):
        super().__init__(False)

    def elementwise(self, y_true, y_pred):
        t = np.clip(y_true, EPSILON, 1)
        p = np.clip(y_pred, EPSILON, 1)
        inside = (y_pred > EPSILON) & (y_pred < 1)
        return (t * np.log(t / p)).sum(axis=-1), -(t / p) * inside

    def get_config(self) -> dict:
        return {"name": self.name}


class Poisson(Loss):
    """``y_pred - y_true log(y_pred + EPSILON)``; mean over the last axis."""

    name = "poisson"

    def __init__(self):
        super().__init__(False)

    def elementwise(self, y_true, y_pred):
        value = y_pred - y_true * np.log(y_pred + EPSILON)
        units = max(y_pred.shape[-1], 1)
        return value.mean(axis=-1), (1 - y_true / (y_pred + EPSILON)) / units

    def get_config(self) -> dict:
        return {"name": self.name}


class CosineSimilarity(Loss):
    """``-Σ t̂ p̂`` over the last axis, ``x̂ = x / max(|x|, EPSILON)`` (Keras's
    ``normalize``); -1 when the directions agree. Only ``axis=-1`` is supported."""

    name = "cosine_similarity"

    def __init__(self, axis=-1):
        super().__init__(False)
        if axis != -1:
            raise ValueError(f"CosineSimilarity supports axis=-1 only; got axis={axis!r}")

    def elementwise(self, y_true, y_pred):
        tn = np.maximum(np.sqrt((y_true * y_true).sum(axis=-1, keepdims=True)), EPSILON)
        pn = np.sqrt((y_pred * y_pred).sum(axis=-1, keepdims=True))
        t, p_norm = y_true / tn, np.maximum(pn, EPSILON)
        p = y_pred / p_norm
        value = -(t * p).sum(axis=-1)
        # above EPSILON: d/dp of -(t · p/|p|) = -(t - (t · p̂) p̂) / |p|; below: -t / EPSILON
        grad = np.where(pn > EPSILON, -(t - (t * p).sum(axis=-1, keepdims=True) * p) / p_norm,
                        -t / EPSILON)
        return value, grad

    def get_config(self) -> dict:
        return {"name": self.name}


class LossFunction(Loss):
    """A loss from two functions on host NumPy arrays: ``fn(y_true, y_pred)`` returns the
    loss at every position (shape ``y_pred.shape[:-1]``, e.g. ``(batch,)``), and
    ``gradient(y_true, y_pred)`` its derivative with respect to ``y_pred`` (shape of
    ``y_pred``). Both shapes are checked at every call. ``sparse=True`` when the targets are
    class indices. A model compiled with one can be trained but not saved with
    :meth:`~numlstm.Model.save` (use ``save_weights``)."""

    def __init__(self, fn, gradient, name=None, sparse=False):
        super().__init__(False)
        if not callable(fn) or not callable(gradient):
            raise TypeError(f"LossFunction needs two callables fn(y_true, y_pred) and "
                            f"gradient(y_true, y_pred); got {fn!r} and {gradient!r}")
        self.fn, self.gradient = fn, gradient
        self.name = name or getattr(fn, "__name__", "custom_loss")
        self.sparse = V.check_bool(sparse, "sparse")

    def elementwise(self, y_true, y_pred):
        per = per_position(self.fn(y_true, y_pred), y_pred, f"loss {self.name!r}",
                           y_pred.dtype)
        grad = np.asarray(self.gradient(y_true, y_pred), dtype=y_pred.dtype)
        if grad.shape != y_pred.shape:
            raise ValueError(f"the gradient of loss {self.name!r} must have the predictions' "
                             f"shape {y_pred.shape}; got shape {grad.shape}")
        return per, grad

    def get_config(self) -> dict:
        raise ValueError(f"loss {self.name!r} is made from Python functions and cannot be "
                         "written into a model file; save the weights with save_weights() "
                         "and compile again after loading")

    def __repr__(self) -> str:
        return f"LossFunction({self.name!r})"


LOSSES = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "huber": Huber, "log_cosh": LogCosh, "logcosh": LogCosh,
    "kl_divergence": KLDivergence, "kld": KLDivergence,
    "kullback_leibler_divergence": KLDivergence, "poisson": Poisson,
    "cosine_similarity": CosineSimilarity,
}

mse = mean_squared_error = MeanSquaredError
mae = mean_absolute_error = MeanAbsoluteError


def get(identifier) -> Loss:
    """A loss from a name (see :data:`LOSSES`), a config dict, or a :class:`Loss`."""
    if isinstance(identifier, Loss):
        return identifier
    if callable(identifier) and not isinstance(identifier, (str, dict, type)):
        raise TypeError(f"loss {identifier!r} is a plain function: numlstm has no automatic "
                        "differentiation, so a loss needs its gradient too -- wrap it as "
                        "numlstm.losses.LossFunction(fn, gradient) or subclass "
                        "numlstm.losses.Loss (a plain function is accepted as a metric)")
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    name = V.check_registered(identifier, "loss", LOSSES, "mse", "a Loss")
    if isinstance(identifier, dict):
        config = dict(identifier)
        config.pop("name")
        return LOSSES[name](**config)
    return LOSSES[name]()
