"""Scalar gate math, written once as ``@numba.njit`` functions.

The ``numba`` CPU loops call these per element, and so can ``numba.cuda`` kernels (Numba device
code may call ``njit`` functions). Activations arrive as the integer codes of
:mod:`numlstm.activations`, resolved at run time so that one compiled kernel serves every choice.

Every function here takes and returns one scalar of the caller's float type.
"""

from __future__ import annotations

import math

from numba import njit

from ..activations import HARD_SIGMOID, HARD_SIGMOID_KERAS2, RELU, SIGMOID, TANH


@njit(cache=True, inline="always")
def sigmoid(x):
    """1 / (1 + exp(-x)). For very negative x, exp overflows to +inf and the result is 0,
    never NaN; relative accuracy is kept because no ``1 - tiny`` cancellation occurs."""
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, inline="always")
def hard_sigmoid(x):
    """Keras 3: clip(x/6 + 1/2, 0, 1)."""
    return min(max(x / 6.0 + 0.5, 0.0), 1.0)


@njit(cache=True, inline="always")
def hard_sigmoid_keras2(x):
    """Keras 2: clip(0.2 x + 0.5, 0, 1)."""
    return min(max(0.2 * x + 0.5, 0.0), 1.0)


@njit(cache=True, inline="always")
def activate(code, x):
    """The activation selected by ``code``, applied to the scalar ``x``."""
    if code == TANH:
        return math.tanh(x)
    elif code == SIGMOID:
        return sigmoid(x)
    elif code == RELU:
        return max(x, 0.0)
    elif code == HARD_SIGMOID:
        return hard_sigmoid(x)
    elif code == HARD_SIGMOID_KERAS2:
        return hard_sigmoid_keras2(x)
    return x + 0.0  # LINEAR; "+ 0.0" gives every branch the same (promoted) type


@njit(cache=True, inline="always")
def activation_derivative(code, y):
    """d act(z)/dz written through the output ``y = act(z)``; 0 at the kinks."""
    if code == TANH:
        return 1.0 - y * y
    elif code == SIGMOID:
        return y * (1.0 - y)
    elif code == RELU:
        return 1.0 if y > 0.0 else 0.0
    elif code == HARD_SIGMOID:
        return 1.0 / 6.0 if 0.0 < y < 1.0 else 0.0
    elif code == HARD_SIGMOID_KERAS2:
        return 0.2 if 0.0 < y < 1.0 else 0.0
    return 1.0  # LINEAR


@njit(cache=True, inline="always")
def cell_update(zi, zf, zg, zo, c_prev, activation, recurrent_activation):
    """One unit's LSTM step from its four pre-activations.

    Returns ``(i, f, g, o, c, h)`` with ``c = f*c_prev + i*g`` and ``h = o*act(c)``.
    """
    i = activate(recurrent_activation, zi)
    f = activate(recurrent_activation, zf)
    g = activate(activation, zg)
    o = activate(recurrent_activation, zo)
    c = f * c_prev + i * g
    h = o * activate(activation, c)
    return i, f, g, o, c, h


@njit(cache=True, inline="always")
def cell_update_backward(i, f, g, o, c, c_prev, dh, dc, activation, recurrent_activation):
    """Back-propagate one unit's step.

    ``dh``/``dc`` are the gradients reaching ``h``/``c`` of this step. Returns the gradients of
    the four pre-activations ``(dzi, dzf, dzg, dzo)`` and of the previous cell state.
    """
    act_c = activate(activation, c)
    do = dh * act_c
    dc_total = dc + dh * o * activation_derivative(activation, act_c)
    dzi = dc_total * g * activation_derivative(recurrent_activation, i)
    dzf = dc_total * c_prev * activation_derivative(recurrent_activation, f)
    dzg = dc_total * i * activation_derivative(activation, g)
    dzo = do * activation_derivative(recurrent_activation, o)
    return dzi, dzf, dzg, dzo, dc_total * f
