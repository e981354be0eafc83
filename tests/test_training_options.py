"""compile/fit options, optimizers, schedules, losses and metrics against Keras 3 fixtures
(tests/fixtures/make_keras_training_fixtures.py), plus the checks numlstm adds."""

import json
from pathlib import Path

import numpy as np
import pytest

import numlstm
from numlstm import losses, metrics, optimizers
from numlstm.layers import LSTM, Dense, Input
from numlstm.models import Sequential

FIXTURES = Path(__file__).parent / "fixtures" / "keras_training"


def load(name):
    return np.load(FIXTURES / f"{name}.npz")


# -- optimizers and schedules ------------------------------------------------------------------

@pytest.mark.parametrize("case", list(load("optimizers")["cases"]))
def test_optimizer_three_steps_match_keras(case):
    data = load("optimizers")
    cls = getattr(optimizers, str(data[f"{case}/class"]))
    optimizer = cls(**json.loads(str(data[f"{case}/kwargs"])))
    weights = [data["init/0"].copy(), data["init/1"].copy()]
    for t in range(3):
        optimizer.apply_gradients([data[f"grads/{t}/0"], data[f"grads/{t}/1"]], weights)
        for i, w in enumerate(weights):
            np.testing.assert_allclose(w, data[f"{case}/step{t}/{i}"], rtol=2e-5, atol=2e-6,
                                       err_msg=f"{case} step {t + 1} variable {i}")


@pytest.mark.parametrize("case", list(load("schedules")["cases"]))
def test_schedules_match_keras(case):
    data = load("schedules")
    cls = getattr(optimizers.schedules, str(data[f"{case}/class"]))
    schedule = cls(**json.loads(str(data[f"{case}/kwargs"])))
    got = [schedule(step) for step in range(16)]
    np.testing.assert_allclose(got, data[f"{case}/lr"], rtol=1e-6, atol=1e-9)


def test_optimizer_options_are_checked_and_round_trip():
    with pytest.raises(ValueError, match="only one of clipnorm, clipvalue and global_clipnorm"):
        optimizers.Adam(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="weight_decay must be"):
        optimizers.SGD(weight_decay=-1.0)
    with pytest.raises(ValueError, match="decay_steps must be"):
        optimizers.schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="values must be a list"):
        optimizers.schedules.PiecewiseConstantDecay([1, 2], [0.1])
    schedule = optimizers.schedules.CosineDecay(0.1, 10, alpha=0.2)
    optimizer = optimizers.Nadam(learning_rate=schedule, global_clipnorm=2.0, weight_decay=0.01)
    again = optimizers.get(optimizer.get_config())
    assert again.get_config() == optimizer.get_config()
    with pytest.raises(TypeError, match="is a schedule"):
        optimizer.learning_rate = 0.5
    assert optimizer.current_learning_rate == pytest.approx(0.1)


def _seq_model(seed=0):
    model = Sequential([Input((5, 3)), LSTM(4, name="lstm"), Dense(3, activation="softmax",
                                                                   name="dense")], seed=seed)
    return model


