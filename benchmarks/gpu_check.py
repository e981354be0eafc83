"""Check, then time, the GPU backends (``cuda``, ``cupy``) against ``torch.nn.LSTM`` on cuDNN.

    python benchmarks/gpu_check.py               # on a machine with an NVIDIA GPU
    python benchmarks/gpu_check.py --simulate    # anywhere: Numba's CUDA simulator, tiny sizes

What it does, in order:

1. **Install** what the GPU backends need and is missing (``numba-cuda[cu12]`` and
   ``cupy-cuda12x``, or the ``cu13`` / ``cuda13x`` ones when the driver is CUDA 13), with ``pip``. A failed install is reported and
   the backend is skipped; ``--no-install`` (implied by ``--simulate``) installs nothing.
2. **Parity**: runs the test suite's GPU tests with pytest (the whole parity suite on ``cuda``
   and ``cupy``, plus ``tests/test_cuda_simulator.py`` and ``tests/test_cupy_backend.py``);
   with ``--simulate``, a small part of it. ``--skip-tests`` skips this step.
3. **Timing**: for the five configurations of DESIGN §5 (a-e, from
   :data:`numlstm.benchmarking.CONFIGS`; shrunk to a few units with ``--simulate``), each
   backend is first checked against the ``numpy`` reference on the very problem it is timed on
   (a backend that disagrees is not timed), then timed forward (inference) and forward +
   backward with :func:`numlstm.benchmarking.time_backend` (inputs moved to the device once,
   first call apart, warm-up, ``synchronize()`` before every clock read, medians). The ``cuda``
   backend is timed as it chooses its path (the persistent kernel where it fits) and, at
   batch <= 8, also with the persistent kernel switched off. ``torch.nn.LSTM`` runs in a child
   process on the GPU (cuDNN), float32 (TF32 tensor cores off unless ``--torch-tf32``),
   ``batch_first=True``, when torch is importable there.

The table prints milliseconds (median), GFLOP/s (forward ``2·T·B·4H·(D+H)`` per layer,
forward + backward 3x that) and ``vs cuDNN`` = cuDNN's time / ours (above 1: faster than
cuDNN). Goals (issue 6): ``cupy`` and ``cuda`` forward >= 0.8 at config d; the persistent path
>= 1 at batch <= 8.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
results = {}
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
    timing = {}
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
        timing[mode] = statistics.median(times)
    results[name] = timing
print(json.dumps({"torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
                  "tf32": settings["tf32"],
                  "device": torch.cuda.get_device_name(0), "results": results}))
"""


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulate", action="store_true",
                        help="run in Numba's CUDA simulator at tiny sizes (no GPU needed)")
    parser.add_argument("--no-install", action="store_true", help="install nothing")
    parser.add_argument("--skip-tests", action="store_true", help="skip the pytest step")
    parser.add_argument("--configs", default="abcde", help="which of a-e to time (default all)")
    parser.add_argument("--torch-tf32", action="store_true",
                        help="let cuDNN use TF32 tensor cores (torch's default; off here so "
                             "that both sides compute in full float32)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per measurement (default 10; 1 with --simulate)")
    return parser.parse_args(argv)


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def install_missing() -> None:
    """pip-install the GPU packages that are missing; report failures and carry on."""
    wanted = []
    major = _driver_cuda_major()
    if _missing("numba_cuda"):
        # The cu12/cu13 extra brings the CUDA compiler libraries (NVVM) Numba needs.
        wanted.append(f"numba-cuda[cu{major}]")
    if _missing("cupy"):
        wanted.append(f"cupy-cuda{major}x")
    for package in wanted:
        print(f"installing {package} ...", flush=True)
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", package],
                              capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"  could not install {package}: {last}")


def _driver_cuda_major() -> int:
    """13 when ``nvidia-smi`` reports a CUDA 13 driver, else 12."""
    try:
        text = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout
    except OSError:
        text = ""
    return 13 if "CUDA Version: 13" in text else 12


