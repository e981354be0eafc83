"""numlstm's ``numba`` backend against ``torch.nn.LSTM`` and ONNX Runtime on the CPU.

    python benchmarks/cpu_vs_torch.py --peer torch --peer ort        # every config, 1 and 2 threads
    python benchmarks/cpu_vs_torch.py --quick                         # fewer repeats
    python benchmarks/cpu_vs_torch.py --configs bc --threads 1 --blas numlstm mkl openblas \
        --peer torch --peer ort --peer-python /path/to/python-with-torch-and-onnxruntime

For each configuration (docs/performance.md: a-e), mode (forward = inference, train = forward +
backward) and thread count it reports, in float32:

* the median time of each peer -- ``torch`` (``torch.nn.LSTM``, oneDNN) and ``ort`` (the same
  LSTM exported by torch's ONNX exporter, run by ONNX Runtime; inference only) -- and of
  numlstm with each requested engine for its recurrent products (``--blas``: ``auto``,
  ``numlstm`` = numlstm's packed kernel, ``mkl`` = oneMKL's packed GEMM, ``openblas``; see
  :func:`numlstm.set_cpu_blas`), with the best peer's time over numlstm's
  (> 1: numlstm is faster) against the target;
* numlstm's GFLOP/s (forward ``2·T·B·4H·(D+H)`` per layer, training 3× that) and its fraction
  of this machine's matmul peak (NumPy's BLAS, ``n × n`` GEMM, measured in the same run at the
  same thread count);
* the ``numpy`` reference's time over numlstm's (what the JIT buys; with fewer repeats);
* apart from the steady state, what compilation costs: a new process's first and second
  forward and training calls, with an empty on-disk cache (cold) and then with the cache that
  run left (warm), in a throw-away cache folder (``NUMBA_CACHE_DIR``).

Everything goes through :mod:`numlstm.bench`, the harness ``numlstm bench`` uses: the
backend is checked against the reference before it is timed, and every peer runs in a child
process (``--peer-python`` or ``$NUMLSTM_PEER_PYTHON`` names an interpreter that has torch,
and onnxruntime + onnx for ``ort``; default: this one) with the same weights and thread count.

The machine's BLAS settings are printed first: OpenBLAS picks its kernels from the CPU unless
``OPENBLAS_CORETYPE`` pins them (some machines set it to work around old OpenBLAS bugs); a
pinned older kernel changes every GEMM's speed, numlstm's and the reference's alike.
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
from numlstm import bench as bm

#: Targets: the best peer's time / numlstm's time in forward, torch's / numlstm's in training;
#: config a (batch 1) must also be twice as fast as torch forward.
TARGETS = {
    "a": {"forward": 1.0, "train": 1.5},
    "b": {"forward": 1.0, "train": 1.0},
    "c": {"forward": 1.0, "train": 1.0},
    "d": {"forward": 1.0, "train": 1.0},
    "e": {"forward": 1.0, "train": 1.0},
}
TORCH_FORWARD_TARGETS = {"a": 2.0}
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
    parser.add_argument("--peer", action="append", choices=bm.PEERS, default=None,
                        help="a peer to time (repeatable; default: torch)")
    parser.add_argument("--blas", nargs="+", choices=("auto", "numlstm", "mkl", "openblas"),
                        default=["auto"],
                        help="numlstm's engines for the recurrent products to time, see "
                             "numlstm.set_cpu_blas (default: auto)")
    parser.add_argument("--peer-python", default=None,
                        help="Python interpreter with torch (and onnxruntime) installed "
                             f"(default: ${bm.PEER_PYTHON_ENV}, else this one)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip timing the numpy reference")
    parser.add_argument("--json", default=None, help="also write every number to this file")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.configs) - set(bm.CONFIGS))
    if unknown:
        parser.error(f"--configs must be letters from {''.join(bm.CONFIGS)}; got {unknown}")
    if any(n < 1 for n in args.threads):
        parser.error(f"--threads must be positive; got {args.threads}")
    args.peer = list(dict.fromkeys(args.peer or ["torch"]))
    args.blas = list(dict.fromkeys(args.blas))
    if "mkl" in args.blas and not numlstm.cpu_blas_info()["mkl"]:
        parser.error('--blas mkl needs oneMKL: pip install "numlstm[mkl]"')
    return args


#: Run in a new process: the first and second forward and training call, in seconds.
FIRST_CALL_SCRIPT = """
import json, time
import numpy as np
from numlstm import bench as bm
from numlstm.backends import get_backend
problem = bm.make_problem(bm.CONFIGS["b"], "float32")
backend = get_backend("numba")
arrays = bm.backend_arrays(backend, problem)
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


