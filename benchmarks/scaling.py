"""Scaling beyond one process: data-parallel training over MPI and batch inference on Dask.

    python benchmarks/scaling.py                     # everything (needs numlstm[mpi,dask])
    python benchmarks/scaling.py --steps 30 --skip-dask

Training, at benchmark configuration c (docs/performance.md: batch 64, 100 timesteps, 64
features, 256 units; an LSTM and a Dense(1) head, mean squared error, Adam, float32): samples
per second over ``--steps`` timed steps after ``--warmup`` steps, for

* 1 process x 1 thread, batch 64 (plain ``fit``, no MPI);
* ``mpiexec -n 2``, 1 thread per rank, the same global batch of 64 (32 per rank),

with the share of the step spent in the gradient ``Allreduce`` (that time includes waiting
for the slower rank) and in the small loss/count reduction, and the cost of one gradient
``Allreduce`` alone (timed after training, ranks in step). The speed-up is the 2-rank
throughput over the 1-process one; parallel efficiency is the speed-up over 2.

Inference: ``model.predict`` in one process (1 thread, and every core) against
``numlstm.dask.predict`` on a ``LocalCluster`` of 2 single-thread worker processes, over
``--predict-samples`` sequences in chunks of ``--chunk``; the Dask time is a second call
(the first one includes loading numlstm and the model on the workers); the data is made and
kept on the workers beforehand, as data read by Dask from storage would be.

Each training run is a fresh process; ``--repeats`` runs of each kind are interleaved and the
fastest kept. Run it on an otherwise idle machine: other processes on the cores make the ranks wait for
each other and show up as Allreduce time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _model(shape):
    import numlstm
    model = numlstm.Sequential([numlstm.Input((shape.timesteps, shape.features)),
                                numlstm.LSTM(shape.units, seed=1), numlstm.Dense(1, seed=2)],
                               seed=0)
    model.compile(numlstm.optimizers.Adam(1e-3), "mse")
    return model


def train_worker(args) -> None:
    """One training run (a rank under mpiexec with --mpi); rank 0 prints one JSON line."""
    import numlstm
    from numlstm.bench import CONFIGS
    shape = CONFIGS["c"]
    strategy = numlstm.distributed.init(num_threads=args.threads) if args.mpi else None
    if strategy is None:
        numlstm.set_num_threads(args.threads)
    model = _model(shape)
    rng = np.random.default_rng(0)
    batch = args.batch or shape.batch
    n = batch * (args.warmup + args.steps)
    x = rng.normal(size=(n, shape.timesteps, shape.features)).astype(np.float32)
    y = rng.normal(size=(n, 1)).astype(np.float32)
    marks = {}

    class Clock(numlstm.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch + 1 in (args.warmup, args.warmup + args.steps):
                timers = (0.0, 0.0) if strategy is None else (strategy.allreduce_seconds,
                                                              strategy.stats_seconds)
                marks[batch + 1] = (time.perf_counter(), *timers)

    if strategy is not None:
        strategy.comm.Barrier()
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0,
              callbacks=[Clock()])
    start, end = marks[args.warmup], marks[args.warmup + args.steps]
    seconds = end[0] - start[0]
    result = {"ranks": 1 if strategy is None else strategy.size, "threads": args.threads,
              "global_batch": batch, "steps": args.steps,
              "step_ms": 1e3 * seconds / args.steps,
              "samples_per_s": batch * args.steps / seconds,
              "allreduce_share": (end[1] - start[1]) / seconds,
              "stats_share": (end[2] - start[2]) / seconds,
              "gradient_bytes": int(sum(w.nbytes for w in model.trainable_weights))}
    if strategy is not None:
        # one gradient Allreduce alone, the ranks in step (shared memory on one machine)
        buffer = np.zeros(sum(w.size for w in model.trainable_weights), np.float32)
        from mpi4py import MPI
        times = []
        for _ in range(30):
            strategy.comm.Barrier()
            t = time.perf_counter()
            strategy.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            times.append(time.perf_counter() - t)
        result["allreduce_alone_ms"] = 1e3 * float(np.median(times))
    if strategy is None or strategy.rank == 0:
        print(json.dumps(result), flush=True)


def _run_json(command, env) -> dict:
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def training(args) -> list[dict]:
    import numlstm.distributed as nd
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")]))
    if hasattr(os, "geteuid") and os.geteuid() == 0:     # Open MPI refuses root otherwise
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    worker = [sys.executable, __file__, "--worker", "--threads", "1", "--steps",
              str(args.steps), "--warmup", str(args.warmup)]
    runs = {"one": [], "half": [], "two": []}
    # Interleaved, each --repeats times; the fastest of each is kept: on a machine shared with
    # other jobs, a slow run measures the other jobs, not numlstm.
    for _ in range(args.repeats):
        runs["one"].append(_run_json(worker, env))
        runs["half"].append(_run_json(worker + ["--batch", "32"], env))   # one rank's share
        runs["two"].append(_run_json([nd.mpiexec_path(), "-n", "2", "--bind-to", args.bind_to,
                                      *worker, "--mpi"], env))
    best = []
    for rows in runs.values():
        row = dict(max(rows, key=lambda r: r["samples_per_s"]))
        row["all_samples_per_s"] = [round(r["samples_per_s"], 1) for r in rows]
        best.append(row)
    return best


def inference(args) -> dict:
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import numlstm
    import numlstm.dask
    from numlstm.bench import CONFIGS
    shape = CONFIGS["c"]
    model = _model(shape)
    size = (args.predict_samples, shape.timesteps, shape.features)
    chunks = (args.chunk,) + size[1:]
    # The data is made where it lives (on the workers, chunk by chunk), as data read by Dask
    # from storage would be; one process computes the same array in full.
    def data():
        return da.random.RandomState(0).standard_normal(size, chunks=chunks).astype(np.float32)
    x = data().compute(scheduler="synchronous")
    result = {"samples": args.predict_samples, "chunk": args.chunk}
    for threads in (1, numlstm.get_num_threads()):
        with numlstm.num_threads(threads):
            model.predict(x[:shape.batch], batch_size=shape.batch)       # warm-up
            start = time.perf_counter()
            expected = model.predict(x, batch_size=shape.batch)
            result[f"one_process_{threads}_threads_s"] = time.perf_counter() - start
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        stored = client.persist(data())          # the data waits on the workers, in chunks
        wait(stored)
        start = time.perf_counter()
        numlstm.dask.predict(model, stored, batch_size=shape.batch).compute()
        result["dask_first_call_s"] = time.perf_counter() - start
        start = time.perf_counter()
        got = numlstm.dask.predict(model, stored, batch_size=shape.batch).compute()
        result["dask_2_workers_s"] = time.perf_counter() - start
    result["max_abs_difference"] = float(np.abs(got - expected).max())
    return result


#: The networks of the estimate: (name, bandwidth in bytes/s one link sustains, latency of one
#: message in seconds). 10 GbE: ~90% of 1.25 GB/s through TCP, ~50 us a message through the
#: kernel's stack; 100 Gb/s InfiniBand/RoCE with RDMA: ~11 GB/s, ~2 us.
NETWORKS = (("10 GbE", 1.1e9, 50e-6), ("100 Gb/s", 11e9, 2e-6))
NODES = (8, 16, 64)


def cluster_estimate(compute_s: float, gradient_bytes: int) -> list[dict]:
    """Parallel efficiency on paper, one rank per node, each node keeping the measured
    per-rank batch and step compute time ``compute_s`` (weak scaling):

    * the gradient's ring all-reduce sends and receives ``2 (N-1)/N`` of its bytes on every
      node's link, in ``2 (N-1)`` messages in sequence: ``2 (N-1)/N · S / bandwidth +
      2 (N-1) · latency``;
    * the small loss/count reduction is latency-bound: ``2 log2(N) · latency``;
    * numlstm reduces after the backward pass (no overlap with computation), so
      efficiency = compute / (compute + communication).
    """
    rows = []
    for nodes in NODES:
        for network, bandwidth, latency in NETWORKS:
            ring = 2 * (nodes - 1) / nodes * gradient_bytes / bandwidth + \
                2 * (nodes - 1) * latency
            small = 2 * np.log2(nodes) * latency
            comm = ring + small
            rows.append({"nodes": nodes, "network": network, "communication_ms": 1e3 * comm,
                         "efficiency": compute_s / (compute_s + comm)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--predict-samples", type=int, default=4096)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3,
                        help="training runs of each kind, interleaved; the fastest is kept")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--bind-to", default="core", choices=("core", "none"),
                        help="mpiexec's rank binding (core: one rank a core)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        train_worker(args)
        return
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    one, half, two = training(args)
    print(f"training, config c (B64 T100 D64 H256, float32), {args.steps} steps after "
          f"{args.warmup} warm-up, fastest of {args.repeats} runs; gradient "
          f"{one['gradient_bytes'] / 1e6:.2f} MB")
    for row in (one, half, two):
        print(f"  {row['ranks']} rank(s) x {row['threads']} thread, global batch "
              f"{row['global_batch']}: {row['samples_per_s']:8.1f} "
              f"samples/s, {row['step_ms']:7.1f} ms/step, Allreduce {100 * row['allreduce_share']:.1f}%"
              f" of the step (+{100 * row['stats_share']:.2f}% loss/counts); all runs "
              f"{row['all_samples_per_s']}")
    speedup = two["samples_per_s"] / one["samples_per_s"]
    print(f"  speed-up {speedup:.2f}x, parallel efficiency {speedup / 2:.2f}; one gradient "
          f"Allreduce alone: {two['allreduce_alone_ms']:.3f} ms")
    print(f"  ceiling without communication: a batch-64 step over a batch-32 step = "
          f"{one['step_ms'] / half['step_ms']:.2f}x (smaller per-rank batches use the cores "
          "less well)")
    estimate = cluster_estimate(half["step_ms"] / 1e3, one["gradient_bytes"])
    print(f"estimate on paper (one rank a node, batch 32 a node, its measured step "
          f"{half['step_ms']:.1f} ms, gradient {one['gradient_bytes'] / 1e6:.2f} MB, ring "
          "all-reduce, no overlap):")
    for row in estimate:
        print(f"  {row['nodes']:3d} nodes, {row['network']:8s}: communication "
              f"{row['communication_ms']:6.2f} ms a step, parallel efficiency "
              f"{row['efficiency']:.2f}")
    report = {"training": [one, half, two], "speedup": speedup, "estimate": estimate,
              "cores": os.cpu_count(), "load_average_before": load_before}
    if not args.skip_dask:
        result = inference(args)
        report["inference"] = result
        print(f"inference, {result['samples']} sequences of config c in chunks of "
              f"{result['chunk']}:")
        for key, value in result.items():
            if key.endswith("_s"):
                print(f"  {key[:-2].replace('_', ' ')}: {value:.2f} s "
                      f"({result['samples'] / value:.0f} samples/s)")
        print(f"  largest difference from model.predict: {result['max_abs_difference']:.1e}")
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    report["load_average_after"] = load_after
    print(f"machine: {os.cpu_count()} cores; 1-minute load average {load_before:.2f} before, "
          f"{load_after:.2f} after (above 0: other jobs shared the cores)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
