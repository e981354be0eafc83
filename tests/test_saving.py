"""Saving and loading models: identical predictions, exact resumption of training, refusal of
unknown layer classes, and ModelCheckpoint."""


import numpy as np
import pytest

from numlstm import callbacks, load_model, optimizers
from numlstm.errors import ModelFileError
from numlstm.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Input, Masking
from numlstm.models import Sequential


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5, 3)).astype(np.float32)
    x[:4, 3:] = 0.0                                   # some padded sequences
    return x, (x[:, :, 0].sum(1) > 0).astype(np.int64)


def model_under_test(optimizer):
    model = Sequential([Input((5, 3)), Masking(),
                        Bidirectional(LSTM(4, return_sequences=True, dropout=0.1,
                                           recurrent_dropout=0.2), merge_mode="sum"),
                        LSTM(3), Dropout(0.2), Dense(2, activation="softmax")], seed=7)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_save_load_predict_is_identical(tmp_path):
    x, y = data()
    model = model_under_test("adam")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = model.save(tmp_path / "model.npz")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert loaded.input_shape == model.input_shape
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_load_on_another_backend(tmp_path):
    x, _ = data()
    model = Sequential([Input((5, 3)), LSTM(2)], seed=0, backend="numba")
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz", backend="numpy")
    assert loaded.backend_name == "numpy" and loaded.layers[0].backend == "numpy"
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), atol=1e-6)
    assert load_model(tmp_path / "m.npz").backend_name == "numba"


def test_embedding_model_round_trip(tmp_path):
    ids = np.random.default_rng(1).integers(0, 6, size=(10, 4))
    model = Sequential([Input((4,), dtype="int64"), Embedding(6, 3, mask_zero=True),
                        LSTM(2)], seed=0)
    model.save(tmp_path / "emb.npz")
    np.testing.assert_array_equal(load_model(tmp_path / "emb.npz").predict(ids),
                                  model.predict(ids))


@pytest.mark.parametrize("optimizer", [lambda: optimizers.SGD(0.1, momentum=0.9),
                                       lambda: optimizers.Adam(0.01),
                                       lambda: optimizers.RMSprop(0.01, momentum=0.5)])
def test_resumed_training_equals_an_uninterrupted_run(tmp_path, optimizer):
    """Optimizer slots, step count and the shuffle/dropout generator are all restored."""
    x, y = data()
    straight = model_under_test(optimizer())
    straight.fit(x, y, batch_size=8, epochs=2, verbose=0)
    straight.fit(x, y, batch_size=8, epochs=2, verbose=0)

    first = model_under_test(optimizer())
    first.fit(x, y, batch_size=8, epochs=2, verbose=0)
    first.save(tmp_path / "half.npz")
    resumed = load_model(tmp_path / "half.npz")
    assert resumed.optimizer.iterations == 6
    resumed.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def _rewrite_config(source, target, change):
    """Copy an archive, letting ``change`` edit its JSON config (checksums stay valid because
    they cover the arrays, and the config is re-serialised by the archive writer)."""
    from numlstm.archive import load_archive, save_archive
    config, arrays = load_archive(source)
    change(config)
    save_archive(target, config, arrays)


def test_unknown_layer_class_in_a_file_is_refused(tmp_path):
    model = Sequential([Input((5, 3)), LSTM(2)], seed=0)
    model.save(tmp_path / "m.npz")

    def evil(config):
        config["model"]["layers"][0]["class_name"] = "os.system"
    _rewrite_config(tmp_path / "m.npz", tmp_path / "evil.npz", evil)
    with pytest.raises(ModelFileError, match=r"evil\.npz.*unknown layer class 'os.system'"):
        load_model(tmp_path / "evil.npz")

    def bad_config(config):
        config["model"]["layers"][0]["config"]["units"] = -3
    _rewrite_config(tmp_path / "m.npz", tmp_path / "bad.npz", bad_config)
    with pytest.raises(ModelFileError, match="units must be a positive integer"):
        load_model(tmp_path / "bad.npz")


def test_damaged_or_missing_files_raise_model_file_error(tmp_path):
    model = Sequential([Input((5, 3)), LSTM(2)], seed=0)
    path = model.save(tmp_path / "m.npz")
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    for name in ("cut.npz", "missing.npz"):
        with pytest.raises(ModelFileError, match=name):
            load_model(tmp_path / name)


def test_model_checkpoint_saves_the_best_epochs(tmp_path):
    x, y = data()
    model = model_under_test("adam")
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}.npz"),
                                           monitor="loss", save_best_only=True)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[checkpoint])
    losses = history.history["loss"]
    best_so_far = [i for i in range(3) if losses[i] == min(losses[:i + 1])]
    assert checkpoint.saved == [str(tmp_path / f"ckpt-{i + 1:02d}.npz") for i in best_so_far]
    assert load_model(checkpoint.saved[-1]).optimizer.iterations == 3 * (best_so_far[-1] + 1)


@pytest.mark.parametrize("backend, error, fragment", [
    ("foo", ValueError, "backend must be one of"),
    (3, TypeError, "backend must be a string"),
])
def test_a_bad_backend_argument_is_named_before_the_file_is_read(tmp_path, backend, error,
                                                                 fragment):
    from numlstm.errors import ModelFileError
    model = Sequential([Input((5, 3)), LSTM(2)], seed=0)
    path = model.save(tmp_path / "m.npz")
    for target in (path, tmp_path / "missing.npz"):
        with pytest.raises(error, match=fragment) as caught:
            load_model(target, backend=backend)
        assert not isinstance(caught.value, ModelFileError)


def test_a_model_saved_for_a_backend_missing_here_names_the_fix(tmp_path, monkeypatch):
    from numlstm.models import saving
    from numlstm.backends import BackendStatus
    from numlstm.errors import BackendUnavailableError
    x, _ = data()
    model = Sequential([Input((5, 3)), LSTM(2)], seed=0, backend="numba")
    path = model.save(tmp_path / "m.npz")
    real = saving.backend_status
    # pretend numba (the saved backend) is missing here, as cuda is on a machine without a GPU
    monkeypatch.setattr(saving, "backend_status", lambda name: BackendStatus(
        name, False, reason="no such device here") if name == "numba" else real(name))
    with pytest.raises(BackendUnavailableError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "'numba'" in message and "saved" in message and "no such device here" in message
    assert f"load_model({str(path)!r}, backend='numpy')" in message
    assert "set_backend" in message
    # the suggested call works and gives the same outputs
    np.testing.assert_allclose(load_model(path, backend="numpy").predict(x), model.predict(x),
                               atol=1e-6)
