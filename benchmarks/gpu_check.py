"""One robust run that checks, then times, the GPU backends (``cuda``, ``cupy``) against
``torch.nn.LSTM`` on cuDNN, and ends with a verdict.

    python benchmarks/gpu_check.py --no-install --deadline-s 780 --out gpu-results
    python benchmarks/gpu_check.py --simulate --deadline-s 60 --out sim-results   # no GPU

Every result is written the moment it exists, as one JSON line in ``OUT/results.jsonl``
(flushed and fsynced), so a run that is cut short, crashes or hangs keeps everything it had
measured. The sections, in order (most valuable first, so that a short device slot still gives
a verdict):

1. ``preflight`` (~20 s): versions and the numba-cuda compatibility check, libcudadevrt and NVVM
   found, a CuPy kernel compiles and runs, torch sees cuDNN, the device's SM count and opt-in
   shared memory per block.
2. ``smoke``: the persistent forward and backward across several blocks against the
   ``numpy`` reference.
3. ``parity``: a matrix against the reference -- both ``cuda`` forward paths and ``cupy``,
   float32 and float64, masks, reverse, recurrent dropout -- forward and backward.
4. ``cudnn``: ``torch.nn.LSTM`` on cuDNN (float32, TF32 off unless ``--torch-tf32``) at
   configurations a-e and the persistent shapes, in a child process.
5. ``forward``: configurations a-d, forward (inference); every variant is checked against the
   reference on the very problem it is timed on first, and not timed if it disagrees. The
   ``cuda`` rows also give the host time per timestep: the time for the call to return
   (enqueue) and with the device synchronised.
6. ``train``: configurations a-d, forward + backward.
7. ``persistent``: batch 1 and 8 x 256 and 512 units, forward and training, the persistent
   path and its per-step twin.
8. ``tests``: the GPU part of the test suite with pytest, given the time that is left.
9. ``e``: configuration e (two stacked layers), forward and training.
10. ``model``: ``Sequential.predict`` of two stacked LSTMs at configuration b's sizes over
    several batches, on each GPU backend, with the weights kept on the device for the call
    (as numlstm runs it) and copied per batch (``keep_weights_resident`` switched off):
    both times, the weight copies each made, and agreement with the ``numpy`` reference.

Robustness: the sections run in a worker child process; the parent watches the result file and
kills the worker when a section overruns its share of the time or the whole run reaches
``--deadline-s``, records that, and starts a fresh worker at the next section. Inside a
section every variant runs in its own try/except and a failure is recorded with its traceback.
Every subprocess has a timeout. ``--no-install`` installs nothing (never pip on a device
machine); without it, missing GPU packages are pip-installed first. The last line is the
``verdict``: the goals with the measured ratio (cuDNN time / ours; above 1 is faster than
cuDNN), and the count of failures, timeouts and sections skipped for want of time.

``--simulate`` runs everything in Numba's CUDA simulator at tiny sizes (CuPy and torch are not
used): it proves the script, not the GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "numlstm.gpu_check/1"
RESULTS_FILE = "results.jsonl"

#: The sections in run order, with the most seconds each may take on a device (the deadline
#: caps them too). ``tests`` takes whatever is left, less the reserve for ``e``.
SECTIONS = {"preflight": 60, "smoke": 90, "parity": 150, "cudnn": 120, "forward": 150,
            "train": 180, "persistent": 150, "tests": None, "e": 90, "model": 60}
#: Seconds kept back for ``e`` and ``model`` when the test suite runs.
E_RESERVE_S = 150
#: Batches ``model``'s predict runs over.
MODEL_BATCHES = 8
#: The goals of the issue: (configuration or shape group, mode, variant, lowest ratio).
GOALS = [
    ("d", "forward", "cuda", 0.8), ("d", "forward", "cupy", 0.8),
    ("persistent", "forward", "cuda persistent", 1.0),
    ("a", "forward", "cuda persistent", 1.0),
    ("a-d", "train", "cuda", 0.5), ("a-d", "train", "cupy", 0.5),
]
#: Persistent shapes: batch x units (timesteps 100, features = units).
PERSISTENT_SHAPES = [(1, 256), (1, 512), (8, 256), (8, 512)]

TORCH_CHILD = r"""
import json, statistics, sys, time
settings = json.loads(sys.argv[1])
try:
    import torch
except Exception as error:
    print(json.dumps({"error": f"torch is not importable ({error})"})); sys.exit(0)
if not torch.cuda.is_available():
    print(json.dumps({"error": "torch sees no CUDA device"})); sys.exit(0)
