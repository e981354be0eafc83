"""Scalar gate math, written once as ``@numba.njit`` functions.

The ``numba`` CPU loops call these per element, and so can ``numba.cuda`` kernels (Numba device
code may call ``njit`` functions). Activations arrive as the integer codes of
:mod:`numlstm.activations`, resolved at run time so that one compiled kernel serves every choice.

Every function here takes and returns one scalar of the caller's float type, and computes in
that type: their constants come from :func:`zero_like` and its siblings, because a bare ``1.0``
is a float64 literal to Numba and would promote float32 math to float64 (on a GPU, float64 runs
at a fraction of float32's rate).
"""

from __future__ import annotations

import math

from numba import njit

from ..activations import HARD_SIGMOID, HARD_SIGMOID_KERAS2, RELU, SIGMOID, TANH


@njit(cache=True, inline="always")
def sigmoid(x):
    """1 / (1 + exp(-x)). For very negative x, exp overflows to +inf and the result is 0,
    never NaN; relative accuracy is kept because no ``1 - tiny`` cancellation occurs."""
    one = one_like(x)
    return one / (one + math.exp(-x))


@njit(cache=True, inline="always")
def hard_sigmoid(x):
    """Keras 3: clip(x/6 + 1/2, 0, 1)."""
    return min(max(x / six_like(x) + half_like(x), zero_like(x)), one_like(x))


@njit(cache=True, inline="always")
def hard_sigmoid_keras2(x):
    """Keras 2: clip(0.2 x + 0.5, 0, 1)."""
    return min(max(fifth_like(x) * x + half_like(x), zero_like(x)), one_like(x))


@njit(cache=True, inline="always")
def activate(code, x):
    """The activation selected by ``code``, applied to the scalar ``x``."""
    if code == TANH:
        return math.tanh(x)
    elif code == SIGMOID:
        return sigmoid(x)
    elif code == RELU:
        return max(x, zero_like(x))
    elif code == HARD_SIGMOID:
        return hard_sigmoid(x)
    elif code == HARD_SIGMOID_KERAS2:
        return hard_sigmoid_keras2(x)
    return x + zero_like(x)  # LINEAR ("+ 0" maps -0 to +0, as it always has here)


@njit(cache=True, inline="always")
def activation_derivative(code, y):
    """d act(z)/dz written through the output ``y = act(z)``; 0 at the kinks."""
    zero = zero_like(y)
    one = one_like(y)
    if code == TANH:
        return one - y * y
    elif code == SIGMOID:
        return y * (one - y)
    elif code == RELU:
        return one if y > zero else zero
    elif code == HARD_SIGMOID:
        return sixth_like(y) if zero < y < one else zero
    elif code == HARD_SIGMOID_KERAS2:
        return fifth_like(y) if zero < y < one else zero
    return one  # LINEAR


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


# ---------------------------------------------------------------------------------------------
# Fast float32 activations for the CPU loops.
#
# ``math.tanh``/``math.exp`` are calls into libm that LLVM cannot vectorise, and they dominated
# the gate loop (DESIGN §5). The functions below are pure arithmetic (a polynomial exp with the
# power of two built from its exponent bits, and an odd polynomial near 0), so a loop over them
# compiles to packed vector instructions. They are accurate to float32 rounding (max abs error
# of tanh ~1.2e-7 over the whole line; sigmoid keeps its *relative* accuracy for very negative
# inputs because it is formed as e/(1+e) there, never as 1 - something). ``fast_tanh`` and
# ``fast_sigmoid`` pick them for float32 arguments and the accurate libm forms for float64.
# ---------------------------------------------------------------------------------------------

import numpy as np  # noqa: E402  (module constants below must be float32 to keep float32 math)
from llvmlite import ir  # noqa: E402
from numba import types  # noqa: E402
from numba.extending import intrinsic, overload  # noqa: E402

