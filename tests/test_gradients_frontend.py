"""Every front-end layer's gradients against float64 central finite differences, through whole
models (the model's backward chain is what training uses)."""

import numpy as np
import pytest

import numlstm
from numlstm import losses
from numlstm.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Input, Masking
from numlstm.models import Sequential

F64 = "float64"


def analytic(model, x, y, seed, backend):
    """Loss, weight gradients and dL/dx from the model's own forward/backward (training mode,
    dropout masks drawn from ``seed``)."""
    be = numlstm.get_backend(backend)
    rng = np.random.default_rng(seed)
    pred = be.to_numpy(model._forward(x, True, be, rng))
    loss, grad = model.loss.value_and_grad(y, pred, model._output_mask)
    dx = model._backward(be.asarray(grad))
    grads = [g.copy() for layer in model.layers for g in layer.grads]
    return loss, grads, None if dx is None else be.to_numpy(dx)


def loss_at(model, x, y, seed, backend):
    be = numlstm.get_backend(backend)
    pred = be.to_numpy(model._forward(x, True, be, np.random.default_rng(seed)))
    return model.loss.value_and_grad(y, pred, model._output_mask)[0]


def check_model(model, x, y, backend="numpy", seed=3, eps=1e-6, samples=12, check_x=True):
    """Compare every weight's gradient (at up to ``samples`` random entries per array) and the
    input gradient with central differences; tolerances for float64."""
    model._check_x(x)
    _, grads, dx = analytic(model, x, y, seed, backend)
    weights = model.weights
    assert len(grads) == len(weights) and len(weights) > 0
    pick = np.random.default_rng(0)
    for w, g in zip(weights, grads):
        assert g.shape == w.shape
        indices = pick.choice(w.size, size=min(samples, w.size), replace=False)
        for i in indices:
            at = np.unravel_index(i, w.shape)      # index the live array (never a copy)
            old = w[at]
            w[at] = old + eps
            up = loss_at(model, x, y, seed, backend)
            w[at] = old - eps
            down = loss_at(model, x, y, seed, backend)
            w[at] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - g.reshape(-1)[i]) <= 1e-6 + 1e-5 * abs(numeric), \
                (w.shape, i, numeric, g.reshape(-1)[i])
    if check_x and dx is not None:
        flat_x = x.reshape(-1)
        # Entries of all-zero (masked) timesteps are skipped: any nudge unmasks the step, so the
        # loss is not differentiable there.
        allowed = np.flatnonzero(np.repeat((x != 0).any(axis=-1, keepdims=True), x.shape[-1],
                                           axis=-1)) if x.ndim == 3 else np.arange(x.size)
        for i in pick.choice(allowed, size=min(samples, allowed.size), replace=False):
            old = flat_x[i]
            flat_x[i] = old + eps
            up = loss_at(model, x, y, seed, backend)
            flat_x[i] = old - eps
            down = loss_at(model, x, y, seed, backend)
            flat_x[i] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - dx.reshape(-1)[i]) <= 1e-6 + 1e-5 * abs(numeric)


def compiled(layers, loss, seed=0):
    model = Sequential(layers, seed=seed)
    model.compile(optimizer="sgd", loss=loss)
    return model


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_dense_2d_every_activation(activation):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5))
    y = rng.random((4, 3))
    model = compiled([Input((5,)), Dense(6, activation=activation, dtype=F64),
                      Dense(3, dtype=F64)], "mse")
    check_model(model, x, y)


def test_dense_per_timestep_after_lstm_sequences_and_categorical_loss():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4, 2))
    y = np.eye(3)[rng.integers(0, 3, size=(3, 4))]
    model = compiled([Input((4, 2)), LSTM(5, return_sequences=True, dtype=F64),
                      Dense(3, activation="softmax", dtype=F64)], "categorical_crossentropy")
    check_model(model, x, y)


def test_stacked_lstms_with_go_backwards_and_sparse_labels():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 2))
    y = rng.integers(0, 4, size=3)
    model = compiled([Input((5, 2)), LSTM(4, return_sequences=True, dtype=F64),
                      LSTM(3, return_sequences=True, go_backwards=True, dtype=F64),
                      LSTM(3, dtype=F64), Dense(4, activation="softmax", dtype=F64)],
                     "sparse_categorical_crossentropy")
    check_model(model, x, y)


def test_masking_mask_reaches_lstm_and_gradients_hold():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 5, 2))
    x[0, 3:] = 0.0                       # padding at the end
    x[1, 1] = 0.0                        # a hole in the middle
    y = rng.normal(size=(3, 1))
    model = compiled([Input((5, 2)), Masking(0.0, dtype=F64), LSTM(4, dtype=F64),
                      Dense(1, dtype=F64)], "mse")
    check_model(model, x, y)


def test_embedding_with_mask_zero():
    rng = np.random.default_rng(5)
    ids = rng.integers(1, 7, size=(3, 5))
    ids[0, 3:] = 0
    ids[2, 0] = 0
    y = rng.integers(0, 2, size=(3, 1)).astype(float)
    model = compiled([Input((5,), dtype="int64"), Embedding(7, 3, mask_zero=True, dtype=F64),
                      LSTM(4, dtype=F64), Dense(1, activation="sigmoid", dtype=F64)],
                     "binary_crossentropy")
    check_model(model, ids, y)
    # A padded id's embedding row gets no gradient; ids in use do.
    _, grads, _ = analytic(model, ids, y, 3, "numpy")
    assert np.all(grads[0][0] == 0)


