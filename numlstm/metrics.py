"""Metrics reported by ``fit`` and ``evaluate``, averaged as Keras 3 averages them: over every
position a metric is computed at -- each sample, or each unmasked timestep of a masked
sequence output -- across the whole epoch (:meth:`Metric.totals` gives a batch's sum and
count; the epoch's value is the sum of sums over the sum of counts). The loss, by contrast, is
averaged over batches weighted by their number of samples, as Keras's loss tracker does.

``"accuracy"`` resolves, as in Keras, by the loss: sparse categorical accuracy for
``sparse_categorical_crossentropy``, categorical accuracy for ``categorical_crossentropy``,
binary accuracy (threshold 0.5 on probabilities, 0 on logits) for ``binary_crossentropy``,
and otherwise binary accuracy for one output unit or categorical accuracy for several.
"""

from __future__ import annotations

import numpy as np

from . import losses as L


# Each function returns the metric at every position (shape ``y_pred.shape[:-1]``); a Metric
# averages that, over the unmasked positions only when the output carries a mask.

def sparse_categorical_accuracy(y_true, y_pred):
    labels = np.asarray(y_true)
    if labels.ndim == y_pred.ndim:
        labels = labels[..., 0]
    return (np.argmax(y_pred, axis=-1) == labels).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(np.float64)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    return ((y_pred > threshold) == (y_true > 0.5)).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    return np.abs(y_pred - y_true).mean(axis=-1)


def mean_squared_error(y_true, y_pred):
    return ((y_pred - y_true) ** 2).mean(axis=-1)


METRIC_NAMES = ("accuracy", "acc", "mae", "mean_absolute_error", "mse", "mean_squared_error",
                "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy")


class Metric:
    """A named function ``fn(y_true, y_pred) -> float``."""

    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def __call__(self, y_true, y_pred, mask=None) -> float:
        """The metric's mean over one batch's positions (its unmasked ones with ``mask``)."""
        total, count = self.totals(y_true, y_pred, mask)
        return total / count if count else 0.0

    def totals(self, y_true, y_pred, mask=None) -> tuple[float, float]:
        """``(sum, count)`` over one batch: the metric summed over its positions (the unmasked
        ones with a ``mask`` of shape ``y_pred.shape[:-1]``) and how many there are."""
        per = self.fn(y_true, y_pred)
        if mask is None:
            return float(per.sum()), float(per.size)
        weights = np.asarray(mask, dtype=np.float64)
        return float((per * weights).sum()), float(weights.sum())


def get(identifier, loss: L.Loss, output_units: int) -> Metric:
    """Resolve a metric name for a model compiled with ``loss``."""
    if not isinstance(identifier, str):
        raise TypeError(f"metrics must be a list of names from {list(METRIC_NAMES)}; got "
                        f"{type(identifier).__name__} {identifier!r}")
    if identifier not in METRIC_NAMES:
        raise ValueError(f"metrics must be names from {list(METRIC_NAMES)}; got "
                         f"{identifier!r}")
    if identifier in ("accuracy", "acc"):
        if isinstance(loss, L.SparseCategoricalCrossentropy):
            fn = sparse_categorical_accuracy
        elif isinstance(loss, L.CategoricalCrossentropy):
            fn = categorical_accuracy
        elif isinstance(loss, L.BinaryCrossentropy) or output_units == 1:
            threshold = 0.0 if getattr(loss, "from_logits", False) else 0.5
            fn = (lambda t, p, th=threshold: binary_accuracy(t, p, th))
        else:
            fn = categorical_accuracy
        return Metric(identifier, fn)
    fn = {"mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
          "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
          "sparse_categorical_accuracy": sparse_categorical_accuracy,
          "categorical_accuracy": categorical_accuracy,
          "binary_accuracy": binary_accuracy}[identifier]
    return Metric(identifier, fn)
