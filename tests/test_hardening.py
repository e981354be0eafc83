"""Reliability: hostile model files, unchecked backend calls, non-finite training, threads,
mixed dtypes, atomic set_weights, CLI output paths, early checks and file handling.

One section per kind of failure; each test names what used to go wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import numlstm
from numlstm import archive, callbacks, load_model
from numlstm.archive import HEADER_MEMBER, load_archive, save_archive
from numlstm.backends import get_backend
from numlstm.cli import main
from numlstm.errors import ModelFileError
from numlstm.layers import LSTM, Bidirectional, Dense, Embedding, Input, Masking
from numlstm.models import Sequential

from test_hostile import run_in_threads

REPO = Path(__file__).resolve().parents[1]


def small_model(seed=0, compiled=True):
    model = Sequential([Input((4, 3)), LSTM(5), Dense(2, activation="softmax")], seed=seed)
    if compiled:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def xy(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4, 3)).astype(np.float32), rng.integers(0, 2, n)


def rewrite_members(path: Path, change, compression=zipfile.ZIP_STORED):
    """Rewrite the archive with ``change(members)`` applied to {name: bytes}."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    change(members)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def edit_model_config(path: Path, change):
    """Change the model config inside a saved file and re-sign it (the config checksum is a
    plain SHA-256, so anyone can recompute it)."""
    def apply(members):
        header = json.loads(members[HEADER_MEMBER])
        change(header["config"])
        header["config_sha256"] = hashlib.sha256(
            archive._canonical_config(header["config"])).hexdigest()
        members[HEADER_MEMBER] = json.dumps(header).encode()
    rewrite_members(path, apply)


def run_limited(code: str, limit_mib: int = 600, timeout: float = 120):
    """Run ``code`` in a child process whose address space may grow by at most ``limit_mib``
    MiB beyond what it holds after importing numlstm: a memory bomb fails the test there
    instead of exhausting the machine."""
    prelude = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        import numlstm, numlstm.archive, numlstm.models
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize")) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + {limit_mib} << 20, vm + {limit_mib} << 20))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                       os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, env=env)


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="the memory-bound child reads /proc/self/status")


# -- 1. memory bombs in model files -------------------------------------------------------------

def deflate_bomb(path: Path, declared_bytes: int, compression=zipfile.ZIP_DEFLATED):
    """A numlstm archive whose one array member is ``declared_bytes`` of zeros, compressed to
    a few hundred kB, with a header that agrees with it (checksum included)."""
    count = declared_bytes // 8
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f8", "fortran_order": False,
                                               "shape": (count,)})
    head = npy.getvalue()
    digest = hashlib.sha256(head)
    chunk = bytes(8 << 20)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        with zf.open("arrays/00000.npy", "w", force_zip64=True) as stream:
            stream.write(head)
            left = count * 8
            while left:
                piece = chunk[:min(left, len(chunk))]
                stream.write(piece)
                digest.update(piece)
                left -= len(piece)
        config = {"note": "bomb"}
        header = {"format": archive.FORMAT_NAME, "format_version": archive.FORMAT_VERSION,
                  "writer": "test", "config": config,
                  "config_sha256": hashlib.sha256(archive._canonical_config(config)).hexdigest(),
                  "arrays": [{"name": "a", "member": "arrays/00000.npy", "dtype": "<f8",
                              "shape": [count], "sha256": digest.hexdigest()}]}
        zf.writestr(HEADER_MEMBER, json.dumps(header))


def test_compressed_members_are_refused_before_reading(tmp_path):
    path = tmp_path / "m.npz"
    save_archive(path, {"a": 1}, {"w": np.arange(100.0)})
    rewrite_members(path, lambda members: None, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelFileError, match="compressed"):
        load_archive(path)


@needs_proc
def test_a_deflate_bomb_is_refused_without_inflating_it(tmp_path):
    path = tmp_path / "bomb.npz"
    deflate_bomb(path, 256 << 20)
    assert path.stat().st_size < 2 << 20
    result = run_limited(f"""
        import time
        start = time.perf_counter()
        try:
            numlstm.archive.load_archive({str(path)!r})
        except numlstm.errors.ModelFileError as error:
            print("REFUSED", round(time.perf_counter() - start, 3), error)
    """, limit_mib=128)
    assert "REFUSED" in result.stdout, result.stdout + result.stderr
    assert "compressed" in result.stdout
    assert float(result.stdout.split()[1]) < 5.0


