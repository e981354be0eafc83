"""Keras 3's layer constructor arguments (input_shape, input_dim, unroll, implementation,
input_length, unknown keywords), the extra LSTM activations and every Dense activation against
Keras 3 (``tests/fixtures/keras_regularizers/activations.npz``, written by
``make_keras_regularizer_fixtures.py``; Dense gradients against finite differences), and the
initializers (exact values, and distribution statistics on seeded draws)."""

import warnings
from pathlib import Path

import numpy as np
import pytest

import numlstm
from numlstm import initializers as I
from numlstm.layers import dense_activations

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "keras_regularizers" / \
    "activations.npz"


@pytest.fixture(scope="module")
def keras_numbers():
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


# -- constructor arguments ----------------------------------------------------------------------
def test_input_shape_on_the_first_layer_defines_the_sequential_input():
    model = numlstm.Sequential([numlstm.LSTM(8, input_shape=(20, 3)), numlstm.Dense(2)])
    assert model.built and model.input_shape == (None, 20, 3)
    assert model.predict(np.zeros((2, 20, 3), np.float32)).shape == (2, 2)
    dense = numlstm.Sequential([numlstm.Dense(4, input_dim=6, activation="relu")])
    assert dense.input_shape == (None, 6)
    tokens = numlstm.Sequential([numlstm.Embedding(50, 4, input_length=7, input_shape=(7,)),
                                 numlstm.LSTM(3)])
    assert tokens.input_shape == (None, 7)
    assert tokens.predict(np.ones((2, 7), np.int64)).shape == (2, 3)


def test_input_batch_shape_and_input_shape_in_a_functional_model():
    inputs = numlstm.Input(batch_shape=(4, 5, 3))
    assert inputs.shape == (4, 5, 3)
    model = numlstm.Sequential([inputs, numlstm.LSTM(2, stateful=True, seed=0)])
    assert model.predict(np.zeros((4, 5, 3), np.float32), batch_size=4).shape == (4, 2)
    # elsewhere than first in a Sequential, input_shape is ignored, as in Keras
    source = numlstm.Input((7, 3))
    out = numlstm.LSTM(2, input_shape=(99, 99), seed=0)(source)
    assert numlstm.Model(source, out).output_shape == (None, 2)


def test_input_shape_is_kept_in_a_saved_sequential(tmp_path):
    model = numlstm.Sequential([numlstm.LSTM(2, input_shape=(None, 3), seed=0)])
    model.save(tmp_path / "m.npz")
    assert numlstm.load_model(tmp_path / "m.npz").input_shape == (None, None, 3)


def test_a_bad_first_layer_shape_leaves_the_model_as_it_was():
    model = numlstm.Sequential()
    with pytest.raises(ValueError):
        model.add(numlstm.LSTM(2, input_dim=3))          # (3,): no timesteps axis
    assert not model.layers and model._input is None


