"""One and two training steps of a numlstm model against PyTorch, through the saved fixtures
of ``tests/fixtures/make_torch_train_fixtures.py`` (LSTM -> last valid output -> Dense(K),
sparse categorical crossentropy from logits, SGD with momentum and Adam, float64)."""

import numpy as np
import pytest

import numlstm
from numlstm import losses, optimizers
from numlstm.layers import LSTM, Dense, Input, Masking
from numlstm.models import Sequential

from conftest import load_fixture

WEIGHTS = ("kernel", "recurrent_kernel", "bias", "dense_kernel", "dense_bias")
CASES = ["torch_train_step", "torch_train_step_masked"]


def build(f, optimizer, backend):
    masked = not bool(np.all(f["mask"]))
    batch, timesteps, features = f["x"].shape
    layers = [Input((timesteps, features))]
    if masked:
        layers.append(Masking(0.0, dtype="float64"))
    layers += [LSTM(int(f["units"]), dtype="float64"),
               Dense(int(f["classes"]), dtype="float64")]
    model = Sequential(layers, seed=0, backend=backend)
    model.compile(optimizer=optimizer,
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    model.set_weights([f[name] for name in WEIGHTS])
    return model


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", CASES)
def test_forward_loss_and_gradients_match_torch(case, backend):
    f = load_fixture(case)
    model = build(f, "sgd", backend)
    np.testing.assert_allclose(model.predict(f["x"]), f["logits"], rtol=1e-10, atol=1e-12)
    assert model.evaluate(f["x"], f["y"], batch_size=len(f["x"])) == pytest.approx(
        float(f["loss"]), rel=1e-10)
    be = numlstm.get_backend(backend)
    pred = be.to_numpy(model._forward(f["x"], True, be, np.random.default_rng(0)))
    _, grad = model.loss.value_and_grad(f["y"], pred)
    model._backward(be.asarray(grad))
    grads = [g for layer in model.layers for g in layer.grads]
    for name, g in zip(WEIGHTS, grads):
        np.testing.assert_allclose(g, f[f"grad_{name}"], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("which", ["sgd", "adam"])
def test_two_training_steps_match_torch(case, which, backend):
    f = load_fixture(case)
    optimizer = (optimizers.SGD(float(f["sgd_learning_rate"]), momentum=float(f["sgd_momentum"]))
                 if which == "sgd" else
                 optimizers.Adam(float(f["adam_learning_rate"]), beta_1=float(f["adam_beta_1"]),
                                 beta_2=float(f["adam_beta_2"]),
                                 epsilon=float(f["adam_epsilon"])))
    model = build(f, optimizer, backend)
    batch = len(f["x"])
    for step, suffix in ((1, "after"), (2, "after2")):
        history = model.fit(f["x"], f["y"], batch_size=batch, epochs=1, shuffle=False,
                            verbose=0)
        for name, w in zip(WEIGHTS, model.get_weights()):
            np.testing.assert_allclose(w, f[f"{which}_{suffix}_{name}"], rtol=1e-9,
                                       atol=1e-12, err_msg=f"step {step}: {name}")
        if step == 1:
            # the loss reported for the step is the loss at the weights before it
            assert history.history["loss"][0] == pytest.approx(float(f["loss"]), rel=1e-10)
            assert model.evaluate(f["x"], f["y"], batch_size=batch) == pytest.approx(
                float(f[f"{which}_loss_after"]), rel=1e-9)
