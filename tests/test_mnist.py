"""numlstm.datasets.mnist(), offline: small IDX files written here stand in for MNIST (their
SHA-256 replace the published ones through the module's table), served from file:// URLs or a
local HTTP server on 127.0.0.1 -- download, cache, damaged and partial downloads, the IDX
checks and the instructions given when there is no network."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from numlstm import datasets
from numlstm.errors import DatasetUnavailableError

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: 00 00 08 ndim, the sizes as big-endian uint32, the data."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def gz(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


def fake_mnist(seed=0, n_train=12, n_test=5):
    rng = np.random.default_rng(seed)
    arrays = {
        NAMES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        NAMES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        NAMES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        NAMES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    files = {name: gz(idx_bytes(a)) for name, a in arrays.items()}
    return arrays, files


def write(folder: Path, files: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Fake MNIST files in tmp/source, their hashes in the table, the cache in tmp/cache, a
    first mirror that does not exist and a second that is the source folder."""
    arrays, files = fake_mnist()
    monkeypatch.setattr(datasets, "MNIST_FILES",
                        {n: hashlib.sha256(c).hexdigest() for n, c in files.items()})
    source = write(tmp_path / "source", files)
    monkeypatch.setattr(datasets, "MNIST_URLS", ((tmp_path / "nowhere").as_uri() + "/",
                                                 source.as_uri() + "/"))
    monkeypatch.setenv("NUMLSTM_HOME", str(tmp_path / "home"))
    return arrays, files, source, tmp_path / "home" / "datasets" / "mnist"


def assert_is_fake(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for got, name in ((x_train, NAMES[0]), (y_train, NAMES[1]), (x_test, NAMES[2]),
                      (y_test, NAMES[3])):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[name])
    assert x_train.shape[1:] == (28, 28) and y_train.ndim == 1


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name not in NAMES)


