"""Run by tests/test_distributed.py as ``mpiexec -n 2 python worker.py OUT`` (every rank), and
imported by it for the single-process reference runs (the same models and data).

Each rank writes ``OUT/rank<r>.npz`` with:

``grad_<case>_<i>``
    the global gradient of weight ``i`` (``DataParallel.gradients``) for the case's batch,
    split by ``DataParallel.shard``: ``uneven`` (7 samples: 4 + 3), ``empty`` (1 sample: 1 + 0);
``dropout_weights_<i>``
    the weights after 20 Adam steps (fit, dropout on);
``dropout_draw``
    the first number this rank's dropout generator drew after that training (they must
    differ between ranks);
``curve_batch_losses``, ``curve_epoch_losses``, ``curve_val_losses``, ``curve_mae``,
``curve_weighted_mae``
    the no-dropout run with a global batch of 8, sample weights and an L2 kernel
    regularizer (each epoch ends with a
    batch of 1 sample, so rank 1 has none): the running loss after every batch, the
    epoch losses, validation losses and mean absolute errors, unweighted and weighted;

and rank 0 alone writes the model with ``save`` (``OUT/saved-rank<r>.npz`` names the rank
that called it, so a file from rank 1 would show that rank 1 wrote).
"""

from __future__ import annotations

import sys

import numpy as np

import numlstm

CASES = {"uneven": 7, "empty": 1}
DROPOUT = dict(samples=40, batch_size=8, epochs=4)        # 5 steps an epoch: 20 steps
CURVE = dict(samples=25, batch_size=8, epochs=3)          # last batch of 1: 1 + 0


def gradient_model():
    """float64, two outputs: a masked sequence output (mse) and a softmax (sparse
    cross-entropy), weighted losses, so each output's global denominator matters."""
    inputs = numlstm.Input((6, 3), dtype="float64")
    masked = numlstm.Masking(0.0, dtype="float64")(inputs)
    sequence = numlstm.LSTM(5, return_sequences=True, dtype="float64", seed=1)(masked)
    per_step = numlstm.Dense(2, dtype="float64", name="steps", seed=2)(sequence)
    last = numlstm.LSTM(4, dtype="float64", seed=3)(sequence)
    classes = numlstm.Dense(3, activation="softmax", dtype="float64", name="classes",
                            seed=4)(last)
    model = numlstm.Model(inputs, [per_step, classes], seed=3)
    model.compile("adam", loss=["mse", "sparse_categorical_crossentropy"],
                  loss_weights=[0.7, 1.3], metrics=[["mae"], ["accuracy"]])
    return model


def gradient_data(n, seed=11):
    """``n`` sequences of 6 steps, each padded with zeros after a random length (1..6)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 3))
    for row, length in enumerate(rng.integers(1, 7, size=n)):
        x[row, length:] = 0.0
    return x, [rng.normal(size=(n, 6, 2)), rng.integers(0, 3, size=n)]


def single_gradients(model, x, y):
    """The one-process gradient of the batch ``(x, y)``, per weight (None: not trained)."""
    backend = model._backend()
    xs, ys = model._check_xy(x, y)
    run = model._forward_pass(xs, True, backend, model._train_rng)
    preds = [np.asarray(backend.to_numpy(o)) for o in run.outputs]
    _, _, grads = model._loss_and_grads(ys, preds, run.masks)
    layer_grads, _ = model._graph.backward(run, grads)
    return [None if g is None else np.asarray(g) for layer in model.layers
            for g in layer_grads.get(id(layer), [None] * len(layer.weights))]


def dropout_model():
    model = numlstm.Sequential([numlstm.Input((5, 3)),
                                numlstm.LSTM(6, dropout=0.3, recurrent_dropout=0.2, seed=1),
                                numlstm.Dropout(0.25), numlstm.Dense(1, seed=2)], seed=5)
    model.compile(numlstm.optimizers.Adam(0.01), "mse")
    return model


def curve_model():
    # a weight regularizer: its penalty is in the logged loss on every rank alike
    model = numlstm.Sequential([numlstm.Input((5, 3), dtype="float64"),
                                numlstm.LSTM(6, dtype="float64", seed=1,
                                             kernel_regularizer=numlstm.regularizers.L2(0.01)),
                                numlstm.Dense(2, dtype="float64", seed=2)], seed=7)
    model.compile(numlstm.optimizers.Adam(0.01), "mse", metrics=["mae"],
                  weighted_metrics=["mae"])
    return model


def regression_data(n, dtype, seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 5, 3)).astype(dtype),
            rng.normal(size=(n, 2 if dtype == np.float64 else 1)).astype(dtype))


class BatchLosses(numlstm.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


def run_curve():
    """The no-dropout run: per-batch running losses and the History."""
    model = curve_model()
    x, y = regression_data(CURVE["samples"], np.float64, 1)
    val = regression_data(6, np.float64, 2)
    # sample weights scale the loss's numerator only: the ranks' shares stay exact
    weights = np.random.default_rng(4).uniform(0.2, 2.0, size=CURVE["samples"])
    recorder = BatchLosses()
    history = model.fit(x, y, batch_size=CURVE["batch_size"], epochs=CURVE["epochs"],
                        validation_data=val, verbose=0, sample_weight=weights,
                        callbacks=[recorder, numlstm.callbacks.EarlyStopping("loss", patience=5)])
    return model, np.array(recorder.losses), history.history


def main(out):
    strategy = numlstm.distributed.init()
    rank = strategy.rank
    results = {}
    model = gradient_model()
    strategy.broadcast_state(model)
    for case, n in CASES.items():
        x, y = gradient_data(n)
        part = strategy.shard(np.arange(n))
        grads = strategy.gradients(model, x[part], [a[part] for a in y])
        for i, g in enumerate(grads):
            results[f"grad_{case}_{i}"] = np.zeros(0) if g is None else g

    model = dropout_model()
    x, y = regression_data(DROPOUT["samples"], np.float32, 3)
    model.fit(x, y, batch_size=DROPOUT["batch_size"], epochs=DROPOUT["epochs"], verbose=0)
    for i, w in enumerate(model.get_weights()):
        results[f"dropout_weights_{i}"] = w
    results["dropout_steps"] = np.array(model.optimizer.iterations)
    results["dropout_draw"] = np.array(strategy.dropout_rng.random())

    model, batch_losses, history = run_curve()
    results["curve_batch_losses"] = batch_losses
    results["curve_epoch_losses"] = np.array(history["loss"])
    results["curve_val_losses"] = np.array(history["val_loss"])
    results["curve_mae"] = np.array(history["mae"])
    results["curve_weighted_mae"] = np.array(history["weighted_mae"])
    model.save(f"{out}/saved-rank{rank}.npz")
    np.savez(f"{out}/rank{rank}.npz", **results)


if __name__ == "__main__":
    main(sys.argv[1])
