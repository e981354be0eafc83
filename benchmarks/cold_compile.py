"""Cold compile time of the ``numba`` backend: a new process's first LSTM forward and first
``fit`` step, with an empty on-disk Numba cache, for chosen activations.

    python benchmarks/cold_compile.py                                # tanh/sigmoid, 3 rounds
    python benchmarks/cold_compile.py --pairs tanh/sigmoid relu/hard_sigmoid softsign/elu \\
        --rounds 5
    python benchmarks/cold_compile.py --tree OTHER_CHECKOUT          # compare another checkout

Each measurement is a child process given a fresh ``NUMBA_CACHE_DIR``: it builds an
``LSTM(4)`` on ``(8, 5, 3)`` float32 inputs and calls it (the first forward), then fits a
``Sequential([Input((5, 3)), LSTM(4)])`` for one batch (the first training step; the forward
kernels are compiled by then, so this is mostly the backward's compile). Both wall and CPU
seconds are printed: on a shared machine the CPU time is the steadier of the two. ``--tree``
puts another checkout first on ``PYTHONPATH`` (the numlstm package of that folder), and the
rounds alternate between the trees so that a change in the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import sys, time
import numpy as np
import numlstm
act, rec = sys.argv[1], sys.argv[2]
x = np.random.default_rng(0).normal(size=(8, 5, 3)).astype(np.float32)
y = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
wall, cpu = time.perf_counter(), time.process_time()
numlstm.LSTM(4, activation=act, recurrent_activation=rec, backend="numba", seed=0)(x)
forward = (time.perf_counter() - wall, time.process_time() - cpu)
model = numlstm.Sequential([numlstm.Input((5, 3)), numlstm.LSTM(
    4, activation=act, recurrent_activation=rec, seed=1)], backend="numba")
model.compile("sgd", "mse")
wall, cpu = time.perf_counter(), time.process_time()
model.fit(x, y, epochs=1, batch_size=8, verbose=0)
fit = (time.perf_counter() - wall, time.process_time() - cpu)
print(*forward, *fit)
"""


def measure(tree: Path, activation: str, recurrent: str) -> list[float]:
    """``[forward wall, forward CPU, fit wall, fit CPU]`` of one cold child process."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(tree)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        out = subprocess.run([sys.executable, "-c", CHILD, activation, recurrent], env=env,
                             capture_output=True, text=True, check=True).stdout
    return [float(v) for v in out.split()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", default=["tanh/sigmoid"],
                        help="activation/recurrent_activation pairs (default: tanh/sigmoid)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, action="append", default=[],
                        help="another checkout to measure too (its numlstm package)")
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent.parent          # this checkout's numlstm first
    trees = [here] + [t.resolve() for t in args.tree]
    results: dict = {}
    for _ in range(args.rounds):
        for tree in trees:
            for pair in args.pairs:
                activation, recurrent = pair.split("/")
                results.setdefault((tree, pair), []).append(
                    measure(tree, activation, recurrent))
    print(f"{'tree':<28} {'pair':<22} {'forward wall/CPU s':>20} {'fit wall/CPU s':>18}"
          f"   (medians of {args.rounds})")
    for (tree, pair), rows in results.items():
        medians = [statistics.median(column) for column in zip(*rows)]
        name = "this checkout" if tree == here else str(tree)[-28:]
        print(f"{name:<28} {pair:<22} {medians[0]:>9.1f} / {medians[1]:<8.1f} "
              f"{medians[2]:>7.1f} / {medians[3]:<8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