def _two_epochs_and_a_saved_first(tmp_path, optimizer):
    """A model trained 2 epochs straight with ``optimizer()``, and the same trained 1 epoch
    and saved to ``tmp_path / "m.npz"``; returns ``(straight, resume)``, where
    ``resume(path)`` loads a file and trains its second epoch."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((16, 5, 3)), rng.integers(0, 3, 16)

    def make():
        model = _seq_model(seed=5)
        model.compile(optimizer(), "sparse_categorical_crossentropy")
        return model
    straight = make()
    straight.fit(x, y, batch_size=4, epochs=2, verbose=0)
    first = make()
    first.fit(x, y, batch_size=4, epochs=1, verbose=0)
    first.save(tmp_path / "m.npz")

    def resume(path):
        resumed = numlstm.load_model(path)
        resumed.fit(x, y, batch_size=4, epochs=1, verbose=0)
        return resumed
    return straight, resume


@pytest.mark.parametrize("name", ["adagrad", "adadelta", "adamax", "nadam", "adamw"])
def test_new_optimizers_resume_bit_identical_from_a_file(tmp_path, name):
    lr = optimizers.schedules.ExponentialDecay(0.05, 2, 0.7)
    straight, resume = _two_epochs_and_a_saved_first(
        tmp_path, lambda: optimizers.get(name).__class__(learning_rate=lr, weight_decay=0.01))
    resumed = resume(tmp_path / "m.npz")
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)



def _nadam_reference_product(optimizer, t):
    """Π_t recomputed factor by factor from 1.0 (what Nadam did at every step before it kept
    the running product)."""
    product = 1.0
    for s in range(1, t + 1):
        product *= optimizer.beta_1 * (1.0 - 0.5 * 0.96 ** s)
    return product


def test_nadam_step_cost_does_not_grow_with_the_step_count():
    """A step at iterations = 100000 costs about what one at iterations = 1 costs (the product
    of momentum factors is state, not recomputed with t multiplications per weight)."""
    import time
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((16, 32)).astype(np.float32) for _ in range(6)]
    grads = [rng.standard_normal(w.shape).astype(np.float32) for w in weights]

    def step_time(iterations):
        optimizer = optimizers.Nadam()
        optimizer.apply_gradients(grads, weights)
        _, state = optimizer.get_state()
        state["u_product"] = np.array(_nadam_reference_product(optimizer, iterations))
        optimizer.set_state(iterations, state, weights)
        times = []
        for _ in range(15):
            start = time.perf_counter()
            optimizer.apply_gradients(grads, weights)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    early, late = step_time(1), step_time(100_000)
    assert late < 5 * early + 2e-3, (early, late)


def test_nadam_running_product_is_state_and_round_trips():
    optimizer = optimizers.Nadam(beta_1=0.99)
    weights = [np.zeros((2, 3)), np.zeros(3)]
    grads = [np.full((2, 3), 0.5), np.full(3, -0.25)]
    for t in range(1, 6):
        optimizer.apply_gradients(grads, weights)
        assert optimizer.get_state()[1]["u_product"] == _nadam_reference_product(optimizer, t)
    iterations, state = optimizer.get_state()
    again = optimizers.Nadam(beta_1=0.99)
    again.set_state(iterations, state, weights)
    assert again.get_state()[1]["u_product"] == state["u_product"]
    for bad in (np.array(1.5), np.array(np.nan), np.array([0.5])):
        with pytest.raises(ValueError, match="u_product"):
            again.set_state(iterations, {**state, "u_product": bad}, weights)
    with pytest.raises(ValueError, match="'u_product' does not belong to Adam"):
        optimizers.Adam().set_state(iterations, state, weights)


@pytest.mark.parametrize("beta_1, steps", [(0.9, 40), (0.999, 1200)])
def test_nadam_state_without_the_product_recomputes_it_bit_identically(beta_1, steps):
    """A state saved before the product was kept (no "u_product") continues exactly as the
    uninterrupted run: the product is recomputed from iterations, multiplied in the same order
    (1200 steps reach the factors that equal beta_1 exactly)."""
    rng = np.random.default_rng(1)
    grads = [[rng.standard_normal((3, 2)), rng.standard_normal(2)] for _ in range(steps + 3)]
    straight = optimizers.Nadam(learning_rate=0.01, beta_1=beta_1)
    ws = [np.ones((3, 2)), np.ones(2)]
    for g in grads[:steps]:
        straight.apply_gradients(g, ws)
    iterations, state = straight.get_state()
    assert state["u_product"] == _nadam_reference_product(straight, steps)
    del state["u_product"]
    resumed = optimizers.Nadam(learning_rate=0.01, beta_1=beta_1)
    resumed_ws = [w.copy() for w in ws]
    resumed.set_state(iterations, state, resumed_ws)
    for g in grads[steps:]:
        straight.apply_gradients(g, ws)
        resumed.apply_gradients(g, resumed_ws)
    for a, b in zip(ws, resumed_ws):
        np.testing.assert_array_equal(a, b)
    assert resumed.get_state()[1]["u_product"] == straight.get_state()[1]["u_product"]


def test_nadam_resumes_bit_identical_from_a_file_without_the_product(tmp_path):
    """A model file written before Nadam's product was saved still resumes exactly."""
    from numlstm.archive import load_archive, save_archive
    straight, resume = _two_epochs_and_a_saved_first(
        tmp_path, lambda: optimizers.Nadam(learning_rate=0.05))
    config, arrays = load_archive(tmp_path / "m.npz")
    assert "optimizer/u_product" in arrays
    del arrays["optimizer/u_product"]
    save_archive(tmp_path / "old.npz", config, arrays)
    for path in ("m.npz", "old.npz"):
        resumed = resume(tmp_path / path)
        for a, b in zip(straight.get_weights(), resumed.get_weights()):
            np.testing.assert_array_equal(a, b)


