"""The benchmark harness: check a backend against the reference, then time it fairly.

``numlstm bench``, ``numlstm check``, the scripts in ``benchmarks/`` and the test suite's
parity tests all use this package, so every published number and every parity verdict comes
from the same code. The rules it follows (docs/numerics.md, docs/performance.md):

* **Check before timing.** :func:`check_parity` runs the same inputs through the ``numpy``
  reference and the backend and compares outputs, final states and every gradient, each judged
  by :func:`within_tolerance`. A backend that disagrees is not timed.
* **Time fairly.** :func:`time_backend` moves the inputs into the backend's memory once, times
  the first call apart from the steady state, synchronises the device before reading the
  clock, and reports the median, min and max of ``repeats`` calls, under :func:`thread_limit`.
* **Peers run in their own process** (:func:`run_peer`): torch in the process that times Numba
  made Numba's threaded timings erratic.

Modules: :mod:`~numlstm.bench.problems` (shapes, FLOPs, :class:`Problem`, running a stack),
:mod:`~numlstm.bench.parity` (the tolerances), :mod:`~numlstm.bench.timing`,
:mod:`~numlstm.bench.machine`, :mod:`~numlstm.bench.peers`, :mod:`~numlstm.bench.report`.

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

from .machine import blas_libraries, cpu_model, machine_info, matmul_peak, package_version
from .parity import (FLOAT32_ATOL, FLOAT32_GRADIENT_REL_NORM, FLOAT32_RTOL, FLOAT64_ATOL,
                     TOLERANCES, Agreement, ParityResult, check_parity, max_abs_difference,
                     peer_parity, relative_norm_error, within_tolerance)
from .peers import (PEER_PYTHON_ENV, PEER_SCRIPT, PEERS, PeerResult, run_peer, run_torch_peer,
                    torch_peer_python)
from .problems import (CONFIGS, ENGINE_VARIANTS, MODES, Problem, Shape, backend_arrays,
                       backend_scope, is_gradient, lstm_flops, make_problem, run_kernels,
                       stack_backward, stack_forward, top_layer_view)
from .report import SCHEMA, bench, dump_report, load_report
from .timing import Timing, elapsed_seconds, thread_limit, time_backend

__all__ = [
    # problems
    "CONFIGS", "ENGINE_VARIANTS", "MODES", "Shape", "Problem", "lstm_flops", "make_problem",
    "backend_scope", "backend_arrays", "stack_forward", "stack_backward", "run_kernels",
    "top_layer_view", "is_gradient",
    # parity
    "FLOAT64_ATOL", "FLOAT32_ATOL", "FLOAT32_RTOL", "FLOAT32_GRADIENT_REL_NORM", "TOLERANCES",
    "Agreement", "ParityResult", "within_tolerance", "max_abs_difference",
    "relative_norm_error", "check_parity", "peer_parity",
    # timing
    "Timing", "thread_limit", "time_backend", "elapsed_seconds",
    # machine
    "machine_info", "matmul_peak", "cpu_model", "blas_libraries", "package_version",
    # peers
    "PEERS", "PEER_SCRIPT", "PEER_PYTHON_ENV", "PeerResult", "run_peer", "run_torch_peer",
    "torch_peer_python",
    # report
    "SCHEMA", "bench", "load_report", "dump_report",
]
