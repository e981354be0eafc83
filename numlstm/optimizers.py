"""Optimizers with Keras 3's update rules, updating host NumPy weights in place.

For every variable ``w`` with gradient ``g`` (after clipping), with ``lr`` the learning rate and
``t`` the 1-based step number:

SGD
    momentum = 0: ``w -= lr g``.  Otherwise ``v = momentum v - lr g`` and ``w += v``, or with
    ``nesterov=True`` ``w += momentum v - lr g``.
Adam (and AdamW, which is Adam with ``weight_decay=0.004`` by default)
    ``m += (1 - β1)(g - m)``, ``v += (1 - β2)(g² - v)``,
    ``w -= lr √(1 - β2^t) / (1 - β1^t) · m / (√v + ε)``.
RMSprop
    ``a = ρ a + (1 - ρ) g²``; ``step = lr g / √(a + ε)``; momentum = 0: ``w -= step``,
    otherwise ``m = momentum m + step`` and ``w -= m``.
Adagrad
    ``a += g²`` (``a`` starts at ``initial_accumulator_value``); ``w -= lr g / √(a + ε)``.
Adadelta
    ``a = ρ a + (1 - ρ) g²``; ``Δ = -√(d + ε) g / √(a + ε)``;
    ``d = ρ d + (1 - ρ) Δ²``; ``w += lr Δ``.
Adamax
    ``m += (1 - β1)(g - m)``, ``u = max(β2 u, |g|)``, ``w -= lr m / ((1 - β1^t)(u + ε))``.
Nadam
    ``μ_t = β1 (1 - ½ 0.96^t)``, ``Π_t = μ_1 ⋯ μ_t``; ``m``, ``v`` as Adam;
    ``m̂ = μ_{t+1} m / (1 - Π_t μ_{t+1}) + (1 - μ_t) g / (1 - Π_t)``,
    ``v̂ = v / (1 - β2^t)``, ``w -= lr m̂ / (√v̂ + ε)``. ``Π_t`` is kept as state (the
    running product, one multiplication per step, as Keras keeps ``_u_product``) and saved
    with the slots as the 0-d array ``u_product``.

Options every optimizer takes, applied in Keras's order:

1. Clipping -- at most one of (as Keras): ``clipnorm`` rescales each variable's gradient to an
   L2 norm of at most ``clipnorm``; ``global_clipnorm`` rescales all gradients together so
   that their joint L2 norm is at most ``global_clipnorm``; ``clipvalue`` clips each element to
   ``[-clipvalue, clipvalue]``.
2. ``weight_decay`` (decoupled, as Keras 3 does on every optimizer): ``w -= w · wd · lr``
   before the update, for every variable that has a gradient.
3. The update above.

``learning_rate`` is a number or a schedule from :mod:`numlstm.optimizers.schedules`
(evaluated at the number of updates already applied, as Keras does);
:attr:`Optimizer.current_learning_rate` is the rate of the next update.

The optimizer's state (step count and slot arrays) is part of a saved model, so training
resumes exactly where it stopped; a schedule is saved with its configuration.

Keras arguments numlstm does not implement (``amsgrad``, ``use_ema``, ``ema_momentum``,
``ema_overwrite_frequency``, ``loss_scale_factor``, ``gradient_accumulation_steps``, and the
Keras 2 ``decay``) are accepted at their Keras default values, where they change nothing
(``amsgrad=False``, ``use_ema=False``, ``ema_momentum=0.99``, the others None), so Keras
configurations load; any other value raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

import inspect

import numpy as np

from . import schedules
from . import validation as V


_check_float = V.check_real_in_range

#: Keras optimizer arguments numlstm does not implement, with the Keras default at which each
#: changes nothing (so a Keras configuration carrying them still loads), and why any other
#: value is refused.
_KERAS_ONLY = {
    "use_ema": (False, "exponential moving averages of the weights are not implemented"),
    "ema_momentum": (0.99, "exponential moving averages of the weights are not implemented"),
    "ema_overwrite_frequency": (None, "exponential moving averages of the weights are not "
                                      "implemented"),
    "loss_scale_factor": (None, "loss scaling is not implemented; numlstm trains in float32 "
                                "or float64, where it is not needed"),
    "gradient_accumulation_steps": (None, "gradient accumulation is not implemented; use a "
                                          "larger batch_size"),
    "decay": (None, "the Keras 2 argument is gone from Keras 3 too; give a schedule from "
                    "numlstm.optimizers.schedules as learning_rate instead"),
}


def _is_default(value, default) -> bool:
    if default is None:
        return value is None
    if isinstance(default, bool):
        return isinstance(value, (bool, np.bool_)) and bool(value) is default
    return (not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float))
            and float(value) == default)


def _check_keras_options(cls_name: str, options: dict) -> None:
    """Refuse what :data:`_KERAS_ONLY` lists at any value but its Keras default, and any other
    keyword as Python would (``TypeError``)."""
    for key, value in options.items():
        if key not in _KERAS_ONLY:
            raise TypeError(f"{cls_name}() got an unexpected keyword argument {key!r}")
        default, why = _KERAS_ONLY[key]
        if not _is_default(value, default):
            raise ValueError(f"{cls_name}: {key}={value!r} is not supported by numlstm: {why}; "
                             f"only the Keras default {key}={default!r} is accepted")


def _check_amsgrad(cls_name: str, amsgrad) -> None:
    if not _is_default(amsgrad, False):
        raise ValueError(f"{cls_name}: amsgrad={amsgrad!r} is not supported by numlstm (the "
                         "AMSGrad variant is not implemented); only amsgrad=False is accepted")


def _check_learning_rate(value):
    if isinstance(value, dict):
        value = schedules.deserialize(value)
    if isinstance(value, schedules.LearningRateSchedule):
        return value
    # 0 is allowed (Keras allows it): a run that measures without moving the weights
    return _check_float(value, "learning_rate", low_inclusive=True)


class Optimizer:
    """Base class: clipping, the step counter, slots and (de)serialisation."""

    name = "optimizer"
    _slot_names: tuple[str, ...] = ()
    #: Slots that hold running averages of squared gradients (never negative).
    _squared_slots: tuple[str, ...] = ()

    #: Names of the scalar state entries (:meth:`_scalar_state`).
    _scalar_names: tuple[str, ...] = ()

    #: Initial value of a slot other than 0 (Adagrad's accumulator).
    _slot_initial: dict[str, float] = {}

    def __init__(self, learning_rate, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 weight_decay=None, **keras_options):
        _check_keras_options(type(self).__name__, keras_options)
        self._learning_rate = _check_learning_rate(learning_rate)
        self.clipnorm = None if clipnorm is None else _check_float(clipnorm, "clipnorm")
        self.clipvalue = None if clipvalue is None else _check_float(clipvalue, "clipvalue")
        self.global_clipnorm = None if global_clipnorm is None else _check_float(
            global_clipnorm, "global_clipnorm")
        given = [n for n, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                ("global_clipnorm", global_clipnorm)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"only one of clipnorm, clipvalue and global_clipnorm can be set "
                             f"(as in Keras); got {given}")
        self.weight_decay = None if weight_decay is None else _check_float(
            weight_decay, "weight_decay", low_inclusive=True)
        self.iterations = 0
        self.slots: dict[str, list[np.ndarray]] | None = None
        self._lr = 0.0

    @property
    def learning_rate(self):
        """The learning rate given: a number or a schedule."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        # Callbacks such as ReduceLROnPlateau set a new number; a schedule cannot be
        # overwritten by one (Keras refuses this too).
        if isinstance(self._learning_rate, schedules.LearningRateSchedule) and not isinstance(
                value, (schedules.LearningRateSchedule, dict)):
            raise TypeError(f"this optimizer's learning_rate is a schedule "
                            f"({self._learning_rate!r}); it cannot be set to {value!r}")
        self._learning_rate = _check_learning_rate(value)

    @property
    def current_learning_rate(self) -> float:
        """The learning rate of the next update (a schedule at the current step)."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    def _clip(self, g):
        if self.clipnorm is not None:
            norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
            if norm > self.clipnorm:
                g = g * (self.clipnorm / norm)
        if self.clipvalue is not None:
            g = np.clip(g, -self.clipvalue, self.clipvalue)
        return g

    def _clip_global(self, grads):
        """Scale every gradient by ``global_clipnorm / max(norm, global_clipnorm)``, ``norm``
        the L2 norm of all of them together."""
        present = [g for g in grads if g is not None]
        norm = float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64)))
                                 for g in present)))
        if not np.isfinite(norm) or norm <= self.global_clipnorm:
            return grads
        scale = self.global_clipnorm / norm
        return [None if g is None else g * g.dtype.type(scale) for g in grads]

    def _ensure_slots(self, weights):
        if self.slots is None:
            self.slots = {name: [np.full_like(w, self._slot_initial.get(name, 0.0))
                                 for w in weights] for name in self._slot_names}

    def apply_gradients(self, grads, weights) -> None:
        """Update ``weights`` (a list of arrays) in place from ``grads`` (same shapes). A
        gradient of None leaves its weight and its slots untouched (a frozen layer's weight,
        or one no loss reaches), as Keras skips variables without gradients; slots exist for
        every weight, so freezing or unfreezing a layer keeps the others' state in place."""
        self._ensure_slots(weights)
        grads = [None if g is None else self._clip(np.asarray(g, w.dtype))
                 for g, w in zip(grads, weights)]
        if self.global_clipnorm is not None:
            grads = self._clip_global(grads)
        # the rate at the number of updates already applied, before counting this one
        self._lr = self.current_learning_rate
        self.iterations += 1
        self._begin_step()
        for index, (g, w) in enumerate(zip(grads, weights)):
            if g is None:
                continue
            if self.weight_decay:
                w -= (w * w.dtype.type(self.weight_decay)) * w.dtype.type(self._lr)
            self._update(index, g, w)

    def _begin_step(self) -> None:
        """Once per step, after ``iterations`` counts it and before the weights' updates:
        scalar state shared by all weights (Nadam's product of momentum factors)."""

    def _update(self, index, g, w) -> None:
        raise NotImplementedError

    def _scalar_state(self) -> dict:
        """Scalar state beyond ``iterations`` and the slots, by name (saved as 0-d arrays
        next to the slots)."""
        return {}

    def _set_scalar_state(self, iterations, values: dict) -> None:
        """Check and restore what :meth:`_scalar_state` returned (``values`` may lack
        entries: states saved before they existed)."""

    def get_config(self) -> dict:
        lr = self._learning_rate
        return {"name": self.name,
                "learning_rate": schedules.serialize(lr) if isinstance(
                    lr, schedules.LearningRateSchedule) else lr,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm, "weight_decay": self.weight_decay}

    def get_state(self):
        """``(iterations, {"slot/index": array, "scalar name": 0-d float64 array})``: the
        slots and any scalar state (Nadam's ``u_product``)."""
        arrays = {}
        for name, values in (self.slots or {}).items():
            for index, value in enumerate(values):
                arrays[f"{name}/{index}"] = value.copy()
        for name, value in self._scalar_state().items():
            arrays[name] = np.array(value, dtype=np.float64)
        return self.iterations, arrays

    def set_state(self, iterations, arrays, weights) -> None:
        """Restore what :meth:`get_state` returned, for a model whose weights are ``weights``.

        Everything is checked before anything changes: ``iterations`` an integer in
        ``[0, 2**62]``, one finite slot array per weight and slot name with the weight's
        shape, non-negative where the slot holds squares (Adam's ``v``, RMSprop's
        ``velocity``). Anything else (say, from a tampered file) raises ``ValueError`` or
        ``TypeError``: a bad state would turn the weights into NaN at the next step."""
        iterations = V.check_int_at_least(iterations, "optimizer iterations", 0, 1 << 62)
        scalars = {name: arrays[name] for name in self._scalar_names if name in (arrays or {})}
        arrays = {k: v for k, v in (arrays or {}).items() if k not in scalars}
        if not arrays:
            self._set_scalar_state(iterations, scalars)
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
        self._set_scalar_state(iterations, scalars)
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
                 clipvalue=None, global_clipnorm=None, weight_decay=None, **keras_options):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, weight_decay,
                         **keras_options)
        self.momentum = _check_float(momentum, "momentum", 0.0, True, 1.0)
        self.nesterov = V.check_bool(nesterov, "nesterov")
        self._slot_names = ("momentum",) if self.momentum > 0 else ()

    def _update(self, index, g, w):
        lr = w.dtype.type(self._lr)
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
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 weight_decay=None, **keras_options):
        _check_amsgrad(type(self).__name__, amsgrad)
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, weight_decay,
                         **keras_options)
        self.beta_1 = _check_float(beta_1, "beta_1", 0.0, True, 1.0)
        self.beta_2 = _check_float(beta_2, "beta_2", 0.0, True, 1.0)
        self.epsilon = _check_float(epsilon, "epsilon")

    def _update(self, index, g, w):
        t = self.iterations
        m, v = self.slots["m"][index], self.slots["v"][index]
        m += (1 - self.beta_1) * (g - m)
        v += (1 - self.beta_2) * (g * g - v)
        alpha = self._lr * np.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        w -= (w.dtype.type(alpha) * m / (np.sqrt(v) + w.dtype.type(self.epsilon))).astype(
            w.dtype, copy=False)

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class RMSprop(Optimizer):
    name = "rmsprop"
    _squared_slots = ("velocity",)

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, weight_decay=None,
                 **keras_options):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, weight_decay,
                         **keras_options)
        self.rho = _check_float(rho, "rho", 0.0, True, 1.0)
        self.momentum = _check_float(momentum, "momentum", 0.0, True, 1.0)
        self.epsilon = _check_float(epsilon, "epsilon")
        self._slot_names = ("velocity", "momentum") if self.momentum > 0 else ("velocity",)

    def _update(self, index, g, w):
        a = self.slots["velocity"][index]
        a *= self.rho
        a += (1 - self.rho) * g * g
        step = w.dtype.type(self._lr) * g / np.sqrt(a + w.dtype.type(self.epsilon))
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


