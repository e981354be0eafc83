"""The functional API (``numlstm.Model`` over ``Input`` tensors) and the model/layer API Keras
users reach for: graphs with several inputs and outputs, shared layers, LSTM states into
another LSTM, gradients through all of it, trainable=False, and the model's files."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

import numlstm
from numlstm import (LSTM, Add, Bidirectional, Concatenate, Dense, Dropout, Embedding, Input,
                     Masking, Model, RepeatVector, Sequential, optimizers)
from numlstm.errors import ModelFileError

VOCABULARY, LENGTH = 6, 5


# the example's task: one-hot sources, teacher-forced decoder inputs, target token ids
_copy_task = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" /
                                "seq2seq_copy.py"))["copy_task"]


def copy_task(n, seed):
    return _copy_task(n, VOCABULARY, LENGTH, seed)


def test_encoder_decoder_learns_to_copy_and_decodes_step_by_step():
    source, decoder_in, tokens = copy_task(800, 0)
    encoder_inputs = Input((None, VOCABULARY), name="source")
    _, h, c = LSTM(32, return_state=True, seed=1, name="encoder")(encoder_inputs)
    decoder_inputs = Input((None, VOCABULARY + 1), name="target_in")
    decoder = LSTM(32, return_sequences=True, return_state=True, seed=2, name="decoder")
    sequence, _, _ = decoder(decoder_inputs, initial_state=[h, c])
    dense = Dense(VOCABULARY, activation="softmax", seed=3, name="tokens")
    model = Model([encoder_inputs, decoder_inputs], dense(sequence), seed=0)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit([source, decoder_in], tokens, epochs=12, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] >= 0.95

    test_source, test_decoder_in, test_tokens = copy_task(200, 1)
    _, accuracy = model.evaluate([test_source, test_decoder_in], test_tokens)
    assert accuracy >= 0.95

    # Inference as in the Keras tutorial: the encoder's states, then one token at a time
    # from the decoder's own previous prediction (no teacher forcing).
    encoder_model = Model(encoder_inputs, [h, c])
    state_h, state_c = Input((32,), name="h"), Input((32,), name="c")
    step_sequence, step_h, step_c = decoder(decoder_inputs, initial_state=[state_h, state_c])
    decoder_model = Model([decoder_inputs, state_h, state_c],
                          [dense(step_sequence), step_h, step_c])
    states = encoder_model.predict(test_source)
    step_in = test_decoder_in[:, :1]
    decoded = []
    for _ in range(LENGTH):
        probabilities, h_now, c_now = decoder_model.predict([step_in] + states)
        token = probabilities[:, -1].argmax(-1)
        decoded.append(token)
        step_in = np.zeros_like(step_in)
        step_in[np.arange(len(token)), 0, token] = 1.0
        states = [h_now, c_now]
    assert (np.stack(decoded, 1) == test_tokens).mean() >= 0.95


# -- gradients through a graph ------------------------------------------------------------------

def branching_model():
    """Two inputs (one masked); a shared LSTM called twice (its unused outputs receive no
    gradient); one LSTM started from the other's states; two outputs."""
    a, b = Input((5, 3), name="a"), Input((4, 3), name="b")
    shared = LSTM(4, return_sequences=True, return_state=True, seed=1, dtype="float64")
    masked = Masking(0.0, dtype="float64")(a)
    sequence_a, h, c = shared(masked)
    _, h_b, _ = shared(b)
    started = LSTM(4, seed=2, dtype="float64")(b, initial_state=[h, c])
    joined = Concatenate(dtype="float64")([started, h_b])
    first = Dense(2, seed=3, dtype="float64", name="first")(joined)
    second = Dense(1, activation="tanh", seed=4, dtype="float64", name="second")(
        Add(dtype="float64")([sequence_a, sequence_a]))
    return Model([a, b], [first, second], backend="numpy", seed=0)


def total_loss(model, xs, ys):
    run = model._forward_pass(xs, False, model._backend())
    preds = [np.asarray(o) for o in run.outputs]
    return model._loss_and_grads(ys, preds, run.masks)[0]


