"""Metrics reported by ``fit`` and ``evaluate``, accumulated over an epoch as Keras 3 does.

A metric turns one batch into a *state* (a small float array that adds up across batches:
:meth:`Metric.update`) and an epoch's summed state into its value (:meth:`Metric.result`).

Mean metrics (accuracy, mae, mse, rmse, top-k accuracy, functions given by the user) follow
Keras's ``Mean``: the per-position values ``v`` (shape ``y_pred.shape[:-1]``) with weights
``w`` (``sample_weight`` -- for ``weighted_metrics`` only -- times the output's timestep mask)
add ``sum(v w) / T`` to a total and ``sum(w) / T`` to a count, ``T`` the number of positions
per sample (1, or the timesteps of a sequence output); the value is total / count (the square
root of it for ``rmse``). Without weights this is the mean over all positions.

Confusion metrics (``precision``, ``recall``, ``auc``) add up weighted true/false
positive/negative counts: a target is positive when it is non-zero, a prediction when it is
above the threshold (0.5 for precision and recall). ``AUC`` is Keras's default: ROC curve,
200 thresholds spread evenly over [0, 1] (predictions clipped to [0, 1] and bucketed as Keras
buckets them), area by trapezoidal interpolation.

``"accuracy"`` resolves, as in Keras, by the loss: sparse categorical accuracy for
``sparse_categorical_crossentropy``, categorical accuracy for ``categorical_crossentropy``,
binary accuracy (threshold 0.5 on probabilities, 0 on logits) for ``binary_crossentropy``,
and otherwise binary accuracy for one output unit or categorical accuracy for several.

As in Keras 3, ``compile(metrics=...)`` metrics ignore ``sample_weight``/``class_weight``;
``compile(weighted_metrics=...)`` ones use them. A plain function ``fn(y_true, y_pred)``
returning one value per position (host NumPy arrays) is a mean metric named ``fn.__name__``.
"""

from __future__ import annotations

import numpy as np

from . import losses as L
from . import validation as V

EPSILON = 1e-7


# Each function returns the metric at every position (shape ``y_pred.shape[:-1]``).

def _labels(y_true, y_pred):
    labels = np.asarray(y_true)
    if labels.ndim == y_pred.ndim:
        labels = labels[..., 0]
    return labels


def sparse_categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_pred, axis=-1) == _labels(y_true, y_pred)).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(np.float64)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    return ((y_pred > threshold) == (y_true > 0.5)).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    return np.abs(y_pred - y_true).mean(axis=-1)


def mean_squared_error(y_true, y_pred):
    return ((y_pred - y_true) ** 2).mean(axis=-1)


