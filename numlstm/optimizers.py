"""Optimizers with Keras 3's update rules, updating host NumPy weights in place.

For every variable ``w`` with gradient ``g`` (after clipping), with ``lr`` the learning rate and
``t`` the 1-based step number:

SGD
    momentum = 0: ``w -= lr g``.  Otherwise ``v = momentum v - lr g`` and ``w += v``, or with
    ``nesterov=True`` ``w += momentum v - lr g``.
Adam
    ``m += (1 - β1)(g - m)``, ``v += (1 - β2)(g² - v)``,
    ``w -= lr √(1 - β2^t) / (1 - β1^t) · m / (√v + ε)``.
RMSprop
    ``a = ρ a + (1 - ρ) g²``; ``step = lr g / √(a + ε)``; momentum = 0: ``w -= step``,
    otherwise ``m = momentum m + step`` and ``w -= m``.

Clipping (before the update): ``clipnorm`` rescales each variable's gradient to an L2 norm of
at most ``clipnorm`` (per variable, as Keras does); ``clipvalue`` clips each element to
``[-clipvalue, clipvalue]``.

The optimizer's state (step count and slot arrays) is part of a saved model, so training
resumes exactly where it stopped.
"""

from __future__ import annotations

import numpy as np

from . import validation as V


_check_float = V.check_real_in_range


