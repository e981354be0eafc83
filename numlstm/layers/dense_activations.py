"""The activations of :class:`~numlstm.Dense`: every activation of Keras 3 with its default
arguments, forward and backward, on any array namespace ``xp`` (NumPy or CuPy).

Each entry maps a name to ``(forward(xp, z) -> y, backward(xp, z, y, g) -> dL/dz)`` where
``g = dL/dy``; the backward gets both the pre-activation ``z`` and the output ``y`` (a Dense
layer keeps both), so activations whose derivative cannot be written through ``y`` alone
(gelu, silu, mish...) are available here although the LSTM kernels cannot take them.

Definitions (Keras 3's defaults; ``σ`` the sigmoid)::

    celu         max(x, 0) + min(0, exp(x) - 1)              (alpha 1)
    elu          x if x > 0 else exp(x) - 1                   (alpha 1)
    exponential  exp(x)
    gelu         x Φ(x) = x (1 + erf(x / sqrt 2)) / 2         (approximate=False)
    hard_shrink  x if |x| > 0.5 else 0
    hard_sigmoid clip(x / 6 + 1/2, 0, 1)
    hard_sigmoid_keras2 clip(0.2 x + 0.5, 0, 1)   (Keras 2's; numlstm's name, as for LSTM)
    hard_silu    x * hard_sigmoid(x)      (alias hard_swish)
    hard_tanh    clip(x, -1, 1)
    leaky_relu   x if x > 0 else 0.2 x
    linear       x                        (also None)
    log_sigmoid  -softplus(-x)
    log_softmax  z - logsumexp(z) over the last axis
    mish         x tanh(softplus(x))
    relu         max(x, 0)
    relu6        min(max(x, 0), 6)
    selu         λ x if x > 0 else λ α (exp(x) - 1)
    sigmoid      σ(x)
    silu         x σ(x)                   (alias swish)
    soft_shrink  x - 0.5 if x > 0.5, x + 0.5 if x < -0.5, else 0
    softmax      exp(z) / sum(exp(z)) over the last axis
    softplus     log(1 + exp(x))
    softsign     x / (1 + |x|)
    sparse_plus  0 if x <= -1, x if x >= 1, else (x + 1)^2 / 4
    sparse_sigmoid 0 if x <= -1, 1 if x >= 1, else (x + 1) / 2
    sparsemax    the Euclidean projection of z onto the simplex, over the last axis
    squareplus   (x + sqrt(x^2 + 4)) / 2  (b = 4)
    tanh         tanh(x)
    tanh_shrink  x - tanh(x)

At a kink the derivative is that of the side ``x <= kink`` (0 for relu at 0).
``glu`` (halves the last axis) and ``threshold`` (no default arguments in Keras) are refused.
"""

from __future__ import annotations

import math

import numpy as np

from ..activations import LEAKY_RELU_SLOPE, SELU_ALPHA, SELU_SCALE

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _sigmoid(xp, z):
    return xp.exp(-xp.logaddexp(xp.zeros_like(z), -z))


def _softplus(xp, z):
    return xp.logaddexp(xp.zeros_like(z), z)


def _erf(xp, z):
    """erf elementwise with SciPy's (a dependency of numlstm); a device array (CuPy) makes
    the round trip through the host, since the front-end imports no kernel library."""
    from scipy.special import erf
    if xp is np:
        return erf(z)
    return xp.asarray(erf(xp.asnumpy(z)))        # pragma: no cover - needs CuPy


def _cast(z, value):
    return value.astype(z.dtype, copy=False)


def _softmax(xp, z):
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sparsemax(xp, z):
    """Martins & Astudillo (2016): ``max(z - tau, 0)`` with tau chosen so the sum is 1."""
    sorted_z = -xp.sort(-z, axis=-1)
    k = xp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    cumulative = xp.cumsum(sorted_z, axis=-1)
    support = (1 + k * sorted_z) > cumulative
    k_z = support.sum(axis=-1, keepdims=True)
    tau = (xp.take_along_axis(cumulative, k_z - 1, axis=-1) - 1) / k_z.astype(z.dtype)
    return xp.maximum(z - tau, 0)


def _sparsemax_backward(xp, z, y, g):
    support = y > 0
    count = support.sum(axis=-1, keepdims=True)
    mean = (g * support).sum(axis=-1, keepdims=True) / count
    return support * (g - mean)


def _gelu(xp, z):
    return 0.5 * z * (1 + _erf(xp, z * _SQRT_HALF))


def _gelu_backward(xp, z, y, g):
    cdf = 0.5 * (1 + _erf(xp, z * _SQRT_HALF))
    pdf = _INV_SQRT_2PI * xp.exp(-0.5 * z * z)
    return g * (cdf + z * pdf)


def _mish_backward(xp, z, y, g):
    t = xp.tanh(_softplus(xp, z))
    return g * (t + z * (1 - t * t) * _sigmoid(xp, z))


def _hard_sigmoid(xp, z):
    return xp.clip(z / 6 + 0.5, 0, 1)


