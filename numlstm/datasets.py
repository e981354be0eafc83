"""Small data sets for trying LSTMs: one real, two synthetic.

=====================  ==========================  ===========================================
function               x                           y
=====================  ==========================  ===========================================
:func:`digits`         (n, 8, 8) float32 in [0, 1]  (n,) int64 class labels 0..9
:func:`adding_problem` (n, timesteps, 2) float32    (n, 1) float32, the sum of two marked values
:func:`sine_waves`     (n, timesteps, 1) float32    (n, horizon) float32, the next values
=====================  ==========================  ===========================================

Every function takes a ``seed`` (an int >= 0, or None for fresh randomness) and returns new
C-contiguous NumPy arrays; the same seed gives the same arrays on every platform (NumPy's
``default_rng``, i.e. PCG64). Only :func:`digits` needs an optional dependency, scikit-learn
(``pip install "numlstm[datasets]"``), and imports it only when called.

>>> from numlstm import datasets
>>> x, y = datasets.adding_problem(4, timesteps=10, seed=0)
>>> x.shape, y.shape
((4, 10, 2), (4, 1))
"""

from __future__ import annotations

import numpy as np

from . import validation as V
from .errors import MissingExtraError

__all__ = ["digits", "adding_problem", "sine_waves"]


def digits(test_fraction=0.2, seed=0):
    """scikit-learn's bundled 8x8 handwritten digits as sequences: 8 timesteps of 8 pixels.

    The 1797 images of ``sklearn.datasets.load_digits`` (bundled with scikit-learn, nothing is
    downloaded) are read row by row: timestep ``t`` of a sequence is row ``t`` of its image,
    its 8 features are that row's pixels, scaled from 0..16 to [0, 1].

    The split is stratified and reproducible: for each class separately, a permutation drawn
    with ``seed`` puts ``round(test_fraction * count)`` of its images (at least 1 and at most
    ``count - 1``) into the test set and the rest into the training set; both sets are then
    shuffled with the same generator, so classes are interleaved.

    Parameters
    ----------
    test_fraction : float in (0, 1)
        The share of each class held out for testing (0.2 gives 359 test and 1438 training
        images).
    seed : int >= 0 or None
        Seed of the split and of the order of the samples; None draws fresh randomness.

    Returns
    -------
    ((x_train, y_train), (x_test, y_test))
        ``x_*`` float32 (n, 8, 8) in [0, 1]; ``y_*`` int64 (n,) with labels 0..9.

    Raises
    ------
    MissingExtraError
        (an ``ImportError``) If scikit-learn is not installed; the message names
        ``pip install "numlstm[datasets]"``.
    ValueError, TypeError
        If ``test_fraction`` is not strictly between 0 and 1, or ``seed`` is not a
        non-negative integer or None.
    """
    test_fraction = V.check_fraction(test_fraction, "test_fraction")
    seed = V.check_seed(seed)
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        if (error.name or "sklearn").partition(".")[0] != "sklearn":
            raise                   # scikit-learn is there but one of *its* imports failed
        raise MissingExtraError("datasets", "scikit-learn", "numlstm.datasets.digits()",
                                module="sklearn") from error
    images, labels = load_digits(return_X_y=True)
    x = np.ascontiguousarray((np.asarray(images, np.float64) / 16.0).reshape(-1, 8, 8),
                             dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)

    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        count = members.size
        n_test = min(max(int(round(test_fraction * count)), 1), count - 1) if count > 1 else 0
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train = rng.permutation(np.concatenate(train_parts))
    test = rng.permutation(np.concatenate(test_parts))
    return (x[train], y[train]), (x[test], y[test])


def adding_problem(n, timesteps=100, seed=0):
    """The adding problem (Hochreiter & Schmidhuber 1997; in the form of Le et al. 2015).

    Each sequence has two channels. Channel 0 holds values drawn uniformly from [0, 1); channel
    1 is a marker, 0 everywhere except for exactly two 1s: one at a step drawn uniformly from
    the first half ``[0, timesteps // 2)`` and one from the second half
    ``[timesteps // 2, timesteps)``. The target is the sum of the two marked values::

        y[i, 0] = x[i, a_i, 0] + x[i, b_i, 0]        where x[i, a_i, 1] = x[i, b_i, 1] = 1

    The target is the sum of two independent U[0, 1) values: its mean is 1 and its variance
    1/6, so always predicting the mean gives a mean squared error of about 0.167; a model
    has learned the task when its MSE is far below that (0.01 is the usual bar).

    Parameters
    ----------
    n : int >= 1
        Number of sequences.
    timesteps : int >= 2
        Length of every sequence (100 is the classic setting; longer is harder).
    seed : int >= 0 or None

    Returns
    -------
    (x, y)
        ``x`` float32 (n, timesteps, 2); ``y`` float32 (n, 1), computed from the float32 values.
    """
    n = V.check_positive_int(n, "n")
    timesteps = V.check_int_at_least(timesteps, "timesteps", 2)
    seed = V.check_seed(seed)
    rng = np.random.default_rng(seed)
    half = timesteps // 2
    values = rng.random((n, timesteps), dtype=np.float32)
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, timesteps, size=n)
    rows = np.arange(n)
    markers = np.zeros((n, timesteps), dtype=np.float32)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.ascontiguousarray(np.stack([values, markers], axis=-1))
    y = (values[rows, first] + values[rows, second]).astype(np.float32).reshape(n, 1)
    return x, y


def sine_waves(n, timesteps=50, horizon=1, noise=0.0, seed=0):
    """Windows of random sine waves, for one- or multi-step forecasting.

    Sequence ``i`` samples ``s_i(t) = A_i * sin(2π f_i t + φ_i)`` at integer steps, with the
    amplitude ``A_i ~ U[0.5, 1.5)``, the frequency ``f_i ~ U[0.02, 0.1)`` cycles per step
    (periods of 10 to 50 steps) and the phase ``φ_i ~ U[0, 2π)``::

        x[i, t, 0] = s_i(t) + noise * ε[i, t]       t = 0 .. timesteps - 1,  ε ~ N(0, 1)
        y[i, k]    = s_i(timesteps + k)             k = 0 .. horizon - 1

    The noise is observation noise on the inputs only: the targets are the clean continuation,
    so the best achievable error is known (0 without noise).

    Parameters
    ----------
    n : int >= 1
    timesteps : int >= 1
        Length of each input window.
    horizon : int >= 1
        How many next values to predict.
    noise : float >= 0
        Standard deviation of the Gaussian noise added to ``x``.
    seed : int >= 0 or None

    Returns
    -------
    (x, y)
        ``x`` float32 (n, timesteps, 1); ``y`` float32 (n, horizon).
    """
    n = V.check_positive_int(n, "n")
    timesteps = V.check_positive_int(timesteps, "timesteps")
    horizon = V.check_positive_int(horizon, "horizon")
    noise = V.check_non_negative_float(noise, "noise")
    seed = V.check_seed(seed)
    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(0.5, 1.5, size=(n, 1))
    frequency = rng.uniform(0.02, 0.1, size=(n, 1))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(n, 1))
    steps = np.arange(timesteps + horizon, dtype=np.float64)[None, :]
    series = amplitude * np.sin(2.0 * np.pi * frequency * steps + phase)
    x = series[:, :timesteps].copy()
    if noise:
        x += noise * rng.standard_normal(x.shape)
    x = np.ascontiguousarray(x[:, :, None], dtype=np.float32)
    y = np.ascontiguousarray(series[:, timesteps:], dtype=np.float32)
    return x, y
