"""The example scripts run end to end (tiny settings; the full runs are measured in the
README)."""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(monkeypatch, name, *args):
    monkeypatch.setattr(sys, "argv", [name, *args])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")


def test_train_digits_prints_accuracy_and_where_the_model_went(monkeypatch, capsys, tmp_path):
    pytest.importorskip("sklearn", reason="the digits example needs numlstm[datasets]")
    import numlstm
    target = tmp_path / "digits.npz"
    run_example(monkeypatch, "train_digits.py", "--epochs", "1", "--verbose", "0",
                "--output", str(target))
    out = capsys.readouterr().out
    assert "test accuracy: " in out and f"model saved to: {target.resolve()}" in out
    assert numlstm.load_model(target).output_shape == (None, 10)


def test_adding_problem_runs(monkeypatch, capsys):
    run_example(monkeypatch, "adding_problem.py", "--samples", "64", "--timesteps", "10",
                "--epochs", "1", "--units", "4", "--verbose", "0")
    assert "test MSE: " in capsys.readouterr().out


def test_train_digits_saves_outside_the_working_folder_by_default(monkeypatch, capsys,
                                                                  tmp_path):
    pytest.importorskip("sklearn", reason="the digits example needs numlstm[datasets]")
    import tempfile
    work, temp = tmp_path / "work", tmp_path / "temp"
    work.mkdir()
    temp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    run_example(monkeypatch, "train_digits.py", "--epochs", "1", "--verbose", "0")
    assert list(work.iterdir()) == []
    target = (temp / "digits_lstm.npz").resolve()
    assert target.is_file() and f"model saved to: {target}" in capsys.readouterr().out


def test_seq2seq_copy_trains_and_decodes(monkeypatch, capsys):
    run_example(monkeypatch, "seq2seq_copy.py", "--samples", "64", "--epochs", "1",
                "--units", "8", "--verbose", "0")
    out = capsys.readouterr().out
    assert "teacher-forced token accuracy: " in out and "greedy-decoded token accuracy: " in out


def test_mnist_rows_runs_on_fake_idx_files_without_network(monkeypatch, capsys, tmp_path):
    """The MNIST-rows example, on small IDX files placed in $NUMLSTM_HOME/datasets/mnist (their
    SHA-256 in place of the published ones) and with the mirrors pointing nowhere: the code
    path of the real run, never a download."""
    import gzip
    import hashlib

    import numpy as np

    from numlstm import datasets
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 40, dtype=np.uint8),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (16, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 16, dtype=np.uint8)}
    folder = tmp_path / "datasets" / "mnist"
    folder.mkdir(parents=True)
    hashes = {}
    for name, array in arrays.items():
        header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
        content = gzip.compress(header + array.tobytes(), mtime=0)
        (folder / name).write_bytes(content)
        hashes[name] = hashlib.sha256(content).hexdigest()
    monkeypatch.setenv("NUMLSTM_HOME", str(tmp_path))
    monkeypatch.setattr(datasets, "MNIST_FILES", hashes)
    monkeypatch.setattr(datasets, "MNIST_URLS", ("file:///no/such/mirror/",))
    run_example(monkeypatch, "mnist_rows.py", "--epochs", "1", "--units", "4",
                "--batch-size", "16", "--train-samples", "32", "--verbose", "0",
                "--backend", "numpy")
    captured = capsys.readouterr()
    assert "MNIST: 32 training and 16 test images as sequences of shape (28, 28)" in captured.out
    assert "test accuracy: " in captured.out and "downloading" not in captured.err
