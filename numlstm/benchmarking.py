"""The benchmark harness: check a backend against the reference, then time it fairly.

``numlstm bench``, ``numlstm check`` and the scripts in ``benchmarks/`` all use this module, so
every published number comes from the same code path. The rules it follows
(docs/numerics.md, docs/performance.md):

* **Check before timing.** :func:`check_parity` runs the same inputs through the ``numpy``
  reference and the backend and compares outputs, final states and every gradient. A backend
  that disagrees is not timed.
* **Time fairly.** :func:`time_backend` moves the inputs into the backend's memory once, times
  the first call (JIT compilation or loading the on-disk cache) apart from the steady state,
  runs ``warmup`` untimed calls, synchronises the device before reading the clock, and reports
  the median, min and max of ``repeats`` calls. It calls the backend's kernels directly (the
  front-end's argument checks, a few microseconds, are not timed -- the torch peer is timed the
  same way, on tensors it already holds).
* **torch runs in its own process.** Importing torch into the process that times Numba made
  Numba's threaded timings erratic, so :func:`run_torch_peer` writes the same weights to a
  temporary ``.npz`` and runs :mod:`numlstm.peers.torch_lstm` in a child interpreter with the
  same thread count.

FLOP counts (per layer, ``D`` the layer's input width): forward ``2·T·B·4H·(D+H)``;
training (forward + backward) is counted as 3× the forward.

The JSON report (:func:`bench` returns it as a dict; ``numlstm bench --json`` writes it) has
this schema, ``"schema": "numlstm.bench/1"``::

    {
      "schema": "numlstm.bench/1",
      "created": "2026-01-01T00:00:00+00:00",          # UTC, ISO 8601
      "machine": {...},                                 # machine_info(), see there
      "settings": {"config": "b" | null, "shape": {"batch", "timesteps", "features",
                   "units", "layers"}, "mode": "forward" | "train", "dtype": "float32",
                   "repeats": int, "warmup": int, "threads": int | null, "flops": int},
      "matmul_peak_gflops": {"1": float, "<threads>": float} | null,
      "results": [                                      # one per backend, then the peer
        {"name": "numba", "kind": "backend" | "peer",
         "status": "ok" | "unavailable" | "check_failed" | "error",
         "note": str,                                   # why not timed; "" when ok
         "parity": {"passed": bool, "dtype": str,
                    "max_abs_diff": {array: float},     # vs the reference, same dtype
                    "rel_norm_diff": {array: float},    # gradients, vs a float64 reference
                    "tolerance": {...}, "failures": [array names]}
                   | null,                              # null for the numpy reference
         "timing": {"first_call_ms": float, "median_ms": float, "min_ms": float,
                    "max_ms": float, "times_ms": [float]} | null,
         "gflops": float | null,                         # flops / median
         "ratio_to_fastest": float | null,               # median / fastest median (1 = fastest)
         "ratio_to_peer": float | null}                  # median / peer median (< 1: faster)
      ]
    }
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import validation as V
from .backends import BACKEND_NAMES, available_backends, get_backend

__all__ = [
    "CONFIGS", "MODES", "SCHEMA", "Shape", "Problem", "ParityResult", "Timing", "PeerResult",
    "lstm_flops", "make_problem", "stack_forward", "stack_backward", "check_parity",
    "time_backend", "thread_limit", "machine_info", "matmul_peak", "run_torch_peer",
    "torch_peer_python", "bench",
]

SCHEMA = "numlstm.bench/1"
MODES = ("forward", "train")
PEER_SCRIPT = Path(__file__).resolve().parent / "peers" / "torch_lstm.py"
#: Environment variable naming the Python interpreter that runs the torch peer.
PEER_PYTHON_ENV = "NUMLSTM_PEER_PYTHON"


# -- shapes and FLOPs ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """A benchmark shape: ``layers`` stacked LSTM layers of ``units`` each.

    The first layer reads ``features`` inputs, every later one ``units``.
    """

    batch: int
    timesteps: int
    features: int
    units: int
    layers: int = 1

    def __post_init__(self):
        for name in ("batch", "timesteps", "features", "units", "layers"):
            V.check_positive_int(getattr(self, name), name)

    def layer_inputs(self) -> list[int]:
        """The input width ``D`` of each layer."""
        return [self.features] + [self.units] * (self.layers - 1)

    def flops(self, mode: str = "forward") -> int:
        """See :func:`lstm_flops`."""
        return lstm_flops(self, mode)

    def describe(self) -> str:
        text = f"B{self.batch} T{self.timesteps} D{self.features} H{self.units}"
        return text + (f" x{self.layers} layers" if self.layers > 1 else "")


#: The five benchmark configurations (docs/performance.md).
CONFIGS: dict[str, Shape] = {
    "a": Shape(1, 100, 32, 64),          # streaming, batch 1
    "b": Shape(32, 28, 28, 128),         # MNIST rows, as in the Keras tutorials
    "c": Shape(64, 100, 64, 256),
    "d": Shape(256, 50, 128, 512),
    "e": Shape(64, 100, 64, 256, 2),     # two stacked layers of c
}


def lstm_flops(shape: Shape, mode: str = "forward") -> int:
    """Floating-point operations of one pass over ``shape``.

    Forward: ``sum over layers of 2·T·B·4H·(D+H)`` (the two GEMMs; the gate math is not
    counted). ``mode="train"`` (forward + backward) counts 3× the forward.
    """
    V.check_name(mode, "mode", MODES)
    forward = sum(2 * shape.timesteps * shape.batch * 4 * shape.units * (d + shape.units)
                  for d in shape.layer_inputs())
    return forward * (3 if mode == "train" else 1)


# -- problems -----------------------------------------------------------------------------------

@dataclass
class Problem:
    """The inputs of one benchmark, as host NumPy arrays of one dtype.

    Attributes
    ----------
    shape : Shape
    x : array (batch, timesteps, features)
    weights : list of (kernel (D, 4H), recurrent_kernel (H, 4H), bias (4H,)), one per layer
    grad_outputs : array (batch, timesteps, units)
        The upstream gradient of the top layer's outputs (training mode).
    mask : bool array (batch, timesteps) or None
    reverse : bool
        Every layer processes the timesteps last to first.
    activation, recurrent_activation : str
        Activation names (:mod:`numlstm.activations`) of every layer.
    """

    shape: Shape
    x: np.ndarray
    weights: list
    grad_outputs: np.ndarray
    mask: np.ndarray | None = None
    reverse: bool = False
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"

    @property
    def dtype(self) -> np.dtype:
        return self.x.dtype

    def astype(self, dtype) -> "Problem":
        dtype = np.dtype(dtype)
        return Problem(self.shape, self.x.astype(dtype),
                       [tuple(w.astype(dtype) for w in layer) for layer in self.weights],
                       self.grad_outputs.astype(dtype), self.mask, self.reverse,
                       self.activation, self.recurrent_activation)


def make_problem(shape: Shape, dtype="float32", *, seed: int = 0, mask: bool = False,
                 reverse: bool = False, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid") -> Problem:
    """Random inputs for ``shape``: weights ``U(-1/√H, 1/√H)`` as ``torch.nn.LSTM`` initialises
    them, inputs and upstream gradients standard normal. Made in float64, then cast, so the
    float32 and float64 problems of one seed hold the same numbers (to rounding).

    ``mask=True`` adds a random mask of any pattern (about 25% of steps masked, one row fully
    masked when the batch has more than one row).
    """
    dtype = V.check_float_dtype(dtype)
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(shape.units)
    weights = []
    for d in shape.layer_inputs():
        weights.append(tuple(rng.uniform(-bound, bound, size).astype(dtype) for size in
                             ((d, 4 * shape.units), (shape.units, 4 * shape.units),
                              (4 * shape.units,))))
    x = rng.standard_normal((shape.batch, shape.timesteps, shape.features)).astype(dtype)
    grad_outputs = rng.standard_normal((shape.batch, shape.timesteps, shape.units)).astype(dtype)
    mask_array = None
    if mask:
        mask_array = rng.random((shape.batch, shape.timesteps)) > 0.25
        if shape.batch > 1:
            mask_array[0] = False
    V.check_activation(activation, "activation")
    V.check_activation(recurrent_activation, "recurrent_activation")
    return Problem(shape, x, weights, grad_outputs, mask_array, bool(reverse), activation,
                   recurrent_activation)


# -- running a stack on one backend ------------------------------------------------------------

def _to_backend(backend, problem: Problem) -> dict:
    """The problem's arrays moved into ``backend``'s memory once (timed calls reuse them)."""
    dtype = problem.dtype
    batch, units = problem.shape.batch, problem.shape.units
    def zeros():     # one array per role, so that no two arguments alias each other
        return backend.asarray(np.zeros((batch, units), dtype))
    return {
        "x": backend.asarray(problem.x),
        "weights": [tuple(backend.asarray(w) for w in layer) for layer in problem.weights],
        "h0": zeros(), "c0": zeros(),
        "mask": None if problem.mask is None else backend.asarray(problem.mask),
        "grad_outputs": backend.asarray(problem.grad_outputs),
        "grad_h": zeros(), "grad_c": zeros(),
        "reverse": problem.reverse,
        "activation": V.check_activation(problem.activation, "activation"),
        "recurrent_activation": V.check_activation(problem.recurrent_activation,
                                                   "recurrent_activation"),
    }


def stack_forward(backend, arrays: dict, *, return_cache: bool = False) -> list:
    """Run every layer of the stack on ``backend``; one ``ForwardResult`` per layer.

    ``arrays`` is what :func:`_to_backend` returns. Layer ``l + 1`` reads layer ``l``'s outputs;
    the mask and direction apply to every layer; states start at zero.
    """
    inputs, results = arrays["x"], []
    for kernel, recurrent_kernel, bias in arrays["weights"]:
        result = backend.lstm_forward(
            inputs, kernel, recurrent_kernel, bias, h0=arrays["h0"], c0=arrays["c0"],
            mask=arrays["mask"], recurrent_dropout_mask=None, reverse=arrays["reverse"],
            activation=arrays["activation"],
            recurrent_activation=arrays["recurrent_activation"],
            zero_output_for_mask=False, return_cache=return_cache)
        results.append(result)
        inputs = result.outputs
    return results


def stack_backward(backend, arrays: dict, results: list) -> list:
    """Back-propagate ``arrays["grad_outputs"]`` through a stack run with ``return_cache=True``.

    Returns one ``Gradients`` per layer (bottom first); the top layer's final states get zero
    upstream gradients, and each layer's input gradient is the upstream gradient of the layer
    below it.
    """
    grads, upstream = [None] * len(results), arrays["grad_outputs"]
    for index in range(len(results) - 1, -1, -1):
        grads[index] = backend.lstm_backward(results[index].cache, grad_outputs=upstream,
                                             grad_h=arrays["grad_h"],
                                             grad_c=arrays["grad_c"])
        upstream = grads[index].x
    return grads


def _run_all(backend_name: str, problem: Problem) -> dict[str, np.ndarray]:
    """Forward and backward of the stack; every result as a host array, by name."""
    backend = get_backend(backend_name)
    arrays = _to_backend(backend, problem)
    results = stack_forward(backend, arrays, return_cache=True)
    grads = stack_backward(backend, arrays, results)
    host = backend.to_numpy
    named = {"outputs": host(results[-1].outputs)}
    for index, (result, grad) in enumerate(zip(results, grads)):
        tag = f"[{index}]" if len(results) > 1 else ""
        named[f"h{tag}"] = host(result.h)
        named[f"c{tag}"] = host(result.c)
        for part in ("kernel", "recurrent_kernel", "bias"):
            named[f"d_{part}{tag}"] = host(getattr(grad, part))
    named["d_x"] = host(grads[0].x)
    return named


# -- parity -------------------------------------------------------------------------------------

#: Tolerances of docs/numerics.md.
TOLERANCES = {
    "float64": {"atol": 1e-10, "scaled_by": "max(1, max |reference|)"},
    "float32": {"atol": 1e-5, "rtol": 1e-5, "gradient_rel_norm": 1e-5},
}


def _is_forward(name: str) -> bool:
    return not name.startswith("d_")


@dataclass
class ParityResult:
    """How one backend compares with the ``numpy`` reference on one problem.

    Attributes
    ----------
    backend : str
    dtype : str
    passed : bool
    max_abs_diff : dict of str to float
        Largest absolute difference of every array (outputs, final states ``h``/``c`` -- per
        layer as ``h[0]`` ... for stacks -- and gradients ``d_x``, ``d_kernel``, ...) from the
        reference run in the same dtype.
    rel_norm_diff : dict of str to float
        float32 only: ``‖g − g64‖ / ‖g64‖`` of every gradient against a float64 reference.
    failures : list of str
        The arrays beyond tolerance (empty when ``passed``).
    """

    backend: str
    dtype: str
    passed: bool
    max_abs_diff: dict
    rel_norm_diff: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    tolerance: dict = field(default_factory=dict)

    @property
    def worst(self) -> float:
        """The largest of ``max_abs_diff`` (0 when there is nothing to compare)."""
        return max(self.max_abs_diff.values(), default=0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def _relative_norm(value, reference) -> float:
    reference = np.asarray(reference, np.float64)
    scale = np.linalg.norm(reference)
    error = np.linalg.norm(np.asarray(value, np.float64) - reference)
    return float(error / scale) if scale else float(error)


def _max_abs(value, reference) -> float:
    value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
    if value.shape != reference.shape:
        return float("inf")
    if value.size == 0:
        return 0.0
    return float(np.nan_to_num(np.abs(value - reference), nan=np.inf).max())


def check_parity(backend_name: str, problem: Problem, *,
                 reference: dict | None = None,
                 reference64: dict | None = None) -> ParityResult:
    """Compare ``backend_name`` with the ``numpy`` reference on ``problem`` (docs/numerics.md).

    float64: every array within ``atol = 1e-10 · max(1, max|reference|)``.
    float32: outputs and final states within ``atol = rtol = 1e-5`` of the reference run in
    float32; gradients (sums over batch × time) by relative norm ``≤ 1e-5`` against the
    reference run in float64 on the same numbers.

    ``reference`` / ``reference64`` may pass in results of ``_run_all("numpy", ...)`` computed
    earlier, so that several backends share one reference run.
    """
    dtype = np.dtype(problem.dtype).name
    if reference is None:
        reference = _run_all("numpy", problem)
    result = _run_all(backend_name, problem)
    max_abs = {name: _max_abs(result[name], reference[name]) for name in reference}
    failures, rel_norm = [], {}
    if dtype == "float64":
        for name, value in reference.items():
            scale = max(1.0, float(np.abs(value).max(initial=0.0)))
            if not max_abs[name] <= 1e-10 * scale:
                failures.append(name)
    else:
        if reference64 is None:
            reference64 = _run_all("numpy", problem.astype(np.float64))
        for name, value in reference.items():
            if _is_forward(name):
                close = (result[name].shape == value.shape and np.all(np.abs(
                    result[name].astype(np.float64) - value) <= 1e-5 + 1e-5 * np.abs(value)))
                if not close:
                    failures.append(name)
            else:
                rel_norm[name] = _relative_norm(result[name], reference64[name]) \
                    if result[name].shape == value.shape else float("inf")
                if not rel_norm[name] <= 1e-5:
                    failures.append(name)
    return ParityResult(backend_name, dtype, not failures, max_abs, rel_norm, failures,
                        dict(TOLERANCES[dtype]))


# -- threads ------------------------------------------------------------------------------------

@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` threads for numlstm's kernels and every BLAS.

    Uses ``numlstm.num_threads`` when this version has it; otherwise Numba's
    ``set_num_threads`` plus ``threadpoolctl`` for the BLAS libraries (``scipy.linalg`` is
    imported first: Numba's ``np.dot`` calls SciPy's OpenBLAS, which threadpoolctl only sees once
    it is loaded). ``None`` leaves everything as it is.
    """
    if threads is None:
        yield
        return
    V.check_positive_int(threads, "threads")
    import numlstm
    if hasattr(numlstm, "num_threads"):
        with numlstm.num_threads(threads):
            yield
        return
    with contextlib.ExitStack() as stack:
        try:
            import scipy.linalg  # noqa: F401  (loads SciPy's BLAS so threadpoolctl sees it)
        except ImportError:
            pass
        try:
            from threadpoolctl import threadpool_limits
            stack.enter_context(threadpool_limits(limits=threads))
        except ImportError:
            pass
        try:
            import numba
            previous_numba = numba.get_num_threads()
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            stack.callback(numba.set_num_threads, previous_numba)
        except ImportError:
            pass
        yield


