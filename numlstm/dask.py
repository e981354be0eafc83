"""Batch inference over Dask arrays (``pip install "numlstm[dask]"``): ``predict`` on data
larger than one machine's memory, chunked along the batch axis, on a ``LocalCluster`` or any
Dask cluster.

>>> from dask.distributed import Client
>>> import dask.array as da
>>> client = Client("tcp://scheduler:8786")              # or Client(LocalCluster(...))
>>> x = da.from_zarr("sequences.zarr")                   # (samples, timesteps, features)
>>> y = numlstm.dask.predict(model, x)                    # lazy: a Dask array
>>> y.to_zarr("predictions.zarr")                        # computed chunk by chunk

How the model reaches the workers: :func:`predict` writes the model once, as numlstm's own
pickle-free file (the bytes :meth:`Model.save` writes, less the compile settings and optimizer
state, which inference does not use -- so a model compiled with a custom metric or loss
function runs too), and puts those bytes in the task graph as **one** key that every chunk's
task depends on. Dask moves a key's data to each worker that needs it once, so every worker
receives the model once per call -- not once per chunk -- loads it once
(:func:`numlstm.load_model`, uncompiled), and keeps it in a small per-process cache keyed by
the bytes' SHA-256, so that later chunks and later calls with the same model reuse it.

Security: Dask itself serialises tasks and results with pickle between the client, the
scheduler and the workers, so every party of a Dask cluster must trust the others (as Dask's
own documentation requires: run the cluster on a private network or with TLS). numlstm adds
nothing unpickled of its own to that channel: the model travels as numlstm's archive format,
which holds only JSON and ``.npy`` arrays and is read without pickle, so a model file that
came from elsewhere is no more dangerous on the workers than it is in one process.

Threads: each chunk runs ``model.predict`` under ``numlstm.num_threads(n)``; by default ``n``
shares a worker machine's cores among the worker threads Dask runs there (two single-thread
workers on two cores: one thread each), so processes never oversubscribe the cores.
"""

from __future__ import annotations

import collections
import hashlib
import os
import tempfile
import threading

import numpy as np

__all__ = ["predict"]

#: Models loaded in this process, by the SHA-256 of their file's bytes (the newest few).
_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()
#: How many times this process loaded a model (tests check that it is once per worker).
LOADS = 0


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as error:
        raise ImportError('numlstm.dask needs Dask: pip install "numlstm[dask]" '
                          f"(dask[array] and distributed) -- {error}") from None
    return dask, da


def model_bytes(model) -> bytes:
    """The bytes of the file :meth:`Model.save` writes for ``model`` (numlstm's pickle-free
    archive), without the compile settings and optimizer state: inference needs only the
    architecture and weights, and a model compiled with settings a file cannot hold (a
    plain-function metric or loss) must still run."""
    from .models.saving import save_model
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.npz")
        save_model(model, path, include_compile=False)
        with open(path, "rb") as handle:
            return handle.read()


def _cached_model(payload: bytes, digest: str):
    """The model in ``payload``, loaded once per process (and kept with a lock of its own:
    one ``predict`` at a time on it -- numlstm's own threads use the cores)."""
    global LOADS
    with _CACHE_LOCK:
        entry = _CACHE.get(digest)
        if entry is None:
            from .models import load_model
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "model.npz")
                with open(path, "wb") as handle:
                    handle.write(payload)
                entry = (load_model(path), threading.Lock())
            LOADS += 1
            _CACHE[digest] = entry
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        _CACHE.move_to_end(digest)
    return entry


