"""The Keras-style LSTM layer: defaults, weights, shapes, options and mask semantics."""

import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numlstm
from numlstm.functional import lstm_forward

from conftest import ALL_BACKENDS, backend_param

BACKENDS = [backend_param(name) for name in ALL_BACKENDS]


def test_defaults_are_keras_defaults():
    defaults = {name: p.default for name, p in
                inspect.signature(numlstm.LSTM.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    assert defaults == {
        "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
        "kernel_initializer": "glorot_uniform", "recurrent_initializer": "orthogonal",
        "bias_initializer": "zeros", "unit_forget_bias": True, "return_sequences": False,
        "return_state": False, "go_backwards": False, "zero_output_for_mask": False,
        "seed": None, "backend": None, "dtype": "float32", "name": None, "dropout": 0.0,
        "recurrent_dropout": 0.0, "stateful": False, "batch_size": None, "trainable": True,
        "kernel_regularizer": None, "recurrent_regularizer": None, "bias_regularizer": None,
        "kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None,
        "unroll": False, "implementation": 2, "use_cudnn": "auto"}


def test_lazy_build_weights_and_param_count():
    layer = numlstm.LSTM(6, seed=1)
    assert not layer.built and layer.get_weights() == []
    layer(np.zeros((2, 3, 5), np.float32))
    kernel, recurrent, bias = layer.get_weights()
    assert kernel.shape == (5, 24) and recurrent.shape == (6, 24) and bias.shape == (24,)
    assert all(w.dtype == np.float32 for w in (kernel, recurrent, bias))
    assert layer.count_params() == 4 * 6 * (5 + 6 + 1) == 288
    # unit_forget_bias: ones on the forget gate's slice, zeros elsewhere.
    np.testing.assert_array_equal(bias, np.r_[np.zeros(6), np.ones(6), np.zeros(12)])
    # glorot_uniform bound for (5, 24) and an orthogonal recurrent kernel (orthonormal rows).
    assert np.abs(kernel).max() <= np.sqrt(6 / (5 + 24))
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(6), atol=1e-5)


def test_build_explicitly_and_without_bias():
    layer = numlstm.LSTM(4, use_bias=False, dtype="float64")
    layer.build((None, 7, 3))
    assert layer.count_params() == 4 * 4 * (3 + 4)
    assert [w.shape for w in layer.get_weights()] == [(3, 16), (4, 16)]
    assert layer(np.ones((1, 2, 3))).dtype == np.float64


def test_same_seed_same_weights_and_different_seed_different_weights():
    def weights(seed):
        layer = numlstm.LSTM(5, seed=seed)
        layer.build((None, None, 3))
        return layer.get_weights()
    for a, b in zip(weights(42), weights(42)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights(42)[0], weights(43)[0])


def test_set_weights_round_trip_and_builds_an_unbuilt_layer():
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 20)), rng.normal(size=(5, 20)), rng.normal(size=20)]
    layer = numlstm.LSTM(5)
    layer.set_weights(weights)
    assert layer.built and layer.input_features == 3
    for got, given_ in zip(layer.get_weights(), weights):
        np.testing.assert_array_equal(got, given_.astype(np.float32))
    layer.get_weights()[0][0, 0] = 99.0          # get_weights returns copies
    assert layer.get_weights()[0][0, 0] != 99.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_shapes(backend):
    x = np.random.default_rng(0).normal(size=(4, 7, 3)).astype(np.float32)
    assert numlstm.LSTM(5, backend=backend)(x).shape == (4, 5)
    assert numlstm.LSTM(5, return_sequences=True, backend=backend)(x).shape == (4, 7, 5)
    out, h, c = numlstm.LSTM(5, return_state=True, backend=backend)(x)
    assert out.shape == h.shape == c.shape == (4, 5)
    np.testing.assert_array_equal(out, h)
    seq, h, c = numlstm.LSTM(5, return_sequences=True, return_state=True, backend=backend)(x)
    assert seq.shape == (4, 7, 5) and h.shape == (4, 5)
    np.testing.assert_array_equal(seq[:, -1], h)
    assert numlstm.LSTM(5, backend=backend)(x[:0]).shape == (0, 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_matches_functional_api(backend):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 6, 4))
    h0, c0 = rng.normal(size=(2, 3, 5))
    mask = rng.random((3, 6)) > 0.3
    layer = numlstm.LSTM(5, return_sequences=True, return_state=True, seed=0, dtype="float64",
                         activation="relu", recurrent_activation="hard_sigmoid",
                         backend=backend)
    seq, h, c = layer(x, mask=mask, initial_state=[h0, c0])
    ref = lstm_forward(x, *layer.get_weights(), h0=h0, c0=c0, mask=mask, activation="relu",
                       recurrent_activation="hard_sigmoid", backend="numpy")
    np.testing.assert_allclose(seq, ref.outputs, atol=1e-12)
    np.testing.assert_allclose(h, ref.h, atol=1e-12)
    np.testing.assert_allclose(c, ref.c, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_go_backwards_is_keras_semantics(backend):
    """go_backwards == running on the time-reversed input, with the sequence returned in
    processing order (Keras's behaviour), the mask reversed along with it."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    mask = rng.random((3, 5)) > 0.3
    backwards = numlstm.LSTM(4, go_backwards=True, return_sequences=True, return_state=True,
                             seed=9, backend=backend)
    forwards = numlstm.LSTM(4, return_sequences=True, return_state=True, seed=9,
                            backend=backend)
    for got, expected in zip(backwards(x, mask=mask),
                             forwards(x[:, ::-1], mask=mask[:, ::-1])):
        np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_output_semantics(backend):
    """At masked steps the output is the carried hidden state (the previous step's output, the
    initial h before the first processed step) by default, zeros with
    zero_output_for_mask=True; final states are those after the last unmasked step."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 5, 3))
    h0, c0 = rng.normal(size=(2, 2, 3))
    mask = np.array([[False, True, False, True, False],
                     [False, False, False, False, False]])
    kwargs = dict(return_sequences=True, return_state=True, seed=1, dtype="float64",
                  backend=backend)
    seq, h, c = numlstm.LSTM(3, **kwargs)(x, mask=mask, initial_state=[h0, c0])
    np.testing.assert_array_equal(seq[0, 0], h0[0])       # before any processed step: h0
    assert not np.allclose(seq[0, 1], h0[0])
    np.testing.assert_array_equal(seq[0, 2], seq[0, 1])
    np.testing.assert_array_equal(seq[0, 4], seq[0, 3])
    np.testing.assert_array_equal(h[0], seq[0, 3])
    np.testing.assert_array_equal(seq[1], np.broadcast_to(h0[1], (5, 3)))  # fully masked row
    np.testing.assert_array_equal(h[1], h0[1])
    np.testing.assert_array_equal(c[1], c0[1])
    zeros_seq, zeros_h, _ = numlstm.LSTM(3, zero_output_for_mask=True, **kwargs)(
        x, mask=mask, initial_state=[h0, c0])
    np.testing.assert_array_equal(zeros_seq[0, [0, 2, 4]], 0)
    np.testing.assert_array_equal(zeros_seq[0, [1, 3]], seq[0, [1, 3]])
    np.testing.assert_array_equal(zeros_seq[1], 0)
    np.testing.assert_array_equal(zeros_h, h)             # states do not depend on it


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30, deadline=None, derandomize=True)
@given(mask_bits=st.lists(st.booleans(), min_size=6, max_size=6), go_backwards=st.booleans())
def test_any_mask_equals_dropping_the_masked_steps(backend, mask_bits, go_backwards):
    """A masked step must act as if it were not there: the final states of a masked sequence
    equal those of the sequence with the masked steps removed (no sorting, no padding rules)."""
    rng = np.random.default_rng(sum(b << i for i, b in enumerate(mask_bits)))
    x = rng.normal(size=(1, 6, 3))
    h0, c0 = rng.normal(size=(2, 1, 4))
    mask = np.array([mask_bits])
    layer = numlstm.LSTM(4, return_state=True, seed=2, dtype="float64",
                         go_backwards=go_backwards, backend=backend)
    _, h, c = layer(x, mask=mask, initial_state=[h0, c0])
    kept = x[:, mask[0]]
    if kept.shape[1] == 0:
        expected_h, expected_c = h0, c0
    else:
        _, expected_h, expected_c = layer(kept, initial_state=[h0, c0])
    np.testing.assert_allclose(h, expected_h, atol=1e-12)
    np.testing.assert_allclose(c, expected_c, atol=1e-12)


