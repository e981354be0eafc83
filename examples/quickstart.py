"""A first numlstm run: one LSTM layer forward on the default backend, checked against the
NumPy reference, with shapes, the backend that ran and timings printed.

    python examples/quickstart.py
"""

import time

import numpy as np

import numlstm


def main() -> None:
    rng = np.random.default_rng(0)
    # A batch shaped like MNIST read row by row: 32 images, 28 rows of 28 pixels.
    x = rng.random((32, 28, 28), dtype=np.float32)
    mask = np.ones((32, 28), dtype=bool)
    mask[::4, 20:] = False                       # every 4th sequence is only 20 steps long

    layer = numlstm.LSTM(128, return_sequences=True, return_state=True, seed=0)

    start = time.perf_counter()
    sequence, h, c = layer(x, mask=mask)         # first call: builds weights, compiles kernels
    first = time.perf_counter() - start
    times = []
    for _ in range(10):
        start = time.perf_counter()
        layer(x, mask=mask)
        times.append(time.perf_counter() - start)
    steady = float(np.median(times))

    print(f"numlstm {numlstm.__version__}")
    for name, status in numlstm.available_backends().items():
        print(f"  backend {name:6s} {'usable' if status.available else 'not usable: ' + status.reason}")
    print(f"input {x.shape} -> sequence {sequence.shape}, h {h.shape}, c {c.shape}")
    print(f"parameters: {layer.count_params()}")
    print(f"ran on backend: {layer.last_backend} ({numlstm.get_backend(layer.last_backend).describe()})")
    print(f"first call {first * 1e3:.1f} ms (includes JIT compilation unless cached), "
          f"then {steady * 1e3:.2f} ms (median of {len(times)} calls)")

    with numlstm.use_backend("numpy"):
        reference, _, _ = layer(x, mask=mask)
    print(f"max |difference| from the numpy reference: {np.abs(sequence - reference).max():.2e}")


if __name__ == "__main__":
    main()