class AdamW(Adam):
    """Adam with decoupled weight decay (``weight_decay`` defaults to 0.004, as in Keras)."""

    name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, **keras_options):
        if weight_decay is None:
            raise ValueError("AdamW needs a weight_decay (a number >= 0); got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, clipnorm, clipvalue,
                         global_clipnorm, weight_decay, **keras_options)


class Adagrad(Optimizer):
    name = "adagrad"
    _slot_names = ("accumulator",)
    _squared_slots = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, weight_decay=None,
                 **keras_options):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, weight_decay,
                         **keras_options)
        self.initial_accumulator_value = _check_float(
            initial_accumulator_value, "initial_accumulator_value", low_inclusive=True)
        self.epsilon = _check_float(epsilon, "epsilon")
        self._slot_initial = {"accumulator": self.initial_accumulator_value}

    def _update(self, index, g, w):
        a = self.slots["accumulator"][index]
        a += g * g
        w -= w.dtype.type(self._lr) * g / np.sqrt(a + w.dtype.type(self.epsilon))

    def get_config(self) -> dict:
        return {**super().get_config(), "epsilon": self.epsilon,
                "initial_accumulator_value": self.initial_accumulator_value}


class Adadelta(Optimizer):
    name = "adadelta"
    _slot_names = ("accumulated_grad", "accumulated_delta_var")
    _squared_slots = _slot_names

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, weight_decay=None, **keras_options):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, weight_decay,
                         **keras_options)
        self.rho = _check_float(rho, "rho", 0.0, True, 1.0)
        self.epsilon = _check_float(epsilon, "epsilon")

    def _update(self, index, g, w):
        dt = w.dtype.type
        rho, eps = dt(self.rho), dt(self.epsilon)
        a = self.slots["accumulated_grad"][index]
        d = self.slots["accumulated_delta_var"][index]
        a[...] = rho * a + (1 - rho) * (g * g)
        delta = -(np.sqrt(d + eps) * g / np.sqrt(a + eps))
        d[...] = rho * d + (1 - rho) * (delta * delta)
        w += dt(self._lr) * delta

    def get_config(self) -> dict:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adamax(Optimizer):
    name = "adamax"
    _slot_names = ("m", "u")
    _squared_slots = ("u",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, weight_decay=None,
                 **keras_options):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, weight_decay,
                         **keras_options)
        self.beta_1 = _check_float(beta_1, "beta_1", 0.0, True, 1.0)
        self.beta_2 = _check_float(beta_2, "beta_2", 0.0, True, 1.0)
        self.epsilon = _check_float(epsilon, "epsilon")

    def _update(self, index, g, w):
        dt = w.dtype.type
        m, u = self.slots["m"][index], self.slots["u"][index]
        m += (g - m) * dt(1 - self.beta_1)
        np.maximum(dt(self.beta_2) * u, np.abs(g), out=u)
        w -= dt(self._lr) * m / (dt(1 - self.beta_1 ** self.iterations) * (u + dt(self.epsilon)))

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


