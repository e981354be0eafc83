"""The gate updates of :mod:`numlstm.backends.gate_math` against float64 math and, element by
element, against the NumPy reference's gate update (``numpy_backend.gate_update`` and
``gate_update_backward``): the default one (``lstm_gates_forward`` / ``lstm_gates_backward``,
with their rational float32 tanh/sigmoid) and the generic one (``cell_update*``) for every
activation code."""

import itertools
import math

import numpy as np
import pytest
from numba import njit, types

from numlstm.activations import ACTIVATION_NAMES, EXPONENTIAL, SIGMOID, TANH
from numlstm.backends import gate_math
from numlstm.backends.numpy_backend import (activate, activation_derivative, gate_update,
                                            gate_update_backward)

GRID = np.concatenate([np.linspace(-30, 30, 600_001), np.geomspace(1e-30, 9, 20_001),
                       -np.geomspace(1e-30, 9, 20_001),
                       [0.0, 8.999, 9.0, 9.001, -9.0, 1e4, -1e4, 1e30, -1e30, np.inf, -np.inf]])


@njit(cache=True, error_model="numpy")
def _apply_gate_functions(values, tanh_out, sigmoid_out):
    for k in range(values.shape[0]):
        tanh_out[k] = gate_math.gate_tanh(values[k])
        sigmoid_out[k] = gate_math.gate_sigmoid(values[k])


def _evaluate(dtype):
    x = GRID.astype(dtype)
    tanh, sigmoid = np.empty_like(x), np.empty_like(x)
    _apply_gate_functions(x, tanh, sigmoid)
    return x, tanh, sigmoid


def test_float32_gate_tanh_and_sigmoid_are_within_their_stated_absolute_error():
    x, tanh, sigmoid = _evaluate(np.float32)
    exact = x.astype(np.float64)
    with np.errstate(over="ignore"):
        exact_sigmoid = 1.0 / (1.0 + np.exp(-exact))
    assert np.isfinite(tanh).all() and np.isfinite(sigmoid).all()
    assert np.abs(tanh - np.tanh(exact)).max() <= 4e-7
    assert np.abs(sigmoid - exact_sigmoid).max() <= 2e-7
    assert np.abs(tanh).max() <= 1.0
    assert sigmoid.min() >= 0.0 and sigmoid.max() <= 1.0
    # odd: the clamp and the polynomials are symmetric
    negated = np.empty_like(x)
    _apply_gate_functions(-x, negated, np.empty_like(x))
    np.testing.assert_array_equal(negated, -tanh)


def test_float64_gate_functions_are_the_accurate_libm_math():
    x, tanh, sigmoid = _evaluate(np.float64)
    finite = np.isfinite(x)
    np.testing.assert_array_equal(tanh[finite], [math.tanh(v) for v in x[finite]])
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(sigmoid[finite], 1.0 / (1.0 + np.exp(-x[finite])),
                                   rtol=1e-15, atol=0)


@njit(cache=True, error_model="numpy")
def _forward(z, c, h):
    units = c.shape[0]
    gate_math.lstm_gates_forward(z[:units], z[units:2 * units], z[2 * units:3 * units],
                                 z[3 * units:], c, h)


@njit(cache=True, error_model="numpy")
def _backward(gates, c, c_prev, dh, dc, dz):
    units = c.shape[0]
    gate_math.lstm_gates_backward(gates[:units], gates[units:2 * units],
                                  gates[2 * units:3 * units], gates[3 * units:], c, c_prev, dh,
                                  dc, dz[:units], dz[units:2 * units], dz[2 * units:3 * units],
                                  dz[3 * units:])


def _reference_step(z, c_prev):
    units = c_prev.shape[0]
    sig = 1.0 / (1.0 + np.exp(-z))
    i, f, o = sig[:units], sig[units:2 * units], sig[3 * units:]
    g = np.tanh(z[2 * units:3 * units])
    c = f * c_prev + i * g
    return np.concatenate([i, f, g, o]), c, o * np.tanh(c)


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-6), (np.float64, 1e-14)])
def test_fused_gate_update_forward_and_backward_match_float64_math(dtype, tolerance):
    rng = np.random.default_rng(3)
    units = 37                                   # not a multiple of any vector width
    z = rng.standard_normal(4 * units) * 4
    c_prev = rng.standard_normal(units) * 2
    gates_ref, c_ref, h_ref = _reference_step(z, c_prev)

    z_work, c_work, h_work = z.astype(dtype), c_prev.astype(dtype), np.empty(units, dtype)
    _forward(z_work, c_work, h_work)
    for got, expected in ((z_work, gates_ref), (c_work, c_ref), (h_work, h_ref)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance * 4)

    dh, dc = rng.standard_normal(units), rng.standard_normal(units)
    i, f, g, o = np.split(gates_ref, 4)
    tanh_c = np.tanh(c_ref)
    dc_total = dc + dh * o * (1 - tanh_c ** 2)
    dz_ref = np.concatenate([dc_total * g * i * (1 - i), dc_total * c_prev * f * (1 - f),
                             dc_total * i * (1 - g * g), dh * tanh_c * o * (1 - o)])
    dz = np.empty(4 * units, dtype)
    dc_work = dc.astype(dtype)
    _backward(gates_ref.astype(dtype), c_ref.astype(dtype), c_prev.astype(dtype),
              dh.astype(dtype), dc_work, dz)
    np.testing.assert_allclose(dz, dz_ref, rtol=0, atol=tolerance * 20)
    np.testing.assert_allclose(dc_work, dc_total * f, rtol=0, atol=tolerance * 20)


