"""numlstm's ``numba`` backend against ``torch.nn.LSTM`` on the CPU: the table of issue 5.

    python benchmarks/cpu_vs_torch.py                 # every config, 1 and 2 threads
    python benchmarks/cpu_vs_torch.py --quick         # fewer repeats (about a minute or two)
    python benchmarks/cpu_vs_torch.py --configs ab --threads 1 --peer-python /path/to/python

For each configuration (DESIGN §5: a-e), mode (forward = inference, train = forward +
backward) and thread count it reports, in float32:

* the median time of torch and of numlstm, and torch's time over numlstm's (> 1: numlstm is
  faster), against the issue's target;
* numlstm's GFLOP/s (forward ``2·T·B·4H·(D+H)`` per layer, training 3× that) and its fraction
  of this machine's matmul peak (NumPy's BLAS, ``n × n`` GEMM, measured in the same run at the
  same thread count);
* the ``numpy`` reference's time over numlstm's (what the JIT buys; with fewer repeats);
* apart from the steady state, what compilation costs: a new process's first and second
  forward and training calls, with an empty on-disk cache (cold) and then with the cache that
  run left (warm), in a throw-away cache folder (``NUMBA_CACHE_DIR``).

Everything goes through :mod:`numlstm.benchmarking`, the harness ``numlstm bench`` uses: the
backend is checked against the reference before it is timed, and torch runs in a child process
(``--peer-python`` or ``$NUMLSTM_PEER_PYTHON`` names an interpreter that has torch; default:
this one) with the same weights and thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numlstm
from numlstm import benchmarking as bm

#: Issue 5's targets: torch time / numlstm time, per config and mode.
TARGETS = {
    "a": {"forward": 2.0, "train": 1.5},
    "b": {"forward": 1.0, "train": 1.0},
    "c": {"forward": 0.9, "train": 1.0},
    "d": {"forward": 0.9, "train": 1.0},
    "e": {"forward": 0.9, "train": 1.0},
}
#: Timed repeats per config (full run, --quick); warm-up calls are not timed.
REPEATS = {"a": (50, 20), "b": (30, 10), "c": (10, 4), "d": (4, 2), "e": (6, 3)}
REFERENCE_REPEATS = {"a": 5, "b": 3, "c": 2, "d": 1, "e": 1}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="abcde",
                        help="which configurations, e.g. 'ab' (default: abcde)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="thread counts to compare at (default: 1 2)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--peer-python", default=None,
                        help="Python interpreter with torch installed (default: "
                             f"${bm.PEER_PYTHON_ENV}, else this one)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip timing the numpy reference")
    parser.add_argument("--json", default=None, help="also write every number to this file")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.configs) - set(bm.CONFIGS))
    if unknown:
        parser.error(f"--configs must be letters from {''.join(bm.CONFIGS)}; got {unknown}")
    if any(n < 1 for n in args.threads):
        parser.error(f"--threads must be positive; got {args.threads}")
    return args


#: Run in a new process: the first and second forward and training call, in seconds.
FIRST_CALL_SCRIPT = """
import json, time
import numpy as np
from numlstm import benchmarking as bm
from numlstm.backends import get_backend
problem = bm.make_problem(bm.CONFIGS["b"], "float32")
backend = get_backend("numba")
arrays = bm._to_backend(backend, problem)
times = {}
for mode in ("forward", "train"):
    for call in ("first", "second"):
        start = time.perf_counter()
        if mode == "forward":
            bm.stack_forward(backend, arrays)
        else:
            bm.stack_backward(backend, arrays, bm.stack_forward(backend, arrays,
                                                            return_cache=True))
        times[f"{mode}_{call}"] = time.perf_counter() - start