# -- timing -------------------------------------------------------------------------------------

@dataclass
class Timing:
    """Wall-clock times of one backend, milliseconds.

    ``first_call_ms`` is the very first call in this process (JIT compilation, or loading the
    on-disk cache, plus the run); ``times_ms`` the ``repeats`` timed calls after ``warmup``
    untimed ones, each ended by the device's ``synchronize()``.
    """

    first_call_ms: float
    times_ms: list

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def min_ms(self) -> float:
        return min(self.times_ms)

    @property
    def max_ms(self) -> float:
        return max(self.times_ms)

    def to_dict(self) -> dict:
        return {"first_call_ms": self.first_call_ms, "median_ms": self.median_ms,
                "min_ms": self.min_ms, "max_ms": self.max_ms, "times_ms": list(self.times_ms)}

    @classmethod
    def from_dict(cls, data: dict) -> "Timing":
        return cls(float(data["first_call_ms"]), [float(t) for t in data["times_ms"]])


def _step_function(backend, arrays: dict, mode: str) -> Callable[[], None]:
    if mode == "forward":
        def step():
            stack_forward(backend, arrays, return_cache=False)
            backend.synchronize()
    else:
        def step():
            stack_backward(backend, arrays, stack_forward(backend, arrays, return_cache=True))
            backend.synchronize()
    return step


