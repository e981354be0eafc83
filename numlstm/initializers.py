"""Weight initializers with Keras's names and definitions.

Each initializer is called as ``init(shape, dtype, rng)`` with a ``numpy.random.Generator``;
a layer draws all its weights from one generator seeded by its ``seed``, so the same seed gives
the same weights. Users may also pass their own callable ``f(shape, dtype) -> array``.

Wherever Keras takes an initializer (``kernel_initializer``, ``recurrent_initializer``,
``bias_initializer``, ``embeddings_initializer``) numlstm takes a name of :data:`INITIALIZERS`
(the defaults of each) or an object of one of the classes below, with Keras's arguments::

    Zeros()  Ones()  Constant(value=0.0)  Identity(gain=1.0)  Orthogonal(gain=1.0, seed=None)
    RandomNormal(mean=0.0, stddev=0.05, seed=None)
    RandomUniform(minval=-0.05, maxval=0.05, seed=None)
    TruncatedNormal(mean=0.0, stddev=0.05, seed=None)       redrawn beyond 2 stddev
    VarianceScaling(scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None)
    GlorotNormal/GlorotUniform/HeNormal/HeUniform/LecunNormal/LecunUniform(seed=None)

VarianceScaling with ``n`` = fan_in, fan_out or their mean (``mode``) draws from a normal
truncated at 2 stddev with stddev ``sqrt(scale/n)/0.8796`` (the truncation's correction, as
Keras), an untruncated normal with stddev ``sqrt(scale/n)``, or a uniform in ``±sqrt(3
scale/n)``; Glorot is scale 1 / fan_avg, He scale 2 / fan_in, LeCun scale 1 / fan_in.

An object with ``seed=None`` draws from the layer's generator (seeded by the layer's
``seed``); with an integer ``seed`` it draws from its own generator seeded by it, so every
call gives the same values. Seeds give reproducible weights within numlstm, but not Keras's
numbers: the random generators differ (to start from a Keras model's weights, import them).
Objects save with a model as ``{"class_name": ..., "config": {...}}``.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import numpy as np

from .configurable import Configurable, from_keras_config, to_keras_config


def _fans(shape) -> tuple[int, int]:
    """Keras's fan-in and fan-out: for a (rows, cols) matrix, rows and cols."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(shape, dtype, rng):
    return np.zeros(shape, dtype)


def ones(shape, dtype, rng):
    return np.ones(shape, dtype)


def random_uniform(shape, dtype, rng, minval=-0.05, maxval=0.05):
    return rng.uniform(minval, maxval, size=shape).astype(dtype)


def random_normal(shape, dtype, rng, stddev=0.05, mean=0.0):
    return rng.normal(mean, stddev, size=shape).astype(dtype)


def _truncated_normal(shape, stddev, rng, mean=0.0):
    """Normal samples, redrawn where they fall beyond two standard deviations of ``mean``."""
    values = rng.normal(0.0, stddev, size=shape)
    outside = np.abs(values) > 2 * stddev
    while outside.any():
        values[outside] = rng.normal(0.0, stddev, size=int(outside.sum()))
        outside = np.abs(values) > 2 * stddev
    return values + mean


def truncated_normal(shape, dtype, rng, stddev=0.05, mean=0.0):
    """Normal(mean, stddev) redrawn beyond 2 stddev (Keras's TruncatedNormal)."""
    return _truncated_normal(shape, stddev, rng, mean).astype(dtype)


def variance_scaling(shape, dtype, rng, scale=1.0, mode="fan_in",
                     distribution="truncated_normal"):
    """Keras's VarianceScaling (see the module docstring)."""
    fan_in, fan_out = _fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / max(1.0, n)
    if distribution == "truncated_normal":
        stddev = math.sqrt(variance) / 0.87962566103423978
        return _truncated_normal(shape, stddev, rng).astype(dtype)
    if distribution == "untruncated_normal":
        return rng.normal(0.0, math.sqrt(variance), size=shape).astype(dtype)
    limit = math.sqrt(3.0 * variance)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape, dtype, rng):
    """Truncated normal with stddev sqrt(2 / fan_in) (Keras's scaling)."""
    return variance_scaling(shape, dtype, rng, 2.0, "fan_in", "truncated_normal")


def lecun_normal(shape, dtype, rng):
    """Truncated normal with stddev sqrt(1 / fan_in) (Keras's scaling)."""
    return variance_scaling(shape, dtype, rng, 1.0, "fan_in", "truncated_normal")


def lecun_uniform(shape, dtype, rng):
    """Uniform in ±sqrt(3 / fan_in)."""
    return variance_scaling(shape, dtype, rng, 1.0, "fan_in", "uniform")


