"""Regularizers and constraints against Keras 3 (``tests/fixtures/keras_regularizers/``, written
by ``make_keras_regularizer_fixtures.py``): the regularised loss ``evaluate`` and
``train_on_batch`` report, the weights after one SGD step (penalty gradients included) and the
constraints applied after it; plus the penalties' gradients against finite differences, and
saving/loading them."""

import json
from pathlib import Path

import numpy as np
import pytest

import numlstm
from numlstm import constraints as C
from numlstm import regularizers as R

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras_regularizers"
TRAINING_CASES = ["regularizers", "regularizers_strings", "constraints", "constraints_axis"]


def _load(name):
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def _model(case, backend):
    arguments = json.loads(str(case["arguments"]))
    model = numlstm.Sequential([
        numlstm.Input((4, 2)),
        numlstm.LSTM(3, name="lstm", **arguments["lstm"]),
        numlstm.Dense(2, name="dense", **arguments["dense"])], backend=backend)
    for layer in model.layers:
        layer.set_weights([case[f"weights/{layer.name}/{i}"]
                           for i in range(len(layer.weights))])
    model.compile(optimizer=numlstm.optimizers.SGD(learning_rate=float(case["lr"])),
                  loss="mse")
    return model


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name", TRAINING_CASES)
def test_regularised_loss_and_constrained_step_match_keras(name, backend):
    case = _load(name)
    model = _model(case, backend)
    x, y = case["x"], case["y"]
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=5), case["evaluate_before"],
                               rtol=2e-6, err_msg="evaluate before training")
    np.testing.assert_allclose(model.train_on_batch(x, y), case["train_loss"], rtol=2e-6,
                               err_msg="train_on_batch loss")
    for layer in model.layers:
        for i, weight in enumerate(layer.get_weights()):
            np.testing.assert_allclose(weight, case[f"after/{layer.name}/{i}"], rtol=1e-5,
                                       atol=2e-6, err_msg=f"{layer.name} weight {i} after")
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=5), case["evaluate_after"],
                               rtol=2e-6, err_msg="evaluate after training")


def test_the_fixtures_penalties_are_not_negligible():
    """The regularised cases would pass trivially if the penalties were tiny: they are not."""
    for name in ("regularizers", "regularizers_strings"):
        case = _load(name)
        assert case["evaluate_before"] - case["plain_loss_before"] > 0.05, name


def test_constraints_bind_in_the_fixture():
    """Each constraint of the fixture changes the step's result (so the comparison above
    tests them): without constraints the weights after the step differ from Keras's."""
    case = _load("constraints")
    arguments = json.loads(str(case["arguments"]))
    free = {k: {a: v for a, v in args.items() if not a.endswith("constraint")}
            for k, args in arguments.items()}
    case = dict(case, arguments=np.array(json.dumps(free)))
    model = _model(case, "numpy")
    model.train_on_batch(case["x"], case["y"])
    for layer in model.layers:
        for i, weight in enumerate(layer.get_weights()):
            assert not np.allclose(weight, case[f"after/{layer.name}/{i}"], rtol=1e-3,
                                   atol=1e-4), (layer.name, i)


@pytest.mark.parametrize("regularizer", [R.L1(0.3), R.L2(0.2), R.L1L2(l1=0.1, l2=0.05)])
def test_penalty_gradients_match_finite_differences(regularizer):
    w = np.random.default_rng(0).standard_normal((3, 4))
    analytic = regularizer.gradient(w)
    numeric = np.zeros_like(w)
    for index in np.ndindex(w.shape):
        plus, minus = w.copy(), w.copy()
        plus[index] += 1e-6
        minus[index] -= 1e-6
        numeric[index] = (regularizer(plus) - regularizer(minus)) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_activity_regularizer_on_a_functional_lstm_with_states():
    """Keras 3 regularises every output of the layer: an LSTM with return_state adds the
    penalty of its output and both states, each divided by the batch size."""
    inputs = numlstm.Input((3, 2))
    out, h, c = numlstm.LSTM(2, return_state=True, activity_regularizer=R.L2(0.5), seed=1,
                             name="lstm")(inputs)
    model = numlstm.Model(inputs, numlstm.Dense(1, seed=2)(c), backend="numpy")
    model.compile("sgd", "mse")
    x = np.random.default_rng(3).standard_normal((4, 3, 2)).astype(np.float32)
    y = np.zeros((4, 1), np.float32)
    plain = float(np.mean((model.predict(x) - y) ** 2))
    layer = model.get_layer("lstm")
    _, h_value, c_value = layer(x)
    expected = 0.5 * (2 * np.sum(h_value ** 2) + np.sum(c_value ** 2)) / 4   # out == h
    np.testing.assert_allclose(model.evaluate(x, y), plain + expected, rtol=1e-5)


