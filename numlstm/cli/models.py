"""The model commands: ``numlstm train``, ``evaluate``, ``predict`` and ``summary``.

They use the Keras-like front-end (:class:`numlstm.Sequential`, :func:`numlstm.load_model`)
and the built-in datasets (:mod:`numlstm.datasets`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from ..backends import BACKEND_NAMES, get_backend
from ..errors import BackendUnavailableError
from .common import UsageFailure, check_output_path, make_console, write_output

TASKS = ("digits", "adding", "sine")

# Sizes `numlstm train` refuses above, in one line rather than a MemoryError after minutes:
# far beyond anything the command's small tasks need.
MAX_UNITS = 4096              # a 4096-unit layer's recurrent kernel alone is 256 MiB
MAX_LAYERS = 64
MAX_SAMPLES = 10 ** 6
MAX_TIMESTEPS = 10 ** 5
MAX_TASK_VALUES = 10 ** 8     # samples x timesteps of a generated task (400 MB of float32)
MAX_CLASSES = 10 ** 5         # integer labels: one output unit per class


def _load_npz(path, names=("x", "y")) -> tuple:
    """Arrays ``names`` of a user's ``.npz`` (never unpickled); a usage error when unreadable
    or when one is missing."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [n for n in names if n not in data.files]
            if missing:
                raise UsageFailure(f"{path}: missing array(s) {', '.join(missing)} (found: "
                                   f"{', '.join(data.files) or 'none'})")
            return tuple(np.asarray(data[n]) for n in names)
    except UsageFailure:
        raise
    except Exception as error:
        raise UsageFailure(f"{path}: not a readable .npz file ({type(error).__name__}: "
                           f"{error})") from None


def _load_array(path) -> np.ndarray:
    """A ``.npy`` array, or the ``x`` of an ``.npz``."""
    if str(path).endswith(".npz"):
        return _load_npz(path, ("x",))[0]
    try:
        return np.load(path, allow_pickle=False)
    except Exception as error:
        raise UsageFailure(f"{path}: not a readable .npy file ({type(error).__name__}: "
                           f"{error})") from None


def _task_data(task: str, *, samples: int, timesteps: int | None, seed: int, test: bool):
    """``(x, y)`` of a built-in task: the training split, or the test split with ``test``."""
    from .. import datasets
    if task == "digits":
        (x_train, y_train), (x_test, y_test) = datasets.digits(seed=seed)
        return (x_test, y_test) if test else (x_train, y_train)
    # a different seed gives the test set fresh sequences of the same distribution
    seed = seed + 1 if test else seed
    n = max(1, samples // 4) if test else samples
    if task == "adding":
        return datasets.adding_problem(n, timesteps=timesteps or 50, seed=seed)
    return datasets.sine_waves(n, timesteps=timesteps or 50, seed=seed)


def _head(y: np.ndarray) -> tuple:
    """The output layer, loss and metrics that fit targets ``y``: integer class labels get a
    softmax and sparse cross-entropy, real targets a linear layer and mean squared error."""
    if np.issubdtype(y.dtype, np.integer):
        if y.ndim != 1 or y.size == 0 or y.min() < 0:
            raise UsageFailure("y: integer class labels must be a 1-D array of labels >= 0; got "
                               f"shape {y.shape}")
        if y.max() >= MAX_CLASSES:
            raise UsageFailure(f"y: class labels must be below {MAX_CLASSES} (one output unit "
                               f"per class); got a label of {y.max()}")
        return int(y.max()) + 1, "softmax", "sparse_categorical_crossentropy", ["accuracy"]
    if not np.issubdtype(y.dtype, np.floating) or y.ndim not in (1, 2):
        raise UsageFailure(f"y must hold integer class labels (1-D) or real targets (1-D or "
                           f"2-D); got dtype {y.dtype}, shape {y.shape}")
    return (1 if y.ndim == 1 else y.shape[1]), None, "mse", ["mae"]


def _print_logs(console, title: str, logs: dict) -> None:
    from rich.table import Table
    console.print(title)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in logs.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)


def _load_model(path, backend=None):
    from ..models import load_model
    try:
        return load_model(path, backend=backend)
    except BackendUnavailableError as error:
        if backend is not None:
            raise
        # the model was saved for a backend this machine lacks: name the option that fixes it
        raise UsageFailure(f"{path}: the model was saved to run on {error.backend!r}, which "
                           f"is not usable here ({error.reason}); "
                           "pick one that is with --backend, e.g. --backend numba") from None