def identity(shape, dtype, rng, gain=1.0):
    """``gain`` times the identity matrix (ones on the main diagonal of a 2-D shape)."""
    if len(shape) != 2:
        raise ValueError(f"the identity initializer needs a 2-D shape; got {tuple(shape)}")
    return (gain * np.eye(*shape)).astype(dtype)


def glorot_uniform(shape, dtype, rng):
    """Uniform in ±sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_normal(shape, dtype, rng):
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out)) (Keras's scaling)."""
    fan_in, fan_out = _fans(shape)
    stddev = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
    return _truncated_normal(shape, stddev, rng).astype(dtype)


def he_uniform(shape, dtype, rng):
    """Uniform in ±sqrt(6 / fan_in)."""
    fan_in, _ = _fans(shape)
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def orthogonal(shape, dtype, rng, gain=1.0):
    """A matrix with orthonormal rows or columns (whichever are fewer), as Keras draws it:
    the Q of a QR decomposition of a Gaussian matrix, with signs fixed by R's diagonal.
    For a recurrent kernel (units, 4*units) the rows are orthonormal."""
    rows = math.prod(shape[:-1])
    cols = shape[-1]
    flat = rng.normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)


#: Every initializer name and its function (with Keras's default arguments). ``"uniform"``
#: and ``"normal"`` are Keras's short names (``Embedding``'s default is ``"uniform"``).
INITIALIZERS: dict[str, Callable] = {
    "zeros": zeros, "ones": ones, "random_uniform": random_uniform,
    "random_normal": random_normal, "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal, "he_uniform": he_uniform, "orthogonal": orthogonal,
    "he_normal": he_normal, "lecun_normal": lecun_normal, "lecun_uniform": lecun_uniform,
    "truncated_normal": truncated_normal, "identity": identity,
    "variance_scaling": variance_scaling,
    "constant": zeros,            # Constant() is Constant(value=0.0)
    "uniform": random_uniform, "normal": random_normal,
}


