"""Training callbacks with Keras 3's hooks and behaviour.

A callback's epoch hooks receive the epoch index (0-based) and ``logs``, a dict of the epoch's
averages (``loss``, metrics, and ``val_`` versions with validation data); batch hooks the
batch index within the epoch and the running averages. Subclass :class:`Callback` and
override the hooks you need (the names are Keras's), use ``self.model`` and ``self.params``
(``{"verbose", "epochs", "steps"}``), and set ``self.model.stop_training = True`` to stop
after the current batch or epoch.

Built in: :class:`History`, :class:`EarlyStopping`, :class:`ModelCheckpoint`,
:class:`ReduceLROnPlateau`, :class:`LearningRateScheduler`, :class:`CSVLogger`,
:class:`TerminateOnNaN`, :class:`LambdaCallback`, :class:`BackupAndRestore`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings

import numpy as np

from . import validation as V


class Callback:
    """Base class with every Keras hook (each does nothing). ``fit`` calls
    :meth:`set_model` and :meth:`set_params` before ``on_train_begin``;
    ``on_train_batch_begin``/``end`` call ``on_batch_begin``/``end`` unless overridden (as in
    Keras)."""

    model = None
    params: dict = {}
    #: True for a callback that writes files: under ``numlstm.distributed`` only rank 0 runs
    #: it (every rank sees the same reduced logs, so the others would write the same files).
    writes_files = False

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params) -> None:
        self.params = params

    def check_before_training(self, log_names) -> None:
        """Called by ``fit`` before the first training step with the names its logs will
        have (``loss``, metrics, ``val_`` ones with validation data): raise ``ValueError``
        for a setting that would fail later in training."""

    def _check_model_before_training(self) -> None:
        """Called for ``fit``'s callbacks once every one of them has its model and params,
        before any ``on_train_begin``: raise ``ValueError`` for a model this callback cannot
        work with (so nothing -- e.g. a CSV log -- is written before the refusal)."""

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_batch_begin(self, batch, logs=None): ...

    def on_batch_end(self, batch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): ...

    def on_test_end(self, logs=None): ...

    def on_test_batch_begin(self, batch, logs=None): ...

    def on_test_batch_end(self, batch, logs=None): ...

    def on_predict_begin(self, logs=None): ...

    def on_predict_end(self, logs=None): ...

    def on_predict_batch_begin(self, batch, logs=None): ...

    def on_predict_batch_end(self, batch, logs=None): ...


class CallbackList:
    """The callbacks of one ``fit``/``evaluate``/``predict`` call: sets their model and
    params, and calls a hook on each in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        self.model = model
        # The hooks that run code numlstm does not know (a user's class, a LambdaCallback's
        # functions), by hook name: see call().
        self._user_hooks: dict[str, bool] = {}
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(dict(params))
        if "epochs" in params:
            # a fit (evaluate's and predict's params have no epochs): refuse a model a
            # callback cannot work with before any callback's on_train_begin acts
            for callback in self.callbacks:
                check = getattr(callback, "_check_model_before_training", None)
                if check is not None:
                    check()

    def call(self, hook, *args) -> None:
        """Call ``hook`` on every callback. When one of them runs a user's code there, the
        hooks run as the model's user code (``Model._running_user_code``): a device backend
        reuses no copy of the weights inside them and none made before after them, since
        user code may write weights in place (numlstm's own callbacks change weights only
        through ``set_weights``, which starts a new version itself)."""
        user_code = getattr(self.model, "_running_user_code", None)
        if user_code is not None and self._runs_user_code(hook):
            with user_code():
                for callback in self.callbacks:
                    getattr(callback, hook)(*args)
        else:
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

    def _runs_user_code(self, hook: str) -> bool:
        known = self._user_hooks.get(hook)
        if known is None:
            # on_train_batch_* call on_batch_* unless overridden (see Callback)
            names = {hook, _BATCH_ALIASES.get(hook, hook)}
            known = self._user_hooks[hook] = any(
                isinstance(callback, LambdaCallback)
                or (not type(callback).__module__.startswith("numlstm.")
                    and any(getattr(type(callback), name) is not getattr(Callback, name)
                            for name in names))
                for callback in self.callbacks)
        return known