# -- element by element against the reference -----------------------------------------------------
#
# The wrappers below run each gate update over the rows of a (B, 4H) pre-activation array, the
# way the CPU loops do (the row functions, compiled with the loops' options) and the way the
# CUDA kernels do (the per-unit functions, one unit at a time); ``activate`` and
# ``activation_derivative`` make the generic update, and the default one is
# ``lstm_gates_forward``/``lstm_gates_backward``.

_LOOP_OPTIONS = dict(cache=True, error_model="numpy", fastmath={"contract"})


@njit(**_LOOP_OPTIONS)
def _generic_rows_forward(z, c, h, activation, recurrent_activation):
    units = c.shape[1]
    for b in range(z.shape[0]):
        row = z[b]
        gate_math.cell_update_rows(row[:units], row[units:2 * units], row[2 * units:3 * units],
                                   row[3 * units:], c[b], h[b], activation,
                                   recurrent_activation, gate_math.activate)


@njit(**_LOOP_OPTIONS)
def _generic_rows_backward(gates, c, c_prev, dh, dc, dz, activation, recurrent_activation):
    units = c.shape[1]
    for b in range(gates.shape[0]):
        g, d = gates[b], dz[b]
        gate_math.cell_update_rows_backward(
            g[:units], g[units:2 * units], g[2 * units:3 * units], g[3 * units:], c[b],
            c_prev[b], dh[b], dc[b], d[:units], d[units:2 * units], d[2 * units:3 * units],
            d[3 * units:], activation, recurrent_activation, gate_math.activate,
            gate_math.activation_derivative)


@njit(**_LOOP_OPTIONS)
def _generic_units_forward(z, c, h, activation, recurrent_activation):
    units = c.shape[1]
    for b in range(z.shape[0]):
        for j in range(units):
            (z[b, j], z[b, units + j], z[b, 2 * units + j], z[b, 3 * units + j], c[b, j],
             h[b, j]) = gate_math.cell_update(
                z[b, j], z[b, units + j], z[b, 2 * units + j], z[b, 3 * units + j], c[b, j],
                activation, recurrent_activation, gate_math.activate)


@njit(**_LOOP_OPTIONS)
def _generic_units_backward(gates, c, c_prev, dh, dc, dz, activation, recurrent_activation):
    units = c.shape[1]
    for b in range(gates.shape[0]):
        for j in range(units):
            (dz[b, j], dz[b, units + j], dz[b, 2 * units + j], dz[b, 3 * units + j],
             dc[b, j]) = gate_math.cell_update_backward(
                gates[b, j], gates[b, units + j], gates[b, 2 * units + j],
                gates[b, 3 * units + j], c[b, j], c_prev[b, j], dh[b, j], dc[b, j],
                activation, recurrent_activation, gate_math.activate,
                gate_math.activation_derivative)


# (The default update's wrappers take the codes too, for one signature, and ignore them.)
@njit(**_LOOP_OPTIONS)
def _default_rows_forward(z, c, h, activation, recurrent_activation):
    for b in range(z.shape[0]):
        _forward(z[b], c[b], h[b])


@njit(**_LOOP_OPTIONS)
def _default_rows_backward(gates, c, c_prev, dh, dc, dz, activation, recurrent_activation):
    for b in range(gates.shape[0]):
        _backward(gates[b], c[b], c_prev[b], dh[b], dc[b], dz[b])


#: Pre-activations placed among the random ones: zeros (a padded, masked-out step's inputs), a
#: tiny value, the kinks of relu and of both hard sigmoids (0, +-3, +-2.5), the rational tanh's
#: clamp (9) and its argument clamp for sigmoid (18), float32 exp's overflow edge (88) and values
#: where exp overflows in any float type (1e4).
SPECIAL_VALUES = np.array([0.0, -0.0, 1e-30, -1e-30, 2.5, -2.5, 3.0, -3.0, 9.0, -9.0, 18.0,
                           -18.0, 88.0, -88.0, 1e4, -1e4])


