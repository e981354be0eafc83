"""Keras's data utilities, in NumPy: padding, one-hot labels, time-series windows, splits.

=======================================  ===================================================
function                                 result
=======================================  ===================================================
:func:`pad_sequences`                    ``(n, maxlen)`` (or ``(n, maxlen, *features)``) array
:func:`to_categorical`                   one-hot float64 array, the class axis last
:func:`timeseries_dataset_from_array`    a :class:`TimeseriesDataset` of ``(x, y)`` batches
:func:`split_dataset`                    ``(left, right)`` arrays or tuples of arrays
=======================================  ===================================================

Each follows ``keras.utils`` of Keras 3 (the numbers are compared with Keras 3.15.1's in the
tests): the same defaults, the same results, the same exception class where Keras raises one
on purpose. Where Keras would return something silently wrong or fail deep inside NumPy or
TensorFlow (a negative class index, an empty list, an out-of-range window), these functions
raise a ``ValueError``/``TypeError`` that names the argument instead; each docstring lists
those cases under "Differences from Keras".

Keras returns ``tf.data.Dataset`` objects from :func:`timeseries_dataset_from_array` and
:func:`split_dataset`; numlstm has no TensorFlow, so the first returns a re-iterable
:class:`TimeseriesDataset` (``len()``, ``for x, y in ds``, ``ds.arrays()``) and the second
plain NumPy arrays, both of which ``fit``/``evaluate``/``predict`` take.

>>> from numlstm.utils import pad_sequences, to_categorical
>>> pad_sequences([[1], [2, 3], [4, 5, 6]])
array([[0, 0, 1],
       [0, 2, 3],
       [4, 5, 6]], dtype=int32)
>>> to_categorical([0, 2], num_classes=3)
array([[1., 0., 0.],
       [0., 0., 1.]])
"""

from __future__ import annotations

import numbers
import random

import numpy as np

from . import validation as V

__all__ = ["pad_sequences", "to_categorical", "timeseries_dataset_from_array",
           "TimeseriesDataset", "split_dataset"]

_ENDS = ("pre", "post")


def _check_end(value, argument):
    """'pre' or 'post' (Keras raises ValueError for an unknown string, so do we, up front)."""
    if not isinstance(value, str) or value not in _ENDS:
        raise ValueError(f"{argument} must be 'pre' or 'post'; got {argument}={value!r}")
    return value


def _check_optional_positive_int(value, argument):
    return None if value is None else V.check_positive_int(value, argument)


# -- pad_sequences ----------------------------------------------------------------------------

