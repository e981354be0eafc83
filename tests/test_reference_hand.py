"""The reference against numbers worked out by hand for a tiny constant-initialised LSTM.

One input feature, one unit, every weight 0.5, bias 0, inputs x = [1, 2], zero initial state.
Then every gate sees the same pre-activation z_t = 0.5 * x_t + 0.5 * h_{t-1}:

    step 1: z = 0.5                         σ(0.5) = 0.6224593312, tanh(0.5) = 0.4621171573
            c1 = σ(0.5)·tanh(0.5)          = 0.2876491366
            h1 = σ(0.5)·tanh(c1)           = 0.6224593312 · 0.2799696461 = 0.1742697187
    step 2: z = 0.5·2 + 0.5·h1 = 1.0871348593
            σ(z) = 0.7478418131, tanh(z) = 0.7958300200
            c2 = σ(z)·c1 + σ(z)·tanh(z)    = 0.7478418131 · (0.2876491366 + 0.7958300200)
                                           = 0.8102710170
            h2 = σ(z)·tanh(c2)             = 0.7478418131 · 0.6697397387 = 0.5008593805
"""

import math

import numpy as np
import pytest

from numlstm.functional import lstm_forward

from conftest import backend_param, ALL_BACKENDS


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def test_hand_arithmetic_is_consistent():
    """The literals in the module docstring, recomputed with the math module."""
    c1 = sigmoid(0.5) * math.tanh(0.5)
    h1 = sigmoid(0.5) * math.tanh(c1)
    z2 = 0.5 * 2 + 0.5 * h1
    c2 = sigmoid(z2) * c1 + sigmoid(z2) * math.tanh(z2)
    h2 = sigmoid(z2) * math.tanh(c2)
    assert [c1, h1, z2, c2, h2] == pytest.approx(
        [0.2876491366, 0.1742697187, 1.0871348593, 0.8102710170, 0.5008593805], abs=1e-9)


@pytest.mark.parametrize("backend", [backend_param(name) for name in ALL_BACKENDS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_constant_lstm_matches_hand_numbers(backend, dtype):
    x = np.array([[[1.0], [2.0]]], dtype)
    result = lstm_forward(x, np.full((1, 4), 0.5, dtype), np.full((1, 4), 0.5, dtype),
                          np.zeros(4, dtype), backend=backend)
    tol = 1e-9 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(result.outputs[0, :, 0], [0.1742697187, 0.5008593805], atol=tol)
    np.testing.assert_allclose(result.h, [[0.5008593805]], atol=tol)
    np.testing.assert_allclose(result.c, [[0.8102710170]], atol=tol)
    assert result.outputs.dtype == dtype


@pytest.mark.parametrize("backend", [backend_param(name) for name in ALL_BACKENDS])
def test_hand_numbers_masked_and_reversed(backend):
    """Masking step 1 leaves only step 2, seen from a zero state; reversing the 2-step input
    processes x=2 first. Both worked by hand from the same constant LSTM."""
    x = np.array([[[1.0], [2.0]]])
    w = np.full((1, 4), 0.5)
    # Only x=2 from zero state: z = 1, c = σ(1)·tanh(1), h = σ(1)·tanh(c).
    c_only = sigmoid(1.0) * math.tanh(1.0)           # 0.5695000...
    h_only = sigmoid(1.0) * math.tanh(c_only)
    masked = lstm_forward(x, w, w, np.zeros(4), mask=np.array([[False, True]]),
                          backend=backend)
    # Step 1 is masked before any processed step: its output is the carried h0 = 0.
    np.testing.assert_allclose(masked.outputs[0, :, 0], [0.0, h_only], atol=1e-12)
    np.testing.assert_allclose(masked.c, [[c_only]], atol=1e-12)
    # Reverse: x=2 first (same as above), then x=1 with h_prev = h_only.
    z = 0.5 * 1 + 0.5 * h_only
    c_rev = sigmoid(z) * c_only + sigmoid(z) * math.tanh(z)
    h_rev = sigmoid(z) * math.tanh(c_rev)
    reversed_ = lstm_forward(x, w, w, np.zeros(4), reverse=True, backend=backend)
    # Outputs stay aligned with the input positions.
    np.testing.assert_allclose(reversed_.outputs[0, :, 0], [h_rev, h_only], atol=1e-12)
    np.testing.assert_allclose(reversed_.h, [[h_rev]], atol=1e-12)
