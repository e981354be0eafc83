"""``numlstm train | evaluate | predict | summary`` (click's CliRunner), on tiny models."""

import numpy as np
import pytest
from click.testing import CliRunner

import numlstm
from numlstm.cli import main

from test_cli import assert_usage_error, unusable_backends

SMALL = ["--units", "4", "--epochs", "1", "--batch-size", "16"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """`numlstm train digits` once for the module: the saved model and the test split."""
    pytest.importorskip("sklearn", reason="digits needs scikit-learn (numlstm[datasets])")
    folder = tmp_path_factory.mktemp("digits")
    path = folder / "model.npz"
    result = run("train", "digits", *SMALL, "--out", path)
    assert result.exit_code == 0, result.output
    assert "Epoch 1/1" in result.output and "accuracy" in result.output
    assert "saved the model" in result.output
    (_, _), (x_test, y_test) = numlstm.datasets.digits(seed=0)
    return path, x_test, y_test, folder


def test_train_digits_then_predict_end_to_end(digits_model):
    path, x_test, _, folder = digits_model
    np.save(folder / "x.npy", x_test[:7])
    out = folder / "predictions.npy"
    result = run("predict", path, folder / "x.npy", "--out", out)
    assert result.exit_code == 0, result.output
    predictions = np.load(out)
    assert predictions.shape == (7, 10)
    np.testing.assert_allclose(predictions.sum(axis=1), 1, rtol=1e-5)   # softmax rows
    expected = numlstm.load_model(path).predict(x_test[:7])
    np.testing.assert_allclose(predictions, expected, rtol=1e-6, atol=1e-7)


def test_evaluate_on_the_task_and_on_a_file_agree(digits_model):
    path, x_test, y_test, folder = digits_model
    np.savez(folder / "test.npz", x=x_test, y=y_test)
    by_task = run("evaluate", path, "digits")
    by_file = run("evaluate", path, folder / "test.npz")
    assert by_task.exit_code == 0 and by_file.exit_code == 0, by_task.output + by_file.output
    loss, accuracy = numlstm.load_model(path).evaluate(x_test, y_test)
    for result in (by_task, by_file):
        assert f"{loss:.4f}" in result.output and f"{accuracy:.4f}" in result.output
        assert f"{len(x_test)} sequences" in result.output


def test_summary_lists_the_layers(digits_model):
    result = run("summary", digits_model[0])
    assert result.exit_code == 0, result.output
    assert "LSTM" in result.output and "Dense" in result.output
    assert "Total params: 258" in result.output     # LSTM 4*4*(8+4+1) = 208, Dense 4*10+10 = 50


@pytest.mark.parametrize("task", ["adding", "sine"])
def test_train_regression_tasks(task, tmp_path):
    path = tmp_path / "model.npz"
    result = run("train", task, *SMALL, "--samples", 40, "--timesteps", 5, "--layers", 2,
                 "--backend", "numpy", "--out", path)
    assert result.exit_code == 0, result.output
    assert "mae" in result.output and "10 test sequences" in result.output
    model = numlstm.load_model(path)
    assert model.input_shape == (None, 5, 2 if task == "adding" else 1)
    assert model.output_shape == (None, 1)


def test_train_on_a_users_npz_with_class_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((30, 4, 3)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 2).astype(np.int64)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    path = tmp_path / "model.npz"
    result = run("train", tmp_path / "data.npz", *SMALL, "--out", path)
    assert result.exit_code == 0, result.output
    assert "val_loss" in result.output
    assert numlstm.load_model(path).output_shape == (None, 2)


def test_model_commands_bad_arguments_exit_2(tmp_path, digits_model):
    path, x_test, _, _ = digits_model
    np.save(tmp_path / "wrong.npy", x_test[:3, :, :5])
    np.savez(tmp_path / "no_y.npz", x=x_test)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    np.save(tmp_path / "flat.npy", np.zeros(8, np.float32))
    cases = [
        (["train", "mnist"], ["unknown task", "mnist"]),
        (["train", "digits", "--units", "-3"], ["--units"]),
        (["train", "digits", "--epochs", "0"], ["--epochs"]),
        (["train", "digits", "--backend", "tpu"], ["--backend"]),
        (["train", tmp_path / "missing.npz"], ["missing.npz"]),
        (["train", tmp_path / "no_y.npz"], ["missing array", "y"]),
        (["train", tmp_path / "garbage.npz"], ["not a readable .npz"]),
        (["train", "digits", "--out", tmp_path / "nowhere" / "m.npz"], ["--out"]),
        (["predict", path, tmp_path / "wrong.npy", "--out", tmp_path / "p.npy"],
         ["shape", "(3, 8, 5)"]),
        (["predict", path, tmp_path / "flat.npy", "--out", tmp_path / "p.npy"], ["x"]),
        (["predict", path, tmp_path / "absent.npy", "--out", tmp_path / "p.npy"],
         ["absent.npy"]),
        (["predict", path, tmp_path / "garbage.npz", "--out", tmp_path / "p.npy"],
         ["garbage.npz"]),
        (["predict", tmp_path / "garbage.npz", tmp_path / "wrong.npy", "--out",
          tmp_path / "p.npy"], ["garbage.npz"]),
        (["evaluate", path, "stocks"], ["stocks"]),
        (["evaluate", path, tmp_path / "no_y.npz"], ["missing array"]),
        (["summary", tmp_path / "wrong.npy"], ["wrong.npy"]),
        (["summary", tmp_path / "absent.npz"], ["absent.npz"]),
    ]
    for name in unusable_backends():
        cases.append((["train", "digits", "--backend", name], [name, "not usable"]))
    for args, fragments in cases:
        assert_usage_error(run(*args), *[str(f) for f in fragments])


def test_a_model_saved_for_a_missing_backend_points_to_the_backend_option(tmp_path,
                                                                         monkeypatch):
    from numlstm.models import saving
    from numlstm.backends import BackendStatus
    from numlstm.layers import LSTM, Dense, Input
    model = numlstm.Sequential([Input((4, 2)), LSTM(3), Dense(1)], seed=0, backend="numba")
    path = model.save(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 2), np.float32))
    real = saving.backend_status
    monkeypatch.setattr(saving, "backend_status", lambda name: BackendStatus(
        name, False, reason="no such device here") if name == "numba" else real(name))
    for command in (["summary", path], ["predict", path, tmp_path / "x.npy", "--out",
                                        tmp_path / "p.npy"]):
        assert_usage_error(run(*command), "saved to run on 'numba'", "--backend")
    result = run("summary", path, "--backend", "numpy")
    assert result.exit_code == 0, result.output
    assert "backend: numpy" in result.output