# -- Keras arguments numlstm does not implement -------------------------------------------------

@pytest.mark.parametrize("make, argument", [
    (lambda: optimizers.Adam(amsgrad=True), "amsgrad"),
    (lambda: optimizers.AdamW(amsgrad=True), "amsgrad"),
    (lambda: optimizers.Adam(use_ema=True), "use_ema"),
    (lambda: optimizers.RMSprop(ema_momentum=0.9), "ema_momentum"),
    (lambda: optimizers.Nadam(ema_overwrite_frequency=10), "ema_overwrite_frequency"),
    (lambda: optimizers.SGD(decay=0.01), "decay"),
    (lambda: optimizers.Adamax(loss_scale_factor=128.0), "loss_scale_factor"),
    (lambda: optimizers.Adagrad(gradient_accumulation_steps=4), "gradient_accumulation_steps"),
])
def test_unsupported_keras_optimizer_arguments_are_refused_by_name(make, argument):
    with pytest.raises(ValueError, match=f"{argument}=.* is not supported by numlstm"):
        make()


def test_keras_default_values_of_unsupported_arguments_are_no_ops():
    plain = optimizers.Adam(0.01)
    same = optimizers.Adam(0.01, amsgrad=False, use_ema=False, ema_momentum=0.99,
                           ema_overwrite_frequency=None, loss_scale_factor=None,
                           gradient_accumulation_steps=None, decay=None)
    assert same.get_config() == plain.get_config()
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        optimizers.SGD(foo=1)


