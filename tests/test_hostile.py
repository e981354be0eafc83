"""The hostile-input harness: every public entry point fed bad, extreme or damaged input.

Each case expects either a clear error -- ``ValueError``/``TypeError`` (or numlstm's own
subclasses) whose message names the argument -- or a correct result, and checks that a refused
call lost nothing (weights and files unchanged). Cases that could exhaust memory or crash the
interpreter if a check regressed (model files, backend kernels) run in a child process under an
address-space limit (``RLIMIT_AS``), so a regression fails the test instead of taking CI down;
the property-based sweeps (hypothesis) over file mutations and array shapes run there too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
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
from numlstm import callbacks, functional, load_model, optimizers
from numlstm.archive import HEADER_MEMBER, save_archive
from numlstm.backends import get_backend, use_backend
from numlstm.cli import main
from numlstm.errors import ModelFileError
from numlstm.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Input, Masking
from numlstm.models import Sequential

REPO = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")


def model(compiled=True, seed=0):
    m = Sequential([Input((4, 3)), LSTM(5), Dense(2, activation="softmax")], seed=seed)
    if compiled:
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


def xy(n=8):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4, 3)).astype(np.float32), rng.integers(0, 2, n)


def x3(*shape, dtype=np.float32, fill=0.0):
    return np.full(shape, fill, dtype)


def built_lstm(units=4, features=3, **kwargs):
    layer = LSTM(units, **kwargs)
    layer.build((None, None, features))
    return layer


def run_in_threads(function, count):
    """Run ``function(i)`` for ``i`` in ``range(count)``, each on a thread of its own, all at
    once; returns ``(results, errors)``: what each returned, and every exception raised."""
    results, errors = [None] * count, []

    def run(index):
        try:
            results[index] = function(index)
        except Exception as error:
            errors.append(repr(error))

    workers = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results, errors


def expect(call, errors, *fragments):
    """``call()`` raises one of ``errors`` whose message holds every fragment."""
    with pytest.raises(errors) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return info.value


# -- the public API: layers, models, optimizers, callbacks, functional, registry ---------------

def _fit(m, x, y, **kwargs):
    return lambda: m.fit(x, y, verbose=0, **kwargs)


def api_cases():
    """(id, call, expected error types, fragments of the message)."""
    x, y = xy()
    m = model()
    lstm = built_lstm()
    emb = Embedding(5, 2)
    ro = np.zeros((1, 4), np.float32)
    ro.flags.writeable = False
    step_x = np.zeros((1, 3), np.float32)
    zeros14 = np.zeros((1, 4), np.float32)
    V, T = ValueError, TypeError
    return [
        # layer constructors
        ("lstm-units-0", lambda: LSTM(0), V, "units"),
        ("lstm-units-negative", lambda: LSTM(-1), V, "units"),
        ("lstm-units-float", lambda: LSTM(2.5), T, "units"),
        ("lstm-units-str", lambda: LSTM("4"), T, "units"),
        ("lstm-units-bool", lambda: LSTM(True), T, "units"),
        ("lstm-units-huge", lambda: LSTM(10 ** 400), V, "units"),
        ("lstm-activation-unknown", lambda: LSTM(4, activation="nope"), V, "activation"),
        ("lstm-recurrent-activation-int", lambda: LSTM(4, recurrent_activation=3), T,
         "recurrent_activation"),
        ("lstm-dropout-1", lambda: LSTM(4, dropout=1.0), V, "dropout"),
        ("lstm-dropout-negative", lambda: LSTM(4, dropout=-0.1), V, "dropout"),
        ("lstm-recurrent-dropout-nan", lambda: LSTM(4, recurrent_dropout=NAN), V,
         "recurrent_dropout"),
        ("lstm-dtype-float16", lambda: LSTM(4, dtype="float16"), V, "dtype"),
        ("lstm-dtype-int", lambda: LSTM(4, dtype="int32"), V, "dtype"),
        ("lstm-initializer-unknown", lambda: LSTM(4, kernel_initializer="nope"), V,
         "kernel_initializer"),
        ("lstm-initializer-int", lambda: LSTM(4, bias_initializer=3), T, "bias_initializer"),
        ("lstm-name-int", lambda: LSTM(4, name=5), T, "name"),
        ("lstm-seed-negative", lambda: LSTM(4, seed=-1), V, "seed"),
        ("lstm-backend-unknown", lambda: LSTM(4, backend="gpu"), V, "backend"),
        ("dense-units-0", lambda: Dense(0), V, "units"),
        ("dense-activation-unknown", lambda: Dense(3, activation="gelu_new"), V, "activation"),
        ("dropout-rate-1.5", lambda: Dropout(1.5), V, "rate"),
        ("masking-str", lambda: Masking("0"), T, "mask_value"),
        ("masking-nan", lambda: Masking(NAN), V, "mask_value"),
        ("masking-inf", lambda: Masking(-INF), V, "mask_value"),
        ("embedding-input-dim-0", lambda: Embedding(0, 3), V, "input_dim"),
        ("embedding-output-dim-huge", lambda: Embedding(3, 2 ** 40), V, "output_dim"),
        ("embedding-mask-zero-int", lambda: Embedding(3, 2, mask_zero=1), T, "mask_zero"),
        ("bidirectional-dense", lambda: Bidirectional(Dense(2)), T, "LSTM"),
        ("bidirectional-merge-max", lambda: Bidirectional(LSTM(2), merge_mode="max"), V,
         "merge_mode"),
        ("bidirectional-same-direction", lambda: Bidirectional(LSTM(2), backward_layer=LSTM(2)),
         V, "go_backwards"),
        ("bidirectional-other-units",
         lambda: Bidirectional(LSTM(2), backward_layer=LSTM(3, go_backwards=True)), V, "units"),
        ("bidirectional-backward-str", lambda: Bidirectional(LSTM(2), backward_layer="x"), T,
         "backward_layer"),
        ("input-empty", lambda: Input(()), T, "shape"),
        ("input-zero-size", lambda: Input((0, 3)), V, "shape[0]"),
        ("input-dtype", lambda: Input((2,), dtype="int8"), V, "dtype"),
        # layer calls and state
        ("lstm-call-2d", lambda: LSTM(4)(x3(2, 3)), V, "3-D"),
        ("lstm-call-int", lambda: LSTM(4)(np.zeros((2, 3, 3), np.int64)), T, "floats"),
        ("lstm-call-nan", lambda: LSTM(4)(x3(2, 3, 3, fill=NAN)), V, "finite"),
        ("lstm-call-inf", lambda: LSTM(4)(x3(2, 3, 3, fill=INF)), V, "finite"),
        ("lstm-call-no-features", lambda: LSTM(4)(x3(2, 3, 0)), V, "feature"),
        ("lstm-call-wrong-features", lambda: lstm(x3(2, 3, 5)), V, "features"),
        ("lstm-call-mask-shape", lambda: lstm(x3(2, 3, 3), mask=np.ones((2, 4), bool)), V,
         "mask"),
        ("lstm-call-mask-float", lambda: lstm(x3(2, 3, 3), mask=np.ones((2, 3))), T, "mask"),
        ("lstm-call-mask-int-2", lambda: lstm(x3(2, 3, 3), mask=np.full((2, 3), 2)), V, "mask"),
        ("lstm-call-state-shape",
         lambda: lstm(x3(2, 3, 3), initial_state=[x3(2, 5), x3(2, 4)]), V, "initial_state"),
        ("lstm-call-state-array", lambda: lstm(x3(2, 3, 3), initial_state=x3(2, 4)), T,
         "initial_state"),
        ("lstm-step-features", lambda: lstm.step(x3(1, 5)), V, "x_t"),
        ("lstm-step-states", lambda: lstm.step(step_x, [x3(2, 4), x3(2, 4)]), V, "states"),
        ("lstm-step-out-read-only", lambda: lstm.step(step_x, [zeros14, zeros14],
                                                      out=[ro, zeros14.copy()]), V, "out[0]"),
        ("lstm-step-nan", lambda: lstm.step(x3(1, 3, fill=NAN)), V, "finite"),
        ("lstm-kernel-shape", lambda: setattr(lstm, "kernel", x3(3, 3)), V, "kernel"),
        ("lstm-bias-without-bias", lambda: setattr(built_lstm(use_bias=False), "bias",
                                                   x3(16)), V, "use_bias"),
        ("lstm-reset-not-stateful", lambda: lstm.reset_states(), V, "stateful"),
        ("lstm-stateful-wrong-batch",
         lambda: built_lstm(stateful=True, batch_size=2)(x3(3, 2, 3)), V, "batch"),
        ("dense-call-int", lambda: Dense(2)(np.zeros((2, 3), np.int32)), T, "floats"),
        ("embedding-id-too-large", lambda: emb(np.array([[7]])), V, "input_dim"),
        ("embedding-id-negative", lambda: emb(np.array([[-1]])), V, "input_dim"),
        ("embedding-id-fraction", lambda: emb(np.array([[1.5]])), V, "integer"),
        ("embedding-id-1e20", lambda: emb(np.array([[1e20]])), V, "1e+20"),
        ("embedding-id-str", lambda: emb(np.array([["a"]])), T, "integer"),
        # models
        ("sequential-not-list", lambda: Sequential("lstm"), T, "layers"),
        ("sequential-add-non-layer", lambda: Sequential().add(3), T, "layers"),
        ("sequential-add-twice", lambda: Sequential([lstm, lstm]), V, "already"),
        ("sequential-names-clash", lambda: Sequential([LSTM(2, name="a", return_sequences=True),
                                                       LSTM(2, name="a")]), V, "unique"),
        ("sequential-embedding-not-first", lambda: Sequential([Dense(2), Embedding(3, 2)]), V,
         "Embedding"),
        ("sequential-seed-float", lambda: Sequential(seed=1.5), T, "seed"),
        ("fit-not-compiled", lambda: model(compiled=False).fit(x, y), V, "compile"),
        ("compile-loss-none", lambda: model(False).compile(), V, "loss"),
        ("compile-loss-unknown", lambda: model(False).compile(loss="hinge"), V, "loss"),
        ("compile-optimizer-unknown", lambda: model(False).compile(optimizer="lion",
                                                                     loss="mse"), V,
         "optimizer"),
        ("compile-metrics-str", lambda: model(False).compile(loss="mse", metrics="mae"), T,
         "metrics"),
        ("fit-x-2d", _fit(m, x[:, 0], y), V, "x"),
        ("fit-length-mismatch", _fit(m, x, y[:3]), V, "same number"),
        ("fit-label-out-of-range", _fit(m, x, y + 5), V, "class indices"),
        ("fit-label-nan", _fit(m, x, np.full(8, NAN)), V, "finite"),
        ("fit-x-nan", _fit(m, np.full_like(x, NAN), y), V, "finite"),
        ("fit-batch-size-0", _fit(m, x, y, batch_size=0), V, "batch_size"),
        ("fit-epochs-negative", _fit(m, x, y, epochs=-1), V, "epochs"),
        ("fit-validation-split-1", _fit(m, x, y, validation_split=1.0), V,
         "validation_split"),
        ("fit-validation-data-4", _fit(m, x, y, validation_data=(x, y, y, y)), T,
         "validation_data"),
        ("fit-validation-weights-str", _fit(m, x, y, validation_data=(x, y, y.astype(str))),
         T, "validation_data sample_weight"),
        ("fit-callbacks-not-list", _fit(m, x, y, callbacks=callbacks.History()), T,
         "callbacks"),
        ("fit-verbose-3", lambda: m.fit(x, y, verbose=3), V, "verbose"),
        ("fit-shuffle-str", _fit(m, x, y, shuffle="yes"), T, "shuffle"),
        ("fit-early-stopping-unknown-monitor",
         _fit(m, x, y, callbacks=[callbacks.EarlyStopping(monitor="val_acc")]), V, "val_acc"),
        ("fit-checkpoint-unknown-key",
         _fit(m, x, y, callbacks=[callbacks.ModelCheckpoint("m-{acc}.npz")]), V, "{acc}"),
        ("fit-checkpoint-positional",
         _fit(m, x, y, callbacks=[callbacks.ModelCheckpoint("m-{}.npz")]), V, "{}"),
        ("fit-checkpoint-missing-folder",
         _fit(m, x, y, callbacks=[callbacks.ModelCheckpoint("no/such/dir/m.npz")]), V,
         "does not exist"),
        ("predict-nan", lambda: m.predict(np.full_like(x, NAN)), V, "finite"),
        ("predict-batch-size-0", lambda: m.predict(x, batch_size=0), V, "batch_size"),
        ("predict-wrong-timesteps", lambda: m.predict(x3(2, 5, 3)), V, "timesteps=4"),
        ("evaluate-no-y", lambda: m.evaluate(x), V, "y"),
        ("set-weights-count", lambda: m.set_weights(m.get_weights()[:2]), V, "weight arrays"),
        ("set-weights-shape", lambda: m.set_weights([w[..., :1] for w in m.get_weights()]), V,
         "shape"),
        ("set-weights-nan", lambda: m.set_weights([w * NAN for w in m.get_weights()]), V,
         "finite"),
        ("set-backend-unknown", lambda: m.set_backend("tpu"), V, "backend"),
        ("call-training-str", lambda: m(x, training="yes"), T, "training"),
        # optimizers and callbacks
        # 0 is allowed, as in Keras (a run that measures without moving the weights)
        ("adam-lr-negative", lambda: optimizers.Adam(learning_rate=-0.1), V, "learning_rate"),
        ("adam-lr-nan", lambda: optimizers.Adam(learning_rate=NAN), V, "learning_rate"),
        ("sgd-momentum-1", lambda: optimizers.SGD(momentum=1.0), V, "momentum"),
        ("rmsprop-rho-negative", lambda: optimizers.RMSprop(rho=-1), V, "rho"),
        ("clipnorm-str", lambda: optimizers.Adam(clipnorm="1"), T, "clipnorm"),
        ("optimizer-config-unknown", lambda: optimizers.get({"name": "lion"}), V, "lion"),
        ("optimizer-state-negative-steps",
         lambda: optimizers.Adam().set_state(-3, {}, []), V, "iterations"),
        ("optimizer-state-huge-steps",
         lambda: optimizers.Adam().set_state(10 ** 30, {}, []), V, "iterations"),
        ("optimizer-state-nan-slot",
         lambda: optimizers.Adam().set_state(1, {"m/0": [NAN], "v/0": [1.0]}, [np.zeros(1)]),
         V, "finite"),
        ("optimizer-state-negative-v",
         lambda: optimizers.Adam().set_state(1, {"m/0": [0.0], "v/0": [-1.0]}, [np.zeros(1)]),
         V, "negative"),
        ("early-stopping-patience", lambda: callbacks.EarlyStopping(patience=-1), V,
         "patience"),
        ("early-stopping-mode", lambda: callbacks.EarlyStopping(mode="up"), V, "mode"),
        ("checkpoint-path-int", lambda: callbacks.ModelCheckpoint(3), T, "filepath"),
        ("checkpoint-best-str", lambda: callbacks.ModelCheckpoint("m.npz",
                                                                  save_best_only="y"), T,
         "save_best_only"),
        # functional API, registry, threads
        ("functional-2d", lambda: functional.lstm_forward(x3(2, 3), x3(3, 16), x3(4, 16)), V,
         "3-D"),
        ("functional-kernel", lambda: functional.lstm_forward(x3(2, 3, 3), x3(2, 16),
                                                              x3(4, 16)), V, "kernel"),
        ("functional-activation", lambda: functional.lstm_forward(
            x3(2, 3, 3), x3(3, 16), x3(4, 16), activation="swish"), V, "activation"),
        ("get-backend-unknown", lambda: get_backend("tpu"), V, "tpu"),
        ("use-backend-int", lambda: use_backend(3).__enter__(), T, "backend"),
        ("threads-0", lambda: numlstm.set_num_threads(0), V, "n"),
        ("threads-huge", lambda: numlstm.set_num_threads(10 ** 30), V, "n"),
        ("threads-float", lambda: numlstm.set_num_threads(2.0), T, "n"),
    ]


API_CASES = api_cases()


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_public_api_refuses_bad_input_clearly(case):
    _, call, errors, fragment = case
    expect(call, errors, fragment)


def test_refused_model_calls_change_no_weight():
    """The model-level cases above, on one model: after every refused call its weights and
    the optimizer's state are exactly what they were."""
    x, y = xy()
    m = model()
    m.fit(x, y, epochs=1, verbose=0)
    before = m.get_weights()
    state = m.optimizer.get_state()
    refused = 0
    for name, call, errors, fragment in api_cases():
        if not name.startswith(("fit-", "set-weights-", "predict-", "evaluate-")):
            continue
        # re-bind the case to this trained model
        bound = {"fit-x-nan": lambda: m.fit(np.full_like(x, NAN), y, verbose=0),
                 "fit-batch-size-0": lambda: m.fit(x, y, batch_size=0, verbose=0),
                 "fit-checkpoint-unknown-key": lambda: m.fit(
                     x, y, verbose=0, callbacks=[callbacks.ModelCheckpoint("m-{acc}.npz")]),
                 "set-weights-shape": lambda: m.set_weights(
                     [w[..., :1] for w in m.get_weights()]),
                 "set-weights-nan": lambda: m.set_weights([*m.get_weights()[:-1],
                                                           np.full(2, NAN, np.float32)])}
        if name in bound:
            with pytest.raises(errors):
                bound[name]()
            refused += 1
    assert refused == 5
    for got, want in zip(m.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
    assert m.optimizer.get_state()[0] == state[0]


# -- model files and backend kernels, in a child process with an address-space limit ------------

CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    with open("/proc/self/status") as f:
        vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize")) * 1024
    import numlstm, numlstm.backends.numba_backend
    from numlstm.errors import ModelFileError
    numlstm.get_backend("numba").lstm_step(*[np.zeros(s, np.float32) for s in
        ((1, 1), (1, 4), (1, 4), (4,), (1, 1), (1, 1))], activation=0, recurrent_activation=1)
    with open("/proc/self/status") as f:
        vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize")) * 1024
    limit = vm + (int(sys.argv[2]) << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    results = {}
    for name, path in json.loads(sys.argv[1]).items():
        try:
            model = numlstm.load_model(path)
            shape = (2,) + tuple(3 if d is None else d for d in model.input_shape[1:])
            if max(shape) > 64:      # a legal but huge input shape: nothing to predict on
                results[name] = ["loaded", None]
                continue
            out = model.predict(np.zeros(shape, np.float32))
            results[name] = ["loaded", bool(np.isfinite(out).all())]
        except ModelFileError as error:
            results[name] = ["ModelFileError", str(error)]
        except BaseException as error:
            results[name] = [type(error).__name__, str(error)[:300]]
    print(json.dumps(results))
""")


def run_child(script: str, args, limit_mib: int = 400, timeout: float = 300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                       os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists() or os.name != "posix",
                                reason="the memory-bound child reads /proc/self/status")


def zip_members(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_members(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def resign(header):
    from numlstm.archive import _canonical_config
    header["config_sha256"] = hashlib.sha256(_canonical_config(header["config"])).hexdigest()


def config_edit(change):
    def apply(members):
        header = json.loads(members[HEADER_MEMBER])
        change(header["config"])
        resign(header)
        members[HEADER_MEMBER] = json.dumps(header).encode()
    return apply


def array_edit(index, array):
    """Replace array ``index`` with ``array``, header and checksums made consistent."""
    def apply(members):
        header = json.loads(members[HEADER_MEMBER])
        entry = header["arrays"][index]
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
        data = buffer.getvalue()
        members[entry["member"]] = data
        entry.update(dtype=np.asarray(array).dtype.str, shape=list(np.shape(array)),
                     sha256=hashlib.sha256(data).hexdigest())
        members[HEADER_MEMBER] = json.dumps(header).encode()
    return apply


def header_text_edit(change):
    def apply(members):
        members[HEADER_MEMBER] = change(members[HEADER_MEMBER].decode()).encode()
    return apply


def npy_v3_huge(members):
    """Member 0 claims, in its own .npy (version 3) header, a shape of 10**12 floats."""
    header = json.loads(members[HEADER_MEMBER])
    entry = header["arrays"][0]
    npy = b"\x93NUMPY\x03\x00"
    text = ("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }").encode()
    text += b" " * (64 - (len(npy) + 4 + len(text) + 1) % 64) + b"\n"
    data = npy + len(text).to_bytes(4, "little") + text
    members[entry["member"]] = data
    entry.update(sha256=hashlib.sha256(data).hexdigest())
    members[HEADER_MEMBER] = json.dumps(header).encode()


FILE_CASES = {
    # (change of the members, compression used to rewrite, True if a load may succeed)
    "deflate": (None, zipfile.ZIP_DEFLATED, False),
    "bzip2": (None, zipfile.ZIP_BZIP2, False),
    "lzma": (None, zipfile.ZIP_LZMA, False),
    "units-20000": (config_edit(lambda c: c["model"]["layers"][0]["config"].update(
        units=20000)), zipfile.ZIP_STORED, False),
    "units-1e9": (config_edit(lambda c: c["model"]["layers"][0]["config"].update(
        units=10 ** 9)), zipfile.ZIP_STORED, False),
    "units-1e400": (config_edit(lambda c: c["model"]["layers"][0]["config"].update(
        units=10 ** 400)), zipfile.ZIP_STORED, False),
    "dense-units-1e8": (config_edit(lambda c: c["model"]["layers"][1]["config"].update(
        units=10 ** 8)), zipfile.ZIP_STORED, False),
    "embedding-added": (config_edit(lambda c: c["model"]["layers"].insert(0, {
        "class_name": "Embedding", "config": {"input_dim": 10 ** 9, "output_dim": 10 ** 9}})),
        zipfile.ZIP_STORED, False),
    "batch-shape-huge": (config_edit(lambda c: c["model"].update(
        batch_shape=[None, 10 ** 12, 3])), zipfile.ZIP_STORED, True),
    "features-huge": (config_edit(lambda c: c["model"].update(
        batch_shape=[None, 4, 10 ** 12])), zipfile.ZIP_STORED, False),
    "unknown-layer": (config_edit(lambda c: c["model"]["layers"][0].update(
        class_name="os.system")), zipfile.ZIP_STORED, False),
    "layer-config-list": (config_edit(lambda c: c["model"]["layers"][0].update(config=[1])),
                          zipfile.ZIP_STORED, False),
    "rng-overflow": (config_edit(lambda c: c["train_rng"]["state"].update(state="9" * 400)),
                     zipfile.ZIP_STORED, False),
    "rng-type": (config_edit(lambda c: c.update(train_rng=[])), zipfile.ZIP_STORED, False),
    "iterations-negative": (config_edit(lambda c: c.update(optimizer_iterations=-7)),
                            zipfile.ZIP_STORED, False),
    "learning-rate-nan": (config_edit(lambda c: c["compile"]["optimizer"].update(
        learning_rate=NAN)), zipfile.ZIP_STORED, False),
    "weights-nan": (array_edit(0, np.full((3, 20), NAN, np.float32)), zipfile.ZIP_STORED,
                    False),
    "weights-wrong-shape": (array_edit(0, np.zeros((3, 21), np.float32)), zipfile.ZIP_STORED,
                            False),
    "weights-int": (array_edit(0, np.zeros((3, 20), np.int64)), zipfile.ZIP_STORED, False),
    "adam-v-negative": (array_edit(-1, np.full(2, -1.0, np.float32)), zipfile.ZIP_STORED,
                        False),
    "npy-v3-huge-shape": (npy_v3_huge, zipfile.ZIP_STORED, False),
    "deep-header": (header_text_edit(lambda t: t.replace(
        '"writer"', '"deep": ' + "[" * 200_000 + "]" * 200_000 + ', "writer"', 1)),
        zipfile.ZIP_STORED, False),
    "deep-config": (header_text_edit(lambda t: t.replace(
        '"config": {', '"config": {"deep": ' + "[" * 200_000 + "]" * 200_000 + ", ", 1)),
        zipfile.ZIP_STORED, False),
    "extra-member": (lambda m: m.update({"evil.py": b"print(1)"}), zipfile.ZIP_STORED, False),
    "missing-member": (lambda m: m.pop("arrays/00000.npy"), zipfile.ZIP_STORED, False),
    "header-not-json": (lambda m: m.update({HEADER_MEMBER: b"{nope"}), zipfile.ZIP_STORED,
                        False),
    "truncated": ("truncate", None, False),
    "empty": ("empty", None, False),
    "not-zip": ("not-zip", None, False),
    "renamed-model": (config_edit(lambda c: c["model"].update(name="other")),
                      zipfile.ZIP_STORED, True),
}


@pytest.fixture(scope="module")
def file_results(tmp_path_factory):
    """Every hostile file of FILE_CASES loaded in one child process limited to 400 MiB more
    address space than it holds at the start."""
    folder = tmp_path_factory.mktemp("hostile-files")
    base = folder / "base.npz"
    trained = model()
    x, y = xy()
    trained.fit(x, y, epochs=1, verbose=0)
    trained.save(base)
    paths = {}
    for name, (change, compression, _) in FILE_CASES.items():
        path = folder / f"{name}.npz"
        if change == "truncate":
            path.write_bytes(base.read_bytes()[: base.stat().st_size // 2])
        elif change == "empty":
            path.write_bytes(b"")
        elif change == "not-zip":
            path.write_bytes(b"\x93NUMPY" + bytes(100))
        else:
            members = zip_members(base)
            if change is not None:
                change(members)
            write_members(path, members, compression)
        paths[name] = str(path)
    result = run_child(CHILD, [json.dumps(paths), "400"])
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), paths


@needs_proc
@pytest.mark.parametrize("name", list(FILE_CASES))
def test_hostile_model_files_are_refused_within_bounded_memory(file_results, name):
    results, paths = file_results
    outcome, detail = results[name]
    may_load = FILE_CASES[name][2]
    if outcome == "loaded":
        assert may_load, f"{name}: a hostile file loaded"
        assert detail is not False, f"{name}: the loaded model predicts non-finite values"
        return
    assert outcome == "ModelFileError", (name, outcome, detail)
    assert paths[name] in detail


BACKEND_FUZZ = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from hypothesis import given, settings, strategies as st, HealthCheck
    import numlstm
    backend = numlstm.get_backend(sys.argv[1])
    backend.lstm_step(*[np.zeros(s, np.float32) for s in ((1, 1), (1, 4), (1, 4), (4,),
                                                          (1, 1), (1, 1))],
                      activation=0, recurrent_activation=1)
    with open("/proc/self/status") as f:
        vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (300 << 20), vm + (300 << 20)))
    dim = st.integers(0, 6)
    outcomes = {"ok": 0, "refused": 0}

    @settings(max_examples=int(sys.argv[2]), deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(rows=st.lists(dim, min_size=6, max_size=6), cols=st.lists(dim, min_size=6,
                                                                       max_size=6),
           dtypes=st.lists(st.sampled_from(["float32", "float64", "int32", "bool"]),
                           min_size=6, max_size=6), codes=st.tuples(st.integers(-1, 7),
                                                                    st.integers(-1, 7)))
    def fuzz(rows, cols, dtypes, codes):
        shapes = [(rows[0], cols[0]), (rows[1], cols[1]), (rows[2], cols[2]), (cols[3],),
                  (rows[4], cols[4]), (rows[5], cols[5])]
        args = [np.ones(s, d) for s, d in zip(shapes, dtypes)]
        try:
            h, c = backend.lstm_step(*args, activation=codes[0], recurrent_activation=codes[1])
        except (ValueError, TypeError) as error:
            assert "lstm_step" in str(error), error
            outcomes["refused"] += 1
            return
        # accepted: then the shapes were consistent and the result is the reference's
        ref_h, ref_c = numlstm.get_backend("numpy").lstm_step(
            *args, activation=codes[0], recurrent_activation=codes[1])
        np.testing.assert_allclose(h, ref_h, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(c, ref_c, rtol=1e-5, atol=1e-5)
        outcomes["ok"] += 1

    fuzz()
    print(outcomes["ok"], outcomes["refused"])
""")


@needs_proc
@pytest.mark.parametrize("backend_name", ["numba", "numpy"])
def test_backend_step_shapes_fuzzed_never_crash(backend_name):
    """Random shapes, dtypes and activation codes for a backend's lstm_step (hypothesis, in a
    child with a memory limit, so a regression to out-of-bounds kernel access fails here
    instead of killing the test run): each call is refused naming lstm_step, or agrees with
    the numpy reference."""
    result = run_child(BACKEND_FUZZ, [backend_name, "150"])
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-3000:])
    accepted, refused = map(int, result.stdout.split())
    assert accepted + refused >= 150 and refused > 0


