"""Sequential models: the Keras-like API, input checks before training, reproducibility,
backends, callbacks and the optimizers' update rules."""

import numpy as np
import pytest

import numlstm
from numlstm import callbacks, optimizers
from numlstm.layers import LSTM, Dense, Dropout, Input
from numlstm.models import Sequential

from conftest import CANDIDATE_BACKENDS, backend_param


def toy(n=24, t=5, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, t, d)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.int64)
    return x, y


def classifier(seed=0, backend=None, dropout=0.0):
    model = Sequential([Input((5, 3)), LSTM(6, dropout=dropout, recurrent_dropout=dropout),
                        Dense(2, activation="softmax")], seed=seed, backend=backend)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_shapes_summary_and_backend_name():
    model = classifier()
    assert model.input_shape == (None, 5, 3) and model.output_shape == (None, 2)
    assert model.backend_name == numlstm.current_backend_name()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "lstm (LSTM)" in text and "(None, 6)" in text and "dense (Dense)" in text
    params = 4 * 6 * (3 + 6 + 1) + 6 * 2 + 2
    assert lines[-3:] == [f"Total params: {params:,}", f"Trainable params: {params:,}",
                          "Non-trainable params: 0"]
    with numlstm.use_backend("numpy"):
        assert model.backend_name == "numpy"
    assert Sequential([LSTM(3)], backend="numpy").backend_name == "numpy"