def test_graph_gradients_match_finite_differences():
    model = branching_model()
    model.compile(optimizer="sgd", loss=["mse", "mse"], loss_weights=[1.0, 0.7])
    rng = np.random.default_rng(5)
    xa = rng.standard_normal((3, 5, 3))
    xa[0, 3:] = 0.0                                    # masked steps
    xa[2, 1] = 0.0
    xs = [xa, rng.standard_normal((3, 4, 3))]
    ys = [rng.standard_normal((3, 2)), rng.standard_normal((3, 5, 1))]
    backend = model._backend()
    run = model._forward_pass(xs, True, backend, np.random.default_rng(0))
    preds = [np.asarray(o) for o in run.outputs]
    _, _, output_grads = model._loss_and_grads(ys, preds, run.masks)
    layer_grads, input_grads = model._graph.backward(run, output_grads)
    eps, checked = 1e-6, 0
    for layer in model.layers:
        for weight, grad in zip(layer.weights, layer_grads.get(id(layer), [])):
            for index in list(np.ndindex(weight.shape))[::7][:6]:
                saved = weight[index]
                weight[index] = saved + eps
                up = total_loss(model, xs, ys)
                weight[index] = saved - eps
                down = total_loss(model, xs, ys)
                weight[index] = saved
                numeric = (up - down) / (2 * eps)
                assert grad[index] == pytest.approx(numeric, rel=1e-6, abs=1e-9), \
                    (layer.name, index)
                checked += 1
    assert checked > 30
    for index in [(0, 0, 0), (1, 3, 2), (2, 1, 1)]:        # into input b, via both paths
        saved = xs[1][index]
        xs[1][index] = saved + eps
        up = total_loss(model, xs, ys)
        xs[1][index] = saved - eps
        down = total_loss(model, xs, ys)
        xs[1][index] = saved
        assert input_grads[1][index] == pytest.approx((up - down) / (2 * eps), rel=1e-6)


def test_masks_propagate_in_a_graph_as_in_a_sequential():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    x[0, 4:] = 0.0
    x[2, :2] = 0.0
    sequential = Sequential([Input((6, 3)), Masking(0.0), LSTM(5, return_sequences=True),
                             LSTM(3), Dense(2)], seed=0)
    inputs = Input((6, 3))
    tensor = inputs
    for layer in sequential.layers:
        tensor = layer(tensor)
    functional = Model(inputs, tensor)
    np.testing.assert_allclose(functional.predict(x), sequential.predict(x), atol=1e-6)
    # Sequential is the same graph code: a Model whose graph is the chain of its layers
    assert isinstance(sequential, Model)
    assert [node.layer for node in sequential._graph.nodes] == sequential.layers


# -- the model and layer API --------------------------------------------------------------------

def small_model(seed=0):
    inputs = Input((5, 3), name="x")
    hidden = LSTM(4, return_sequences=True, name="lstm", seed=seed)(inputs)
    outputs = Dense(2, activation="softmax", name="dense", seed=seed)(
        LSTM(3, name="lstm_2", seed=seed)(hidden))
    return Model(inputs, outputs, seed=seed)


def test_layers_are_built_when_the_model_is_made():
    model = small_model()
    assert [w.shape for w in model.get_weights()] == [(3, 16), (4, 16), (16,), (4, 12),
                                                     (3, 12), (12,), (3, 2), (2,)]
    assert model.count_params() == 4 * 4 * 8 + 4 * 3 * 8 + 3 * 2 + 2
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    assert not any(w.any() for w in model.weights)
    sequential = Sequential([Input((5, 3)), LSTM(4)])
    assert sequential.built and sequential.count_params() == 4 * 4 * 8
    assert [w.shape for w in sequential.layers[0].weights] == [(3, 16), (4, 16), (16,)]


def test_model_and_layer_accessors():
    model = small_model()
    assert [layer.name for layer in model.layers] == ["lstm", "lstm_2", "dense"]
    assert model.get_layer("dense") is model.layers[2] is model.get_layer(index=2)
    assert model.get_layer(index=-1) is model.layers[-1]
    with pytest.raises(ValueError, match="no layer named 'nope'.*'lstm', 'lstm_2', 'dense'"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="exactly one of name= or index="):
        model.get_layer()
    with pytest.raises(ValueError, match="index"):
        model.get_layer(index=3)
    layer = model.get_layer("lstm")
    assert layer.weights == layer.trainable_weights and layer.non_trainable_weights == []
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 3
    assert len(model.weights) == 8 and len(model.trainable_weights) == 5
    assert model.input_names == ["x"] and model.output_names == ["dense"]
    assert model.input_shape == (None, 5, 3) and model.output_shape == (None, 2)