def time_backend(backend_name: str, problem: Problem, mode: str = "forward", *,
                 repeats: int = 10, warmup: int = 2, threads: int | None = None) -> Timing:
    """Time ``mode`` (``"forward"`` or ``"train"`` = forward + backward) on one backend.

    The inputs are moved to the backend once; every call reuses them, and the backend's
    buffers are whatever it keeps between calls. The first call is timed on its own, then
    ``warmup`` calls are run untimed and ``repeats`` are timed, each followed by
    ``synchronize()`` before the clock is read.
    """
    V.check_name(mode, "mode", MODES)
    repeats = V.check_positive_int(repeats, "repeats")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer; got warmup={warmup!r}")
    backend = get_backend(backend_name)
    with thread_limit(threads):
        arrays = _to_backend(backend, problem)
        backend.synchronize()
        step = _step_function(backend, arrays, mode)
        start = time.perf_counter()
        step()
        first = time.perf_counter() - start
        for _ in range(warmup):
            step()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    return Timing(first * 1e3, [t * 1e3 for t in times])


# -- machine ------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda_version(backend_name: str) -> str | None:
    """The CUDA runtime version seen by a usable GPU backend (its package is already imported
    by then), e.g. ``"12.8"``; None when it cannot be read."""
    try:
        if backend_name == "cupy":
            import cupy
            version = int(cupy.cuda.runtime.runtimeGetVersion())   # e.g. 12080
            return f"{version // 1000}.{version % 1000 // 10}"
        from numba import cuda
        if cuda.is_available():
            major, minor = cuda.runtime.get_version()
            return f"{major}.{minor}"
    except Exception:      # a version string is not worth failing a report over
        return None
    return None