def _nadam_product(optimizer, t: int) -> float:
    """Π_t = μ_1 ⋯ μ_t of ``optimizer`` (a :class:`Nadam`), multiplied in order from 1.0 as
    the running product is, so the result is bit-identical to it. Only for a state that does
    not carry the product (a file saved before it was kept): it stops once the product is 0
    (with β1 = 0.9, after about 7000 factors) or stops changing, and from the step at which
    ``0.5 · 0.96^s`` no longer changes ``1 - 0.5 · 0.96^s`` every factor is exactly β1, so
    those are multiplied in NumPy (``multiply.accumulate`` multiplies in sequence)."""
    product, s = 1.0, 1
    while s <= t:
        mu = optimizer._mu(s)
        if mu == optimizer.beta_1:
            break
        product *= mu
        s += 1
    remaining = t - s + 1
    while remaining > 0 and product != 0.0:
        n = min(remaining, 1 << 20)
        factors = np.full(n + 1, optimizer.beta_1)
        factors[0] = product
        last = float(np.multiply.accumulate(factors)[-1])
        if last == product:        # a fixed point of x -> x * β1: the product stays there
            break
        product, remaining = last, remaining - n
    return product


class Nadam(Optimizer):
    name = "nadam"
    _slot_names = ("m", "v")
    _squared_slots = ("v",)
    _scalar_names = ("u_product",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, weight_decay=None,
                 **keras_options):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, weight_decay,
                         **keras_options)
        self.beta_1 = _check_float(beta_1, "beta_1", 0.0, True, 1.0)
        self.beta_2 = _check_float(beta_2, "beta_2", 0.0, True, 1.0)
        self.epsilon = _check_float(epsilon, "epsilon")
        #: Π_t at t = ``iterations`` (1.0 before the first step); None: recompute it.
        self._u_product: float | None = 1.0

    def _mu(self, t) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** t)

    def _begin_step(self) -> None:
        # Π_t = Π_{t-1} μ_t, once per step for all weights: O(1) in t. The running product
        # takes exactly the multiplications, in the same order, of the product over
        # s = 1..t, so it is bit-identical to recomputing it.
        if self._u_product is None:
            self._u_product = _nadam_product(self, self.iterations - 1)
        self._u_product *= self._mu(self.iterations)

    def _update(self, index, g, w):
        dt = w.dtype.type
        t = self.iterations
        product = self._u_product
        mu_t, mu_next = self._mu(t), self._mu(t + 1)
        m, v = self.slots["m"][index], self.slots["v"][index]
        m += (g - m) * dt(1 - self.beta_1)
        v += (g * g - v) * dt(1 - self.beta_2)
        m_hat = dt(mu_next / (1 - product * mu_next)) * m + dt((1 - mu_t) / (1 - product)) * g
        v_hat = v / dt(1 - self.beta_2 ** t)
        w -= m_hat * dt(self._lr) / (np.sqrt(v_hat) + dt(self.epsilon))

    def _scalar_state(self) -> dict:
        return {} if self._u_product is None else {"u_product": self._u_product}

    def _set_scalar_state(self, iterations, values) -> None:
        """``u_product`` must be Π at ``iterations`` (a number in [0, 1]); a state without it
        (a file from before it was saved) has it recomputed from ``iterations`` at the next
        step."""
        if "u_product" not in values:
            self._u_product = None
            return
        value = values["u_product"]
        if np.shape(value) != () or not np.isfinite(value) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"optimizer state 'u_product' must be a number in [0, 1] (the "
                             f"product of Nadam's momentum factors); got {value!r}")
        self._u_product = float(value)

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adamw": AdamW,
              "adagrad": Adagrad, "adadelta": Adadelta, "adamax": Adamax, "nadam": Nadam}