def test_float64_input_is_cast_to_layer_dtype_and_results_are_plain_arrays():
    layer = numlstm.LSTM(3, return_sequences=True, go_backwards=True)
    out = layer(np.ones((2, 4, 2)))
    assert type(out) is np.ndarray and out.dtype == np.float32
    assert out.flags.c_contiguous


def test_keras_2_and_keras_3_hard_sigmoid_differ_as_defined():
    z = np.array([[[-4.0], [-1.0], [0.0], [2.0], [4.0]]])
    identity = np.array([[1.0, 1.0, 1.0, 1.0]])
    for name, expected in (("hard_sigmoid", np.clip(z / 6 + 0.5, 0, 1)),
                           ("hard_sigmoid_keras3", np.clip(z / 6 + 0.5, 0, 1)),
                           ("hard_sigmoid_keras2", np.clip(0.2 * z + 0.5, 0, 1))):
        # With a linear activation and zero state, c_1 = i·g = hs(z)·z and h = hs(z)·c_1,
        # checked step by step from a fresh state via a fully unmasked single step each.
        for t in range(z.shape[1]):
            result = lstm_forward(z[:, t:t + 1], identity, np.zeros((1, 4)), activation="linear",
                                  recurrent_activation=name, backend="numpy")
            hs = expected[0, t, 0]
            np.testing.assert_allclose(result.c, [[hs * z[0, t, 0]]], atol=1e-15)
            np.testing.assert_allclose(result.h, [[hs * hs * z[0, t, 0]]], atol=1e-15)


