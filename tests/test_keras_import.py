"""``numlstm.load_keras_model`` and ``numlstm convert`` on model files written by real Keras.

The files in ``tests/fixtures/keras_models`` were written by Keras 3.15.1 (JAX backend) and by
Keras 2 (tf-keras 2.21.0: legacy .h5 files and a .keras archive), each with Keras's own
outputs beside it; see
``tests/fixtures/make_keras_model_fixtures.py``.
"""

import io
import json
import shutil
import warnings
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import numlstm
from numlstm.cli import main
from numlstm.errors import MissingExtraError, ModelFileError

from conftest import FIXTURES
from test_cli import assert_usage_error

h5py = pytest.importorskip("h5py", reason="Keras import needs h5py (numlstm[keras]; in the "
                                          "test extra)")

MODELS = FIXTURES / "keras_models"
#: case -> model file; each has MODELS/<case>.npz with x and Keras's y
CASES = {
    "keras3_stack": "keras3_stack.keras",
    "keras3_bidirectional": "keras3_bidirectional.keras",
    "keras3_embedding": "keras3_embedding.keras",
    "keras3_legacy": "keras3_legacy.h5",
    "keras2_stack": "keras2_stack.h5",
    "keras2_embedding": "keras2_embedding.h5",
    "keras2_archive": "keras2_archive.keras",
}
TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def fixture(case):
    with np.load(MODELS / f"{case}.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_imported_model_predicts_what_keras_predicted(case, backend):
    data = fixture(case)
    model = numlstm.load_keras_model(MODELS / CASES[case], backend=backend)
    x = data["x"]
    # the inputs exercise the masks: padded steps (all-zero steps or id 0) in most rows
    padded = (x == 0) if x.ndim == 2 else (x == 0).all(axis=-1)
    assert padded.any() and not padded.all()
    np.testing.assert_allclose(model.predict(x), data["y"], **TOLERANCE)


def test_stateful_model_carries_states_as_keras_did():
    data = fixture("keras3_stateful")
    model = numlstm.load_keras_model(MODELS / "keras3_stateful.keras")
    assert model.layers[0].stateful and model.input_shape[0] == 3
    np.testing.assert_allclose(model.predict(data["x"], batch_size=3), data["y"], **TOLERANCE)
    # the second batch starts from the states the first left, as in Keras
    np.testing.assert_allclose(model.predict(data["x_next"], batch_size=3), data["y_next"],
                               **TOLERANCE)
    model.reset_states()
    np.testing.assert_allclose(model.predict(data["x"], batch_size=3), data["y"], **TOLERANCE)


def test_the_imported_layers_and_options():
    model = numlstm.load_keras_model(MODELS / "keras3_stack.keras")
    names = [(type(layer).__name__, layer.name) for layer in model.layers]
    assert names == [("Masking", "masking"), ("LSTM", "lstm_relu"), ("Dropout", "dropout"),
                     ("LSTM", "lstm"), ("LSTM", "lstm_1"), ("Dense", "dense")]
    relu, middle, last = model.layers[1], model.layers[3], model.layers[4]
    assert (relu.activation, relu.recurrent_activation) == ("relu", "hard_sigmoid")
    assert middle.zero_output_for_mask and last.go_backwards and not last.use_bias
    assert model.layers[2].rate == pytest.approx(0.3)
    assert model.layers[5].activation == "softmax"
    bidirectional = numlstm.load_keras_model(MODELS / "keras3_bidirectional.keras")
    assert [layer.merge_mode for layer in bidirectional.layers[1:5]] == ["concat", "sum", "mul",
                                                                         "ave"]


def test_hard_sigmoid_means_what_the_writing_keras_meant():
    keras2 = numlstm.load_keras_model(MODELS / "keras2_stack.h5")
    keras3 = numlstm.load_keras_model(MODELS / "keras3_stack.keras")
    archive2 = numlstm.load_keras_model(MODELS / "keras2_archive.keras")
    assert keras2.layers[1].recurrent_activation == "hard_sigmoid_keras2"
    assert archive2.layers[1].recurrent_activation == "hard_sigmoid_keras2"
    assert keras3.layers[1].recurrent_activation == "hard_sigmoid"
    # and it matters: with Keras 3's hard sigmoid the Keras 2 model misses Keras 2's numbers by
    # far more than the tolerance (2e-4 here, after the softmax)
    data = fixture("keras2_stack")
    config = keras2.get_config()
    config["layers"][1]["config"]["recurrent_activation"] = "hard_sigmoid"
    wrong = numlstm.Sequential.from_config(config)
    wrong.set_weights(keras2.get_weights())
    assert wrong.layers[1].recurrent_activation == "hard_sigmoid"
    assert np.abs(keras2.predict(data["x"]) - data["y"]).max() <= TOLERANCE["atol"]
    assert np.abs(wrong.predict(data["x"]) - data["y"]).max() > 10 * TOLERANCE["atol"]


def test_weights_are_the_files_arrays_exactly():
    model = numlstm.load_keras_model(MODELS / "keras3_bidirectional.keras")
    with zipfile.ZipFile(MODELS / "keras3_bidirectional.keras") as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    with weights:
        forward = weights["layers/bidirectional_1/forward_layer/cell/vars"]
        backward = weights["layers/bidirectional_1/backward_layer/cell/vars"]
        layer = model.layers[2]                          # the second Bidirectional ("sum")
        for ours, theirs in zip(layer.forward_layer.get_weights() +
                                layer.backward_layer.get_weights(),
                                [forward[str(i)][()] for i in range(3)] +
                                [backward[str(i)][()] for i in range(3)]):
            np.testing.assert_array_equal(ours, theirs)
    legacy = numlstm.load_keras_model(MODELS / "keras2_stack.h5")
    with h5py.File(MODELS / "keras2_stack.h5", "r") as handle:
        group = handle["model_weights/lstm/lstm/lstm_cell"]
        for ours, role in zip(legacy.layers[1].get_weights(),
                              ("kernel:0", "recurrent_kernel:0", "bias:0")):
            np.testing.assert_array_equal(ours, group[role][()])


# -- refusals ---------------------------------------------------------------------------------

REFUSALS = {
    "keras3_refuse_lambda": ["(Lambda)", "never runs code", "LSTM"],
    "keras3_refuse_custom_layer": ["(Scale)", "custom object", "fixtures>Scale"],
    "keras3_refuse_custom_activation": ["recurrent_activation is a custom function",
                                        "hard_sigmoid_keras2"],
    "keras3_refuse_gru": ["(GRU) is not supported", "InputLayer, LSTM, Dense, Dropout, Masking, "
                          "Embedding, Bidirectional"],
    "keras3_refuse_functional": ["'Functional' model", "Sequential"],
    "keras3_refuse_bidirectional_none": ["merge_mode=None", "concat, sum, mul and ave"],
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_unsupported_models_are_refused_before_anything_is_built(case, monkeypatch):
    def no_building(*args, **kwargs):
        raise AssertionError("a layer was built for a refused file")
    for cls in (numlstm.LSTM, numlstm.Dense, numlstm.Sequential):
        monkeypatch.setattr(cls, "__init__", no_building)
    path = MODELS / f"{case}.keras"
    with pytest.raises(ModelFileError) as caught:
        numlstm.load_keras_model(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in REFUSALS[case]:
        assert fragment in message


def rewritten(source, target, config_edit=None, drop=None, replace=None):
    """A copy of the .keras archive ``source`` with its config.json edited, a member dropped
    or replaced."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for info in archive.infolist():
            if info.filename == drop:
                continue
            data = archive.read(info)
            if info.filename == "config.json" and config_edit is not None:
                config = json.loads(data)
                config_edit(config)
                data = json.dumps(config).encode()
            if replace and info.filename in replace:
                data = replace[info.filename]
            out.writestr(info.filename, data)
    return target


def lstm_config(config, index=2):
    return config["config"]["layers"][index]["config"]


@pytest.mark.parametrize("edit, fragments", [
    (lambda c: lstm_config(c).update(units=6), ["shape (3, 24)", "holds float32 (3, 20)"]),
    (lambda c: lstm_config(c).update(units=10 ** 9), ["max_bytes"]),
    (lambda c: lstm_config(c).update(units="5"), ["units must be an integer"]),
    (lambda c: lstm_config(c).update(activation="gelu"), ["'gelu' is not supported",
                                                          "'hard_sigmoid'"]),
    (lambda c: lstm_config(c).update(dtype="mixed_float16"), ["mixed precision"]),
    (lambda c: lstm_config(c).update(return_state=True), ["return_state=True"]),
    (lambda c: lstm_config(c).update(proj_size=3), ["['proj_size'] are not supported"]),
    (lambda c: c["config"]["layers"][1].update(module="evil.module"), ["custom object"]),
    (lambda c: lstm_config(c).update(dtype="float64"), ["'lstm_relu' computes in float64 "
                                                        "after float32 layers"]),
    (lambda c: c["config"]["layers"][0]["config"].update(ragged=True), ["ragged"]),
    (lambda c: c["config"]["layers"][2].update(class_name="Lambda"), ["(Lambda)",
                                                                     "never runs code"]),
], ids=["units", "huge-units", "units-type", "activation", "dtype", "return_state",
        "unknown-argument", "custom-module", "mixed-dtypes", "ragged", "lambda"])
def test_edited_configurations_are_refused_with_the_reason(tmp_path, edit, fragments):
    path = rewritten(MODELS / "keras3_stack.keras", tmp_path / "edited.keras", edit)
    with pytest.raises(ModelFileError) as caught:
        numlstm.load_keras_model(path)
    for fragment in fragments:
        assert fragment in str(caught.value)


_ORTHOGONAL = {"module": "keras.regularizers", "class_name": "OrthogonalRegularizer",
               "config": {"factor": 0.01, "mode": "rows"}, "registered_name": None}


def test_training_only_arguments_numlstm_lacks_are_dropped_with_a_warning(tmp_path):
    path = rewritten(MODELS / "keras3_stack.keras", tmp_path / "regularized.keras",
                     lambda c: lstm_config(c).update(kernel_regularizer=_ORTHOGONAL))
    with pytest.warns(UserWarning, match="kernel_regularizer only act while training"):
        model = numlstm.load_keras_model(path)
    data = fixture("keras3_stack")
    np.testing.assert_allclose(model.predict(data["x"]), data["y"], **TOLERANCE)


def test_keras_regularizers_and_constraints_are_imported(tmp_path):
    def add(config):
        lstm_config(config).update(
            kernel_regularizer={"module": "keras.regularizers", "class_name": "L1L2",
                                "config": {"l1": 0.1, "l2": 0.2}, "registered_name": None},
            recurrent_constraint={"module": "keras.constraints", "class_name": "MaxNorm",
                                  "config": {"max_value": 3, "axis": 0},
                                  "registered_name": None},
            activity_regularizer={"class_name": "L2", "config": {"l2": 0.5}})
    path = rewritten(MODELS / "keras3_stack.keras", tmp_path / "regularized.keras", add)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = numlstm.load_keras_model(path)
    lstm = next(layer for layer in model.layers if isinstance(layer, numlstm.LSTM)
                and layer.kernel_regularizer is not None)
    assert lstm.kernel_regularizer == numlstm.regularizers.L1L2(0.1, 0.2)
    assert lstm.recurrent_constraint == numlstm.constraints.MaxNorm(3, axis=0)
    assert lstm.activity_regularizer == numlstm.regularizers.L2(0.5)
    data = fixture("keras3_stack")
    np.testing.assert_allclose(model.predict(data["x"]), data["y"], **TOLERANCE)


def test_damaged_files_name_the_file_and_the_problem(tmp_path):
    source = MODELS / "keras3_stack.keras"
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(source.read_bytes()[:5000])
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    cases = [
        (truncated, {}, "truncated or damaged"),
        (empty, {}, "the file is empty"),
        (text, {}, "not a Keras model file"),
        (tmp_path / "missing.keras", {}, "no such file"),
        (tmp_path, {}, "directory"),
        (rewritten(source, tmp_path / "no_weights.keras", drop="model.weights.h5"), {},
         "'model.weights.h5' is missing"),
        (rewritten(source, tmp_path / "bad_weights.keras",
                   replace={"model.weights.h5": b"garbage" * 10}), {},
         "'model.weights.h5' is not a readable HDF5 file"),
        (rewritten(source, tmp_path / "bad_json.keras", replace={"config.json": b"{"}), {},
         "config.json is not valid UTF-8 JSON"),
        (source, {"max_bytes": 1000}, "more than max_bytes=1000"),
    ]
    for path, kwargs, fragment in cases:
        with pytest.raises(ModelFileError) as caught:
            numlstm.load_keras_model(path, **kwargs)
        assert str(path) in str(caught.value) and fragment in str(caught.value), path


def legacy_copy(tmp_path, name="edited.h5"):
    target = tmp_path / name
    shutil.copy(MODELS / "keras2_stack.h5", target)
    return target


def test_legacy_files_with_links_or_misordered_weights_are_refused(tmp_path):
    linked = legacy_copy(tmp_path, "linked.h5")
    with h5py.File(linked, "a") as handle:
        group = handle["model_weights/dense/dense"]
        del group["kernel:0"]
        group["kernel:0"] = h5py.ExternalLink("elsewhere.h5", "/kernel")
    swapped = legacy_copy(tmp_path, "swapped.h5")
    with h5py.File(swapped, "a") as handle:
        group = handle["model_weights/lstm"]
        names = list(group.attrs["weight_names"])
        group.attrs["weight_names"] = [names[1], names[0], names[2]]
    no_config = legacy_copy(tmp_path, "weights_only.h5")
    with h5py.File(no_config, "a") as handle:
        del handle.attrs["model_config"]
    for path, fragment in ((linked, "is a link (ExternalLink)"),
                           (swapped, "expected the layer kernel"),
                           (no_config, "weights-only file")):
        with pytest.raises(ModelFileError) as caught:
            numlstm.load_keras_model(path)
        assert fragment in str(caught.value)


def test_a_missing_h5py_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)
    with pytest.raises(MissingExtraError, match=r"numlstm\[keras\]"):
        numlstm.load_keras_model(MODELS / "keras3_stack.keras")


# -- the command ------------------------------------------------------------------------------

def test_convert_then_predict_gives_kerass_numbers(tmp_path):
    data = fixture("keras3_embedding")
    runner = CliRunner()
    out = tmp_path / "model.npz"
    result = runner.invoke(main, ["convert", str(MODELS / "keras3_embedding.keras"), str(out)])
    assert result.exit_code == 0, result.output
    assert "Embedding, LSTM, Dense, LSTM, Dense" in result.output
    np.save(tmp_path / "x.npy", data["x"])
    result = runner.invoke(main, ["predict", str(out), str(tmp_path / "x.npy"), "--out",
                                  str(tmp_path / "y.npy")])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), data["y"], **TOLERANCE)


def test_convert_refusals_are_one_line_with_exit_status_2(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["convert", str(MODELS / "keras3_refuse_gru.keras"),
                                  str(tmp_path / "out.npz")])
    assert_usage_error(result, "(GRU) is not supported", "keras3_refuse_gru.keras")
    assert not (tmp_path / "out.npz").exists()
    result = runner.invoke(main, ["convert", str(MODELS / "keras3_stack.keras"),
                                  str(tmp_path / "no" / "out.npz")])
    assert_usage_error(result, "does not exist")


def test_convert_prints_dropped_training_options_as_notes(tmp_path):
    path = rewritten(MODELS / "keras3_stack.keras", tmp_path / "regularized.keras",
                     lambda c: lstm_config(c).update(kernel_regularizer=_ORTHOGONAL))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = CliRunner().invoke(main, ["convert", str(path), str(tmp_path / "out.npz")])
    assert result.exit_code == 0, result.output
    assert "note: " in result.output and "kernel_regularizer" in result.output


def test_the_older_keras2_weight_names_without_a_cell(tmp_path):
    """Keras 2 before tf.keras (2.2-2.3) named an LSTM's weights ``lstm_1/kernel:0`` (no
    ``lstm_cell`` level). No Keras that installs here writes that layout any more, so this file
    is keras2_stack.h5 rewritten with h5py into it (the datasets moved, ``weight_names``
    renamed); the values and Keras's outputs stay the same."""
    path = legacy_copy(tmp_path, "keras22_layout.h5")
    with h5py.File(path, "a") as handle:
        group = handle["model_weights/lstm"]
        names = []
        for role in ("kernel", "recurrent_kernel", "bias"):
            group.move(f"lstm/lstm_cell/{role}:0", f"lstm/{role}:0")
            names.append(f"lstm/{role}:0")
        group.attrs["weight_names"] = [n.encode() for n in names]
    data = fixture("keras2_stack")
    model = numlstm.load_keras_model(path)
    np.testing.assert_allclose(model.predict(data["x"]), data["y"], **TOLERANCE)