FILE_FUZZ = textwrap.dedent("""
    import hashlib, io, json, resource, sys, zipfile
    import numpy as np
    from hypothesis import given, settings, strategies as st, HealthCheck
    import numlstm
    from numlstm.archive import HEADER_MEMBER, _canonical_config
    from numlstm.errors import ModelFileError
    base = open(sys.argv[1], "rb").read()
    target = sys.argv[1] + ".fuzz"
    numlstm.load_model(sys.argv[1]).predict(np.zeros((1, 4, 3), np.float32))
    with open("/proc/self/status") as f:
        vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (400 << 20), vm + (400 << 20)))
    outcomes = {"loaded": 0, "refused": 0}

    def attempt(data):
        with open(target, "wb") as f:
            f.write(data)
        try:
            model = numlstm.load_model(target)
        except ModelFileError as error:
            assert target in str(error)
            outcomes["refused"] += 1
            return
        shape = [2] + [3 if d is None else d for d in model.input_shape[1:]]
        if max(shape) > 64:         # a legal but huge input shape: nothing to predict on
            outcomes["loaded"] += 1
            return
        out = model.predict(np.zeros(shape, np.float32))
        assert np.isfinite(out).all()
        outcomes["loaded"] += 1

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats()
        | st.text(max_size=5) | st.sampled_from([10 ** 400, -1, 0, 2 ** 31, "float64"]),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4),
                                                                    inner, max_size=3),
        max_leaves=6)

    def paths(config):
        found = []
        def walk(node, path):
            if isinstance(node, dict):
                for key, value in node.items():
                    found.append(path + [key]); walk(value, path + [key])
            elif isinstance(node, list):
                for index, value in enumerate(node):
                    found.append(path + [index]); walk(value, path + [index])
        walk(config, [])
        return found

    with zipfile.ZipFile(io.BytesIO(base)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(members[HEADER_MEMBER])
    all_paths = paths(header["config"])

    @settings(max_examples=int(sys.argv[2]), deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(choice=st.integers(0, len(all_paths) - 1), value=json_values)
    def config_mutation(choice, value):
        config = json.loads(json.dumps(header["config"]))
        node = config
        for key in all_paths[choice][:-1]:
            node = node[key]
        node[all_paths[choice][-1]] = value
        changed = dict(header, config=config)
        changed["config_sha256"] = hashlib.sha256(_canonical_config(config)).hexdigest()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, json.dumps(changed).encode() if name == HEADER_MEMBER
                            else data)
        attempt(buffer.getvalue())

    @settings(max_examples=int(sys.argv[2]), deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(flips=st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(1, 255)),
                          min_size=1, max_size=4), cut=st.integers(0, len(base)))
    def byte_mutation(flips, cut):
        data = bytearray(base)
        for offset, mask in flips:
            data[offset] ^= mask
        attempt(bytes(data[:cut]) if cut < len(base) // 2 else bytes(data))

    config_mutation()
    byte_mutation()
    print(outcomes["loaded"], outcomes["refused"])
""")