def test_repr_and_config():
    layer = numlstm.LSTM(3, recurrent_activation="hard_sigmoid_keras2", name="encoder")
    assert "units=3" in repr(layer)
    config = layer.get_config()
    assert config["recurrent_activation"] == "hard_sigmoid_keras2"
    assert config["name"] == "encoder" and config["dtype"] == "float32"
    rebuilt = numlstm.LSTM(**config)
    assert rebuilt.get_config() == config


def test_assigning_weights_is_checked_and_cast():
    layer = numlstm.LSTM(5, seed=0)
    x = np.ones((2, 3, 4), np.float32)
    layer(x)
    layer.kernel = np.zeros((4, 20))                       # float64 in, float32 kept
    assert layer.kernel.dtype == np.float32 and not layer.kernel.any()
    with pytest.raises(ValueError, match=r"weights \(kernel\) must have shape \(features, "
                                         r"4\*units\) = \(4, 20\); got shape \(4, 16\)"):
        layer.kernel = np.zeros((4, 16))
    with pytest.raises(TypeError, match=r"weights \(recurrent_kernel\) must be an array of "
                                        r"floats"):
        layer.recurrent_kernel = np.zeros((5, 20), int)
    assert layer(x).dtype == np.float32
    with pytest.raises(ValueError, match="has use_bias=False"):
        numlstm.LSTM(2, use_bias=False, seed=0).bias = np.zeros(8)
    with pytest.raises(ValueError, match="is not built yet"):
        numlstm.LSTM(2).kernel = np.zeros((3, 8))


def test_unit_forget_bias_sets_ones_whatever_the_bias_initializer():
    """Keras: bias_initializer for the i, c and o slices, ones for the forget slice."""
    layer = numlstm.LSTM(2, bias_initializer="ones")
    layer.build((None, None, 3))
    np.testing.assert_array_equal(layer.bias, np.ones(8))
    layer = numlstm.LSTM(2, bias_initializer="random_uniform", seed=3)
    layer.build((None, None, 3))
    np.testing.assert_array_equal(layer.bias[2:4], [1, 1])
    assert np.all(np.abs(layer.bias[[0, 1, 4, 5, 6, 7]]) <= 0.05)
    assert np.all(layer.bias[[0, 1, 4, 5, 6, 7]] != 0)
    no_forget = numlstm.LSTM(2, bias_initializer="ones", unit_forget_bias=False)
    no_forget.build((None, None, 3))
    np.testing.assert_array_equal(no_forget.bias, np.ones(8))


def test_dtype_none_is_float32_and_big_endian_input_is_accepted():
    assert numlstm.LSTM(2, dtype=None).dtype == np.float32
    assert numlstm.LSTM(2, dtype=">f8").dtype == np.float64
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    layer = numlstm.LSTM(3, seed=0, dtype="float64")
    np.testing.assert_array_equal(layer(x.astype(">f8")), layer(x))


def test_no_timesteps_returns_the_initial_state():
    layer = numlstm.LSTM(3, return_state=True, seed=0, dtype="float64")
    h0, c0 = np.full((2, 2, 3), 0.5)
    out, h, c = layer(np.zeros((2, 0, 4)), initial_state=[h0, c0])
    np.testing.assert_array_equal(out, h0)
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(c, c0)
    seq = numlstm.LSTM(3, return_sequences=True, seed=0)(np.zeros((2, 0, 4), np.float32))
    assert seq.shape == (2, 0, 3)