def _in_top_k(labels, y_pred, k):
    """1 where the target class's score is among the ``k`` largest (ties count as in)."""
    score = np.take_along_axis(y_pred, labels.astype(np.int64)[..., None], axis=-1)
    return ((y_pred > score).sum(axis=-1) < k).astype(np.float64)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(np.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(_labels(y_true, y_pred), y_pred, k)


def _weights(shape, mask, sample_weight):
    """Per-position weights (None when neither is given): ``sample_weight`` (``(n,)``
    broadcast over timesteps, or the positions' shape) times the mask."""
    weights = L.broadcast_sample_weight(sample_weight, shape, np.float64)
    if mask is not None:
        m = np.asarray(mask, dtype=np.float64)
        weights = m if weights is None else weights * m
    return weights


class Metric:
    """Base class. ``targets``: ``"dense"`` (y_true has the output's shape), ``"sparse"``
    (class indices) or ``"any"`` -- checked against the loss at compile."""

    name = "metric"
    targets = "any"

    def update(self, y_true, y_pred, mask=None, sample_weight=None) -> np.ndarray:
        """One batch's state (adds up across batches)."""
        raise NotImplementedError

    def result(self, state) -> float:
        raise NotImplementedError

    def __call__(self, y_true, y_pred, mask=None, sample_weight=None) -> float:
        """The metric on one batch."""
        y_pred = np.asarray(y_pred)
        return self.result(self.update(np.asarray(y_true), y_pred, mask, sample_weight))

    def get_config(self) -> dict:
        """``{"class_name", "config"}``: what :func:`get` rebuilds the metric from."""
        return {"class_name": type(self).__name__, "config": {"name": self.name}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class MeanMetric(Metric):
    """Keras's ``Mean`` over the per-position values of ``fn(y_true, y_pred)``."""

    def __init__(self, fn, name=None, targets="any"):
        if not callable(fn):
            raise TypeError(f"a metric function must be callable; got {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "metric")
        self.targets = targets

    def values(self, y_true, y_pred):
        return L.per_position(self.fn(y_true, y_pred), y_pred, f"metric {self.name!r}",
                              np.float64)

    def update(self, y_true, y_pred, mask=None, sample_weight=None):
        per = self.values(y_true, y_pred)
        positions = float(np.prod(per.shape[1:])) if per.ndim > 1 else 1.0
        weights = _weights(per.shape, mask, sample_weight)
        if weights is None:
            return np.array([per.sum() / positions, per.size / positions])
        return np.array([(per * weights).sum() / positions, weights.sum() / positions])

    def result(self, state):
        return float(state[0] / state[1]) if state[1] else 0.0

    def get_config(self) -> dict:
        raise ValueError(f"metric {self.name!r} is a Python function and cannot be written "
                         "into a model file; save the weights with save_weights()")


class _NamedMean(MeanMetric):
    """A built-in mean metric: saved by name."""

    def __init__(self, fn, name, targets):
        super().__init__(fn, name, targets)

    def get_config(self) -> dict:
        return {"class_name": "name", "config": {"name": self.name}}


class RootMeanSquaredError(_NamedMean):
    def __init__(self, name="root_mean_squared_error"):
        super().__init__(mean_squared_error, name, "dense")

    def result(self, state):
        return float(np.sqrt(state[0] / state[1])) if state[1] else 0.0

    def get_config(self) -> dict:
        return {"class_name": type(self).__name__, "config": {"name": self.name}}


class TopKCategoricalAccuracy(_NamedMean):
    """Share of samples whose target class (one-hot ``y_true``) is among the ``k`` highest
    scores."""

    sparse = False

    def __init__(self, k=5, name="top_k_categorical_accuracy"):
        self.k = V.check_int_at_least(k, "k", 1)
        fn = sparse_top_k_categorical_accuracy if self.sparse else top_k_categorical_accuracy
        super().__init__(lambda t, p: fn(t, p, self.k), name,
                         "sparse" if self.sparse else "dense")

    def get_config(self) -> dict:
        return {"class_name": type(self).__name__, "config": {"name": self.name, "k": self.k}}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """:class:`TopKCategoricalAccuracy` with class-index targets."""

    sparse = True

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy"):
        super().__init__(k, name)


def _flat(y_true, y_pred, mask, sample_weight):
    """Targets, predictions and weights as flat arrays of every element (a position's units
    each count, as Keras's confusion metrics count them)."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape and t.size == p.size:
        t = t.reshape(p.shape)
    weights = _weights(p.shape[:-1], mask, sample_weight)
    w = np.ones(p.shape) if weights is None else np.broadcast_to(weights[..., None], p.shape)
    return t.reshape(-1), p.reshape(-1), np.asarray(w, dtype=np.float64).reshape(-1)


class Precision(Metric):
    """``tp / (tp + fp)`` at ``thresholds`` (one number, default 0.5)."""

    targets = "dense"

    def __init__(self, thresholds=None, name="precision"):
        self.thresholds = 0.5 if thresholds is None else V.check_real_in_range(
            thresholds, "thresholds", low_inclusive=True, high=1.0 + 1e-12)
        self.name = name

    def _counts(self, y_true, y_pred, mask, sample_weight):
        t, p, w = _flat(y_true, y_pred, mask, sample_weight)
        positive, predicted = t != 0, p > self.thresholds
        return (w * (positive & predicted)).sum(), (w * (~positive & predicted)).sum(), \
            (w * (positive & ~predicted)).sum()

    def update(self, y_true, y_pred, mask=None, sample_weight=None):
        return np.array(self._counts(y_true, y_pred, mask, sample_weight))

    def result(self, state):
        tp, fp, _ = state
        return float(tp / (tp + fp)) if tp + fp else 0.0

    def get_config(self) -> dict:
        return {"class_name": type(self).__name__,
                "config": {"name": self.name, "thresholds": self.thresholds}}


class Recall(Precision):
    """``tp / (tp + fn)`` at ``thresholds`` (one number, default 0.5)."""

    def __init__(self, thresholds=None, name="recall"):
        super().__init__(thresholds, name)

    def result(self, state):
        tp, _, fn = state
        return float(tp / (tp + fn)) if tp + fn else 0.0


class AUC(Metric):
    """Area under the ROC curve, Keras's defaults (see the module docstring)."""

    targets = "dense"

    def __init__(self, num_thresholds=200, name="auc"):
        self.num_thresholds = V.check_int_at_least(num_thresholds, "num_thresholds", 3)
        self.name = name

    def update(self, y_true, y_pred, mask=None, sample_weight=None):
        t, p, w = _flat(y_true, y_pred, mask, sample_weight)
        n = self.num_thresholds
        p = np.clip(p, 0.0, 1.0).astype(np.float32)
        # Keras's bucket of a prediction: ceil(p (n - 1)) - 1, at least 0; the counts at
        # threshold i are those of buckets >= i.
        buckets = np.maximum(np.ceil(p * np.float32(n - 1)) - 1, 0).astype(np.int64)
        positive = (t != 0).astype(np.float64)
        tp_b = np.bincount(buckets, positive * w, minlength=n)
        fp_b = np.bincount(buckets, (1 - positive) * w, minlength=n)
        tp = np.cumsum(tp_b[::-1])[::-1]
        fp = np.cumsum(fp_b[::-1])[::-1]
        fn = (positive * w).sum() - tp
        tn = ((1 - positive) * w).sum() - fp
        return np.concatenate([tp, fp, tn, fn])

    def result(self, state):
        tp, fp, tn, fn = np.split(np.asarray(state, dtype=np.float64), 4)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
            fp_rate = np.where(fp + tn > 0, fp / (fp + tn), 0.0)
        heights = (recall[:-1] + recall[1:]) / 2
        return float(((fp_rate[:-1] - fp_rate[1:]) * heights).sum())

    def get_config(self) -> dict:
        return {"class_name": type(self).__name__,
                "config": {"name": self.name, "num_thresholds": self.num_thresholds}}


_MEAN_NAMES = {
    "mae": (mean_absolute_error, "dense"), "mean_absolute_error": (mean_absolute_error, "dense"),
    "mse": (mean_squared_error, "dense"), "mean_squared_error": (mean_squared_error, "dense"),
    "sparse_categorical_accuracy": (sparse_categorical_accuracy, "sparse"),
    "categorical_accuracy": (categorical_accuracy, "dense"),
    "binary_accuracy": (binary_accuracy, "dense"),
}
_OBJECT_NAMES = {
    "rmse": RootMeanSquaredError, "root_mean_squared_error": RootMeanSquaredError,
    "precision": Precision, "recall": Recall, "auc": AUC,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
}
_CLASSES = {cls.__name__: cls for cls in (RootMeanSquaredError, Precision, Recall, AUC,
                                          TopKCategoricalAccuracy,
                                          SparseTopKCategoricalAccuracy)}

METRIC_NAMES = ("accuracy", "acc", *_MEAN_NAMES, *_OBJECT_NAMES)


def check_identifier(identifier, argument="metrics") -> None:
    """A metric name, Metric object, config dict or function (before the loss is known)."""
    if isinstance(identifier, (Metric, dict)) or (callable(identifier)
                                                  and not isinstance(identifier, type)):
        return
    if not isinstance(identifier, str):
        raise TypeError(f"{argument} must hold metric names from {list(METRIC_NAMES)}, "
                        f"numlstm.metrics objects or functions fn(y_true, y_pred); got "
                        f"{type(identifier).__name__} {identifier!r}")
    if identifier not in METRIC_NAMES:
        raise ValueError(f"{argument} must be names from {list(METRIC_NAMES)} (or metric "
                         f"objects or functions); got {identifier!r}")


def get(identifier, loss: L.Loss, output_units: int) -> Metric:
    """Resolve a metric for a model compiled with ``loss``: a name, a :class:`Metric`, a
    config dict from :meth:`Metric.get_config`, or a function ``fn(y_true, y_pred)``."""
    check_identifier(identifier)
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        config = dict(identifier.get("config") or {})
        if name == "name":
            return get(config.get("name"), loss, output_units)
        if name not in _CLASSES:
            raise ValueError(f"metric config names an unknown metric {name!r}; known: "
                             f"{sorted(_CLASSES)}")
        return _CLASSES[name](**config)
    if callable(identifier):
        return MeanMetric(identifier)
    if identifier in ("accuracy", "acc"):
        if isinstance(loss, L.SparseCategoricalCrossentropy):
            return _NamedMean(sparse_categorical_accuracy, identifier, "sparse")
        if isinstance(loss, L.CategoricalCrossentropy):
            return _NamedMean(categorical_accuracy, identifier, "dense")
        if isinstance(loss, L.BinaryCrossentropy) or output_units == 1:
            threshold = 0.0 if getattr(loss, "from_logits", False) else 0.5
            return _NamedMean(lambda t, p, th=threshold: binary_accuracy(t, p, th),
                              identifier, "dense")
        return _NamedMean(categorical_accuracy, identifier, "dense")
    if identifier in _OBJECT_NAMES:
        metric = _OBJECT_NAMES[identifier]()
        metric.name = identifier
        return metric
    fn, targets = _MEAN_NAMES[identifier]
    return _NamedMean(fn, identifier, targets)


def check_targets(metric: Metric, loss: L.Loss, output_units: int, where: str) -> None:
    """Refuse, before training, a metric that cannot read the targets ``loss`` takes: one
    that compares y_true with y_pred element by element when the loss takes class indices
    (``mae`` with ``sparse_categorical_crossentropy``), or one that reads class indices when
    the loss takes arrays of the output's shape."""
    sparse = bool(getattr(loss, "sparse", False))
    if sparse and metric.targets == "dense" and output_units != 1:
        raise ValueError(f"{where}: metric {metric.name!r} compares targets of the output's "
                         f"shape (..., {output_units}) with the predictions, but loss "
                         f"{loss.name!r} takes class indices; use a sparse metric (e.g. "
                         "'sparse_categorical_accuracy', 'sparse_top_k_categorical_accuracy') "
                         "or one-hot targets with categorical_crossentropy")
    if not sparse and metric.targets == "sparse":
        raise ValueError(f"{where}: metric {metric.name!r} reads class indices, but loss "
                         f"{loss.name!r} takes targets of the output's shape; use "
                         "'categorical_accuracy' / 'top_k_categorical_accuracy' or "
                         "sparse_categorical_crossentropy")