def test_data_home_follows_numlstm_home(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMLSTM_HOME", str(tmp_path / "x"))
    assert datasets.data_home() == tmp_path / "x" / "datasets"
    monkeypatch.setenv("NUMLSTM_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert datasets.data_home() == tmp_path / "h" / ".numlstm" / "datasets"
    monkeypatch.delenv("NUMLSTM_HOME")
    assert datasets.data_home() == tmp_path / "h" / ".numlstm" / "datasets"


def test_published_hashes_and_mirrors_of_the_real_files():
    # The SHA-256 of the four files as TensorFlow Datasets and torchvision's mirrors list them.
    assert datasets.MNIST_FILES == {
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }
    assert all(url.startswith("https://") and url.endswith("/") for url in datasets.MNIST_URLS)


def test_downloads_once_into_the_cache_then_reads_it_offline(fake, monkeypatch, capsys):
    arrays, files, source, cache = fake
    assert_is_fake(datasets.mnist(), arrays)
    assert sorted(p.name for p in cache.iterdir()) == sorted(NAMES)       # no temporary files
    for name in NAMES:
        assert (cache / name).read_bytes() == files[name]
    assert "downloading" in capsys.readouterr().err
    # Second call: nothing downloaded (the mirrors are gone now), same arrays.
    monkeypatch.setattr(datasets, "MNIST_URLS", ("file:///no/such/mirror/",))
    assert_is_fake(datasets.mnist(), arrays)
    assert_is_fake(datasets.mnist(download=False), arrays)
    assert capsys.readouterr().err == ""


def test_files_placed_by_hand_in_cache_dir(fake, monkeypatch, tmp_path):
    arrays, files, _, _ = fake
    monkeypatch.setattr(datasets, "MNIST_URLS", ("file:///no/such/mirror/",))
    folder = write(tmp_path / "by hand", files)
    assert_is_fake(datasets.mnist(cache_dir=folder, download=False), arrays)
    assert_is_fake(datasets.mnist(cache_dir=str(folder)), arrays)


def test_no_network_says_how_to_place_the_files(fake, monkeypatch):
    _, _, _, cache = fake
    monkeypatch.setattr(datasets, "MNIST_URLS", ("file:///no/such/mirror/",))
    with pytest.raises(DatasetUnavailableError) as info:
        datasets.mnist()
    message = str(info.value)
    assert isinstance(info.value, OSError) and info.value.folder == str(cache)
    assert f"place them, still gzip-compressed, in {cache}" in message
    for name in NAMES:
        assert name in message and datasets.MNIST_FILES[name] in message
    assert "file:///no/such/mirror/train-images-idx3-ubyte.gz" in message
    assert "NUMLSTM_HOME" in message
    assert leftovers(cache) == []
    with pytest.raises(DatasetUnavailableError, match=r"is not in .* and download=False"):
        datasets.mnist(download=False)


def test_damaged_file_in_the_cache_is_deleted_and_fetched_again(fake, capsys):
    arrays, files, _, cache = fake
    write(cache, files)
    truncated = files[NAMES[2]][: len(files[NAMES[2]]) // 2]
    (cache / NAMES[2]).write_bytes(truncated)              # a partial copy
    with pytest.raises(DatasetUnavailableError, match="damaged or incomplete.*download=False"):
        datasets.mnist(download=False)
    assert (cache / NAMES[2]).read_bytes() == truncated     # refused, left alone
    assert_is_fake(datasets.mnist(), arrays)
    assert (cache / NAMES[2]).read_bytes() == files[NAMES[2]]
    assert "damaged or incomplete" in capsys.readouterr().err
    assert leftovers(cache) == []


def test_damaged_download_is_refused_and_the_next_mirror_used(fake, monkeypatch, tmp_path):
    arrays, files, source, cache = fake
    bad = dict(files)
    bad[NAMES[1]] = gz(idx_bytes(np.zeros(12, np.uint8)))   # valid IDX, wrong content
    bad_mirror = write(tmp_path / "bad", bad)
    monkeypatch.setattr(datasets, "MNIST_URLS", (bad_mirror.as_uri() + "/",))
    with pytest.raises(DatasetUnavailableError, match="SHA-256 mismatch") as info:
        datasets.mnist()
    assert NAMES[1] in str(info.value)
    assert not (cache / NAMES[1]).exists() and leftovers(cache) == []
    monkeypatch.setattr(datasets, "MNIST_URLS", (bad_mirror.as_uri() + "/",
                                                 source.as_uri() + "/"))
    assert_is_fake(datasets.mnist(), arrays)
    assert leftovers(cache) == []


class _Server:
    """A local HTTP server: serves ``files``; with ``cut`` it sends the full Content-Length
    but only the first half of the body and closes (a dropped connection)."""

    def __init__(self, files, cut=False):
        outer = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append(name)
                if name not in files:
                    self.send_error(404)
                    return
                body = files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if cut else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/mnist/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_partial_http_download_is_never_read(fake, monkeypatch):
    arrays, files, _, cache = fake
    with _Server(files, cut=True) as server:
        monkeypatch.setattr(datasets, "MNIST_URLS", (server.url,))
        with pytest.raises(DatasetUnavailableError, match=r"incomplete download: \d+ of \d+ "
                                                          r"bytes"):
            datasets.mnist(timeout=10)
    assert list(cache.iterdir()) == []                   # nothing kept, no temporary file
    with _Server(files) as server:
        monkeypatch.setattr(datasets, "MNIST_URLS", (server.url,))
        assert_is_fake(datasets.mnist(timeout=10), arrays)
        assert server.requests == list(NAMES)
    with _Server({}) as server:                          # cached now: no request at all
        monkeypatch.setattr(datasets, "MNIST_URLS", (server.url,))
        assert_is_fake(datasets.mnist(timeout=10), arrays)
        assert server.requests == []


def test_download_interrupted_midway_leaves_nothing(fake, monkeypatch):
    _, files, _, cache = fake

    class Broken:
        headers = {}

        def __init__(self):
            self.calls = 0

        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise ConnectionResetError("connection reset by peer")
            return b"\x1f\x8b partial"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    import urllib.request
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Broken())
    with pytest.raises(DatasetUnavailableError, match="connection reset by peer"):
        datasets.mnist()
    assert list(cache.iterdir()) == []


def test_oversized_download_is_cut_off(fake, monkeypatch):
    _, _, source, cache = fake
    monkeypatch.setattr(datasets, "_MAX_DOWNLOAD_BYTES", 100)
    monkeypatch.setattr(datasets, "MNIST_URLS", (source.as_uri() + "/",))
    with pytest.raises(DatasetUnavailableError, match="exceeds 100 bytes"):
        datasets.mnist()
    assert list(cache.iterdir()) == []


def _expect_idx_error(monkeypatch, tmp_path, replace, text):
    arrays, files = fake_mnist()
    files.update(replace)
    monkeypatch.setattr(datasets, "MNIST_FILES",
                        {n: hashlib.sha256(c).hexdigest() for n, c in files.items()})
    folder = write(tmp_path / "idx", files)
    with pytest.raises(ValueError, match=text):
        datasets.mnist(cache_dir=folder, download=False)


@pytest.mark.parametrize("name, content, text", [
    (NAMES[0], b"not gzip at all", "is not a valid gzip file"),
    (NAMES[0], gz(b"\x00\x00\x08"), "too short for an IDX header"),
    (NAMES[0], gz(bytes([0, 0, 9, 3]) + np.array([1, 28, 28], ">u4").tobytes() + bytes(784)),
     "IDX magic 00000903, expected 00000803"),
    (NAMES[1], gz(idx_bytes(np.zeros((12, 1), np.uint8))), "IDX magic 00000802, expected "
                                                             "00000801"),
    (NAMES[0], gz(bytes([0, 0, 8, 3]) + np.array([12, 28, 28], ">u4").tobytes() + bytes(100)),
     r"the header says \(12, 28, 28\) = 9408 bytes of data, the file holds 100"),
    (NAMES[2], gz(idx_bytes(np.zeros((5, 27, 28), np.uint8))), "images of 27x28 pixels"),
    (NAMES[3], gz(idx_bytes(np.zeros(4, np.uint8))), "5 images in t10k-images.* but 4 labels"),
    (NAMES[1], gz(idx_bytes(np.full(12, 10, np.uint8))), "label 10 outside 0..9"),
])
def test_idx_files_are_checked(monkeypatch, tmp_path, name, content, text):
    _expect_idx_error(monkeypatch, tmp_path, {name: content}, text)


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(download="yes"), TypeError, "download must be True or False"),
    (dict(timeout=0), ValueError, "timeout must be a number of seconds > 0"),
    (dict(timeout=float("nan")), ValueError, "timeout"),
    (dict(cache_dir=3), TypeError, "cache_dir must be a path"),
])
def test_mnist_bad_arguments(kwargs, error, text):
    with pytest.raises(error, match=text):
        datasets.mnist(**kwargs)


def test_unwritable_cache_folder_is_explained(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatasetUnavailableError, match="cannot create the cache folder"):
        datasets.mnist(cache_dir=blocker / "mnist", download=False)


def test_error_survives_pickling():
    import pickle
    error = DatasetUnavailableError("mnist", "/x", "why", "message text")
    again = pickle.loads(pickle.dumps(error))
    assert (again.dataset, again.folder, again.reason, str(again)) == ("mnist", "/x", "why",
                                                                      "message text")
    assert os.fspath(Path(again.folder)) == "/x"
