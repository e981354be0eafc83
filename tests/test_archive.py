"""numlstm.archive: round trips, every kind of damaged or tampered file, no pickle, atomic
writes (including a writer killed with SIGKILL at random moments)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from numlstm import archive
from numlstm.archive import HEADER_MEMBER, load_archive, save_archive
from numlstm.errors import ModelFileError

REPO = Path(__file__).resolve().parents[1]


def sample_arrays():
    return {
        "float32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "float64": np.linspace(-1, 1, 5),
        "int64": np.array([-(2 ** 62), 0, 2 ** 62], dtype=np.int64),
        "bool": np.array([[True, False], [False, True]]),
        "scalar": np.array(3.25),
        "scalar_int": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "uint8": np.array([0, 255], dtype=np.uint8),
        "complex": np.array([1 + 2j]),
        "text": np.array(["adam", "sgd"]),
        "big_endian": np.array([1.5, -2.0], dtype=">f8"),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(10.0)[::3],
        "layers/0/lstm/kernel": np.ones((2, 8), np.float32),
        "": np.zeros(1),    # replaced below: the empty name is refused
    }


SAMPLE_CONFIG = {
    "name": "sequential",
    "layers": [{"class": "LSTM", "units": 4, "shape": (None, 8), "extra": {}},
               {"class": "Dense", "units": 3, "activation": "softmax", "rate": 0.1}],
    "optimizer": {"name": "adam", "beta_1": 0.9, "epsilon": 1e-7, "amsgrad": False,
                  "iterations": 12},
    "ünïcode": "λ",
    "nan": float("nan"),
    "empty": [],
}


def arrays_ok():
    arrays = sample_arrays()
    del arrays[""]
    return arrays


def assert_same_arrays(loaded, expected):
    assert list(loaded) == list(expected)
    for name, value in expected.items():
        got = loaded[name]
        assert got.dtype == value.dtype, name
        assert got.shape == value.shape, name
        np.testing.assert_array_equal(got, value, err_msg=name)


def temp_files(directory: Path):
    return sorted(p.name for p in directory.iterdir() if archive._TEMP_MARKER in p.name)


def rewrite(path: Path, change):
    """Rewrite the archive with ``change(members)`` applied to {name: bytes}: a *consistent*
    tampering (fresh ZIP CRCs), which only numlstm's own checks can notice."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    change(members)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def edit_header(path: Path, change):
    def apply(members):
        header = json.loads(members[HEADER_MEMBER])
        change(header)
        members[HEADER_MEMBER] = json.dumps(header).encode()
    rewrite(path, apply)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    save_archive(path, SAMPLE_CONFIG, arrays_ok())
    return path


# -- round trips ------------------------------------------------------------------------------

