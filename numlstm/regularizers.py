"""Weight and activity regularizers with Keras 3's names, definitions and configurations.

A regularizer maps an array ``w`` to a penalty added to the training loss::

    L1(l1=0.01)          l1 * sum(|w|)
    L2(l2=0.01)          l2 * sum(w**2)
    L1L2(l1=0.0, l2=0.0) l1 * sum(|w|) + l2 * sum(w**2)

Layers take them as ``kernel_regularizer``, ``recurrent_regularizer``, ``bias_regularizer``,
``embeddings_regularizer`` (a penalty on the weight) and ``activity_regularizer`` (a penalty
on the layer's output, divided by the batch size, as Keras 3 does). As in Keras:

* the penalties are added to the loss that training minimises *and* to the ``loss`` that
  ``fit``, ``train_on_batch``, ``evaluate`` and ``test_on_batch`` report;
* only trainable weights are penalised (a frozen layer's weight penalties drop out);
* an activity regularizer applies to every output of its layer (an LSTM with
  ``return_state=True``: the output and both states).

Accepted specifications (:func:`get`): an object of this module; the strings ``"l1"``,
``"l2"`` (factor 0.01) and ``"l1l2"`` (Keras 3: both factors 0); ``"l1_l2"``, which Keras 3
refuses and Keras 2 read as ``l1_l2(l1=0.01, l2=0.01)``, is taken in Keras 2's sense; a
configuration ``{"class_name": "L1L2", "config": {"l1": ..., "l2": ...}}`` as Keras's
``regularizers.serialize`` writes it (also what numlstm's saved models hold); None.
Keras's ``OrthogonalRegularizer`` and Python callables are refused with a ``ValueError``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .configurable import Configurable, from_keras_config, to_keras_config

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize"]


def _factor(value, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a number >= 0; got {type(value).__name__} "
                        f"{value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{argument} must be a finite number >= 0; got {argument}={value}")
    return value


class Regularizer(Configurable):
    """Base class: ``penalty(w)`` (a float) and ``gradient(w)`` (d penalty / dw, an array of
    ``w``'s shape and dtype); ``get_config``/``from_config`` as Keras."""

    def __call__(self, w) -> float:
        return self.penalty(w)

    def penalty(self, w) -> float:
        raise NotImplementedError

    def gradient(self, w):
        raise NotImplementedError


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w**2)``; the gradient is ``l1 * sign(w) + 2 l2 w`` (0 at
    ``w = 0`` for the l1 part, as the subgradient Keras's automatic differentiation takes)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2")

    def penalty(self, w) -> float:
        xp = _namespace(w)
        total = 0.0
        if self.l1:
            total += self.l1 * float(xp.abs(w).sum())
        if self.l2:
            total += self.l2 * float((w * w).sum())
        return total

    def gradient(self, w):
        xp = _namespace(w)
        grad = xp.zeros_like(w)
        if self.l1:
            grad = grad + w.dtype.type(self.l1) * xp.sign(w)
        if self.l2:
            grad = grad + w.dtype.type(2 * self.l2) * w
        return grad

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|w|)`` (default factor 0.01)."""

    def __init__(self, l1=0.01):
        super().__init__(l1=0.01 if l1 is None else l1, l2=0.0)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(w**2)`` (default factor 0.01)."""

    def __init__(self, l2=0.01):
        super().__init__(l1=0.0, l2=0.01 if l2 is None else l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


# Keras's lower-case aliases.
l1, l2, l1_l2 = L1, L2, L1L2

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_STRINGS = {"l1": lambda: L1(), "l2": lambda: L2(), "l1l2": lambda: L1L2(),
            "l1_l2": lambda: L1L2(l1=0.01, l2=0.01)}


def _namespace(w):
    """NumPy, or the array's own module (CuPy) for a device array."""
    if isinstance(w, np.ndarray):
        return np
    import importlib
    return importlib.import_module(type(w).__module__.split(".")[0])


def get(spec, argument: str = "regularizer"):
    """The :class:`Regularizer` ``spec`` names (see the module docstring), or None."""
    if spec is None or isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, str):
        if spec in _STRINGS:
            return _STRINGS[spec]()
        if spec in _CLASSES:
            return _CLASSES[spec]()
        raise ValueError(f"{argument} must be one of {sorted(_STRINGS)}, a "
                         f"numlstm.regularizers object (L1, L2, L1L2) or None; got {spec!r}")
    if isinstance(spec, dict):
        return from_keras_config(spec, _CLASSES, argument, allowed=("l1", "l2"))
    kind = type(spec).__name__
    if kind == "OrthogonalRegularizer":
        raise ValueError(f"{argument}: Keras's OrthogonalRegularizer is not supported by "
                         "numlstm; use L1, L2 or L1L2")
    raise ValueError(f"{argument} must be a regularizer name ('l1', 'l2', 'l1_l2'), a "
                     f"numlstm.regularizers object or None; got {kind} {spec!r} (Python "
                     "callables and Keras objects are not supported: their penalty's gradient "
                     "would be unknown)")


def serialize(regularizer) -> dict | None:
    """``{"class_name": ..., "config": {...}}`` (Keras's layout), or None."""
    if regularizer is None:
        return None
    return to_keras_config(regularizer)