def test_sequential_pop_and_add_rebuild_the_chain():
    model = Sequential([Input((5, 3)), LSTM(4, return_sequences=True), LSTM(3), Dense(2)])
    popped = model.pop()
    assert isinstance(popped, Dense) and model.output_shape == (None, 3)
    assert model.predict(np.zeros((2, 5, 3), np.float32)).shape == (2, 3)
    model.add(Dense(7))
    assert model.output_shape == (None, 7) and model.layers[-1].built
    with pytest.raises(ValueError, match="needs 3-D input"):
        model.add(LSTM(2))
    assert len(model.layers) == 3                         # the refused layer was not added
    with pytest.raises(ValueError, match="no layers to pop"):
        Sequential().pop()


def test_batch_methods_agree_with_the_epoch_methods():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5, 3)).astype(np.float32)
    y = rng.integers(0, 2, 6)
    model = small_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    np.testing.assert_allclose(model.predict_on_batch(x), model.predict(x), atol=1e-7)
    assert model.test_on_batch(x, y) == pytest.approx(model.evaluate(x, y, batch_size=6))
    assert model.test_on_batch(x, y, return_dict=True).keys() == {"loss", "accuracy"}
    before_loss, _ = model.evaluate(x, y)
    weights = model.get_weights()
    loss, accuracy = model.train_on_batch(x, y)
    assert loss == pytest.approx(before_loss, rel=1e-5)   # computed before the update
    assert not all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def test_compile_forms_and_their_errors():
    model = branching_model()
    with pytest.raises(ValueError, match="one entry per output"):
        model.compile(loss=["mse"])
    with pytest.raises(ValueError, match="names no output 'third'"):
        model.compile(loss={"third": "mse"})
    model.compile(loss={"first": "mse"})            # the second output is not trained
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4, 3))]
    logs = model.evaluate(xs, {"first": np.zeros((2, 2))}, return_dict=True)
    assert set(logs) == {"loss", "first_loss"}
    model.compile(loss="mse", metrics={"second": ["mae"]})
    logs = model.evaluate(xs, [np.zeros((2, 2)), np.zeros((2, 5, 1))], return_dict=True)
    assert set(logs) == {"loss", "first_loss", "second_loss", "second_mae"}
    assert logs["loss"] == pytest.approx(logs["first_loss"] + logs["second_loss"])
    with pytest.raises(ValueError, match=r"y\['second'\] must have the model's output shape "
                                         r"\(2, 5, 1\); got shape \(2, 4, 1\)"):
        model.fit(xs, [np.zeros((2, 2)), np.zeros((2, 4, 1))], verbose=0)
    with pytest.raises(ValueError, match="must be a list of 2 arrays, one per input"):
        model.predict(xs[0])
    with pytest.raises(ValueError, match="every input must have the same number of samples"):
        model.predict([xs[0], xs[1][:1]])


def test_graph_errors_name_what_is_wrong():
    a, b = Input((5, 3), name="a"), Input((5, 3), name="b")
    out = LSTM(2)(a)
    with pytest.raises(ValueError, match="disconnected.*Input 'a'.*\\['b'\\]"):
        Model(b, out)
    with pytest.raises(ValueError, match="Input 'b' is not used"):
        Model([a, b], out)
    with pytest.raises(ValueError, match="two different layers of the model are named 'x'"):
        Model(a, Dense(1, name="x")(Dense(2, name="x")(out)))
    with pytest.raises(ValueError, match="floating-point input"):
        LSTM(2)(Input((5, 3), dtype="int32"))
    with pytest.raises(ValueError, match="must have shape \\(batch, 2\\)"):
        LSTM(2)(a, initial_state=[Input((3,)), Input((3,))])
    with pytest.raises(ValueError, match="agree on every axis but -1"):
        Concatenate()([Input((5, 3)), Input((4, 3))])
    with pytest.raises(TypeError, match="model as a layer"):
        Model(a, out)(b)
    with pytest.raises(TypeError, match="mixed with"):
        Add()([a, np.zeros((1, 5, 3))])
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(out)


def test_unnamed_layers_get_unique_names_and_inputs_too():
    x1, x2 = Input((5, 3)), Input((5, 3))
    model = Model([x1, x2], Add()([LSTM(2)(x1), LSTM(2)(x2)]))
    assert [layer.name for layer in model.layers] == ["lstm", "lstm_1", "add"]
    assert model.input_names == ["input", "input_1"]


