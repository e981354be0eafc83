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