def test_a_frozen_layers_weights_are_not_penalised_nor_constrained():
    model = numlstm.Sequential([numlstm.Input((3,)), numlstm.Dense(
        2, kernel_regularizer=R.L2(10.0), kernel_constraint=C.NonNeg(), seed=0)],
        backend="numpy")
    model.layers[0].set_weights([-np.ones((3, 2), np.float32), np.zeros(2, np.float32)])
    model.layers[0].trainable = False
    model.compile("sgd", "mse")
    x, y = np.ones((2, 3), np.float32), np.zeros((2, 2), np.float32)
    np.testing.assert_allclose(model.evaluate(x, y), 9.0)     # (-3)^2, no penalty
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(model.layers[0].kernel, -1)  # neither stepped nor projected


@pytest.mark.parametrize("constraint, expected", [
    (C.MaxNorm(1.0), lambda w, n: w * np.clip(n, 0, 1) / (1e-7 + n)),
    (C.UnitNorm(), lambda w, n: w / (1e-7 + n)),
    (C.MinMaxNorm(0.5, 2.0, rate=0.5), lambda w, n: w * (0.5 * np.clip(n, 0.5, 2) + 0.5 * n)
     / (1e-7 + n)),
    (C.NonNeg(), lambda w, n: np.maximum(w, 0)),
])
def test_constraints_by_hand(constraint, expected):
    w = np.array([[3.0, 0.1], [-4.0, 0.2]], np.float32)
    norms = np.sqrt((w.astype(np.float64) ** 2).sum(axis=0, keepdims=True))
    got = constraint(w)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected(w, norms), rtol=1e-6)