def machine_info() -> dict:
    """The machine and the versions that matter, without importing torch, CUDA or CuPy.

    Keys: ``cpu`` (model name), ``logical_cores``, ``physical_cores`` (None when unknown),
    ``usable_cores`` (this process's affinity), ``platform``, ``python``, ``versions``
    (numlstm, numpy, scipy, numba, numba-cuda, cupy, torch: None when not installed; torch is the
    version installed beside numlstm, the peer may use another interpreter), ``cuda`` (the CUDA
    version CuPy or Numba report for a usable GPU backend, else None), ``backends``
    (name -> {"available", "reason", "device"}), ``blas`` (each BLAS library loaded:
    file, version and the kernel architecture it runs, from threadpoolctl), ``blas_env``
    (``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` when set: they pin OpenBLAS to other kernels
    than it would pick, which changes every GEMM's speed) and ``cpu_blas`` (what
    :func:`numlstm.cpu_blas_info` resolves to).
    """
    import numlstm
    physical = None
    try:
        import psutil
        physical = psutil.cpu_count(logical=False)
    except ImportError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {"numlstm": numlstm.__version__, "numpy": np.__version__}
    for dist in ("scipy", "numba", "numba-cuda", "torch", "threadpoolctl"):
        versions[dist] = _version(dist)
    versions["cupy"] = next((v for v in (_version("cupy-cuda13x"), _version("cupy-cuda12x"),
                                          _version("cupy")) if v), None)
    backends = {}
    cuda_version = None
    for name, status in available_backends().items():
        entry = {"available": status.available, "reason": status.reason, "device": None}
        if status.available:
            try:
                backend = get_backend(name)
                entry["device"] = backend.describe()
                if cuda_version is None and name in ("cuda", "cupy"):
                    cuda_version = _cuda_version(name)
            except Exception as error:      # a probe said yes but construction failed
                entry.update(available=False, reason=f"{type(error).__name__}: {error}")
        backends[name] = entry
    return {
        "cpu": _cpu_model(), "logical_cores": os.cpu_count(), "physical_cores": physical,
        "usable_cores": usable, "platform": platform.platform(),
        "python": platform.python_version(), "versions": versions, "cuda": cuda_version,
        "backends": backends, "blas": _blas_libraries(),
        "blas_env": {name: os.environ[name] for name in ("OPENBLAS_CORETYPE",
                                                          "OPENBLAS_L2_SIZE")
                     if name in os.environ},
        "cpu_blas": numlstm.cpu_blas_info(),
    }


