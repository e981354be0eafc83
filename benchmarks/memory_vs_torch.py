"""Peak memory of one LSTM training step: numlstm's ``numba`` backend against ``torch.nn.LSTM``.

    python benchmarks/memory_vs_torch.py --peer-python /path/to/python-with-torch
    python benchmarks/memory_vs_torch.py --config d --threads 2

What is measured, for each library in a fresh child process of its own (Linux only: it reads
``/proc/self/status``):

1. import the library, load the same float32 inputs and weights (config c of docs/performance.md by
   default: B64 T100 D64 H256, made by :func:`numlstm.bench.make_problem`), and run one
   training step on a tiny problem so that compiled code is loaded (compile-time memory is not
   what this measures);
2. collect garbage, read the resident set size (``VmRSS``), reset the kernel's peak counter
   (``echo 5 > /proc/self/clear_refs`` resets ``VmHWM``), run one training step -- forward
   keeping what the backward needs, then backward with an upstream gradient of every output --
   and read the peak (``VmHWM``). The figure is peak minus the resident size before the step:
   the memory the step itself added, inputs and weights excluded, its outputs and gradients
   included;
3. the same again for a second step, which shows what buffers kept between calls save.

numlstm's step is :func:`numlstm.functional.lstm_forward` (``return_cache=True``) then
:func:`numlstm.functional.lstm_backward`; torch's is ``outputs, _ = lstm(x)`` then
``outputs.backward(grad_outputs)`` with ``x.requires_grad_()``. The children import nothing but
NumPy and their own library, so the torch child runs in any interpreter that has torch
(``--peer-python``, else ``$NUMLSTM_PEER_PYTHON``, else this one).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MiB = 1 << 20


# -- the child: measure one library ------------------------------------------------------------

def _status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} line")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _measured(step) -> int:
    """Bytes the resident set grew to, at its peak, while ``step()`` ran (its result kept)."""
    gc.collect()
    before = _status_bytes("VmRSS")
    _reset_peak()
    kept = step()
    peak = _status_bytes("VmHWM")
    del kept
    return peak - before


def _numlstm_steps(data, tiny):
    from numlstm.functional import lstm_backward, lstm_forward

    def make(arrays):
        def step():
            result = lstm_forward(arrays["x"], arrays["kernel"], arrays["recurrent_kernel"],
                                  arrays["bias"], return_cache=True, backend="numba")
            grads = lstm_backward(result.cache, grad_outputs=arrays["grad_outputs"])
            return result, grads
        return step
    return make(data), make(tiny)


def _torch_steps(data, tiny):
    import torch

    def make(arrays):
        features = arrays["x"].shape[2]
        units = arrays["weight_hh_l0"].shape[1]
        lstm = torch.nn.LSTM(features, units, batch_first=True)
        lstm.load_state_dict({name: torch.from_numpy(arrays[name]) for name in
                              ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")})
        x = torch.from_numpy(arrays["x"]).requires_grad_(True)
        grad_outputs = torch.from_numpy(arrays["grad_outputs"])

        def step():
            lstm.zero_grad(set_to_none=True)
            x.grad = None
            outputs, state = lstm(x)
            outputs.backward(grad_outputs)
            return outputs, state
        return step
    return make(data), make(tiny)


def child(library: str, inputs: str, threads: int) -> dict:
    with np.load(inputs) as loaded:
        arrays = {name: loaded[name] for name in loaded.files}
    data = {name[len("main_"):]: value for name, value in arrays.items() if name.startswith("main_")}
    tiny = {name[len("tiny_"):]: value for name, value in arrays.items() if name.startswith("tiny_")}
    if library == "torch":
        import torch
        torch.set_num_threads(threads)
        step, warm_up = _torch_steps(data, tiny)
        version, limit = torch.__version__, contextlib.nullcontext()
    else:
        import numlstm
        from numlstm.bench import thread_limit
        step, warm_up = _numlstm_steps(data, tiny)
        version, limit = numlstm.__version__, thread_limit(threads)
    with limit:
        warm_up()
        first = _measured(step)
        second = _measured(step)
    return {"library": library, "version": version, "first_step_bytes": first,
            "second_step_bytes": second}


# -- the parent: make the problem, run both children, print the table --------------------------

def _problem_arrays(config: str) -> dict:
    from numlstm import bench as bm
    from numlstm.convert import to_torch

    arrays = {}
    for prefix, shape in (("main_", bm.CONFIGS[config]), ("tiny_", bm.Shape(2, 3, 4, 5))):
        problem = bm.make_problem(shape, "float32", seed=0)
        kernel, recurrent_kernel, bias = problem.weights[0]
        named = {"x": problem.x, "grad_outputs": problem.grad_outputs, "kernel": kernel,
                 "recurrent_kernel": recurrent_kernel, "bias": bias}
        named.update(to_torch(kernel, recurrent_kernel, bias, layer=0))
        arrays.update({prefix + name: value for name, value in named.items()})
    return arrays


def _run_child(python: str, library: str, inputs: Path, threads: int) -> dict:
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[variable] = str(threads)
    command = [python, str(Path(__file__).resolve()), "--child", library, "--inputs",
               str(inputs), "--threads", str(threads)]
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {"library": library, "error": f"exit {completed.returncode}: {last}"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="c",
                        help="a configuration of docs/performance.md (default c)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--peer-python", default=None,
                        help="Python interpreter with torch (default: $NUMLSTM_PEER_PYTHON, "
                             "else this one)")
    parser.add_argument("--child", choices=("numlstm", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.inputs, args.threads)))
        return 0
    if not os.path.exists("/proc/self/clear_refs"):
        print("memory_vs_torch.py needs Linux's /proc/self/clear_refs", file=sys.stderr)
        return 2
    from numlstm import bench as bm
    if args.config not in bm.CONFIGS or bm.CONFIGS[args.config].layers != 1:
        print(f"--config must be one of the one-layer configurations a-d; got {args.config!r}",
              file=sys.stderr)
        return 2
    peer = args.peer_python or os.environ.get("NUMLSTM_PEER_PYTHON") or sys.executable
    with tempfile.TemporaryDirectory(prefix="numlstm-memory-") as folder:
        inputs = Path(folder) / "problem.npz"
        np.savez(inputs, **_problem_arrays(args.config))
        results = [_run_child(sys.executable, "numlstm", inputs, args.threads),
                   _run_child(peer, "torch", inputs, args.threads)]
    print(f"config {args.config} ({bm.CONFIGS[args.config].describe()}), float32, one training step, "
          f"{args.threads} thread(s); MiB added to the resident set at the step's peak")
    print(f"{'library':10} {'version':>14} {'first step':>11} {'second step':>12}")
    for result in results:
        if "error" in result:
            print(f"{result['library']:10} not measured: {result['error']}")
            continue
        print(f"{result['library']:10} {result['version']:>14} "
              f"{result['first_step_bytes'] / MiB:11.1f} {result['second_step_bytes'] / MiB:12.1f}")
    if all("error" not in result for result in results):
        ratio = results[0]["first_step_bytes"] / max(results[1]["first_step_bytes"], 1)
        print(f"numlstm / torch, first step: {ratio:.2f}x (issue 5's target: <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