class Optimizer:
    """Base class: clipping, the step counter, slots and (de)serialisation."""

    name = "optimizer"
    _slot_names: tuple[str, ...] = ()
    #: Slots that hold running averages of squared gradients (never negative).
    _squared_slots: tuple[str, ...] = ()

    def __init__(self, learning_rate, clipnorm=None, clipvalue=None):
        # 0 is allowed (Keras allows it): a run that measures without moving the weights
        self.learning_rate = _check_float(learning_rate, "learning_rate", low_inclusive=True)
        self.clipnorm = None if clipnorm is None else _check_float(clipnorm, "clipnorm")
        self.clipvalue = None if clipvalue is None else _check_float(clipvalue, "clipvalue")
        self.iterations = 0
        self.slots: dict[str, list[np.ndarray]] | None = None

    def _clip(self, g):
        if self.clipnorm is not None:
            norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
            if norm > self.clipnorm:
                g = g * (self.clipnorm / norm)
        if self.clipvalue is not None:
            g = np.clip(g, -self.clipvalue, self.clipvalue)
        return g

    def _ensure_slots(self, weights):
        if self.slots is None:
            self.slots = {name: [np.zeros_like(w) for w in weights] for name in self._slot_names}

    def apply_gradients(self, grads, weights) -> None:
        """Update ``weights`` (a list of arrays) in place from ``grads`` (same shapes). A
        gradient of None leaves its weight and its slots untouched (a frozen layer's weight,
        or one no loss reaches), as Keras skips variables without gradients; slots exist for
        every weight, so freezing or unfreezing a layer keeps the others' state in place."""
        self._ensure_slots(weights)
        self.iterations += 1
        for index, (g, w) in enumerate(zip(grads, weights)):
            if g is not None:
                self._update(index, self._clip(np.asarray(g, w.dtype)), w)

    def _update(self, index, g, w) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": self.learning_rate,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue}

    def get_state(self):
        """``(iterations, {"slot/index": array})``."""
        arrays = {}
        for name, values in (self.slots or {}).items():
            for index, value in enumerate(values):
                arrays[f"{name}/{index}"] = value.copy()
        return self.iterations, arrays

    def set_state(self, iterations, arrays, weights) -> None:
        """Restore what :meth:`get_state` returned, for a model whose weights are ``weights``.

        Everything is checked before anything changes: ``iterations`` an integer in
        ``[0, 2**62]``, one finite slot array per weight and slot name with the weight's
        shape, non-negative where the slot holds squares (Adam's ``v``, RMSprop's
        ``velocity``). Anything else (say, from a tampered file) raises ``ValueError`` or
        ``TypeError``: a bad state would turn the weights into NaN at the next step."""
        iterations = V.check_int_at_least(iterations, "optimizer iterations", 0, 1 << 62)
        if not arrays:
            self.iterations, self.slots = iterations, None
            return
        slots = {}
        for name in self._slot_names:
            values = []
            for index, w in enumerate(weights):
                key = f"{name}/{index}"
                if key not in arrays or np.shape(arrays[key]) != w.shape:
                    raise ValueError(f"optimizer state {key!r} is missing or does not match "
                                     f"the weight of shape {w.shape}")
                value = V.as_float_array(arrays[key], f"optimizer state {key!r}", w.dtype)
                if name in self._squared_slots and value.size and value.min() < 0:
                    raise ValueError(f"optimizer state {key!r} holds running averages of "
                                     f"squares, which cannot be negative; got {value.min()}")
                values.append(np.array(value, dtype=w.dtype))
            slots[name] = values
        unknown = sorted(set(arrays) - {f"{name}/{i}" for name in self._slot_names
                                        for i in range(len(weights))})
        if unknown:
            raise ValueError(f"optimizer state {unknown[0]!r} does not belong to "
                             f"{type(self).__name__} with {len(weights)} weights")
        self.iterations, self.slots = iterations, slots

    def check_state_matches(self, weights) -> None:
        """Before training: the slots (if any yet) were made for exactly these weights; a
        layer added after training leaves them behind, and the update would fail midway."""
        if self.slots is None:
            return
        for name, values in self.slots.items():
            if [v.shape for v in values] != [w.shape for w in weights]:
                raise ValueError(f"the optimizer's state was built for {len(values)} weight "
                                 f"arrays of shapes {[v.shape for v in values]}, but the model "
                                 f"now has {len(weights)} of shapes "
                                 f"{[w.shape for w in weights]} (a layer was added or rebuilt "
                                 "after training); call model.compile(...) again to start "
                                 "with a fresh optimizer")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, clipnorm=None,
                 clipvalue=None):
        super().__init__(learning_rate, clipnorm, clipvalue)
        self.momentum = _check_float(momentum, "momentum", 0.0, True, 1.0)
        self.nesterov = V.check_bool(nesterov, "nesterov")
        self._slot_names = ("momentum",) if self.momentum > 0 else ()

    def _update(self, index, g, w):
        lr = w.dtype.type(self.learning_rate)
        if self.momentum == 0:
            w -= lr * g
            return
        m = w.dtype.type(self.momentum)
        v = self.slots["momentum"][index]
        v *= m
        v -= lr * g
        if self.nesterov:
            w += m * v - lr * g
        else:
            w += v

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    name = "adam"
    _slot_names = ("m", "v")
    _squared_slots = ("v",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 clipnorm=None, clipvalue=None):
        super().__init__(learning_rate, clipnorm, clipvalue)
        self.beta_1 = _check_float(beta_1, "beta_1", 0.0, True, 1.0)
        self.beta_2 = _check_float(beta_2, "beta_2", 0.0, True, 1.0)
        self.epsilon = _check_float(epsilon, "epsilon")

    def _update(self, index, g, w):
        t = self.iterations
        m, v = self.slots["m"][index], self.slots["v"][index]
        m += (1 - self.beta_1) * (g - m)
        v += (1 - self.beta_2) * (g * g - v)
        alpha = self.learning_rate * np.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        w -= (w.dtype.type(alpha) * m / (np.sqrt(v) + w.dtype.type(self.epsilon))).astype(
            w.dtype, copy=False)

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class RMSprop(Optimizer):
    name = "rmsprop"
    _squared_slots = ("velocity",)

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 clipnorm=None, clipvalue=None):
        super().__init__(learning_rate, clipnorm, clipvalue)
        self.rho = _check_float(rho, "rho", 0.0, True, 1.0)
        self.momentum = _check_float(momentum, "momentum", 0.0, True, 1.0)
        self.epsilon = _check_float(epsilon, "epsilon")
        self._slot_names = ("velocity", "momentum") if self.momentum > 0 else ("velocity",)

    def _update(self, index, g, w):
        a = self.slots["velocity"][index]
        a *= self.rho
        a += (1 - self.rho) * g * g
        step = w.dtype.type(self.learning_rate) * g / np.sqrt(a + w.dtype.type(self.epsilon))
        if self.momentum > 0:
            m = self.slots["momentum"][index]
            m *= self.momentum
            m += step
            w -= m
        else:
            w -= step

    def get_config(self) -> dict:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon}


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def get(identifier) -> Optimizer:
    """An optimizer from a name ("sgd", "adam", "rmsprop"), a config dict, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        identifier = identifier.lower()
    name = V.check_registered(identifier, "optimizer", OPTIMIZERS, "adam", "an Optimizer")
    if isinstance(identifier, dict):
        config = dict(identifier)
        config.pop("name")
        return OPTIMIZERS[name](**config)
    return OPTIMIZERS[name]()