def _blas_libraries() -> list:
    """``[{"file", "version", "architecture"}]`` of the BLAS libraries loaded in this process
    (SciPy's, which Numba's ``np.dot`` calls, is loaded first)."""
    try:
        import scipy.linalg  # noqa: F401
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"file": os.path.basename(entry.get("filepath", "")),
             "version": entry.get("version"), "architecture": entry.get("architecture")}
            for entry in threadpool_info() if entry.get("user_api") == "blas"]


def matmul_peak(size: int = 1024, threads: Sequence[int | None] = (1, None), *,
                dtype="float32", repeats: int = 5) -> dict[str, float]:
    """GEMM throughput of NumPy's BLAS in this process, GFLOP/s (``2·n³`` per product).

    For each entry of ``threads`` (None: every usable core), the best of ``repeats`` products of
    two ``size × size`` matrices after one warm-up. Keys are the thread counts as strings.
    """
    size = V.check_positive_int(size, "size")
    dtype = V.check_float_dtype(dtype)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty((size, size), dtype)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    peaks = {}
    for count in threads:
        count = usable if count is None else count
        with thread_limit(count):
            np.matmul(a, b, out=out)
            best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
        peaks[str(count)] = 2 * size ** 3 / best / 1e9
    return peaks


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


# -- the torch peer -----------------------------------------------------------------------------

