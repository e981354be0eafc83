"""``model.export_onnx`` and ``numlstm export``: the graph, run by ONNX Runtime, gives
``model.predict``'s outputs (float32, atol = rtol = 1e-5) for every layer type, several batch
sizes and sequence lengths, with and without padding; ``onnx.checker`` passes."""

import numpy as np
import pytest
from click.testing import CliRunner

import numlstm
from numlstm.cli import main
from numlstm.errors import MissingExtraError
from numlstm.interop.onnx_export import DEFAULT_OPSET
from numlstm.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Input, Masking

from conftest import FIXTURES
from test_cli import assert_usage_error

onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx (numlstm[onnx]; in the test "
                                          "extra)")
ort = pytest.importorskip("onnxruntime", reason="the exported graphs run in onnxruntime (in "
                                                "the test extra)")

TOLERANCE = dict(atol=1e-5, rtol=1e-5)
FEATURES, VOCABULARY = 3, 9
BATCHES, LENGTHS = (1, 3, 8), (1, 4, 9)


def model_of(layers, seed=0, scale=0.8, token_input=False):
    """A built model with random weights (scaled so the gates saturate sometimes)."""
    first = Input((None,), dtype="int64") if token_input else Input((None, FEATURES))
    model = numlstm.Sequential([first] + layers, seed=seed, backend="numpy")
    model.build()
    rng = np.random.default_rng(seed)
    model.set_weights([(scale * rng.standard_normal(w.shape)).astype(w.dtype)
                       for w in model.get_weights()])
    return model