def _threads_here(host_threads) -> int:
    """numlstm threads for one task on this worker: the machine's usable cores shared among
    the Dask worker threads on it (at least 1)."""
    from .threads import max_threads
    if not host_threads:
        return max_threads()
    try:
        from distributed import get_worker
        worker = get_worker()
        host = worker.address.split("://")[-1].rsplit(":", 1)[0]
        sharing = host_threads.get(host)
    except (ImportError, ValueError, AttributeError):
        sharing = None
    return max(1, max_threads() // sharing) if sharing else max_threads()


def _predict_chunk(payload, digest, batch_size, threads, host_threads, *arrays):
    """One chunk's outputs (a list, one array per output)."""
    from .threads import num_threads
    model, lock = _cached_model(payload, digest)
    n = threads if threads is not None else _threads_here(host_threads)
    with lock, num_threads(n):
        outputs = model.predict(list(arrays) if len(arrays) > 1 else arrays[0],
                                batch_size=batch_size)
    return outputs if isinstance(outputs, list) else [outputs]


def _host_threads() -> dict | None:
    """``{host: Dask worker threads on it}`` from the default client, or None without one."""
    try:
        from distributed import get_client
        client = get_client()
    except (ImportError, ValueError):
        return None
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:                                   # older distributed
        info = client.scheduler_info()
    counts: dict = {}
    for worker in info.get("workers", {}).values():
        host = worker.get("host")
        counts[host] = counts.get(host, 0) + int(worker.get("nthreads", 1))
    return counts


def predict(model, x, batch_size=None, num_threads=None):
    """The model's outputs for Dask array(s) ``x``, as Dask arrays chunked like ``x``.

    Parameters
    ----------
    model : numlstm.Model or Sequential
        Built (weights exist). It is shipped to the workers once per call (see the module's
        notes); a stateful model is refused (its carried states need one ordered stream).
    x : dask.array.Array, or a list/tuple (input order) or dict (by input name) of them
        One array per model input, the batch on axis 0; several inputs must have the same
        number of samples (they are rechunked to the first one's batch chunks). Only the batch
        axis may be chunked (other axes are joined into one chunk). Padded sequences under a
        ``Masking`` layer or ``Embedding(mask_zero=True)`` carry their masks in the data, so
        they work as in :meth:`Model.predict`.
    batch_size : int, optional
        ``model.predict``'s batch size inside each chunk (default 32).
    num_threads : int ≥ 1, optional
        numlstm threads per task; default: a worker machine's cores shared among the Dask
        worker threads on it.

    Returns
    -------
    dask.array.Array, or a list of them (one per output, for a model with several)
        Lazy: nothing runs until it is computed. Equal to ``model.predict(x.compute())``
        (the same code runs on each chunk; the batch rows are independent).
    """
    from . import validation as V
    dask, da = _dask()
    from .models.model import Model
    if not isinstance(model, Model):
        raise TypeError(f"model must be a numlstm Model or Sequential; got {V.kind_of(model)}")
    model._require_built()
    if model._fixed_batch_size() is not None:
        raise ValueError("numlstm.dask.predict does not run stateful models: their carried "
                         "states need the samples in one ordered stream")
    if batch_size is not None:
        batch_size = V.check_int_at_least(batch_size, "batch_size", 1)
    if num_threads is not None:
        num_threads = V.check_positive_int(num_threads, "num_threads")
    arrays = _input_arrays(model, x, da)
    chunks = arrays[0].chunks[0]
    # One sample of zeros through the model here: the outputs' trailing shapes and dtypes.
    probe = model.predict([np.zeros((1,) + a.shape[1:], a.dtype) for a in arrays]
                          if len(arrays) > 1 else np.zeros((1,) + arrays[0].shape[1:],
                                                           arrays[0].dtype))
    probe = probe if isinstance(probe, list) else [probe]
    payload = model_bytes(model)
    digest = hashlib.sha256(payload).hexdigest()
    # One key holds the model's bytes; every chunk's task depends on it.
    shipped = dask.delayed(payload, name=f"numlstm-model-{digest[:16]}", pure=True)
    host_threads = _host_threads() if num_threads is None else None
    blocks = [a.to_delayed().ravel() for a in arrays]
    run = dask.delayed(_predict_chunk, pure=True)
    parts = [[] for _ in probe]
    for index, rows in enumerate(chunks):
        result = run(shipped, digest, batch_size, num_threads, host_threads,
                     *[b[index] for b in blocks])
        for k, example in enumerate(probe):
            parts[k].append(da.from_delayed(result[k], shape=(rows,) + example.shape[1:],
                                            dtype=example.dtype))
    outputs = [da.concatenate(p, axis=0) if p else
               da.zeros((0,) + e.shape[1:], dtype=e.dtype) for p, e in zip(parts, probe)]
    return outputs[0] if model._single_output else outputs


def _input_arrays(model, x, da) -> list:
    """One Dask array per model input, each checked and chunked along the batch axis only."""
    names = model.input_names
    if isinstance(x, dict):
        unknown = sorted(set(x) - set(names))
        missing = [n for n in names if n not in x]
        if unknown or missing:
            raise ValueError(f"x: the dict must name exactly the model's inputs {names}; got "
                             f"{sorted(x)}")
        arrays = [x[n] for n in names]
    elif isinstance(x, (list, tuple)):
        arrays = list(x)
    else:
        arrays = [x]
    if len(arrays) != len(names):
        raise ValueError(f"x: the model has {len(names)} input(s) {names}; got {len(arrays)} "
                         "array(s)")
    checked = []
    for name, array in zip(names, arrays):
        label = "x" if len(names) == 1 else f"x[{name!r}]"
        if not isinstance(array, da.Array):
            raise TypeError(f"{label} must be a dask.array.Array (chunked along the batch "
                            f"axis; wrap a NumPy array with dask.array.from_array, or call "
                            f"model.predict); got {type(array).__name__}")
        if array.ndim < 1:
            raise ValueError(f"{label} must have a batch axis; got shape {array.shape}")
        if any(np.isnan(c) for axis in array.chunks for c in axis):
            raise ValueError(f"{label} has chunks of unknown size; call "
                             f"{label}.compute_chunk_sizes() first")
        if array.ndim > 1 and any(len(axis) > 1 for axis in array.chunks[1:]):
            array = array.rechunk({axis: -1 for axis in range(1, array.ndim)})
        checked.append(array)
    sizes = [a.shape[0] for a in checked]
    if len(set(sizes)) > 1:
        raise ValueError(f"x: every input must have the same number of samples; got {sizes} "
                         f"for inputs {names}")
    first = checked[0].chunks[0]
    return [a if a.chunks[0] == first else a.rechunk({0: first}) for a in checked]
