"""Shared helpers for the test suite: random LSTM problems and backend lists.

GPU kernels in every test run: on a machine without an NVIDIA driver, and unless the user chose
otherwise, ``NUMBA_ENABLE_CUDASIM=1`` is set here, before anything imports Numba (Numba reads it
once, at import), so that the ``cuda`` backend's kernels run in Numba's CUDA simulator and the
whole parity suite holds them to the reference. With a GPU the same tests run on the device.
Either way the launch configuration is patched small (see :func:`_small_launches`).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import numlstm.backends as _registry   # imports no Numba

if "NUMBA_ENABLE_CUDASIM" not in os.environ and _registry._nvidia_driver_missing():
    if "numba" in sys.modules:
        raise RuntimeError("Numba was imported before tests/conftest.py could enable the CUDA "
                           "simulator; run pytest with NUMBA_ENABLE_CUDASIM=1 set")
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
#: True when the ``cuda`` backend's kernels run in Numba's CUDA simulator in this test run.
CUDA_SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

import numlstm  # noqa: E402
from numlstm.bench import ENGINE_VARIANTS, Problem  # noqa: E402
from numlstm.bench import relative_norm_error  # noqa: E402,F401  (the tests' import path)


def _small_launches() -> None:
    """Tiny blocks and grids for the ``cuda`` backend, so that on test-sized problems every
    kernel spans several blocks (2 x 2 tiles, 4-thread 1-D blocks) and grids are small enough
    that the grid-stride loops go round more than once. The persistent kernels (forward and
    backward) are limited to batches of 1-2 and 16 threads a block (their reductions split
    across up to that many threads), so that the parity suite runs them for the smallest
    shapes and the per-step kernels for the others (on a GPU as in the simulator)."""
    from numlstm.backends import cuda_backend
    cuda_backend.THREADS_PER_BLOCK = 4
    cuda_backend.MAX_GRID_BLOCKS = 2
    cuda_backend.PERSISTENT_MAX_BATCH = 2
    cuda_backend.PERSISTENT_MAX_THREADS = 16
    if CUDA_SIMULATOR:
        _make_simulated_shared_memory_thread_safe()
        # The simulator runs every GPU thread as a Python thread and polls them from the main
        # thread; handing the GIL over more often than every 5 ms makes it several times faster.
        sys.setswitchinterval(1e-5)


def _make_simulated_shared_memory_thread_safe() -> None:
    """Work around a race in numba-cuda's simulator (seen with 0.30): a block's threads create
    a static ``cuda.shared.array`` on first use, by a look-up then an insert without a lock, so
    two threads that get there together can each make their own "shared" array and the kernel
    silently computes garbage (1 launch in 30 of a tiled GEMM here). The same allocation, keyed
    by the calling line as the simulator does, under a lock."""
    import threading
    from numba.cuda import types
    from numba.cuda.np import numpy_support
    from numba.cuda.simulator import kernelapi

    original = kernelapi.FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:     # dynamic shared memory: one buffer
            return original(self, shape, dtype, alignment)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            found = self._allocations.get(key)
            if found is None:
                if isinstance(dtype, types.Type):
                    dtype = numpy_support.as_dtype(dtype)
                found = self._allocations[key] = np.empty(shape, dtype)
        return found

    kernelapi.FakeCUDAShared.array = array


_small_launches()

#: The backends the parity suite holds to the reference wherever they can run: every backend
#: this version implements (a registered backend without kernels has nothing to test yet).
ALL_BACKENDS = numlstm.backends.IMPLEMENTED_BACKENDS
#: Where the saved PyTorch and Keras fixtures live.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@functools.lru_cache(maxsize=None)
def load_fixture(case: str) -> dict[str, np.ndarray]:
    """Every array of ``tests/fixtures/{case}.npz``, read once (no pickles allowed)."""
    with np.load(FIXTURES / f"{case}.npz", allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


#: Backends that are not the reference.
CANDIDATE_BACKENDS = tuple(name for name in ALL_BACKENDS if name != "numpy")


#: Parity-suite names for the ``numba`` backend with its float32 recurrent products on one
#: engine (the harness's names; float64 is OpenBLAS on all).
NUMBA_ENGINES = ENGINE_VARIANTS
NUMBA_MKL = "numba-mkl"


def backend_param(name: str):
    """A pytest parameter for a backend, skipped with the registry's reason where unusable."""
    if name == NUMBA_MKL and not numlstm.cpu_blas_info()["mkl"]:
        return pytest.param(name, id=name, marks=pytest.mark.skip(
            reason="the numba backend's MKL path is not usable here: oneMKL is not installed "
                   '(pip install "numlstm[mkl]")'))
    if name in NUMBA_ENGINES:
        return pytest.param(name, id=name)
    status = numlstm.available_backends()[name]
    reason = status.reason
    if status.available:
        # The probe is cheap and cannot see everything (a driver without a device, say):
        # constructing the backend is the final word.
        try:
            numlstm.get_backend(name)
        except numlstm.BackendUnavailableError as error:
            reason = error.reason
    marks = () if not reason else pytest.mark.skip(
        reason=f"{name} backend not usable here: {reason}")
    return pytest.param(name, marks=marks, id=name)


def make_problem(batch=3, timesteps=5, features=4, units=3, *, seed=0, mask="none",
                 dropout=False, scale=0.5, **options) -> Problem:
    """A random float64 single-layer :class:`numlstm.bench.Problem` with nonzero initial
    states and state gradients; ``options`` are keyword options of ``lstm_forward``.

    ``mask``: "none"; "random" (any pattern); "holes" (random, plus a fully masked row, a row
    masked only at its first step and one masked only at its last, where the batch allows).
    """
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal
    if mask == "none":
        mask_array = None
    else:
        mask_array = rng.random((batch, timesteps)) > 0.35
        if mask == "holes" and batch and timesteps:
            mask_array[0] = False
            if batch > 1:
                mask_array[1] = True
                mask_array[1, 0] = False
            if batch > 2:
                mask_array[2] = True
                mask_array[2, -1] = False
    return Problem(
        x=normal((batch, timesteps, features)),
        kernel=scale * normal((features, 4 * units)),
        recurrent_kernel=scale * normal((units, 4 * units)),
        bias=scale * normal(4 * units),
        h0=0.5 * normal((batch, units)),
        c0=0.5 * normal((batch, units)),
        mask=mask_array,
        recurrent_dropout_mask=((rng.random((batch, units)) > 0.3) / 0.7 if dropout else None),
        grad_outputs=normal((batch, timesteps, units)),
        grad_h=normal((batch, units)),
        grad_c=normal((batch, units)),
        options=options,
    )

