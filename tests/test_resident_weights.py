"""Weights kept on the device for the length of a model call (numlstm/backends/resident.py).

The helper itself is tested with a stand-in upload (no device needed); the ``cuda`` backend's
use of it runs in Numba's CUDA simulator (or on a GPU): a model's ``predict``/``evaluate``/
``fit`` copy each layer's weights once per version instead of once per batch, and never
use a stale copy -- not after ``set_weights``, an optimizer step, a write in place between
calls, or a user's callback that writes in place during a call.
"""

import gc

import numpy as np
import pytest

import numlstm
from numlstm.backends.resident import ResidentWeights

CUDA = numlstm.available_backends()["cuda"]
needs_cuda = pytest.mark.skipif(not CUDA.available,
                                reason=f"cuda backend not usable here: {CUDA.reason}")


class Owner:
    """Anything weakly referable owns weights."""


def _resident():
    copies = []

    def upload(host, into):
        copy = host.copy() if into is None else into
        if into is not None:
            into[...] = host
        copies.append((host, into))
        return copy
    return ResidentWeights(upload), copies


def test_outside_a_scope_every_call_copies_and_nothing_is_kept():
    resident, copies = _resident()
    owner, weights = Owner(), (np.ones(3), np.zeros(2))
    first = resident.get(owner, 0, weights)
    second = resident.get(owner, 0, weights)
    assert len(copies) == 4 and first[0] is not second[0]
    assert resident.scopes == []


def test_inside_a_scope_a_version_is_copied_once_and_released_at_the_end():
    resident, copies = _resident()
    owner, weights = Owner(), (np.ones(3), np.zeros(2))
    with resident.scope():
        with resident.scope(join=True):             # a joining scope uses the outer copies
            first = resident.get(owner, 0, weights)
        assert resident.get(owner, 0, weights) is first
        assert len(copies) == 2
        weights[0][...] = 5.0                       # a change announced by a new version
        changed = resident.get(owner, 1, weights)
        assert len(copies) == 4
        # the new version went into the old device arrays (no allocation), with its values
        assert changed[0] is first[0] and np.all(changed[0] == 5.0)
        replaced = (np.full(3, 2.0), weights[1])    # a host array replaced: copied again
        assert resident.get(owner, 1, replaced)[0][0] == 2.0
        assert len(copies) == 6
    assert resident.scopes == []


def test_a_nested_scope_has_copies_of_its_own_and_suspension_reuses_nothing():
    resident, copies = _resident()
    owner, weights = Owner(), (np.ones(3),)
    with resident.scope():
        outer = resident.get(owner, 0, weights)
        with resident.suspended():                  # user code: nothing reused or kept
            assert resident.get(owner, 0, weights)[0] is not outer[0]
            assert resident.get(owner, 0, weights)[0] is not outer[0]
            with resident.scope(join=True):         # nothing to join: a scope of its own
                inner = resident.get(owner, 0, weights)
                assert resident.get(owner, 0, weights) is inner
            with resident.scope():                  # a nested model call
                assert resident.get(owner, 0, weights)[0] is not outer[0]
        assert resident.get(owner, 0, weights) is outer
    assert len(copies) == 5 and resident.scopes == []


def test_copies_follow_their_owner_and_differ_by_shape():
    resident, copies = _resident()
    with resident.scope():
        owner = Owner()
        resident.get(owner, 0, (np.ones(3),))
        resident.get(owner, 1, (np.ones(4),))       # another shape: a new device array
        assert copies[-1][1] is None
        del owner
        gc.collect()
        assert len(resident.scopes[-1]) == 0        # weakly keyed: gone with the owner


def test_a_cpu_backend_hands_back_the_host_arrays_themselves():
    backend = numlstm.get_backend("numpy")
    weights = (np.ones((2, 8), np.float32), np.ones((2, 8), np.float32))
    with backend.keep_weights_resident():
        assert all(a is b for a, b in zip(backend.weights_for_call(Owner(), 0, weights),
                                          weights))


# -- the cuda backend, through models -------------------------------------------------------


def _model(backend, use_bias=True):
    model = numlstm.Sequential([
        numlstm.layers.Input((5, 3)),
        numlstm.layers.Bidirectional(numlstm.layers.LSTM(4, return_sequences=True,
                                                         use_bias=use_bias)),
        numlstm.layers.LSTM(3),
        numlstm.layers.Dense(2)], backend=backend, seed=3)
    model.compile(optimizer="adam", loss="mse")
    return model


def _data(n=10):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 5, 3)).astype(np.float32),
            rng.normal(size=(n, 2)).astype(np.float32))