@dataclass
class PeerResult:
    """What the torch peer returned.

    Attributes
    ----------
    available : bool
        False when torch could not run (``note`` says why).
    note : str
    timing : Timing or None
    arrays : dict of str to np.ndarray
        torch's ``outputs``, ``h`` and ``c`` (top layer; numlstm layout) and, in training mode,
        ``d_x``: for a parity check against numlstm.
    versions : dict
        torch's version and thread count as the child saw them.
    """

    available: bool
    note: str = ""
    timing: Timing | None = None
    arrays: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)


def torch_peer_python(python: str | None = None) -> str:
    """The interpreter that runs the peer: ``python``, else ``$NUMLSTM_PEER_PYTHON``, else this
    one."""
    return python or os.environ.get(PEER_PYTHON_ENV) or sys.executable


#: The peers :func:`run_peer` can time: torch's own LSTM, and the same LSTM exported to ONNX
#: and run by ONNX Runtime (inference only).
PEERS = ("torch", "ort")
_PEER_LABELS = {"torch": "the torch peer", "ort": "the ONNX Runtime peer"}


def run_torch_peer(problem: Problem, mode: str = "forward", **options) -> PeerResult:
    """:func:`run_peer` with ``runtime="torch"``."""
    return run_peer(problem, mode, runtime="torch", **options)


def run_peer(problem: Problem, mode: str = "forward", *, runtime: str = "torch",
             repeats: int = 10, warmup: int = 2, threads: int | None = None,
             python: str | None = None, timeout: float = 600.0) -> PeerResult:
    """Time ``torch.nn.LSTM`` (``batch_first=True``, ``num_layers`` = the stack's layers) with
    ``problem``'s weights in a child process -- or, with ``runtime="ort"``, that LSTM exported
    by torch's ONNX exporter and run in ONNX Runtime (``intra_op_num_threads = threads``;
    forward only: ``mode="train"`` returns an unavailable result saying so).

    The weights are converted with :func:`numlstm.convert.to_torch` and written, with the
    input and upstream gradient, to a temporary ``.npz``; the child
    (:mod:`numlstm.peers.torch_lstm`, run by file path so the interpreter needs only torch and
    NumPy) sets ``torch.set_num_threads(threads)`` (and ``OMP_NUM_THREADS``), times the same
    way as :func:`time_backend` (training: ``outputs.backward(grad_outputs)``; forward under
    ``torch.inference_mode()``), and writes a JSON result plus its outputs. Masks, reverse and
    other activations than tanh/sigmoid are refused (``ValueError``): torch.nn.LSTM has no
    such options.

    Never raises for a missing torch, a crashing child or a timeout: returns
    ``PeerResult(available=False, note=...)`` instead.
    """
    from .convert import to_torch
    V.check_name(mode, "mode", MODES)
    V.check_name(runtime, "runtime", PEERS)
    label = _PEER_LABELS[runtime]
    if runtime == "ort" and mode == "train":
        return PeerResult(False, "ONNX Runtime is an inference runtime: no training time")
    if problem.mask is not None or problem.reverse or (
            problem.activation, problem.recurrent_activation) != ("tanh", "sigmoid"):
        raise ValueError("the torch peer times unmasked forward-direction sequences with tanh "
                         "and sigmoid only (torch.nn.LSTM's one form); got a problem with a "
                         "mask, reverse=True or other activations")
    interpreter = torch_peer_python(python)
    with tempfile.TemporaryDirectory(prefix="numlstm-peer-") as folder:
        folder = Path(folder)
        arrays = {"x": problem.x, "grad_outputs": problem.grad_outputs}
        for index, layer in enumerate(problem.weights):
            arrays.update(to_torch(*layer, layer=index))
        np.savez(folder / "weights.npz", **arrays)
        settings = {"mode": mode, "repeats": repeats, "warmup": warmup, "threads": threads,
                    "layers": problem.shape.layers, "runtime": runtime}
        (folder / "settings.json").write_text(json.dumps(settings))
        env = dict(os.environ)
        if threads is not None:
            for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[variable] = str(threads)
        command = [interpreter, str(PEER_SCRIPT), "--in", str(folder / "weights.npz"),
                   "--settings", str(folder / "settings.json"),
                   "--out", str(folder / "result.json")]
        try:
            completed = subprocess.run(command, capture_output=True, text=True, env=env,
                                       timeout=timeout)
        except FileNotFoundError:
            return PeerResult(False, f"the peer interpreter {interpreter!r} was not found")
        except subprocess.TimeoutExpired:
            return PeerResult(False, f"{label} did not finish within {timeout:.0f} s")
        if completed.returncode == 3:       # the child's code for "torch is not importable"
            return PeerResult(False, f"torch is not installed for {interpreter} "
                              f"(use --peer-python or ${PEER_PYTHON_ENV} to name an "
                              "interpreter that has it)")
        if completed.returncode == 4:       # ... and for "onnxruntime is not importable"
            return PeerResult(False, f"onnxruntime (and onnx) are not installed for "
                              f"{interpreter}")
        if completed.returncode != 0 or not (folder / "result.json").exists():
            last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            return PeerResult(False, f"{label} failed (exit {completed.returncode}): "
                              f"{last}")
        data = json.loads((folder / "result.json").read_text())
        with np.load(folder / "result_arrays.npz") as loaded:
            outputs = {name: loaded[name] for name in loaded.files}
    return PeerResult(True, "", Timing.from_dict(data["timing"]), outputs,
                      data.get("versions", {}))


