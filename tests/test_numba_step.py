"""The numba backend's fast paths: ``lstm_step`` against the reference, the float32 gate math's
accuracy, and that the gate loop really compiles to packed vector code."""

import math
import platform
import re

import numpy as np
import pytest
from numba import njit

import numlstm
from numlstm.activations import ACTIVATION_CODES, SIGMOID, TANH
from numlstm.backends import gate_math, numba_backend, numba_kernels

from conftest import make_problem

STEP_SHAPES = {"batch0": (0, 3, 4), "batch1": (1, 5, 7), "batch3": (3, 4, 17),
               "batch9-gemm": (9, 6, 5)}      # 8 rows or more take the GEMM branch


def reference_step(problem, activation, recurrent_activation):
    result = numlstm.functional.lstm_forward(
        problem.x, problem.kernel, problem.recurrent_kernel, problem.bias, h0=problem.h0,
        c0=problem.c0, activation=activation, recurrent_activation=recurrent_activation,
        backend="numpy")
    return result.h, result.c


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", list(STEP_SHAPES))
@pytest.mark.parametrize("activations", [("tanh", "sigmoid"), ("relu", "hard_sigmoid_keras2"),
                                         ("linear", "hard_sigmoid"), ("sigmoid", "tanh")])
@pytest.mark.parametrize("in_place", [False, True], ids=["new-arrays", "in-place"])
def test_lstm_step_matches_a_one_step_forward(dtype, shape, activations, in_place):
    batch, features, units = STEP_SHAPES[shape]
    problem = make_problem(batch=batch, timesteps=1, features=features, units=units,
                           seed=batch + units).astype(dtype)
    expected_h, expected_c = reference_step(problem, *activations)
    backend = numlstm.get_backend("numba")
    h, c = problem.h0.copy(), problem.c0.copy()
    h_before, c_before = h.copy(), c.copy()
    codes = dict(activation=ACTIVATION_CODES[activations[0]],
                 recurrent_activation=ACTIVATION_CODES[activations[1]])
    x_t = np.ascontiguousarray(problem.x[:, 0])
    if in_place:
        new_h, new_c = backend.lstm_step(x_t, problem.kernel, problem.recurrent_kernel,
                                         problem.bias, h, c, out_h=h, out_c=c, **codes)
        assert new_h is h and new_c is c
    else:
        new_h, new_c = backend.lstm_step(x_t, problem.kernel, problem.recurrent_kernel,
                                         problem.bias, h, c, **codes)
        np.testing.assert_array_equal(h, h_before)      # inputs untouched
        np.testing.assert_array_equal(c, c_before)
    assert new_h.dtype == dtype and new_c.dtype == dtype
    tolerance = dict(rtol=0, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_h, expected_h, **tolerance)
    np.testing.assert_allclose(new_c, expected_c, **tolerance)


@pytest.mark.parametrize("batch", [1, 9])
def test_lstm_step_accepts_strided_views(batch):
    """x[:, t] of a batch-major sequence is not contiguous; neither is a column-sliced state."""
    problem = make_problem(batch=batch, timesteps=2, features=3, units=4, seed=7)
    backend = numlstm.get_backend("numba")
    wide_h = np.zeros((batch, 8))
    wide_h[:, ::2] = problem.h0
    h_view = wide_h[:, ::2]
    assert not h_view.flags.c_contiguous
    assert batch == 1 or not problem.x[:, 0].flags.c_contiguous
    new_h, new_c = backend.lstm_step(problem.x[:, 0], problem.kernel, problem.recurrent_kernel,
                                     problem.bias, h_view, problem.c0, activation=TANH,
                                     recurrent_activation=SIGMOID)
    one_step = make_problem(batch=batch, timesteps=2, features=3, units=4, seed=7)
    one_step.x = np.ascontiguousarray(one_step.x[:, :1])
    expected_h, expected_c = reference_step(one_step, "tanh", "sigmoid")
    np.testing.assert_allclose(new_h, expected_h, rtol=0, atol=1e-10)
    np.testing.assert_allclose(new_c, expected_c, rtol=0, atol=1e-10)


def test_lstm_step_repeated_equals_the_sequence_forward():
    problem = make_problem(batch=2, timesteps=6, features=3, units=5, seed=4)
    problem = problem.astype(np.float32)
    backend = numlstm.get_backend("numba")
    h, c = problem.h0.copy(), problem.c0.copy()
    for t in range(6):
        backend.lstm_step(np.ascontiguousarray(problem.x[:, t]), problem.kernel,
                          problem.recurrent_kernel, problem.bias, h, c, activation=TANH,
                          recurrent_activation=SIGMOID, out_h=h, out_c=c)
    full = problem.forward("numpy", return_cache=False)
    np.testing.assert_allclose(h, full.h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c, full.c, rtol=1e-5, atol=1e-5)


