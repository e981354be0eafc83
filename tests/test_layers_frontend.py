"""The front-end layers on their own: masks, dropout semantics, Bidirectional, stateful LSTMs
and the streaming ``step``."""

import numpy as np
import pytest

import numlstm
from numlstm.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Masking
from numlstm.models import Sequential

from conftest import ALL_BACKENDS, backend_param

BACKENDS = [backend_param(name) for name in ALL_BACKENDS]


def test_dense_applies_per_timestep_and_matches_matmul():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    layer = Dense(5, activation="tanh", seed=1)
    y = layer(x)
    assert y.shape == (2, 3, 5) and layer.count_params() == 4 * 5 + 5
    np.testing.assert_allclose(y, np.tanh(x @ layer.kernel + layer.bias), rtol=1e-6)
    np.testing.assert_allclose(Dense(3, activation="softmax", seed=0)(x).sum(-1), 1, rtol=1e-6)


def test_layer_argument_errors_are_clear():
    with pytest.raises(ValueError, match="activation must be one of"):
        Dense(3, activation="swishy")
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        Dropout(1.0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        LSTM(3, dropout=-0.1)
    with pytest.raises(TypeError, match="must be an LSTM layer"):
        Bidirectional(Dense(3))
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        Bidirectional(LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match=r"ids must be in \[0, input_dim\) = \[0, 5\)"):
        Embedding(5, 2)(np.array([[1, 5]]))
    with pytest.raises(TypeError, match="integer token ids"):
        Embedding(5, 2)(np.array([["a"]]))


def test_masking_and_embedding_masks_equal_dropping_the_steps():
    """A masked step is skipped: the final output equals running only the kept steps."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 6, 3))
    x[0, [1, 4]] = 0.0
    model = Sequential([numlstm.Input((6, 3)), Masking(dtype="float64"),
                        LSTM(4, dtype="float64", seed=0)], seed=0)
    short = Sequential([numlstm.Input((4, 3)), LSTM(4, dtype="float64", seed=0)], seed=0)
    np.testing.assert_allclose(model.predict(x), short.predict(x[:, [0, 2, 3, 5]]), atol=1e-12)

    ids = np.array([[3, 0, 2, 0, 1]])
    emb = Sequential([numlstm.Input((5,), dtype="int64"),
                      Embedding(4, 3, mask_zero=True, seed=2, dtype="float64"),
                      LSTM(4, dtype="float64", seed=0)])
    emb.build()
    kept = emb.layers[0].embeddings[ids[:, [0, 2, 4]]]          # the three non-zero ids
    np.testing.assert_allclose(emb.predict(ids), emb.layers[1](kept), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_equals_two_keras_style_layers(backend, merge_mode):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    mask = np.ones((2, 5), bool)
    mask[1, 3:] = False
    bi = Bidirectional(LSTM(4, return_sequences=True, seed=0, backend=backend),
                       merge_mode=merge_mode)
    out = bi(x, mask=mask)
    # Inside a Bidirectional a direction returning sequences outputs zeros at masked steps,
    # as Keras forces (zero_output_for_mask = return_sequences).
    fwd = LSTM(4, return_sequences=True, zero_output_for_mask=True, backend=backend)
    fwd.set_weights(bi.forward_layer.get_weights())
    bwd = LSTM(4, return_sequences=True, go_backwards=True, zero_output_for_mask=True,
               backend=backend)
    bwd.set_weights(bi.backward_layer.get_weights())
    y_f = fwd(x, mask=mask)
    y_b = bwd(x, mask=mask)[:, ::-1]           # Keras's go_backwards order, re-aligned
    expected = {"concat": lambda: np.concatenate([y_f, y_b], -1), "sum": lambda: y_f + y_b,
                "mul": lambda: y_f * y_b, "ave": lambda: (y_f + y_b) / 2,
                None: lambda: [y_f, y_b]}[merge_mode]()
    if merge_mode is None:
        for got, want in zip(out, expected):
            np.testing.assert_allclose(got, want, atol=1e-6)
    else:
        np.testing.assert_allclose(out, expected, atol=1e-6)
    # The two directions have their own weights, and the config rebuilds the same layer.
    assert not np.array_equal(bi.forward_layer.kernel, bi.backward_layer.kernel)
    assert Bidirectional.from_config(bi.get_config()).get_config() == bi.get_config()


def test_bidirectional_last_output_is_each_direction_after_the_whole_sequence():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    bi = Bidirectional(LSTM(3, seed=0))
    seq = Bidirectional(LSTM(3, return_sequences=True, seed=0))
    bi.build((None, 4, 3))
    seq.build((None, 4, 3))
    seq.set_weights(bi.get_weights())
    full = seq(x)
    np.testing.assert_allclose(bi(x), np.concatenate([full[:, -1, :3], full[:, 0, 3:]], -1),
                               atol=1e-6)


def test_dropout_is_identity_at_inference_and_scaled_in_training():
    x = np.ones((200, 50), np.float32)
    layer = Dropout(0.25, seed=0)
    np.testing.assert_array_equal(layer(x), x)
    y = layer(x, training=True)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02


def test_lstm_dropout_masks_are_constant_over_time_keras_semantics():
    """One input mask per sequence: dropping feature j of row b at one step drops it at every
    step, so the training output equals inference on x with whole feature columns zeroed and
    scaled. Recurrent dropout goes into the backend kernel as one (batch, units) mask."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 6, 4))
    layer = LSTM(5, dropout=0.5, return_sequences=True, dtype="float64", seed=0)
    layer.build((None, 6, 4))
    backend = numlstm.get_backend("numpy")
    y = layer.forward(x, training=True, backend=backend, rng=np.random.default_rng(9))
    keep = (np.random.default_rng(9).random((3, 4)) >= 0.5) / 0.5
    np.testing.assert_allclose(y, layer(x * keep[:, None, :]), atol=1e-12)
    np.testing.assert_allclose(layer.forward(x, training=False, backend=backend), layer(x))

    rec = LSTM(5, recurrent_dropout=0.5, return_sequences=True, dtype="float64", seed=0)
    rec.build((None, 6, 4))
    y = rec.forward(x, training=True, backend=backend, rng=np.random.default_rng(9))
    r = ((np.random.default_rng(9).random((3, 5)) >= 0.5) / 0.5)
    reference = numlstm.functional.lstm_forward(
        x, rec.kernel, rec.recurrent_kernel, rec.bias, recurrent_dropout_mask=r,
        backend="numpy").outputs
    np.testing.assert_allclose(y, reference, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stateful_lstm_carries_states_across_calls_and_resets(backend):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    whole = LSTM(4, return_sequences=True, seed=0, backend=backend)(x)
    layer = LSTM(4, return_sequences=True, seed=0, stateful=True, batch_size=2,
                 backend=backend)
    parts = np.concatenate([layer(x[:, :2]), layer(x[:, 2:5]), layer(x[:, 5:])], axis=1)
    np.testing.assert_allclose(parts, whole, atol=1e-5)
    layer.reset_states()
    np.testing.assert_allclose(layer(x[:, :2]), whole[:, :2], atol=1e-6)
    with pytest.raises(ValueError, match="built for batch size 2; got a batch of 3"):
        layer(np.zeros((3, 2, 3), np.float32))
    with pytest.raises(ValueError, match="not stateful"):
        LSTM(3).reset_states()


def test_stateful_model_needs_a_fixed_batch_size():
    with pytest.raises(ValueError, match="fixed batch size"):
        Sequential([numlstm.Input((4, 2)), LSTM(3, stateful=True)]).build()
    model = Sequential([numlstm.Input((4, 2), batch_size=2), LSTM(3, stateful=True, seed=0)])
    model.compile("sgd", "mse")
    x = np.ones((4, 4, 2), np.float32)
    first = model.predict(x[:2], batch_size=2)
    second = model.predict(x[:2], batch_size=2)
    assert not np.allclose(first, second)           # the states carried over
    model.reset_states()
    np.testing.assert_allclose(model.predict(x[:2], batch_size=2), first)
    with pytest.raises(ValueError, match="batch_size must be 2"):
        model.predict(x, batch_size=4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_equals_the_sequence_at_any_batch_size_and_in_place(backend):
    rng = np.random.default_rng(6)
    layer = LSTM(5, return_sequences=True, seed=0, backend=backend)
    for batch in (1, 3):
        x = rng.normal(size=(batch, 4, 2)).astype(np.float32)
        whole = layer(x)
        states = None
        for t in range(4):
            h, states = layer.step(x[:, t], states)
            np.testing.assert_allclose(h, whole[:, t], atol=1e-6)
        buffers = [np.zeros((batch, 5), np.float32), np.zeros((batch, 5), np.float32)]
        for t in range(4):
            h, returned = layer.step(x[:, t], buffers, out=buffers)
            assert h is buffers[0] and returned[1] is buffers[1]
        np.testing.assert_allclose(buffers[0], whole[:, -1], atol=1e-6)
    # New weights are picked up by the next step (the cached copies are invalidated).
    layer.set_weights([w * 0.5 for w in layer.get_weights()])
    x = rng.normal(size=(1, 1, 2)).astype(np.float32)
    np.testing.assert_allclose(layer.step(x[:, 0])[0], layer(x)[:, 0], atol=1e-6)


def test_step_validates_on_the_slow_path():
    layer = LSTM(3, seed=0)
    with pytest.raises(ValueError, match="not built yet"):
        layer.step(np.zeros((1, 2), np.float32))
    layer.build((None, None, 2))
    with pytest.raises(ValueError, match=r"step input x_t must be 2-D \(batch, features\)"):
        layer.step(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"states\[0\] \(h\) must have shape"):
        layer.step(np.zeros((1, 2), np.float32), [np.zeros((2, 3)), np.zeros((1, 3))])
    with pytest.raises(ValueError, match=r"out\[0\] must be a C-contiguous float32 array"):
        layer.step(np.zeros((1, 2), np.float32), out=[np.zeros((1, 3)), np.zeros((1, 3))])
    # float64 and list inputs are accepted (cast) on the slow path.
    h, _ = layer.step([[0.5, -0.5]])
    assert h.dtype == np.float32 and h.shape == (1, 3)


def test_step_fast_path_still_sees_new_arguments_weights_and_backends(monkeypatch):
    layer = LSTM(3, seed=0)                         # backend None: the one in use
    layer.build((None, None, 2))
    x = np.ones((1, 2), np.float32)
    states = [np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32)]
    for _ in range(3):                              # warm: later calls take the fast path
        layer.step(x, states, out=states)
    with pytest.raises(ValueError, match=r"step input x_t must be 2-D"):
        layer.step(np.ones((1, 4), np.float32), states, out=states)
    with pytest.raises(ValueError, match=r"states\[0\] \(h\) must have shape"):
        layer.step(np.ones((2, 2), np.float32), states, out=states)
    calls = []
    numpy_backend = numlstm.get_backend("numpy")
    original = type(numpy_backend).lstm_step
    monkeypatch.setattr(type(numpy_backend), "lstm_step",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    with numlstm.use_backend("numpy"):
        h, _ = layer.step(x, states, out=states)
    assert calls == [1] and h is states[0]
    expected = [states[0].copy(), states[1].copy()]
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    h, (_, c) = layer.step(x, states, out=states)
    # zero weights: all gates 0.5, candidate 0 -> c = c_prev / 2, h = tanh(c) / 2
    np.testing.assert_allclose(c, expected[1] / 2, rtol=1e-6)
    np.testing.assert_allclose(h, np.tanh(expected[1] / 2) / 2, rtol=1e-6)


def test_in_place_step_allocates_no_arrays_in_the_front_end(monkeypatch):
    """With ``out=states`` the front-end's own work allocates no arrays (the kernel is stubbed
    out here: what the backend's ``lstm_step`` allocates is the backend's business)."""
    import tracemalloc
    layer = LSTM(64, seed=0, backend="numba")
    layer.build((None, None, 32))
    x = np.ones((1, 32), np.float32)
    states = [np.zeros((1, 64), np.float32), np.zeros((1, 64), np.float32)]
    layer.step(x, states, out=states)
    backend = numlstm.get_backend("numba")
    monkeypatch.setattr(type(backend), "lstm_step",
                        lambda self, x_t, k, r, b, h, c, *, activation, recurrent_activation,
                        out_h=None, out_c=None: (out_h, out_c))
    layer.step(x, states, out=states)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(200):
            layer.step(x, states, out=states)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 256            # one (1, 64) float32 array alone would be 256 bytes
    assert current - base < 256


def test_step_refuses_non_finite_input_and_reports_its_backend():
    layer = LSTM(3, seed=0)
    layer.build((None, None, 2))
    states = [np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32)]
    with pytest.raises(ValueError, match="step input x_t must contain only finite values"):
        layer.step(np.array([[0.5, np.nan]], np.float32), states)
    assert np.all(states[0] == 0) and np.all(states[1] == 0)     # nothing was written
    with numlstm.use_backend("numpy"):
        layer.step(np.ones((1, 2), np.float32), states)
    assert layer.last_backend == "numpy"
    layer.step(np.ones((1, 2), np.float32), states)
    assert layer.last_backend == "numba"
