"""Learning-rate schedules with Keras 3's formulas, reachable as
``numlstm.optimizers.schedules``; give one as an optimizer's ``learning_rate``.

A schedule is called with the optimizer's step count ``step`` (the number of updates already
applied: 0 for the first update) and returns the learning rate of that update:

ExponentialDecay(initial_learning_rate, decay_steps, decay_rate, staircase=False)
    ``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase`` the
    exponent is ``floor(step / decay_steps)``.
CosineDecay(initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0)
    Without warm-up: ``s = min(step, decay_steps)``,
    ``lr = initial * ((1 - alpha) * 0.5 * (1 + cos(pi s / decay_steps)) + alpha)``.
    With ``warmup_target``: ``s = min(step, warmup_steps + decay_steps)``; for
    ``s < warmup_steps`` a linear ramp ``initial + (warmup_target - initial) s / warmup_steps``,
    then the cosine decay from ``warmup_target`` over ``s - warmup_steps``.
PiecewiseConstantDecay(boundaries, values)
    ``values[0]`` for ``step <= boundaries[0]``, ``values[i]`` for
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.

Schedules are plain data (:meth:`LearningRateSchedule.get_config`), so a model compiled with
one saves and loads with it.
"""

from __future__ import annotations

import inspect
import math
import numbers

from . import validation as V
from .configurable import to_keras_config


class LearningRateSchedule:
    """Base class: ``schedule(step) -> float``; subclasses define ``__call__`` and
    ``get_config`` (their constructor's arguments)."""

    def __call__(self, step) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _check_step(step) -> float:
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or step < 0:
        raise ValueError(f"a learning-rate schedule's step must be a number >= 0; got {step!r}")
    return float(step)


class ExponentialDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = V.check_real_in_range(
            initial_learning_rate, "initial_learning_rate", low_inclusive=True)
        self.decay_steps = V.check_real_in_range(decay_steps, "decay_steps")
        self.decay_rate = V.check_real_in_range(decay_rate, "decay_rate", low_inclusive=True)
        self.staircase = V.check_bool(staircase, "staircase")
        self.name = name

    def __call__(self, step) -> float:
        p = _check_step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = V.check_real_in_range(
            initial_learning_rate, "initial_learning_rate", low_inclusive=True)
        self.decay_steps = V.check_real_in_range(decay_steps, "decay_steps")
        self.alpha = V.check_real_in_range(alpha, "alpha", low_inclusive=True)
        self.warmup_target = None if warmup_target is None else V.check_real_in_range(
            warmup_target, "warmup_target", low_inclusive=True)
        self.warmup_steps = V.check_real_in_range(warmup_steps, "warmup_steps",
                                                  low_inclusive=True)
        if self.warmup_target is not None and self.warmup_steps == 0:
            raise ValueError("CosineDecay: warmup_target needs warmup_steps > 0; got "
                             "warmup_steps=0")
        self.name = name

    def _decay(self, s, start) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * s / self.decay_steps))
        return start * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step) -> float:
        s = _check_step(step)
        if self.warmup_target is None:
            return self._decay(min(s, self.decay_steps), self.initial_learning_rate)
        s = min(s, self.decay_steps + self.warmup_steps)
        if s < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (s / self.warmup_steps) + self.initial_learning_rate
        return self._decay(s - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class PiecewiseConstantDecay(LearningRateSchedule):
    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if not isinstance(boundaries, (list, tuple)) or not boundaries:
            raise TypeError(f"boundaries must be a non-empty list of steps; got "
                            f"{V.kind_of(boundaries)}")
        if not isinstance(values, (list, tuple)) or len(values) != len(boundaries) + 1:
            raise ValueError(f"values must be a list of len(boundaries) + 1 = "
                             f"{len(boundaries) + 1} learning rates; got {values!r}")
        self.boundaries = [V.check_real_in_range(b, "boundaries", low_inclusive=True)
                           for b in boundaries]
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must increase strictly; got {list(boundaries)}")
        self.values = [V.check_real_in_range(v, "values", low_inclusive=True) for v in values]
        self.name = name

    def __call__(self, step) -> float:
        s = _check_step(step)
        for boundary, value in zip(self.boundaries, self.values):
            if s <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> dict:
        return {"boundaries": list(self.boundaries), "values": list(self.values),
                "name": self.name}


SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, CosineDecay,
                                           PiecewiseConstantDecay)}


def serialize(schedule: LearningRateSchedule) -> dict:
    return to_keras_config(schedule)


def deserialize(config) -> LearningRateSchedule:
    """A schedule from :func:`serialize`'s dict, or Keras's serialised form of one (the same
    ``class_name`` and ``config``, plus ``module`` and ``registered_name``, which are
    ignored). A config key the schedule does not take raises ``ValueError`` naming it."""
    if not isinstance(config, dict) or config.get("class_name") not in SCHEDULES \
            or not isinstance(config.get("config"), dict):
        raise ValueError(f"learning_rate config must name a schedule from {sorted(SCHEDULES)} "
                         f"with its config; got {config!r}")
    cls = SCHEDULES[config["class_name"]]
    takes = {k for k in inspect.signature(cls.__init__).parameters if k != "self"}
    unknown = sorted(set(config["config"]) - takes)
    if unknown:
        raise ValueError(f"learning_rate config: {cls.__name__} does not take {unknown} "
                         f"(not supported by numlstm); it takes {sorted(takes)}")
    return cls(**config["config"])