@pytest.fixture
def cuda_uploads():
    """The cuda backend's count of weight copies to the device on this thread."""
    backend = numlstm.get_backend("cuda")
    return lambda: backend._resident.uploads


@needs_cuda
@pytest.mark.parametrize("use_bias", [True, False])
def test_predict_and_evaluate_copy_each_weight_once_per_call(cuda_uploads, use_bias):
    model = _model("cuda", use_bias)
    reference = _model("numpy", use_bias)
    reference.set_weights(model.get_weights())
    x, y = _data()
    before = cuda_uploads()
    out = model.predict(x, batch_size=3)            # 4 batches, 3 LSTM cells x 3 weights
    assert cuda_uploads() - before == 9
    np.testing.assert_allclose(out, reference.predict(x, batch_size=3), atol=1e-5)
    before = cuda_uploads()
    loss = model.evaluate(x, y, batch_size=4)
    assert cuda_uploads() - before == 9
    assert loss == pytest.approx(reference.evaluate(x, y, batch_size=4), rel=1e-5)


@needs_cuda
def test_weights_changed_between_calls_are_always_seen(cuda_uploads):
    model = _model("cuda")
    reference = _model("numpy")
    x, _ = _data()
    reference.set_weights(model.get_weights())
    model.predict(x, batch_size=5)
    lstm = model.layers[1]
    lstm.kernel[...] *= -0.5                      # in place, outside any call
    reference.layers[1].kernel[...] *= -0.5
    np.testing.assert_allclose(model.predict(x, batch_size=5),
                               reference.predict(x, batch_size=5), atol=1e-5)
    weights = [w * 1.5 for w in model.get_weights()]
    model.set_weights(weights)
    reference.set_weights(weights)
    np.testing.assert_allclose(model.predict(x, batch_size=5),
                               reference.predict(x, batch_size=5), atol=1e-5)
    # a stand-alone layer call keeps nothing either
    layer = numlstm.layers.LSTM(4, backend="cuda", seed=1)
    h = layer(x)
    layer.kernel[...] = 0.0
    layer.recurrent_kernel[...] = 0.0
    assert np.abs(layer(x) - h).max() > 1e-3


class _ScaleKernelInPlace(numlstm.callbacks.Callback):
    """A user's callback that writes a weight in place in the middle of a call."""

    def __init__(self, layer_index):
        super().__init__()
        self.layer_index = layer_index

    def on_predict_batch_end(self, batch, logs=None):
        if batch == 0:
            self.model.layers[self.layer_index].kernel[...] *= 0.0


@needs_cuda
def test_a_users_callback_writing_weights_in_place_mid_call_is_seen():
    model = _model("cuda")
    reference = _model("numpy")
    reference.set_weights(model.get_weights())
    x, _ = _data(6)
    before = model.predict(x[3:])
    out = model.predict(x, batch_size=3, callbacks=[_ScaleKernelInPlace(1)])
    expected = reference.predict(x, batch_size=3, callbacks=[_ScaleKernelInPlace(1)])
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # the second batch ran with the zeroed kernel of the second LSTM, not a copy made for
    # the first batch
    zeroed = _model("numpy")
    zeroed.set_weights(model.get_weights())
    assert not model.layers[1].kernel.any()
    assert np.abs(out[3:] - zeroed.predict(x[3:])).max() < 1e-5
    assert np.abs(out[3:] - before).max() > 1e-3


@needs_cuda
def test_training_on_the_device_copy_uses_every_step_new_weights():
    x, y = _data(12)
    model = _model("cuda")
    reference = _model("numpy")
    reference.set_weights(model.get_weights())
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                        validation_split=0.25)
    expected = reference.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                             validation_split=0.25)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(history.history[key], expected.history[key], rtol=1e-4)
    for got, want in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, atol=1e-5)


@needs_cuda
def test_device_arrays_given_are_used_as_they_are(cuda_uploads):
    backend = numlstm.get_backend("cuda")
    device = backend.asarray(np.ones((2, 8), np.float32))
    before = cuda_uploads()
    with backend.keep_weights_resident():
        (got,) = backend.weights_for_call(Owner(), 0, (device,))
    assert got is device and cuda_uploads() == before


# -- user code inside a model call: nested calls, callbacks and generators ---------------------


class _EveryTrainBatch(numlstm.callbacks.Callback):
    """Runs ``action(model)`` after every training batch (a user's callback)."""

    def __init__(self, action):
        super().__init__()
        self.action = action

    def on_train_batch_end(self, batch, logs=None):
        self.action(self.model)


def _zeroed_reference(model):
    reference = _model("numpy")
    reference.set_weights(model.get_weights())
    return reference