def test_round_trip_every_dtype_shape_and_nested_config(tmp_path):
    path = tmp_path / "model.npz"
    arrays = arrays_ok()
    assert save_archive(path, SAMPLE_CONFIG, arrays) == path
    config, loaded = load_archive(path)
    assert_same_arrays(loaded, arrays)
    expected = json.loads(json.dumps(SAMPLE_CONFIG))       # tuples come back as lists
    assert json.dumps(config, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert config["layers"][0]["shape"] == [None, 8]
    assert np.isnan(config["nan"])
    assert loaded["scalar"].shape == () and loaded["empty"].shape == (0, 3)
    loaded["float64"][0] = 99.0                                # writable, not a view
    assert temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_file_is_a_zip_of_npy_members_plus_a_json_header(saved):
    with zipfile.ZipFile(saved) as zf:
        names = zf.namelist()
        header = json.loads(zf.read(HEADER_MEMBER))
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
        first = header["arrays"][0]
        data = zf.read(first["member"])
    assert names == [f"arrays/{i:05d}.npy" for i in range(len(arrays_ok()))] + [HEADER_MEMBER]
    assert header["format"] == "numlstm-model" and header["format_version"] == 1
    assert [e["name"] for e in header["arrays"]] == list(arrays_ok())
    assert first == {"name": "float32", "member": "arrays/00000.npy", "dtype": "<f4",
                     "shape": [3, 4], "sha256": hashlib.sha256(data).hexdigest()}
    canonical = json.dumps(header["config"], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode()
    assert header["config_sha256"] == hashlib.sha256(canonical).hexdigest()
    # Readable with plain NumPy, without pickle.
    with np.load(saved, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["arrays/00000"], arrays_ok()["float32"])


def test_overwrite_and_path_types(tmp_path):
    path = tmp_path / "m.npz"
    save_archive(str(path), {"v": 1}, {"a": np.zeros(3)})
    save_archive(path, {"v": 2}, {"b": np.ones(2, np.int64)})
    config, arrays = load_archive(str(path))
    assert config == {"v": 2} and list(arrays) == ["b"]
    save_archive(path, {}, {})
    assert load_archive(path) == ({}, {})
    assert temp_files(tmp_path) == []


def test_new_file_gets_the_usual_permissions(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    umask = os.umask(0o022)
    try:
        save_archive(tmp_path / "m.npz", {}, {"a": np.zeros(1)})
    finally:
        os.umask(umask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644


# -- refusing what cannot be saved ------------------------------------------------------------

@pytest.mark.parametrize("config, text", [
    ({"lr": np.float32(0.1)}, r"float32 .* at config\['lr'\] \(convert NumPy scalars"),
    ({"layers": [{"units": np.int64(3)}]}, r"config\['layers'\]\[0\]\['units'\]"),
    ({1: "a"}, "config keys must be strings; got int key 1"),
    ({"s": {1, 2}}, "set"),
    ({"f": print}, "builtin_function_or_method"),
])
def test_save_refuses_non_json_config(tmp_path, config, text):
    with pytest.raises(TypeError, match=text):
        save_archive(tmp_path / "m.npz", config, {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("arrays, error, text", [
    ({"o": np.array([1, None], dtype=object)}, TypeError, "dtype object, which cannot be saved"),
    ({"s": np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])}, TypeError, "cannot be saved"),
    ({"": np.zeros(1)}, TypeError, "array names must be non-empty strings"),
    ({3: np.zeros(1)}, TypeError, "array names must be non-empty strings; got 3"),
    ([("a", np.zeros(1))], TypeError, "arrays must be a dict"),
])
def test_save_refuses_arrays_that_need_pickle(tmp_path, arrays, error, text):
    with pytest.raises(error, match=text):
        save_archive(tmp_path / "m.npz", {}, arrays)
    assert list(tmp_path.iterdir()) == []


def test_save_argument_errors(tmp_path):
    with pytest.raises(TypeError, match="config must be a dict; got list"):
        save_archive(tmp_path / "m.npz", [], {})
    with pytest.raises(TypeError, match="path must be a str or os.PathLike; got int"):
        save_archive(3, {}, {})
    with pytest.raises(FileNotFoundError, match="directory .* does not exist"):
        save_archive(tmp_path / "missing" / "m.npz", {}, {})
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        load_archive(None)


# -- atomicity without crashes ----------------------------------------------------------------

def test_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_archive(path, {"v": 1}, {"a": np.arange(4.0)})
    before = path.read_bytes()
    calls = []

    def failing_write(stream, array, **kwargs):
        calls.append(array.shape)
        if len(calls) == 2:
            stream.write(b"partial data")
            raise OSError(28, "No space left on device")
        return real_write(stream, array, **kwargs)

    real_write = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(OSError, match="No space left"):
        save_archive(path, {"v": 2}, {"a": np.zeros(3), "b": np.ones(3)})
    monkeypatch.undo()
    assert len(calls) == 2
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []
    assert load_archive(path)[0] == {"v": 1}


def test_failed_rename_removes_the_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"

    def failing_replace(source, target):
        assert Path(source).exists() and archive._TEMP_MARKER in Path(source).name
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(archive.os, "replace", failing_replace)
    with pytest.raises(PermissionError):
        save_archive(path, {}, {"a": np.zeros(2)})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_data_is_fsynced_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        events.append(("fsync", "dir" if stat.S_ISDIR(info.st_mode) else "file", info.st_size))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", Path(source).name, Path(target).name))
        real_replace(source, target)

    monkeypatch.setattr(archive.os, "fsync", fsync)
    monkeypatch.setattr(archive.os, "replace", replace)
    save_archive(path, {"v": 1}, {"a": np.arange(100.0)})
    monkeypatch.undo()
    # The complete file is synced, then renamed over the target, then (POSIX) the directory.
    assert events[0] == ("fsync", "file", path.stat().st_size), events
    assert events[1][0] == "replace" and archive._TEMP_MARKER in events[1][1]
    assert events[1][2] == "m.npz"
    assert [kind for _, kind, _ in events[2:]] == (["dir"] if hasattr(os, "O_DIRECTORY")
                                                   else []), events


@pytest.mark.skipif(os.name != "posix", reason="stale temp files are only cleaned on POSIX")
def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    """A temporary file no process holds a lock on is stale, whatever pid its name carries; a
    live writer's (locked) file is left alone, even if its pid means nothing here (another
    PID namespace)."""
    path = tmp_path / "m.npz"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.npz{archive._TEMP_MARKER}{dead.pid}-0123456789ab"
    alive = tmp_path / f".m.npz{archive._TEMP_MARKER}{dead.pid + 1}-0123456789ab"
    other_target = tmp_path / f".other.npz{archive._TEMP_MARKER}{dead.pid}-0123456789ab"
    for file in (stale, alive, other_target):
        file.write_bytes(b"PK\x03\x04 partial")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_WRONLY)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('locked', flush=True)\ntime.sleep(60)", str(alive)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        save_archive(path, {}, {"a": np.zeros(2)})
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert not stale.exists()                  # its writer is gone
    assert alive.exists()                      # still being written: left alone
    assert other_target.exists()               # belongs to another target
    assert np.array_equal(load_archive(path)[1]["a"], np.zeros(2))


# -- loading damaged and foreign files --------------------------------------------------------

def expect_error(path, *fragments):
    with pytest.raises(ModelFileError) as info:
        load_archive(path)
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(info.value, ValueError)
    assert info.value.path == str(path)
    return info.value


def test_missing_empty_directory_and_foreign_files(tmp_path):
    expect_error(tmp_path / "nope.npz", "no such file")
    expect_error(tmp_path, "is a directory")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    expect_error(empty, "the file is empty")
    text = tmp_path / "model.json"
    text.write_text('{"format": "numlstm-model"}')
    expect_error(text, "not a ZIP archive")
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    expect_error(plain, f"member {HEADER_MEMBER!r} is missing")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -22, -1])
def test_truncated_files(saved, keep):
    data = saved.read_bytes()
    cut = int(len(data) * keep) if keep > 0 else len(data) + keep
    saved.write_bytes(data[:cut])
    expect_error(saved, "truncated")


def test_every_flipped_byte_is_refused_or_harmless(tmp_path):
    """Flip each byte of a small archive in turn: the load either raises ModelFileError or --
    where the byte is metadata nobody reads, such as a ZIP timestamp -- returns exactly the
    saved content. It never returns other data and never raises anything else."""
    path = tmp_path / "m.npz"
    config = {"units": 2, "name": "x"}
    arrays = {"k": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([True])}
    save_archive(path, config, arrays)
    original = path.read_bytes()
    refused = 0
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= 0x5A
        path.write_bytes(bytes(damaged))
        try:
            got_config, got_arrays = load_archive(path)
        except ModelFileError as error:
            assert str(path) in str(error)
            refused += 1
            continue
        assert got_config == config, position
        assert_same_arrays(got_arrays, arrays)
    # Sanity: the flips hit what matters most of the time.
    assert refused > 0.7 * len(original)


def test_array_data_changed_consistently_is_a_checksum_mismatch(saved):
    def change(members):
        data = bytearray(members["arrays/00001.npy"])
        data[-1] ^= 0x01                        # last byte of float64's data
        members["arrays/00001.npy"] = bytes(data)
    rewrite(saved, change)
    expect_error(saved, "checksum mismatch for array 'float64'")


def test_tampered_config_is_a_checksum_mismatch(saved):
    edit_header(saved, lambda h: h["config"]["layers"][0].update(units=5))
    expect_error(saved, "checksum mismatch for the config")


@pytest.mark.parametrize("change, fragments", [
    (lambda h: h.update(format="keras"), ["not a numlstm model file", "'keras'"]),
    (lambda h: h.update(format_version=2), ["unknown format version 2", "newer numlstm"]),
    (lambda h: h.update(format_version="1"), ["format version is missing or not an integer"]),
    (lambda h: h.pop("format_version"), ["format version is missing"]),
    (lambda h: h.update(config=[1]), ["'config' is missing or not a JSON object"]),
    (lambda h: h.update(arrays={}), ["'arrays' is missing or not a list"]),
    (lambda h: h["arrays"][0].update(shape=[4, 3]),
     ["array 'float32' holds dtype <f4 and shape (3, 4)", "records dtype <f4 and shape (4, 3)"]),
    (lambda h: h["arrays"][0].update(dtype="<f8"), ["records dtype <f8"]),
    (lambda h: h["arrays"][0].update(dtype="|O"), ["cannot be loaded without pickle"]),
    (lambda h: h["arrays"][0].update(dtype="not a dtype"), ["invalid"]),
    (lambda h: h["arrays"][0].update(shape=[-1]), ["invalid shape"]),
    (lambda h: h["arrays"][0].update(sha256="0" * 64), ["checksum mismatch for array"]),
    (lambda h: h["arrays"][0].update(member="../../etc/passwd"), ["invalid member name"]),
    (lambda h: h["arrays"][1].update(name="float32"), ["names array 'float32' twice"]),
    (lambda h: h["arrays"].pop(), ["unexpected member 'arrays/000"]),
    (lambda h: h["arrays"].append(dict(h["arrays"][0], name="x", member="arrays/99999.npy")),
     ["member 'arrays/99999.npy' is missing"]),
    (lambda h: h["arrays"][0].pop("sha256"), ["lacks ['sha256']"]),
])
def test_tampered_header(saved, change, fragments):
    edit_header(saved, change)
    expect_error(saved, *fragments)


def test_header_that_is_not_json(saved):
    def change(members):
        members[HEADER_MEMBER] = b'{"format": "numlstm-model", '
    rewrite(saved, change)
    expect_error(saved, "is not valid UTF-8 JSON")
    rewrite(saved, lambda m: m.update({HEADER_MEMBER: b"[1, 2]"}))
    expect_error(saved, "is not a JSON object")


def test_oversized_member_is_refused_before_reading(saved):
    """A member much larger than its recorded shape (a decompression bomb, say) is not read."""
    def change(members):
        members["arrays/00000.npy"] = members["arrays/00000.npy"] + bytes(1 << 17)
    rewrite(saved, change)
    expect_error(saved, "more than the")


class _Payload:
    """Unpickling this creates a file: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("declared", ["|O", "<f8"])
def test_pickled_object_array_is_refused_without_running_it(tmp_path, declared):
    path = tmp_path / "evil.npz"
    marker = tmp_path / "pwned"
    save_archive(path, {}, {"a": np.zeros(2)})
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([_Payload(marker)], dtype=object),
                              allow_pickle=True)
    evil = buffer.getvalue()
    # Control: the payload is live -- NumPy with pickles allowed runs it.
    np.lib.format.read_array(io.BytesIO(evil), allow_pickle=True)
    assert marker.exists()
    marker.unlink()

    def change(members):
        members["arrays/00000.npy"] = evil
        header = json.loads(members[HEADER_MEMBER])
        header["arrays"][0].update(dtype=declared, shape=[1],
                                   sha256=hashlib.sha256(evil).hexdigest())
        members[HEADER_MEMBER] = json.dumps(header).encode()
    rewrite(path, change)
    error = expect_error(path)
    assert "pickle" in str(error) or "holds dtype |O" in str(error)
    assert not marker.exists()


# -- crash safety -----------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import numlstm.archive as archive

    path, first, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    base = np.arange(1 << 19, dtype=np.float64)          # 4 MiB: a write takes a while
    saves = [0]
    if mode == "kill-before-rename":                     # the temp file is complete
        real_replace = os.replace
        def replace(source, target):
            if saves[0] == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(source, target)
        archive.os.replace = replace
    elif mode == "kill-mid-array":                       # the temp file is half written
        real_write = archive._HashingWriter.write
        written = [0]
        def write(self, data):
            written[0] += len(memoryview(data).cast("B"))
            if saves[0] == 1 and written[0] > 6_000_000:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_write(self, data)
        archive._HashingWriter.write = write
    print("ready", flush=True)
    version = first
    while True:
        archive.save_archive(path, {"version": version, "mode": mode},
                             {"big": base + version, "small": np.array([version])})
        saves[0] += 1
        version += 1
""")