#: Keras's class names for the optimizers (``{"class_name": ..., "config": ...}`` dicts).
KERAS_CLASS_NAMES = {cls.__name__: name for name, cls in OPTIMIZERS.items()}


def _accepted_keys(cls) -> set:
    parameters = inspect.signature(cls.__init__).parameters
    return ({k for k, p in parameters.items() if k != "self" and p.kind is not p.VAR_KEYWORD}
            | set(_KERAS_ONLY))


def _from_config(cls, config: dict, where: str) -> Optimizer:
    unknown = sorted(set(config) - _accepted_keys(cls))
    if unknown:
        raise ValueError(f"{where}: {cls.__name__} does not take {unknown} (numlstm does not "
                         f"support {'these arguments' if len(unknown) > 1 else 'this argument'}"
                         f"); it takes {sorted(_accepted_keys(cls))}")
    return cls(**config)


def get(identifier) -> Optimizer:
    """An optimizer from a name (see :data:`OPTIMIZERS`), an instance, or a config dict:
    numlstm's own (:meth:`Optimizer.get_config`: ``{"name": "adam", ...}``) or Keras's
    serialised form ``{"class_name": "Adam", "config": {...}}`` (``module`` and
    ``registered_name`` may accompany it; the config's ``name`` is Keras's label for the
    instance and is dropped). A config key that the optimizer does not take raises
    ``ValueError`` naming it, as does a Keras-only argument at a value other than its Keras
    default (see the module's notes)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict) and "class_name" in identifier:
        extra = sorted(set(identifier) - {"class_name", "config", "module", "registered_name"})
        class_name = identifier["class_name"]
        if extra:
            raise ValueError(f"optimizer config: unknown keys {extra} next to 'class_name' "
                             "(expected 'class_name' and 'config', optionally 'module' and "
                             "'registered_name')")
        if class_name not in KERAS_CLASS_NAMES:
            raise ValueError(f"optimizer config names an unknown optimizer class "
                             f"{class_name!r}; known: {sorted(KERAS_CLASS_NAMES)}")
        config = identifier.get("config", {})
        if not isinstance(config, dict):
            raise TypeError(f"optimizer config: 'config' must be a dict of {class_name}'s "
                            f"arguments; got {V.kind_of(config)}")
        config = dict(config)
        config.pop("name", None)
        return _from_config(OPTIMIZERS[KERAS_CLASS_NAMES[class_name]], config,
                            f"optimizer config for {class_name!r}")
    if isinstance(identifier, str):
        identifier = identifier.lower()
    name = V.check_registered(identifier, "optimizer", OPTIMIZERS, "adam", "an Optimizer")
    if isinstance(identifier, dict):
        config = dict(identifier)
        config.pop("name")
        return _from_config(OPTIMIZERS[name], config, f"optimizer config {name!r}")
    return OPTIMIZERS[name]()
