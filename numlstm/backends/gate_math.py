"""The LSTM gate update, written once as ``@numba.njit`` functions for every Numba path.

One step of one unit (docs/numerics.md gives the equations and their conventions)::

    i = σ(z_i)   f = σ(z_f)   g = act(z_g)   o = σ(z_o)   c = f*c_prev + i*g   h = o*act(c)

with σ the recurrent activation and act the activation, and its backward, every derivative
written through the activation's output (``act'(z) = D(act(z))``, 0 at the kinks). The
equations are written once, in :func:`cell_update` and :func:`cell_update_backward` (one unit)
and looped over a row of units by :func:`cell_update_rows` and
:func:`cell_update_rows_backward`. Their last arguments are the functions that evaluate the
activations and their derivatives, ``(code, value) -> value``; they make the two gate updates:

* the **generic** update (:func:`activate`, :func:`activation_derivative`) takes any
  activation codes of :mod:`numlstm.activations` at run time (one compiled kernel serves every
  choice), with libm's ``tanh``/``exp``;
* the **default** update (:func:`default_activation`, :func:`default_derivative`; sigmoid
  gates and tanh: :func:`lstm_gates_forward` and :func:`lstm_gates_backward`) evaluates them
  with :func:`gate_sigmoid` and :func:`gate_tanh`: in float32 these are pure arithmetic, so
  LLVM turns the row loop into packed vector code (docs/performance.md, "The gate update");
  in float64 they are libm's.

Each derivative is written once (:func:`tanh_derivative`, :func:`sigmoid_derivative` and the
rest in :func:`activation_derivative`). The functions are passed, not chosen by a flag: Numba
compiles only the ones passed (a flag compiled both updates into every kernel, which doubled
the cold compile time of the training kernels), and a function argument of an inlined call is
resolved when the caller is compiled. Every function here is inlined into its callers but
:func:`extra_activate` and :func:`extra_derivative` (the activations of codes 6 and up, called
from the generic update; see the comment above them). The
``numba`` CPU loops (:mod:`.numba_kernels`) call the row functions; the ``numba.cuda`` kernels
(:mod:`.cuda_kernels`) call the per-unit ones with the generic update, which Numba compiles as
device code.

Float types: given float32 values, every function here computes in float32 and returns (or
writes) float32; given float64, float64 (values of mixed float types promote as Numba's
arithmetic does; the ``*_f32`` functions take float32 only). A bare
``1.0`` is a float64 literal to Numba and would promote float32 math to float64 (on a GPU,
float64 runs at a fraction of float32's rate), so constants come from :func:`one_like` and its
siblings, or are module-level float32 values.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from ..activations import (ELU, EXPONENTIAL, HARD_SIGMOID, HARD_SIGMOID_KERAS2, HARD_TANH,
                           LEAKY_RELU, LEAKY_RELU_SLOPE, LINEAR, LOG_SIGMOID, RELU, RELU6, SELU,
                           SELU_ALPHA, SELU_SCALE, SIGMOID, SOFTPLUS, SOFTSIGN, TANH)


# -- constants: float32 ones, and ones in the float type of a given value -------------------------

_F32_ONE = np.float32(1.0)
_F32_HALF = np.float32(0.5)
_F32_ZERO = np.float32(0.0)


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
selu_scale_like = _constant_like(SELU_SCALE, "selu_scale_like", "SELU's scale λ")
selu_scale_alpha_like = _constant_like(SELU_SCALE * SELU_ALPHA, "selu_scale_alpha_like",
                                       "SELU's λ α")
leaky_slope_like = _constant_like(LEAKY_RELU_SLOPE, "leaky_slope_like",
                                  "leaky_relu's negative slope (Keras's 0.2)")


# -- the activations, by code -------------------------------------------------------------------


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
    """The activation selected by ``code``, applied to the scalar ``x`` (libm's ``tanh`` and
    ``exp``: the generic gate update's activations)."""
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
    elif code == LINEAR:
        return x + zero_like(x)  # "+ 0" maps -0 to +0, as it always has here
    return extra_activate(code, x)


# The activations of codes 6 and up are compiled once as functions of their own and *called*
# (not inlined) from the generic update: every kernel compiles the generic update next to the
# default one (the codes are run-time values), and inlining nine more activations into each of
# its call sites would add to the cold compile time of every kernel, the default path's too.


@njit(cache=True)
def extra_activate(code, x):
    """The activations of codes 6 and up (softsign ... log_sigmoid; see
    :mod:`numlstm.activations`), applied to the scalar ``x``; ``exp`` is taken only of
    non-positive values where the result is bounded, so nothing overflows but ``exponential``
    itself (as in Keras). Not inlined (see the comment above)."""
    zero = zero_like(x)
    one = one_like(x)
    if code == SOFTSIGN:
        return x / (one + abs(x))
    elif code == ELU:
        return x if x > zero else math.expm1(min(x, zero))
    elif code == SELU:
        return (selu_scale_like(x) * x if x > zero
                else selu_scale_alpha_like(x) * math.expm1(min(x, zero)))
    elif code == EXPONENTIAL:
        return math.exp(x)
    elif code == SOFTPLUS:      # log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
        return max(x, zero) + math.log1p(math.exp(-abs(x)))
    elif code == RELU6:
        return min(max(x, zero), six_like(x))
    elif code == LEAKY_RELU:
        return x if x > zero else leaky_slope_like(x) * x
    elif code == HARD_TANH:
        return min(max(x, -one), one)
    # LOG_SIGMOID: -softplus(-x)
    return min(x, zero) - math.log1p(math.exp(-abs(x)))


@njit(cache=True, inline="always")
def tanh_derivative(y):
    """tanh'(z) through ``y = tanh(z)``: 1 - y²."""
    return one_like(y) - y * y


@njit(cache=True, inline="always")
def sigmoid_derivative(y):
    """σ'(z) through ``y = σ(z)``: y (1 - y)."""
    return y * (one_like(y) - y)


@njit(cache=True, inline="always")
def activation_derivative(code, y):
    """d act(z)/dz of the activation selected by ``code``, written through its output
    ``y = act(z)``; 0 at the kinks. Every derivative is written once, here or in the two
    functions above (which the default update calls directly)."""
    zero = zero_like(y)
    one = one_like(y)
    if code == TANH:
        return tanh_derivative(y)
    elif code == SIGMOID:
        return sigmoid_derivative(y)
    elif code == RELU:
        return one if y > zero else zero
    elif code == HARD_SIGMOID:
        return sixth_like(y) if zero < y < one else zero
    elif code == HARD_SIGMOID_KERAS2:
        return fifth_like(y) if zero < y < one else zero
    elif code == LINEAR:
        return one
    return extra_derivative(code, y)


@njit(cache=True)
def extra_derivative(code, y):
    """The derivatives of :func:`extra_activate`'s activations through their output ``y``
    (0 at the kinks of relu6 and hard_tanh; leaky_relu's negative slope at its kink). Not
    inlined (see the comment above :func:`extra_activate`)."""
    zero = zero_like(y)
    one = one_like(y)
    if code == SOFTSIGN:        # 1/(1+|z|)^2 = (1-|y|)^2
        d = one - abs(y)
        return d * d
    elif code == ELU:           # e^z = y + 1 for z <= 0
        return one if y > zero else y + one
    elif code == SELU:          # λ α e^z = y + λ α for z <= 0
        return selu_scale_like(y) if y > zero else y + selu_scale_alpha_like(y)
    elif code == EXPONENTIAL:
        return y
    elif code == SOFTPLUS:      # σ(z) = 1 - e^-y
        return -math.expm1(-y)
    elif code == RELU6:
        return one if zero < y < six_like(y) else zero
    elif code == LEAKY_RELU:
        return one if y > zero else leaky_slope_like(y)
    elif code == HARD_TANH:
        return one if -one < y < one else zero
    return -math.expm1(y)       # LOG_SIGMOID: σ(-z) = 1 - e^y


# ---------------------------------------------------------------------------------------------
# Stand-alone float32 tanh and sigmoid with relative accuracy.
#
# ``math.tanh``/``math.exp`` are calls into libm that LLVM cannot vectorise. The functions
# below are pure arithmetic (a polynomial exp with the power of two built from its exponent
# bits, and an odd polynomial near 0), so a loop over them compiles to packed vector
# instructions. They are accurate to float32 rounding (max abs error of tanh ~1.2e-7 over the
# whole line; sigmoid keeps its *relative* accuracy for very negative inputs because it is
# formed as e/(1+e) there, never as 1 - something). ``fast_tanh`` and ``fast_sigmoid`` pick
# them for float32 arguments and the accurate libm forms for float64. The gate update does not
# use them: inside a step only absolute accuracy matters, and the rational forms of the next
# section are cheaper.
# ---------------------------------------------------------------------------------------------

_F32_TWO = np.float32(2.0)
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


def _by_float_type(name: str, float32_impl, float64_impl, doc: str):
    """A scalar function for ``@njit`` code that runs ``float32_impl`` on a float32 argument
    and ``float64_impl`` on any other (plain Python calls run ``float64_impl``): the float32
    forms are the vectorisable pure-arithmetic ones, the float64 forms libm's."""
    python_impl = getattr(float64_impl, "py_func", float64_impl)

    def function(x):
        return python_impl(x)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc

    @overload(function)
    def _implementation(x):
        if x == types.float32:
            return lambda x: float32_impl(x)
        return lambda x: float64_impl(x)

    return function


fast_tanh = _by_float_type(
    "fast_tanh", tanh_f32, math.tanh,
    "tanh(x): :func:`tanh_f32` for float32 (vectorisable), ``math.tanh`` otherwise.")
fast_sigmoid = _by_float_type(
    "fast_sigmoid", sigmoid_f32, sigmoid,
    "sigmoid(x): :func:`sigmoid_f32` for float32 (vectorisable), :func:`sigmoid` otherwise.")


# ---------------------------------------------------------------------------------------------
# The float32 activations of the default gate update (docs/performance.md, "The gate update").
#
# Inside an LSTM step the gates only ever enter through products (i*g, f*c, o*tanh(c)), so
# what matters there is *absolute* accuracy, and a cheaper form than the exp-based functions
# above is enough: tanh as one rational function of x (no exp, no branch, one division) and
# sigmoid(x) = 1/2 + tanh(x/2)/2. Max abs error over the whole float32 line, measured against
# float64 (tests/test_gate_math.py): tanh 3.3e-7, sigmoid 1.7e-7 -- inside the 1e-5 float32
# tolerance of every parity test by a factor of 30. The sigmoid form loses *relative* accuracy
# for very negative inputs (where it is below 1e-7 anyway), which is why the stand-alone
# ``fast_sigmoid`` above keeps the exp form.
#
# tanh(x) ~ x * P(x^2) / Q(x^2) on |x| <= 9 (clamped there: tanh(9) = 1 - 3e-8), degrees 6 and
# 3 in x^2. The coefficients are our own fit: linearised least squares in u = (x/9)^2,
# reweighted towards the largest errors (Lawson) until the float64 error was 5.9e-9.
# ---------------------------------------------------------------------------------------------

_F32_TANH_CLAMP = np.float32(9.0)
_F32_P0 = np.float32(0.9999999403953552)
_F32_P1 = np.float32(0.13079166412353516)
_F32_P2 = np.float32(0.0030986578203737736)
_F32_P3 = np.float32(1.1101859854534268e-05)
_F32_P4 = np.float32(-2.002970767023271e-08)
_F32_P5 = np.float32(5.1927656619099594e-11)
_F32_P6 = np.float32(-8.291507264850465e-14)
_F32_Q1 = np.float32(0.464124858379364)
_F32_Q2 = np.float32(0.024473775178194046)
_F32_Q3 = np.float32(0.00025386063498444855)
_F32_MINUS_ONE = np.float32(-1.0)


@njit(cache=True, inline="always")
def gate_tanh_f32(x):
    """tanh of a float32 as one rational function (see the section comment); |result| <= 1."""
    x = min(max(x, -_F32_TANH_CLAMP), _F32_TANH_CLAMP)
    s = x * x
    p = _F32_P6
    p = p * s + _F32_P5
    p = p * s + _F32_P4
    p = p * s + _F32_P3
    p = p * s + _F32_P2
    p = p * s + _F32_P1
    p = p * s + _F32_P0
    q = _F32_Q3
    q = q * s + _F32_Q2
    q = q * s + _F32_Q1
    q = q * s + _F32_ONE
    return min(max(x * p / q, _F32_MINUS_ONE), _F32_ONE)


@njit(cache=True, inline="always")
def gate_sigmoid_f32(x):
    """sigmoid of a float32 as 1/2 + tanh(x/2)/2 (absolute accuracy; see the section
    comment); the result lies in [0, 1]."""
    return _F32_HALF + _F32_HALF * gate_tanh_f32(_F32_HALF * x)


gate_tanh = _by_float_type(
    "gate_tanh", gate_tanh_f32, math.tanh,
    "tanh for the LSTM gate update: :func:`gate_tanh_f32` for float32, ``math.tanh`` for "
    "float64 (which keeps the accurate libm math the float64 tolerances need).")
gate_sigmoid = _by_float_type(
    "gate_sigmoid", gate_sigmoid_f32, sigmoid,
    "sigmoid for the LSTM gate update: :func:`gate_sigmoid_f32` for float32, :func:`sigmoid` "
    "for float64.")


# -- the gate update ------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def default_activation(code, x):
    """The default update's activations: :func:`gate_tanh` for ``TANH`` and
    :func:`gate_sigmoid` for the gates' ``SIGMOID`` (the only two codes it is given)."""
    return gate_tanh(x) if code == TANH else gate_sigmoid(x)


@njit(cache=True, inline="always")
def default_derivative(code, y):
    """The default update's derivatives (through the outputs), as :func:`default_activation`
    chooses its activations."""
    return tanh_derivative(y) if code == TANH else sigmoid_derivative(y)


@njit(cache=True, inline="always")
def cell_update(zi, zf, zg, zo, c_prev, activation, recurrent_activation, evaluate):
    """One unit's step from its four pre-activations: returns ``(i, f, g, o, c, h)``.

    ``evaluate(code, z)`` evaluates the activations (see the module docstring):
    :func:`activate` for the generic update (any codes), :func:`default_activation` for the
    default one (``activation`` ``TANH``, ``recurrent_activation`` ``SIGMOID``).
    """
    i = evaluate(recurrent_activation, zi)
    f = evaluate(recurrent_activation, zf)
    g = evaluate(activation, zg)
    o = evaluate(recurrent_activation, zo)
    c = f * c_prev + i * g
    h = o * evaluate(activation, c)
    return i, f, g, o, c, h


@njit(cache=True, inline="always")
def cell_update_backward(i, f, g, o, c, c_prev, dh, dc, activation, recurrent_activation,
                         evaluate, derivative):
    """Back-propagate :func:`cell_update` for one unit.

    From the activated gates, the cell states after (``c``) and before (``c_prev``) the step
    and the gradients ``dh``/``dc`` reaching this step's ``h``/``c``, returns ``(dzi, dzf, dzg,
    dzo, dc_prev)``, the gradients of the four pre-activations and of ``c_prev``.
    """
    act_c = evaluate(activation, c)
    dc_total = dc + dh * o * derivative(activation, act_c)
    dzi = dc_total * g * derivative(recurrent_activation, i)
    dzf = dc_total * c_prev * derivative(recurrent_activation, f)
    dzg = dc_total * i * derivative(activation, g)
    dzo = dh * act_c * derivative(recurrent_activation, o)
    return dzi, dzf, dzg, dzo, dc_total * f


@njit(cache=True, inline="always")
def cell_update_rows(zi, zf, zg, zo, c, h, activation, recurrent_activation,
                     evaluate):
    """:func:`cell_update` over one row of units, in place: ``zi, zf, zg, zo (H,)`` hold the
    pre-activations and leave holding the activated gates, ``c (H,)`` goes from ``c_prev`` to
    ``c`` and ``h (H,)`` receives ``h``. The four gates are separate unit-stride views so that
    LLVM can vectorise the loop."""
    for j in range(c.shape[0]):
        zi[j], zf[j], zg[j], zo[j], c[j], h[j] = cell_update(
            zi[j], zf[j], zg[j], zo[j], c[j], activation, recurrent_activation,
            evaluate)


@njit(cache=True, inline="always")
def cell_update_rows_backward(i, f, g, o, c, c_prev, dh, dc, dzi, dzf, dzg, dzo, activation,
                              recurrent_activation, evaluate, derivative):
    """:func:`cell_update_backward` over one row of units: from ``i, f, g, o, c, c_prev, dh,
    dc (H,)`` writes ``dzi, dzf, dzg, dzo (H,)`` and turns ``dc`` into the gradient of
    ``c_prev``."""
    for j in range(c.shape[0]):
        dzi[j], dzf[j], dzg[j], dzo[j], dc[j] = cell_update_backward(
            i[j], f[j], g[j], o[j], c[j], c_prev[j], dh[j], dc[j], activation,
            recurrent_activation, evaluate, derivative)


@njit(cache=True, inline="always")
def lstm_gates_forward(zi, zf, zg, zo, c, h):
    """The default update (sigmoid gates, tanh) over one row of units: :func:`cell_update_rows`
    with the codes and the choice of update fixed, so that the activations' branches fold
    away at compile time and the float32 loop vectorises."""
    cell_update_rows(zi, zf, zg, zo, c, h, TANH, SIGMOID, default_activation)


@njit(cache=True, inline="always")
def lstm_gates_backward(i, f, g, o, c, c_prev, dh, dc, dzi, dzf, dzg, dzo):
    """Back-propagate :func:`lstm_gates_forward` over one row of units
    (:func:`cell_update_rows_backward` of the default update)::

        dc_t = dc + dh*o*(1 - tanh(c)^2)      dzo = dh*tanh(c)*o*(1 - o)
        dzi = dc_t*g*i*(1 - i)   dzf = dc_t*c_prev*f*(1 - f)   dzg = dc_t*i*(1 - g^2)
        dc <- dc_t*f
    """
    cell_update_rows_backward(i, f, g, o, c, c_prev, dh, dc, dzi, dzf, dzg, dzo, TANH, SIGMOID,
                              default_activation, default_derivative)
