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