@needs_proc
def test_model_file_mutations_fuzzed_are_refused_or_load_correctly(tmp_path):
    """hypothesis mutates a saved model: any value anywhere in the (re-signed) config, or
    random bytes and truncation of the file. Every load, in a child with a memory limit, gives
    ModelFileError naming the file or a model whose predictions are finite."""
    path = tmp_path / "base.npz"
    trained = model()
    x, y = xy()
    trained.fit(x, y, epochs=1, verbose=0)
    trained.save(path)
    result = run_child(FILE_FUZZ, [str(path), "120"])
    assert result.returncode == 0, (result.returncode, result.stdout[-2000:],
                                    result.stderr[-3000:])
    loaded, refused = map(int, result.stdout.split())
    assert loaded + refused >= 240 and refused > 0


# -- files: nothing lost -----------------------------------------------------------------------

def test_refused_saves_leave_the_old_file(tmp_path):
    path = tmp_path / "m.npz"
    good = model()
    good.save(path)
    before = path.read_bytes()
    bad = model(seed=1)
    bad.build()
    bad.layers[1].trainable_weights[1][0] = INF
    with pytest.raises(ValueError, match="non-finite"):
        bad.save(path)
    with pytest.raises(TypeError, match="config"):
        save_archive(path, {"a": np.float32(1)}, {})
    with pytest.raises(TypeError, match="pickle"):
        save_archive(path, {}, {"a": np.array([object()])})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_concurrent_saves_to_one_path_leave_one_complete_file(tmp_path):
    path = tmp_path / "m.npz"
    models = [model(seed=i) for i in range(4)]
    for m in models:
        m.build()

    def save(index):
        for _ in range(5):
            models[index].save(path)

    assert run_in_threads(save, 4)[1] == []
    loaded = load_model(path).get_weights()
    assert any(all(np.array_equal(a, b) for a, b in zip(loaded, m.get_weights()))
               for m in models)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_concurrent_streaming_steps_on_one_layer():
    layer = built_lstm(units=6, features=3)
    rng = np.random.default_rng(0)
    streams = [rng.normal(size=(20, 2, 3)).astype(np.float32) for _ in range(3)]
    expected = []
    for stream in streams:
        states = [np.zeros((2, 6), np.float32), np.zeros((2, 6), np.float32)]
        for x_t in stream:
            layer.step(x_t, states, out=states)
        expected.append(states[0].copy())

    def run(index):
        states = [np.zeros((2, 6), np.float32), np.zeros((2, 6), np.float32)]
        for x_t in streams[index]:
            h, states = layer.step(x_t, states)
        return h

    got, errors = run_in_threads(run, 3)
    assert errors == []
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-6)