torch.backends.cudnn.enabled = True
# numlstm computes in full float32; so does cuDNN unless TF32 tensor cores are allowed.
torch.backends.cudnn.allow_tf32 = settings["tf32"]
torch.backends.cuda.matmul.allow_tf32 = settings["tf32"]
device = torch.device("cuda")
print(json.dumps({"torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
                  "tf32": settings["tf32"], "device": torch.cuda.get_device_name(0)}),
      flush=True)
for name, (b, t, d, h, layers) in settings["configs"].items():
    lstm = torch.nn.LSTM(d, h, num_layers=layers, batch_first=True).to(device)
    x = torch.randn(b, t, d, device=device, requires_grad=True)
    grad = torch.randn(b, t, h, device=device)
    def forward():
        with torch.inference_mode():
            lstm(x)
    def train():
        out, _ = lstm(x)
        out.backward(grad)
    for mode, step in (("forward", forward), ("train", train)):
        for _ in range(settings["warmup"] + 1):
            step()
        torch.cuda.synchronize()
        times = []
        for _ in range(settings["repeats"]):
            start = time.perf_counter()
            step()
            torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1e3)
        print(json.dumps({"config": name, "mode": mode, "median_ms": statistics.median(times),
                          "times_ms": times}), flush=True)
"""

TORCH_PREFLIGHT = r"""
import json
import torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                  "cudnn_available": torch.backends.cudnn.is_available(),
                  "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None}))
"""


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulate", action="store_true",
                        help="run in Numba's CUDA simulator at tiny sizes (no GPU needed)")
    parser.add_argument("--no-install", action="store_true", help="install nothing")
    parser.add_argument("--deadline-s", type=float, default=780.0,
                        help="stop everything after this many seconds (default 780)")
    parser.add_argument("--out", default="gpu-check-results",
                        help="folder for results.jsonl (created; default gpu-check-results)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="comma-separated sections to run (default: all, in order)")
    parser.add_argument("--torch-tf32", action="store_true",
                        help="let cuDNN use TF32 tensor cores (torch's default; off here so "
                             "that both sides compute in full float32)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per measurement (default 10; 1 with --simulate)")
    # Internal: the parent runs the sections in a worker process.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--deadline-at", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections.split(",") if s not in SECTIONS]
    if unknown:
        parser.error(f"--sections: unknown {unknown}; choose from {list(SECTIONS)}")
    if args.deadline_s <= 0:
        parser.error(f"--deadline-s must be positive; got {args.deadline_s}")
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    return args


# -- the result file --------------------------------------------------------------------------

class Results:
    """Appends one JSON object per line to ``OUT/results.jsonl``, flushed and fsynced at once
    (the parent and the worker append to the same file, one whole line per write)."""

    def __init__(self, folder: Path, started: float):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / RESULTS_FILE
        self.started = started

    def write(self, kind: str, **fields) -> dict:
        record = {"schema": SCHEMA, "kind": kind,
                  "t_s": round(time.time() - self.started, 3), **fields}
        line = json.dumps(record, default=_json_default) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:    # a line cut by a kill: keep the rest
                continue
        return records


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _error_fields(error: BaseException) -> dict:
    return {"ok": False, "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc()}


@contextlib.contextmanager
def _backend_settings(backend, settings: dict):
    """The ``cuda`` backend's options (``persistent``, ``gemm``: ``CudaBackend.options``) for
    a block; nothing to set (and nothing done) for an empty ``settings``."""
    if not settings:
        yield
        return
    with backend.options(**settings):
        yield


def _how_it_ran(forward, backward=None) -> dict:
    """The ``details`` a ``ForwardResult`` (and the backward's ``Gradients``) carry: which
    path and GEMM the call ran, and why (the ``cuda`` backend reports them; others: None)."""
    ran = {"path": forward.details.get("path"), "gemm": forward.details.get("gemm"),
           "path_note": forward.details.get("path_note")}
    if backward is not None:
        ran.update(backward_path=backward.details.get("path"),
                   backward_path_note=backward.details.get("path_note"))
    return ran


def _run_child(command, timeout_s: float, **kwargs) -> tuple[int | None, str, str]:
    """``(returncode, stdout, stderr)``; ``returncode`` None when the child timed out (then it
    is killed with its process group, and what it printed so far is returned)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, **kwargs)
    try:
        out, err = process.communicate(timeout=max(1.0, timeout_s))
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        _kill_group(process)
        out, err = process.communicate()
        return None, out, err