def test_fit_history_evaluate_predict():
    x, y = toy()
    model = classifier()
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.25)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values()) and history.epoch == [0, 1, 2]
    loss, accuracy = model.evaluate(x, y, batch_size=5)
    logs = model.evaluate(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(loss, rel=1e-6) and 0 <= accuracy <= 1
    pred = model.predict(x, batch_size=7)
    assert pred.shape == (24, 2) and isinstance(pred, np.ndarray)
    np.testing.assert_allclose(pred, model.predict(x, batch_size=24), atol=1e-6)
    np.testing.assert_allclose(model(x), pred, atol=1e-6)
    with pytest.raises(TypeError, match="x must be an array of floats"):
        model(object())
    # accuracy is the fraction of argmax hits on the same predictions
    assert accuracy == pytest.approx(np.mean(pred.argmax(1) == y))
    plain = Sequential([Input((5, 3)), LSTM(2)], seed=0)
    plain.compile("sgd", "mse")
    assert isinstance(plain.evaluate(x, np.zeros((24, 2), np.float32)), float)


def test_validation_split_takes_the_last_fraction_like_keras():
    x, y = toy()
    a = classifier(seed=1).fit(x, y, batch_size=6, epochs=2, verbose=0, validation_split=0.25)
    b = classifier(seed=1).fit(x[:18], y[:18], batch_size=6, epochs=2, verbose=0,
                               validation_data=(x[18:], y[18:]))
    assert a.history == b.history


def test_verbose_modes(capsys):
    x, y = toy()
    classifier().fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    classifier().fit(x, y, batch_size=8, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("Epoch 2/2") and "loss: " in lines[1]
    classifier().fit(x, y, batch_size=8, epochs=1, verbose=1)   # not a terminal: one line
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Epoch 1/1") and "accuracy: " in lines[0]


def test_verbose_1_draws_a_live_bar_in_a_terminal(monkeypatch, capsys):
    from rich.console import Console
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    x, y = toy()
    classifier().fit(x, y, batch_size=8, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "3/3" in out and "ETA" in out and "accuracy: " in out
    assert "━" in out                                          # the bar itself


@pytest.mark.parametrize("case, error, message", [
    (lambda x, y: (x, y[:-1]), ValueError, "same number of samples; got 24 and 23"),
    (lambda x, y: (x[:, :, :2], y), ValueError, r"x must have shape \(batch, timesteps=5, "
                                                r"features=3\); got shape \(24, 5, 2\)"),
    (lambda x, y: (x[:, 0], y), ValueError, "x must be 3-D"),
    (lambda x, y: (x, y + 1), ValueError, r"class indices must be in \[0, 2\)"),
    (lambda x, y: (x, np.where(y == 1, np.nan, 0)), ValueError, "finite"),
    (lambda x, y: (np.where(x > 2, np.inf, x), y), ValueError, "finite values"),
    (lambda x, y: (x, y.astype(str)), TypeError, "integer class indices"),
    (lambda x, y: (x, y[:, None, None]), ValueError, "must have shape"),
])
def test_bad_input_fails_before_any_training_step(case, error, message):
    x, y = toy()
    model = classifier()
    before = model.get_weights()
    with pytest.raises(error, match=message):
        model.fit(*case(x, y), epochs=1, verbose=0)
    assert model.optimizer.iterations == 0
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_compile_and_argument_errors():
    x, y = toy()
    model = Sequential([Input((5, 3)), LSTM(2)])
    with pytest.raises(ValueError, match="must be compiled"):
        model.fit(x, y)
    with pytest.raises(ValueError, match="must be compiled"):
        model.evaluate(x, y)
    with pytest.raises(ValueError, match="loss must be one of"):
        model.compile("adam", "hinge")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        model.compile("ftrl", "mse")
    with pytest.raises(ValueError, match="metrics must be names from"):
        model.compile("adam", "mse", metrics=["f1"])
    with pytest.raises(TypeError, match="metrics must be a list"):
        model.compile("adam", "mse", metrics="accuracy")
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="validation_split must be a number in"):
        model.fit(x, np.zeros((24, 2)), validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2"):
        model.fit(x, np.zeros((24, 2)), verbose=3)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        model.predict(x, batch_size=2.5)
    with pytest.raises(ValueError, match="model's output shape"):
        model.fit(x, np.zeros((24, 3)), verbose=0)
    with pytest.raises(ValueError, match="Input must be the first"):
        Sequential([LSTM(2), Input((5, 3))])
    with pytest.raises(TypeError, match="numlstm layers"):
        Sequential([object()])
    # several outputs are fine from the last layer (predict returns the list, as Keras);
    # only a layer after it is refused
    with pytest.raises(ValueError, match="return_state=True"):
        Sequential([LSTM(2, return_state=True), Dense(1)])
    with pytest.raises(ValueError, match="merge_mode=None"):
        Sequential([numlstm.Bidirectional(LSTM(2), merge_mode=None), Dense(1)])


def test_same_seed_same_weights_and_same_training_run():
    x, y = toy()
    a, b, c = classifier(seed=3, dropout=0.2), classifier(seed=3, dropout=0.2), \
        classifier(seed=4, dropout=0.2)
    for w1, w2 in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(w1, w2)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    ha = a.fit(x, y, batch_size=8, epochs=2, verbose=0)
    hb = b.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert ha.history == hb.history
    for w1, w2 in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(w1, w2)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_one_training_step_numpy_equals_numba(optimizer):
    """Same weights, same batch, same dropout masks: the same new weights on both backends."""
    x, y = toy(n=8)
    models = []
    for backend in ("numpy", "numba"):
        model = Sequential([Input((5, 3)), LSTM(6, return_sequences=True, dropout=0.2,
                                                recurrent_dropout=0.3),
                            LSTM(4), Dropout(0.1), Dense(2, activation="softmax")],
                           seed=5, backend=backend)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        models.append(model)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_set_backend_moves_a_trained_model_with_identical_weights():
    x, y = toy()
    model = classifier(backend="numba")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    weights = model.get_weights()
    on_numba = model.predict(x)
    model.set_backend("numpy")
    assert model.backend_name == "numpy" and model.layers[0].backend == "numpy"
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(model.predict(x), on_numba, atol=1e-5)
    with pytest.raises(ValueError, match="backend must be one of"):
        model.set_backend("tpu")


def test_early_stopping_restores_the_best_weights():
    x, y = toy()
    model = classifier()
    model.compile(optimizer=optimizers.SGD(learning_rate=5.0), loss="sparse_categorical_"
                  "crossentropy")                  # a rate that makes the loss jump about
    seen = []

    class Record(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.get_weights())

    stop = callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    history = model.fit(x, y, batch_size=24, epochs=30, verbose=0, callbacks=[Record(), stop],
                        shuffle=False)
    losses = history.history["loss"]
    assert stop.stopped_epoch is not None and len(losses) == stop.stopped_epoch + 1 < 30
    best = int(np.argmin(losses))
    assert best == stop.best_epoch
    for a, b in zip(model.get_weights(), seen[best]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not in the logs"):
        classifier().fit(x, y, epochs=1, verbose=0,
                         callbacks=[callbacks.EarlyStopping(monitor="val_loss")])


def test_optimizer_update_rules_are_keras_rules():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(3)]

    def run(opt):
        w = w0.copy()
        for g in grads:
            opt.apply_gradients([g], [w])
        return w

    # SGD with Nesterov momentum
    w, v = w0.copy(), np.zeros_like(w0)
    for g in grads:
        v = 0.9 * v - 0.1 * g
        w = w + 0.9 * v - 0.1 * g
    np.testing.assert_allclose(run(optimizers.SGD(0.1, momentum=0.9, nesterov=True)), w)
    # Adam (Keras 3 form: bias correction folded into the step size)
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, 1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(run(optimizers.Adam(0.01)), w)
    # RMSprop with momentum
    w, a, m = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for g in grads:
        a = 0.9 * a + 0.1 * g * g
        m = 0.5 * m + 0.01 * g / np.sqrt(a + 1e-7)
        w = w - m
    np.testing.assert_allclose(run(optimizers.RMSprop(0.01, momentum=0.5)), w)
    # clipnorm is per variable; clipvalue per element
    big = np.array([3.0, 4.0])
    w = np.zeros(2)
    optimizers.SGD(1.0, clipnorm=1.0).apply_gradients([big], [w])
    np.testing.assert_allclose(w, [-0.6, -0.8])
    w = np.zeros(2)
    optimizers.SGD(1.0, clipvalue=3.5).apply_gradients([big], [w])
    np.testing.assert_allclose(w, [-3.0, -3.5])
    assert optimizers.get("Adam").get_config()["epsilon"] == 1e-7
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        optimizers.SGD(-1.0)


def test_a_model_learns_a_small_sequence_task():
    """Sign of the sum of channel 0 over 5 steps: an LSTM gets it from 96 samples."""
    x, y = toy(n=128, seed=1)
    model = classifier(seed=0)
    model.compile(optimizer=optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:96], y[:96], batch_size=16, epochs=25, verbose=0)
    _, accuracy = model.evaluate(x[96:], y[96:])
    assert accuracy >= 0.9


@pytest.mark.parametrize("backend", [backend_param(n) for n in CANDIDATE_BACKENDS])
def test_every_layer_trains_on_every_backend_like_the_reference(backend):
    """Masking, Bidirectional, stacked LSTMs with dropout, Dropout and Dense: one Adam step
    gives the reference's new weights (the front-end's own math runs in each backend's xp)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 2)).astype(np.float32)
    x[1, 2] = 0.0
    y = rng.integers(0, 2, 4)
    models = []
    for name in ("numpy", backend):
        model = Sequential([Input((3, 2)), numlstm.Masking(),
                            numlstm.Bidirectional(LSTM(3, return_sequences=True, dropout=0.2,
                                                       recurrent_dropout=0.2)),
                            LSTM(2), Dropout(0.2), Dense(2, activation="softmax")],
                           seed=1, backend=name)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        models.append(model)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    np.testing.assert_allclose(models[0].predict(x), models[1].predict(x), atol=1e-5)


def test_adding_problem_short_variant_is_learned():
    """The adding problem with 10 timesteps (the example runs 100): an LSTM(8) goes from the
    mean predictor's MSE (about 0.17) to below 0.01 in a few epochs."""
    x, y = numlstm.datasets.adding_problem(1024, timesteps=10, seed=0)
    x_test, y_test = numlstm.datasets.adding_problem(256, timesteps=10, seed=1)
    model = Sequential([Input((10, 2)), LSTM(8), Dense(1)], seed=0, backend="numba")
    model.compile(optimizer=optimizers.Adam(0.02), loss="mse")
    baseline = float(((y_test - y.mean()) ** 2).mean())
    model.fit(x, y, batch_size=32, epochs=12, verbose=0)
    assert baseline > 0.1 and model.evaluate(x_test, y_test) <= 0.01


def _crossentropy_model(loss, units, activation, from_logits=False):
    model = Sequential([Input((5, 3)), LSTM(4), Dense(units, activation=activation)], seed=3)
    model.compile(optimizer="adam", loss=numlstm.losses.get(
        {"name": loss, "from_logits": from_logits}))
    return model


@pytest.mark.parametrize("loss, units, activation, from_logits", [
    ("categorical_crossentropy", 2, "softmax", False),
    ("categorical_crossentropy", 2, None, True),
    ("binary_crossentropy", 1, "sigmoid", False),
    ("binary_crossentropy", 1, None, True),
])
def test_crossentropy_takes_integer_and_boolean_targets_like_keras(loss, units, activation,
                                                                    from_logits):
    x, labels = toy()
    onehot = np.eye(2, dtype=np.int64)[labels] if units == 2 else labels[:, None]
    reference = _crossentropy_model(loss, units, activation, from_logits)
    reference.fit(x, onehot.astype(np.float32), epochs=1, batch_size=8, verbose=0)
    for targets in (onehot, onehot.astype(np.uint8), onehot.astype(bool)):
        model = _crossentropy_model(loss, units, activation, from_logits)
        model.fit(x, targets, epochs=1, batch_size=8, verbose=0)
        for a, b in zip(model.get_weights(), reference.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert model.evaluate(x, targets) == reference.evaluate(x, onehot.astype(np.float32))


@pytest.mark.parametrize("loss, units, activation, from_logits", [
    ("categorical_crossentropy", 2, "softmax", False),
    ("binary_crossentropy", 1, "sigmoid", False),
    ("binary_crossentropy", 1, None, True),
])
@pytest.mark.parametrize("bad", [2, -1, 1.5])
def test_crossentropy_targets_outside_0_1_fail_before_training(loss, units, activation,
                                                                from_logits, bad):
    x, labels = toy()
    targets = (np.eye(2)[labels] if units == 2 else labels[:, None]).astype(
        np.int64 if isinstance(bad, int) else np.float32)
    targets[3, 0] = bad
    model = _crossentropy_model(loss, units, activation, from_logits)
    before = model.get_weights()
    with pytest.raises(ValueError, match=rf"y must hold targets in \[0, 1\] for {loss}"):
        model.fit(x, targets, epochs=1, verbose=0)
    assert model.optimizer.iterations == 0
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_generated_layer_names_are_unique_and_survive_save_and_load(tmp_path):
    model = Sequential([Input((5, 3)), LSTM(4, return_sequences=True),
                        LSTM(4, return_sequences=True),
                        numlstm.Bidirectional(LSTM(2, return_sequences=True)),
                        numlstm.Bidirectional(LSTM(2)), Dense(3, name="head"), Dense(2),
                        Dense(2)], seed=0)
    names = [layer.name for layer in model.layers]
    assert names == ["lstm", "lstm_1", "bidirectional_lstm", "bidirectional_lstm_1", "head",
                     "dense", "dense_1"]
    loaded = numlstm.load_model(model.save(tmp_path / "m.npz"))
    assert [layer.name for layer in loaded.layers] == names
    lines = []
    loaded.summary(print_fn=lines.append)
    assert any(line.startswith("lstm_1 (LSTM)") for line in lines)
    # a file written when repeated layers shared a name loads with unique names
    model.layers[1].name = "lstm"
    old = numlstm.load_model(model.save(tmp_path / "old.npz"))
    assert [layer.name for layer in old.layers] == names


def test_duplicate_chosen_layer_names_are_refused():
    with pytest.raises(ValueError, match="name 'enc' is already used"):
        Sequential([Input((5, 3)), LSTM(4, return_sequences=True, name="enc"),
                    LSTM(4, name="enc")])
    with pytest.raises(ValueError, match="name 'head' is already used"):
        Sequential([LSTM(4), Dense(2, name="head"), Dense(2, name="head")])
    # a chosen name may equal another layer's generated one only when they differ
    model = Sequential([LSTM(4, return_sequences=True), LSTM(4, name="lstm_1"), Dense(1)])
    assert [layer.name for layer in model.layers] == ["lstm", "lstm_1", "dense"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"epochs": -1}, ValueError, "epochs must be an integer >= 0; got epochs=-1"),
    ({"epochs": 1.0}, TypeError, "epochs must be an integer >= 0; got float 1.0"),
    ({"verbose": True}, ValueError, "verbose must be 0, 1 or 2; got True"),
    ({"validation_split": "0.1"}, ValueError, r"validation_split must be a number in \[0, 1\)"),
    ({"validation_split": 0.99}, ValueError, "leaves 0 training and 24 validation"),
    ({"validation_data": [np.zeros((2, 5, 3))]}, TypeError,
     r"validation_data must be a tuple \(x_val, y_val\); got list"),
    ({"validation_data": (np.zeros((2, 5, 3)), np.zeros(3, np.int64))}, ValueError,
     "validation_data x and validation_data y must have the same number of samples; got 2 "
     "and 3"),
    ({"callbacks": [object()]}, TypeError, "callbacks must be a list of numlstm.callbacks"),
    ({"callbacks": callbacks.History()}, TypeError, "callbacks must be a list"),
    ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1; got batch_size=0"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
])
def test_fit_argument_checks_name_the_argument(kwargs, error, message):
    x, y = toy()
    model = classifier()
    with pytest.raises(error, match=message):
        model.fit(x, y, **{"verbose": 0, **kwargs})
    assert model.optimizer.iterations == 0