# -- the CLI: one line and exit status 2 for every bad argument --------------------------------

def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    x, y = xy()
    np.savez(folder / "data.npz", x=x, y=y)
    np.save(folder / "x.npy", x)
    np.save(folder / "x_wrong.npy", x[..., :2])
    np.savez(folder / "huge_labels.npz", x=x, y=np.full(8, 10 ** 9))
    (folder / "junk.npz").write_bytes(b"junk")
    saved = model()
    saved.save(folder / "model.npz")
    model(compiled=False).save(folder / "uncompiled.npz")
    hostile = folder / "hostile.npz"
    saved.save(hostile)
    members = zip_members(hostile)
    config_edit(lambda c: c["model"]["layers"][0]["config"].update(units=10 ** 9))(members)
    write_members(hostile, members)
    return folder


CLI_CASES = [
    ("train-unknown-task", ["train", "chess"], "TASK"),
    ("train-units-0", ["train", "sine", "--units", "0"], "--units"),
    ("train-units-huge", ["train", "sine", "--units", str(10 ** 9)], "--units"),
    ("train-samples-huge", ["train", "sine", "--samples", str(10 ** 12)], "--samples"),
    ("train-timesteps-huge", ["train", "sine", "--timesteps", str(10 ** 9)], "--timesteps"),
    ("train-samples-times-timesteps", ["train", "sine", "--samples", "1000000",
                                       "--timesteps", "1000", "--out", "{f}/m.npz"],
     "--samples"),
    ("train-huge-labels", ["train", "{f}/huge_labels.npz", "--out", "{f}/m2.npz"], "label"),
    ("train-out-missing-folder", ["train", "sine", "--out", "{f}/no/m.npz"], "--out"),
    ("train-out-too-long", ["train", "sine", "--out", "{f}/" + "m" * 300], "--out"),
    ("train-out-is-folder", ["train", "sine", "--out", "{f}"], "--out"),
    ("train-junk-data", ["train", "{f}/junk.npz", "--out", "{f}/m3.npz"], "junk.npz"),
    ("predict-hostile-model", ["predict", "{f}/hostile.npz", "{f}/x.npy", "--out",
                               "{f}/p.npy"], "cannot load model file"),
    ("predict-junk-model", ["predict", "{f}/junk.npz", "{f}/x.npy", "--out", "{f}/p.npy"],
     "cannot load model file"),
    ("predict-wrong-features", ["predict", "{f}/model.npz", "{f}/x_wrong.npy", "--out",
                                "{f}/p.npy"], "features"),
    ("predict-out-too-long", ["predict", "{f}/model.npz", "{f}/x.npy", "--out",
                              "{f}/" + "p" * 300 + ".npy"], "--out"),
    ("evaluate-uncompiled", ["evaluate", "{f}/uncompiled.npz", "{f}/data.npz"], "compile"),
    ("summary-hostile", ["summary", "{f}/hostile.npz"], "cannot load model file"),
    ("bench-unknown-backend", ["bench", "--backends", "tpu"], "--backends"),
    ("bench-json-missing-folder", ["bench", "--backends", "numpy", "--json",
                                   "{f}/no/r.json"], "--json"),
    ("check-json-too-long", ["check", "--backends", "numba", "--json",
                             "{f}/" + "c" * 300 + ".json"], "--json"),
    ("export-out-too-long", ["export", "{f}/model.npz", "{f}/" + "e" * 300 + ".onnx"], "OUT"),
    ("export-hostile-model", ["export", "{f}/hostile.npz", "{f}/e.onnx"],
     "cannot load model file"),
    ("convert-out-missing-folder", ["convert", str(REPO / "tests" / "fixtures" / "keras_models"
                                                   / "keras3_stack.keras"), "{f}/no/k.npz"],
     "OUT"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_bad_arguments_in_one_line(cli_files, case):
    _, args, fragment = case
    before = sorted(p.name for p in cli_files.iterdir())
    result = cli(*[a.replace("{f}", str(cli_files)) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error"), result.output
    assert fragment in result.output, result.output
    assert sorted(p.name for p in cli_files.iterdir()) == before      # nothing written


def test_the_harness_has_at_least_100_cases():
    explicit = len(API_CASES) + len(FILE_CASES) + len(CLI_CASES)
    assert explicit >= 100, explicit