@pytest.mark.parametrize("make, argument", [
    (lambda: numlstm.LSTM(2, batch_input_shape=(4, 5, 3)), "batch_input_shape"),
    (lambda: numlstm.Dense(2, weights=[np.zeros((3, 2))]), "weights"),
    (lambda: numlstm.LSTM(2, time_major=True), "time_major"),
    (lambda: numlstm.Dense(2, lora_rank=4), "lora_rank"),
    (lambda: numlstm.LSTM(2, recurent_dropout=0.1), "recurent_dropout"),
    (lambda: numlstm.Dropout(0.1, nonsense=1), "nonsense"),
    (lambda: numlstm.Add(axis=1), "axis"),
    (lambda: numlstm.LSTM(2, input_shape="20x80"), "input_shape"),
    (lambda: numlstm.LSTM(2, implementation=3), "implementation"),
])
def test_unsupported_arguments_raise_a_value_error_naming_them(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


def test_keras_arguments_that_change_nothing_are_accepted():
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    plain = numlstm.LSTM(3, seed=5)(x)
    for options in (dict(unroll=True), dict(implementation=1), dict(use_cudnn=False)):
        np.testing.assert_array_equal(numlstm.LSTM(3, seed=5, **options)(x), plain)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        numlstm.Embedding(10, 3, input_length=4)           # Keras 3 ignores it too
    assert numlstm.LSTM(3, unroll=True).get_config()["unroll"] is True
    assert numlstm.LSTM.from_config(numlstm.LSTM(3, unroll=True).get_config()).unroll


def test_a_layer_given_a_name_keeps_it_with_keras_arguments():
    layer = numlstm.LSTM(2, name="encoder", input_shape=(3, 2))
    assert layer._name_given and layer.name == "encoder"


# -- activations --------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_lstm_activations_match_keras(keras_numbers, backend):
    x = keras_numbers["lstm/x"]
    weights = [keras_numbers[f"lstm/weights/{i}"] for i in range(3)]
    pairs = [key.split("/")[1:] for key in keras_numbers
             if key.startswith("lstm/") and key.count("/") == 2 and "weights" not in key]
    assert len(pairs) >= 17
    for act, rec in pairs:
        layer = numlstm.LSTM(3, activation=act, recurrent_activation=rec,
                             return_sequences=True, backend=backend)
        layer.build((None, 5, 3))
        layer.set_weights(weights)
        expected = keras_numbers[f"lstm/{act}/{rec}"]
        assert np.isfinite(expected).all(), (act, rec)
        inputs = keras_numbers["lstm/x_small"] if "exponential" in (act, rec) else x
        np.testing.assert_allclose(layer(inputs), expected, rtol=2e-5, atol=2e-6,
                                   err_msg=f"{act}/{rec} on {backend}")


@pytest.mark.parametrize("name", sorted(set(dense_activations.DENSE_ACTIVATIONS)
                                         - {"hard_sigmoid_keras2"}))
def test_dense_activations_match_keras_and_their_gradients_finite_differences(keras_numbers,
                                                                              name):
    z = keras_numbers["dense/z"]
    got = dense_activations.forward(np, name, z)
    assert got.dtype == np.float32
    if name == "sparsemax":
        # Keras 3.15.1's JAX sparsemax sums the cumulative sums over the support where the
        # definition takes the one at its end, so its rows do not sum to 1 (its output for
        # [0, 0, 0.1] is [0.233, 0.233, 0.333]); numlstm follows the definition (Martins &
        # Astudillo, 2016), checked by hand here instead.
        np.testing.assert_allclose(got.sum(axis=-1), 1, rtol=1e-5)
        np.testing.assert_allclose(dense_activations.forward(np, name, np.array(
            [[0.0, 0.0, 0.1], [1.0, 2.0, 3.5], [-1.0, -0.5, 0.0, 0.5, 1.0][:3]])),
            [[0.3, 0.3, 0.4], [0.0, 0.0, 1.0], [0.0, 0.25, 0.75]], atol=1e-12)
    else:
        np.testing.assert_allclose(got, keras_numbers[f"dense/{name}"], rtol=2e-6, atol=2e-6,
                                   err_msg=name)
    # gradients in float64, away from the kinks (where one-sided derivatives differ)
    kinks = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0])
    z64 = np.random.default_rng(1).uniform(-5, 5, (3, 9))
    z64[np.abs(z64[..., None] - kinks).min(axis=-1) < 1e-3] += 0.01
    g = np.random.default_rng(2).standard_normal(z64.shape)
    y = dense_activations.forward(np, name, z64)
    analytic = dense_activations.backward(np, name, z64, y, g)
    numeric = np.zeros_like(z64)
    for index in np.ndindex(z64.shape):
        plus, minus = z64.copy(), z64.copy()
        plus[index] += 1e-6
        minus[index] -= 1e-6
        numeric[index] = ((dense_activations.forward(np, name, plus)
                           - dense_activations.forward(np, name, minus)) * g).sum() / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6, err_msg=name)