#: The Keras hooks that call another by default (Callback.on_train_batch_begin/end).
_BATCH_ALIASES = {"on_train_batch_begin": "on_batch_begin",
                  "on_train_batch_end": "on_batch_end"}


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
        mode = "max" if "acc" in monitor or monitor.endswith(("auc", "precision", "recall")) \
            else "min"
    return mode


def _check_verbose(verbose):
    return V.check_int_at_least(verbose, "verbose", 0)


def _require_number_learning_rate(model, who: str) -> None:
    """``who`` sets the optimizer's learning rate, which a schedule does not allow."""
    rate = model.optimizer.learning_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ValueError(f"{who} sets the optimizer's learning_rate, so it needs a number; "
                         f"the optimizer's learning_rate is the schedule {rate!r} (compile "
                         "with a number, or leave the rate to the schedule)")


def _require_savable(model, who: str, hint: str = "") -> None:
    """``who`` writes the whole model with ``model.save``: refuse, before training, a model
    whose configuration or compile settings cannot be written (e.g. a Python-function
    metric), instead of failing at the end of the first epoch."""
    from .models import saving
    try:
        model.get_config()
        if model.compiled:
            if not model._targets:
                model._resolve_targets()
            saving._compile_config(model)     # what save_model writes, without writing it
    except (ValueError, TypeError) as error:
        raise ValueError(f"{who} saves the whole model, and this model cannot be saved: "
                         f"{error}{hint}") from None


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs (Keras 3's rule: a counter grows every epoch from
    ``start_from_epoch`` on and restarts at an improvement that also beats ``baseline``;
    training stops when it reaches ``patience``, never after the first epoch). With
    ``restore_best_weights`` the weights of the best epoch are put back at the end of
    training (or the first monitored epoch's, if none improved).

    Parameters
    ----------
    monitor : str, default "val_loss"
    min_delta : float ≥ 0, default 0
    patience : int ≥ 0, default 0
    verbose : int ≥ 0, default 0 (1: print when stopping and restoring)
    mode : {"auto", "min", "max"}; "auto" maximises names containing "acc" (and auc,
        precision, recall)
    baseline : float, optional; improvements that do not beat it do not reset the counter
    restore_best_weights : bool, default False
    start_from_epoch : int ≥ 0, default 0; epochs before it are not monitored
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = V.check_monitor(monitor)
        self.min_delta = V.check_non_negative_float(min_delta, "min_delta")
        self.patience = V.check_int_at_least(patience, "patience", 0)
        self.verbose = _check_verbose(verbose)
        self.mode = _monitor_op(self.monitor, mode)
        self.baseline = None if baseline is None else V.check_real_in_range(
            baseline, "baseline", low=-math.inf, low_inclusive=True)
        self.restore_best_weights = V.check_bool(restore_best_weights, "restore_best_weights")
        self.start_from_epoch = V.check_int_at_least(start_from_epoch, "start_from_epoch", 0)
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

    def _is_improvement(self, value, reference) -> bool:
        if self.mode == "min":
            return value - reference < -self.min_delta
        return value - reference > self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            if self.monitor.startswith("val_"):
                return                   # an epoch without validation (validation_freq)
            V.check_monitored_in_logs(self.monitor, logs, "EarlyStopping")
        if epoch < self.start_from_epoch:
            return
        value = logs[self.monitor]
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch is not None and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or only its weights, ``save_weights_only=True``) after every epoch
    (``save_freq="epoch"``) or every ``save_freq`` batches, or only when ``monitor``
    improved (``save_best_only=True``). ``filepath`` may contain ``{epoch}`` and log names,
    e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"`` (epochs counted from 1); with an integer
    ``save_freq`` the logs are the running averages of the epoch so far (no ``val_``
    names)."""

    #: Writes files: under numlstm.distributed only rank 0 runs it.
    writes_files = True

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        self.filepath = V.check_path_like(filepath, "filepath")
        self.monitor = V.check_monitor(monitor)
        self.verbose = _check_verbose(verbose)
        self.save_best_only = V.check_bool(save_best_only, "save_best_only")
        self.save_weights_only = V.check_bool(save_weights_only, "save_weights_only")
        self.mode = _monitor_op(self.monitor, mode)
        if save_freq != "epoch":
            if isinstance(save_freq, str):
                raise ValueError(f"save_freq must be 'epoch' or a number of batches; got "
                                 f"{save_freq!r}")
            save_freq = V.check_int_at_least(save_freq, "save_freq", 1)
        self.save_freq = save_freq
        self.best = (np.inf if self.mode == "min" else -np.inf) if initial_value_threshold \
            is None else V.check_real_in_range(initial_value_threshold,
                                               "initial_value_threshold", low=-math.inf)
        self.saved: list[str] = []
        self._batches = 0
        self._epoch = 0

    def check_before_training(self, log_names) -> None:
        """The path template formats with the logs training will produce, into a folder that
        exists, and a monitored name is among them."""
        names = log_names if self.save_freq == "epoch" else [
            n for n in log_names if not n.startswith("val_")]
        if self.save_best_only:
            V.check_monitored_in_logs(self.monitor, dict.fromkeys(names), "ModelCheckpoint")
        V.check_path_template(self.filepath, "filepath", names)

    def _check_model_before_training(self) -> None:
        if not self.save_weights_only:
            _require_savable(self.model, "ModelCheckpoint",
                             " (save_weights_only=True saves only the weights)")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches >= self.save_freq:
            self._batches = 0
            self._save(self._epoch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs or {})

    def _save(self, epoch, logs):
        """Save unless ``save_best_only`` and no improvement. An epoch whose logs lack the
        monitored name or a name of the path template (a ``val_`` name in an epoch without
        validation, ``validation_freq`` > 1) is skipped with a ``RuntimeWarning``, as in
        Keras."""
        if self.save_best_only:
            if self.monitor not in logs:
                warnings.warn(f"ModelCheckpoint: epoch {epoch + 1} not saved: the monitored "
                              f"{self.monitor!r} is not in its logs {sorted(logs)}",
                              RuntimeWarning, stacklevel=2)
                return
            value = logs[self.monitor]
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as error:
            warnings.warn(f"ModelCheckpoint: epoch {epoch + 1} not saved: filepath "
                          f"{self.filepath!r} names {error.args[0]!r}, which is not in its "
                          f"logs {sorted(logs)}", RuntimeWarning, stacklevel=2)
            return
        if self.save_best_only:
            self.best = value
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved {'weights' if self.save_weights_only else 'model'}"
                  f" to {path}")
        self.saved.append(path)


class ReduceLROnPlateau(Callback):
    """Multiply the optimizer's learning rate by ``factor`` (< 1) when ``monitor`` has not
    improved by more than ``min_delta`` for ``patience`` epochs, then wait ``cooldown``
    epochs; never below ``min_lr`` (Keras 3's rule). Adds ``learning_rate`` to the logs. The
    optimizer's learning rate must be a number, not a schedule (``fit`` refuses one before
    training)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        self.monitor = V.check_monitor(monitor)
        self.factor = V.check_real_in_range(factor, "factor", low_inclusive=True, high=1.0)
        self.patience = V.check_int_at_least(patience, "patience", 0)
        self.verbose = _check_verbose(verbose)
        self.mode = _monitor_op(self.monitor, mode)
        self.min_delta = V.check_non_negative_float(min_delta, "min_delta")
        self.cooldown = V.check_int_at_least(cooldown, "cooldown", 0)
        self.min_lr = V.check_non_negative_float(min_lr, "min_lr")

    def check_before_training(self, log_names) -> None:
        V.check_monitored_in_logs(self.monitor, dict.fromkeys(log_names), "ReduceLROnPlateau",
                                  " (use validation data for 'val_' names)")

    def _check_model_before_training(self) -> None:
        _require_number_learning_rate(self.model, "ReduceLROnPlateau")

    def on_train_begin(self, logs=None):
        self.best = np.inf if self.mode == "min" else -np.inf
        self.cooldown_counter = 0
        self.wait = 0
        _require_number_learning_rate(self.model, "ReduceLROnPlateau")

    def _better(self, value) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        if self.monitor not in logs:
            return                         # an epoch without validation (validation_freq)
        value = logs[self.monitor]
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(value):
            self.best, self.wait = value, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(optimizer.learning_rate)
                if old > float(np.float32(self.min_lr)):
                    new = max(old * self.factor, self.min_lr)
                    optimizer.learning_rate = new
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``), ``lr`` the current rate; adds ``learning_rate`` to the logs. The
    optimizer's learning rate must be a number, not a schedule (``fit`` refuses one before
    training)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be a function schedule(epoch, lr); got "
                            f"{V.kind_of(schedule)}")
        self.schedule = schedule
        self.verbose = _check_verbose(verbose)

    def _check_model_before_training(self) -> None:
        _require_number_learning_rate(self.model, "LearningRateScheduler")

    def on_epoch_begin(self, epoch, logs=None):
        _require_number_learning_rate(self.model, "LearningRateScheduler")
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:                   # a one-argument schedule, as Keras allows
            lr = self.schedule(epoch)
        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.floating)):
            raise ValueError(f"LearningRateScheduler: schedule must return a number; got "
                             f"{V.kind_of(lr)} at epoch {epoch}")
        optimizer.learning_rate = float(lr)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """Write every epoch's logs to a CSV file: a header ``epoch,<names sorted>`` then one row
    per epoch (``separator`` between fields). ``append=True`` continues an existing file
    (without a second header)."""

    #: Writes files: under numlstm.distributed only rank 0 runs it.
    writes_files = True

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(V.check_path_like(filename, "filename"))
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be one character; got {separator!r}")
        self.separator = separator
        self.append = V.check_bool(append, "append")
        self._file = None
        self.keys = None

    def check_before_training(self, log_names) -> None:
        folder = os.path.dirname(os.path.abspath(self.filename))
        if not os.path.isdir(folder):
            raise ValueError(f"CSVLogger: the folder of filename {self.filename!r} does not "
                             "exist")

    def on_train_begin(self, logs=None):
        write_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as f:
                write_header = not f.readline()
        self._write_header = write_header
        self._file = open(self.filename, "a" if self.append else "w", newline="",
                          encoding="utf-8")
        self._writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self.keys],
                                          delimiter=self.separator, lineterminator="\n")
            if self._write_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({key: logs.get(key, "NA") for key in self.keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite. (``fit`` already stops at a
    non-finite loss without applying that batch's update; this callback is accepted for
    Keras code and also stops on a non-finite running loss.)"""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from functions given by hook name, e.g.
    ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``; any hook of
    :class:`Callback` may be given."""

    _HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end",
              "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
              "on_predict_begin", "on_predict_end", "on_predict_batch_begin",
              "on_predict_batch_end")

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if name not in self._HOOKS:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; hooks are "
                                 f"{list(self._HOOKS)}")
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be a function; got "
                                f"{V.kind_of(fn)}")
            takes_index = name not in ("on_train_begin", "on_train_end", "on_test_begin",
                                       "on_test_end", "on_predict_begin", "on_predict_end")
            if takes_index:
                setattr(self, name, lambda index, logs=None, fn=fn: fn(index, logs))
            else:
                setattr(self, name, lambda logs=None, fn=fn: fn(logs))