def _training_data(task: str, *, samples: int, timesteps: int | None, seed: int,
                   validation_split: float) -> tuple:
    """``(x, y, test_data, validation_split)`` of ``train``'s TASK argument: a built-in task
    brings its own test split (and holds nothing out), DATA.npz holds ``validation_split``
    out and has no test split."""
    if task in TASKS:
        x, y = _task_data(task, samples=samples, timesteps=timesteps, seed=seed, test=False)
        test_data = _task_data(task, samples=samples, timesteps=timesteps, seed=seed,
                               test=True)
        split = 0.0
    elif task.endswith(".npz") or Path(task).exists():
        if not Path(task).is_file():
            raise UsageFailure(f"{task}: no such file")
        x, y = _load_npz(task)
        test_data, split = None, validation_split
    else:
        raise click.BadParameter(f"unknown task {task!r}: choose one of {', '.join(TASKS)} or "
                                 "give a .npz file with arrays x and y", param_hint="TASK")
    if x.ndim != 3:
        raise UsageFailure(f"x must be 3-D (samples, timesteps, features); got shape {x.shape}")
    return x, y, test_data, split


def _start_distributed():
    """Under an MPI launcher (``mpiexec -n 2 numlstm train ...``): join the other ranks
    (:func:`numlstm.distributed.init`), so that each trains on its shard of every batch and only
    rank 0 prints and saves. Returns the strategy, or None in one process. Detected from the
    launcher's environment rather than asked for with a flag: the same command line then
    works under ``mpiexec``, ``srun`` or neither."""
    from .. import distributed
    if not distributed.launched_by_mpi():
        return None
    try:
        return distributed.init()
    except ImportError as error:
        raise UsageFailure(f"started by an MPI launcher, but {error}") from None


def _new_model(x: np.ndarray, y: np.ndarray, *, units: int, layers: int, backend, seed: int,
               learning_rate: float):
    """A compiled ``Sequential``: ``layers`` LSTM layers of ``units``, then the head that fits
    the targets ``y`` (:func:`_head`), trained with Adam."""
    from .. import optimizers
    from ..layers import LSTM, Dense, Input
    from ..models import Sequential
    outputs, activation, loss, metrics = _head(y)
    stack = [Input(x.shape[1:])]
    stack += [LSTM(units, return_sequences=i < layers - 1) for i in range(layers)]
    stack.append(Dense(outputs, activation=activation))
    model = Sequential(stack, backend=backend, seed=seed)
    model.compile(optimizer=optimizers.Adam(learning_rate=learning_rate), loss=loss,
                  metrics=metrics)
    return model


_backend_choice = click.Choice(BACKEND_NAMES)


@click.command()
@click.argument("task", metavar="TASK|DATA.npz")
@click.option("--backend", type=_backend_choice, default=None,
              help="Backend to train on (default: the one in use, normally numba).")
@click.option("--units", type=click.IntRange(1, MAX_UNITS), default=64, show_default=True)
@click.option("--layers", type=click.IntRange(1, MAX_LAYERS), default=1, show_default=True,
              help="Stacked LSTM layers.")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=0.005,
              show_default=True, help="Adam's learning rate.")
@click.option("--samples", type=click.IntRange(2, MAX_SAMPLES), default=2000,
              show_default=True, help="Training sequences of the adding and sine tasks.")
@click.option("--timesteps", type=click.IntRange(1, MAX_TIMESTEPS), default=None,
              help="Sequence length of the adding and sine tasks (default 50).")
@click.option("--validation-split", type=click.FloatRange(0, 1, max_open=True), default=0.1,
              show_default=True, help="Fraction of a DATA.npz held out for validation.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default="model.npz",
              show_default=True, help="Where to save the trained model.")