def peer_parity(peer: PeerResult, reference: dict) -> dict:
    """Max absolute difference of the peer's arrays from the numlstm reference's (same dtype).

    ``reference`` holds ``outputs``, ``h``, ``c`` (the reference in the peer's dtype) and
    optionally ``d_x`` (best from a float64 reference run). Returns ``{"passed", "max_abs_diff",
    "rel_norm_diff", "failures"}``: float32 peers get ``atol = rtol = 1e-5`` on outputs and
    final states and a relative norm ``≤ 1e-5`` on ``d_x``; float64 peers ``1e-10`` scaled by
    ``max(1, max|reference|)`` on everything.
    """
    diffs, rel, failures = {}, {}, []
    for name, value in peer.arrays.items():
        key = name if name in reference else None
        if key is None:
            continue
        expected = reference[key]
        diffs[name] = _max_abs(value, expected)
        if value.dtype == np.float64:
            ok = diffs[name] <= 1e-10 * max(1.0, float(np.abs(expected).max(initial=0.0)))
        elif _is_forward(name):
            ok = value.shape == expected.shape and bool(np.all(
                np.abs(value.astype(np.float64) - expected) <= 1e-5 + 1e-5 * np.abs(expected)))
        else:
            rel[name] = _relative_norm(value, expected)
            ok = rel[name] <= 1e-5
        if not ok:
            failures.append(name)
    return {"passed": not failures, "max_abs_diff": diffs, "rel_norm_diff": rel,
            "failures": failures}


# -- the whole benchmark ------------------------------------------------------------------------

def _top_layer_view(named: dict, layers: int) -> dict:
    """The reference's arrays under the peer's names (top layer's final states)."""
    tag = f"[{layers - 1}]" if layers > 1 else ""
    return {"outputs": named["outputs"], "h": named[f"h{tag}"], "c": named[f"c{tag}"],
            "d_x": named["d_x"]}