_ELEMENTWISE = {
    "linear": (lambda xp, z: z, lambda xp, z, y, g: g),
    "relu": (lambda xp, z: xp.maximum(z, 0), lambda xp, z, y, g: g * (z > 0)),
    "sigmoid": (_sigmoid, lambda xp, z, y, g: g * y * (1 - y)),
    "tanh": (lambda xp, z: xp.tanh(z), lambda xp, z, y, g: g * (1 - y * y)),
    "softsign": (lambda xp, z: z / (1 + xp.abs(z)),
                 lambda xp, z, y, g: g / (1 + xp.abs(z)) ** 2),
    "elu": (lambda xp, z: xp.where(z > 0, z, xp.expm1(xp.minimum(z, 0))),
            lambda xp, z, y, g: g * xp.where(z > 0, 1, y + 1)),
    "celu": (lambda xp, z: xp.where(z > 0, z, xp.expm1(xp.minimum(z, 0))),
             lambda xp, z, y, g: g * xp.where(z > 0, 1, y + 1)),
    "selu": (lambda xp, z: SELU_SCALE * xp.where(z > 0, z,
                                                 SELU_ALPHA * xp.expm1(xp.minimum(z, 0))),
             lambda xp, z, y, g: g * xp.where(z > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA)),
    "exponential": (lambda xp, z: xp.exp(z), lambda xp, z, y, g: g * y),
    "softplus": (_softplus, lambda xp, z, y, g: g * _sigmoid(xp, z)),
    "relu6": (lambda xp, z: xp.clip(z, 0, 6), lambda xp, z, y, g: g * ((z > 0) & (z < 6))),
    "leaky_relu": (lambda xp, z: xp.where(z > 0, z, LEAKY_RELU_SLOPE * z),
                   lambda xp, z, y, g: g * xp.where(z > 0, 1, LEAKY_RELU_SLOPE)),
    "hard_tanh": (lambda xp, z: xp.clip(z, -1, 1),
                  lambda xp, z, y, g: g * ((z > -1) & (z < 1))),
    "hard_sigmoid": (_hard_sigmoid,
                     lambda xp, z, y, g: g * ((z > -3) & (z < 3)) / 6),
    "hard_sigmoid_keras2": (lambda xp, z: xp.clip(0.2 * z + 0.5, 0, 1),
                            lambda xp, z, y, g: g * ((z > -2.5) & (z < 2.5)) * 0.2),
    "hard_silu": (lambda xp, z: z * _hard_sigmoid(xp, z),
                  lambda xp, z, y, g: g * (_hard_sigmoid(xp, z)
                                           + z * ((z > -3) & (z < 3)) / 6)),
    "log_sigmoid": (lambda xp, z: -_softplus(xp, -z), lambda xp, z, y, g: g * _sigmoid(xp, -z)),
    "silu": (lambda xp, z: z * _sigmoid(xp, z),
             lambda xp, z, y, g: g * (_sigmoid(xp, z) * (1 + z * (1 - _sigmoid(xp, z))))),
    "gelu": (_gelu, _gelu_backward),
    "mish": (lambda xp, z: z * xp.tanh(_softplus(xp, z)), _mish_backward),
    "tanh_shrink": (lambda xp, z: z - xp.tanh(z),
                    lambda xp, z, y, g: g * xp.tanh(z) ** 2),
    "squareplus": (lambda xp, z: (z + xp.sqrt(z * z + 4)) / 2,
                   lambda xp, z, y, g: g * (1 + z / xp.sqrt(z * z + 4)) / 2),
    "hard_shrink": (lambda xp, z: xp.where(xp.abs(z) > 0.5, z, 0),
                    lambda xp, z, y, g: g * (xp.abs(z) > 0.5)),
    "soft_shrink": (lambda xp, z: xp.where(z > 0.5, z - 0.5, xp.where(z < -0.5, z + 0.5, 0)),
                    lambda xp, z, y, g: g * (xp.abs(z) > 0.5)),
    "sparse_plus": (lambda xp, z: xp.where(z <= -1, 0, xp.where(z >= 1, z, (z + 1) ** 2 / 4)),
                    lambda xp, z, y, g: g * xp.where(z <= -1, 0,
                                                     xp.where(z >= 1, 1, (z + 1) / 2))),
    "sparse_sigmoid": (lambda xp, z: xp.clip((z + 1) / 2, 0, 1),
                       lambda xp, z, y, g: g * ((z > -1) & (z < 1)) / 2),
}

_LAST_AXIS = {
    "softmax": (_softmax,
                lambda xp, z, y, g: y * (g - (g * y).sum(axis=-1, keepdims=True))),
    "log_softmax": (lambda xp, z: z - z.max(axis=-1, keepdims=True) - xp.log(
        xp.exp(z - z.max(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True)),
        lambda xp, z, y, g: g - xp.exp(y) * g.sum(axis=-1, keepdims=True)),
    "sparsemax": (_sparsemax, _sparsemax_backward),
}

#: Every Dense activation: name -> (forward, backward) (see the module docstring).
DENSE_ACTIVATIONS: dict = {**_ELEMENTWISE, **_LAST_AXIS,
                           "swish": _ELEMENTWISE["silu"], "hard_swish": _ELEMENTWISE["hard_silu"]}

#: Keras activations Dense refuses, and why.
REFUSED = {
    "glu": "it halves the last axis (units/2 outputs), which a Dense layer's output shape "
           "does not allow for; put the split in the model instead",
    "threshold": "Keras's threshold has no default threshold/default_value, so a name cannot "
                 "choose one",
}


def forward(xp, name: str, z):
    """``act(z)`` in ``z``'s dtype."""
    y = DENSE_ACTIVATIONS[name][0](xp, z)
    return y if y.dtype == z.dtype else y.astype(z.dtype)


def backward(xp, name: str, z, y, grad):
    """dL/dz from dL/dy ``grad``, in ``z``'s dtype."""
    dz = DENSE_ACTIVATIONS[name][1](xp, z, y, grad)
    return dz if dz.dtype == z.dtype else dz.astype(z.dtype)