def _kill_group(process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


# -- the worker: the sections -----------------------------------------------------------------

class Worker:
    """Runs sections in this process and writes their results."""

    def __init__(self, args, results: Results):
        self.args = args
        self.results = results
        self.simulate = args.simulate
        self.deadline_at = args.deadline_at or (time.time() + args.deadline_s)
        self.repeats = args.repeats or (1 if self.simulate else 10)
        self.warmup = 0 if self.simulate else 2
        import numlstm
        from numlstm import bench
        from numlstm.backends import cuda_backend
        self.numlstm, self.bench, self.cuda_backend = numlstm, bench, cuda_backend
        if self.simulate:
            # The simulator runs every GPU thread as a Python thread: small blocks.
            cuda_backend.THREADS_PER_BLOCK = 16
        statuses = numlstm.available_backends()
        self.backends = [name for name in ("cuda", "cupy") if statuses[name].available]
        self.unusable = {name: statuses[name].reason for name in ("cuda", "cupy")
                         if not statuses[name].available}

    def time_left(self) -> float:
        return self.deadline_at - time.time()

    def variant(self, section: str, name: str, function, **fields) -> dict | None:
        """Run one variant: its result, or its error with the traceback, as one line."""
        if self.time_left() <= 1:
            return self.results.write("skipped", section=section, name=name,
                                      reason="deadline reached", **fields)
        started = time.perf_counter()
        try:
            outcome = function() or {}
            return self.results.write("result", section=section, name=name,
                                      elapsed_s=round(time.perf_counter() - started, 3),
                                      **fields, **outcome)
        except Exception as error:
            return self.results.write("result", section=section, name=name,
                                      elapsed_s=round(time.perf_counter() - started, 3),
                                      **fields, **_error_fields(error))

    def shape(self, batch, timesteps, features, units, layers=1):
        if self.simulate:
            batch, timesteps = min(batch, 2), min(timesteps, 3)
            features, units = min(features, 4), min(units, 5)
        return self.bench.Shape(batch, timesteps, features, units, layers)

    def configs(self, names):
        return {name: self.shape(*vars(self.bench.CONFIGS[name]).values()) for name in names}

    # -- preflight ------------------------------------------------------------------------------
    def section_preflight(self):
        import platform

        def versions():
            found = {"python": platform.python_version()}
            for distribution in ("numpy", "numba", "numba-cuda", "cupy-cuda12x",
                                 "cupy-cuda13x", "torch", "onnxruntime"):
                found[distribution] = self.bench.package_version(distribution)
            problem = self.cuda_backend.compatibility_problem()
            return {"ok": problem is None, "versions": found,
                    "numba_cuda_compatibility": problem or "compatible",
                    "usable": self.backends, "unusable": self.unusable}
        self.variant("preflight", "versions", versions)

        def device():
            if self.simulate:
                return {"ok": True, "note": "simulator: no device"}
            from numba import cuda
            gpu = cuda.get_current_device()
            name = gpu.name.decode() if isinstance(gpu.name, bytes) else gpu.name
            return {"ok": True, "device": name, "compute_capability": gpu.compute_capability,
                    "sm_count": gpu.MULTIPROCESSOR_COUNT,
                    "shared_per_block": gpu.MAX_SHARED_MEMORY_PER_BLOCK,
                    "shared_per_block_optin": gpu.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                    "cooperative_launch": bool(gpu.COOPERATIVE_LAUNCH)}
        self.variant("preflight", "device", device)

        def toolchain():
            if self.simulate:
                return {"ok": True, "note": "simulator: no NVVM or libcudadevrt needed"}
            from numba.cuda.cudadrv import libs, nvvm
            found = {}
            try:    # the grid-wide barrier of the persistent kernels links libcudadevrt
                devrt = libs.get_cudalib("cudadevrt", static=True)
                libs.check_static_lib(devrt)
                found["libcudadevrt"] = str(devrt)
            except Exception as error:
                found["libcudadevrt_error"] = f"{type(error).__name__}: {error}"
            try:
                found["nvvm"] = str(libs.get_cudalib("nvvm"))
                libs.open_cudalib("nvvm")
            except Exception as error:
                found["nvvm_error"] = f"{type(error).__name__}: {error}"
            ok = "libcudadevrt" in found and "nvvm_error" not in found and nvvm.is_available()
            return {"ok": ok, **found}
        self.variant("preflight", "toolchain", toolchain)

        def cupy_kernel():
            if "cupy" not in self.backends:
                return {"ok": None, "note": self.unusable.get("cupy", "simulator")}
            import cupy
            kernel = cupy.RawKernel(r'extern "C" __global__ void twice(float* a, int n) {'
                                    r' int i = blockIdx.x * blockDim.x + threadIdx.x;'
                                    r' if (i < n) a[i] *= 2.0f; }', "twice")
            values = cupy.arange(256, dtype=cupy.float32)
            kernel((1,), (256,), (values, cupy.int32(256)))
            ok = bool(cupy.allclose(values, 2 * cupy.arange(256, dtype=cupy.float32)))
            return {"ok": ok, "cupy": cupy.__version__}
        self.variant("preflight", "cupy kernel", cupy_kernel)

        def torch_cudnn():
            if self.simulate:
                return {"ok": None, "note": "simulator: torch is not used"}
            code, out, err = _run_child([sys.executable, "-c", TORCH_PREFLIGHT],
                                        min(60.0, self.time_left()))
            if code is None:
                return {"ok": False, "error": "torch preflight timed out"}
            if code:
                return {"ok": False, "error": (err.strip().splitlines() or ["?"])[-1]}
            found = json.loads(out.strip().splitlines()[-1])
            return {"ok": bool(found["cuda"] and found["cudnn_available"]), **found}
        self.variant("preflight", "torch cudnn", torch_cudnn)

    # -- correctness ----------------------------------------------------------------------------
    def _compare(self, backend_name, dtype, *, batch, timesteps, features, units, mask,
                 reverse, dropout, settings=None):
        """Forward + backward of ``backend_name`` against the ``numpy`` reference, every array
        judged by the harness's ``within_tolerance`` (docs/numerics.md)."""
        import numpy as np
        rng = np.random.default_rng(batch * 1000 + units)
        arrays = {
            "x": rng.standard_normal((batch, timesteps, features)),
            "kernel": 0.5 * rng.standard_normal((features, 4 * units)) / np.sqrt(features),
            "recurrent_kernel": 0.5 * rng.standard_normal((units, 4 * units)) / np.sqrt(units),
            "bias": 0.1 * rng.standard_normal(4 * units),
            "h0": 0.5 * rng.standard_normal((batch, units)),
            "c0": 0.5 * rng.standard_normal((batch, units)),
        }
        upstream = {"grad_outputs": rng.standard_normal((batch, timesteps, units)),
                    "grad_h": rng.standard_normal((batch, units)),
                    "grad_c": rng.standard_normal((batch, units))}
        mask_array = rng.random((batch, timesteps)) > 0.3 if mask else None
        if mask and batch > 1:
            mask_array[0] = False
        dropout_mask = (rng.random((batch, units)) > 0.3) / 0.7 if dropout else None

        def run(name, as_dtype):
            cast = {k: v.astype(as_dtype) for k, v in arrays.items()}
            functional = self.numlstm.functional
            forward = functional.lstm_forward(
                arrays["x"].astype(as_dtype), cast["kernel"], cast["recurrent_kernel"],
                cast["bias"], h0=cast["h0"], c0=cast["c0"], mask=mask_array, reverse=reverse,
                recurrent_dropout_mask=(None if dropout_mask is None
                                        else dropout_mask.astype(as_dtype)),
                return_cache=True, backend=name)
            grads = functional.lstm_backward(
                forward.cache, **{k: v.astype(as_dtype) for k, v in upstream.items()})
            to_host = self.numlstm.get_backend(name).to_numpy
            out = {"outputs": forward.outputs, "h": forward.h, "c": forward.c,
                   **{f"d_{n}": getattr(grads, n) for n in
                      ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0")}}
            return ({k: np.asarray(to_host(v), np.float64) for k, v in out.items()},
                    _how_it_ran(forward, grads))

        backend = self.numlstm.get_backend(backend_name)
        with _backend_settings(backend, settings or {}):
            result, ran = run(backend_name, dtype)
        reference, _ = run("numpy", dtype)
        reference64 = reference if dtype == "float64" else run("numpy", "float64")[0]
        failures, worst = [], {}
        for name, expected in reference.items():
            worst[name] = self.bench.max_abs_difference(result[name], expected)
            if dtype == "float32" and self.bench.is_gradient(name):
                expected = reference64[name]     # float32 gradients are judged against float64
            if not self.bench.within_tolerance(name, result[name], expected, dtype):
                failures.append(name)
        return {"ok": not failures, "failures": failures, "max_abs_diff": worst, **ran}

    def section_smoke(self):
        if "cuda" not in self.backends:
            self.results.write("skipped", section="smoke", name="persistent",
                               reason=self.unusable.get("cuda"))
            return
        # On a device several blocks must share 300 units (a grid-wide barrier); the simulator
        # runs one block (it cannot synchronise a grid).
        batch, timesteps, units = (2, 3, 3) if self.simulate else (4, 6, 300)
        for dtype in ("float32", "float64"):
            def smoke(dtype=dtype):
                outcome = self._compare("cuda", dtype, batch=batch, timesteps=timesteps,
                                        features=5, units=units, mask=True, reverse=False,
                                        dropout=True)
                note = f"{outcome['path_note']} | {outcome['backward_path_note']}"
                if (outcome["path"], outcome["backward_path"]) != ("persistent", "persistent"):
                    outcome.update(ok=False, error=f"a persistent kernel did not run: {note}")
                return {**outcome, "note": note}
            self.variant("smoke", f"cuda persistent {dtype}", smoke, dtype=dtype)

    def section_parity(self):
        if not self.backends:
            self.results.write("skipped", section="parity", name="every backend",
                               reason=f"no GPU backend is usable: {self.unusable}")
        # The cuda paths: persistent where it fits, per-step, and (on a GPU, where the GEMMs
        # go through cuBLAS when CuPy is installed) per-step with the tiled GEMM kernel.
        cuda_paths = [("cuda", {}), ("cuda per-step", {"persistent": "never"})]
        if not self.simulate:
            cuda_paths.append(("cuda per-step tiled", {"persistent": "never", "gemm": "tiled"}))
        cases = []
        for backend in self.backends:
            for dtype in ("float32", "float64"):
                for name, settings in (cuda_paths if backend == "cuda" else [(backend, {})]):
                    for mask, reverse, dropout in ((False, False, False), (True, True, False),
                                                   (True, False, True)):
                        cases.append((backend, name, settings, dtype, mask, reverse, dropout))
        batch_units = [(2, 5), (3, 4)] if self.simulate else [(4, 33), (64, 130)]
        for backend, name, settings, dtype, mask, reverse, dropout in cases:
            for batch, units in batch_units:
                label = (f"{name} {dtype} B{batch} H{units} mask={mask} reverse={reverse} "
                         f"dropout={dropout}")
                self.variant("parity", label, lambda: self._compare(
                    backend, dtype, batch=batch, timesteps=3 if self.simulate else 9,
                    features=3 if self.simulate else 17, units=units, mask=mask,
                    reverse=reverse, dropout=dropout, settings=settings),
                    backend=backend, dtype=dtype)

    # -- timing ---------------------------------------------------------------------------------
    def section_cudnn(self):
        shapes = {**self.configs("abcde"), **self.persistent_shapes()}
        if self.simulate:
            self.results.write("skipped", section="cudnn", name="torch",
                               reason="simulator: torch is not used")
            return
        settings = {"configs": {n: (s.batch, s.timesteps, s.features, s.units, s.layers)
                                for n, s in shapes.items()},
                    "repeats": self.repeats, "warmup": self.warmup, "tf32": self.args.torch_tf32}
        code, out, err = _run_child([sys.executable, "-c", TORCH_CHILD, json.dumps(settings)],
                                    self.time_left() - 5)
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for line in lines:
            if "config" in line:
                self.results.write("cudnn", section="cudnn", name=line["config"], ok=True,
                                   **line)
            else:
                self.results.write("cudnn-info", section="cudnn", name="torch",
                                   ok="error" not in line, **line)
        if code != 0:
            self.results.write("result", section="cudnn", name="torch child", ok=False,
                               error="timed out" if code is None else f"exit {code}",
                               stderr=err[-3000:])

    def persistent_shapes(self):
        return {f"B{b} H{h}": self.shape(b, 100, h, h) for b, h in PERSISTENT_SHAPES}

    def _variants(self, shape):
        found = []
        for backend in self.backends:
            if backend == "cuda" and shape.batch <= self.cuda_backend.PERSISTENT_MAX_BATCH:
                found += [("cuda persistent", "cuda", "auto"), ("cuda", "cuda", "never")]
            else:
                found.append((backend, backend, "auto"))
        return found

    def _time(self, section, config, shape, modes):
        if not self.backends:
            self.results.write("skipped", section=section, name=config,
                               reason=f"no GPU backend is usable: {self.unusable}")
            return
        problem = self.bench.make_problem(shape, "float32", seed=0)
        for label, backend_name, persistent in self._variants(shape):
            backend = self.numlstm.get_backend(backend_name)

            def checked_timing(mode):
                settings = {"persistent": persistent} if backend_name == "cuda" else {}
                with _backend_settings(backend, settings):
                    parity = self.bench.check_parity(backend_name, problem)
                    if not parity.passed:
                        return {"ok": False, "error": "disagrees with the reference: "
                                f"{parity.failures}", "max_abs_diff": parity.max_abs_diff}
                    timing = self.bench.time_backend(backend_name, problem, mode,
                                                     repeats=self.repeats, warmup=self.warmup)
                    outcome = {"ok": True, "median_ms": timing.median_ms,
                               "timing": timing.to_dict(),
                               "gflops": shape.flops(mode) / timing.median_ms / 1e6,
                               **self._how_the_timed_calls_ran(backend, problem, mode)}
                    if backend_name == "cuda" and mode == "forward":
                        outcome["host_per_step_us"] = self._host_time_per_step(backend,
                                                                               problem)
                        if outcome["path"] == "per-step":   # the step kernels' launches
                            outcome["host_per_step_us_plain_launches"] = \
                                self._host_time_per_step(backend, problem, prepared=False)
                    return outcome

            for mode in modes:
                self.variant(section, f"{config} {mode} {label}",
                             lambda: checked_timing(mode), config=config, mode=mode,
                             variant=label, shape=shape.describe())

    def _how_the_timed_calls_ran(self, backend, problem, mode) -> dict:
        """One more call of what was timed (the top layer's forward, and its backward in
        training), for the path and GEMM its results report."""
        arrays = self.bench.backend_arrays(backend, problem)
        results = self.bench.stack_forward(backend, arrays, return_cache=mode == "train")
        grads = (self.bench.stack_backward(backend, arrays, results) if mode == "train"
                 else [None])
        return _how_it_ran(results[-1], grads[-1])

    def _host_time_per_step(self, backend, problem, prepared=True) -> dict:
        """Microseconds per timestep for the forward call to return (``enqueue``: what the
        host spends launching) and with the device synchronised (``synchronised``);
        ``prepared=False`` switches the per-step kernels' prepared launches off."""
        arrays = self.bench.backend_arrays(backend, problem)
        backend.synchronize()
        enqueue, synced = [], []
        default = self.cuda_backend.PREPARED_LAUNCHES
        self.cuda_backend.PREPARED_LAUNCHES = prepared
        try:
            for _ in range(max(3, self.repeats)):
                start = time.perf_counter()
                self.bench.stack_forward(backend, arrays)
                returned = time.perf_counter()
                backend.synchronize()
                done = time.perf_counter()
                enqueue.append(returned - start)
                synced.append(done - start)
        finally:
            self.cuda_backend.PREPARED_LAUNCHES = default
        steps = problem.shape.timesteps * problem.shape.layers
        return {"enqueue": statistics.median(enqueue) / steps * 1e6,
                "synchronised": statistics.median(synced) / steps * 1e6}

    def section_forward(self):
        for config, shape in self.configs("abcd").items():
            self._time("forward", config, shape, ("forward",))

    def section_train(self):
        for config, shape in self.configs("abcd").items():
            self._time("train", config, shape, ("train",))

    def section_persistent(self):
        for config, shape in self.persistent_shapes().items():
            self._time("persistent", config, shape, ("forward", "train"))

    def section_e(self):
        for config, shape in self.configs("e").items():
            self._time("e", config, shape, ("forward", "train"))

    def section_model(self):
        import numpy as np
        shape = self.configs("b")["b"]
        batches = 2 if self.simulate else MODEL_BATCHES
        x = np.random.default_rng(0).normal(
            size=(batches * shape.batch, shape.timesteps, shape.features)).astype(np.float32)
        expected = self._stacked_model("numpy").predict(x, batch_size=shape.batch)
        for backend_name in self.backends:
            for resident in (True, False):
                how = "weights resident" if resident else "weights copied per batch"
                self.variant("model", f"predict {backend_name} {how}",
                             lambda: self._time_predict(backend_name, x, shape.batch,
                                                        resident, expected),
                             variant=backend_name, resident=resident, shape=shape.describe(),
                             batches=batches)

    def _stacked_model(self, backend_name):
        shape = self.configs("b")["b"]
        layers = self.numlstm.layers
        return self.numlstm.Sequential(
            [layers.Input((shape.timesteps, shape.features)),
             layers.LSTM(shape.units, return_sequences=True), layers.LSTM(shape.units),
             layers.Dense(1)], backend=backend_name, seed=0)

    def _time_predict(self, backend_name, x, batch_size, resident, expected) -> dict:
        import numpy as np
        model = self._stacked_model(backend_name)
        backend = self.numlstm.get_backend(backend_name)
        copies = getattr(backend, "_resident", None)
        if not resident:       # the instance attribute shadows the method for this variant
            backend.keep_weights_resident = lambda join=False: contextlib.nullcontext()
        try:
            got = model.predict(x, batch_size=batch_size)           # warm-up, and checked
            before = copies.uploads if copies is not None else None
            times = []
            for _ in range(self.repeats):
                backend.synchronize()
                start = time.perf_counter()
                model.predict(x, batch_size=batch_size)
                backend.synchronize()
                times.append(time.perf_counter() - start)
        finally:
            if not resident:
                del backend.keep_weights_resident
        difference = float(np.max(np.abs(got - expected)))
        uploads = None if before is None else (copies.uploads - before) / self.repeats
        return {"ok": difference <= 1e-4, "max_abs_diff_vs_reference": difference,
                "median_ms": statistics.median(times) * 1e3,
                "weight_copies_per_predict": uploads}

    def section_tests(self):
        # The simulator runs a small part only (the CI suite runs all of it anyway).
        if self.simulate:
            selection = ["tests/test_cuda_simulator.py", "-k", "lstm_step and new"]
        else:
            selection = ["tests/test_backend_parity.py", "tests/test_cuda_simulator.py",
                         "tests/test_cuda_float32_ir.py", "tests/test_cupy_backend.py",
                         "-k", "cuda or cupy"]
        budget = self.time_left() - (0 if self.simulate else E_RESERVE_S)
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                   *selection]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT), os.environ.get("PYTHONPATH", "")]))
        if budget < 10:
            self.results.write("skipped", section="tests", name="pytest",
                               reason="not enough time left")
            return
        code, out, err = _run_child(command, budget, cwd=ROOT, env=env)
        summary = (out.strip().splitlines() or ["no output"])[-1]
        self.results.write("result", section="tests", name="pytest", ok=code == 0,
                           returncode=code, timed_out=code is None, summary=summary,
                           command=" ".join(command[1:]), output_tail=(out + err)[-4000:])