def _inputs(dtype, rows=5, units=37, seed=7):
    """``z (rows, 4H)``, ``c_prev``, ``dh``, ``dc (rows, H)`` in ``dtype``: random, with every
    special value three times among the pre-activations and a first row whose pre-activations
    and states are all zero (what a masked step of a zero-padded batch looks like)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, 4 * units)) * 4
    places = rng.choice(np.arange(4 * units, z.size), 3 * SPECIAL_VALUES.size, replace=False)
    z.flat[places] = np.tile(SPECIAL_VALUES, 3)
    c_prev = rng.standard_normal((rows, units)) * 2
    dh, dc = rng.standard_normal((rows, units)), rng.standard_normal((rows, units))
    z[0], c_prev[0] = 0, 0
    return [a.astype(dtype) for a in (z, c_prev, dh, dc)]


def _derivative_size(y):
    """A bound on the size of every derivative ``D(y)`` and of the terms it is computed from:
    ``1 - y^2`` (tanh), ``y (1 - y)`` (sigmoid) and the constants of the others all lie within
    ``1 + y^2``."""
    return 1 + y * y


def _check_against_reference(dtype, forward, backward, activation, recurrent_activation,
                             tolerance):
    """Run ``forward``/``backward`` on :func:`_inputs` and hold every element to the reference
    evaluated in float64 on the same (already rounded) inputs: ``|got - exact| <= tolerance *
    size``, where ``size`` is 1 plus the magnitude of the terms the element is computed from.
    A result that cancels (``c = f*c_prev + i*g ~ 0``; ``1 - tanh(c)^2`` near saturation times
    an unbounded gate) is so judged by the rounding of its terms, which is all that any
    computation of it in ``dtype`` can promise."""
    codes = (activation, recurrent_activation)
    z, c_prev, dh, dc = _inputs(dtype)
    if EXPONENTIAL in codes:
        # exp overflows beyond ~88 (float32) and its products then turn to inf - inf = NaN in
        # either implementation: compare where the math is finite. With |z| <= 1.5 and
        # |c_prev| <= 3 every gate is below e^1.5 ~ 4.5, c below ~34 and h = o*exp(c) below
        # 1e15, also when the gates are exponential too.
        z, c_prev = np.clip(z, -1.5, 1.5), np.clip(c_prev, -3, 3)
    z64, c_prev64, dh64, dc64 = (a.astype(np.float64) for a in (z, c_prev, dh, dc))

    gates, c, h = gate_update(z64, c_prev64, *codes)
    got_gates, got_c, got_h = z.copy(), c_prev.copy(), np.empty_like(c_prev)
    forward(got_gates, got_c, got_h, *codes)
    i, f, g, o = np.split(gates, 4, axis=1)
    c_size = 1 + np.abs(f * c_prev64) + np.abs(i * g)
    # c's rounding reaches h amplified by act'(c): at most 1 for every activation but
    # exponential, whose slope exp(c) is unbounded.
    act_c = activate(activation, c)
    slope = np.abs(activation_derivative(activation, act_c))
    h_size = 1 + np.abs(o) * (1 + np.abs(act_c) + c_size * np.maximum(1, slope))
    for name, got, expected, size in (("gates", got_gates, gates, 1 + np.abs(gates)),
                                      ("c", got_c, c, c_size), ("h", got_h, h, h_size)):
        _assert_within(name, got, expected, tolerance * size, dtype)

    # Backward from the reference's gates and cells rounded to dtype, as the loops store them.
    stored_gates, stored_c = gates.astype(dtype), c.astype(dtype)
    dz, dc_work = np.empty_like(stored_gates), dc.copy()
    backward(stored_gates, stored_c, c_prev, dh, dc_work, dz, *codes)
    gates64, c64 = stored_gates.astype(np.float64), stored_c.astype(np.float64)
    dz_exact, dc_prev_exact = gate_update_backward(gates64, c64, c_prev64, dh64, dc64, *codes)
    i, f, g, o = np.split(gates64, 4, axis=1)
    act_c = activate(activation, c64)
    dc_total_size = 1 + np.abs(dc64) + np.abs(dh64 * o) * _derivative_size(act_c)
    dz_size = np.concatenate([
        dc_total_size * np.abs(g) * _derivative_size(i),
        dc_total_size * np.abs(c_prev64) * _derivative_size(f),
        dc_total_size * np.abs(i) * _derivative_size(g),
        (1 + np.abs(dh64) * (1 + np.abs(act_c))) * _derivative_size(o)], axis=1)
    _assert_within("dz", dz, dz_exact, tolerance * dz_size, dtype)
    _assert_within("dc_prev", dc_work, dc_prev_exact, tolerance * dc_total_size * (1 + np.abs(f)),
                   dtype)


def _assert_within(name, got, expected, bound, dtype):
    assert got.dtype == dtype, name
    excess = np.abs(got - expected) - bound
    worst = np.unravel_index(excess.argmax(), excess.shape)
    assert excess[worst] <= 0, (
        f"{name}{list(worst)}: got {got[worst]!r}, reference {expected[worst]!r}, "
        f"allowed difference {bound[worst]:.3g}")


#: Allowed difference per unit of size (see :func:`_check_against_reference`).
#: float64: both sides evaluate the same equations in float64 and differ only by the last bits
#: of libm's tanh/exp against NumPy's (and NumPy's sigmoid form) and by fused multiply-adds, a
#: few units of 2.2e-16 per operation, through at most ~8 operations: 1e-14 leaves a margin.
#: float32, generic update: the same in float32 (eps 1.2e-7): 1e-6 is ~8 units of eps.
#: float32, default update: its rational tanh and sigmoid are off by up to 3.3e-7 and 1.7e-7
#: absolute (docs/numerics.md); an element takes at most three such errors, each scaled by
#: at most its size, plus the rounding above: 2e-6.
TOLERANCES = {(np.float64, "generic"): 1e-14, (np.float32, "generic"): 1e-6,
              (np.float64, "default"): 1e-14, (np.float32, "default"): 2e-6}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_default_gate_update_matches_the_reference_elementwise(dtype):
    with np.errstate(over="ignore"):
        _check_against_reference(dtype, _default_rows_forward, _default_rows_backward, TANH,
                                 SIGMOID, TOLERANCES[dtype, "default"])


#: Every pair of the first six codes (tanh ... hard_sigmoid_keras2); each later code (softsign
#: ... log_sigmoid) as the activation with sigmoid gates, as the gates' with tanh, and as both
#: (the full product of all codes would be 225 pairs for no further path through the code).
ACTIVATION_PAIRS = list(itertools.product(range(6), repeat=2)) + [
    pair for code in ACTIVATION_NAMES if code >= 6
    for pair in ((code, SIGMOID), (TANH, code), (code, code))]


@pytest.mark.parametrize("activation, recurrent_activation", ACTIVATION_PAIRS,
                         ids=lambda code: ACTIVATION_NAMES[code])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("path", ["rows", "units"])
def test_generic_gate_update_matches_the_reference_elementwise(path, dtype, activation,
                                                               recurrent_activation):
    """Every pair of activation codes, through the row functions (the CPU loops') and the
    per-unit functions (the CUDA kernels')."""
    forward, backward = {"rows": (_generic_rows_forward, _generic_rows_backward),
                         "units": (_generic_units_forward, _generic_units_backward)}[path]
    with np.errstate(over="ignore"):
        _check_against_reference(dtype, forward, backward, activation, recurrent_activation,
                                 TOLERANCES[dtype, "generic"])


@njit(cache=True)
def _scalar_functions(code, x, c_prev):
    return (gate_math.activate(code, x), gate_math.activation_derivative(code, x),
            gate_math.default_activation(code, x),
            gate_math.cell_update(x, x, x, x, c_prev, code, code, gate_math.activate),
            gate_math.cell_update_backward(x, x, x, x, c_prev, c_prev, x, x, code, code,
                                           gate_math.activate, gate_math.activation_derivative),
            gate_math.default_derivative(code, x),
            gate_math.cell_update(x, x, x, x, c_prev, code, code, gate_math.default_activation),
            gate_math.cell_update_backward(x, x, x, x, c_prev, c_prev, x, x, code, code,
                                           gate_math.default_activation,
                                           gate_math.default_derivative))


@pytest.mark.parametrize("dtype, numba_type", [(np.float32, types.float32),
                                                (np.float64, types.float64)])
def test_scalar_functions_compute_in_the_float_type_they_are_given(dtype, numba_type):
    """The module docstring's promise: float32 in, float32 out (a float64 constant anywhere in
    a code branch would turn the inferred type to float64), and likewise float64."""
    _scalar_functions(TANH, dtype(0.5), dtype(0.25))
    signature = next(s for s in _scalar_functions.nopython_signatures
                     if s.args[1] == numba_type)
    returned = signature.return_type
    assert list(returned.types[:3]) == [numba_type] * 3
    assert list(returned.types[3]) == [numba_type] * 6
    assert list(returned.types[4]) == [numba_type] * 5
    # the default update's functions likewise
    assert returned.types[5] == numba_type
    assert list(returned.types[6]) == [numba_type] * 6
    assert list(returned.types[7]) == [numba_type] * 5
