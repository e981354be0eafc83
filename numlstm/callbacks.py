"""Training callbacks: ``History``, ``EarlyStopping`` and ``ModelCheckpoint`` (Keras-like).

A callback's hooks receive the epoch index (0-based) and ``logs``, a dict of the epoch's
averages (``loss``, metrics, and ``val_`` versions with validation data).
"""

from __future__ import annotations

import numbers

import numpy as np


class Callback:
    """Base class; ``self.model`` is set by ``fit``. Set ``model.stop_training = True`` to stop
    after the current epoch."""

    def __init__(self):
        self.model = None

    def set_model(self, model) -> None:
        self.model = model

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
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return mode


def _check_monitor(monitor):
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be a log name such as 'val_loss'; got {monitor!r}")
    return monitor


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
        self.monitor = _check_monitor(monitor)
        if not isinstance(min_delta, numbers.Real) or min_delta < 0:
            raise ValueError(f"min_delta must be a number >= 0; got {min_delta!r}")
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or \
                patience < 0:
            raise ValueError(f"patience must be an integer >= 0; got {patience!r}")
        self.min_delta, self.patience = float(min_delta), int(patience)
        self.mode = _monitor_op(self.monitor, mode)
        self.restore_best_weights = bool(restore_best_weights)
        self.stopped_epoch = None

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
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which is not in the "
                             f"logs {sorted(logs)} (use validation data for 'val_' names)")
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
        if not isinstance(filepath, (str, bytes)) and not hasattr(filepath, "__fspath__"):
            raise TypeError(f"filepath must be a path; got {filepath!r}")
        self.filepath = str(filepath)
        self.monitor = _check_monitor(monitor)
        self.save_best_only = bool(save_best_only)
        self.mode = _monitor_op(self.monitor, mode)
        self.best = np.inf if self.mode == "min" else -np.inf
        self.saved: list[str] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            if self.monitor not in logs:
                raise ValueError(f"ModelCheckpoint monitors {self.monitor!r}, which is not in "
                                 f"the logs {sorted(logs)}")
            value = logs[self.monitor]
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.model.save(path)
        self.saved.append(path)