def test_specifications_and_their_errors():
    assert R.get("l1") == R.L1(0.01) and R.get("l2") == R.L2(0.01)
    assert R.get("l1_l2") == R.L1L2(0.01, 0.01)          # Keras 2's l1_l2 (Keras 3 refuses)
    assert R.get("l1l2") == R.L1L2(0.0, 0.0)             # Keras 3's name of the class
    assert R.get({"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.2}}) == R.L1L2(0.1, 0.2)
    assert C.get("max_norm") == C.MaxNorm(2, axis=0)
    assert C.get({"class_name": "MinMaxNorm", "config": {"max_value": 3}}) == \
        C.MinMaxNorm(0.0, 3, 1.0, 0)
    with pytest.raises(ValueError, match="kernel_regularizer"):
        numlstm.LSTM(2, kernel_regularizer="l3")
    with pytest.raises(ValueError, match="callables"):
        numlstm.Dense(2, kernel_regularizer=lambda w: 0.0)
    with pytest.raises(ValueError, match="bias_constraint"):
        numlstm.Dense(2, bias_constraint="positive")
    with pytest.raises(ValueError, match="l2"):
        R.L2(-1.0)


def test_regularizers_and_constraints_are_saved_and_loaded(tmp_path):
    model = numlstm.Sequential([
        numlstm.Input((4, 2)),
        numlstm.LSTM(3, kernel_regularizer="l2", recurrent_constraint=C.UnitNorm(axis=1),
                     activity_regularizer=R.L1L2(l1=0.1, l2=0.2), seed=0),
        numlstm.Dense(2, bias_regularizer=R.L1(0.3), kernel_constraint="non_neg", seed=1)],
        backend="numpy")
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)
    y = np.ones((3, 2), np.float32)
    model.train_on_batch(x, y)
    model.save(tmp_path / "m.npz")
    loaded = numlstm.load_model(tmp_path / "m.npz")
    lstm, dense = loaded.layers
    assert lstm.kernel_regularizer == R.L2(0.01)
    assert lstm.recurrent_constraint == C.UnitNorm(axis=1)
    assert lstm.activity_regularizer == R.L1L2(0.1, 0.2)
    assert dense.bias_regularizer == R.L1(0.3) and dense.kernel_constraint == C.NonNeg()
    assert loaded.evaluate(x, y) == pytest.approx(model.evaluate(x, y), rel=1e-6)
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda: numlstm.LSTM(2, kernel_constraint=C.MaxNorm(2, axis=5), name="rnn"),
     r"layer 'rnn': kernel_constraint=MaxNorm\(.*axis=5\).*shape \(3, 8\).*\[-2, 1\]"),
    (lambda: numlstm.LSTM(2, recurrent_constraint=C.UnitNorm(axis=-3), name="rnn"),
     r"layer 'rnn': recurrent_constraint=UnitNorm\(axis=-3\).*shape \(2, 8\)"),
    (lambda: numlstm.LSTM(2, bias_constraint=C.MinMaxNorm(axis=1), name="rnn"),
     r"layer 'rnn': bias_constraint=MinMaxNorm\(.*axis=1\).*shape \(8,\) \(1-D\)"),
    (lambda: numlstm.Bidirectional(numlstm.LSTM(2, kernel_constraint=C.MaxNorm(axis=[0, 2]),
                                                name="rnn")),
     r"layer 'rnn': kernel_constraint=MaxNorm\(.*axis=\[0, 2\]\).*shape \(3, 8\)"),
    (lambda: numlstm.Dense(2, bias_constraint=C.UnitNorm(axis=[0, -1]), name="out"),
     r"layer 'out': bias_constraint=UnitNorm\(axis=\[0, -1\]\).*twice"),
])
def test_a_constraint_axis_the_weight_lacks_is_refused_when_the_layer_is_built(make, message):
    """Before any training step (the weights unchanged), naming layer, argument, axis and
    the weight's shape -- not NumPy's AxisError after the first step."""
    with pytest.raises(ValueError, match=message):
        numlstm.Sequential([numlstm.Input((5, 3)), make()], backend="numpy", seed=0)


def test_an_embedding_constraint_axis_is_checked_at_build():
    layer = numlstm.Embedding(10, 3, embeddings_constraint=C.MaxNorm(axis=2), name="emb")
    with pytest.raises(ValueError, match=r"layer 'emb': embeddings_constraint=.*axis=2.*"
                                         r"shape \(10, 3\)"):
        layer.build((None, 5))
    assert not layer.built


def test_constraint_axes_the_weight_has_are_accepted_and_applied():
    # Negative axes and lists of them count from the end, as NumPy and Keras.
    model = numlstm.Sequential([
        numlstm.Input((5, 3)),
        numlstm.LSTM(2, kernel_constraint=C.UnitNorm(axis=-1), bias_constraint=C.MaxNorm(
            0.1, axis=-1), recurrent_constraint=C.UnitNorm(axis=[0, 1]), seed=0),
    ], backend="numpy", seed=0)
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    model.train_on_batch(x, np.zeros((4, 2), np.float32))
    kernel, recurrent, bias = model.layers[0].get_weights()
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(recurrent), 1.0, rtol=1e-5)
    assert np.linalg.norm(bias) <= 0.1 + 1e-6