def worker_main(args) -> int:
    results = Results(Path(args.out), float(os.environ.get("NUMLSTM_GPU_CHECK_STARTED", "0"))
                      or time.time())
    worker = Worker(args, results)
    for section in args.sections.split(","):
        results.write("section-start", section=section)
        try:
            getattr(worker, f"section_{section}")()
        except Exception as error:
            results.write("result", section=section, name="section", **_error_fields(error))
        results.write("section-end", section=section)
    return 0


# -- the parent: sections in workers, budgets, the verdict ------------------------------------

def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def install_missing(results: Results, timeout_s: float) -> None:
    """pip-install the GPU packages that are missing; report failures and carry on."""
    code, text, _ = _run_child(["nvidia-smi"], 20) if _which("nvidia-smi") else (1, "", "")
    major = 13 if "CUDA Version: 13" in (text or "") else 12
    wanted = []
    if _missing("numba_cuda"):
        wanted.append(f"numba-cuda[cu{major}]")
    if _missing("cupy"):
        wanted.append(f"cupy-cuda{major}x")
    for package in wanted:
        code, _, err = _run_child([sys.executable, "-m", "pip", "install", "-q", package],
                                  timeout_s)
        results.write("install", section="install", name=package, ok=code == 0,
                      error=None if code == 0 else (err.strip().splitlines() or ["timed out"])
                      [-1])