_F32_ONE = np.float32(1.0)
_F32_HALF = np.float32(0.5)
_F32_TWO = np.float32(2.0)
_F32_ZERO = np.float32(0.0)
_F32_EXP_MIN = np.float32(-87.0)        # exp(-87) ~ 1.6e-38 is still a normal float32
_F32_LOG2E = np.float32(1.4426950408889634)
_F32_LN2_HI = np.float32(0.693359375)   # 9 significant bits: n * hi is exact for |n| <= 126
_F32_LN2_LO = np.float32(-2.1219444005469058e-4)
# Taylor coefficients of exp on |r| <= ln2/2: truncation error r^8/8! < 6e-9 (relative).
_F32_E2 = np.float32(1.0 / 2.0)
_F32_E3 = np.float32(1.0 / 6.0)
_F32_E4 = np.float32(1.0 / 24.0)
_F32_E5 = np.float32(1.0 / 120.0)
_F32_E6 = np.float32(1.0 / 720.0)
_F32_E7 = np.float32(1.0 / 5040.0)
# tanh(x)/x = 1 + s*(t1 + s*(t2 + ...)), s = x^2, on |x| < 0.625: a least-squares-minimax fit
# of our own (relative error 4.2e-9 in exact arithmetic).
_F32_TANH_SMALL = np.float32(0.625)
_F32_T1 = np.float32(-0.33333283962390053)
_F32_T2 = np.float32(0.1333149234969599)
_F32_T3 = np.float32(-0.05374359038208425)
_F32_T4 = np.float32(0.020650898051402012)
_F32_T5 = np.float32(-0.005717401358012992)
_EXP_BIAS = 127
_MANTISSA_BITS = 23


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32 (an LLVM bitcast)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        if bits.bitwidth > 32:
            value = builder.trunc(value, ir.IntType(32))
        elif bits.bitwidth < 32:
            value = builder.sext(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(bits), codegen


@njit(cache=True, inline="always")
def exp_nonpositive_f32(v):
    """exp(v) for a float32 ``v <= 0``; inputs below -87 give exp(-87) ~ 1.6e-38.

    Range reduction ``v = n ln2 + r`` (|r| <= ln2/2, ln2 split in two for exactness), a
    degree-7 polynomial for exp(r), and 2**n assembled from its exponent bits.
    """
    v = max(v, _F32_EXP_MIN)
    n = np.int32(v * _F32_LOG2E - _F32_HALF)   # rounds to nearest: the argument is negative
    nf = np.float32(n)
    r = (v - nf * _F32_LN2_HI) - nf * _F32_LN2_LO
    p = _F32_E7
    p = p * r + _F32_E6
    p = p * r + _F32_E5
    p = p * r + _F32_E4
    p = p * r + _F32_E3
    p = p * r + _F32_E2
    p = p * r + _F32_ONE
    p = p * r + _F32_ONE
    return p * _float32_from_bits((n + _EXP_BIAS) << _MANTISSA_BITS)


@njit(cache=True, inline="always")
def tanh_f32(x):
    """tanh of a float32, pure arithmetic: an odd polynomial for |x| < 0.625, else
    (1 - e)/(1 + e) with e = exp(-2|x|) <= 0.29 (no cancellation). Both branches are computed
    and one selected, so a loop over this has no branches."""
    a = abs(x)
    s = x * x
    small = _F32_T5
    small = small * s + _F32_T4
    small = small * s + _F32_T3
    small = small * s + _F32_T2
    small = small * s + _F32_T1
    small = x + x * (small * s)
    e = exp_nonpositive_f32(-_F32_TWO * a)
    large = (_F32_ONE - e) / (_F32_ONE + e)
    large = large if x >= _F32_ZERO else -large
    return small if a < _F32_TANH_SMALL else large


@njit(cache=True, inline="always")
def sigmoid_f32(x):
    """1/(1 + exp(-x)) of a float32, pure arithmetic: with e = exp(-|x|) in (0, 1], 1/(1+e)
    for x >= 0 and e/(1+e) for x < 0, so the result keeps relative accuracy where it is tiny."""
    e = exp_nonpositive_f32(-abs(x))
    d = _F32_ONE / (_F32_ONE + e)
    return d if x >= _F32_ZERO else e * d


def fast_tanh(x):
    """tanh(x): :func:`tanh_f32` for float32 (vectorisable), ``math.tanh`` otherwise."""
    return math.tanh(x)


def fast_sigmoid(x):
    """sigmoid(x): :func:`sigmoid_f32` for float32 (vectorisable), :func:`sigmoid` otherwise."""
    return 1.0 / (1.0 + math.exp(-x))


@overload(fast_tanh)
def _fast_tanh_impl(x):
    if x == types.float32:
        return lambda x: tanh_f32(x)
    return lambda x: math.tanh(x)


@overload(fast_sigmoid)
def _fast_sigmoid_impl(x):
    if x == types.float32:
        return lambda x: sigmoid_f32(x)
    return lambda x: sigmoid(x)


def one_like(x):
    """1 in the float type of ``x`` (a bare ``1.0`` would promote float32 math to float64)."""
    return 1.0


@overload(one_like)
def _one_like_impl(x):
    if x == types.float32:
        return lambda x: _F32_ONE
    return lambda x: 1.0


def _constant_like(value: float, name: str, description: str):
    """A function ``f(x)`` for ``@njit`` code that returns ``value`` in the float type of
    ``x``: a float32 constant for float32 ``x``, the float64 ``value`` otherwise. Module-level
    float32 values are frozen into the compiled code as float32 constants, so the float32 path
    holds no float64 at all (``np.float32(1.0)`` written inline would be a float64 constant
    converted at run time)."""
    as_float32 = np.float32(value)
    as_float64 = float(value)

    def constant(x):
        return as_float64

    constant.__name__ = constant.__qualname__ = name
    constant.__doc__ = f"{description} in the float type of ``x``."

    @overload(constant)
    def _constant_impl(x):
        if x == types.float32:
            return lambda x: as_float32
        return lambda x: as_float64

    return constant


zero_like = _constant_like(0.0, "zero_like", "0")
half_like = _constant_like(0.5, "half_like", "1/2")
six_like = _constant_like(6.0, "six_like", "6")
sixth_like = _constant_like(1.0 / 6.0, "sixth_like", "1/6 (the slope of Keras 3's hard sigmoid)")
fifth_like = _constant_like(0.2, "fifth_like", "0.2 (the slope of Keras 2's hard sigmoid)")