def test_model_level_checks_name_the_argument():
    x, y = toy()
    model = classifier()
    with pytest.raises(ValueError, match="y is required"):
        model.fit(x, None)
    with pytest.raises(TypeError, match="y must be an array of targets; got int"):
        model.evaluate(x, 3)
    with pytest.raises(ValueError, match="x must contain at least one sample; got 0"):
        model.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(TypeError, match="weights must be a list of arrays; got ndarray"):
        model.set_weights(np.zeros(3))
    with pytest.raises(ValueError, match="the model has 5 weight arrays; got 1"):
        model.set_weights([np.zeros(3)])
    with pytest.raises(TypeError, match="layers must be a list of layers; got LSTM"):
        Sequential(LSTM(2))
    stateful = Sequential([Input((5, 3), batch_size=4), LSTM(2, stateful=True)])
    with pytest.raises(ValueError, match="batch_size must be 4, the fixed batch size"):
        stateful.predict(x, batch_size=8)
    with pytest.raises(ValueError, match="number of samples must be a multiple of the batch "
                                         "size 4; got 23"):
        stateful.predict(x[:23], batch_size=4)


@pytest.mark.parametrize("make, error, message", [
    (lambda: callbacks.EarlyStopping(monitor=3), TypeError,
     "monitor must be a log name such as 'val_loss'; got int 3"),
    (lambda: callbacks.EarlyStopping(min_delta=-0.1), ValueError,
     "min_delta must be a finite number >= 0; got min_delta=-0.1"),
    (lambda: callbacks.EarlyStopping(min_delta=True), TypeError, "min_delta must be a"),
    (lambda: callbacks.EarlyStopping(patience=1.5), TypeError,
     "patience must be an integer >= 0; got float 1.5"),
    (lambda: callbacks.EarlyStopping(mode="up"), ValueError,
     "mode must be 'auto', 'min' or 'max'; got 'up'"),
    (lambda: callbacks.EarlyStopping(restore_best_weights="yes"), TypeError,
     "restore_best_weights must be True or False"),
    (lambda: callbacks.ModelCheckpoint(7), TypeError, "filepath must be a path; got int 7"),
    (lambda: callbacks.ModelCheckpoint("m.npz", save_best_only=1), TypeError,
     "save_best_only must be True or False"),
    (lambda: optimizers.Adam(learning_rate="fast"), TypeError,
     "learning_rate must be a number; got str 'fast'"),
    (lambda: optimizers.SGD(0.1, momentum=1.0), ValueError, r"momentum must be in \[0.0, 1.0\)"),
    (lambda: optimizers.SGD(0.1, nesterov=1), TypeError, "nesterov must be True or False"),
    (lambda: optimizers.get({"name": "ftrl"}), ValueError,
     "optimizer config names an unknown optimizer 'ftrl'"),
    (lambda: optimizers.get(3), TypeError,
     "optimizer must be a name such as 'adam' or an Optimizer object; got int 3"),
    (lambda: numlstm.losses.get("hinge"), ValueError,
     "loss must be one of .* or a Loss object; got 'hinge'"),
    (lambda: numlstm.losses.get({"name": "hinge"}), ValueError,
     "loss config names an unknown loss 'hinge'"),
    (lambda: numlstm.losses.get(None), TypeError, "loss must be a name such as 'mse'"),
    (lambda: numlstm.losses.get({"name": "binary_crossentropy", "from_logits": "no"}),
     TypeError, "from_logits must be True or False"),
])
def test_callback_optimizer_and_loss_arguments_are_checked(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_a_monitored_name_missing_from_the_logs_is_named():
    x, y = toy()
    model = classifier()
    with pytest.raises(ValueError, match=r"EarlyStopping monitors 'val_loss', which is not in "
                                         r"the logs \['accuracy', 'loss'\] \(use validation"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping()])
    with pytest.raises(ValueError, match="ModelCheckpoint monitors 'val_acc', which is not in"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.ModelCheckpoint(
            "unused.npz", monitor="val_acc", save_best_only=True)])