def _which(program: str) -> bool:
    return shutil.which(program) is not None


def run_sections(args, results: Results, started: float) -> None:
    """Run the chosen sections in worker processes, restarting after a crash or an overrun."""
    deadline_at = started + args.deadline_s
    pending = args.sections.split(",")
    # The simulator's shares shrink with the deadline, but never below a few seconds.
    scale = 1.0 if not args.simulate else args.deadline_s / 780
    minimum_share_s = 15.0 if args.simulate else 0.0
    while pending:
        if deadline_at - time.time() < 2:
            for section in pending:
                results.write("skipped", section=section, name="section",
                              reason="deadline reached before the section started")
            return
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--out",
                   args.out, "--sections", ",".join(pending), "--deadline-at", str(deadline_at),
                   "--deadline-s", str(args.deadline_s)]
        command += ["--simulate"] if args.simulate else []
        command += ["--torch-tf32"] if args.torch_tf32 else []
        command += ["--repeats", str(args.repeats)] if args.repeats else []
        env = dict(os.environ, NUMLSTM_GPU_CHECK_STARTED=str(started),
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        if args.simulate:
            env["NUMBA_ENABLE_CUDASIM"] = "1"
        known = len(results.read())
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env=env, start_new_session=True)
        current, current_since, finished = None, time.time(), []
        log_tail: list[str] = []

        def drain():
            for line in process.stdout:
                log_tail.append(line)
                del log_tail[:-200]
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        overrun = None
        while process.poll() is None:
            time.sleep(0.2)
            records = results.read()
            for record in records[known:]:
                if record["kind"] == "section-start":
                    current, current_since = record["section"], time.time()
                elif record["kind"] == "section-end":
                    finished.append(record["section"])
                    current = None
            known = len(records)
            budget = SECTIONS.get(current or "", None)
            share = max(minimum_share_s, budget * scale) if budget else None
            if current and share and time.time() - current_since > share:
                overrun = f"section {current!r} ran past its {share:.0f} s share"
            elif time.time() > deadline_at:
                overrun = "the deadline was reached"
            if overrun:
                _kill_group(process)
                process.wait()
                break
        reader.join(timeout=5)
        for record in results.read()[known:]:
            if record["kind"] == "section-end":
                finished.append(record["section"])
                current = None
            elif record["kind"] == "section-start":
                current = record["section"]
        done_now = [s for s in pending if s in finished]
        if current is not None:
            reason = overrun or f"the worker exited with code {process.returncode}"
            results.write("result", section=current, name="section", ok=False,
                          error=f"section cut short: {reason}", timed_out=bool(overrun),
                          output_tail="".join(log_tail)[-4000:])
            done_now.append(current)
        elif process.returncode and not overrun:
            results.write("result", section="worker", name="worker", ok=False,
                          error=f"the worker exited with code {process.returncode}",
                          output_tail="".join(log_tail)[-4000:])
            done_now = pending[:]       # nothing more can be learned by retrying
        pending = [s for s in pending if s not in done_now]