def test_masked_sequence_output_loss_is_the_mean_over_unmasked_steps():
    """Keras 3 reduction: with a sequence output that carries a mask, the loss averages the
    unmasked timesteps only; gradients hold through it."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3, 5, 2))
    x[0, 3:] = 0.0
    x[2, 1] = 0.0
    y = rng.integers(0, 3, size=(3, 5))
    model = compiled([Input((5, 2)), Masking(dtype=F64),
                      LSTM(4, return_sequences=True, dtype=F64),
                      Dense(3, activation="softmax", dtype=F64)],
                     "sparse_categorical_crossentropy")
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    check_model(model, x, y)
    pred = model.predict(x)
    keep = (x != 0).any(-1)
    per_step = -np.log(np.take_along_axis(pred, y[..., None], -1)[..., 0])
    loss, accuracy = model.evaluate(x, y)
    assert loss == pytest.approx(per_step[keep].mean(), rel=1e-12)
    assert accuracy == pytest.approx((pred.argmax(-1) == y)[keep].mean())


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_every_merge_mode_with_mask(merge_mode, return_sequences):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 4, 2))
    x[1, 2:] = 0.0
    units = 3
    out_units = 2 * units if merge_mode == "concat" else units
    y = rng.normal(size=(3, 4, out_units) if return_sequences else (3, out_units))
    model = compiled([Input((4, 2)), Masking(dtype=F64),
                      Bidirectional(LSTM(units, return_sequences=return_sequences, dtype=F64),
                                    merge_mode=merge_mode)], "mse")
    check_model(model, x, y)


def test_bidirectional_on_numba_backend():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 4, 2))
    x[0, 3] = 0.0
    y = rng.normal(size=(2, 4, 6))
    model = compiled([Input((4, 2)), Masking(dtype=F64),
                      Bidirectional(LSTM(3, return_sequences=True, dtype=F64))], "mse")
    model.set_backend("numba")
    check_model(model, x, y, backend="numba", samples=6)


def test_dropout_and_recurrent_dropout_with_fixed_seed():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(4, 5, 3))
    y = rng.normal(size=(4, 2))
    model = compiled([Input((5, 3)), LSTM(4, dropout=0.3, recurrent_dropout=0.4,
                                          return_sequences=True, dtype=F64),
                      Dropout(0.25, dtype=F64), LSTM(3, dtype=F64), Dense(2, dtype=F64)],
                     "mse")
    check_model(model, x, y)
    # The masks really were applied: a different seed gives a different loss.
    assert loss_at(model, x, y, 3, "numpy") != loss_at(model, x, y, 4, "numpy")


@pytest.mark.parametrize("loss", [
    losses.MeanSquaredError(), losses.MeanAbsoluteError(), losses.BinaryCrossentropy(),
    losses.BinaryCrossentropy(from_logits=True), losses.CategoricalCrossentropy(),
    losses.CategoricalCrossentropy(from_logits=True)], ids=repr)
def test_loss_gradients(loss):
    rng = np.random.default_rng(9)
    if isinstance(loss, losses.CategoricalCrossentropy):
        y_true = np.eye(4)[rng.integers(0, 4, 3)]
        y_pred = rng.random((3, 4)) + 0.1
        if not loss.from_logits:
            y_pred /= y_pred.sum(-1, keepdims=True)
    else:
        y_true = rng.integers(0, 2, (3, 4)).astype(float)
        y_pred = rng.random((3, 4)) * 0.8 + 0.1 if not loss.from_logits else \
            rng.normal(size=(3, 4)) * 3
    _, grad = loss.value_and_grad(y_true, y_pred)
    eps = 1e-6
    for i in range(y_pred.size):
        bumped = y_pred.copy().reshape(-1)
        bumped[i] += eps
        up = loss(y_true, bumped.reshape(y_pred.shape))
        bumped[i] -= 2 * eps
        down = loss(y_true, bumped.reshape(y_pred.shape))
        assert abs((up - down) / (2 * eps) - grad.reshape(-1)[i]) < 1e-6


def test_sparse_crossentropy_equals_categorical_and_logits_are_stable():
    rng = np.random.default_rng(10)
    logits = rng.normal(size=(5, 3)) * 1000          # would overflow a naive softmax
    labels = rng.integers(0, 3, 5)
    sparse = losses.SparseCategoricalCrossentropy(from_logits=True)
    dense = losses.CategoricalCrossentropy(from_logits=True)
    v1, g1 = sparse.value_and_grad(labels, logits)
    v2, g2 = dense.value_and_grad(np.eye(3)[labels], logits)
    assert np.isfinite(v1) and v1 == pytest.approx(v2) and np.allclose(g1, g2)
    z = np.array([[-1e4, 0.0, 1e4]])
    value, grad = losses.BinaryCrossentropy(from_logits=True).value_and_grad(
        np.array([[1.0, 1.0, 0.0]]), z)
    assert value == pytest.approx((1e4 + np.log(2) + 1e4) / 3) and np.isfinite(grad).all()