def first_call_costs(blas_paths=("auto",)) -> dict:
    """Cold and warm first-call costs in new processes (see the module docstring), per BLAS
    path: ``{blas: {"cold": {...}, "warm": {...}}}``."""
    results = {}
    for blas in blas_paths:
        results[blas] = {}
        with tempfile.TemporaryDirectory(prefix="numlstm-jit-cache-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMLSTM_BLAS=blas)
            for run in ("cold", "warm"):
                completed = subprocess.run([sys.executable, "-c", FIRST_CALL_SCRIPT], env=env,
                                           capture_output=True, text=True, check=True)
                results[blas][run] = json.loads(completed.stdout.strip().splitlines()[-1])
    return results


def _time_row(config, mode, threads, args, peak) -> dict:
    """Every number of one (config, mode, thread count) line."""
    shape = bm.CONFIGS[config]
    problem = bm.make_problem(shape, "float32")
    repeats = REPEATS[config][1 if args.quick else 0]
    warmup = 1 if config in "de" else 2
    flops = bm.lstm_flops(shape, mode)
    peers = {name: bm.run_peer(problem, mode, runtime=name, repeats=repeats, warmup=warmup,
                               threads=threads, python=args.peer_python)
             for name in args.peer}
    peer_ms = {name: (peer.timing.median_ms if peer.available else None)
               for name, peer in peers.items()}
    best_peer = min((name for name, ms in peer_ms.items() if ms is not None),
                    key=peer_ms.get, default=None)
    ours = {}
    for blas in args.blas:
        numlstm.set_cpu_blas(blas)
        timing = bm.time_backend("numba", problem, mode, repeats=repeats, warmup=warmup,
                                 threads=threads)
        ratio = peer_ms[best_peer] / timing.median_ms if best_peer else None
        torch_ratio = (peer_ms["torch"] / timing.median_ms
                       if peer_ms.get("torch") is not None else None)
        met = None if ratio is None else ratio >= TARGETS[config][mode]
        if met is not None and mode == "forward" and config in TORCH_FORWARD_TARGETS:
            met = met and torch_ratio is not None and \
                torch_ratio >= TORCH_FORWARD_TARGETS[config]
        gflops = flops / (timing.median_ms * 1e-3) / 1e9
        ours[blas] = {"ms": timing.median_ms, "min_ms": timing.min_ms,
                      "first_call_ms": timing.first_call_ms,
                      "path": numlstm.cpu_blas_info()["float32"], "ratio_best_peer": ratio,
                      "ratio_torch": torch_ratio, "met": met, "gflops": gflops,
                      "fraction_of_peak": gflops / peak}
    numlstm.set_cpu_blas(None)
    reference = None
    if not args.no_reference:
        reference = bm.time_backend("numpy", problem, mode, repeats=REFERENCE_REPEATS[config],
                                    warmup=0, threads=threads).median_ms
    return {"config": config, "shape": shape.describe(), "mode": mode, "threads": threads,
            "peers_ms": peer_ms, "peer_notes": {n: p.note for n, p in peers.items() if p.note},
            "best_peer": best_peer, "target": TARGETS[config][mode], "numlstm": ours,
            "numpy_ms": reference, "peak_gflops": peak}


def _print_row(row, args) -> None:
    peers = " ".join(f"{row['peers_ms'][n]:9.2f}" if row["peers_ms"][n] is not None
                     else f"{'n/a':>9}" for n in args.peer)
    cells = []
    for blas in args.blas:
        entry = row["numlstm"][blas]
        ratio = "  n/a" if entry["ratio_best_peer"] is None else f"{entry['ratio_best_peer']:5.2f}"
        met = {None: "n/a", True: "yes", False: "NO"}[entry["met"]]
        cells.append(f"{entry['ms']:9.2f} {ratio} {met:>3} {100 * entry['fraction_of_peak']:4.0f}%")
    numpy_text = "" if row["numpy_ms"] is None else \
        f" {row['numpy_ms'] / row['numlstm'][args.blas[0]]['ms']:6.1f}x"
    print(f"{row['config']:<3} {row['mode']:<7} {row['threads']:>3} {peers} "
          f"{(row['best_peer'] or '-'):>5} {row['target']:5.1f} | " + " | ".join(cells)
          + numpy_text, flush=True)
    for name, note in row["peer_notes"].items():
        if not (name == "ort" and row["mode"] == "train"):
            print(f"    {name}: {note}")


def main(argv=None) -> int:
    args = parse_args(argv)
    info = bm.machine_info()
    versions = info["versions"]
    print(f"machine: {info['cpu']}, {info['usable_cores']} usable cores; numlstm "
          f"{versions['numlstm']}, numpy {versions['numpy']}, numba {versions['numba']}")
    print("BLAS: " + "; ".join(f"{lib['file']} {lib['version']} ({lib['architecture']})"
                               for lib in info["blas"])
          + (f"; pinned by {info['blas_env']}" if info["blas_env"] else ""))
    print(f"numlstm BLAS policy: {info['cpu_blas']['reason']}")
    print("float32; times are medians in ms; ratio = best peer / numlstm in forward, torch / "
          "numlstm in training (> 1: numlstm faster); peak = NumPy-BLAS n×n GEMM at the same "
          "thread count\n")
    rows, started = [], time.perf_counter()
    header = (f"{'cfg':<3} {'mode':<7} {'thr':>3} "
              + " ".join(f"{name + ' ms':>9}" for name in args.peer)
              + f" {'best':>5} {'target':>5} | "
              + " | ".join(f"{'numlstm[' + blas + ']':>9} ratio met peak" for blas in args.blas)
              + ("" if args.no_reference else " numpy/numlstm"))
    checked = set()
    for threads in args.threads:
        peak = bm.matmul_peak(threads=(threads,))[str(threads)]
        print(f"-- {threads} thread(s): matmul peak {peak:.0f} GFLOP/s")
        print(header)
        for config in args.configs:
            if config not in checked:
                checked.add(config)
                problem = bm.make_problem(bm.CONFIGS[config], "float32")
                failures = []
                for blas in args.blas:
                    numlstm.set_cpu_blas(blas)
                    parity = bm.check_parity("numba", problem)
                    failures += [f"{blas}: {name}" for name in parity.failures]
                numlstm.set_cpu_blas(None)
                if failures:
                    print(f"{config}: numba disagrees with the reference on {failures}; "
                          "not timed")
                    continue
            for mode in bm.MODES:
                row = _time_row(config, mode, threads, args, peak)
                rows.append(row)
                _print_row(row, args)
        print()
    print("compilation (config b, float32, new processes; the first call includes importing "
          "Numba and SciPy's BLAS):")
    costs = first_call_costs(args.blas)
    for blas, runs in costs.items():
        for run, times in runs.items():
            print(f"  [{blas}] {run:<4} cache: first forward {times['forward_first']:.2f} s "
                  f"(second {times['forward_second'] * 1e3:.1f} ms), first training call "
                  f"{times['train_first']:.2f} s (second {times['train_second'] * 1e3:.1f} ms)")
    print(f"done in {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": info, "rows": rows, "first_call_s": costs}, handle,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