def test_keras2_hard_sigmoid_on_dense():
    z = np.array([-3.0, -1.0, 0.0, 2.0, 3.0])
    np.testing.assert_allclose(dense_activations.forward(np, "hard_sigmoid_keras2", z),
                               [0.0, 0.3, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(dense_activations.backward(np, "hard_sigmoid_keras2", z, None,
                                                          np.ones(5)), [0, 0.2, 0.2, 0.2, 0])


def test_every_keras_activation_is_covered(keras_numbers):
    names = {key.split("/")[1] for key in keras_numbers if key.startswith("dense/")} - {"z"}
    assert names == set(dense_activations.DENSE_ACTIVATIONS) - {"hard_sigmoid_keras2"}


@pytest.mark.parametrize("name", ["gelu", "silu", "swish", "mish", "softmax"])
def test_lstm_refuses_activations_its_kernels_cannot_differentiate(name):
    with pytest.raises(ValueError, match="not supported by LSTM"):
        numlstm.LSTM(2, activation=name)
    with pytest.raises(ValueError, match="not supported by LSTM"):
        numlstm.LSTM(2, recurrent_activation=name)
    numlstm.Dense(2, activation=name)


def test_dense_refuses_glu_with_the_reason():
    with pytest.raises(ValueError, match="halves the last axis"):
        numlstm.Dense(4, activation="glu")


# -- initializers -------------------------------------------------------------------------------
def test_constant_and_identity_are_keras_values(keras_numbers):
    np.testing.assert_array_equal(I.Constant(0.3)((3, 5)), keras_numbers["init/constant"])
    np.testing.assert_array_equal(I.Identity(gain=2.0)((3, 5)), keras_numbers["init/identity"])
    np.testing.assert_array_equal(I.resolve("ones", "x")((2, 2), "float32", None), 1)
    with pytest.raises(ValueError, match="2-D"):
        I.Identity()((2, 3, 4))


FAN_IN, FAN_OUT = 400, 300

#: (initializer, expected mean, expected variance, bound of |value| or None). Truncated
#: normals at 2 stddev: variance 0.7737 sigma^2, where Keras scales sigma by 1/0.8796 to
#: restore the nominal variance (0.7737 / 0.8796^2 = 1.0000).
STATISTICS = [
    ("he_normal", I.HeNormal(seed=1), 0.0, 2 / FAN_IN, 2 * np.sqrt(2 / FAN_IN) / 0.8796),
    ("he_uniform", I.HeUniform(seed=1), 0.0, 2 / FAN_IN, np.sqrt(6 / FAN_IN)),
    ("lecun_normal", I.LecunNormal(seed=1), 0.0, 1 / FAN_IN, 2 * np.sqrt(1 / FAN_IN) / 0.8796),
    ("lecun_uniform", I.LecunUniform(seed=1), 0.0, 1 / FAN_IN, np.sqrt(3 / FAN_IN)),
    ("glorot_normal", I.GlorotNormal(seed=1), 0.0, 2 / (FAN_IN + FAN_OUT), None),
    ("glorot_uniform", I.GlorotUniform(seed=1), 0.0, 2 / (FAN_IN + FAN_OUT),
     np.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("random_normal", I.RandomNormal(mean=0.5, stddev=0.2, seed=1), 0.5, 0.04, None),
    ("random_uniform", I.RandomUniform(minval=-1.0, maxval=3.0, seed=1), 1.0, 16 / 12, None),
    ("truncated_normal", I.TruncatedNormal(mean=-1.0, stddev=0.1, seed=1), -1.0,
     0.7737 * 0.01, None),
    ("variance_scaling", I.VarianceScaling(3.0, "fan_out", "untruncated_normal", seed=1), 0.0,
     3 / FAN_OUT, None),
]


@pytest.mark.parametrize("name, init, mean, variance, bound", STATISTICS,
                         ids=[s[0] for s in STATISTICS])
def test_initializer_distributions(name, init, mean, variance, bound):
    """120,000 draws: the sample mean within 5 standard errors and the sample variance within
    2% of the definition (its standard error is ~0.4%)."""
    values = init((FAN_IN, FAN_OUT), "float64")
    assert values.shape == (FAN_IN, FAN_OUT) and values.dtype == np.float64
    standard_error = np.sqrt(variance / values.size)
    assert abs(values.mean() - mean) < 5 * standard_error
    assert values.var() == pytest.approx(variance, rel=0.02)
    if bound is not None:
        assert np.abs(values - mean).max() <= bound * (1 + 1e-6)
    if name.endswith("_normal") and name not in ("random_normal",):
        if name != "truncated_normal":
            # Keras's rescaled truncated normal: the cut lies at 2/0.8796 = 2.27 sqrt(variance)
            assert np.abs(values).max() <= 2.2737 * np.sqrt(variance)


def test_orthogonal_with_gain_and_seeds():
    q = I.Orthogonal(gain=2.0, seed=3)((6, 4))
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(4), atol=1e-5)
    a, b = I.HeNormal(seed=7)((5, 5)), I.HeNormal(seed=7)((5, 5))
    np.testing.assert_array_equal(a, b)                       # a seed reproduces
    assert not np.array_equal(a, I.HeNormal(seed=8)((5, 5)))


def test_initializers_in_layers_and_their_configs(tmp_path):
    layer = numlstm.LSTM(4, kernel_initializer="he_normal",
                         recurrent_initializer=I.Orthogonal(gain=0.5, seed=2),
                         bias_initializer=I.Constant(0.25), unit_forget_bias=False, seed=1)
    layer.build((None, 3, 5))
    np.testing.assert_array_equal(layer.bias, 0.25)
    rk = layer.recurrent_kernel.astype(np.float64)
    np.testing.assert_allclose(rk @ rk.T, 0.25 * np.eye(4), atol=1e-6)
    dense = numlstm.Dense(3, kernel_initializer=I.Identity(), bias_initializer="ones")
    dense.build((None, 3))
    np.testing.assert_array_equal(dense.kernel, np.eye(3))
    embedding = numlstm.Embedding(5, 2, embeddings_initializer=I.RandomNormal(stddev=1.0,
                                                                              seed=4))
    embedding.build((None, 3))
    assert embedding.embeddings.std() > 0.2                   # not the default ±0.05 uniform
    model = numlstm.Sequential([numlstm.Input((3, 5)), layer], backend="numpy")
    model.save(tmp_path / "m.npz")
    loaded = numlstm.load_model(tmp_path / "m.npz").layers[0]
    config = loaded.get_config()
    assert config["recurrent_initializer"] == {"class_name": "Orthogonal",
                                               "config": {"gain": 0.5, "seed": 2}}
    assert config["bias_initializer"] == {"class_name": "Constant", "config": {"value": 0.25}}
    rebuilt = numlstm.LSTM.from_config({**config, "name": "again"})
    rebuilt.build((None, 3, 5))
    np.testing.assert_array_equal(rebuilt.recurrent_kernel, layer.recurrent_kernel)


def test_initializer_errors_name_the_argument():
    with pytest.raises(ValueError, match="kernel_initializer"):
        numlstm.Dense(2, kernel_initializer="he_nromal")
    with pytest.raises(ValueError, match="stddev"):
        I.RandomNormal(stddev="wide")
    with pytest.raises(ValueError, match="seed"):
        I.HeUniform(seed=-1)


@pytest.mark.parametrize("make, argument", [
    (lambda: I.RandomNormal(stddev=-1.0), "stddev"),
    (lambda: I.TruncatedNormal(stddev=-0.5), "stddev"),
    (lambda: I.RandomNormal(mean=float("nan")), "mean"),
    (lambda: I.RandomUniform(minval=1.0, maxval=0.0), "maxval"),
    (lambda: I.VarianceScaling(scale=0.0), "scale"),
    (lambda: I.VarianceScaling(scale=-1.0), "scale"),
    (lambda: I.VarianceScaling(mode="fan_sum"), "mode"),
    (lambda: I.VarianceScaling(mode=["fan_in"]), "mode"),
    (lambda: I.VarianceScaling(distribution="cauchy"), "distribution"),
    (lambda: I.VarianceScaling(distribution=1), "distribution"),
    (lambda: I.Orthogonal(gain=float("inf")), "gain"),
    (lambda: I.Identity(gain="2"), "gain"),
    (lambda: I.Constant(value=None), "value"),
])
def test_initializer_arguments_are_checked_by_the_constructor(make, argument):
    """Refused when the object is made, with the argument named -- not by NumPy when a layer
    is built (``scale < 0``) after the model was assembled."""
    with pytest.raises(ValueError, match=argument):
        make()


def test_initializer_edge_arguments_keras_accepts():
    # stddev 0 gives the mean everywhere (NumPy and Keras accept it); distribution is
    # case-insensitive as in Keras; minval == maxval is a constant.
    np.testing.assert_array_equal(I.RandomNormal(mean=0.5, stddev=0.0, seed=1)((2, 3)), 0.5)
    np.testing.assert_array_equal(I.TruncatedNormal(mean=-1.0, stddev=0, seed=1)((4,)), -1.0)
    assert I.VarianceScaling(distribution="Uniform").distribution == "uniform"
    np.testing.assert_array_equal(I.RandomUniform(0.25, 0.25, seed=1)((3,)), 0.25)