def test_repeat_vector_autoencoder_trains():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4, 2)).astype(np.float32)
    inputs = Input((4, 2))
    code = LSTM(8, seed=1)(inputs)
    decoded = Dense(2, seed=3)(LSTM(8, return_sequences=True, seed=2)(RepeatVector(4)(code)))
    model = Model(inputs, decoded, seed=0)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.02), loss="mse")
    history = model.fit(x, x, epochs=15, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < 0.7 * history[0]


# -- trainable=False with every optimizer, saved and loaded --------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop",
                                       optimizers.SGD(0.1, momentum=0.9)])
def test_frozen_layers_stay_frozen_with_every_optimizer_and_across_files(optimizer, tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 5, 3)).astype(np.float32)
    y = rng.standard_normal((8, 2)).astype(np.float32)
    model = Sequential([Input((5, 3)), Bidirectional(LSTM(3, return_sequences=True)),
                        LSTM(4), Dropout(0.2), Dense(2)], seed=0)
    model.layers[0].trainable = False
    model.compile(optimizer=optimizer, loss="mse")
    frozen = model.layers[0].get_weights()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, model.layers[0].get_weights()))
    path = model.save(tmp_path / "frozen.npz")
    loaded = numlstm.load_model(path)
    assert loaded.layers[0].trainable is False and loaded.layers[1].trainable is True
    trained = loaded.layers[1].get_weights()
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, loaded.layers[0].get_weights()))
    assert not np.array_equal(trained[0], loaded.layers[1].get_weights()[0])
    # unfreezing needs no recompile: the optimizer keeps a slot for every weight
    loaded.layers[0].trainable = True
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert not np.array_equal(frozen[0], loaded.layers[0].get_weights()[0])


def test_a_frozen_model_saves_its_flag():
    model = small_model()
    model.trainable = False
    lines = []
    model.summary(print_fn=lines.append)
    assert f"Non-trainable params: {model.count_params():,}" in lines
    config = model.get_config()
    assert config["trainable"] is False
    again = Model.from_config(config)
    assert again.trainable is False and again.trainable_weights == []


# -- configurations and files -------------------------------------------------------------------

def test_json_round_trip_rebuilds_the_graph_with_fresh_weights(tmp_path):
    model = branching_model()
    text = model.to_json()
    assert "weights" not in json.loads(text)["config"]
    again = numlstm.model_from_json(text)
    assert type(again) is Model
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    assert again.output_names == model.output_names
    again.load_weights(model.save_weights(tmp_path / "w.npz"))
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4, 3))]
    for got, want in zip(again.predict(xs), model.predict(xs)):
        np.testing.assert_array_equal(got, want)
    sequential = Sequential([Input((5, 3)), LSTM(4), Dense(2)], seed=0)
    rebuilt = numlstm.model_from_json(sequential.to_json())
    assert type(rebuilt) is Sequential and rebuilt.built
    assert Sequential.from_config(sequential.get_config()).count_params() == \
        sequential.count_params()
    with pytest.raises(ValueError, match="not JSON"):
        numlstm.model_from_json("{nope")
    with pytest.raises(ValueError, match="unknown layer class 'Lambda'"):
        numlstm.model_from_json(json.dumps({"class_name": "Sequential", "config": {
            "layers": [{"class_name": "Lambda", "config": {}}]}}))


def test_load_weights_checks_the_layers_before_changing_anything(tmp_path):
    model = small_model()
    path = model.save_weights(tmp_path / "w.npz")
    other = Sequential([Input((5, 3)), LSTM(4), Dense(2)])
    before = other.get_weights()
    with pytest.raises(ValueError, match="are for the layers"):
        other.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(before, other.get_weights()))
    with pytest.raises(ModelFileError, match="not a numlstm weights file"):
        model.load_weights(model.save(tmp_path / "whole.npz"))


def test_functional_model_file_resumes_training_exactly(tmp_path):
    source, decoder_in, tokens = copy_task(64, 3)

    def fresh():
        encoder_inputs = Input((None, VOCABULARY))
        _, h, c = LSTM(8, return_state=True, seed=1, dropout=0.1)(encoder_inputs)
        decoder_inputs = Input((None, VOCABULARY + 1))
        sequence = LSTM(8, return_sequences=True, seed=2)(decoder_inputs, initial_state=[h, c])
        model = Model([encoder_inputs, decoder_inputs],
                      Dense(VOCABULARY, activation="softmax", seed=3)(sequence), seed=7)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model
    straight = fresh()
    straight.fit([source, decoder_in], tokens, epochs=2, batch_size=16, verbose=0)
    first = fresh()
    first.fit([source, decoder_in], tokens, epochs=1, batch_size=16, verbose=0)
    resumed = numlstm.load_model(first.save(tmp_path / "m.npz"))
    assert type(resumed) is Model
    resumed.fit([source, decoder_in], tokens, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_shared_layers_stay_shared_after_loading(tmp_path):
    a, b = Input((5, 3)), Input((5, 3))
    shared = LSTM(3, seed=0)
    model = Model([a, b], Add()([shared(a), shared(b)]))
    loaded = numlstm.load_model(model.save(tmp_path / "shared.npz"))
    assert len(loaded.layers) == 2 and len(loaded.weights) == 3
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict([x, x]), 2 * shared(x))