def bench(shape: Shape, *, backends: Sequence[str] | None = None, mode: str = "forward",
          dtype="float32", repeats: int = 10, warmup: int = 2, threads: int | None = None,
          peer: str | None = None, peer_python: str | None = None, config: str | None = None,
          peak: bool = True, seed: int = 0,
          progress: Callable[[str], None] | None = None) -> dict:
    """Check, then time, every requested backend on ``shape``; the report as a dict.

    ``backends`` None means every usable backend; a named backend that is not usable gets a
    result with status ``"unavailable"`` and its reason. A backend that fails
    :func:`check_parity` is not timed (status ``"check_failed"``); the ``numpy`` reference
    itself is timed without a check (its ``parity`` is None). ``peer="torch"`` adds the
    torch peer, ``peer="ort"`` the ONNX Runtime peer (:func:`run_peer`; status
    ``"unavailable"`` with a note when it cannot run, e.g. ONNX Runtime in training mode).
    ``progress`` is
    called with a short line before each stage. See the module docstring for the schema.
    """
    V.check_name(mode, "mode", MODES)
    dtype = V.check_float_dtype(dtype)
    if peer is not None:
        V.check_name(peer, "peer", PEERS)
    statuses = available_backends()
    if backends is None:
        backends = [name for name in BACKEND_NAMES if statuses[name].available]
    else:
        backends = [V.check_name(name, "backend", BACKEND_NAMES) for name in backends]
    say = progress or (lambda line: None)
    problem = make_problem(shape, dtype, seed=seed)
    say("running the numpy reference")
    reference = _run_all("numpy", problem)
    reference64 = None if dtype == np.float64 else _run_all("numpy", problem.astype(np.float64))
    results = []
    for name in backends:
        entry = {"name": name, "kind": "backend", "status": "ok", "note": "", "parity": None,
                 "timing": None, "gflops": None, "ratio_to_fastest": None,
                 "ratio_to_peer": None}
        results.append(entry)
        if not statuses[name].available:
            entry.update(status="unavailable", note=statuses[name].reason)
            continue
        try:
            if name == "numpy":     # the reference itself: nothing to compare
                say("timing the numpy reference")
                entry["timing"] = time_backend(name, problem, mode, repeats=repeats,
                                               warmup=warmup, threads=threads).to_dict()
                continue
            say(f"checking {name} against the reference")
            with thread_limit(threads):
                parity = check_parity(name, problem, reference=reference,
                                      reference64=reference64)
            entry["parity"] = parity.to_dict()
            if not parity.passed:
                entry.update(status="check_failed", note="disagrees with the reference on "
                             + ", ".join(parity.failures) + "; not timed")
                continue
            say(f"timing {name} ({mode})")
            entry["timing"] = time_backend(name, problem, mode, repeats=repeats,
                                           warmup=warmup, threads=threads).to_dict()
        except Exception as error:  # a backend crash is reported, the others still run
            entry.update(status="error", note=f"{type(error).__name__}: {error}")
    peer_entry = None
    if peer is not None:
        say("timing torch.nn.LSTM in a child process" if peer == "torch" else
            "timing ONNX Runtime (torch's LSTM exported to ONNX) in a child process")
        peer_entry = {"name": peer, "kind": "peer", "status": "ok", "note": "",
                      "parity": None, "timing": None, "gflops": None,
                      "ratio_to_fastest": None, "ratio_to_peer": None, "versions": {}}
        result = run_peer(problem, mode, runtime=peer, repeats=repeats, warmup=warmup,
                          threads=threads, python=peer_python)
        if not result.available:
            peer_entry.update(status="unavailable", note=result.note)
        else:
            peer_entry["timing"] = result.timing.to_dict()
            peer_entry["versions"] = result.versions
            view = _top_layer_view(reference, shape.layers)
            if reference64 is not None:     # float32 gradients are judged against float64
                view["d_x"] = reference64["d_x"]
            parity = peer_parity(result, view)
            peer_entry["parity"] = parity
            if not parity["passed"]:
                peer_entry["note"] = (f"{peer}'s results differ from the reference on "
                                      + ", ".join(parity["failures"]))
        results.append(peer_entry)
    flops = shape.flops(mode)
    timed = [r for r in results if r["timing"] is not None]
    if timed:
        fastest = min(r["timing"]["median_ms"] for r in timed)
        peer_ms = peer_entry["timing"]["median_ms"] if peer_entry and peer_entry["timing"] \
            else None
        for entry in timed:
            median = entry["timing"]["median_ms"]
            entry["gflops"] = flops / (median * 1e-3) / 1e9 if median > 0 else None
            entry["ratio_to_fastest"] = median / fastest if fastest > 0 else None
            entry["ratio_to_peer"] = median / peer_ms if peer_ms else None
    peaks = None
    if peak:
        say("measuring the matmul peak")
        peaks = matmul_peak(threads=(1, threads) if threads not in (None, 1) else (1, None))
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {"config": config, "shape": asdict(shape), "mode": mode,
                     "dtype": np.dtype(dtype).name, "repeats": repeats, "warmup": warmup,
                     "threads": threads, "flops": flops},
        "matmul_peak_gflops": peaks,
        "results": results,
    }


def load_report(path) -> dict:
    """Read a report written by ``numlstm bench --json`` (checks the schema tag)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a numlstm bench report (schema {SCHEMA!r})")
    return data


def _json_default(value: Any):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def dump_report(report: dict, path) -> Path:
    """Write ``report`` as indented JSON (infinities as strings, so any JSON reader copes)."""
    def clean(value):
        if isinstance(value, float) and not np.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value
    path = Path(path)
    path.write_text(json.dumps(clean(report), indent=2, default=_json_default) + "\n",
                    encoding="utf-8")
    return path
