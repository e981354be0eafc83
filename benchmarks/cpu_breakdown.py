"""Where the numba backend's forward time goes: GEMMs, gates, the rest (float32, one thread).

    python benchmarks/cpu_breakdown.py                  # configs b, c, d, every engine
    python benchmarks/cpu_breakdown.py --configs cd --engines numlstm openblas --cpu-time

For each configuration and recurrent-product engine (``numlstm``: numlstm's packed kernel,
``mkl``, ``openblas``; see ``numlstm.set_cpu_blas``) it times, in one process, interleaved round
by round:

* ``forward``: the backend's whole inference forward (``lstm_forward``, one layer);
* ``projection``: the input GEMM ``x (B·T, D) @ kernel (D, 4H)`` alone, as the engine does it
  (numlstm's engine with its packed kernel, the others through OpenBLAS);
* ``recurrent``: the T per-step products ``h (B, H) @ U (H, 4H)`` alone, as the engine does
  them (OpenBLAS ``np.dot``; oneMKL's or numlstm's packed GEMM with the weights packed once);
* ``gates``: T passes of the fused gate update over the ``(B, H)`` units alone;

and prints ``other = forward - (projection + recurrent + gates)`` (bias add, copies, masks
checks, Python and thread overhead), each as ms and as a share of the forward, plus the
GEMMs' GFLOP/s. Medians of the rounds. ``--cpu-time`` reads the calling thread's CPU time
instead of the wall clock: everything here runs on one thread, so on a machine busy with other
work that measures the work done rather than the time spent waiting for a core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from numba import njit

import numlstm
from numlstm import bench as bm
from numlstm.activations import SIGMOID, TANH
from numlstm.backends import mkl_blas, packed_gemm
from numlstm.backends.numba_kernels import _gates_forward_row

_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(**_JIT)
def _recurrent_openblas(h, recurrent_kernel, out, timesteps):
    for _ in range(timesteps):
        np.dot(h, recurrent_kernel, out)


@njit(**_JIT)
def _recurrent_mkl(h, packed, out, timesteps):
    rows, units = h.shape
    width = out.shape[1]
    for _ in range(timesteps):
        mkl_blas.sgemm_compute(mkl_blas.ROW_MAJOR, mkl_blas.NO_TRANS, mkl_blas.PACKED, rows,
                               width, units, h.ctypes.data, units, packed.ctypes.data, width,
                               np.float32(1.0), out.ctypes.data, width)


@njit(**_JIT)
def _products_numlstm(a, panels, out, repeats, accumulate):
    tile = np.empty((4, packed_gemm.PANEL), np.float32)
    for _ in range(repeats):
        packed_gemm.packed_matmul(a, panels, out, out.shape[1], accumulate, tile)


@njit(**_JIT)
def _gates_only(z, c, h, timesteps):
    units = c.shape[1]
    for _ in range(timesteps):
        for b in range(z.shape[0]):
            _gates_forward_row(z[b], c[b], h[b], units, TANH, SIGMOID)


def breakdown(config: str, blas: str, rounds: int, clock=time.perf_counter) -> dict:
    shape = bm.CONFIGS[config]
    problem = bm.make_problem(shape, "float32")
    x = problem.x
    kernel, recurrent_kernel, bias = problem.weights[0]
    batch, timesteps, features = x.shape
    units = recurrent_kernel.shape[0]
    rng = np.random.default_rng(0)
    h = rng.standard_normal((batch, units)).astype(np.float32) * 0.1
    out = np.empty((batch, 4 * units), np.float32)
    z0 = rng.standard_normal((batch, 4 * units)).astype(np.float32)
    z, c, h_new = z0.copy(), np.zeros((batch, units), np.float32), np.empty_like(h)
    projection_out = np.empty((batch * timesteps, 4 * units), np.float32)
    x_flat = x.reshape(batch * timesteps, features)

    def blas_projection():
        np.dot(x_flat, kernel, out=projection_out)

    if blas == "numlstm":
        panels = packed_gemm.pack_panels(recurrent_kernel, False, np.empty(
            packed_gemm.panels_shape(recurrent_kernel.shape, False), np.float32))
        kernel_panels = packed_gemm.pack_panels(kernel, False, np.empty(
            packed_gemm.panels_shape(kernel.shape, False), np.float32))

        def recurrent():
            _products_numlstm(h, panels, out, timesteps, True)

        def projection():      # numlstm's engine projects the inputs with its kernel too
            _products_numlstm(x_flat, kernel_panels, projection_out, 1, False)
    elif blas == "mkl":
        packed = mkl_blas.pack_b(recurrent_kernel, batch, False, mkl_blas.aligned_buffer(
            mkl_blas.pack_size(units, 4 * units, batch, False)))

        def recurrent():
            _recurrent_mkl(h, packed, out, timesteps)
        projection = blas_projection
    else:
        def recurrent():
            _recurrent_openblas(h, recurrent_kernel, out, timesteps)
        projection = blas_projection

    def forward():
        numlstm.functional.lstm_forward(x, kernel, recurrent_kernel, bias, backend="numba")

    parts = {"forward": forward,
             "projection": projection,
             "recurrent": recurrent,
             "gates": lambda: _gates_only(z, c, h_new, timesteps)}
    times = {name: [] for name in parts}
    with bm.thread_limit(1), numlstm.use_cpu_blas(blas):
        for part in parts.values():
            part()
        for _ in range(rounds):
            for name, part in parts.items():
                start = clock()
                part()
                times[name].append((clock() - start) * 1e3)
    ms = {name: statistics.median(values) for name, values in times.items()}
    ms["other"] = ms["forward"] - ms["projection"] - ms["recurrent"] - ms["gates"]
    flops = {"projection": 2 * batch * timesteps * features * 4 * units,
             "recurrent": 2 * batch * timesteps * units * 4 * units}
    return {"ms": ms, "gflops": {k: v / (ms[k] * 1e-3) / 1e9 for k, v in flops.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="bcd")
    parser.add_argument("--engines", nargs="+", choices=("numlstm", "mkl", "openblas"),
                        default=None, help="default: every engine usable here")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the thread's CPU time instead of the wall clock")
    args = parser.parse_args(argv)
    mkl = numlstm.cpu_blas_info()["mkl"]
    if args.engines is None:
        args.engines = ["numlstm", "mkl", "openblas"] if mkl else ["numlstm", "openblas"]
    if "mkl" in args.engines and not mkl:
        parser.error('--engines mkl needs oneMKL: pip install "numlstm[mkl]"')
    clock = time.thread_time if args.cpu_time else time.perf_counter
    print(f"float32, 1 thread, {'CPU' if args.cpu_time else 'wall-clock'} time; ms (share of "
          "the forward); GEMM GFLOP/s")
    for config in args.configs:
        for blas in args.engines:
            result = breakdown(config, blas, args.rounds, clock)
            ms, forward = result["ms"], result["ms"]["forward"]
            shares = ", ".join(f"{name} {ms[name]:.2f} ({100 * ms[name] / forward:.0f}%)"
                               for name in ("projection", "recurrent", "gates", "other"))
            print(f"{config} [{blas}] forward {forward:.2f} ms = {shares}; GEMM "
                  f"{result['gflops']['projection']:.0f} / {result['gflops']['recurrent']:.0f}"
                  " GFLOP/s (projection / recurrent)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
