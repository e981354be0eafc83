"""The public Callback API (Keras hook names) and the Keras callbacks numlstm provides."""

import csv

import numpy as np
import pytest

from numlstm import callbacks, optimizers
from numlstm.layers import LSTM, Dense, Dropout, Input
from numlstm.models import Sequential


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5, 3)), rng.integers(0, 3, n)


def model(seed=1, lr=0.05):
    m = Sequential([Input((5, 3)), LSTM(4), Dropout(0.2), Dense(3, activation="softmax")],
                   seed=seed)
    m.compile(optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


class Recorder(callbacks.Callback):
    """Written as for Keras: no super().__init__(), only hooks."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", self.params["epochs"], self.params["steps"]))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, "loss" in logs))

    def on_test_begin(self, logs=None):
        self.calls.append(("test_begin",))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))
        if epoch == 1:
            self.model.stop_training = True


def test_user_callback_gets_keras_hooks_model_and_params():
    x, y = data()
    recorder = Recorder()
    m = model()
    history = m.fit(x, y, batch_size=8, epochs=5, validation_data=(x[:4], y[:4]), verbose=0,
                    callbacks=[recorder])
    assert history.epoch == [0, 1]
    assert recorder.calls[0] == ("train_begin", 5, 2)
    assert recorder.calls[1:5] == [("epoch_begin", 0), ("batch_end", 0, True),
                                   ("batch_end", 1, True), ("test_begin",)]
    assert recorder.calls[5] == ("epoch_end", 0, ["accuracy", "loss", "val_accuracy",
                                                  "val_loss"])
    predicted = []
    m.predict(x, batch_size=8, callbacks=[callbacks.LambdaCallback(
        on_predict_batch_end=lambda b, logs: predicted.append(logs["outputs"][0].shape))])
    assert predicted == [(8, 3), (8, 3)]


def test_early_stopping_keras3_rule_baseline_start_and_restore():
    m = model()
    stop = callbacks.EarlyStopping(monitor="loss", patience=2, restore_best_weights=True,
                                   start_from_epoch=1)
    stop.set_model(m)
    stop.on_train_begin()
    weights = []
    for epoch, value in enumerate([9.0, 1.0, 1.5, 1.2, 0.5]):
        m.set_weights([w + epoch for w in m.get_weights()])
        weights.append(m.get_weights())
        stop.on_epoch_end(epoch, {"loss": value})
        if m.stop_training:
            break
    # epoch 0 not monitored; best at epoch 1; two epochs without improvement stop at 3
    assert stop.stopped_epoch == 3 and stop.best_epoch == 1
    stop.on_train_end()
    for a, b in zip(m.get_weights(), weights[1]):
        np.testing.assert_array_equal(a, b)
    m.stop_training = False
    base = callbacks.EarlyStopping(monitor="loss", patience=1, baseline=0.1)
    base.set_model(m)
    base.on_train_begin()
    base.on_epoch_end(0, {"loss": 1.0})
    base.on_epoch_end(1, {"loss": 0.9})           # improves, but not past the baseline
    assert not m.stop_training                    # (an improving epoch never stops)
    base.on_epoch_end(2, {"loss": 0.95})
    assert m.stop_training and base.stopped_epoch == 2


def test_reduce_lr_on_plateau_and_scheduler():
    m = model(lr=0.1)
    reduce = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, cooldown=1,
                                         min_lr=0.02)
    reduce.set_model(m)
    reduce.on_train_begin()
    rates = []
    for epoch, value in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        logs = {"loss": value}
        reduce.on_epoch_end(epoch, logs)
        rates.append(logs["learning_rate"])
    # Keras 3 logs the rate before a reduction; a cooldown of 1 ends at the next epoch
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.02, 0.02])
    assert m.optimizer.learning_rate == pytest.approx(0.02)
    with pytest.raises(ValueError, match="factor must be"):
        callbacks.ReduceLROnPlateau(factor=1.5)
    x, y = data()
    m = model(lr=0.1)
    history = m.fit(x, y, epochs=3, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.025, 0.0125])


def test_csv_logger_header_rows_append_and_separator(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    m = model()
    m.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path, separator=";")])
    m.fit(x, y, epochs=1, verbose=0,
          callbacks=[callbacks.CSVLogger(path, separator=";", append=True)])
    rows = list(csv.reader(path.open(), delimiter=";"))
    assert rows[0] == ["epoch", "accuracy", "loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "0"]
    assert float(rows[3][2]) == pytest.approx(m.history.history["loss"][0])
    with pytest.raises(ValueError, match="does not exist"):
        m.fit(x, y, verbose=0, callbacks=[callbacks.CSVLogger(tmp_path / "no" / "l.csv")])


def test_model_checkpoint_weights_only_and_batch_frequency(tmp_path):
    x, y = data()
    m = model()
    weights_only = callbacks.ModelCheckpoint(str(tmp_path / "w{epoch}.npz"),
                                             save_weights_only=True)
    every = callbacks.ModelCheckpoint(str(tmp_path / "b{epoch}-{loss:.3f}.npz"), save_freq=3)
    m.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[weights_only, every])
    assert [p.rsplit("/", 1)[1] for p in weights_only.saved] == ["w1.npz", "w2.npz"]
    assert len(every.saved) == 2                  # batches 3 and 6 of 8
    other = model(seed=9)
    other.load_weights(weights_only.saved[-1])
    for a, b in zip(other.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.ModelCheckpoint(str(tmp_path / "x.npz"), save_freq="batch")


def test_terminate_on_nan_stops():
    m = model()
    stop = callbacks.TerminateOnNaN()
    stop.set_model(m)
    stop.on_train_batch_end(0, {"loss": float("nan")})
    assert m.stop_training


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_terminate_on_nan_in_fit_keeps_the_last_finite_weights(capsys):
    # SGD with a huge rate on a linear regression diverges: the loss overflows to inf
    # within a few batches. fit stops there itself, before the callbacks' batch end: the
    # non-finite batch's update is not applied and the epoch is not completed.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 2, 3)) * 100
    y = rng.standard_normal((16, 1)) * 100
    m = Sequential([Input((2, 3)), LSTM(2, seed=0), Dense(1, seed=0)], seed=0,
                   backend="numpy")
    m.compile(optimizers.SGD(1e6), "mse")
    after_batch = []
    record = callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: after_batch.append(m.get_weights()))
    with pytest.warns(RuntimeWarning, match="loss became non-finite"):
        history = m.fit(x, y, batch_size=2, epochs=3, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN(), record])
    assert m.stop_training
    assert history.epoch == []                    # the epoch did not end
    assert 1 <= len(after_batch) < 8              # stopped inside the first epoch
    for a, b in zip(m.get_weights(), after_batch[-1]):
        np.testing.assert_array_equal(a, b)       # the last finite batch's weights
        assert np.all(np.isfinite(a))
    assert "Invalid loss" not in capsys.readouterr().out    # fit stopped before it


def test_learning_rate_callbacks_refuse_a_schedule_before_anything_is_written(tmp_path):
    x, y = data()
    log = tmp_path / "log.csv"
    log.write_text("kept\n")
    for callback, name in [(callbacks.LearningRateScheduler(lambda epoch, lr: lr),
                            "LearningRateScheduler"),
                           (callbacks.ReduceLROnPlateau(monitor="loss"), "ReduceLROnPlateau")]:
        m = model()
        m.compile(optimizers.SGD(optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)),
                  "sparse_categorical_crossentropy")
        with pytest.raises(ValueError, match=f"{name} sets the optimizer's learning_rate.*"
                                             "schedule ExponentialDecay"):
            m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(log), callback])
        assert log.read_text() == "kept\n"       # CSVLogger had not truncated it


def test_model_checkpoint_skips_epochs_without_validation(tmp_path):
    x, y = data()
    best = callbacks.ModelCheckpoint(str(tmp_path / "best.npz"), save_best_only=True)
    named = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}-{val_loss:.3f}.npz"))
    m = model()
    with pytest.warns(RuntimeWarning) as caught:
        history = m.fit(x, y, epochs=4, verbose=0, validation_data=(x[:4], y[:4]),
                        validation_freq=2, callbacks=[best, named])
    messages = [str(w.message) for w in caught if "ModelCheckpoint" in str(w.message)]
    assert sum("the monitored 'val_loss' is not in its logs" in t for t in messages) == 2
    assert sum("names 'val_loss', which is not in its logs" in t for t in messages) == 2
    val = history.history["val_loss"]
    assert [p.rsplit("/", 1)[1] for p in named.saved] == [f"e2-{val[0]:.3f}.npz",
                                                          f"e4-{val[1]:.3f}.npz"]
    assert len(best.saved) == (2 if val[1] < val[0] else 1)
    assert best.best == min(val)


def test_whole_model_savers_refuse_an_unsavable_model_before_training(tmp_path):
    x, y = data()
    def spread(y_true, y_pred):                   # a Python function: not savable
        return y_pred.max(axis=-1) - y_pred.min(axis=-1)
    for callback, name in [(callbacks.BackupAndRestore(tmp_path / "b"), "BackupAndRestore"),
                           (callbacks.ModelCheckpoint(str(tmp_path / "m.npz")),
                            "ModelCheckpoint")]:
        m = model()
        m.compile(optimizers.Adam(0.05), "sparse_categorical_crossentropy",
                  metrics=[spread])
        epochs = []
        with pytest.raises(ValueError, match=f"{name} saves the whole model.*'spread' is a "
                                             "Python function"):
            m.fit(x, y, epochs=1, verbose=0, callbacks=[callback, callbacks.LambdaCallback(
                on_epoch_begin=lambda e, logs: epochs.append(e))])
        assert epochs == []                        # refused before the first epoch
    weights = callbacks.ModelCheckpoint(str(tmp_path / "w.npz"), save_weights_only=True)
    m.fit(x, y, epochs=1, verbose=0, callbacks=[weights])     # weights need no config
    assert [p.rsplit("/", 1)[1] for p in weights.saved] == ["w.npz"]


class Crash(callbacks.Callback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("simulated crash")


def test_backup_and_restore_resumes_bit_identical(tmp_path):
    x, y = data(24)
    straight = model()
    straight.fit(x, y, batch_size=5, epochs=4, verbose=0)

    backup = tmp_path / "backup"
    crashed = model()
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(x, y, batch_size=5, epochs=4, verbose=0,
                    callbacks=[callbacks.BackupAndRestore(backup), Crash(1)])
    assert (backup / "backup.json").exists()
    resumed = model()                            # a fresh process: same code, new model
    restore = callbacks.BackupAndRestore(backup)
    epochs_run = []
    history = resumed.fit(x, y, batch_size=5, epochs=4, verbose=0, callbacks=[
        restore, callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs_run.append(e))])
    assert restore.restored_epoch == 1 and epochs_run == [2, 3]
    assert history.epoch == [2, 3]
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not list(backup.iterdir())             # deleted at the successful end
    with pytest.raises(ValueError, match="save_freq='epoch' only"):
        callbacks.BackupAndRestore(backup, save_freq=10)


class CrashAtBegin(callbacks.Callback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("simulated crash")


def test_backup_and_restore_restores_a_reduced_learning_rate(tmp_path):
    # ReduceLROnPlateau halves the rate after epoch 1 down to min_lr, where it stays: its own
    # counters (which start afresh on resume, as in Keras) then no longer matter, so the
    # resumed run must match the uninterrupted one exactly -- if the lowered rate is restored
    x, y = data(24)
    def plateau():
        return callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
                                           min_delta=10.0, min_lr=0.025)
    straight = model()
    full = straight.fit(x, y, batch_size=5, epochs=4, verbose=0, callbacks=[plateau()])
    assert full.history["learning_rate"] == pytest.approx([0.05, 0.05, 0.025, 0.025])

    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        model().fit(x, y, batch_size=5, epochs=4, verbose=0,
                    callbacks=[plateau(), callbacks.BackupAndRestore(backup), CrashAtBegin(2)])
    resumed = model()
    history = resumed.fit(x, y, batch_size=5, epochs=4, verbose=0,
                          callbacks=[plateau(), callbacks.BackupAndRestore(backup)])
    assert history.epoch == [2, 3]
    assert history.history["learning_rate"] == full.history["learning_rate"][2:]
    assert history.history["loss"] == full.history["loss"][2:]
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_backup_and_restore_resumes_a_schedule(tmp_path):
    x, y = data(24)
    def scheduled():
        m = model()
        m.compile(optimizers.Adam(optimizers.schedules.ExponentialDecay(0.05, 3, 0.5)),
                  "sparse_categorical_crossentropy")
        return m
    straight = scheduled()
    straight.fit(x, y, batch_size=5, epochs=3, verbose=0)
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        scheduled().fit(x, y, batch_size=5, epochs=3, verbose=0,
                        callbacks=[callbacks.BackupAndRestore(backup), CrashAtBegin(2)])
    resumed = scheduled()
    resumed.fit(x, y, batch_size=5, epochs=3, verbose=0,
                callbacks=[callbacks.BackupAndRestore(backup)])
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 15
    assert resumed.optimizer.current_learning_rate == straight.optimizer.current_learning_rate
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_stop_inside_an_epoch_still_ends_it_as_in_keras():
    x, y = data()
    ended = []
    stopper = callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: setattr(m, "stop_training", b == 0),
        on_epoch_end=lambda e, logs: ended.append((e, sorted(logs))))
    m = model()
    history = m.fit(x, y, batch_size=4, epochs=3, validation_data=(x[:4], y[:4]), verbose=0,
                    callbacks=[stopper])
    assert history.epoch == [0]
    assert ended == [(0, ["accuracy", "loss", "val_accuracy", "val_loss"])]
    with pytest.raises(ValueError, match="unknown hook 'on_epoch_ends'"):
        callbacks.LambdaCallback(on_epoch_ends=print)