def verdict(records: list[dict]) -> dict:
    """The goals with the measured ratios (cuDNN time / ours), and what failed or was cut."""
    cudnn = {(r["name"], r["mode"]): r["median_ms"] for r in records if r["kind"] == "cudnn"}
    timings = [r for r in records if r["kind"] == "result" and r.get("ok")
               and "median_ms" in r and r.get("config") is not None]
    ratios = []
    for r in timings:
        if (r["config"], r["mode"]) in cudnn:
            ratios.append({"config": r["config"], "mode": r["mode"], "variant": r["variant"],
                           "ms": r["median_ms"],
                           "cudnn_ms": cudnn[(r["config"], r["mode"])],
                           "ratio": cudnn[(r["config"], r["mode"])] / r["median_ms"]})
    goals = []
    for where, mode, variant, target in GOALS:
        if where == "a-d":
            picked = [x for x in ratios if x["config"] in "abcd" and x["mode"] == mode
                      and x["variant"].split()[0] == variant]
        elif where == "persistent":
            picked = [x for x in ratios if x["config"].startswith("B") and x["mode"] == mode
                      and x["variant"] == variant]
        else:
            picked = [x for x in ratios if x["config"] == where and x["mode"] == mode
                      and x["variant"] == variant]
        worst = min((x["ratio"] for x in picked), default=None)
        goals.append({"where": where, "mode": mode, "variant": variant, "target": target,
                      "worst_ratio": worst,
                      "met": None if worst is None else worst >= target})
    # A section cut short by its time share is reported apart: on a device it may be a hang
    # (see its record's output), but it is not a wrong result.
    failed = [f"{r['section']}: {r.get('name')}" for r in records
              if r["kind"] == "result" and r.get("ok") is False and not r.get("timed_out")]
    return {"goals": goals, "ratios": ratios, "failed": failed,
            "timed_out": [r["section"] for r in records if r.get("timed_out")],
            "skipped": [f"{r['section']}: {r.get('name')}" for r in records
                        if r["kind"] == "skipped"],
            "parity_passed": sum(1 for r in records if r.get("section") == "parity"
                                 and r.get("ok") is True),
            "parity_failed": sum(1 for r in records if r.get("section") == "parity"
                                 and r.get("ok") is False)}