def test_get_refuses_unknown_config_keys_by_name():
    with pytest.raises(ValueError, match=r"does not take \['foo'\]"):
        optimizers.get({"name": "adam", "foo": 1})
    with pytest.raises(ValueError, match=r"does not take \['bar', 'foo'\]"):
        optimizers.get({"class_name": "SGD", "config": {"foo": 1, "bar": 2}})
    with pytest.raises(ValueError, match="unknown optimizer class 'Lion'"):
        optimizers.get({"class_name": "Lion", "config": {}})
    with pytest.raises(ValueError, match="amsgrad=True is not supported"):
        optimizers.get({"class_name": "Adam", "config": {"amsgrad": True}})
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        optimizers.get({"class_name": "Adam", "config": {}, "extra": 1})
    with pytest.raises(ValueError, match=r"ExponentialDecay does not take \['foo'\]"):
        optimizers.schedules.deserialize({"class_name": "ExponentialDecay", "config": {
            "initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5, "foo": 1}})


def test_get_accepts_keras_serialised_optimizers():
    # keras.saving.serialize_keras_object(...) of Keras 3.15's optimizers, verbatim
    nadam = {"module": "keras.optimizers", "class_name": "Nadam", "config": {
        "name": "nadam", "learning_rate": {
            "module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
            "config": {"initial_learning_rate": 0.05, "decay_steps": 2, "decay_rate": 0.7,
                       "staircase": False, "name": "ExponentialDecay"},
            "registered_name": None},
        "weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
        "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
        "loss_scale_factor": None, "gradient_accumulation_steps": None, "beta_1": 0.9,
        "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": None}
    sgd = {"module": "keras.optimizers", "class_name": "SGD", "config": {
        "name": "sgd", "learning_rate": 0.10000000149011612, "weight_decay": None,
        "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False,
        "ema_momentum": 0.99, "ema_overwrite_frequency": None, "loss_scale_factor": None,
        "gradient_accumulation_steps": None, "momentum": 0.9, "nesterov": False},
        "registered_name": None}
    got = optimizers.get(nadam)
    assert isinstance(got, optimizers.Nadam) and got.beta_1 == 0.9
    assert isinstance(got.learning_rate, optimizers.schedules.ExponentialDecay)
    assert got.learning_rate(2) == pytest.approx(0.05 * 0.7)
    got = optimizers.get(sgd)
    assert isinstance(got, optimizers.SGD) and got.momentum == 0.9
    assert got.learning_rate == pytest.approx(0.1)
    adam = optimizers.get({"class_name": "Adam", "config": {"learning_rate": 0.01,
                                                            "amsgrad": False}})
    assert adam.get_config() == optimizers.Adam(0.01).get_config()

# -- losses ---------------------------------------------------------------------------------

LOSS_CLASSES = {"huber": lambda kw: losses.Huber(**kw), "log_cosh": lambda kw: losses.LogCosh(),
                "kl_divergence": lambda kw: losses.KLDivergence(),
                "poisson": lambda kw: losses.Poisson(),
                "cosine_similarity": lambda kw: losses.CosineSimilarity(),
                "mean_squared_error": lambda kw: losses.MeanSquaredError()}


@pytest.mark.parametrize("name", list(LOSS_CLASSES))
def test_losses_and_weighted_reduction_match_keras(name):
    data = load("losses")
    loss = LOSS_CLASSES[name](json.loads(str(data[f"{name}/kwargs"])))
    t, p = data["y_true"].astype(np.float64), data["y_pred"].astype(np.float64)
    assert loss(t, p) == pytest.approx(float(data[f"{name}/plain"]), rel=1e-5)
    assert loss(t, p, sample_weight=data["sw"]) == pytest.approx(
        float(data[f"{name}/weighted"]), rel=1e-5)
    st, sp = data["seq/y_true"].astype(np.float64), data["seq/y_pred"].astype(np.float64)
    assert loss(st, sp, sample_weight=data["seq/sw"]) == pytest.approx(
        float(data[f"{name}/seq_weighted"]), rel=1e-5)
    assert losses.get(name if name != "mean_squared_error" else "mse").name == loss.name


@pytest.mark.parametrize("name", list(LOSS_CLASSES))
def test_loss_gradients_match_finite_differences(name):
    rng = np.random.default_rng(7)
    loss = LOSS_CLASSES[name]({"delta": 0.3} if name == "huber" else {})
    t = rng.uniform(0.1, 0.9, (2, 4, 3))
    p = rng.uniform(0.1, 0.9, (2, 4, 3))
    sw = rng.uniform(0.2, 2.0, (2, 4))
    mask = np.array([[1, 1, 0, 1], [1, 0, 0, 1]], bool)
    _, grad = loss.value_and_grad(t, p, mask, sw)
    numeric = np.zeros_like(p)
    for index in np.ndindex(p.shape):
        q = p.copy()
        q[index] += 1e-6
        up = loss(t, q, mask, sw)
        q[index] -= 2e-6
        numeric[index] = (up - loss(t, q, mask, sw)) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_masked_weighted_loss_divides_by_unmasked_count_not_weight_sum():
    t = np.zeros((1, 4, 1))
    p = np.ones((1, 4, 1))
    mask = np.array([[1, 1, 1, 0]], bool)
    sw = np.array([[2.0, 1.0, 0.5, 9.0]])
    # Keras 3: sum(w l m) / count(m) = (2 + 1 + 0.5) / 3
    assert losses.MeanSquaredError()(t, p, mask, sw) == pytest.approx(3.5 / 3)


def test_callable_loss_needs_a_gradient_and_shapes_are_checked():
    def my_loss(y_true, y_pred):
        return ((y_pred - y_true) ** 2).mean(axis=-1)
    model = _seq_model()
    with pytest.raises(TypeError, match="LossFunction"):
        model.compile("sgd", my_loss)
    wrapped = losses.LossFunction(my_loss, lambda t, p: 2 * (p - t) / p.shape[-1])
    model.compile("sgd", wrapped)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 5, 3)), rng.uniform(size=(4, 3))
    reference = _seq_model()
    reference.set_weights(model.get_weights())
    reference.compile("sgd", "mse")
    assert model.train_on_batch(x, y) == pytest.approx(reference.train_on_batch(x, y))
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    bad = losses.LossFunction(lambda t, p: p.sum(), lambda t, p: np.ones_like(p))
    model.compile("sgd", bad)
    with pytest.raises(ValueError, match="one value per position"):
        model.train_on_batch(x, y)


# -- metrics --------------------------------------------------------------------------------

METRIC_OBJECTS = {
    "precision": (metrics.Precision, "b", 12), "recall": (metrics.Recall, "b", 12),
    "auc": (metrics.AUC, "b", 12),
    "top_k_categorical_accuracy": (lambda: metrics.TopKCategoricalAccuracy(k=2), "k", 5),
    "sparse_top_k_categorical_accuracy": (
        lambda: metrics.SparseTopKCategoricalAccuracy(k=3), "kl", 5),
    "root_mean_squared_error": (metrics.RootMeanSquaredError, "r", 3),
    "mean_squared_error": (lambda: metrics.get("mse", None, 2), "r", 3),
    "mean_absolute_error": (lambda: metrics.get("mae", None, 2), "r", 3),
}


@pytest.mark.parametrize("name", list(METRIC_OBJECTS))
def test_metrics_accumulated_over_batches_match_keras(name):
    data = load("metrics")
    make, kind, half = METRIC_OBJECTS[name]
    if kind == "b":
        t, p, w = data["b/y_true"], data["b/y_pred"], data["b/sw"]
    elif kind == "k":
        t, p, w = data["k/y_true"], data["k/y_pred"], data["b/sw"][:10]
    elif kind == "kl":
        t, p, w = data["k/labels"], data["k/y_pred"], data["b/sw"][:10]
    else:
        t, p, w = data["r/y_true"], data["r/y_pred"], data["r/sw"]
    for weighted in (False, True):
        metric = make()
        state = sum(metric.update(t[part], p[part], None, w[part] if weighted else None)
                    for part in (slice(0, half), slice(half, None)))
        expected = float(data[f"{name}/{'weighted' if weighted else 'plain'}"])
        assert metric.result(state) == pytest.approx(expected, rel=1e-5, abs=1e-7), name


def test_metric_that_cannot_read_sparse_labels_is_refused_at_compile():
    model = _seq_model()
    with pytest.raises(ValueError, match="metric 'mae' compares targets.*class indices"):
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["mae"])
    with pytest.raises(ValueError, match="reads class indices"):
        model.compile("adam", "categorical_crossentropy",
                      metrics=["sparse_categorical_accuracy"])
    # an unbuilt Sequential: refused when it is built, before any training step
    lazy = Sequential([LSTM(4), Dense(3, activation="softmax")])
    lazy.compile("adam", "sparse_categorical_crossentropy", metrics=["mse"])
    with pytest.raises(ValueError, match="metric 'mse' compares targets"):
        lazy.fit(np.zeros((4, 5, 3)), np.zeros(4, int), verbose=0)


def test_callable_metric_and_objects_are_logged_by_name():
    def double_mae(y_true, y_pred):
        return 2 * np.abs(y_pred - y_true).mean(axis=-1)
    model = Sequential([Input((5, 3)), LSTM(2)], seed=0)
    model.compile("sgd", "mse", metrics=[double_mae, "mae", metrics.RootMeanSquaredError()])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 5, 3)), rng.standard_normal((6, 2))
    logs = model.evaluate(x, y, return_dict=True)
    assert list(logs) == ["loss", "double_mae", "mae", "root_mean_squared_error"]
    assert logs["double_mae"] == pytest.approx(2 * logs["mae"])
    assert logs["root_mean_squared_error"] == pytest.approx(np.sqrt(logs["loss"]))
    model.compile("sgd", "mse", metrics=[lambda t, p: p.sum()])
    with pytest.raises(ValueError, match="one value per position"):
        model.evaluate(x, y)


