"""numlstm.dask.predict on a real LocalCluster of 2 worker processes: equal to model.predict
for chunk sizes that do not divide the batch, with several inputs/outputs and masks; the
model reaches each worker once."""

from __future__ import annotations

import numpy as np
import pytest

import numlstm

da = pytest.importorskip("dask.array", reason='needs Dask: pip install "numlstm[dask]"')
distributed = pytest.importorskip("distributed", reason='needs pip install "numlstm[dask]"')

import numlstm.dask as nd  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None)
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def _loads(client) -> dict:
    return client.run(lambda: __import__("numlstm.dask").dask.LOADS)


def test_predict_equals_model_predict_for_uneven_chunks(client):
    model = numlstm.Sequential([numlstm.Input((7, 3)), numlstm.LSTM(5, seed=1),
                                numlstm.Dense(2, seed=2)], seed=0)
    x = np.random.default_rng(0).normal(size=(23, 7, 3)).astype(np.float32)
    before = _loads(client)
    y = nd.predict(model, da.from_array(x, chunks=(5, 7, 3)), batch_size=3)
    assert isinstance(y, da.Array) and y.chunks[0] == (5, 5, 5, 5, 3)
    # one key carries the model, whatever the number of chunks
    keys = [k for k in dict(y.__dask_graph__()) if str(k).startswith("numlstm-model-")]
    assert len(keys) == 1
    got = y.compute()
    expected = model.predict(x)
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # each worker loaded the model at most once for the 5 chunks
    after = _loads(client)
    assert all(after[w] - before.get(w, 0) <= 1 for w in after)
    assert sum(after.values()) - sum(before.values()) >= 1


def test_predict_several_inputs_outputs_and_masks(client):
    tokens = numlstm.Input((6,), dtype="int64", name="tokens")
    signal = numlstm.Input((6, 2), name="signal")
    embedded = numlstm.Embedding(9, 3, mask_zero=True, seed=1)(tokens)
    masked = numlstm.Masking(0.0)(signal)
    a = numlstm.LSTM(4, return_sequences=True, seed=2)(embedded)
    b = numlstm.LSTM(4, seed=3)(masked)
    model = numlstm.Model([tokens, signal], [numlstm.Dense(2, name="steps", seed=4)(a),
                                             numlstm.Dense(1, name="last", seed=5)(b)])
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 9, size=(11, 6))
    ids[:, 4:] = 0                                      # padding: masked
    values = rng.normal(size=(11, 6, 2)).astype(np.float32)
    values[::2, 3:] = 0.0
    outputs = nd.predict(model, {"tokens": da.from_array(ids, chunks=4),
                                 "signal": da.from_array(values, chunks=(3, 6, 2))})
    expected = model.predict([ids, values])
    assert len(outputs) == 2
    for got, want in zip(outputs, expected):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.compute(), want, rtol=0, atol=1e-6)



def test_predict_runs_models_compiled_with_custom_metrics_and_losses(client, tmp_path):
    """Inference ships the architecture and weights only: compile settings a file cannot hold
    (a plain-function metric, a LossFunction) do not stop it."""
    def abs_error(y_true, y_pred):
        return np.mean(np.abs(y_true - y_pred), axis=-1)

    def squared(y_true, y_pred):
        return np.sum((y_pred - y_true) ** 2, axis=-1)

    def squared_gradient(y_true, y_pred):
        return 2 * (y_pred - y_true)

    x = np.random.default_rng(2).normal(size=(9, 4, 2)).astype(np.float32)
    for loss, metrics in (("mse", [abs_error]),
                          (numlstm.losses.LossFunction(squared, squared_gradient), [])):
        model = numlstm.Sequential([numlstm.Input((4, 2)), numlstm.LSTM(3, seed=1),
                                    numlstm.Dense(2, seed=2)], seed=0)
        model.compile("nadam", loss, metrics=metrics)
        model.fit(x, np.ones((9, 2), np.float32), batch_size=3, epochs=1, verbose=0)
        with pytest.raises(ValueError, match="cannot be written"):
            model.save(tmp_path / "m.npz")
        payload = nd.model_bytes(model)
        (tmp_path / "shipped.npz").write_bytes(payload)
        shipped = numlstm.load_model(tmp_path / "shipped.npz")
        assert not shipped.compiled
        got = nd.predict(model, da.from_array(x, chunks=(4, 4, 2))).compute()
        np.testing.assert_allclose(got, model.predict(x), rtol=0, atol=1e-6)

def test_predict_refuses_what_it_cannot_run():
    model = numlstm.Sequential([numlstm.Input((4, 2)), numlstm.LSTM(3), numlstm.Dense(1)])
    with pytest.raises(TypeError, match="dask.array.Array"):
        nd.predict(model, np.zeros((3, 4, 2), np.float32))
    with pytest.raises(TypeError, match="model"):
        nd.predict("model", da.zeros((3, 4, 2), chunks=2))
    with pytest.raises(ValueError, match="unknown size"):
        x = da.zeros((6, 4, 2), chunks=2)
        nd.predict(model, x[x[:, 0, 0] >= 0])
    with pytest.raises(ValueError, match="batch_size"):
        nd.predict(model, da.zeros((3, 4, 2), chunks=2), batch_size=0)