def inputs(batch, timesteps, padding, token_input, seed=0):
    """Inputs with padding: none, right padding (random lengths, one empty row) or holes
    (masked steps anywhere, one empty row)."""
    rng = np.random.default_rng(seed + 100 * batch + timesteps)
    if token_input:
        x = rng.integers(1, VOCABULARY, size=(batch, timesteps)).astype(np.int64)
    else:
        x = rng.standard_normal((batch, timesteps, FEATURES)).astype(np.float32)
    if padding == "right":
        for row, length in enumerate(rng.integers(0, timesteps + 1, size=batch)):
            x[row, length:] = 0
    elif padding == "holes":
        x[rng.random((batch, timesteps)) < 0.4] = 0
        x[batch // 2] = 0
    return x


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


MODELS = {
    "lstm-sequence": lambda: [LSTM(5, return_sequences=True)],
    "lstm-go-backwards-sequence": lambda: [LSTM(4, go_backwards=True, return_sequences=True),
                                           LSTM(3, go_backwards=True)],
    "masked-stack": lambda: [Masking(), LSTM(5, return_sequences=True),
                             LSTM(4, return_sequences=True, zero_output_for_mask=True),
                             LSTM(3, go_backwards=True, use_bias=False),
                             Dense(4, activation="softmax")],
    "masked-go-backwards": lambda: [Masking(), LSTM(4, go_backwards=True,
                                                    return_sequences=True),
                                    LSTM(3, go_backwards=True, zero_output_for_mask=True,
                                         return_sequences=True), Dense(2)],
    "masked-bidirectional": lambda: [
        Masking(), Bidirectional(LSTM(4, return_sequences=True), merge_mode="concat"),
        Bidirectional(LSTM(3, return_sequences=True, zero_output_for_mask=True),
                      merge_mode="sum"),
        Bidirectional(LSTM(3, return_sequences=True), merge_mode="mul"),
        Bidirectional(LSTM(2), merge_mode="ave"), Dense(3, activation="sigmoid")],
    "bidirectional-forward-goes-backwards": lambda: [
        Masking(), Bidirectional(LSTM(3, go_backwards=True, return_sequences=True))],
    "embedding-mask-zero": lambda: [Embedding(VOCABULARY, 4, mask_zero=True),
                                    LSTM(5, return_sequences=True), Dropout(0.5),
                                    Dense(3, activation="relu"), LSTM(3, go_backwards=True),
                                    Dense(1, activation="tanh")],
    "embedding-no-mask": lambda: [Embedding(VOCABULARY, 3), LSTM(4), Dense(2)],
}


#: Models with a mask (Masking, Embedding(mask_zero=True)) meet every padding; the others
#: plain inputs.
MASKED = {"masked-stack", "masked-go-backwards", "masked-bidirectional",
          "bidirectional-forward-goes-backwards", "embedding-mask-zero"}
CASES = [(name, padding) for name in sorted(MODELS)
         for padding in (("none", "right", "holes") if name in MASKED else ("none",))]


@pytest.mark.parametrize("name, padding", CASES)
def test_onnx_runtime_gives_predicts_outputs(tmp_path, name, padding):
    token_input = name.startswith("embedding")
    model = model_of(MODELS[name](), token_input=token_input)
    path = model.export_onnx(tmp_path / "model.onnx")
    for batch in BATCHES:
        for timesteps in LENGTHS:
            x = inputs(batch, timesteps, padding, token_input)
            np.testing.assert_allclose(run_onnx(path, x), model.predict(x), **TOLERANCE,
                                       err_msg=f"batch {batch}, timesteps {timesteps}")


ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear", "hard_sigmoid", "hard_sigmoid_keras2")
ACTIVATION_PAIRS = [(a, r) for a in ACTIVATIONS for r in ACTIVATIONS]


@pytest.mark.parametrize("activation, recurrent_activation", ACTIVATION_PAIRS)
def test_every_activation_pair(tmp_path, activation, recurrent_activation):
    model = model_of([Masking(), Bidirectional(LSTM(
        4, activation=activation, recurrent_activation=recurrent_activation,
        return_sequences=True)), LSTM(3, go_backwards=True,
                                      recurrent_activation=recurrent_activation)], scale=0.4)
    path = model.export_onnx(tmp_path / "model.onnx")
    x = inputs(4, 6, "holes", False)
    expected = model.predict(x)
    # linear activations grow without bound: compare relative to the outputs' size
    np.testing.assert_allclose(run_onnx(path, x), expected, rtol=1e-5,
                               atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def lstm_node(proto):
    nodes = [node for node in proto.graph.node if node.op_type == "LSTM"]
    assert len(nodes) == 1
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    return nodes[0], attributes, initializers


def test_the_graph_uses_the_standard_lstm_with_onnx_weight_layout(tmp_path):
    model = model_of([LSTM(2, recurrent_activation="hard_sigmoid_keras2",
                           activation="linear", go_backwards=True)])
    path = model.export_onnx(tmp_path / "model.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == DEFAULT_OPSET >= 14
    node, attributes, initializers = lstm_node(proto)
    assert attributes["direction"] == b"reverse" and attributes["hidden_size"] == 2
    assert attributes["activations"] == [b"HardSigmoid", b"Affine", b"Affine"]
    np.testing.assert_allclose(attributes["activation_alpha"], [0.2, 1.0, 1.0])
    np.testing.assert_allclose(attributes["activation_beta"], [0.5, 0.0, 0.0])
    w, r, b = (initializers[name] for name in node.input[1:4])
    kernel, recurrent_kernel, bias = model.layers[0].get_weights()
    i, f, c, o = (slice(k * 2, (k + 1) * 2) for k in range(4))
    for onnx_block, ours in zip(range(4), (i, o, f, c)):         # ONNX's gate order i, o, f, c
        rows = slice(onnx_block * 2, (onnx_block + 1) * 2)
        np.testing.assert_array_equal(w[0, rows], kernel[:, ours].T)
        np.testing.assert_array_equal(r[0, rows], recurrent_kernel[:, ours].T)
        np.testing.assert_array_equal(b[0, rows], bias[ours])
    np.testing.assert_array_equal(b[0, 8:], 0)                   # Rb: one bias is enough
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "timesteps", FEATURES]


def test_hard_sigmoid_parameters_for_keras3_and_a_bidirectional_pair(tmp_path):
    model = model_of([Bidirectional(LSTM(2, recurrent_activation="hard_sigmoid"))])
    _, attributes, _ = lstm_node(model.export_onnx(tmp_path / "m.onnx") and
                                 onnx.load(str(tmp_path / "m.onnx")))
    assert attributes["direction"] == b"bidirectional"
    assert attributes["activations"] == [b"HardSigmoid", b"Tanh", b"Tanh"] * 2
    np.testing.assert_allclose(attributes["activation_alpha"], [1 / 6, 1 / 6])
    np.testing.assert_allclose(attributes["activation_beta"], [0.5, 0.5])


def test_a_keras_model_through_numlstm_to_onnx_runtime_gives_kerass_numbers(tmp_path):
    pytest.importorskip("h5py")
    folder = FIXTURES / "keras_models"
    with np.load(folder / "keras3_embedding.npz") as data:
        x, y = data["x"].astype(np.int64), data["y"]
    model = numlstm.load_keras_model(folder / "keras3_embedding.keras")
    path = model.export_onnx(tmp_path / "from_keras.onnx")
    np.testing.assert_allclose(run_onnx(path, x), y, **TOLERANCE)


# -- refusals ---------------------------------------------------------------------------------

def test_what_onnx_cannot_express_is_refused_naming_the_layer(tmp_path):
    stateful = numlstm.Sequential([Input((4, 3), batch_size=2), LSTM(3, stateful=True)])
    stateful.build()
    with pytest.raises(ValueError, match="'lstm' is stateful"):
        stateful.export_onnx(tmp_path / "stateful.onnx")
    double = numlstm.Sequential([Input((4, 3)), LSTM(3, dtype="float64")])
    double.build()
    with pytest.raises(ValueError, match="float32 graphs.*float64"):
        double.export_onnx(tmp_path / "double.onnx")
    with pytest.raises(ValueError, match="opset must be"):
        model_of([LSTM(2)]).export_onnx(tmp_path / "old.onnx", opset=13)
    states = numlstm.Sequential([Input((4, 3)), LSTM(3, return_state=True)])
    with pytest.raises(ValueError, match="has 3 outputs.*one output"):
        states.export_onnx(tmp_path / "states.onnx")
    inputs = Input((4, 3))
    functional = numlstm.Model(inputs, LSTM(3)(inputs))
    with pytest.raises(TypeError, match="numlstm.Sequential"):
        functional.export_onnx(tmp_path / "functional.onnx")
    assert not list(tmp_path.iterdir())              # nothing written, not even a temporary


def test_a_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    with pytest.raises(MissingExtraError, match=r"numlstm\[onnx\]"):
        model_of([LSTM(2)]).export_onnx(tmp_path / "model.onnx")


# -- the command ------------------------------------------------------------------------------

def test_export_command_writes_a_graph_onnx_runtime_runs(tmp_path):
    model = model_of(MODELS["masked-stack"]())
    saved = model.save(tmp_path / "model.npz")
    result = CliRunner().invoke(main, ["export", str(saved), str(tmp_path / "model.onnx")])
    assert result.exit_code == 0, result.output
    assert "dynamic batch and timesteps" in result.output
    x = inputs(5, 7, "holes", False)
    np.testing.assert_allclose(run_onnx(tmp_path / "model.onnx", x), model.predict(x),
                               **TOLERANCE)


def test_export_refusals_are_one_line_with_exit_status_2(tmp_path):
    stateful = numlstm.Sequential([Input((4, 3), batch_size=2), LSTM(3, stateful=True)])
    stateful.build()
    saved = stateful.save(tmp_path / "stateful.npz")
    result = CliRunner().invoke(main, ["export", str(saved), str(tmp_path / "out.onnx")])
    assert_usage_error(result, "'lstm' is stateful")
    assert not (tmp_path / "out.onnx").exists()
