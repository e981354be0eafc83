"""Training callbacks: ``History``, ``EarlyStopping`` and ``ModelCheckpoint`` (Keras-like).

A callback's hooks receive the epoch index (0-based) and ``logs``, a dict of the epoch's
averages (``loss``, metrics, and ``val_`` versions with validation data).
"""

from __future__ import annotations

import numpy as np

from . import validation as V


class Callback:
    """Base class; ``self.model`` is set by ``fit``. Set ``model.stop_training = True`` to stop
    after the current epoch."""

    def __init__(self):
        self.model = None

    def set_model(self, model) -> None:
        self.model = model

    def check_before_training(self, log_names) -> None:
        """Called by ``fit`` before the first training step with the names its logs will
        have (``loss``, metrics, ``val_`` ones with validation data): raise ``ValueError``
        for a setting that would fail later in training."""

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_batch_end(self, batch, logs=None): ...


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]`` is a list, one value an epoch;
    ``history.epoch`` the epoch indices."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def _monitor_op(monitor: str, mode: str):
    mode = V.check_monitor_mode(mode)
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return mode


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs; with ``restore_best_weights`` put back the weights of the best epoch.

    Parameters
    ----------
    monitor : str, default "val_loss"
    min_delta : float ≥ 0, default 0
    patience : int ≥ 0, default 0
    mode : {"auto", "min", "max"}; "auto" maximises names containing "acc"
    restore_best_weights : bool, default False
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 restore_best_weights=False):
        super().__init__()
        self.monitor = V.check_monitor(monitor)
        self.min_delta = V.check_non_negative_float(min_delta, "min_delta")
        self.patience = V.check_int_at_least(patience, "patience", 0)
        self.mode = _monitor_op(self.monitor, mode)
        self.restore_best_weights = V.check_bool(restore_best_weights, "restore_best_weights")
        self.stopped_epoch = None

    def check_before_training(self, log_names) -> None:
        V.check_monitored_in_logs(self.monitor, dict.fromkeys(log_names), "EarlyStopping",
                                  " (use validation data for 'val_' names)")

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_weights = None
        self.best_epoch = None
        self.stopped_epoch = None

    def _improved(self, value) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        V.check_monitored_in_logs(self.monitor, logs, "EarlyStopping",
                                  " (use validation data for 'val_' names)")
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model after every epoch, or only when ``monitor`` improved
    (``save_best_only=True``). ``filepath`` may contain ``{epoch}`` and log names, e.g.
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"`` (epochs counted from 1)."""

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__()
        self.filepath = V.check_path_like(filepath, "filepath")
        self.monitor = V.check_monitor(monitor)
        self.save_best_only = V.check_bool(save_best_only, "save_best_only")
        self.mode = _monitor_op(self.monitor, mode)
        self.best = np.inf if self.mode == "min" else -np.inf
        self.saved: list[str] = []

    def check_before_training(self, log_names) -> None:
        """The path template formats with the logs training will produce, into a folder that
        exists, and a monitored name is among them."""
        if self.save_best_only:
            V.check_monitored_in_logs(self.monitor, dict.fromkeys(log_names),
                                      "ModelCheckpoint")
        V.check_path_template(self.filepath, "filepath", log_names)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            V.check_monitored_in_logs(self.monitor, logs, "ModelCheckpoint")
            value = logs[self.monitor]
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.model.save(path)
        self.saved.append(path)