def check_complete(path: Path):
    config, arrays = load_archive(path)
    version = config["version"]
    assert list(arrays) == ["big", "small"]
    assert arrays["small"].tolist() == [version]
    assert arrays["big"].shape == (1 << 19,)
    assert arrays["big"][0] == version and arrays["big"][-1] == version + (1 << 19) - 1
    np.testing.assert_array_equal(np.diff(arrays["big"]), 1.0)
    return version


@pytest.mark.skipif(os.name != "posix" or not hasattr(signal, "SIGKILL"),
                    reason="needs SIGKILL")
def test_writer_killed_at_random_moments_never_leaves_a_broken_file(tmp_path):
    """A process saving over and over is SIGKILLed: at random moments, and deterministically
    inside an array write and between the complete write and the rename. After every kill the
    file is absent (only before any save finished) or loads completely; the killed writers'
    temporary files are cleaned by the next save."""
    path = tmp_path / "model.npz"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]))
    rng = random.Random(1234)
    modes = ["random"] * 3 + ["kill-mid-array", "random", "kill-before-rename"] + ["random"] * 2
    seen_file, last_version, killed_mid_write = False, -1, 0
    pids = []
    for cycle, mode in enumerate(modes):
        first = cycle * 1000
        child = subprocess.Popen([sys.executable, str(script), str(path), str(first), mode],
                                 stdout=subprocess.PIPE, env=env, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            if mode == "random":
                time.sleep(rng.uniform(0.0, 0.35))
                child.kill()
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL, (mode, child.returncode)

        temps = temp_files(tmp_path)
        # The killed writer's own temp file, at most, plus the previous writer's if this one
        # was killed before its first save could clean it.
        assert len(temps) <= 2, temps
        pids.append(child.pid)
        assert all(any(f"-{pid}-" in name for pid in pids[-2:]) for name in temps), temps
        if any(f"-{child.pid}-" in name for name in temps):
            killed_mid_write += 1
        if not path.exists():
            assert not seen_file, f"the model file vanished after cycle {cycle}"
            continue
        seen_file = True
        version = check_complete(path)
        assert version >= last_version
        if mode != "random":
            # The second save was killed: the file is the first one's.
            assert version == first, (mode, version)
            assert [name for name in temps if f"-{child.pid}-" in name], temps
        last_version = version
    assert seen_file and killed_mid_write >= 2
    # One more save, here: the dead writers' temp files go, the file stays readable.
    save_archive(path, {"version": 10 ** 6}, {"big": np.arange(1 << 19, dtype=np.float64)
                                              + 10 ** 6, "small": np.array([10 ** 6])})
    assert temp_files(tmp_path) == []
    assert check_complete(path) == 10 ** 6
