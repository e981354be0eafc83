"""The fused float32 gate update of the CPU loops (``gate_math.lstm_gates_forward`` /
``lstm_gates_backward`` and their rational tanh/sigmoid) against float64 math."""

import math

import numpy as np
import pytest
from numba import njit

from numlstm.backends import gate_math

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