def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Pad (or cut) a list of sequences to one length: ``keras.utils.pad_sequences``.

    Row ``i`` of the result holds the last (``truncating="pre"``) or first (``"post"``)
    ``maxlen`` elements of ``sequences[i]``, placed at the end (``padding="pre"``) or the start
    (``"post"``) of the row; the other positions hold ``value``::

        pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2)  ->  [[0, 1], [2, 3], [5, 6]]

    Parameters
    ----------
    sequences : list (or array) of sequences
        Each a list, tuple or array; the sequences may differ in length and may be empty. An
        element of a sequence may itself be an array (a vector of features): the first
        non-empty sequence fixes that shape ``features`` and every other must match it.
    maxlen : int >= 1 or None
        Length of the rows; None uses the longest sequence's length (0 if all are empty).
    dtype : NumPy dtype or name, default ``"int32"`` (as Keras)
        Dtype of the result; the elements are cast to it as NumPy casts (floats to an integer
        dtype are truncated toward zero, as in Keras). For strings use ``object`` or a NumPy
        string dtype such as ``"<U10"``.
    padding, truncating : "pre" or "post"
    value : number or str, default 0.0
        The padding value, cast to ``dtype`` (0.5 pads an ``int32`` result with 0). A string
        needs ``dtype=object`` or a string dtype.

    Returns
    -------
    ndarray of shape ``(len(sequences), maxlen) + features`` and dtype ``dtype``.

    Raises
    ------
    ValueError
        ``padding``/``truncating`` other than "pre"/"post"; a sequence that is not a sequence
        (Keras's message); elements of different shapes; a string ``value`` with a numeric
        ``dtype``; a value or element that ``dtype`` cannot hold (e.g. -1 in ``uint8``, NaN
        in ``int32``, text in ``int32``); an empty ``sequences`` without ``maxlen``.
    TypeError
        ``sequences`` without a length (a generator), a ``str`` given as a sequence, a
        ``maxlen`` that is not a positive integer, an unknown ``dtype``.

    Differences from Keras: the checks run before any work (Keras reports a bad ``padding``
    only on reaching a non-empty sequence); ``maxlen=0`` is refused (Keras fails or ignores
    it depending on ``truncating``); a bare string is not taken as a sequence of characters;
    ``dtype="object"`` (the name) is accepted like ``dtype=object``; NumPy's cast errors are
    reported as ``ValueError`` naming the sequence.
    """
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        shown = (type(sequences).__name__ if hasattr(sequences, "__next__")
                 else V.kind_of(sequences))
        raise TypeError("sequences must be a list (or array) of sequences, with a length; got "
                        f"{shown} (use list(...) for a generator)")
    maxlen = _check_optional_positive_int(maxlen, "maxlen")
    padding = _check_end(padding, "padding")
    truncating = _check_end(truncating, "truncating")
    try:
        out_dtype = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"dtype must be a NumPy dtype or its name; got {V.kind_of(dtype)}") \
            from error
    is_text = out_dtype.kind in "OSU"
    if isinstance(value, str) and not is_text:
        raise ValueError(f"dtype {out_dtype} cannot hold the string value={value!r}; use "
                         "dtype=object (or a string dtype such as '<U10') for strings")

    if (out_dtype.kind in "biu" and isinstance(value, numbers.Real)
            and not np.isfinite(float(value))):
        # NumPy would store an arbitrary integer (with only a RuntimeWarning).
        raise ValueError(f"value={value!r} cannot be stored in dtype {out_dtype}: not a "
                         "finite number")
    lengths, sample_shape, shape_from = [], (), None
    for i, sequence in enumerate(sequences):
        if isinstance(sequence, (str, bytes)):
            raise TypeError(f"sequences[{i}] is a {type(sequence).__name__} ({sequence!r}); "
                            "each sequence must be a list or array of elements (tokens)")
        try:
            length = len(sequence)
        except TypeError as error:           # Keras raises ValueError here too
            raise ValueError("sequences must be a list of iterables (lists or arrays); "
                             f"sequences[{i}] is {V.kind_of(sequence)}") from error
        lengths.append(length)
        if length and shape_from is None:
            try:
                sample_shape = np.asarray(sequence, dtype=object if is_text else None).shape[1:]
            except ValueError as error:             # NumPy: "inhomogeneous shape"
                raise ValueError(f"sequences[{i}] has elements of different shapes: "
                                 f"{error}") from error
            shape_from = i
    if maxlen is None:
        if not lengths:
            raise ValueError("sequences is empty and maxlen is None: give maxlen to get an "
                             "array of shape (0, maxlen)")
        maxlen = int(max(lengths))

    try:
        result = np.full((len(lengths), maxlen) + sample_shape, value, dtype=out_dtype)
    except (ValueError, TypeError, OverflowError) as error:
        raise ValueError(f"value={value!r} cannot be stored in dtype {out_dtype}: {error}") \
            from error
    for i, sequence in enumerate(sequences):
        if not lengths[i]:
            continue
        try:
            kept = sequence[-maxlen:] if truncating == "pre" else sequence[:maxlen]
        except (TypeError, KeyError) as error:       # a set, a dict: no order to keep
            raise TypeError(f"sequences[{i}] is {type(sequence).__name__}, which cannot be "
                            "sliced; each sequence must be a list, tuple or array") from error
        try:
            kept = np.asarray(kept, dtype=out_dtype)
        except (ValueError, TypeError, OverflowError) as error:
            raise ValueError(f"sequences[{i}] cannot be converted to dtype {out_dtype} "
                             f"(an element that is not a number, too large, or of a "
                             f"different shape?): {error}") from error
        if kept.shape[1:] != sample_shape:
            raise ValueError(f"sequences[{i}] has elements of shape {kept.shape[1:]}, but "
                             f"sequences[{shape_from}] (the first non-empty sequence) has "
                             f"{sample_shape}; every element must have the same shape")
        if padding == "post":
            result[i, :len(kept)] = kept
        else:
            result[i, maxlen - len(kept):] = kept
    return result


# -- to_categorical ---------------------------------------------------------------------------

def to_categorical(x, num_classes=None):
    """One-hot encode integer class labels: ``keras.utils.to_categorical``.

    ``result[..., k] = 1.0 if x[...] == k else 0.0``, with the class axis appended last. As in
    Keras, a trailing axis of length 1 is dropped first (labels of shape ``(n, 1)`` give
    ``(n, num_classes)``, ``(n, t, 1)`` give ``(n, t, num_classes)``), but a 1-D ``(1,)``
    stays (``(1, num_classes)``), and a scalar label gives a vector ``(num_classes,)``.

    Parameters
    ----------
    x : array-like of integers (any shape; booleans count as 0/1; floats must be whole)
        Class indices in ``[0, num_classes)``.
    num_classes : int >= 1 or None
        None infers ``max(x) + 1``.

    Returns
    -------
    float64 ndarray of shape ``squeezed_shape(x) + (num_classes,)`` (Keras's NumPy path
    returns float64 as well; cast with ``.astype("float32")`` if you like).

    Raises
    ------
    ValueError
        A label outside ``[0, num_classes)`` (naming the first and its index), a non-whole
        or non-finite float label, an empty ``x`` without ``num_classes``.
    TypeError
        Non-numeric labels (strings, objects), ``num_classes`` not a positive integer.

    Differences from Keras: Keras silently one-hot encodes a negative label as a class
    counted from the end and truncates 1.7 to class 1; both are refused here. Keras reads
    ``num_classes=0`` as None; here it is refused.
    """
    num_classes = _check_optional_positive_int(num_classes, "num_classes")
    labels = np.asarray(x)
    if labels.dtype.kind not in "biuf":
        raise TypeError(f"x must hold integer class labels; got {V.kind_of(labels)}")
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"x must hold whole numbers (class indices); x{list(where)} = "
                             f"{labels[where].item()!r}")
    if labels.size and labels.dtype.kind in "iuf" and labels.min() < 0:
        where = tuple(int(i) for i in np.argwhere(labels < 0)[0])
        raise ValueError(f"class labels must be >= 0; x{list(where)} = {labels[where].item()!r}")
    if labels.dtype.kind == "u" and labels.size and labels.max() > np.iinfo(np.int64).max:
        raise ValueError(f"class label {labels.max()} is too large")
    labels = labels.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1)
    if num_classes is None:
        if not flat.size:
            raise ValueError("x is empty and num_classes is None: give num_classes")
        num_classes = int(flat.max()) + 1
    elif flat.size and flat.max() >= num_classes:
        where = tuple(int(i) for i in np.argwhere(labels >= num_classes)[0])
        raise ValueError(f"class labels must be < num_classes={num_classes}; "
                         f"x{list(where)} = {int(labels[where])}")
    result = np.zeros((flat.size, num_classes))
    result[np.arange(flat.size), flat] = 1.0
    return result.reshape(shape + (num_classes,))


# -- timeseries_dataset_from_array ------------------------------------------------------------

class TimeseriesDataset:
    """Windows over a series, served as batches: what :func:`timeseries_dataset_from_array`
    returns (Keras returns a ``tf.data.Dataset`` of the same windows).

    Window ``j`` (in order of its start ``p_j = j * sequence_stride``) is::

        x_j = data[start_index + p_j + k * sampling_rate]     k = 0 .. sequence_length - 1
        y_j = targets[start_index + p_j]

    - ``for x, y in ds`` yields batches ``x`` of shape ``(b, sequence_length) + data.shape[1:]``
      and ``y`` of shape ``(b,) + targets.shape[1:]``, ``b = batch_size`` except for a
      smaller last batch (only ``x`` when ``targets`` is None; single windows, no batch
      axis, when ``batch_size`` is None). The object can be iterated again, once per epoch.
    - ``len(ds)`` is the number of batches, ``ds.num_windows`` the number of windows.
    - ``ds.arrays()`` gives all windows at once: ``(x, y)`` arrays (``x`` alone without
      targets), in the order of the first pass — e.g. for ``model.fit(*ds.arrays(),
      batch_size=ds.batch_size or 1, shuffle=False)``. Mind the memory: ``x`` holds
      ``num_windows * sequence_length`` rows of ``data``; iterating builds one batch at a
      time.

    With ``shuffle=True`` the window starts are shuffled by ``np.random.RandomState(seed)``,
    exactly as Keras does first, and every further pass draws a new order from the same
    generator (Keras reshuffles each pass too, by TensorFlow's generator within a buffer of
    ``8 * batch_size`` windows, which cannot be reproduced without TensorFlow: the windows are
    Keras's, the order of a shuffled pass is not).
    """

    def __init__(self, data, targets, starts, sequence_length, sampling_rate, batch_size,
                 shuffle, seed):
        self._data = data
        self._targets = targets
        self._starts = starts                      # absolute row of each window's first step
        self._offsets = np.arange(sequence_length) * sampling_rate
        self.sequence_length = sequence_length
        self.sampling_rate = sampling_rate
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._rng = np.random.RandomState(seed) if shuffle else None
        self._first = None
        if shuffle:
            self._first = starts.copy()
            self._rng.shuffle(self._first)
        self._passes = 0

    @property
    def num_windows(self) -> int:
        """How many windows (samples) one pass yields."""
        return int(self._starts.size)

    def __len__(self) -> int:
        if self.batch_size is None:
            return self.num_windows
        return -(-self.num_windows // self.batch_size)

    def _order(self):
        """The window starts of the next pass: the first shuffle is Keras's, later ones new."""
        if not self.shuffle:
            return self._starts
        self._passes += 1
        if self._passes == 1:
            return self._first
        order = self._starts.copy()
        self._rng.shuffle(order)
        return order

    def _take(self, starts):
        x = self._data[starts[:, None] + self._offsets]
        if self._targets is None:
            return x
        return x, self._targets[starts]

    def __iter__(self):
        order = self._order()
        if self.batch_size is None:
            for start in order:
                item = self._take(np.array([start]))
                yield item[0] if self._targets is None else (item[0][0], item[1][0])
            return
        for begin in range(0, order.size, self.batch_size):
            yield self._take(order[begin:begin + self.batch_size])

    def arrays(self):
        """All windows as arrays, in the order of the first pass (see the class docstring)."""
        order = self._first if self.shuffle else self._starts
        return self._take(order)

    def __repr__(self) -> str:
        return (f"TimeseriesDataset(num_windows={self.num_windows}, sequence_length="
                f"{self.sequence_length}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, batches={len(self)})")


def _as_series(value, argument):
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{argument} must be an array (time along axis 0); got "
                        f"{V.kind_of(value)}")
    array = np.asarray(value)
    if array.ndim == 0:
        raise ValueError(f"{argument} must have a time axis (at least 1-D); got "
                         f"{V.kind_of(array)}")
    if array.dtype == object:
        raise TypeError(f"{argument} must be a numeric array of one shape per step; got an "
                        f"array of Python objects (ragged rows?)")
    return array


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None):
    """Sliding windows over a series: ``keras.utils.timeseries_dataset_from_array``.

    Only the rows ``data[start_index:end_index]`` are used (default: all). Window ``j``
    starts at row ``s_j = start_index + j * sequence_stride`` and takes ``sequence_length``
    rows ``sampling_rate`` apart; its target is ``targets[s_j]`` (the target of the window
    that *starts* at that row — for forecasting the value after the window, pass
    ``targets=data[sequence_length:]``, as Keras's documentation does)::

        x_j = data[s_j + k * sampling_rate]      k = 0 .. sequence_length - 1
        y_j = targets[s_j]

    There are ``ceil(m / sequence_stride)`` windows with ``m = min(end_index - start_index -
    (sequence_length - 1) * sampling_rate, len(targets))`` (the ``len(targets)`` bound only
    with targets), as in Keras.

    Parameters
    ----------
    data : array-like, shape (T, ...) -- time along axis 0, any trailing shape
    targets : array-like of shape (>= the last window's start + 1, ...), or None
        None makes the dataset yield ``x`` batches only (for ``predict``).
    sequence_length : int >= 1
    sequence_stride : int >= 1 and < len(data)
        Steps between the starts of consecutive windows.
    sampling_rate : int >= 1 and < len(data)
        Steps between consecutive rows within a window.
    batch_size : int >= 1 or None, default 128 (as Keras)
        None yields single windows.
    shuffle : bool
    seed : int >= 0 or None
        Seed of the shuffle (None: fresh randomness).
    start_index, end_index : int or None
        ``0 <= start_index < len(data)``; ``start_index < end_index < len(data)`` (Keras's
        bounds: ``end_index`` is exclusive and must be below ``len(data)``; leave it None to
        use every row).

    Returns
    -------
    TimeseriesDataset
        Re-iterable ``(x, y)`` batches with ``len()`` and ``.arrays()``; see that class. Use it
        in numlstm as ``x, y = ds.arrays(); model.fit(x, y, ...)`` (any version), or pass the
        object where ``fit`` takes an iterable of batches.

    Raises
    ------
    ValueError
        Keras's bound checks on the indices, strides and rates (Keras's messages, named
        arguments); data too short for a single window; a target index beyond ``targets``.
    TypeError
        Arguments of the wrong kind (a float ``sequence_length``, a non-bool ``shuffle``...).

    Differences from Keras: a series too short for one window raises (Keras returns an
    empty dataset); targets too short for the windows raise (Keras fails inside
    TensorFlow); ``sequence_length`` is checked; the order of a shuffled pass differs (see
    :class:`TimeseriesDataset`).
    """
    data = _as_series(data, "data")
    if targets is not None:
        targets = _as_series(targets, "targets")
    n = len(data)
    sequence_length = V.check_positive_int(sequence_length, "sequence_length")
    sequence_stride = V.check_positive_int(sequence_stride, "sequence_stride")
    sampling_rate = V.check_positive_int(sampling_rate, "sampling_rate")
    batch_size = _check_optional_positive_int(batch_size, "batch_size")
    shuffle = V.check_bool(shuffle, "shuffle")
    seed = V.check_seed(seed)
    if start_index is not None:
        start_index = V.check_int_at_least(start_index, "start_index", 0)
        if start_index >= n:
            raise ValueError("start_index must be lower than the length of the data; got "
                             f"start_index={start_index} for data of length {n}")
    if end_index is not None:
        end_index = V.check_int_at_least(end_index, "end_index", 1)
        if start_index and end_index <= start_index:
            raise ValueError("end_index must be higher than start_index; got "
                             f"start_index={start_index} and end_index={end_index}")
        if end_index >= n:
            raise ValueError("end_index must be lower than the length of the data (leave it "
                             f"None to use every row); got end_index={end_index} for data "
                             f"of length {n}")
    if sampling_rate >= n:
        raise ValueError("sampling_rate must be lower than the length of the data; got "
                         f"sampling_rate={sampling_rate} for data of length {n}")
    if sequence_stride >= n:
        raise ValueError("sequence_stride must be lower than the length of the data; got "
                         f"sequence_stride={sequence_stride} for data of length {n}")
    start = 0 if start_index is None else start_index
    end = n if end_index is None else end_index
    span = (sequence_length - 1) * sampling_rate + 1           # rows one window covers
    count = end - start - span + 1
    if count <= 0:
        raise ValueError(f"the data is too short for one window: a window of "
                         f"sequence_length={sequence_length} rows sampling_rate="
                         f"{sampling_rate} apart covers {span} rows, but rows "
                         f"[{start}, {end}) hold {end - start}")
    if targets is not None:
        count = min(count, len(targets))
    relative = np.arange(0, count, sequence_stride, dtype=np.int64)
    if targets is not None and start + relative[-1] >= len(targets):
        raise ValueError(f"targets has {len(targets)} rows, but the window starting at row "
                         f"{start + relative[-1]} needs targets[{start + relative[-1]}]")
    return TimeseriesDataset(data, targets, start + relative, sequence_length, sampling_rate,
                             batch_size, shuffle, seed)