# -- fit with sample_weight and class_weight --------------------------------------------------

def _keras_classifier(data):
    model = _seq_model()
    model.set_weights([data[f"initial/{i}"] for i in range(5)])
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=["accuracy"])
    return model


@pytest.mark.parametrize("run", ["sw", "cw"])
def test_weighted_fit_matches_keras(run):
    data = load("fit")
    model = _keras_classifier(data)
    kwargs = {"sample_weight": data["sw"],
              "validation_data": (data["xv"], data["yv"], data["swv"])} if run == "sw" else {
        "class_weight": {0: 1.0, 1: 2.5, 2: 0.5}}
    history = model.fit(data["x"], data["y"], batch_size=4, epochs=2, shuffle=False,
                        verbose=0, **kwargs)
    keys = [str(k) for k in data[f"{run}/keys"]]
    assert sorted(history.history) == sorted(keys)
    for key, values in zip(keys, data[f"{run}/values"]):
        np.testing.assert_allclose(history.history[key], values, rtol=2e-5, err_msg=key)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, data[f"{run}/weights/{i}"], rtol=1e-4, atol=1e-6)


def test_weighted_evaluate_and_sequence_weights_match_keras():
    data = load("fit")
    model = _keras_classifier(data)
    logs = model.evaluate(data["x"], data["y"], sample_weight=data["sw"], batch_size=5,
                          return_dict=True)
    for key, value in zip(data["eval/keys"], data["eval/values"]):
        assert logs[str(key)] == pytest.approx(float(value), rel=2e-5)
    seq = Sequential([Input((5, 3)), LSTM(4, return_sequences=True, name="lstm"),
                      Dense(2, name="dense")])
    seq.set_weights([data[f"seq/initial/{i}"] for i in range(5)])
    seq.compile(optimizers.SGD(0.1), "mse")
    history = seq.fit(data["seq/x"], data["seq/y"], batch_size=3, epochs=2, shuffle=False,
                      verbose=0, sample_weight=data["seq/sw"])
    np.testing.assert_allclose(history.history["loss"], data["seq/loss"], rtol=2e-5)
    for i, w in enumerate(seq.get_weights()):
        np.testing.assert_allclose(w, data[f"seq/weights/{i}"], rtol=1e-4, atol=1e-6)


