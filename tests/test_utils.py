"""numlstm.utils against Keras 3.15.1's results (tests/fixtures/keras_utils/, written by
tests/fixtures/make_keras_utils_fixtures.py with TensorFlow), plus hand-computed windows and
the refusals of bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import numlstm
from numlstm import utils
from numlstm.utils import (TimeseriesDataset, pad_sequences, split_dataset,
                           timeseries_dataset_from_array, to_categorical)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras_utils"


def load(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def cases(name, key="cases"):
    return [pytest.param(case, id=case.get("name")) for case in load(name)[key]]


def assert_keras_result(ours, expected):
    assert str(ours.dtype) == expected["dtype"]
    assert list(ours.shape) == expected["shape"]
    assert ours.tolist() == expected["values"]


def test_fixtures_come_from_keras_3_with_tensorflow():
    for name in ("pad_sequences", "to_categorical", "timeseries", "split_dataset"):
        meta = load(name)
        assert meta["keras_version"].startswith("3.") and meta["backend"] == "tensorflow"


# -- pad_sequences ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", cases("pad_sequences"))
def test_pad_sequences_matches_keras(case):
    sequences = [np.asarray(s) if case["as_arrays"] else s for s in case["sequences"]]
    kwargs = dict(case["kwargs"])
    if kwargs.get("dtype") == "object":
        kwargs["dtype"] = object
    if "error" in case:
        # Keras refused it with a ValueError; so do we (our message names the argument).
        assert case["error"]["type"] == "ValueError"
        with pytest.raises(ValueError):
            pad_sequences(sequences, **kwargs)
        return
    assert_keras_result(pad_sequences(sequences, **kwargs), case["result"])


def test_pad_sequences_keras_docstring_and_input_kinds():
    seqs = [[1], [2, 3], [4, 5, 6]]
    expected = np.array([[0, 0, 1], [0, 2, 3], [4, 5, 6]], dtype=np.int32)
    np.testing.assert_array_equal(pad_sequences(seqs), expected)
    np.testing.assert_array_equal(pad_sequences(tuple(tuple(s) for s in seqs)), expected)
    np.testing.assert_array_equal(pad_sequences([np.array(s) for s in seqs]), expected)
    # A 2-D array is a list of equal-length rows; an object array of ragged rows works too.
    ragged = np.empty(3, dtype=object)
    ragged[:] = [np.array(s) for s in seqs]
    np.testing.assert_array_equal(pad_sequences(ragged), expected)
    np.testing.assert_array_equal(pad_sequences(np.arange(6).reshape(2, 3), maxlen=2),
                                  [[1, 2], [4, 5]])
    # The result never aliases the input.
    source = np.arange(4).reshape(1, 4).astype(np.int32)
    out = pad_sequences(source)
    out[0, 0] = 99
    assert source[0, 0] == 0


def test_pad_sequences_vectors_feed_an_lstm():
    """Sequences of feature vectors of different lengths -> (n, maxlen, features), masked by
    Masking(0): the padded steps change nothing (the LSTM of the last real step)."""
    rng = np.random.default_rng(0)
    seqs = [rng.random((k, 3)).astype(np.float32) + 0.1 for k in (2, 5, 4)]
    x = pad_sequences(seqs, dtype="float32", padding="post")
    assert x.shape == (3, 5, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, 2:], 0.0)
    np.testing.assert_array_equal(x[1], seqs[1])
    model = numlstm.Sequential([numlstm.Input((5, 3)), numlstm.Masking(0.0), numlstm.LSTM(4)],
                               seed=0, backend="numpy")
    alone = numlstm.Sequential([numlstm.Input((2, 3)), numlstm.LSTM(4)], seed=0,
                               backend="numpy")
    alone.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x, verbose=0)[0],
                               alone.predict(seqs[0][None], verbose=0)[0], atol=1e-6)


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(padding="middle"), ValueError, r"padding must be 'pre' or 'post'; got padding='middle'"),
    (dict(truncating="end"), ValueError, r"truncating must be 'pre' or 'post'; got "
                                         r"truncating='end'"),
    (dict(padding=None), ValueError, "padding"),
    (dict(maxlen=0), ValueError, "maxlen must be a positive integer; got maxlen=0"),
    (dict(maxlen=2.0), TypeError, "maxlen must be a positive integer"),
    (dict(maxlen=-1), ValueError, "maxlen"),
    (dict(dtype="no_such_dtype"), TypeError, "dtype"),
    (dict(value="x"), ValueError, "dtype int32 cannot hold the string value='x'.*dtype=object"),
    (dict(dtype="uint8", value=-1), ValueError, "value=-1 cannot be stored in dtype uint8"),
    (dict(value=float("nan")), ValueError, "value=nan cannot be stored in dtype int32"),
])
def test_pad_sequences_bad_arguments(kwargs, error, text):
    with pytest.raises(error, match=text):
        pad_sequences([[1, 2], [3]], **kwargs)


def test_pad_sequences_bad_sequences():
    with pytest.raises(TypeError, match="sequences must be a list.*generator"):
        pad_sequences(s for s in [[1], [2]])
    with pytest.raises(TypeError, match="sequences must be a list"):
        pad_sequences("abc")
    with pytest.raises(TypeError, match=r"sequences\[1\] is a str \('ab'\)"):
        pad_sequences([[1], "ab"])
    with pytest.raises(ValueError, match=r"sequences\[1\] is int 5"):
        pad_sequences([[1], 5])
    with pytest.raises(ValueError, match=r"sequences\[0\] has elements of different shapes"):
        pad_sequences([[[1, 2], [3]]])
    with pytest.raises(TypeError, match=r"sequences\[0\] is set, which cannot be sliced"):
        pad_sequences([{1, 2}])
    with pytest.raises(ValueError, match=r"sequences is empty and maxlen is None"):
        pad_sequences([])
    with pytest.raises(ValueError, match=r"sequences\[1\] cannot be converted to dtype int32"):
        pad_sequences([[1], ["a", "b"]])
    with pytest.raises(ValueError, match=r"sequences\[0\] cannot be converted to dtype uint8"):
        pad_sequences([[300]], dtype="uint8")
    with pytest.raises(ValueError, match=r"sequences\[2\] has elements of shape \(3,\), but "
                                         r"sequences\[1\] .* has \(2,\)"):
        pad_sequences([[], [[1, 2]], [[1, 2, 3]]])


def test_pad_sequences_accepts_object_dtype_by_name_and_numpy_ints():
    out = pad_sequences([["a"], ["b", "c"]], dtype="object", value="", maxlen=np.int64(2))
    assert out.dtype == object and out.tolist() == [["", "a"], ["b", "c"]]


# -- to_categorical ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", cases("to_categorical"))
def test_to_categorical_matches_keras(case):
    x = np.asarray(case["x"], dtype=case["x_dtype"])
    assert_keras_result(to_categorical(x, num_classes=case["num_classes"]), case["result"])
    # Python lists give the same (Keras converts with np.array too).
    if case["x_dtype"] == "int64":
        assert_keras_result(to_categorical(case["x"], case["num_classes"]), case["result"])


@pytest.mark.parametrize("x, kwargs, error, text", [
    ([0, -1, 2], {}, ValueError, r"class labels must be >= 0; x\[1\] = -1"),
    ([[0, 1], [3, 1]], dict(num_classes=3), ValueError,
     r"class labels must be < num_classes=3; x\[1, 0\] = 3"),
    ([0.0, 1.5], {}, ValueError, r"whole numbers.*x\[1\] = 1.5"),
    ([0.0, float("nan")], {}, ValueError, r"whole numbers.*x\[1\] = nan"),
    ([0, float("inf")], {}, ValueError, "whole numbers"),
    ([], {}, ValueError, "x is empty and num_classes is None"),
    (["1", "2"], {}, TypeError, "x must hold integer class labels"),
    ([1, 2], dict(num_classes=0), ValueError, "num_classes must be a positive integer"),
    ([1, 2], dict(num_classes=3.0), TypeError, "num_classes must be a positive integer"),
    ([1, 2], dict(num_classes=True), TypeError, "num_classes"),
])
def test_to_categorical_refuses(x, kwargs, error, text):
    with pytest.raises(error, match=text):
        to_categorical(x, **kwargs)


def test_to_categorical_round_trip_with_argmax():
    labels = np.random.default_rng(1).integers(0, 7, size=(5, 4))
    onehot = to_categorical(labels)
    assert onehot.shape == (5, 4, int(labels.max()) + 1) and onehot.dtype == np.float64
    np.testing.assert_array_equal(onehot.argmax(-1), labels)
    np.testing.assert_array_equal(onehot.sum(-1), 1.0)


# -- timeseries_dataset_from_array ------------------------------------------------------------

def _as(value, dtype):
    return None if value is None else np.asarray(value, dtype=dtype)


@pytest.mark.parametrize("case", cases("timeseries"))
def test_timeseries_matches_keras(case):
    data = _as(case["data"], case["data_dtype"])
    targets = _as(case["targets"], case["targets_dtype"])
    ds = timeseries_dataset_from_array(data, targets, **case["kwargs"])
    assert isinstance(ds, TimeseriesDataset)
    ours = list(ds)
    assert len(ours) == len(case["batches"]) == len(ds)
    if case["kwargs"].get("shuffle"):
        windows = sorted([x.tolist(), y.tolist()] for bx, by in ours for x, y in zip(bx, by))
        assert windows == case["sorted_windows"]
        # Batch sizes as Keras's: full batches, a smaller last one.
        assert [len(b[0]) for b in ours] == [len(b["x"]) for b in case["batches"]]
        return
    for got, expected in zip(ours, case["batches"]):
        if targets is None:
            assert isinstance(got, np.ndarray) and got.dtype == data.dtype
            assert got.tolist() == expected["x"]
        else:
            x, y = got
            assert x.dtype == data.dtype and y.dtype == targets.dtype
            assert x.tolist() == expected["x"] and y.tolist() == expected["y"]


def test_timeseries_hand_computed_windows_and_arrays():
    data = np.arange(100, 120)
    ds = timeseries_dataset_from_array(data, data * 2, sequence_length=3, sequence_stride=4,
                                       sampling_rate=2, batch_size=2, start_index=1,
                                       end_index=18)
    # Rows [1, 18): windows start at 1, 5, 9, 13 (a window covers (3-1)*2+1 = 5 rows, so the
    # last start is 18-5 = 13), each x = data[s], data[s+2], data[s+4]; y = targets[s].
    x, y = ds.arrays()
    np.testing.assert_array_equal(x, [[101, 103, 105], [105, 107, 109], [109, 111, 113],
                                      [113, 115, 117]])
    np.testing.assert_array_equal(y, [202, 210, 218, 226])
    assert ds.num_windows == 4 and len(ds) == 2
    first = [b[0].tolist() for b in ds]
    second = [b[0].tolist() for b in ds]               # re-iterable: one pass per epoch
    assert first == second == [x[:2].tolist(), x[2:].tolist()]
    assert "num_windows=4" in repr(ds)


def test_timeseries_shuffle_is_keras_first_order_then_new_each_pass():
    data = np.arange(50)
    ds = timeseries_dataset_from_array(data, data, sequence_length=2, batch_size=8,
                                       shuffle=True, seed=3)
    starts = np.arange(49)
    np.random.RandomState(3).shuffle(starts)        # Keras's global shuffle of the starts
    first = np.concatenate([y for _, y in ds])
    np.testing.assert_array_equal(first, starts)
    np.testing.assert_array_equal(ds.arrays()[1], starts)
    second = np.concatenate([y for _, y in ds])
    assert sorted(second) == list(range(49)) and not np.array_equal(second, first)
    again = timeseries_dataset_from_array(data, data, sequence_length=2, batch_size=8,
                                          shuffle=True, seed=3)
    np.testing.assert_array_equal(np.concatenate([y for _, y in again]), first)


def test_timeseries_trains_a_model_through_arrays():
    series = np.sin(np.arange(120) * 0.3).astype(np.float32)
    ds = timeseries_dataset_from_array(series[:-5, None], series[5:], sequence_length=5,
                                       batch_size=16)
    x, y = ds.arrays()
    assert x.shape == (111, 5, 1) and y.shape == (111,)
    np.testing.assert_array_equal(y, series[5:116])        # the value after each window
    model = numlstm.Sequential([numlstm.Input((5, 1)), numlstm.LSTM(4), numlstm.Dense(1)],
                               seed=0, backend="numpy")
    model.compile("adam", "mse")
    history = model.fit(x, y[:, None], batch_size=ds.batch_size, epochs=2, verbose=0,
                        shuffle=False)
    assert len(history.history["loss"]) == 2
    batch_x = next(iter(ds))[0]
    assert model.predict(batch_x, verbose=0).shape == (16, 1)


def test_timeseries_unbatched_yields_single_windows():
    ds = timeseries_dataset_from_array(np.arange(5), None, sequence_length=2, batch_size=None)
    items = list(ds)
    assert len(ds) == len(items) == 4 and items[1].tolist() == [1, 2]
    assert ds.arrays().shape == (4, 2)


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(sequence_length=0), ValueError, "sequence_length must be a positive integer"),
    (dict(sequence_length=2.0), TypeError, "sequence_length"),
    (dict(sequence_stride=0), ValueError, "sequence_stride must be a positive integer"),
    (dict(sequence_stride=10), ValueError, "sequence_stride must be lower than the length of "
                                           "the data; got sequence_stride=10 for data of "
                                           "length 10"),
    (dict(sampling_rate=0), ValueError, "sampling_rate"),
    (dict(sampling_rate=10), ValueError, "sampling_rate must be lower than the length"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer"),
    (dict(start_index=-1), ValueError, "start_index must be an integer >= 0"),
    (dict(start_index=10), ValueError, "start_index must be lower than the length of the "
                                       "data; got start_index=10"),
    (dict(start_index=5, end_index=5), ValueError, "end_index must be higher than start_index"),
    (dict(end_index=10), ValueError, "end_index must be lower than the length of the data"),
    (dict(end_index=0), ValueError, "end_index must be an integer >= 1"),
    (dict(sequence_length=11), ValueError, "too short for one window.*covers 11 rows.*hold 10"),
    (dict(sequence_length=4, sampling_rate=4), ValueError, "covers 13 rows"),
    (dict(shuffle=1), TypeError, "shuffle must be True or False"),
    (dict(seed=-2), ValueError, "seed"),
])
def test_timeseries_bad_arguments(kwargs, error, text):
    arguments = dict(sequence_length=3)
    arguments.update(kwargs)
    with pytest.raises(error, match=text):
        timeseries_dataset_from_array(np.arange(10), np.arange(10), **arguments)


def test_timeseries_bad_data_and_targets():
    with pytest.raises(ValueError, match="data must have a time axis"):
        timeseries_dataset_from_array(np.float32(3), None, 1)
    with pytest.raises(TypeError, match="data must be an array"):
        timeseries_dataset_from_array("abc", None, 1)
    with pytest.raises(TypeError, match="targets must be a numeric array"):
        timeseries_dataset_from_array(np.arange(4), np.array([[1], [1, 2]], dtype=object), 2)
    # Keras bounds the window count by len(targets); targets too short for the windows after
    # start_index fail inside TensorFlow there, clearly here.
    with pytest.raises(ValueError, match=r"targets has 4 rows, but the window starting at "
                                         r"row 5 needs targets\[5\]"):
        timeseries_dataset_from_array(np.arange(10), np.arange(4), 2, start_index=2)


# -- split_dataset ----------------------------------------------------------------------------

@pytest.mark.parametrize("entry", cases("split_dataset", "sizes"))
def test_split_sizes_match_keras(entry):
    total = entry["total"]
    data = np.arange(total)
    kwargs = dict(left_size=entry["left_size"], right_size=entry["right_size"])
    if "error" in entry:
        assert entry["error"]["type"] == "ValueError"
        with pytest.raises(ValueError):
            split_dataset(data, **kwargs)
        return
    left, right = split_dataset(data, **kwargs)
    np.testing.assert_array_equal(left, np.arange(entry["left"]))
    np.testing.assert_array_equal(right, np.arange(total - entry["right"], total))


@pytest.mark.parametrize("case", cases("split_dataset"))
def test_split_dataset_matches_keras(case):
    n = case["n"]
    if case["kind"] == "array":
        left, right = split_dataset(np.arange(n) * 10, **case["kwargs"])
        assert left.tolist() == case["left"] and right.tolist() == case["right"]
        return
    x, y = np.arange(n) * 10, np.arange(2 * n).reshape(n, 2)
    (lx, ly), (rx, ry) = split_dataset((x, y), **case["kwargs"])
    assert [[a, b] for a, b in zip(lx.tolist(), ly.tolist())] == case["left"]
    assert [[a, b] for a, b in zip(rx.tolist(), ry.tolist())] == case["right"]
    (lx2, _), _ = split_dataset([x, y], **case["kwargs"])     # a list works like a tuple
    np.testing.assert_array_equal(lx2, lx)


def test_split_dataset_shuffle_without_seed_and_numpy_sizes():
    data = np.arange(20)
    random.seed(5)
    left, right = split_dataset(data, left_size=np.float64(0.25), shuffle=True)
    assert len(left) == 5 and len(right) == 15
    assert sorted(np.concatenate([left, right]).tolist()) == list(range(20))
    left, right = split_dataset(data, left_size=np.int64(3), right_size=np.float32(0.5))
    assert left.tolist() == [0, 1, 2] and right.tolist() == list(range(10, 20))


@pytest.mark.parametrize("dataset, kwargs, error, text", [
    (np.arange(5), dict(), ValueError, "give left_size or right_size"),
    ([1, 2, 3], dict(left_size=1), TypeError, r"dataset\[0\] is int 1 \(wrap it in np.asarray"),
    ({"x": np.arange(3)}, dict(left_size=1), TypeError, "dataset must be a NumPy array or"),
    ((), dict(left_size=1), ValueError, "dataset is an empty tuple/list"),
    ((np.arange(3), np.arange(4)), dict(left_size=1), ValueError,
     r"dataset\[0\] has 3 samples, dataset\[1\] has 4"),
    (np.arange(0), dict(left_size=1), ValueError, "dataset is empty"),
    (np.array(1.0), dict(left_size=1), ValueError, "must have a sample axis"),
    (np.float32(1), dict(left_size=1), TypeError, "dataset must be a NumPy array or"),
    (np.arange(5), dict(left_size="0.5"), TypeError, "left_size must be an int"),
    (np.arange(5), dict(left_size=True), TypeError, "left_size must be an int"),
    (np.arange(5), dict(right_size=float("nan")), ValueError, "right_size must be a float "
                                                              "strictly between 0 and 1"),
    (np.arange(5), dict(left_size=5), ValueError, "left_size must be a positive integer "
                                                  "smaller than 5"),
    (np.arange(5), dict(left_size=0.1), ValueError, "leave the left part empty"),
    (np.arange(5), dict(left_size=3, right_size=3), ValueError, "3 \\+ 3 samples, more than "
                                                                "the 5"),
    (np.arange(5), dict(left_size=0.6, right_size=0.6), ValueError, "at most 1"),
    (np.arange(5), dict(left_size=0, right_size=0), ValueError, "both 0"),
    (np.arange(5), dict(left_size=2, shuffle="yes"), TypeError, "shuffle"),
    (np.arange(5), dict(left_size=2, shuffle=True, seed=1.5), TypeError, "seed"),
])
def test_split_dataset_refuses(dataset, kwargs, error, text):
    with pytest.raises(error, match=text):
        split_dataset(dataset, **kwargs)


def test_utils_is_an_attribute_of_the_package():
    assert numlstm.utils is utils
    assert set(utils.__all__) >= {"pad_sequences", "to_categorical", "split_dataset",
                                  "timeseries_dataset_from_array"}


def test_timeseries_dataset_trains_like_its_arrays():
    """fit/evaluate/predict take a TimeseriesDataset as a re-iterable source of batches: one
    epoch on it is one epoch on ``arrays()`` with the same batch size, unshuffled."""
    series = np.sin(np.arange(120) * 0.3)[:, None]
    ds = timeseries_dataset_from_array(series[:-4], series[4:, 0], sequence_length=4,
                                       batch_size=16)

    def model():
        m = numlstm.Sequential([numlstm.Input((4, 1), dtype="float64"),
                                numlstm.LSTM(3, dtype="float64", seed=1),
                                numlstm.Dense(1, dtype="float64", seed=2)], seed=3)
        m.compile("sgd", "mse")
        return m

    on_dataset, on_arrays = model(), model()
    x, y = ds.arrays()
    losses = on_dataset.fit(ds, epochs=2, verbose=0).history["loss"]
    expected = on_arrays.fit(x, y, batch_size=16, epochs=2, shuffle=False,
                             verbose=0).history["loss"]
    np.testing.assert_allclose(losses, expected, rtol=1e-12)
    np.testing.assert_allclose(on_dataset.predict(ds), on_arrays.predict(x), rtol=1e-12)
    assert on_dataset.evaluate(ds) == pytest.approx(on_arrays.evaluate(x, y), rel=1e-12)
