"""Time numlstm's CPU backends side by side on one shape, after checking them against the
reference.

    python benchmarks/backends_side_by_side.py                       # batch 32, 28 steps, 28 features, 128 units
    python benchmarks/backends_side_by_side.py --batch 64 --timesteps 100 --features 64 --units 256

For each backend: the largest difference from the ``numpy`` reference over outputs and all
gradients, each relative to that array's largest magnitude, the first call's time (JIT compilation or loading the on-disk cache) apart from the
steady state, then the median, min and max of ``--repeats`` calls for the forward (inference)
and forward + backward (training), in float32, with GFLOP/s (forward ``2·T·B·4H·(D+H)``,
training 3× that) and the ratio to the reference. The machine is shared and noisy: compare
ratios from one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import numlstm
from numlstm.functional import lstm_backward, lstm_forward


def timed(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--timesteps", type=int, default=28)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backends", default="numpy,numba")
    args = parser.parse_args()
    B, T, D, H = args.batch, args.timesteps, args.features, args.units

    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    weights = [(rng.normal(size=s) * 0.1).astype(np.float32)
               for s in ((D, 4 * H), (H, 4 * H), (4 * H,))]
    grad_outputs = rng.normal(size=(B, T, H)).astype(np.float32)
    flops = 2 * T * B * 4 * H * (D + H)

    def forward(backend, cache=False):
        return lstm_forward(x, *weights, backend=backend, return_cache=cache)

    def train(backend):
        result = forward(backend, cache=True)
        return result, lstm_backward(result.cache, grad_outputs=grad_outputs)

    print(f"shape: batch {B}, timesteps {T}, features {D}, units {H}; float32; "
          f"numlstm {numlstm.__version__}")
    reference = train("numpy")
    rows = []
    for backend in args.backends.split(","):
        start = time.perf_counter()
        result, grads = train(backend)
        first = time.perf_counter() - start
        difference = max(
            float(np.abs(np.asarray(a) - b).max() / np.abs(b).max()) for a, b in zip(
                (result.outputs, grads.x, grads.kernel, grads.recurrent_kernel, grads.bias),
                (reference[0].outputs, reference[1].x, reference[1].kernel,
                 reference[1].recurrent_kernel, reference[1].bias)))
        fwd = timed(lambda: forward(backend), args.repeats)
        trn = timed(lambda: train(backend), args.repeats)
        rows.append((backend, difference, first, fwd, trn))

    base = {name: (statistics.median(f), statistics.median(t)) for name, _, _, f, t in rows}
    print(f"{'backend':8s} {'rel diff':>9s} {'first call':>10s} | "
          f"{'forward ms (med/min/max)':>26s} {'GFLOP/s':>7s} {'speed-up':>8s} | "
          f"{'train ms (med/min/max)':>24s} {'GFLOP/s':>7s} {'speed-up':>8s}")
    for backend, difference, first, fwd, trn in rows:
        f_med, t_med = statistics.median(fwd), statistics.median(trn)
        print(f"{backend:8s} {difference:9.1e} {first * 1e3:8.0f}ms | "
              f"{f_med * 1e3:8.2f} {min(fwd) * 1e3:8.2f} {max(fwd) * 1e3:8.2f} "
              f"{flops / f_med / 1e9:7.1f} {base['numpy'][0] / f_med:7.2f}x | "
              f"{t_med * 1e3:7.2f} {min(trn) * 1e3:7.2f} {max(trn) * 1e3:8.2f} "
              f"{3 * flops / t_med / 1e9:7.1f} {base['numpy'][1] / t_med:7.2f}x")


if __name__ == "__main__":
    main()
