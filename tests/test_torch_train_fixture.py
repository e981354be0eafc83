"""numlstm's functional API against PyTorch training steps, through saved fixtures.

``tests/fixtures/torch_train_step*.npz`` come from ``tests/fixtures/make_torch_train_fixtures.py``
(see its docstring for the model and every key): an ``nn.LSTM`` -> last valid step ->
``nn.Linear`` classifier with a mean cross-entropy loss, in float64, its gradients and its
weights after two SGD and two Adam steps. torch is never imported here.

The LSTM runs through :func:`numlstm.functional.lstm_forward` / ``lstm_backward``; the dense
layer, the softmax cross-entropy and the optimizer formulas (Keras's) are written out in NumPy
below, so these tests check the fixture and the LSTM kernels without any model API.
"""

from __future__ import annotations

import numpy as np
import pytest

from numlstm.functional import lstm_backward, lstm_forward

from conftest import backend_param, load_fixture

CASES = ("torch_train_step", "torch_train_step_masked")
BACKENDS = [backend_param("numpy"), backend_param("numba")]
WEIGHTS = ("kernel", "recurrent_kernel", "bias", "dense_kernel", "dense_bias")
TOL = dict(atol=1e-12, rtol=1e-10)


def loss_and_grads(fx, weights, backend):
    """Forward and backward of LSTM -> last valid step -> Dense -> mean softmax CE."""
    mask = fx["mask"]
    result = lstm_forward(fx["x"], weights["kernel"], weights["recurrent_kernel"],
                          weights["bias"], mask=None if mask.all() else mask,
                          return_cache=True, backend=backend)
    h_last = np.asarray(result.h)          # the final h: the output at the last valid step
    logits = h_last @ weights["dense_kernel"] + weights["dense_bias"]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    batch = len(fx["y"])
    rows = np.arange(batch)
    loss = -log_probs[rows, fx["y"]].mean()

    d_logits = np.exp(log_probs)
    d_logits[rows, fx["y"]] -= 1.0
    d_logits /= batch
    grads = lstm_backward(result.cache, grad_h=d_logits @ weights["dense_kernel"].T)
    return {
        "h_last": h_last, "logits": logits, "loss": loss,
        "kernel": np.asarray(grads.kernel), "recurrent_kernel":
            np.asarray(grads.recurrent_kernel), "bias": np.asarray(grads.bias),
        "dense_kernel": h_last.T @ d_logits, "dense_bias": d_logits.sum(axis=0),
    }


def initial_weights(fx):
    return {k: fx[k] for k in WEIGHTS}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_loss_and_gradients_match_torch(case, backend):
    fx = load_fixture(case)
    assert fx["x"].dtype == np.float64 and fx["y"].dtype == np.int64
    ours = loss_and_grads(fx, initial_weights(fx), backend)
    np.testing.assert_allclose(ours["h_last"], fx["h_last"], **TOL)
    np.testing.assert_allclose(ours["logits"], fx["logits"], **TOL)
    np.testing.assert_allclose(ours["loss"], fx["loss"], **TOL)
    for name in WEIGHTS:
        assert ours[name].shape == fx[f"grad_{name}"].shape, name
        np.testing.assert_allclose(ours[name], fx[f"grad_{name}"], err_msg=name, **TOL)


def test_fixture_geometry_and_masks():
    full, masked = (load_fixture(case) for case in CASES)
    for fx in (full, masked):
        b, t, d, h, k = (int(fx[key]) for key in
                         ("batch", "timesteps", "features", "units", "classes"))
        assert fx["x"].shape == (b, t, d) and fx["y"].shape == (b,)
        assert fx["kernel"].shape == (d, 4 * h) and fx["recurrent_kernel"].shape == (h, 4 * h)
        assert fx["dense_kernel"].shape == (h, k) and fx["dense_bias"].shape == (k,)
        np.testing.assert_array_equal(fx["mask"],
                                      np.arange(t)[None, :] < fx["lengths"][:, None])
        # Masking(mask_value=0.0) derives the same mask from x.
        np.testing.assert_array_equal(np.any(fx["x"] != 0.0, axis=-1), fx["mask"])
    assert full["mask"].all() and not masked["mask"].all()
    assert sorted(masked["lengths"]) != list(masked["lengths"])     # unsorted lengths
    # The same initial weights and batch; only the lengths differ.
    np.testing.assert_array_equal(full["kernel"], masked["kernel"])
    assert full["loss"] != masked["loss"]


def sgd_steps(fx, backend):
    lr, momentum = float(fx["sgd_learning_rate"]), float(fx["sgd_momentum"])
    weights, velocity, history = initial_weights(fx), None, []
    for _ in range(2):
        grads = loss_and_grads(fx, weights, backend)
        history.append(grads["loss"])
        # Keras: m = momentum * m - lr * g;  w = w + m
        velocity = {k: (0.0 if velocity is None else momentum * velocity[k]) - lr * grads[k]
                    for k in WEIGHTS}
        weights = {k: weights[k] + velocity[k] for k in WEIGHTS}
        yield weights, history


def adam_steps(fx, backend):
    lr, b1, b2 = (float(fx[k]) for k in ("adam_learning_rate", "adam_beta_1", "adam_beta_2"))
    epsilon = float(fx["adam_epsilon"])
    weights, history = initial_weights(fx), []
    m = {k: np.zeros_like(v) for k, v in weights.items()}
    v = {k: np.zeros_like(w) for k, w in weights.items()}
    for step in (1, 2):
        grads = loss_and_grads(fx, weights, backend)
        history.append(grads["loss"])
        # Keras: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t); w -= alpha * m / (sqrt(v) + eps)
        alpha = lr * np.sqrt(1 - b2 ** step) / (1 - b1 ** step)
        new = {}
        for k in WEIGHTS:
            m[k] = m[k] + (grads[k] - m[k]) * (1 - b1)
            v[k] = v[k] + (grads[k] ** 2 - v[k]) * (1 - b2)
            new[k] = weights[k] - alpha * m[k] / (np.sqrt(v[k]) + epsilon)
        weights = new
        yield weights, history


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("case", CASES)
def test_keras_optimizer_steps_reproduce_torch_weights(case, optimizer):
    """Keras's SGD-with-momentum and Adam formulas, fed numlstm's gradients, land on torch's
    weights after each of two steps (the second uses the momentum / bias correction)."""
    fx = load_fixture(case)
    steps = (sgd_steps if optimizer == "sgd" else adam_steps)(fx, "numpy")
    for index, (weights, history) in enumerate(steps):
        suffix = "after" if index == 0 else "after2"
        for name in WEIGHTS:
            np.testing.assert_allclose(weights[name], fx[f"{optimizer}_{suffix}_{name}"],
                                       err_msg=f"{optimizer} step {index + 1}: {name}", **TOL)
            # Not vacuous: every weight moved.
            assert not np.allclose(weights[name], fx[name])
        if index == 1:
            np.testing.assert_allclose(history[1], fx[f"{optimizer}_loss_after"], **TOL)
            assert history[1] < history[0]       # the step lowered the loss


def test_adam_torch_eps_is_keras_epsilon_rescaled():
    fx = load_fixture("torch_train_step")
    b2, epsilon = float(fx["adam_beta_2"]), float(fx["adam_epsilon"])
    np.testing.assert_allclose(fx["adam_torch_eps"],
                               [epsilon / np.sqrt(1 - b2 ** t) for t in (1, 2)], rtol=1e-15)