def print_table(records: list[dict], final: dict) -> None:
    print(f"{'section':<11}{'name':<58}{'ok':<6}detail")
    for r in records:
        if r["kind"] not in ("result", "skipped", "cudnn"):
            continue
        detail = r.get("error") or r.get("reason") or ""
        if "median_ms" in r:
            detail = f"{r['median_ms']:.3f} ms " + detail
        if "host_per_step_us" in r:
            host = r["host_per_step_us"]
            detail += (f" host/step {host['enqueue']:.1f} us enqueue, "
                       f"{host['synchronised']:.1f} us synced")
            plain = r.get("host_per_step_us_plain_launches")
            if plain:
                detail += f" (plain launches: {plain['enqueue']:.1f} us enqueue)"
        detail = " ".join(detail.split())
        ok = {True: "ok", False: "FAIL", None: "-"}[r.get("ok")]
        print(f"{r['section']:<11}{str(r.get('name'))[:57]:<58}{ok:<6}{detail[:120]}")
    print("\ngoals (cuDNN time / ours):")
    for goal in final["goals"]:
        worst = "not measured" if goal["worst_ratio"] is None else f"{goal['worst_ratio']:.2f}"
        print(f"  {goal['where']:<11}{goal['mode']:<8}{goal['variant']:<17}>= "
              f"{goal['target']:<5}{worst:>13}  {goal['met']}")
    print(f"failures: {len(final['failed'])}, sections cut: {final['timed_out']}, "
          f"skipped: {len(final['skipped'])}")


def main(argv=None) -> int:
    args = parse_arguments(argv)
    if args.worker:
        return worker_main(args)
    started = time.time()
    results = Results(Path(args.out), started)
    results.write("start", argv=sys.argv[1:] if argv is None else list(argv),
                  simulate=args.simulate, deadline_s=args.deadline_s,
                  sections=args.sections.split(","))
    if not args.simulate and not args.no_install:
        install_missing(results, timeout_s=min(300.0, args.deadline_s / 3))
    run_sections(args, results, started)
    records = results.read()
    final = verdict(records)
    results.write("verdict", ok=not final["failed"], **final)
    print_table(records, final)
    if args.simulate:
        print("\n(simulator: the times measure Python threads, not a GPU)")
    print(f"\nresults: {results.path}")
    return 1 if final["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