def test_a_refused_layer_keeps_its_name():
    model = Sequential([LSTM(4, return_sequences=True, return_state=True)])
    refused = LSTM(2)
    with pytest.raises(ValueError, match="return_state=True"):
        model.add(refused)
    assert refused.name == "lstm" and len(model.layers) == 1


def test_build_checks_name_the_layer_and_the_shape():
    with pytest.raises(ValueError, match=r"layer 'lstm' needs 3-D input \(batch, timesteps, "
                                         r"features\); got a tensor of shape \(None, 3\)"):
        Sequential([Input((5,)), Dense(3), LSTM(2)]).build()
    with pytest.raises(ValueError, match="stateful LSTM 'lstm' needs a fixed batch size"):
        Sequential([Input((5, 3)), LSTM(2, stateful=True)]).build()
    dense = Dense(2)
    dense.build((None, 4))
    with pytest.raises(ValueError, match=r"layer 'dense' was built for 4 input features; the "
                                         r"layer before it gives shape \(None, 3\)"):
        Sequential([Input((3,)), dense]).build()


def test_save_model_without_compile_settings_keeps_architecture_and_weights(tmp_path):
    """save_model(..., include_compile=False) (what numlstm.dask ships): weights and layers
    only, loaded uncompiled, even for a model compiled with a metric no file can hold."""
    from numlstm.archive import load_archive
    from numlstm.models.saving import save_model

    def max_error(y_true, y_pred):
        return np.max(np.abs(y_true - y_pred), axis=-1)

    model = Sequential([Input((4, 2)), LSTM(3, seed=1), Dense(2, seed=2)], seed=0)
    model.compile(optimizers.Nadam(0.01), "mse", metrics=[max_error])
    x = np.random.default_rng(0).normal(size=(6, 4, 2))
    model.fit(x, np.zeros((6, 2)), batch_size=3, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="max_error"):
        model.save(tmp_path / "full.npz")
    save_model(model, tmp_path / "plain.npz", include_compile=False)
    config, arrays = load_archive(tmp_path / "plain.npz")
    assert config["compile"] is None and not any(k.startswith("optimizer/") for k in arrays)
    loaded = numlstm.load_model(tmp_path / "plain.npz")
    assert not loaded.compiled
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