def test_an_activity_regularizer_inside_a_bidirectional_is_refused():
    """Keras penalises each direction's output; numlstm's models would silently leave that
    out of the loss, so the wrapped layer's regularizer is refused, naming the argument and
    where to put it."""
    message = r"activity_regularizer=L2\(l2=10.0\).*Bidirectional wrapper"
    with pytest.raises(ValueError, match="Bidirectional: layer 'lstm' has " + message):
        numlstm.Bidirectional(numlstm.LSTM(4, activity_regularizer=R.L2(10.0)))
    with pytest.raises(ValueError, match="backward_layer 'back' has " + message):
        numlstm.Bidirectional(numlstm.LSTM(4), backward_layer=numlstm.LSTM(
            4, go_backwards=True, activity_regularizer=R.L2(10.0), name="back"))
    # set after construction: refused when the model builds the layer
    layer = numlstm.Bidirectional(numlstm.LSTM(4, name="lstm"))
    layer.forward_layer.activity_regularizer = R.L2(10.0)
    with pytest.raises(ValueError, match=message):
        numlstm.Sequential([numlstm.Input((5, 3)), layer], backend="numpy")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_wrappers_activity_regularizer_is_keras_penalty_on_each_direction(backend):
    """The refusal's advice holds: with merge_mode="concat", activity_regularizer on the
    Bidirectional gives Keras's loss and SGD step for the regularizer on the wrapped LSTM
    (masked steps included)."""
    case = _load("bidirectional_activity")
    model = numlstm.Sequential([
        numlstm.Input((5, 3)), numlstm.Masking(0.0),
        numlstm.Bidirectional(numlstm.LSTM(4, return_sequences=True), merge_mode="concat",
                              activity_regularizer=R.L1L2(float(case["l1"]),
                                                          float(case["l2"])))],
        backend=backend)
    model.layers[1].set_weights([case[f"weights/{i}"] for i in range(6)])
    model.compile(numlstm.optimizers.SGD(float(case["lr"])), "mse")
    x, y = case["x"], case["y"]
    assert case["evaluate_before"] > 2 * case["plain_loss_before"]   # the penalty matters
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=4, verbose=0),
                               case["evaluate_before"], rtol=2e-6)
    np.testing.assert_allclose(model.train_on_batch(x, y), case["train_loss"], rtol=2e-6)
    for i, weight in enumerate(model.layers[1].get_weights()):
        np.testing.assert_allclose(weight, case[f"after/{i}"], rtol=1e-5, atol=2e-6,
                                   err_msg=f"weight {i} after the step")


def test_keras_import_moves_the_wrapped_lstms_activity_regularizer_to_the_wrapper():
    """A Keras file with the regularizer on the wrapped LSTM (merge_mode="concat", as Keras's
    backward copy has it too) imports with it on the Bidirectional: Keras's loss and step."""
    case = _load("bidirectional_activity")
    model = numlstm.load_keras_model(FIXTURES / "bidirectional_activity.keras",
                                     backend="numpy")
    layer = model.layers[-1]
    assert layer.activity_regularizer == R.L1L2(float(case["l1"]), float(case["l2"]))
    assert layer.forward_layer.activity_regularizer is None
    assert layer.backward_layer.activity_regularizer is None
    model.compile(numlstm.optimizers.SGD(float(case["lr"])), "mse")
    x, y = case["x"], case["y"]
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=4, verbose=0),
                               case["evaluate_before"], rtol=2e-6)
    np.testing.assert_allclose(model.train_on_batch(x, y), case["train_loss"], rtol=2e-6)
    for i, weight in enumerate(layer.get_weights()):
        np.testing.assert_allclose(weight, case[f"after/{i}"], rtol=1e-5, atol=2e-6)


def test_keras_import_drops_a_wrapped_activity_regularizer_it_cannot_express_with_a_warning():
    with pytest.warns(UserWarning, match="wrapped LSTMs' activity_regularizer"):
        model = numlstm.load_keras_model(FIXTURES / "bidirectional_activity_sum.keras",
                                         backend="numpy")
    layer = model.layers[-1]
    assert layer.merge_mode == "sum" and layer.activity_regularizer is None
    assert layer.forward_layer.activity_regularizer is None
