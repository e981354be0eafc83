"""Data sets for trying LSTMs: two real, two synthetic.

=====================  ==========================  ===========================================
function               x                           y
=====================  ==========================  ===========================================
:func:`digits`         (n, 8, 8) float32 in [0, 1]  (n,) int64 class labels 0..9
:func:`mnist`          (n, 28, 28) uint8 0..255     (n,) uint8 class labels 0..9 (Keras's form)
:func:`adding_problem` (n, timesteps, 2) float32    (n, 1) float32, the sum of two marked values
:func:`sine_waves`     (n, timesteps, 1) float32    (n, horizon) float32, the next values
=====================  ==========================  ===========================================

Every function but :func:`mnist` takes a ``seed`` (an int >= 0, or None for fresh randomness)
and returns new C-contiguous NumPy arrays; the same seed gives the same arrays on every
platform (NumPy's ``default_rng``, i.e. PCG64). Only :func:`digits` needs an optional
dependency, scikit-learn (``pip install "numlstm[datasets]"``), and imports it only when
called. :func:`mnist` downloads its four files once (standard library only) into a cache
folder: ``$NUMLSTM_HOME/datasets/mnist`` or ``~/.numlstm/datasets/mnist``.

>>> from numlstm import datasets
>>> x, y = datasets.adding_problem(4, timesteps=10, seed=0)
>>> x.shape, y.shape
((4, 10, 2), (4, 1))
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

from . import validation as V
from .errors import DatasetUnavailableError, MissingExtraError

__all__ = ["digits", "mnist", "adding_problem", "sine_waves", "data_home"]


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


# -- MNIST ------------------------------------------------------------------------------------

#: The four gzip-compressed IDX files of MNIST and their published SHA-256 (the same digests
#: are listed by TensorFlow Datasets and by projects fetching MNIST from the mirrors below).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: Public mirrors of those files, tried in order (the original site, yann.lecun.com, no
#: longer serves them reliably). A URL is a mirror's base: the file name is appended.
MNIST_URLS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)

_CHUNK = 1 << 16

#: No MNIST file is near this size (the largest is 9.9 MB); a download growing past it is cut
#: off, so that a wrong URL cannot fill the disk.
_MAX_DOWNLOAD_BYTES = 64 << 20


def data_home() -> Path:
    """The folder data sets are cached in: ``$NUMLSTM_HOME/datasets`` when the environment
    variable ``NUMLSTM_HOME`` is set (and not empty), else ``~/.numlstm/datasets``. Nothing is
    created here."""
    home = os.environ.get("NUMLSTM_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".numlstm"
    return base / "datasets"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _by_hand(folder: Path) -> str:
    """How to place the files without network, for the error messages."""
    lines = [f"To install MNIST by hand, download these files (from a machine with network "
             f"access) and place them, still gzip-compressed, in {folder}:"]
    for name, digest in MNIST_FILES.items():
        lines.append(f"  {name}  (sha256 {digest})")
    lines.append("from " + " or ".join(MNIST_URLS) + f" (e.g. {MNIST_URLS[0]}"
                 f"{next(iter(MNIST_FILES))}); or set NUMLSTM_HOME to a folder whose "
                 "datasets/mnist holds them.")
    return "\n".join(lines)


def _fetch(url: str, folder: Path, name: str, expected: str, timeout: float) -> None:
    """Download ``url`` into ``folder/name``, atomically: the bytes go to a temporary file in
    the same folder, which replaces ``name`` only once complete (the Content-Length, when the
    server sends one, is met) and of the expected SHA-256. Raises OSError (or ValueError for a
    wrong hash) and leaves no temporary file behind."""
    import urllib.request     # here, not at the top: it loads ssl, slowing "import numlstm"
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(handle, "wb") as out, \
                urllib.request.urlopen(url, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            for block in iter(lambda: response.read(_CHUNK), b""):
                received += len(block)
                if received > _MAX_DOWNLOAD_BYTES:
                    raise OSError(f"the download exceeds {_MAX_DOWNLOAD_BYTES} bytes, far "
                                  "more than the file's size: not the expected file")
                out.write(block)
                digest.update(block)
            out.flush()
            os.fsync(out.fileno())
        if declared is not None and declared.isdigit() and received != int(declared):
            raise OSError(f"incomplete download: {received} of {declared} bytes")
        if digest.hexdigest() != expected:
            raise ValueError(f"SHA-256 mismatch: got {digest.hexdigest()} ({received} bytes), "
                             f"expected {expected}")
        os.replace(temporary, folder / name)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _ensure_file(folder: Path, name: str, expected: str, download: bool,
                 timeout: float) -> bytes:
    """The bytes of ``folder/name``, of the expected SHA-256 (hashed from the very bytes
    returned, so nothing else is ever parsed), downloading the file if needed."""
    path = folder / name
    if path.is_file():
        raw = path.read_bytes()
        actual = hashlib.sha256(raw).hexdigest()
        if actual == expected:
            return raw
        problem = (f"{path} is damaged or incomplete ({len(raw)} bytes, SHA-256 {actual}, "
                   f"expected {expected})")
        if not download:
            raise DatasetUnavailableError(
                "mnist", folder, problem,
                f"MNIST: {problem}; download=False, so it is not fetched again. Delete it "
                f"and call again with download=True, or replace it.\n{_by_hand(folder)}")
        print(f"numlstm: {problem}; deleting it and downloading it again", file=sys.stderr)
        path.unlink()
    elif not download:
        raise DatasetUnavailableError(
            "mnist", folder, f"{name} is missing",
            f"MNIST: {name} is not in {folder} and download=False.\n{_by_hand(folder)}")
    errors = []
    for base in MNIST_URLS:
        url = base + name
        print(f"numlstm: downloading {url} into {folder}", file=sys.stderr)
        try:
            _fetch(url, folder, name, expected, timeout)
        except (OSError, ValueError) as error:       # URLError, timeouts, HTTP errors: OSError
            errors.append(f"{url}: {error}")
            continue
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() == expected:
            return raw
        errors.append(f"{path}: changed after its download (another process?)")
    reason = "; ".join(errors)
    raise DatasetUnavailableError(
        "mnist", folder, reason,
        f"MNIST: could not download {name} ({reason}).\n{_by_hand(folder)}")


def _read_idx(compressed: bytes, path: Path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array from the bytes of a gzip file (``path`` names it in
    errors): magic ``00 00 08 ndim``, then ``ndim`` big-endian uint32 sizes, then the bytes in
    C order. Every field is checked against the data's length."""
    try:
        raw = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path} is not a valid gzip file: {error}") from error
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    if raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise ValueError(f"{path}: IDX magic {raw[:4].hex()}, expected 000008{ndim:02x} "
                         f"(unsigned bytes, {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise ValueError(f"{path}: the header says {shape} = {expected} bytes of data, the "
                         f"file holds {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy()


def _load_pair(folder: Path, files: dict, images: str, labels: str):
    x = _read_idx(files[images], folder / images, 3)
    y = _read_idx(files[labels], folder / labels, 1)
    if x.shape[1:] != (28, 28):
        raise ValueError(f"{folder / images}: images of {x.shape[1]}x{x.shape[2]} pixels, "
                         "expected 28x28")
    if len(x) != len(y):
        raise ValueError(f"{folder}: {len(x)} images in {images} but {len(y)} labels in "
                         f"{labels}")
    if y.size and y.max() > 9:
        raise ValueError(f"{folder / labels}: label {int(y.max())} outside 0..9")
    return x, y


def mnist(cache_dir=None, download=True, timeout=60.0):
    """MNIST handwritten digits in Keras's form: ``(x_train, y_train), (x_test, y_test)``.

    60,000 training and 10,000 test images of 28x28 pixels, ``uint8`` 0..255 (0 is the
    background), with ``uint8`` labels 0..9 -- the arrays ``keras.datasets.mnist.load_data()``
    returns. For an LSTM, read an image row by row (28 timesteps of 28 pixels) after scaling:
    ``x_train.astype("float32") / 255``.

    The four original gzip-compressed IDX files (``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
    ``t10k-labels-idx1-ubyte.gz``; 11.6 MB together) are downloaded once into the cache folder
    and read from there afterwards, with the standard library only:

    - every file's SHA-256 is checked against :data:`MNIST_FILES` before it is read, each
      time; a file in the cache that does not match (a damaged or partial copy) is deleted and
      downloaded again (or refused with ``download=False``);
    - a download goes to a temporary file in the same folder and replaces the target only once
      complete and of the right SHA-256, so an interrupted download never leaves a file that
      would be read; the mirrors of :data:`MNIST_URLS` are tried in order;
    - the IDX headers (magic number, number of dimensions, big-endian sizes) are checked
      against the data's length, the images must be 28x28, the labels as many as the images
      and in 0..9.

    Without network access, place the four ``.gz`` files in the cache folder by hand: the
    :class:`~numlstm.errors.DatasetUnavailableError` raised then names the folder, the files,
    their SHA-256 and the URLs.

    Parameters
    ----------
    cache_dir : str or path-like, optional
        The folder holding (or receiving) the four files; default
        ``data_home() / "mnist"``, i.e. ``$NUMLSTM_HOME/datasets/mnist`` or
        ``~/.numlstm/datasets/mnist``. Created if missing.
    download : bool
        False: never use the network; the files must be in the cache.
    timeout : float > 0
        Seconds a download may wait for the server at a time.

    Returns
    -------
    ((x_train, y_train), (x_test, y_test))
        ``x_*`` uint8 (n, 28, 28); ``y_*`` uint8 (n,).

    Raises
    ------
    DatasetUnavailableError
        (an ``OSError``) A file is missing or damaged and cannot be downloaded.
    ValueError
        A file of the expected SHA-256 that is not a valid IDX file (only possible with a
        changed :data:`MNIST_FILES`); a non-positive ``timeout``.
    TypeError
        ``cache_dir`` not a path, ``download`` not a bool.
    """
    download = V.check_bool(download, "download")
    timeout = V.check_finite_number(timeout, "timeout")
    if timeout <= 0:
        raise ValueError(f"timeout must be a number of seconds > 0; got timeout={timeout!r}")
    if cache_dir is None:
        folder = data_home() / "mnist"
    else:
        V.check_path_like(cache_dir, "cache_dir")
        folder = Path(os.fsdecode(cache_dir))
    folder = folder.expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetUnavailableError(
            "mnist", folder, str(error),
            f"MNIST: cannot create the cache folder {folder}: {error}. Set NUMLSTM_HOME (or "
            "pass cache_dir=) to a writable folder.") from error
    files = {name: _ensure_file(folder, name, expected, download, timeout)
             for name, expected in MNIST_FILES.items()}
    train = _load_pair(folder, files, "train-images-idx3-ubyte.gz",
                       "train-labels-idx1-ubyte.gz")
    test = _load_pair(folder, files, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return train, test
