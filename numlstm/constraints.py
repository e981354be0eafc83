"""Weight constraints with Keras 3's names, definitions and defaults.

A constraint is a projection ``w -> constraint(w)`` applied to a weight right after each
optimizer step (``fit``, ``train_on_batch``), as Keras applies a variable's constraint after
its update. With ``norms = sqrt(sum(w**2, axis, keepdims=True))`` and ``eps = 1e-7`` (Keras's
``epsilon()``)::

    MaxNorm(max_value=2, axis=0)      w * clip(norms, 0, max_value) / (eps + norms)
    NonNeg()                          max(w, 0)
    UnitNorm(axis=0)                  w / (eps + norms)
    MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0)
                                      w * (rate * clip(norms, min_value, max_value)
                                           + (1 - rate) * norms) / (eps + norms)

``axis=0`` (Keras's default) constrains each column: for a Dense kernel ``(features,
units)``, the weight vector into each unit; for an LSTM kernel ``(features, 4*units)``, each
gate unit's input weights. A 1-D weight (a bias) has only axis 0.

Layers take them as ``kernel_constraint``, ``recurrent_constraint``, ``bias_constraint`` and
(Embedding) ``embeddings_constraint``: an object of this module, a name (``"max_norm"``,
``"non_neg"``, ``"unit_norm"``, ``"min_max_norm"``, or the class name) for the defaults, a
configuration ``{"class_name": "MaxNorm", "config": {...}}`` (Keras's ``serialize`` layout,
also what numlstm's saved models hold) or None. Python callables are refused with a
``ValueError`` (a saved model could not hold them).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .configurable import Configurable, from_keras_config, to_keras_config

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "max_norm", "non_neg",
           "unit_norm", "min_max_norm", "get", "serialize"]

#: Keras's ``backend.epsilon()``.
EPSILON = 1e-7


def _number(value, argument: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a number; got {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)) or float(value) < minimum:
        raise ValueError(f"{argument} must be a finite number >= {minimum}; got "
                         f"{argument}={value}")
    return value


def _axis(value):
    if isinstance(value, (list, tuple)):
        return [_axis(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"axis must be an integer or a list of them; got {value!r}")
    return int(value)


class Constraint(Configurable):
    """Base class: ``constraint(w)`` returns the projected array (a new array of ``w``'s
    shape and dtype)."""

    def __call__(self, w):
        return w

    def check_shape(self, shape, argument: str = "constraint", layer: str | None = None
                    ) -> None:
        """Raise a ``ValueError`` naming ``argument`` (and ``layer``) when this constraint
        cannot apply to a weight of ``shape``: an ``axis`` outside ``[-ndim, ndim)`` or
        repeated. Layers call it when they build their weights, so a bad axis is reported
        before training rather than after the first optimizer step has changed them."""
        axis = getattr(self, "axis", None)
        if axis is None:
            return
        shape = tuple(shape)
        ndim = len(shape)
        axes = axis if isinstance(axis, list) else [axis]
        where = f"layer {layer!r}: " if layer is not None else ""
        bad = [a for a in axes if not -ndim <= a < ndim]
        if bad:
            raise ValueError(f"{where}{argument}={self!r} has axis={axis}, but the weight it "
                             f"constrains has shape {shape} ({ndim}-D): axis must be in "
                             f"[{-ndim}, {ndim - 1}]")
        if len({a % ndim for a in axes}) != len(axes):
            raise ValueError(f"{where}{argument}={self!r} has axis={axis}, which names an "
                             f"axis of the weight of shape {shape} twice")

    def _norms(self, w):
        self.check_shape(w.shape)
        axis = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


def check_weight_rules(layer, specs) -> None:
    """Check each constraint of ``layer`` (its ``_weight_rules()``) against the weight it
    applies to, ``specs`` = ``[(weight name, shape)]`` in the same order (the layer's
    ``weight_specs``); the error names the layer and the argument (``kernel_constraint``,
    ``recurrent_constraint``, ``bias_constraint``, ``embeddings_constraint``)."""
    for (name, shape), (_, constraint) in zip(specs, layer._weight_rules()):
        if constraint is not None:
            argument = "recurrent_constraint" if name == "recurrent_kernel" else \
                f"{name}_constraint"
            constraint.check_shape(shape, argument, layer.name)


class MaxNorm(Constraint):
    """Rescales the vectors along ``axis`` whose norm exceeds ``max_value``."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number(max_value, "max_value")
        self.axis = _axis(axis)

    def __call__(self, w):
        norms = self._norms(w)
        desired = np.clip(norms, 0, self.max_value)
        return (w * (desired / (EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Sets negative entries to 0."""

    def __call__(self, w):
        return np.maximum(w, 0).astype(w.dtype, copy=False)


class UnitNorm(Constraint):
    """Scales the vectors along ``axis`` to norm 1."""

    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def __call__(self, w):
        return (w / (EPSILON + self._norms(w))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves the norm of the vectors along ``axis`` into ``[min_value, max_value]``, a
    fraction ``rate`` of the way (1: all of it)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number(min_value, "min_value")
        self.max_value = _number(max_value, "max_value")
        if self.max_value < self.min_value:
            raise ValueError(f"max_value must be >= min_value; got min_value={min_value}, "
                             f"max_value={max_value}")
        self.rate = _number(rate, "rate")
        self.axis = _axis(axis)

    def __call__(self, w):
        norms = self._norms(w)
        desired = (self.rate * np.clip(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return (w * (desired / (EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


# Keras's lower-case aliases.
max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm

_CLASSES = {"MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm,
            "MinMaxNorm": MinMaxNorm}
_STRINGS = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
            "min_max_norm": MinMaxNorm}


def get(spec, argument: str = "constraint"):
    """The :class:`Constraint` ``spec`` names (see the module docstring), or None."""
    if spec is None or isinstance(spec, Constraint):
        return spec
    if isinstance(spec, str):
        cls = _STRINGS.get(spec) or _CLASSES.get(spec)
        if cls is None:
            raise ValueError(f"{argument} must be one of {sorted(_STRINGS)}, a "
                             f"numlstm.constraints object or None; got {spec!r}")
        return cls()
    if isinstance(spec, dict):
        return from_keras_config(spec, _CLASSES, argument)
    raise ValueError(f"{argument} must be a constraint name ({sorted(_STRINGS)}), a "
                     f"numlstm.constraints object or None; got {type(spec).__name__} "
                     f"{spec!r} (Python callables and Keras objects are not supported)")


def serialize(constraint) -> dict | None:
    """``{"class_name": ..., "config": {...}}`` (Keras's layout), or None."""
    if constraint is None:
        return None
    return to_keras_config(constraint)
