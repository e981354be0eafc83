"""numlstm.datasets: shapes, dtypes, reproducibility, statistics, argument checks, and the
error when scikit-learn is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numlstm
from numlstm import datasets
from numlstm.errors import MissingExtraError


# -- digits -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_default():
    pytest.importorskip("sklearn")
    return datasets.digits()


def test_digits_shapes_dtypes_and_ranges(digits_default):
    (x_train, y_train), (x_test, y_test) = digits_default
    assert x_train.shape == (1438, 8, 8) and x_test.shape == (359, 8, 8)
    assert y_train.shape == (1438,) and y_test.shape == (359,)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    assert x_train.flags.c_contiguous and x_test.flags.c_contiguous
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))


def test_digits_rows_are_timesteps(digits_default):
    """Every sample is an image of sklearn's, row t at timestep t, pixel / 16."""
    from sklearn.datasets import load_digits
    bunch = load_digits()
    (x_train, y_train), (x_test, y_test) = digits_default
    images = {(bytes(img.astype(np.uint8)), int(label))      # pixel values 0..16
              for img, label in zip(bunch.images, bunch.target)}
    x = np.concatenate([x_train, x_test])
    y = np.concatenate([y_train, y_test])
    # The two splits together are exactly the data set, once each (pixel values are the
    # integers 0..16, so *16 is exact in float32).
    assert len(x) == len(bunch.images)
    ours = [(bytes(np.rint(img * 16).astype(np.uint8)), int(label)) for img, label in zip(x, y)]
    assert len(set(ours)) == len(images) == len(x) and set(ours) == images
    first = bunch.images[0]
    match = [i for i in range(len(x)) if np.array_equal(x[i] * 16, first)]
    assert match and np.array_equal(x[match[0]][3], first[3] / 16)    # row 3 is timestep 3


def test_digits_split_is_stratified_and_disjoint(digits_default):
    (x_train, y_train), (x_test, y_test) = digits_default
    from sklearn.datasets import load_digits
    counts = np.bincount(load_digits().target)
    test_counts = np.bincount(y_test, minlength=10)
    np.testing.assert_array_equal(test_counts, np.rint(0.2 * counts).astype(int))
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), counts - test_counts)
    # The labels are interleaved, not sorted by class.
    assert np.count_nonzero(np.diff(y_train)) > 1000


def test_digits_seed_reproducible_and_different(digits_default):
    (x_train, y_train), (x_test, y_test) = digits_default
    (x2, y2), (x3, y3) = datasets.digits(seed=0)
    np.testing.assert_array_equal(x_train, x2)
    np.testing.assert_array_equal(y_test, y3)
    (x4, _), (x5, _) = datasets.digits(seed=1)
    assert not np.array_equal(x_train, x4)
    (x6, _), (x7, y7) = datasets.digits(test_fraction=0.5, seed=0)
    counts = np.bincount(np.concatenate([y_train, y_test]))
    # round() per class, halves to even: 0.5 * 183 -> 92, 0.5 * 181 -> 90, ...
    np.testing.assert_array_equal(np.bincount(y7), [round(0.5 * c) for c in counts])
    assert len(x6) + len(x7) == 1797


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(test_fraction=0.0), ValueError, "test_fraction must be strictly between 0 and 1"),
    (dict(test_fraction=1.0), ValueError, "test_fraction=1.0"),
    (dict(test_fraction=-0.1), ValueError, "test_fraction"),
    (dict(test_fraction="0.2"), TypeError, "test_fraction"),
    (dict(test_fraction=True), TypeError, "test_fraction"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
])
def test_digits_bad_arguments(kwargs, error, text):
    with pytest.raises(error, match=text):
        datasets.digits(**kwargs)


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    # None in sys.modules makes every import of sklearn (and its submodules) fail.
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingExtraError) as info:
        datasets.digits()
    error = info.value
    assert isinstance(error, ImportError)
    assert 'pip install "numlstm[datasets]"' in str(error)
    assert "scikit-learn" in str(error) and "digits" in str(error)
    assert error.extra == "datasets" and error.name == "sklearn"
    assert isinstance(error.__cause__, ImportError)


def test_digits_with_a_broken_scikit_learn_dependency_reraises_it(monkeypatch, tmp_path):
    """If scikit-learn is installed but one of its own imports fails, that error is the one
    to see (installing the extra would not help)."""
    fake = tmp_path / "sklearn"
    fake.mkdir()
    (fake / "__init__.py").write_text("import numlstm_test_missing_dependency\n")
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        datasets.digits()
    assert not isinstance(info.value, MissingExtraError)
    assert info.value.name == "numlstm_test_missing_dependency"


def test_import_numlstm_does_not_import_scikit_learn():
    code = ("import sys, numlstm; from numlstm import datasets, archive; "
            "numlstm.datasets.adding_problem(2, 4); "
            "print('sklearn' in sys.modules)")
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120, env=env)
    assert result.stdout.strip() == "False"


# -- adding problem ---------------------------------------------------------------------------

