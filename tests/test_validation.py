"""Bad input gets a clear ValueError/TypeError naming the argument, the expected and the
received value, on every backend, before any kernel runs (so never a Numba traceback)."""

import numpy as np
import pytest

import numlstm
from numlstm.functional import lstm_backward, lstm_forward

from conftest import ALL_BACKENDS, backend_param

BACKENDS = [backend_param(name) for name in ALL_BACKENDS]


@pytest.fixture
def built_layer():
    layer = numlstm.LSTM(8, seed=0)
    layer.build((None, None, 4))
    return layer


X = np.zeros((2, 5, 4), np.float32)


# -- constructor arguments ---------------------------------------------------------------------

@pytest.mark.parametrize("units, error, message", [
    (0, ValueError, "units must be a positive integer; got units=0"),
    (-1, ValueError, "units must be a positive integer; got units=-1"),
    (3.0, TypeError, "units must be a positive integer; got float 3.0"),
    ("8", TypeError, "units must be a positive integer; got str '8'"),
    (True, TypeError, "units must be a positive integer; got bool True"),
])
def test_bad_units(units, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        numlstm.LSTM(units)


def test_unknown_activation_lists_the_choices():
    with pytest.raises(ValueError, match=r"activation must be one of \['tanh', .*\]; "
                                         r"got 'gelus'"):
        numlstm.LSTM(4, activation="gelus")
    with pytest.raises(ValueError, match=r"recurrent_activation must be one of .*; got 'swsh'"):
        numlstm.LSTM(4, recurrent_activation="swsh")
    # Keras activations the LSTM kernels cannot take say why, and where they work
    with pytest.raises(ValueError, match=r"recurrent_activation='swish' is not supported by "
                                         r"LSTM: .*Dense accepts it"):
        numlstm.LSTM(4, recurrent_activation="swish")
    with pytest.raises(TypeError, match="activation must be a string"):
        numlstm.LSTM(4, activation=np.tanh)


def test_bad_flags_dtype_backend_and_initializer():
    with pytest.raises(TypeError, match="return_sequences must be True or False; got str"):
        numlstm.LSTM(4, return_sequences="yes")
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'; got 'int32'"):
        numlstm.LSTM(4, dtype="int32")
    with pytest.raises(ValueError, match=r"backend must be one of \['numpy', 'numba', 'cuda', "
                                         r"'cupy'\]; got 'torch'"):
        numlstm.LSTM(4, backend="torch")
    with pytest.raises(ValueError, match="kernel_initializer must be one of .*; got 'he_normal2'"):
        numlstm.LSTM(4, kernel_initializer="he_normal2")
    with pytest.raises(TypeError, match="seed must be a non-negative int or None; got float 1.5"):
        numlstm.LSTM(4, seed=1.5)
    with pytest.raises(ValueError, match="seed must be a non-negative int or None; got seed=-1"):
        numlstm.LSTM(4, seed=-1)


# -- call arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_input_must_be_3d(backend):
    layer = numlstm.LSTM(8, backend=backend)
    with pytest.raises(ValueError, match=r"LSTM input must be 3-D \(batch, timesteps, "
                                         r"features\); got shape \(32, 28\)"):
        layer(np.zeros((32, 28), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4, 5\)"):
        layer(np.zeros((2, 3, 4, 5), np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_feature_count_must_match_the_built_layer(backend, built_layer):
    built_layer.backend = backend
    with pytest.raises(ValueError, match=r"LSTM input must have 4 features \(the layer was "
                                         r"built for shape \(batch, timesteps, 4\)\); got "
                                         r"shape \(2, 5, 3\)"):
        built_layer(np.zeros((2, 5, 3), np.float32))


@pytest.mark.parametrize("data, kind", [
    (np.zeros((2, 5, 4), np.int64), "integer data of dtype int64"),
    (np.zeros((2, 5, 4), np.uint8), "unsigned integer data of dtype uint8"),
    (np.zeros((2, 5, 4), bool), "boolean data of dtype bool"),
    (np.zeros((2, 5, 4), np.complex64), "complex data of dtype complex64"),
    (np.empty((2, 5, 4), object), "object data of dtype object"),
    ([[["a"]]], "string data"),
])
def test_non_float_input_is_refused(built_layer, data, kind):
    with pytest.raises(TypeError, match=r"LSTM input must be an array of floats \(float32 or "
                                        rf"float64\); got {kind}"):
        built_layer(data)


def test_ragged_input_is_refused(built_layer):
    with pytest.raises(TypeError, match="LSTM input must be an array of floats; could not "
                                        "convert list"):
        built_layer([[[1.0, 2.0]], [[1.0]]])


def test_nan_input_is_refused_not_propagated(built_layer):
    x = X.copy()
    x[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"LSTM input must contain only finite values; got "
                                         r"nan at index \(1, 2, 3\)"):
        built_layer(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_masks(backend, built_layer):
    built_layer.backend = backend
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, timesteps\) = "
                                         r"\(2, 5\); got shape \(2, 4\)"):
        built_layer(X, mask=np.ones((2, 4), bool))
    with pytest.raises(TypeError, match=r"mask must be a boolean array \(or integer 0/1\) of "
                                        r"shape \(batch, timesteps\) = \(2, 5\); got dtype "
                                        r"float32"):
        built_layer(X, mask=np.ones((2, 5), np.float32))
    counts = np.ones((2, 5), np.int64)
    counts[1, 3] = 2
    with pytest.raises(ValueError, match=r"mask must hold only 0 and 1 when it is an integer "
                                         r"array .*; got 2 at index \(1, 3\)"):
        built_layer(X, mask=counts)
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, timesteps\)"):
        built_layer(X, mask=np.ones((2, 4), np.int8))


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_0_1_masks_act_like_boolean_masks(backend):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = rng.random((3, 5)) > 0.3
    mask[:, 0] = True
    kernel = rng.normal(size=(4, 12)).astype(np.float32)
    recurrent = rng.normal(size=(3, 12)).astype(np.float32)
    expected = lstm_forward(x, kernel, recurrent, mask=mask, backend=backend)
    for dtype in (np.int64, np.int32, np.uint8):
        got = lstm_forward(x, kernel, recurrent, mask=mask.astype(dtype), backend=backend)
        for name in ("outputs", "h", "c"):
            np.testing.assert_array_equal(np.asarray(getattr(got, name)),
                                          np.asarray(getattr(expected, name)))
    layer = numlstm.LSTM(3, return_sequences=True, seed=0, backend=backend)
    np.testing.assert_array_equal(np.asarray(layer(x, mask=mask.astype(np.int64))),
                                  np.asarray(layer(x, mask=mask)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_initial_states(backend, built_layer):
    built_layer.backend = backend
    h = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError, match=r"initial_state must be a list \[h0, c0\] of 2 arrays "
                                         r"of shape \(batch, units\) = \(2, 8\); got 1 array"):
        built_layer(X, initial_state=[h])
    with pytest.raises(ValueError, match=r"initial_state\[1\] \(c0\) must have shape "
                                         r"\(batch, units\) = \(2, 8\); got shape \(2, 7\)"):
        built_layer(X, initial_state=[h, np.zeros((2, 7), np.float32)])
    with pytest.raises(TypeError, match=r"initial_state must be a list \[h0, c0\]"):
        built_layer(X, initial_state=h)


def test_bad_weights_in_set_weights(built_layer):
    kernel, recurrent, bias = built_layer.get_weights()
    with pytest.raises(ValueError, match=r"weights \(recurrent_kernel\) must have shape "
                                         r"\(units, 4\*units\) = \(8, 32\); got shape \(8, 31\)"):
        built_layer.set_weights([kernel, recurrent[:, :31], bias])
    with pytest.raises(ValueError, match=r"weights must be a list of 3 arrays \[kernel \(4, "
                                         r"32\), recurrent_kernel \(8, 32\), bias \(32,\)\]; "
                                         r"got 2 array\(s\)"):
        built_layer.set_weights([kernel, recurrent])
    with pytest.raises(ValueError, match=r"weights \(bias\) must have shape \(4\*units,\) = "
                                         r"\(32,\); got shape \(4, 8\)"):
        built_layer.set_weights([kernel, recurrent, bias.reshape(4, 8)])
    with pytest.raises(TypeError, match=r"weights \(kernel\) must be an array of floats"):
        built_layer.set_weights([kernel.astype(int), recurrent, bias])
    # Nothing was changed by the failed calls.
    np.testing.assert_array_equal(built_layer.get_weights()[1], recurrent)


def test_count_params_needs_a_built_layer():
    with pytest.raises(ValueError, match="is not built yet"):
        numlstm.LSTM(3).count_params()


# -- functional API ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_functional_shape_errors(backend):
    x = np.zeros((2, 3, 4))
    kernel, recurrent, bias = np.zeros((4, 20)), np.zeros((5, 20)), np.zeros(20)
    with pytest.raises(ValueError, match=r"kernel must have shape \(features, 4\*units\) = "
                                         r"\(4, 20\); got shape \(3, 20\)"):
        lstm_forward(x, kernel[:3], recurrent, bias, backend=backend)
    with pytest.raises(ValueError, match=r"recurrent_kernel must have shape \(units, 4\*units\)"
                                         r" with units >= 1; got shape \(5, 16\)"):
        lstm_forward(x, kernel, recurrent[:, :16], bias, backend=backend)
    with pytest.raises(ValueError, match=r"h0 must have shape \(batch, units\) = \(2, 5\); got "
                                         r"shape \(5,\)"):
        lstm_forward(x, kernel, recurrent, bias, h0=np.zeros(5), backend=backend)
    with pytest.raises(ValueError, match=r"recurrent_dropout_mask must have shape \(batch, "
                                         r"units\) = \(2, 5\)"):
        lstm_forward(x, kernel, recurrent, bias, recurrent_dropout_mask=np.ones((1, 5)),
                     backend=backend)
    with pytest.raises(TypeError, match="reverse must be True or False; got int 1"):
        lstm_forward(x, kernel, recurrent, bias, reverse=1, backend=backend)
    with pytest.raises(TypeError, match=r"x must be float32 or float64; got dtype float16"):
        lstm_forward(x.astype(np.float16), kernel, recurrent, bias, backend=backend)


def test_functional_backward_errors():
    x = np.zeros((2, 3, 4))
    kernel, recurrent = np.zeros((4, 20)), np.zeros((5, 20))
    no_cache = lstm_forward(x, kernel, recurrent)
    with pytest.raises(TypeError, match=r"cache must be the .cache of lstm_forward\(\.\.\., "
                                        r"return_cache=True\); got NoneType"):
        lstm_backward(no_cache.cache)
    cached = lstm_forward(x, kernel, recurrent, return_cache=True)
    with pytest.raises(ValueError, match=r"grad_outputs must have shape \(batch, timesteps, "
                                         r"units\) = \(2, 3, 5\); got shape \(2, 5\)"):
        lstm_backward(cached.cache, grad_outputs=np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"grad_c must contain only finite values"):
        lstm_backward(cached.cache, grad_c=np.full((2, 5), np.inf))


def test_ragged_mask_and_numpy_scalars_are_reported_by_name(built_layer):
    with pytest.raises(TypeError, match=r"mask must be a boolean array of shape \(batch, "
                                        r"timesteps\) = \(2, 5\); could not convert list"):
        built_layer(X, mask=[[True] * 5, [True]])
    with pytest.raises(TypeError, match="units must be a positive integer; got bool True"):
        numlstm.LSTM(np.bool_(True))
    assert numlstm.LSTM(np.int64(3)).units == 3


def test_backward_arguments_are_keyword_only_and_backend_must_match():
    x = np.zeros((2, 3, 4))
    cached = lstm_forward(x, np.zeros((4, 20)), np.zeros((5, 20)), return_cache=True,
                          backend="numpy")
    with pytest.raises(TypeError):
        lstm_backward(cached.cache, np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="backend must be the one that ran the forward, "
                                         "'numpy'; got backend='numba'"):
        lstm_backward(cached.cache, backend="numba")
    assert lstm_backward(cached.cache, backend="numpy").kernel.shape == (4, 20)