def test_declared_sizes_beyond_the_file_or_the_limit_are_refused(tmp_path):
    path = tmp_path / "m.npz"
    save_archive(path, {}, {"w": np.zeros(1000)})
    # a header that declares a shape far beyond what the file holds
    def grow(members):
        header = json.loads(members[HEADER_MEMBER])
        header["arrays"][0]["shape"] = [10 ** 12]
        members[HEADER_MEMBER] = json.dumps(header).encode()
    rewrite_members(path, grow)
    with pytest.raises(ModelFileError, match="more than the file"):
        load_archive(path)
    save_archive(path, {}, {"w": np.zeros(1000)})
    with pytest.raises(ModelFileError, match="max_bytes"):
        load_archive(path, max_bytes=4000)
    assert load_archive(path, max_bytes=8000)[1]["w"].shape == (1000,)
    with pytest.raises(ModelFileError, match="max_bytes"):
        load_model(path, max_bytes=10)


# -- 2. the config is checked before anything is built -----------------------------------------

@pytest.mark.parametrize("units", [20000, 10 ** 9, 10 ** 400, -3, True, 2.5, "8"])
def test_a_tampered_units_value_is_refused_before_building(tmp_path, units):
    path = tmp_path / "m.npz"
    small_model().save(path)
    edit_model_config(path, lambda c: c["model"]["layers"][0]["config"].update(units=units))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_initializers_never_run_on_load(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = small_model()
    model.save(path)
    expected = model.get_weights()
    from numlstm import initializers
    def refuse(*args, **kwargs):
        raise AssertionError("an initializer ran while loading")
    for name in list(initializers.INITIALIZERS):
        monkeypatch.setitem(initializers.INITIALIZERS, name, refuse)
    monkeypatch.setattr(initializers, "random_uniform", refuse)
    loaded = load_model(path)
    for got, want in zip(loaded.get_weights(), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def nested(depth):
    return "[" * depth + "]" * depth


def test_deep_headers_and_bad_rng_states_are_model_file_errors(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    def deep(members):
        header = members[HEADER_MEMBER].decode()
        members[HEADER_MEMBER] = header.replace('"writer"', f'"deep": {nested(200_000)}, '
                                                '"writer"', 1).encode()
    rewrite_members(path, deep)
    with pytest.raises(ModelFileError, match="nested"):
        load_archive(path)
    for state in ({"state": "10" * 300, "inc": "1"}, {"state": "-5", "inc": "1"},
                  {"state": "x", "inc": "1"}, [1, 2]):
        small_model().save(path)
        edit_model_config(path, lambda c: c["train_rng"].update(state=state))
        with pytest.raises(ModelFileError, match="train_rng"):
            load_model(path)


@pytest.mark.parametrize("change", [
    lambda c: c["model"].update(batch_shape=[None, 4, 10 ** 30]),
    lambda c: c["model"].update(batch_shape="x"),
    lambda c: c["model"]["layers"][1]["config"].update(units=10 ** 6),
    lambda c: c["model"]["layers"].append({"class_name": "Dense", "config": {"units": 10 ** 8}}),
    lambda c: c["model"]["layers"][0]["config"].update(name={"a": 1}),
    lambda c: c.update(optimizer_iterations=-5),
    lambda c: c.update(optimizer_iterations=10 ** 30),
    lambda c: c.update(optimizer_iterations=1.5),
    lambda c: c["model"].update(seed=-1),
    lambda c: c["model"]["layers"][0].update(config=[]),
])
def test_hostile_model_configs_are_model_file_errors(tmp_path, change):
    path = tmp_path / "m.npz"
    model = small_model()
    x, y = xy()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(path)
    edit_model_config(path, change)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(path) in str(info.value)


@needs_proc
def test_a_large_units_value_in_a_small_file_allocates_nothing(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    edit_model_config(path, lambda c: c["model"]["layers"][0]["config"].update(units=20000))
    result = run_limited(f"""
        try:
            numlstm.models.load_model({str(path)!r})
        except numlstm.errors.ModelFileError as error:
            print("REFUSED", error)
    """, limit_mib=200)
    assert "REFUSED" in result.stdout, result.stdout + result.stderr


def test_cli_prints_one_line_and_exits_2_for_a_hostile_file(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    edit_model_config(path, lambda c: c["model"]["layers"][0]["config"].update(units=10 ** 400))
    result = CliRunner().invoke(main, ["summary", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "cannot load model file" in result.output


# -- 3. backend entry points check their arguments ----------------------------------------------

def step_args(batch=2, features=3, units=4, dtype=np.float32):
    rng = np.random.default_rng(0)
    return ([rng.normal(size=(batch, features)).astype(dtype),
             rng.normal(size=(features, 4 * units)).astype(dtype),
             rng.normal(size=(units, 4 * units)).astype(dtype),
             np.zeros(4 * units, dtype), np.zeros((batch, units), dtype),
             np.zeros((batch, units), dtype)])


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
@pytest.mark.parametrize("broken, match", [
    (lambda a: a.__setitem__(0, np.zeros((100000, 3), np.float32)), "100000"),
    (lambda a: a.__setitem__(0, np.zeros((2, 5), np.float32)), "x_t"),
    (lambda a: a.__setitem__(4, np.zeros((2, 7), np.float32)), "h"),
    (lambda a: a.__setitem__(5, np.zeros((1, 4), np.float32)), "c"),
    (lambda a: a.__setitem__(2, np.zeros((4, 15), np.float32)), "recurrent_kernel"),
    (lambda a: a.__setitem__(3, np.zeros(3, np.float32)), "bias"),
    (lambda a: a.__setitem__(0, np.zeros((2, 3), np.float64)), "dtype"),
    (lambda a: a.__setitem__(0, np.zeros((2, 3), np.int32)), "dtype"),
    (lambda a: a.__setitem__(1, [[1.0] * 16] * 3), "kernel"),
])
def test_lstm_step_checks_its_arguments(backend_name, broken, match):
    args = step_args()
    broken(args)
    with pytest.raises((ValueError, TypeError), match=match):
        get_backend(backend_name).lstm_step(*args, activation=0, recurrent_activation=1)


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
def test_lstm_step_checks_output_buffers_and_codes(backend_name):
    backend = get_backend(backend_name)
    args = step_args()
    read_only = np.zeros((2, 4), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out_h"):
        backend.lstm_step(*args, activation=0, recurrent_activation=1, out_h=read_only)
    with pytest.raises(ValueError, match="out_c"):
        backend.lstm_step(*args, activation=0, recurrent_activation=1,
                          out_c=np.zeros((2, 8), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="activation"):
        backend.lstm_step(*args, activation=99, recurrent_activation=1)


def test_cuda_backend_step_checks_device_output_buffers():
    """The cuda backend (in Numba's CUDA simulator without a GPU) takes device arrays as
    output buffers; a wrong-shaped one is refused by the entry check, a right one written."""
    backend = numlstm.get_backend("cuda")
    from numba import cuda
    args = step_args()
    out_h, out_c = cuda.to_device(np.zeros((2, 4), np.float32)), \
        cuda.to_device(np.zeros((2, 4), np.float32))
    h, c = backend.lstm_step(*args, activation=0, recurrent_activation=1, out_h=out_h,
                             out_c=out_c)
    ref_h, ref_c = get_backend("numpy").lstm_step(*args, activation=0, recurrent_activation=1)
    np.testing.assert_allclose(h.copy_to_host(), ref_h, atol=1e-5)
    np.testing.assert_allclose(c.copy_to_host(), ref_c, atol=1e-5)
    with pytest.raises(ValueError, match="out_c"):
        backend.lstm_step(*args, activation=0, recurrent_activation=1, out_h=out_h,
                          out_c=cuda.to_device(np.zeros((2, 5), np.float32)))


def forward_kwargs(batch=3, timesteps=5, features=2, units=4, dtype=np.float32):
    rng = np.random.default_rng(1)
    return dict(x=rng.normal(size=(batch, timesteps, features)).astype(dtype),
                kernel=rng.normal(size=(features, 4 * units)).astype(dtype),
                recurrent_kernel=rng.normal(size=(units, 4 * units)).astype(dtype),
                bias=np.zeros(4 * units, dtype), h0=np.zeros((batch, units), dtype),
                c0=np.zeros((batch, units), dtype), mask=None, recurrent_dropout_mask=None,
                reverse=False, activation=0, recurrent_activation=1,
                zero_output_for_mask=False, return_cache=True)


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
@pytest.mark.parametrize("key, value, match", [
    ("mask", np.ones((3, 9), bool), "mask"),
    ("mask", np.ones((3, 5), np.float32), "mask"),
    ("h0", np.zeros((3, 5), np.float32), "h0"),
    ("c0", np.zeros((1, 4), np.float32), "c0"),
    ("x", np.zeros((3, 5, 7), np.float32), "x"),
    ("x", np.zeros((3, 5), np.float32), "x"),
    ("recurrent_dropout_mask", np.ones((3, 3), np.float32), "recurrent_dropout_mask"),
    ("kernel", np.zeros((2, 16), np.float64), "dtype"),
    ("recurrent_activation", 17, "recurrent_activation"),
])
def test_lstm_forward_checks_its_arguments(backend_name, key, value, match):
    kwargs = forward_kwargs()
    kwargs[key] = value
    with pytest.raises((ValueError, TypeError), match=match):
        get_backend(backend_name).lstm_forward(**kwargs)


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
def test_lstm_backward_checks_its_arguments(backend_name):
    backend = get_backend(backend_name)
    result = backend.lstm_forward(**forward_kwargs())
    good = dict(grad_outputs=np.zeros((3, 5, 4), np.float32),
                grad_h=np.zeros((3, 4), np.float32), grad_c=np.zeros((3, 4), np.float32))
    for key, value in (("grad_outputs", np.zeros((3, 6, 4), np.float32)),
                       ("grad_h", np.zeros((2, 4), np.float32)),
                       ("grad_c", np.zeros((3, 4), np.float64))):
        with pytest.raises((ValueError, TypeError), match=key):
            backend.lstm_backward(result.cache, **{**good, key: value})
    with pytest.raises(TypeError, match="cache"):
        backend.lstm_backward(object(), **good)
    grads = backend.lstm_backward(result.cache, **good)
    assert grads.x.shape == (3, 5, 2)


# -- 4. save never writes what load refuses; fit says when the loss diverges --------------------

def test_save_refuses_non_finite_weights_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "m.npz"
    model = small_model()
    model.save(path)
    before = path.read_bytes()
    model.layers[0].trainable_weights[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        model.save(path)
    assert path.read_bytes() == before
    load_model(path)


def test_fit_stops_when_the_loss_becomes_non_finite(tmp_path):
    path = tmp_path / "ckpt.npz"
    model = Sequential([Input((4, 3)), LSTM(5), Dense(1)], seed=0)
    model.compile(optimizer="sgd", loss="mse")
    x, _ = xy()
    y = np.ones(len(x), np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(path)
    good = path.read_bytes()
    kernel, bias = model.layers[1].get_weights()
    # outputs of about 5 * 3e38 overflow float32: the loss is inf or NaN from the first batch
    model.layers[1].set_weights([np.full_like(kernel, 3e38), bias])
    weights = model.get_weights()
    with pytest.warns(RuntimeWarning, match="non-finite"), np.errstate(over="ignore"):
        history = model.fit(x, y, epochs=3, batch_size=4, verbose=0,
                            callbacks=[callbacks.ModelCheckpoint(str(path))])
    assert model.stop_training and history.epoch == []
    for got, want in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)      # the diverged update was not applied
    assert path.read_bytes() == good                  # the checkpoint was not overwritten


def my_initializer(shape, dtype):
    return np.full(shape, 0.01, dtype)


def test_a_model_with_a_callable_initializer_saves_and_loads(tmp_path):
    model = Sequential([Input((4, 3)), LSTM(3, kernel_initializer=my_initializer)], seed=0)
    model.build()
    path = model.save(tmp_path / "m.npz")
    loaded = load_model(path)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    x, _ = xy()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# -- 5. shared models under threads ------------------------------------------------------------

@pytest.mark.parametrize("first", ["masking", "embedding"])
def test_concurrent_predicts_with_different_padding_agree_with_serial_ones(first):
    """Two threads run one model on differently padded batches of different sizes. The first
    layer's forward is made to wait until both threads have run it, the interleaving that
    used to hand one call the other's mask (kept on the layer)."""
    rng = np.random.default_rng(0)
    batches = []
    if first == "masking":
        model = Sequential([Input((None, 3)), Masking(), LSTM(4)], seed=0)
        for length, batch in ((2, 5), (6, 3)):
            x = rng.normal(size=(batch, 7, 3)).astype(np.float32)
            x[:, length:] = 0.0
            batches.append(x)
    else:
        model = Sequential([Input((None,), dtype="int64"), Embedding(9, 3, mask_zero=True),
                            LSTM(4)], seed=0)
        for length, batch in ((2, 5), (6, 3)):
            ids = rng.integers(1, 9, size=(batch, 7))
            ids[:, length:] = 0
            batches.append(ids)
    expected = [model.predict(b) for b in batches]
    layer = model.layers[0]
    original = layer.forward
    barrier = threading.Barrier(2, timeout=30)

    def forward_then_wait(*args, **kwargs):
        out = original(*args, **kwargs)
        barrier.wait()
        return out

    layer.forward = forward_then_wait
    # an exception here: a wrong-shaped mask reaching the kernel
    results, errors = run_in_threads(lambda index: model.predict(batches[index]), 2)
    assert errors == []
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)


# -- 6. mixed dtypes ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend_name", ["numba", "numpy"])
def test_layers_of_different_dtypes_cast_at_their_boundaries(backend_name):
    x, y = xy()
    model = Sequential([Input((4, 3)), Masking(dtype="float32"),
                        LSTM(3, dtype="float64", return_sequences=True),
                        Dense(4, dtype="float64"), LSTM(2, dtype="float32"),
                        Dense(2, activation="softmax")], seed=0, backend=backend_name)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(x).dtype == np.float32


# -- 7. set_weights is atomic ------------------------------------------------------------------

def built_model():
    model = Sequential([Input((4, 3)), LSTM(5), Dense(2)], seed=0)
    model.build()
    return model


def built_bidirectional():
    layer = Bidirectional(LSTM(2))
    layer.build((None, 4, 3))
    return layer


@pytest.mark.parametrize("make", [built_model, lambda: built_model().layers[1],
                                  built_bidirectional],
                         ids=["Sequential", "Dense", "Bidirectional"])
def test_set_weights_replaces_nothing_when_a_later_array_is_bad(make):
    target = make()
    before = target.get_weights()
    bad = [w + 1 for w in before]
    bad[-1] = np.zeros(before[-1].size + 3, np.float32)        # only the last one is wrong
    with pytest.raises(ValueError):
        target.set_weights(bad)
    for old, new in zip(before, target.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


# -- 8. CLI output paths -----------------------------------------------------------------------

def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_usage_error(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def unwritable_folder(tmp_path):
    """A folder that exists but takes no new file: a 0o500 folder for a normal user; for
    root, who may write anywhere, sysfs, which refuses new files even to root."""
    if os.name == "posix" and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        return locked
    if Path("/sys").is_dir():
        try:
            os.close(os.open("/sys/numlstm-probe", os.O_CREAT | os.O_WRONLY))
            os.unlink("/sys/numlstm-probe")
        except OSError:
            return Path("/sys")
    pytest.skip("no folder here refuses new files to this user")


def test_cli_refuses_unwritable_outputs_before_working(tmp_path):
    locked = unwritable_folder(tmp_path)
    data = tmp_path / "d.npz"
    x, y = xy(6)
    np.savez(data, x=x, y=y)
    result = cli("train", data, "--epochs", "1", "--units", "2", "--out", locked / "m.npz")
    assert_one_line_usage_error(result, "--out", "not writable")
    assert "Epoch" not in result.output
    model_path = small_model().save(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", x)
    assert_one_line_usage_error(cli("predict", model_path, tmp_path / "x.npy", "--out",
                                    locked / "p.npy"), "--out")
    assert_one_line_usage_error(cli("check", "--backends", "numba", "--json",
                                    locked / "c.json"), "--json")
    assert_one_line_usage_error(cli("bench", "--backends", "numpy", "--json",
                                    locked / "c.json", "--no-peak"), "--json")
    if locked.name == "locked":
        locked.chmod(0o700)


def test_cli_refuses_too_long_output_names_and_huge_sizes(tmp_path):
    data = tmp_path / "d.npz"
    x, y = xy(6)
    np.savez(data, x=x, y=y)
    assert_one_line_usage_error(cli("train", data, "--out", tmp_path / ("m" * 300 + ".npz")),
                                "--out")
    assert_one_line_usage_error(cli("train", "sine", "--units", 10 ** 9), "--units")
    assert_one_line_usage_error(cli("train", "sine", "--samples", 10 ** 12), "--samples")
    np.savez(data, x=x, y=np.array([0, 1, 2, 3, 4, 10 ** 9]))
    assert_one_line_usage_error(cli("train", data, "--out", tmp_path / "m.npz"), "label")


# -- 9. checks that run before the first step --------------------------------------------------

@pytest.mark.parametrize("template, match", [("ck-{nope}.npz", "nope"), ("ck-{}.npz", "{}"),
                                             ("missing/ck.npz", "does not exist")])
def test_checkpoint_templates_are_checked_before_training(tmp_path, template, match):
    model = small_model()
    x, y = xy()
    weights = model.get_weights() if model.built else None
    steps = []
    model.optimizer.apply_gradients = lambda *a: steps.append(1)
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[callbacks.ModelCheckpoint(str(tmp_path / template))])
    assert steps == []
    del weights


def test_stateful_validation_sizes_are_checked_before_training():
    model = Sequential([Input((4, 3), batch_size=2), LSTM(3, stateful=True), Dense(1)], seed=0)
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 4, 3), np.float32)
    steps = []
    model.optimizer.apply_gradients = lambda *a: steps.append(1)
    with pytest.raises(ValueError, match="validation"):
        model.fit(x, np.zeros(8, np.float32), batch_size=2, epochs=1, verbose=0,
                  validation_data=(np.zeros((3, 4, 3), np.float32), np.zeros(3, np.float32)))
    assert steps == []


def test_add_after_fit_is_caught_before_the_next_training_step():
    model = small_model()
    x, y = xy()
    model.fit(x, y, epochs=1, verbose=0)
    model.add(Dense(2, activation="softmax"))
    with pytest.raises(ValueError, match="compile"):
        model.fit(x, y, epochs=1, verbose=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)


# -- 10. files ---------------------------------------------------------------------------------

@pytest.mark.skipif(os.name != "posix", reason="POSIX modes and symlinks")
def test_resave_keeps_the_mode_and_writes_through_symlinks(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    path.chmod(0o600)
    small_model(seed=1).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    link = tmp_path / "link.npz"
    link.symlink_to(path)
    small_model(seed=2).save(link)
    assert link.is_symlink()
    np.testing.assert_array_equal(load_model(path).get_weights()[0],
                                  small_model(seed=2).get_weights()[0]
                                  if small_model(seed=2).built else
                                  load_model(link).get_weights()[0])


def test_a_legal_long_file_name_saves(tmp_path):
    path = tmp_path / ("m" * 246 + ".npz")
    small_model().save(path)
    assert load_model(path).count_params() == small_model().count_params()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.skipif(os.name != "posix", reason="locks and stale temporaries are POSIX-only")
def test_a_locked_temporary_of_a_live_writer_is_left_alone(tmp_path):
    """A writer in another PID namespace may have any pid, even one that is free here: only
    its lock tells that it is alive."""
    path = tmp_path / "m.npz"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys, time
            fd = os.open({str(tmp_path)!r} + "/" + sys.argv[1], os.O_CREAT | os.O_WRONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
            print("locked", flush=True)
            time.sleep(60)
        """), archive._temp_prefix(path) + "999999999-0123456789ab"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        unlocked = tmp_path / (archive._temp_prefix(path) + "999999998-0123456789ab")
        unlocked.write_bytes(b"PK\x03\x04 partial")
        save_archive(path, {}, {"a": np.zeros(2)})
        live = tmp_path / (archive._temp_prefix(path) + "999999999-0123456789ab")
        assert live.exists()
        assert not unlocked.exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_a_negative_optimizer_step_count_is_refused(tmp_path):
    model = small_model()
    x, y = xy()
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="iterations"):
        model.optimizer.set_state(-3, model.optimizer.get_state()[1], model.weights)


# -- 11. argument checks -----------------------------------------------------------------------

def test_bidirectional_checks_its_backward_layer():
    with pytest.raises(ValueError, match="go_backwards"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3))
    with pytest.raises(ValueError, match="units"):
        Bidirectional(LSTM(3), backward_layer=LSTM(4, go_backwards=True))
    with pytest.raises(TypeError, match="backward_layer"):
        Bidirectional(LSTM(3), backward_layer="lstm")
    with pytest.raises(ValueError, match="return_sequences"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3, go_backwards=True,
                                                    return_sequences=True))
    Bidirectional(LSTM(3), backward_layer=LSTM(3, go_backwards=True))


def test_set_num_threads_refuses_absurd_counts_and_keeps_the_setting():
    before = numlstm.get_num_threads()
    with pytest.raises(ValueError, match="n"):
        numlstm.set_num_threads(10 ** 30)
    assert numlstm.get_num_threads() == before


def test_masking_refuses_a_value_that_can_never_match():
    with pytest.raises(ValueError, match="mask_value"):
        Masking(float("nan"))
    with pytest.raises(ValueError, match="mask_value"):
        Masking(float("inf"))


def test_huge_float_token_ids_are_reported_as_they_are():
    model = Sequential([Input((2,), dtype="int64"), Embedding(5, 2), LSTM(2)], seed=0)
    with pytest.raises(ValueError) as info:
        model.predict(np.array([[1.0, 1e20]]))
    assert "1e+20" in str(info.value) and "-9223372036854775808" not in str(info.value)