def test_adding_problem_structure():
    x, y = datasets.adding_problem(500, timesteps=11, seed=3)
    assert x.shape == (500, 11, 2) and y.shape == (500, 1)
    assert x.dtype == y.dtype == np.float32 and x.flags.c_contiguous
    values, markers = x[..., 0], x[..., 1]
    assert values.min() >= 0.0 and values.max() < 1.0
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers.sum(axis=1), 2.0)
    half = 11 // 2
    np.testing.assert_array_equal(markers[:, :half].sum(axis=1), 1.0)
    np.testing.assert_array_equal(markers[:, half:].sum(axis=1), 1.0)
    np.testing.assert_array_equal(y[:, 0], (values * markers).sum(axis=1, dtype=np.float32))
    # Every position of each half is used (uniform positions, not a fixed pattern).
    positions = np.argwhere(markers)[:, 1]
    assert set(positions) == set(range(11))


def test_adding_problem_statistics():
    """y = U1 + U2: mean 1, variance 1/6, so predicting the mean gives an MSE of about 0.17."""
    x, y = datasets.adding_problem(50_000, timesteps=100, seed=0)
    assert abs(float(y.mean()) - 1.0) < 0.01
    mse_of_mean = float(np.mean((y - y.mean()) ** 2))
    assert abs(mse_of_mean - 1 / 6) < 0.005
    assert abs(float(x[..., 0].mean()) - 0.5) < 0.002
    # Marker positions: uniform in each half (mean position (T/2 - 1)/2 and T/2 + (T/2 - 1)/2).
    first = np.argmax(x[:, :50, 1], axis=1)
    second = 50 + np.argmax(x[:, 50:, 1], axis=1)
    assert abs(first.mean() - 24.5) < 0.5 and abs(second.mean() - 74.5) < 0.5


def test_adding_problem_seeds_and_minimum_length():
    a = datasets.adding_problem(8, timesteps=6, seed=5)
    b = datasets.adding_problem(8, timesteps=6, seed=5)
    c = datasets.adding_problem(8, timesteps=6, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    x, y = datasets.adding_problem(3, timesteps=2, seed=0)
    np.testing.assert_array_equal(x[..., 1], 1.0)
    np.testing.assert_array_equal(y[:, 0], x[..., 0].sum(axis=1))
    x, _ = datasets.adding_problem(1, seed=None)
    assert x.shape == (1, 100, 2)


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(n=0), ValueError, "n must be a positive integer; got n=0"),
    (dict(n=2.0), TypeError, "n must be a positive integer"),
    (dict(n=4, timesteps=1), ValueError, "timesteps must be an integer >= 2; got timesteps=1"),
    (dict(n=4, timesteps=True), TypeError, "timesteps"),
    (dict(n=4, seed=-3), ValueError, "seed"),
    (dict(n=4, seed="0"), TypeError, "seed"),
])
def test_adding_problem_bad_arguments(kwargs, error, text):
    with pytest.raises(error, match=text):
        datasets.adding_problem(**kwargs)


# -- sine waves -------------------------------------------------------------------------------

def test_sine_waves_continue_the_input():
    x, y = datasets.sine_waves(64, timesteps=30, horizon=3, seed=2)
    assert x.shape == (64, 30, 1) and y.shape == (64, 3)
    assert x.dtype == y.dtype == np.float32
    series = np.concatenate([x[:, :, 0], y], axis=1).astype(np.float64)
    # A sampled sinusoid obeys s(t+1) + s(t-1) = 2 cos(2πf) s(t) exactly: the ratio is the
    # same constant along the whole window *and* the targets, per sequence.
    for row in series:
        middle = row[1:-1]
        keep = np.abs(middle) > 0.2
        ratio = (row[2:] + row[:-2])[keep] / middle[keep]
        assert np.ptp(ratio) < 1e-4
        assert 2 * np.cos(2 * np.pi * 0.1) - 1e-4 < ratio.mean() < 2 * np.cos(2 * np.pi * 0.02) \
            + 1e-4
    amplitude = np.abs(series).max(axis=1)
    assert amplitude.max() <= 1.5 and amplitude.min() > 0.3


def test_sine_waves_noise_only_on_inputs_and_seeds():
    clean_x, clean_y = datasets.sine_waves(200, timesteps=20, horizon=2, seed=4)
    noisy_x, noisy_y = datasets.sine_waves(200, timesteps=20, horizon=2, noise=0.1, seed=4)
    np.testing.assert_array_equal(clean_y, noisy_y)
    residual = (noisy_x - clean_x).ravel()
    assert abs(residual.std() - 0.1) < 0.005 and abs(residual.mean()) < 0.005
    again = datasets.sine_waves(200, timesteps=20, horizon=2, noise=0.1, seed=4)
    np.testing.assert_array_equal(again[0], noisy_x)
    other = datasets.sine_waves(200, timesteps=20, horizon=2, seed=5)
    assert not np.array_equal(other[0], clean_x)


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(n=-1), ValueError, "n must be a positive integer"),
    (dict(n=2, timesteps=0), ValueError, "timesteps"),
    (dict(n=2, horizon=0), ValueError, "horizon must be a positive integer; got horizon=0"),
    (dict(n=2, horizon=1.0), TypeError, "horizon"),
    (dict(n=2, noise=-0.5), ValueError, "noise must be a finite number >= 0"),
    (dict(n=2, noise=float("nan")), ValueError, "noise"),
    (dict(n=2, noise="0.1"), TypeError, "noise"),
    (dict(n=2, seed=2.0), TypeError, "seed"),
])
def test_sine_waves_bad_arguments(kwargs, error, text):
    with pytest.raises(error, match=text):
        datasets.sine_waves(**kwargs)


def test_datasets_is_an_attribute_of_the_package():
    assert numlstm.datasets is datasets