def run_tests(simulate: bool) -> int:
    """The GPU tests through pytest; returns pytest's exit code."""
    if simulate:
        selection = ["tests/test_backend_parity.py", "tests/test_cuda_simulator.py", "-k",
                     "cuda and ((units3 or every_activation) and f32 or simulator)"]
    else:
        selection = ["tests/test_backend_parity.py", "tests/test_cuda_simulator.py",
                     "tests/test_cupy_backend.py", "-k", "cuda or cupy"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection]
    print("$", " ".join(command), flush=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def torch_cudnn(configs: dict, repeats: int, warmup: int, tf32: bool) -> dict:
    settings = {"configs": {name: (s.batch, s.timesteps, s.features, s.units, s.layers)
                            for name, s in configs.items()},
                "repeats": repeats, "warmup": warmup, "tf32": tf32}
    done = subprocess.run([sys.executable, "-c", TORCH_CHILD, json.dumps(settings)],
                          capture_output=True, text=True)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the torch child failed: {last}"}


def main(argv=None) -> int:
    args = parse_arguments(argv)
    if args.simulate:
        # Must be set before anything imports Numba.
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    elif not args.no_install:
        install_missing()
    sys.path.insert(0, str(ROOT))
    import numlstm
    from numlstm import benchmarking as bench
    from numlstm.backends import cuda_backend

    tests_failed = 0
    if not args.skip_tests:
        tests_failed = run_tests(args.simulate)
        print(f"pytest exit code: {tests_failed}\n", flush=True)

    repeats = args.repeats or (1 if args.simulate else 10)
    warmup = 0 if args.simulate else 2
    configs = {}
    for name in args.configs:
        shape = bench.CONFIGS[name]
        if args.simulate:
            # A few units only, and small blocks: the simulator runs every GPU thread as a
            # Python thread.
            shape = bench.Shape(min(shape.batch, 2), min(shape.timesteps, 3),
                                min(shape.features, 4), min(shape.units, 5), shape.layers)
        configs[name] = shape
    if args.simulate:
        cuda_backend.THREADS_PER_BLOCK = 16

    statuses = numlstm.available_backends()
    for name in ("cuda", "cupy"):
        status = statuses[name]
        text = f"usable{' -- ' + status.note if status.note else ''}" if status.available \
            else f"NOT usable: {status.reason} (fix: {status.fix})"
        print(f"{name}: {text}")
        if status.available:
            print(f"  device: {numlstm.get_backend(name).describe()}")

    peer = ({"error": "not timed in the simulator"} if args.simulate
            else torch_cudnn(configs, repeats, warmup, args.torch_tf32))
    if "error" in peer:
        print(f"torch cuDNN: {peer['error']}\n")
    else:
        print(f"torch {peer['torch']} cuDNN {peer['cudnn']} on {peer['device']} "
              f"(TF32 {'allowed' if peer['tf32'] else 'off: full float32'})\n")

    header = (f"{'cfg':<4}{'shape':<24}{'backend':<18}{'fwd ms':>10}{'GFLOP/s':>9}"
              f"{'vs cuDNN':>9}{'fwd+bwd ms':>12}{'GFLOP/s':>9}{'vs cuDNN':>9}  path")
    print(header)
    print("-" * len(header))
    failures = 0
    for name, shape in configs.items():
        problem = bench.make_problem(shape, "float32", seed=0)
        variants = []
        for backend in ("cuda", "cupy"):
            if statuses[backend].available:
                variants.append((backend, backend, "auto"))
                if backend == "cuda" and shape.batch <= cuda_backend.PERSISTENT_MAX_BATCH:
                    variants.append(("cuda per-step", backend, "never"))
        torch_ms = peer.get("results", {}).get(name, {})
        for label, backend, persistent in variants:
            instance = numlstm.get_backend(backend)
            if backend == "cuda":
                instance.persistent = persistent
            parity = bench.check_parity(backend, problem)
            row = f"{name:<4}{shape.describe():<24}{label:<18}"
            if not parity.passed:
                failures += 1
                print(row + f"  DISAGREES with the reference: {parity.failures} "
                      f"(max |diff| {max(parity.max_abs_diff.values()):.2e}); not timed")
                continue
            cells = []
            for mode in ("forward", "train"):
                timing = bench.time_backend(backend, problem, mode, repeats=repeats,
                                            warmup=warmup)
                gflops = shape.flops(mode) / timing.median_ms / 1e6
                ratio = (f"{torch_ms[mode] / timing.median_ms:9.2f}" if mode in torch_ms
                         else f"{'-':>9}")
                width = 10 if mode == "forward" else 12
                cells.append(f"{timing.median_ms:{width}.3f}{gflops:9.2f}{ratio}")
            path = getattr(instance, "last_path", "") or ""
            print(row + "".join(cells) + f"  {path}", flush=True)
            if backend == "cuda":
                instance.persistent = "auto"
        if torch_ms:
            print(f"{name:<4}{shape.describe():<24}{'torch cuDNN':<18}"
                  f"{torch_ms['forward']:10.3f}"
                  f"{shape.flops('forward') / torch_ms['forward'] / 1e6:9.2f}{1:9.2f}"
                  f"{torch_ms['train']:12.3f}"
                  f"{shape.flops('train') / torch_ms['train'] / 1e6:9.2f}{1:9.2f}", flush=True)
    if args.simulate:
        print("\n(simulator: the times measure Python threads, not a GPU)")
    return 1 if failures or tests_failed else 0


if __name__ == "__main__":
    sys.exit(main())