def test_weight_arguments_are_checked():
    data = load("fit")
    model = _keras_classifier(data)
    x, y = data["x"], data["y"]
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(12,\)"):
        model.fit(x, y, sample_weight=np.ones(5), verbose=0)
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        model.fit(x, y, sample_weight=-np.ones(12), verbose=0)
    with pytest.raises(ValueError, match="class_weight and sample_weight at the same time"):
        model.fit(x, y, sample_weight=np.ones(12), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(TypeError, match="class_weight keys must be class indices"):
        model.fit(x, y, class_weight={"a": 1.0}, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch is for a generator"):
        model.fit(x, y, steps_per_epoch=2, verbose=0)


# -- epochs, validation_freq, generators ----------------------------------------------------

def test_initial_epoch_and_validation_freq():
    data = load("fit")
    model = _keras_classifier(data)
    seen = []
    history = model.fit(data["x"], data["y"], epochs=5, initial_epoch=2, validation_freq=2,
                        validation_data=(data["xv"], data["yv"]), verbose=0,
                        callbacks=[numlstm.callbacks.LambdaCallback(
                            on_epoch_end=lambda e, logs: seen.append((e, sorted(logs))))])
    assert history.epoch == [2, 3, 4]
    assert [e for e, keys in seen if "val_loss" in keys] == [3]     # epochs counted from 1


def test_generators_match_arrays():
    data = load("fit")
    x, y, sw = data["x"], data["y"], data["sw"]
    arrays = _keras_classifier(data)
    arrays.fit(x, y, sample_weight=sw, batch_size=4, epochs=2, shuffle=False, verbose=0)

    def batches():
        while True:
            for start in range(0, 12, 4):
                yield x[start:start + 4], y[start:start + 4], sw[start:start + 4]
    generated = _keras_classifier(data)
    history = generated.fit(batches(), steps_per_epoch=3, epochs=2, verbose=0,
                            validation_data=batches(), validation_steps=3)
    for a, b in zip(arrays.get_weights(), generated.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert "val_loss" in history.history
    one_pass = _keras_classifier(data)
    with pytest.warns(RuntimeWarning, match="ran out of data"):
        h = one_pass.fit((b for b in [(x, y)]), epochs=3, verbose=0)
    assert h.epoch == [0]
    assert generated.evaluate(batches(), steps=3) == pytest.approx(
        generated.evaluate(x, y, sample_weight=sw, batch_size=4))
    np.testing.assert_allclose(generated.predict((x[i:i + 4] for i in range(0, 12, 4))),
                               generated.predict(x), rtol=1e-6)
    with pytest.raises(ValueError, match="must yield"):
        generated.fit(iter([x]), epochs=1, verbose=0)


def test_multi_output_sample_weights_per_output_and_saving(tmp_path):
    inputs = Input((5, 3))
    seq = LSTM(4, name="lstm")(inputs)
    a = Dense(2, name="a")(seq)
    b = Dense(1, name="b")(seq)
    model = numlstm.Model(inputs, [a, b], seed=0)
    model.compile("sgd", ["mse", "mae"], loss_weights=[1.0, 0.5],
                  weighted_metrics={"a": ["mae", metrics.AUC()]})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 3))
    ya, yb = rng.uniform(size=(6, 2)), rng.standard_normal((6, 1))
    w = rng.uniform(0, 2, 6)
    pa, pb = model.predict(x)
    logs = model.evaluate(x, {"a": ya, "b": yb}, sample_weight={"a": w}, batch_size=6,
                          return_dict=True)
    a_loss = float((((pa - ya) ** 2).mean(axis=-1) * w).sum() / 6)
    b_loss = float(np.abs(pb - yb).mean())
    assert logs["a_loss"] == pytest.approx(a_loss, rel=1e-5)
    assert logs["b_loss"] == pytest.approx(b_loss, rel=1e-5)
    assert logs["loss"] == pytest.approx(a_loss + 0.5 * b_loss, rel=1e-5)
    assert logs["a_mae"] == pytest.approx(
        float((np.abs(pa - ya).mean(axis=-1) * w).sum() / w.sum()), rel=1e-5)
    # one array for a multi-output model weights every output (Keras)
    both = model.evaluate(x, [ya, yb], sample_weight=w, batch_size=6, return_dict=True)
    assert both["b_loss"] == pytest.approx(
        float((np.abs(pb - yb)[:, 0] * w).sum() / 6), rel=1e-5)
    model.save(tmp_path / "m.npz")
    loaded = numlstm.load_model(tmp_path / "m.npz")
    again = loaded.evaluate(x, {"a": ya, "b": yb}, sample_weight={"a": w}, batch_size=6,
                            return_dict=True)
    assert again == pytest.approx(logs)
    assert [type(m).__name__ for m in loaded.metrics][-1] == "AUC"


def test_class_weight_reads_one_hot_and_sparse_targets_alike():
    data = load("fit")
    x, y = data["x"], data["y"]
    weights = {0: 1.0, 1: 2.5, 2: 0.5}
    sparse = _keras_classifier(data)
    h1 = sparse.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
                    class_weight=weights)
    onehot = _seq_model()
    onehot.set_weights([data[f"initial/{i}"] for i in range(5)])
    onehot.compile(optimizers.SGD(0.1), "categorical_crossentropy")
    h2 = onehot.fit(x, np.eye(3)[y], batch_size=4, epochs=1, shuffle=False, verbose=0,
                    class_weight=weights)
    assert h2.history["loss"] == pytest.approx(h1.history["loss"], rel=1e-6)
    # train_on_batch: the same weights as sample_weight give the same step
    a, b = _keras_classifier(data), _keras_classifier(data)
    w = np.array([weights[int(c)] for c in y])
    assert a.train_on_batch(x, y, class_weight=weights) == pytest.approx(
        b.train_on_batch(x, y, sample_weight=w))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    seq = Sequential([Input((5, 3)), LSTM(2, return_sequences=True)])
    seq.compile("sgd", "mse")
    with pytest.raises(ValueError, match="class_weight needs an output of shape"):
        seq.fit(np.zeros((2, 5, 3)), np.zeros((2, 5, 2)), class_weight={0: 1.0}, verbose=0)