def test_embedding_input_in_a_graph():
    ids = Input((6,), dtype="int32")
    out = Dense(1)(LSTM(3)(Embedding(10, 4, mask_zero=True)(ids)))
    model = Model(ids, out)
    tokens = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9]])
    assert model.predict(tokens).shape == (2, 1)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model.predict(np.array([[1, 10, 0, 0, 0, 0]]))


def test_a_stand_alone_stateful_lstm_takes_its_batch_size_from_the_first_call():
    layer = LSTM(3, stateful=True, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    first = layer(x)
    assert layer.batch_size == 2
    assert not np.allclose(layer(x), first)                  # carried on
    with pytest.raises(ValueError, match="built for batch size 2"):
        layer(np.zeros((3, 4, 5), np.float32))
    layer.reset_states()
    np.testing.assert_allclose(layer(x), first, atol=1e-7)


# -- what a hostile review found ------------------------------------------------------------------

def test_a_sequential_without_input_builds_from_the_data_it_is_fitted_on():
    x = np.random.default_rng(0).standard_normal((8, 5, 3)).astype(np.float32)
    model = Sequential([LSTM(3), Dense(2)], seed=0)
    model.compile("adam", "mse")
    assert not model.built
    model.fit(x, np.zeros((8, 2), np.float32), verbose=0)
    assert model.built and model.input_shape == (None, None, 3)
    fresh = Sequential([LSTM(3), Dense(2)], seed=0)
    fresh.compile("sgd", "mse")
    assert np.isfinite(fresh.evaluate(x, np.zeros((8, 2))))
    other = Sequential([LSTM(3), Dense(2)], seed=0)
    other.compile("sgd", "mse")
    assert np.isfinite(other.train_on_batch(x, np.zeros((8, 2))))


def test_building_a_model_never_renames_what_another_model_holds(tmp_path):
    x = Input((3,))
    a, b = Dense(3), Dense(2)
    first = Model(x, b(a(x)))
    assert [layer.name for layer in first.layers] == ["dense", "dense_1"]
    path = first.save_weights(tmp_path / "w.npz")
    x2 = Input((3,))
    second = Model(x2, a(Dense(3)(x2)))                 # shares a; its new layer is renamed
    assert [layer.name for layer in first.layers] == ["dense", "dense_1"]
    assert [layer.name for layer in second.layers] == ["dense_1", "dense"]
    first.load_weights(path)
    numlstm.load_model(first.save(tmp_path / "first.npz"))
    numlstm.model_from_json(first.to_json())
    # Inputs alike: a model's input names stay what they were
    p, q = Input((3,)), Input((3,))
    alone = Model(p, Dense(1)(p))
    Model([q, p], Add()([q, p]))
    assert alone.input_names == ["input"]
    # two layers of fixed names that clash are refused before anything is renamed
    c = Dense(2)
    with pytest.raises(ValueError, match="two different layers of the model are named"):
        Model(x, Add()([first.layers[1](a(x)), Dense(2, name="dense_1")(a(x))]))
    assert c.name == "dense"


def test_loss_weights_of_one_output_survive_saving(tmp_path):
    x = np.random.default_rng(0).standard_normal((6, 5, 3)).astype(np.float32)
    model = small_model()
    model.compile("sgd", "mse", loss_weights=[5.0])
    y = np.zeros((6, 2), np.float32)
    before = model.evaluate(x, y)
    assert numlstm.load_model(model.save(tmp_path / "m.npz")).evaluate(x, y) == \
        pytest.approx(before)


def test_a_refused_compile_leaves_the_model_as_it_was():
    model = small_model()
    model.compile("adam", "mse")
    optimizer, targets = model.optimizer, model._targets
    with pytest.raises(ValueError, match="names no output 'zz'"):
        model.compile("sgd", loss={"zz": "mse"})
    assert model.optimizer is optimizer and model._targets is targets
    unbuilt = Sequential([LSTM(2)])
    with pytest.raises(ValueError, match="metrics must be names from"):
        unbuilt.compile("sgd", "mse", metrics=["f1"])
    assert not unbuilt.compiled


def test_concatenating_along_time_joins_the_masks():
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((2, 4, 3)).astype(np.float32), \
        rng.standard_normal((2, 3, 3)).astype(np.float32)
    xa[0, 2:] = 0.0
    lstm = LSTM(2, seed=0)
    a, b = Input((4, 3)), Input((3, 3))
    model = Model([a, b], lstm(Concatenate(axis=1)([Masking()(a), b])))
    joined = np.concatenate([xa, xb], axis=1)
    mask = np.concatenate([(xa != 0).any(-1), np.ones((2, 3), bool)], axis=1)
    np.testing.assert_allclose(model.predict([xa, xb]), lstm(joined, mask=mask), atol=1e-6)


def test_merge_layers_check_the_shapes_they_get():
    p, q = Input((None, 3)), Input((None, 3))
    model = Model([p, q], Add()([p, q]))
    with pytest.raises(ValueError, match=r"'add' \(Add\) needs inputs of one shape"):
        model.predict([np.zeros((2, 5, 3)), np.zeros((2, 1, 3))])


def test_a_one_output_model_given_as_a_list_takes_targets_as_a_list():
    a = Input((5, 3))
    model = Model([a], [Dense(2)(LSTM(3)(a))])
    model.compile("sgd", "mse")
    x = np.zeros((4, 5, 3), np.float32)
    assert isinstance(model.predict([x]), list)
    model.fit([x], [np.zeros((4, 2), np.float32)], verbose=0)


def test_model_arguments_are_checked():
    with pytest.raises(TypeError, match="inputs must be numlstm.Input tensors.*input 0 is str"):
        Model("x", Dense(1)(Input((3,))))
    a = Input((3,))
    with pytest.raises(TypeError, match="got a dict"):
        Model({"a": a}, Dense(1)(a))


def test_bidirectional_keeps_each_directions_trainable_flag(tmp_path):
    frozen = Bidirectional(LSTM(2, trainable=False))
    assert not frozen.forward_layer.trainable and not frozen.trainable
    partial = Bidirectional(LSTM(2))
    partial.forward_layer.trainable = False
    model = Sequential([Input((3, 2)), partial])
    loaded = numlstm.load_model(model.save(tmp_path / "m.npz")).layers[0]
    assert (loaded.forward_layer.trainable, loaded.backward_layer.trainable) == (False, True)


def test_output_names_of_states_cannot_be_read_as_other_layers():
    a = Input((5, 3))
    out, h, c = LSTM(4, return_state=True)(a)
    other = LSTM(2)(LSTM(3, return_sequences=True)(a))
    model = Model(a, [h, other, c, out])
    assert model.output_names == ["lstm_h", "lstm_2", "lstm_c", "lstm"]


def test_empty_and_mis_sized_batches_are_refused_clearly():
    model = small_model()
    model.compile("sgd", "mse")
    empty = np.zeros((0, 5, 3), np.float32)
    with pytest.raises(ValueError, match="at least one sample"):
        model.evaluate(empty, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="at least one sample"):
        model.train_on_batch(empty, np.zeros((0, 2)))
    stateful = Sequential([Input((3, 2), batch_size=4), LSTM(3, stateful=True)])
    with pytest.raises(ValueError, match="model\\(x\\) runs x as one batch.*batches of 4.*got 8"):
        stateful(np.zeros((8, 3, 2), np.float32))
    with pytest.raises(TypeError, match="input_shape must be a list"):
        Sequential([LSTM(2)]).build("abc")


def test_damaged_files_and_configurations_are_refused_clearly(tmp_path):
    from numlstm.archive import load_archive, save_archive
    model = small_model()
    path = model.save_weights(tmp_path / "w.npz")
    config, arrays = load_archive(path)
    arrays["weights/0"] = np.full_like(arrays["weights/0"], np.nan)
    save_archive(tmp_path / "nan.npz", config, arrays)
    before = model.get_weights()
    with pytest.raises(ModelFileError, match="do not fit the model.*finite"):
        model.load_weights(tmp_path / "nan.npz")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    with pytest.raises(ValueError, match="nests too deeply"):
        numlstm.model_from_json("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match="functional Model's configuration"):
        Sequential.from_config(model.get_config())