# -- split_dataset ----------------------------------------------------------------------------

def _split_size(value, argument, total):
    """Keras's rule: a float is a fraction in (0, 1), an int a count in (0, total)."""
    if value is None:
        return None, None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be an int (a count), a float (a fraction) or None; "
                        f"got {V.kind_of(value)}")
    if isinstance(value, numbers.Integral):
        if not 0 < value < total:
            raise ValueError(f"{argument} must be a positive integer smaller than {total} (the "
                             f"number of samples), or a float in (0, 1); got "
                             f"{argument}={value}")
        return int(value), "int"
    value = float(value)
    if not 0.0 < value < 1.0:                      # NaN fails this too
        raise ValueError(f"{argument} must be a float strictly between 0 and 1, or a "
                         f"positive integer smaller than {total}; got {argument}={value!r}")
    return value, "float"


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Split arrays into a left and a right part (e.g. train/test): ``keras.utils.split_dataset``.

    ``dataset`` is one array, or a tuple/list of arrays of the same length (e.g. ``(x, y)``);
    every array is split along axis 0 at the same rows.

    Sizes, as Keras computes them (``n`` = number of samples): a float is a fraction in
    ``(0, 1)`` and becomes ``round(fraction * n)`` samples (Python's ``round``: halves to
    even, 0.5 of 5 is 2); an int is a count in ``(0, n)``; a size left None is ``n`` minus
    the other. The left part is the first ``left_size`` samples, the right part the *last*
    ``right_size`` (if the two add up to less than ``n``, the samples between are dropped).
    Both parts must be non-empty and together at most ``n``.

    With ``shuffle=True`` the samples are first permuted as Keras permutes them —
    ``random.Random(seed).shuffle`` over the samples (Python's generator, so a given seed
    gives Keras's split exactly); ``seed=None`` draws a fresh seed.

    Returns
    -------
    (left, right)
        Two arrays for an array; two tuples of arrays for a tuple/list (Keras returns
        ``tf.data.Dataset`` objects yielding the same samples, from tuples).

    Raises
    ------
    ValueError
        Both sizes None or both 0, a size out of range, fractions adding to more than 1,
        sizes adding to more than ``n``, a part that would be empty, arrays of different
        lengths, an empty dataset.
    TypeError
        A dataset that is not an array or tuple/list of arrays (Keras takes ``tf.data`` and
        torch datasets too: not here), a size that is not an int/float, a non-bool shuffle.

    Differences from Keras: NumPy integer and float sizes are accepted (Keras accepts only
    Python ``int``/``float``); the result is arrays, not datasets.
    """
    if isinstance(dataset, np.ndarray):
        arrays, as_tuple = [dataset], False
    elif isinstance(dataset, (tuple, list)):
        if not dataset:
            raise ValueError("dataset is an empty tuple/list; give one or more arrays of the "
                             "same length")
        for i, item in enumerate(dataset):
            if not isinstance(item, np.ndarray):
                raise TypeError(f"dataset must be an array or a tuple/list of arrays; "
                                f"dataset[{i}] is {V.kind_of(item)} (wrap it in np.asarray)")
        arrays, as_tuple = list(dataset), True
    else:
        raise TypeError("dataset must be a NumPy array or a tuple/list of arrays of the same "
                        f"length; got {V.kind_of(dataset)}")
    for i, array in enumerate(arrays):
        if array.ndim == 0:
            raise ValueError(f"dataset{f'[{i}]' if as_tuple else ''} must have a sample axis "
                             f"(at least 1-D); got {V.kind_of(array)}")
    total = len(arrays[0])
    for i, array in enumerate(arrays[1:], start=1):
        if len(array) != total:
            raise ValueError(f"the arrays of dataset must have the same length; dataset[0] has "
                             f"{total} samples, dataset[{i}] has {len(array)}")
    if total == 0:
        raise ValueError("dataset is empty (0 samples)")
    if left_size is None and right_size is None:
        raise ValueError("give left_size or right_size (or both); got left_size=None and "
                         "right_size=None")
    shuffle = V.check_bool(shuffle, "shuffle")
    seed = V.check_seed(seed)
    if left_size == 0 and right_size == 0 and not isinstance(left_size, bool):
        raise ValueError("left_size and right_size are both 0; at least one must be non-zero")
    left, left_kind = _split_size(left_size, "left_size", total)
    right, right_kind = _split_size(right_size, "right_size", total)
    if left_kind == right_kind == "float" and left + right > 1:
        raise ValueError(f"left_size + right_size must be at most 1 for fractions; got "
                         f"{left_size} + {right_size}")
    if left_kind == "float":
        left = round(left * total)
    if right_kind == "float":
        right = round(right * total)
    if left is None:
        left = total - right
    elif right is None:
        right = total - left
    if left + right > total:
        raise ValueError(f"left_size and right_size give {left} + {right} samples, more than "
                         f"the {total} in dataset")
    for size, side in ((left, "left"), (right, "right")):
        if size == 0:
            raise ValueError(f"with {total} samples, left_size={left_size!r} and right_size="
                             f"{right_size!r} leave the {side} part empty ({left} + {right} "
                             "samples)")
    order = np.arange(total)
    if shuffle:
        if seed is None:
            seed = random.randint(0, 10 ** 6)
        positions = list(range(total))
        # Keras shuffles its list of samples with Python's generator seeded by `seed`; the
        # swaps depend only on the length, so shuffling the positions gives the same order.
        random.Random(seed).shuffle(positions)
        order = np.asarray(positions)
    left_rows, right_rows = order[:left], order[total - right:]
    lefts = tuple(np.ascontiguousarray(a[left_rows]) for a in arrays)
    rights = tuple(np.ascontiguousarray(a[right_rows]) for a in arrays)
    if not as_tuple:
        return lefts[0], rights[0]
    return lefts, rights