@njit(cache=True, error_model="numpy")
def _apply(code, values, out):
    for k in range(values.shape[0]):
        out[k] = gate_math.fast_tanh(values[k]) if code == TANH else \
            gate_math.fast_sigmoid(values[k])


GRID = np.concatenate([np.linspace(-30, 30, 600_001), np.geomspace(1e-30, 5, 20_001),
                       -np.geomspace(1e-30, 5, 20_001),
                       [0.0, 1e4, -1e4, 87.0, -87.0, 88.5, -88.5, 200.0, -200.0, 1e30, -1e30,
                        np.inf, -np.inf]])


def test_float32_tanh_is_accurate_to_float32_rounding():
    x = GRID.astype(np.float32)
    out = np.empty_like(x)
    _apply(TANH, x, out)
    exact = np.tanh(x.astype(np.float64))
    assert np.isfinite(out).all()
    assert np.abs(out - exact).max() <= 2e-7
    tiny = np.abs(exact) > 0
    assert (np.abs(out - exact)[tiny] / np.abs(exact[tiny])).max() <= 3e-7   # relative, near 0
    assert np.abs(out).max() <= 1.0


def test_float32_sigmoid_keeps_relative_accuracy_for_very_negative_inputs():
    x = GRID.astype(np.float32)
    out = np.empty_like(x)
    _apply(SIGMOID, x, out)
    with np.errstate(over="ignore"):
        exact = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    assert np.isfinite(out).all()
    assert np.abs(out - exact).max() <= 2e-7
    normal = exact > 2e-38          # float32's normal range; below it, results flush towards 0
    assert (np.abs(out - exact)[normal] / exact[normal]).max() <= 5e-7
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_float64_gate_math_is_the_accurate_libm_math():
    x = GRID[np.isfinite(GRID)]
    out = np.empty_like(x)
    _apply(TANH, x, out)
    np.testing.assert_array_equal(out, np.array([math.tanh(v) for v in x]))
    _apply(SIGMOID, x, out)
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(out, 1.0 / (1.0 + np.exp(-x)), rtol=1e-15, atol=0)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="checks x86 vector instructions")
def test_float32_gate_loop_compiles_to_packed_vector_code():
    """The default gate loop (sigmoid gates, tanh) must vectorise: packed single-precision
    FMAs on ymm/zmm registers, not one scalar libm call per element. (The function's other
    branch, for the other activations, does call libm.)"""
    loop = njit(error_model="numpy", fastmath={"contract"})(
        numba_kernels._gates_forward_row.py_func)
    z = np.zeros(4 * 64, np.float32)
    state = np.zeros(64, np.float32)
    loop(z, state, state.copy(), 64, TANH, SIGMOID)
    asm = loop.inspect_asm(loop.signatures[0])
    packed = re.findall(r"\bv(?:fmadd|fnmadd|fmsub)\w*ps\s+[^\n]*%[yz]mm", asm)
    assert len(packed) >= 10, "no packed vector FMAs in the float32 gate loop"



@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("activations", [("tanh", "sigmoid"), ("relu", "hard_sigmoid")])
@pytest.mark.parametrize("timesteps", [7, 30], ids=["loop-projection", "blas-projection"])
def test_small_batch_inference_path_matches_the_reference(dtype, batch, reverse, activations,
                                                          timesteps):
    # One or two rows without a mask, dropout or cache take numba_kernels.forward_small; from
    # _SMALL_BLAS_MIN_STEPS timesteps on it projects the inputs with a GEMM.
    assert 7 < numba_backend._SMALL_BLAS_MIN_STEPS <= 30
    problem = make_problem(batch=batch, timesteps=timesteps, features=5, units=6,
                           seed=11 + batch).astype(dtype)
    results = {}
    for name in ("numpy", "numba"):
        results[name] = numlstm.functional.lstm_forward(
            problem.x, problem.kernel, problem.recurrent_kernel, problem.bias, h0=problem.h0,
            c0=problem.c0, reverse=reverse, activation=activations[0],
            recurrent_activation=activations[1], backend=name)
    tolerance = dict(rtol=0, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for field in ("outputs", "h", "c"):
        got = getattr(results["numba"], field)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, getattr(results["numpy"], field), **tolerance)