def train(task, backend, units, layers, epochs, batch_size, learning_rate, samples, timesteps,
          validation_split, seed, out):
    """Train an LSTM on a built-in task (digits, adding, sine) or on DATA.npz (arrays x of
    shape (samples, timesteps, features) and y), then save it to --out.

    digits: scikit-learn's 8x8 digits read as 8 rows of 8 pixels, 10 classes (needs
    numlstm[datasets]). adding: the adding problem (regression). sine: next value of a sine
    wave. For DATA.npz, integer y means class labels (softmax, cross-entropy, accuracy), real y
    regression (mean squared error).

    Started by an MPI launcher (mpiexec -n 2 numlstm train digits ...; needs numlstm[mpi]), the
    ranks train data-parallel: each takes its shard of every batch, rank 0 prints and saves.
    """
    check_output_path(out, "--out")
    if task in TASKS and samples * (timesteps or 50) > MAX_TASK_VALUES:
        raise UsageFailure(f"--samples {samples} x --timesteps {timesteps or 50} is more than "
                           f"{MAX_TASK_VALUES} values of data; give fewer")
    if backend is not None:
        get_backend(backend)        # a backend that cannot run here fails before any work
    console = make_console()
    strategy = _start_distributed()
    if strategy is not None and strategy.rank != 0:
        console.quiet = True            # rank 0 reports for all
    x, y, test_data, split = _training_data(task, samples=samples, timesteps=timesteps,
                                            seed=seed, validation_split=validation_split)
    model = _new_model(x, y, units=units, layers=layers, backend=backend, seed=seed,
                       learning_rate=learning_rate)
    console.print(f"training on {task}: {len(x)} sequences of shape {x.shape[1:]}, "
                  f"{layers} LSTM layer(s) of {units} units, backend {model.backend_name}"
                  + ("" if strategy is None else f", data-parallel on {strategy.size} ranks"))
    model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_split=split,
              verbose=1 if sys.stdout.isatty() else 2)
    if test_data is not None:
        logs = model.evaluate(*test_data, batch_size=batch_size, return_dict=True)
        _print_logs(console, f"{task}: {len(test_data[0])} test sequences", logs)
    saved = []
    write_output(out, "--out", lambda: saved.append(model.save(out)))
    console.print(f"saved the model to {saved[0]}")


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", metavar="TASK|DATA.npz")
@click.option("--backend", type=_backend_choice, default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--samples", type=click.IntRange(min=2), default=2000, show_default=True,
              help="For the adding and sine tasks: evaluate on samples/4 fresh sequences.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="The seed the model was trained with (selects the held-out test split).")
def evaluate(model_path, data, backend, batch_size, samples, seed):
    """The loss and metrics of a saved MODEL on DATA.npz (arrays x, y) or on the test split of
    a built-in task (digits, adding, sine)."""
    if backend is not None:
        get_backend(backend)
    model = _load_model(model_path, backend)
    if not getattr(model, "compiled", False):
        raise UsageFailure(f"{model_path}: the model was saved without compile settings, so it "
                           "has no loss to evaluate")
    if data in TASKS:
        x, y = _task_data(data, samples=samples, timesteps=model.input_shape[1], seed=seed,
                          test=True)
    elif Path(data).is_file():
        x, y = _load_npz(data)
    else:
        raise click.BadParameter(f"{data!r} is neither a task ({', '.join(TASKS)}) nor a file",
                                 param_hint="DATA")
    logs = model.evaluate(x, y, batch_size=batch_size, return_dict=True)
    _print_logs(make_console(), f"{Path(model_path).name} on {data} ({len(x)} sequences, "
                            f"backend {model.backend_name})", logs)


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.argument("input_path", metavar="INPUT.npy", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Where to write the predictions (.npy).")
@click.option("--backend", type=_backend_choice, default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
def predict(model_path, input_path, out, backend, batch_size):
    """Run a saved MODEL on INPUT.npy (samples, timesteps, features) -- or the x of an .npz --
    and write its outputs to --out."""
    check_output_path(out, "--out")
    if backend is not None:
        get_backend(backend)
    model = _load_model(model_path, backend)
    x = _load_array(input_path)
    outputs = model.predict(x, batch_size=batch_size)
    write_output(out, "--out", lambda: np.save(out, outputs))
    make_console().print(f"predicted {len(x)} sequences on {model.backend_name}: outputs "
                     f"{outputs.shape} {outputs.dtype} written to {out}")


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--backend", type=_backend_choice, default=None,
              help="Load the model for this backend (default: the one it was saved for).")
def summary(model_path, backend):
    """The layers, output shapes and parameter counts of a saved MODEL."""
    if backend is not None:
        get_backend(backend)
    model = _load_model(model_path, backend)
    console = make_console()
    model.summary(print_fn=console.print)


#: The commands :mod:`numlstm.cli` adds to the ``numlstm`` group.
COMMANDS = (train, evaluate, predict, summary)