def _float(value, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(float(value)):
        raise ValueError(f"{argument} must be a finite number; got {value!r}")
    return float(value)


class Initializer(Configurable):
    """Base class of the initializer objects: ``init(shape, dtype="float32", rng=None)``
    returns a NumPy array (see the module docstring for ``seed``)."""

    seed = None

    def __call__(self, shape, dtype="float32", rng=None):
        if self.seed is not None or rng is None:
            rng = np.random.default_rng(self.seed)
        return np.asarray(self._draw(tuple(shape), np.dtype(dtype), rng), dtype)

    def _draw(self, shape, dtype, rng):
        raise NotImplementedError


def _seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be None or an integer >= 0; got {seed!r}")
    return int(seed)


class Zeros(Initializer):
    def _draw(self, shape, dtype, rng):
        return zeros(shape, dtype, rng)


class Ones(Initializer):
    def _draw(self, shape, dtype, rng):
        return ones(shape, dtype, rng)


class Constant(Initializer):
    """Every entry ``value``."""

    def __init__(self, value=0.0):
        self.value = _float(value, "value")

    def _draw(self, shape, dtype, rng):
        return np.full(shape, self.value, dtype)

    def get_config(self) -> dict:
        return {"value": self.value}


class Identity(Initializer):
    """``gain`` times the identity (2-D shapes only)."""

    def __init__(self, gain=1.0):
        self.gain = _float(gain, "gain")

    def _draw(self, shape, dtype, rng):
        return identity(shape, dtype, rng, self.gain)

    def get_config(self) -> dict:
        return {"gain": self.gain}


class _Seeded(Initializer):
    def get_config(self) -> dict:
        return {**self._arguments(), "seed": self.seed}

    def _arguments(self) -> dict:
        return {}


class Orthogonal(_Seeded):
    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = _float(gain, "gain"), _seed(seed)

    def _draw(self, shape, dtype, rng):
        return orthogonal(shape, dtype, rng, self.gain)

    def _arguments(self):
        return {"gain": self.gain}


def _stddev(value) -> float:
    """A standard deviation: finite and >= 0 (0 gives ``mean`` everywhere); checked here
    because NumPy would refuse a negative one only when the layer is built."""
    value = _float(value, "stddev")
    if value < 0:
        raise ValueError(f"stddev must be a finite number >= 0; got stddev={value}")
    return value


class RandomNormal(_Seeded):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev = _float(mean, "mean"), _stddev(stddev)
        self.seed = _seed(seed)

    def _draw(self, shape, dtype, rng):
        return random_normal(shape, dtype, rng, self.stddev, self.mean)

    def _arguments(self):
        return {"mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    def _draw(self, shape, dtype, rng):
        return truncated_normal(shape, dtype, rng, self.stddev, self.mean)


class RandomUniform(_Seeded):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval = _float(minval, "minval"), _float(maxval, "maxval")
        if self.maxval < self.minval:
            raise ValueError(f"maxval must be >= minval; got minval={minval}, maxval={maxval}")
        self.seed = _seed(seed)

    def _draw(self, shape, dtype, rng):
        return random_uniform(shape, dtype, rng, self.minval, self.maxval)

    def _arguments(self):
        return {"minval": self.minval, "maxval": self.maxval}


class VarianceScaling(_Seeded):
    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        self.scale = _float(scale, "scale")
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0; got scale={scale}")
        if not isinstance(mode, str) or mode not in self._MODES:
            raise ValueError(f"mode must be one of {list(self._MODES)}; got {mode!r}")
        if not isinstance(distribution, str):
            raise ValueError(f"distribution must be one of {list(self._DISTRIBUTIONS)}; got "
                             f"{distribution!r}")
        distribution = distribution.lower()   # as Keras, which lower-cases it
        if distribution == "normal":          # Keras's older spelling
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {list(self._DISTRIBUTIONS)}; got "
                             f"{distribution!r}")
        self.mode, self.distribution, self.seed = mode, distribution, _seed(seed)

    def _draw(self, shape, dtype, rng):
        return variance_scaling(shape, dtype, rng, self.scale, self.mode, self.distribution)

    def _arguments(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


def _variance_scaling_class(name, scale, mode, distribution, doc):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": doc})


GlorotNormal = _variance_scaling_class("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                                       "Truncated normal, stddev sqrt(2/(fan_in+fan_out)).")
GlorotUniform = _variance_scaling_class("GlorotUniform", 1.0, "fan_avg", "uniform",
                                        "Uniform in ±sqrt(6/(fan_in+fan_out)).")
HeNormal = _variance_scaling_class("HeNormal", 2.0, "fan_in", "truncated_normal",
                                   "Truncated normal, stddev sqrt(2/fan_in).")
HeUniform = _variance_scaling_class("HeUniform", 2.0, "fan_in", "uniform",
                                    "Uniform in ±sqrt(6/fan_in).")
LecunNormal = _variance_scaling_class("LecunNormal", 1.0, "fan_in", "truncated_normal",
                                      "Truncated normal, stddev sqrt(1/fan_in).")
LecunUniform = _variance_scaling_class("LecunUniform", 1.0, "fan_in", "uniform",
                                       "Uniform in ±sqrt(3/fan_in).")

#: Every initializer class by name (the ``class_name`` of a saved configuration).
CLASSES: dict[str, type] = {cls.__name__: cls for cls in (
    Zeros, Ones, Constant, Identity, Orthogonal, RandomNormal, TruncatedNormal, RandomUniform,
    VarianceScaling, GlorotNormal, GlorotUniform, HeNormal, HeUniform, LecunNormal,
    LecunUniform)}


def serialize(spec):
    """What a layer's configuration records for an initializer: a name as is, an object as
    ``{"class_name": ..., "config": {...}}``, a Python callable as ``{"callable": its
    name}`` (a saved model cannot hold it; see :func:`resolve`)."""
    if isinstance(spec, (str, dict)):
        return spec
    if isinstance(spec, Initializer):
        return to_keras_config(spec)
    return {"callable": getattr(spec, "__qualname__", None) or repr(spec)}


def resolve(spec, argument: str) -> Callable:
    """Turn an initializer name or a user callable ``f(shape, dtype)`` into ``f(shape, dtype,
    rng)``."""
    if isinstance(spec, str):
        if spec not in INITIALIZERS:
            raise ValueError(f"{argument} must be one of {sorted(INITIALIZERS)}, a "
                             f"numlstm.initializers object or a callable f(shape, dtype); got "
                             f"{spec!r}")
        return INITIALIZERS[spec]
    if isinstance(spec, Initializer):
        return spec
    if isinstance(spec, dict) and "class_name" in spec:
        return from_keras_config(spec, CLASSES, argument)
    if callable(spec):
        return lambda shape, dtype, rng: spec(shape, dtype)
    if isinstance(spec, dict) and set(spec) == {"callable"} and isinstance(spec["callable"],
                                                                          str):
        # What a saved model records for a callable: its weights were loaded from the file,
        # so it is only needed to build new weights, which then says how.
        def unavailable(shape, dtype, rng):
            raise ValueError(f"{argument} was the Python callable {spec['callable']!r}, which "
                             "a saved model cannot hold; to build new weights, create the "
                             f"layer again with {argument}=<the callable>")
        return unavailable
    raise TypeError(f"{argument} must be an initializer name or a callable f(shape, dtype); "
                    f"got {type(spec).__name__} {spec!r}")