print(json.dumps(times))
"""


def first_call_costs() -> dict:
    """Cold and warm first-call costs in new processes (see the module docstring)."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="numlstm-jit-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for run in ("cold", "warm"):
            completed = subprocess.run([sys.executable, "-c", FIRST_CALL_SCRIPT], env=env,
                                       capture_output=True, text=True, check=True)
            results[run] = json.loads(completed.stdout.strip().splitlines()[-1])
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    info = bm.machine_info()
    versions = info["versions"]
    print(f"machine: {info['cpu']}, {info['usable_cores']} usable cores; numlstm "
          f"{versions['numlstm']}, numpy {versions['numpy']}, numba {versions['numba']}")
    print("float32; times are medians in ms; ratio = torch / numlstm (> 1: numlstm faster); "
          "peak = NumPy-BLAS n×n GEMM at the same thread count\n")
    rows, started = [], time.perf_counter()
    header = (f"{'cfg':<3} {'mode':<7} {'thr':>3} {'torch ms':>9} {'numlstm ms':>10} "
              f"{'ratio':>6} {'target':>6} {'met':>4} {'GFLOP/s':>8} {'% peak':>6} "
              f"{'numpy/numlstm':>13}")
    checked = set()
    for threads in args.threads:
        peak = bm.matmul_peak(threads=(threads,))[str(threads)]
        print(f"-- {threads} thread(s): matmul peak {peak:.0f} GFLOP/s")
        print(header)
        for config in args.configs:
            shape = bm.CONFIGS[config]
            problem = bm.make_problem(shape, "float32")
            if config not in checked:
                parity = bm.check_parity("numba", problem)
                checked.add(config)
                if not parity.passed:
                    print(f"{config}: numba disagrees with the reference on "
                          f"{parity.failures}; not timed")
                    continue
            repeats = REPEATS[config][1 if args.quick else 0]
            for mode in bm.MODES:
                flops = bm.lstm_flops(shape, mode)
                ours = bm.time_backend("numba", problem, mode, repeats=repeats,
                                       warmup=1 if config in "de" else 2, threads=threads)
                peer = bm.run_torch_peer(problem, mode, repeats=repeats,
                                         warmup=1 if config in "de" else 2, threads=threads,
                                         python=args.peer_python)
                reference = None
                if not args.no_reference:
                    reference = bm.time_backend("numpy", problem, mode,
                                                repeats=REFERENCE_REPEATS[config], warmup=0,
                                                threads=threads)
                ratio = peer.timing.median_ms / ours.median_ms if peer.available else None
                gflops = flops / (ours.median_ms * 1e-3) / 1e9
                target = TARGETS[config][mode]
                row = {
                    "config": config, "shape": shape.describe(), "mode": mode,
                    "threads": threads, "numlstm_ms": ours.median_ms,
                    "numlstm_min_ms": ours.min_ms, "numlstm_first_call_ms": ours.first_call_ms,
                    "torch_ms": peer.timing.median_ms if peer.available else None,
                    "torch_note": peer.note, "ratio": ratio, "target": target,
                    "met": None if ratio is None else ratio >= target,
                    "gflops": gflops, "peak_gflops": peak, "fraction_of_peak": gflops / peak,
                    "numpy_ms": reference.median_ms if reference else None,
                    "numpy_ratio": (reference.median_ms / ours.median_ms) if reference
                    else None,
                }
                rows.append(row)
                torch_text = f"{row['torch_ms']:9.2f}" if peer.available else f"{'n/a':>9}"
                ratio_text = f"{ratio:6.2f}" if ratio is not None else f"{'n/a':>6}"
                met_text = {None: "n/a", True: "yes", False: "NO"}[row["met"]]
                numpy_text = (f"{row['numpy_ratio']:12.1f}x" if reference else f"{'-':>13}")
                print(f"{config:<3} {mode:<7} {threads:>3} {torch_text} {ours.median_ms:10.2f} "
                      f"{ratio_text} {target:6.1f} {met_text:>4} {gflops:8.1f} "
                      f"{100 * gflops / peak:5.0f}% {numpy_text}", flush=True)
                if not peer.available:
                    print(f"    torch: {peer.note}")
        print()
    print("compilation (config b, float32, new processes; the first call includes importing "
          "Numba and SciPy's BLAS):")
    costs = first_call_costs()
    for run, times in costs.items():
        print(f"  {run:<4} cache: first forward {times['forward_first']:.2f} s "
              f"(second {times['forward_second'] * 1e3:.1f} ms), first training call "
              f"{times['train_first']:.2f} s (second {times['train_second'] * 1e3:.1f} ms)")
    print(f"done in {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": info, "numlstm_threads_api": hasattr(numlstm,
                                                                      "set_num_threads"),
                       "rows": rows, "first_call_s": costs}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