@needs_cuda
def test_a_callback_that_writes_another_models_weights_and_predicts_with_it_sees_them():
    """The usual teacher / moving-average callback: write model B's weights in place, then
    predict with B, inside model A's fit. B's predict must use the weights just written."""
    x, y = _data(8)
    student, teacher = _model("cuda"), _model("cuda")
    errors = []

    def update_teacher_and_predict(model):
        for mine, theirs in zip(teacher.weights, model.weights):
            mine[...] = 0.5 * mine + 0.5 * theirs
        got = teacher.predict(x, batch_size=4)
        errors.append(float(np.abs(got - _zeroed_reference(teacher).predict(x)).max()))
    student.fit(x, y, batch_size=4, epochs=2, verbose=0,
                callbacks=[_EveryTrainBatch(update_teacher_and_predict)])
    assert len(errors) == 4 and max(errors) < 1e-5, errors


@needs_cuda
def test_a_callback_that_writes_its_models_weights_then_predicts_sees_them():
    x, y = _data(8)
    model = _model("cuda")
    model.set_backend("cuda")       # the layers' own backend, for their stand-alone calls
    errors = []

    def scale_and_predict(model):
        model.layers[1].kernel[...] *= 0.5
        got = model.predict(x, batch_size=4)
        errors.append(float(np.abs(got - _zeroed_reference(model).predict(x)).max()))
        layer = model.layers[1]                     # a stand-alone call of one layer, too
        inputs = model.layers[0](x)
        before = layer(inputs)
        layer.recurrent_kernel[...] *= -1.0
        errors.append(float(np.abs(layer(inputs) - before).max() > 1e-4) - 1.0)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[_EveryTrainBatch(scale_and_predict)])
    assert len(errors) == 4 and max(np.abs(errors)) < 1e-5, errors


@needs_cuda
@pytest.mark.parametrize("call", ["predict", "evaluate"])
def test_a_generator_that_writes_weights_between_batches_is_seen(call):
    x, y = _data(6)
    model = _model("cuda")
    original = _zeroed_reference(model)

    def batches():
        yield (x[:3], y[:3])
        model.layers[1].kernel[...] = 0.0           # between the two batches
        yield (x[3:], y[3:])
    if call == "predict":
        out = model.predict(batches())
        expected_second = _zeroed_reference(model).predict(x[3:])
        np.testing.assert_allclose(out[:3], original.predict(x[:3]), atol=1e-5)
        np.testing.assert_allclose(out[3:], expected_second, atol=1e-5)
    else:
        loss = model.evaluate(batches())
        zeroed = _zeroed_reference(model)
        expected = 0.5 * (original.evaluate(x[:3], y[:3]) + zeroed.evaluate(x[3:], y[3:]))
        assert loss == pytest.approx(expected, rel=1e-5)


@needs_cuda
def test_hooks_without_user_code_keep_the_copies(cuda_uploads):
    """A user's callback that overrides only an epoch hook leaves predict's batches their
    copies (its batch hooks are Callback's own, which run no user code)."""

    class EpochOnly(numlstm.callbacks.Callback):
        def on_predict_end(self, logs=None):
            self.seen = True
    model = _model("cuda")
    x, _ = _data(12)
    before = cuda_uploads()
    model.predict(x, batch_size=3, callbacks=[EpochOnly()])
    assert cuda_uploads() - before == 9             # 4 batches, 3 cells x 3 weights


@needs_cuda
def test_a_layer_called_twice_in_one_pass_is_copied_once(cuda_uploads):
    """A shared LSTM on two inputs: one copy of its weights for the pass (train_on_batch has
    no loop around it), and the same outputs as the reference."""
    from numlstm.layers import LSTM, Add, Input

    def build(backend):
        a, b = Input((4, 3)), Input((4, 3))
        shared = LSTM(5, seed=2)
        model = numlstm.Model([a, b], Add()([shared(a), shared(b)]), backend=backend, seed=0)
        model.compile(optimizer="sgd", loss="mse")
        return model
    model, reference = build("cuda"), build("numpy")
    reference.set_weights(model.get_weights())
    rng = np.random.default_rng(1)
    xa, xb = (rng.normal(size=(2, 4, 3)).astype(np.float32) for _ in range(2))
    y = rng.normal(size=(2, 5)).astype(np.float32)
    before = cuda_uploads()
    loss = model.train_on_batch([xa, xb], y)
    assert cuda_uploads() - before == 3
    assert loss == pytest.approx(reference.train_on_batch([xa, xb], y), rel=1e-5)
    for got, want in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, atol=1e-6)