class BackupAndRestore(Callback):
    """Resume an interrupted ``fit`` where it stopped. At the end of every epoch the whole
    training state -- weights, optimizer state and learning rate (as lowered by
    :class:`ReduceLROnPlateau` or set by :class:`LearningRateScheduler`; a schedule follows
    the restored iteration count), the training generator (shuffling, dropout) and the epoch
    reached -- is written to ``backup_dir`` (numlstm's pickle-free model file,
    written atomically, then a small JSON pointer to it, also atomically: a crash at any
    moment leaves the previous complete backup). When ``fit`` starts and a backup exists, the
    model is restored from it and training continues at the next epoch, so the resumed run
    ends exactly as an uninterrupted one would. The backup is deleted when ``fit`` ends
    normally (``delete_checkpoint=True``, as in Keras). Only ``save_freq="epoch"`` is
    supported. The model must be savable (built-in losses and metrics; ``fit`` refuses
    another before training). Other callbacks' counters (``ReduceLROnPlateau``'s wait and
    best value, ``EarlyStopping``'s) start afresh in the resumed run, as in Keras."""

    #: Writes files: under numlstm.distributed only rank 0 runs it.
    writes_files = True

    POINTER = "backup.json"

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        self.backup_dir = os.fspath(V.check_path_like(backup_dir, "backup_dir"))
        if save_freq != "epoch":
            raise ValueError(f"BackupAndRestore supports save_freq='epoch' only; got "
                             f"{save_freq!r}")
        self.save_freq = save_freq
        self.delete_checkpoint = V.check_bool(delete_checkpoint, "delete_checkpoint")
        self.restored_epoch = None

    def _pointer(self) -> str:
        return os.path.join(self.backup_dir, self.POINTER)

    def _check_model_before_training(self) -> None:
        _require_savable(self.model, "BackupAndRestore")

    def on_train_begin(self, logs=None):
        from .models.saving import load_model
        self.restored_epoch = None
        pointer = self._pointer()
        if not os.path.exists(pointer):
            return
        with open(pointer, encoding="utf-8") as f:
            entry = json.load(f)
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or \
                not isinstance(entry.get("epoch"), int) or os.sep in entry["file"]:
            raise ValueError(f"BackupAndRestore: {pointer} is not a backup pointer this "
                             "callback wrote")
        saved = load_model(os.path.join(self.backup_dir, entry["file"]))
        model = self.model
        model.set_weights(saved.get_weights())
        iterations, slots = saved.optimizer.get_state()
        model.optimizer.set_state(iterations, slots, model.weights)
        rate = saved.optimizer.learning_rate
        if isinstance(rate, (int, float)) and not isinstance(rate, bool):
            # a number a callback may have changed; a schedule needs nothing (it is the
            # compiled one and follows the restored iterations)
            try:
                model.optimizer.learning_rate = rate
            except TypeError:
                raise ValueError(f"BackupAndRestore: the backup in {self.backup_dir!r} has "
                                 f"the learning rate {rate!r}, and this model's optimizer "
                                 f"has the schedule {model.optimizer.learning_rate!r}") \
                    from None
        model._train_rng = saved._train_rng
        model._initial_epoch = entry["epoch"] + 1
        self.restored_epoch = entry["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"backup-epoch{epoch + 1}.npz"
        self.model.save(os.path.join(self.backup_dir, name))
        pointer = self._pointer()
        temporary = pointer + ".tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump({"file": name, "epoch": epoch}, f)
            f.flush()
            os.fsync(f.fileno())
        previous = None
        if os.path.exists(pointer):
            with open(pointer, encoding="utf-8") as f:
                previous = json.load(f).get("file")
        os.replace(temporary, pointer)
        if previous and previous != name:
            try:
                os.remove(os.path.join(self.backup_dir, previous))
            except OSError:
                pass

    def on_train_end(self, logs=None):
        # reached only when fit returns normally (an exception skips it, as a crash would)
        if not self.delete_checkpoint:
            return
        pointer = self._pointer()
        if os.path.exists(pointer):
            with open(pointer, encoding="utf-8") as f:
                name = json.load(f).get("file")
            os.remove(pointer)
            if isinstance(name, str) and os.sep not in name:
                try:
                    os.remove(os.path.join(self.backup_dir, name))
                except OSError:
                    pass
