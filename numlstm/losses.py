"""Losses with Keras's definitions, each returning its value and its gradient.

Every loss reduces like Keras's default ("sum over batch size"): a per-element loss over the
last axis, then the mean over every other axis (batch, and timesteps for sequence outputs --
only the unmasked timesteps when the output carries a mask).
``value_and_grad(y_true, y_pred, mask=None)`` returns that mean and ``dL/dy_pred``.

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

    def __call__(self, y_true, y_pred, mask=None) -> float:
        return self.value_and_grad(y_true, y_pred, mask)[0]

    def elementwise(self, y_true, y_pred):
        """``(per, grad)``: the loss at every position (shape ``y_pred.shape[:-1]``) and
        ``d per / d y_pred`` (shape of ``y_pred``; each position's loss depends only on its own
        row of ``y_pred``)."""
        raise NotImplementedError

    def value_and_grad(self, y_true, y_pred, mask=None):
        """The mean loss and its gradient. With a boolean ``mask`` of shape
        ``y_pred.shape[:-1]`` (a sequence output's timestep mask) the mean runs over the unmasked
        positions only, as Keras 3 reduces masked losses."""
        per, grad = self.elementwise(y_true, y_pred)
        if mask is None:
            n = max(per.size, 1)
            return float(per.sum() / n), grad / n
        weights = np.asarray(mask, dtype=grad.dtype)
        n = max(float(weights.sum()), 1.0)
        return float((per * weights).sum() / n), grad * (weights[..., None] / n)

    def get_config(self) -> dict:
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"


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


LOSSES = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}

mse = mean_squared_error = MeanSquaredError
mae = mean_absolute_error = MeanAbsoluteError


def get(identifier) -> Loss:
    """A loss from a name (see :data:`LOSSES`), a config dict, or a :class:`Loss`."""
    if isinstance(identifier, Loss):
        return identifier
    name = V.check_registered(identifier, "loss", LOSSES, "mse", "a Loss")
    if isinstance(identifier, dict):
        config = dict(identifier)
        config.pop("name")
        return LOSSES[name](**config)
    return LOSSES[name]()
