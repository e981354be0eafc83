"""Weight initializers with Keras's names and definitions.

Each initializer is called as ``init(shape, dtype, rng)`` with a ``numpy.random.Generator``;
a layer draws all its weights from one generator seeded by its ``seed``, so the same seed gives
the same weights. Users may also pass their own callable ``f(shape, dtype) -> array``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np


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


def random_normal(shape, dtype, rng, stddev=0.05):
    return rng.normal(0.0, stddev, size=shape).astype(dtype)


def _truncated_normal(shape, stddev, rng):
    """Normal samples, redrawn where they fall beyond two standard deviations."""
    values = rng.normal(0.0, stddev, size=shape)
    outside = np.abs(values) > 2 * stddev
    while outside.any():
        values[outside] = rng.normal(0.0, stddev, size=int(outside.sum()))
        outside = np.abs(values) > 2 * stddev
    return values


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


def orthogonal(shape, dtype, rng):
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
    return q.reshape(shape).astype(dtype)


INITIALIZERS: dict[str, Callable] = {
    "zeros": zeros, "ones": ones, "random_uniform": random_uniform,
    "random_normal": random_normal, "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal, "he_uniform": he_uniform, "orthogonal": orthogonal,
}


def resolve(spec, argument: str) -> Callable:
    """Turn an initializer name or a user callable ``f(shape, dtype)`` into ``f(shape, dtype,
    rng)``."""
    if isinstance(spec, str):
        if spec not in INITIALIZERS:
            raise ValueError(f"{argument} must be one of {sorted(INITIALIZERS)} or a callable "
                             f"f(shape, dtype); got {spec!r}")
        return INITIALIZERS[spec]
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
