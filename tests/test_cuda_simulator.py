"""The ``cuda`` backend beyond the shared parity suite: both forward paths, the persistent
kernel declining visibly, device arrays in and out, ``lstm_step``, launch sizes, and the
registry's answers. Runs in Numba's CUDA simulator on a machine without a GPU (see conftest)
and on the device where there is one.
"""

import contextlib
import os
import subprocess
import sys


import numpy as np
import pytest

import numlstm
from numlstm import BackendUnavailableError
from numlstm.activations import ACTIVATION_CODES
from numlstm.bench import within_tolerance

from conftest import CUDA_SIMULATOR, make_problem

STATUS = numlstm.available_backends()["cuda"]
pytestmark = pytest.mark.skipif(not STATUS.available,
                                reason=f"cuda backend not usable here: {STATUS.reason}")


class RecordingCudaBackend:
    """The ``cuda`` backend as these tests drive it. Assigning ``persistent`` or ``gemm`` sets
    that option (``CudaBackend.options``) until the test ends; ``last_path``, ``last_gemm``
    and the like read the ``details`` of the latest result the backend returned, recorded by
    wrapping its entry points (a result's details belong to the call, not to the backend).
    Anything else is the backend's own attribute."""

    _OPTIONS = ("persistent", "gemm")

    def __init__(self, backend, monkeypatch):
        object.__setattr__(self, "backend", backend)
        object.__setattr__(self, "options", contextlib.ExitStack())
        object.__setattr__(self, "results", {"forward": [], "backward": [], "any": []})
        for method, kind in (("lstm_forward", "forward"), ("lstm_backward", "backward")):
            original = getattr(backend, method)

            def recorded(*args, _original=original, _kind=kind, **kwargs):
                result = _original(*args, **kwargs)
                self.results[_kind].append(result)
                self.results["any"].append(result)
                return result
            monkeypatch.setattr(backend, method, recorded)

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def __setattr__(self, name, value):
        if name in self._OPTIONS:
            self.options.enter_context(self.backend.options(**{name: value}))
        else:
            setattr(self.backend, name, value)

    def _latest(self, kind, key):
        return self.results[kind][-1].details[key]

    last_path = property(lambda self: self._latest("forward", "path"))
    last_path_note = property(lambda self: self._latest("forward", "path_note"))
    last_backward_path = property(lambda self: self._latest("backward", "path"))
    last_backward_path_note = property(lambda self: self._latest("backward", "path_note"))
    last_gemm = property(lambda self: self._latest("any", "gemm"))   # of the latest call


@pytest.fixture
def cuda_backend(monkeypatch):
    """The backend (see :class:`RecordingCudaBackend`), with the persistent kernel tried up to
    its real batch limit (conftest lowers it for the parity suite)."""
    from numlstm.backends import cuda_backend as launch
    monkeypatch.setattr(launch, "PERSISTENT_MAX_BATCH", 8)
    recording = RecordingCudaBackend(numlstm.get_backend("cuda"), monkeypatch)
    with recording.options:
        yield recording


def _compare(result, reference, dtype):
    for name, expected in reference.items():
        assert within_tolerance(name, result[name], expected, dtype), name


PATH_CASES = {  # (batch, timesteps, features, units), options
    "holes-reverse": ((3, 5, 2, 3), dict(mask="holes", reverse=True)),
    "dropout-zero-output": ((2, 4, 3, 5), dict(mask="random", dropout=True,
                                               zero_output_for_mask=True)),
    "batch1-hard-sigmoid": ((1, 6, 3, 7), dict(recurrent_activation="hard_sigmoid_keras2",
                                               activation="relu")),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(PATH_CASES))
def test_persistent_and_per_step_paths_both_match_the_reference(cuda_backend, case, dtype,
                                                                monkeypatch):
    """Forward and backward, each on its persistent kernel and on its per-step kernels."""
    from numlstm.backends import cuda_backend as launch
    monkeypatch.setattr(launch, "PERSISTENT_MAX_THREADS", 64)
    shape, options = PATH_CASES[case]
    problem = make_problem(*shape, seed=3, **options)
    reference = problem.run("numpy")
    for mode, path in (("auto", "persistent"), ("never", "per-step")):
        cuda_backend.persistent = mode
        if dtype == np.float64:
            result = problem.run("cuda")
        else:
            result = problem.astype(np.float32).run("cuda")
        assert cuda_backend.last_path == path, cuda_backend.last_path_note
        assert cuda_backend.last_backward_path == path, cuda_backend.last_backward_path_note
        _compare(result, reference, dtype)


def test_persistent_path_declines_visibly(cuda_backend, monkeypatch):
    from numlstm.backends import cuda_backend as launch
    monkeypatch.setattr(launch, "PERSISTENT_MAX_THREADS", 1024)
    # The limits below are what a block may use; on a GPU the opt-in would raise them.
    monkeypatch.setattr(launch, "PERSISTENT_OPT_IN_SHARED", False)
    x = np.ones((9, 2, 3), np.float32)
    kernel, recurrent = np.ones((3, 8), np.float32), np.ones((2, 8), np.float32)
    numlstm.functional.lstm_forward(x, kernel, recurrent, backend="cuda")
    assert cuda_backend.last_path == "per-step"
    assert "batch 9 > 8" in cuda_backend.last_path_note

    numlstm.functional.lstm_forward(x[:2], kernel, recurrent, backend="cuda")
    assert cuda_backend.last_path == "persistent"
    assert ("1 block(s) of 2 units x 2 rows x 2 k-parts" if CUDA_SIMULATOR else
            "units x 2 rows") in \
        cuda_backend.last_path_note

    # Too many units for one block's shared memory: on a GPU several blocks share them, the
    # simulator (which cannot synchronise a grid) declines. A float32 unit of this layer needs
    # 4 weights x 2 units + 4 partial sums x 2 rows, plus the block's staged h (2 x 2): one unit
    # fits in 80 bytes, two need 144.
    monkeypatch.setattr(launch, "PERSISTENT_SHARED_BYTES", 100)
    numlstm.functional.lstm_forward(x[:2], kernel, recurrent, backend="cuda")
    if CUDA_SIMULATOR:
        assert cuda_backend.last_path == "per-step"
        assert "cannot synchronise a grid" in cuda_backend.last_path_note
    monkeypatch.setattr(launch, "PERSISTENT_SHARED_BYTES", 40)
    numlstm.functional.lstm_forward(x[:2], kernel, recurrent, backend="cuda")
    assert cuda_backend.last_path == "per-step"
    assert "does not fit in 40 bytes of shared memory" in cuda_backend.last_path_note


@pytest.mark.skipif(CUDA_SIMULATOR, reason="the CUDA simulator runs one block at a time and "
                    "cannot synchronise a grid; the multi-block persistent kernel is proven on "
                    "a GPU")
def test_persistent_kernel_across_several_blocks_on_the_device(cuda_backend):
    problem = make_problem(4, 6, 5, 300, mask="holes", dropout=True, seed=4)
    reference = problem.run("numpy")
    result = problem.run("cuda")
    assert cuda_backend.last_path == "persistent", cuda_backend.last_path_note
    assert "1 block(s)" not in cuda_backend.last_path_note
    assert cuda_backend.last_backward_path == "persistent", \
        cuda_backend.last_backward_path_note
    assert "1 block(s)" not in cuda_backend.last_backward_path_note
    _compare(result, reference, np.float64)


def test_device_arrays_in_give_device_arrays_out(cuda_backend):
    from numba import cuda
    problem = make_problem(2, 4, 3, 3, mask="random", dropout=True, seed=6)
    reference = problem.run("numpy")
    args = {k: v for k, v in vars(problem).items() if isinstance(v, np.ndarray)}
    on_device = {k: cuda.to_device(v) for k, v in args.items()}
    for arrays, is_device in ((args, False), (on_device, True)):
        forward = cuda_backend.lstm_forward(
            arrays["x"], arrays["kernel"], arrays["recurrent_kernel"], arrays["bias"],
            h0=arrays["h0"], c0=arrays["c0"], mask=arrays["mask"],
            recurrent_dropout_mask=arrays["recurrent_dropout_mask"], reverse=False,
            activation=0, recurrent_activation=1, zero_output_for_mask=False,
            return_cache=True)
        grads = cuda_backend.lstm_backward(forward.cache, grad_outputs=arrays["grad_outputs"],
                                           grad_h=arrays["grad_h"], grad_c=arrays["grad_c"])
        results = {"outputs": forward.outputs, "h": forward.h, "c": forward.c,
                   **{f"d_{n}": getattr(grads, n) for n in
                      ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0")}}
        for name, value in results.items():
            assert bool(getattr(value, "__cuda_ndarray__", False)) == is_device, name
            assert isinstance(value, np.ndarray) != is_device, name
            np.testing.assert_allclose(cuda_backend.to_numpy(value), reference[name],
                                       rtol=0, atol=1e-10, err_msg=name)


def test_strided_device_arrays_are_made_contiguous(cuda_backend):
    from numba import cuda
    problem = make_problem(2, 3, 4, 3, seed=9)
    wide = np.repeat(problem.x, 2, axis=-1)
    strided = cuda.to_device(wide)[:, :, ::2]
    assert not strided.is_c_contiguous()
    forward = numlstm.get_backend("numpy").lstm_forward(
        problem.x, problem.kernel, problem.recurrent_kernel, problem.bias, h0=problem.h0,
        c0=problem.c0, mask=None, recurrent_dropout_mask=None, reverse=False, activation=0,
        recurrent_activation=1, zero_output_for_mask=False, return_cache=False)
    result = cuda_backend.lstm_forward(
        strided, problem.kernel, problem.recurrent_kernel, problem.bias, h0=problem.h0,
        c0=problem.c0, mask=None, recurrent_dropout_mask=None, reverse=False, activation=0,
        recurrent_activation=1, zero_output_for_mask=False, return_cache=False)
    np.testing.assert_allclose(result.outputs.copy_to_host(), forward.outputs, atol=1e-12)


@pytest.mark.parametrize("out", ["new", "host", "device"])
def test_lstm_step_matches_the_reference(cuda_backend, out):
    from numba import cuda
    problem = make_problem(3, 1, 4, 5, seed=12)
    x_t = problem.x[:, 0]
    codes = dict(activation=ACTIVATION_CODES["tanh"],
                 recurrent_activation=ACTIVATION_CODES["sigmoid"])
    expected = numlstm.get_backend("numpy").lstm_step(
        x_t, problem.kernel, problem.recurrent_kernel, problem.bias, problem.h0, problem.c0,
        **codes)
    if out == "new":
        h, c = cuda_backend.lstm_step(x_t, problem.kernel, problem.recurrent_kernel,
                                      problem.bias, problem.h0, problem.c0, **codes)
    elif out == "host":
        h, c = problem.h0.copy(), problem.c0.copy()
        result = cuda_backend.lstm_step(x_t, problem.kernel, problem.recurrent_kernel,
                                        problem.bias, h, c, **codes, out_h=h, out_c=c)
        assert result[0] is h and result[1] is c
    else:
        h, c = cuda.to_device(problem.h0), cuda.to_device(problem.c0)
        result = cuda_backend.lstm_step(cuda.to_device(x_t), problem.kernel,
                                        problem.recurrent_kernel, problem.bias, h, c, **codes,
                                        out_h=h, out_c=c)
        assert result[0] is h and result[1] is c
        h, c = h.copy_to_host(), c.copy_to_host()
    np.testing.assert_allclose(h, expected[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(c, expected[1], rtol=0, atol=1e-12)


def test_every_kernel_spans_several_blocks_and_grid_stride_loops(cuda_backend, monkeypatch):
    """The test launch configuration (conftest) really splits a small problem: every kernel
    runs on more than one block, and at least one grid is smaller than its work."""
    from numlstm.backends import cuda_backend as launch
    launches = []
    original = launch._blocks

    def recording(count, per_block):
        blocks = original(count, per_block)
        launches.append((count, per_block, blocks))
        return blocks

    monkeypatch.setattr(launch, "_blocks", recording)
    cuda_backend.persistent = "never"
    make_problem(3, 3, 3, 5, mask="holes", dropout=True, seed=1).run("cuda")
    assert launches
    assert all(blocks * per_block < count or blocks > 1 for count, per_block, blocks in launches
               if count > per_block)
    assert any(blocks * per_block < count for count, per_block, blocks in launches)
    # 4-thread 1-D blocks, 2 x 2 tiles, and GEMM blocks of 2 x 2 threads that each compute
    # GEMM_REGISTERS x GEMM_REGISTERS outputs.
    from numlstm.backends.cuda_kernels import GEMM_REGISTERS
    assert {per_block for _, per_block, _ in launches} <= {2, 4, 2 * GEMM_REGISTERS}


def test_describe_names_the_simulator_or_the_device(cuda_backend):
    text = cuda_backend.describe()
    if CUDA_SIMULATOR:
        assert "simulator" in text and "simulator" in STATUS.note
    else:
        assert "compute capability" in text


def test_simulator_set_after_numba_import_is_reported():
    code = ("import os, numba; os.environ['NUMBA_ENABLE_CUDASIM'] = '1'; import numlstm\n"
            "try:\n    numlstm.get_backend('cuda')\nexcept numlstm.BackendUnavailableError as e:"
            "\n    print(e)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if not CUDA_SIMULATOR:
        pytest.skip("a GPU is present: numba.cuda is usable whatever the variable says")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    assert "NUMBA_ENABLE_CUDASIM=1 is set but" in done.stdout
    assert "before importing numba" in done.stdout


def test_without_a_gpu_choosing_cuda_or_cupy_raises_the_unavailable_error(monkeypatch):
    import numlstm.backends as registry
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    monkeypatch.setattr(registry, "_nvidia_driver_missing", lambda: True)
    monkeypatch.setattr(registry, "_instances", {})
    for name in ("cuda", "cupy"):
        status = numlstm.available_backends()[name]
        assert not status.available and status.reason and status.fix
        with pytest.raises(BackendUnavailableError) as info:
            numlstm.get_backend(name)
        assert status.reason in str(info.value)


def test_step_launches_fall_back_to_plain_launches_when_they_cannot_be_prepared(cuda_backend):
    """Per-step kernels go through ``StepLauncher``: on a GPU it converts the arguments once
    (numba-cuda internals); where that fails it must say so and keep launching plainly, with
    the same results. The simulator's kernels lack those internals, so posing as a GPU here
    drives exactly that fallback, forward and backward."""
    problem = make_problem(3, 4, 2, 3, mask="holes", dropout=True, seed=8)
    reference = problem.run("numpy")
    cuda_backend.persistent = "never"
    assert "plain launches (simulator)" in (problem.run("cuda") and cuda_backend.last_path_note)
    simulator = cuda_backend.simulator
    cuda_backend.simulator = False
    try:
        result = problem.run("cuda")
    finally:
        cuda_backend.simulator = simulator
    assert "plain launches (preparing failed" in cuda_backend.last_path_note
    _compare(result, reference, np.float64)


@pytest.mark.parametrize("tile", [1, 3, 4])
def test_column_sums_reduces_rows_in_parallel(cuda_backend, tile):
    """The bias-gradient reduction for block edges that are and are not powers of two, more
    column tiles than blocks (grid-stride) and more rows than threads per column."""
    from numba import cuda
    from numlstm.backends import cuda_kernels
    values = np.random.default_rng(tile).standard_normal((11, 10))
    out = cuda.device_array(10, np.float64)
    cuda_kernels.column_sums[(2, 1), (tile, tile)](cuda.to_device(values), out)
    np.testing.assert_allclose(out.copy_to_host(), values.sum(axis=0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["auto", "never"])
def test_repeated_calls_reuse_the_pooled_device_scratch(cuda_backend, monkeypatch, mode):
    """The second forward + backward on the same shapes allocates none of the pooled scratch
    arrays (input projection, h buffers, dz, dropped h, placeholders), and still matches the
    reference; a new shape gets its own."""
    from numba import cuda
    cuda_backend.persistent = mode
    cuda_backend.clear_workspace()
    allocations = []
    original = cuda.device_array

    def counting(shape, dtype=np.float64, *args, **kwargs):
        allocations.append(tuple(np.atleast_1d(shape)))
        return original(shape, dtype, *args, **kwargs)

    monkeypatch.setattr(cuda, "device_array", counting)
    problem = make_problem(2, 3, 2, 3, mask="random", dropout=True, seed=5)
    reference = problem.run("numpy")
    calls = []
    for _ in range(2):
        allocations.clear()
        _compare(problem.run("cuda"), reference, np.float64)
        calls.append(sorted(allocations))
    # x_proj and dz (2, 3, 12), the dropped h (2, 3, 3), the bias placeholder (0,), and the
    # persistent path's h buffers (2, 2, 3).
    pooled = [(0,), (2, 3, 3), (2, 3, 12), (2, 3, 12)] + ([(2, 2, 3)] if mode == "auto" else [])
    for shape in pooled:
        calls[0].remove(shape)
    assert calls[1] == calls[0]
    allocations.clear()
    make_problem(2, 4, 2, 3, seed=5).run("cuda")
    assert (2, 4, 12) in allocations


def test_gemms_through_cublas_keep_transposes_and_bias_right(cuda_backend, monkeypatch):
    """The cuBLAS route of the GEMMs (CuPy on a GPU) with a NumPy stand-in for CuPy over the
    simulator's device arrays: which operand is transposed and where the bias goes are the
    backend's own logic; cuBLAS itself is exercised by the GPU run. ``gemm='tiled'`` and the
    simulator's default still use the kernel."""
    import types as module_types
    stand_in = module_types.ModuleType("cupy")
    stand_in.asarray = lambda array: array._ary if hasattr(array, "_ary") else np.asarray(array)
    stand_in.matmul = np.matmul
    monkeypatch.setitem(sys.modules, "cupy", stand_in)
    problem = make_problem(3, 4, 5, 3, mask="random", dropout=True, seed=11)
    reference = problem.run("numpy")
    cuda_backend.persistent = "never"
    try:
        for mode, expected in (("cublas", "cuBLAS (CuPy)"), ("tiled", "tiled kernel"),
                               ("auto", "tiled kernel")):
            cuda_backend.gemm = mode
            _compare(problem.run("cuda"), reference, np.float64)
            assert cuda_backend.last_gemm == expected
    finally:
        cuda_backend.gemm = "auto"


def test_gemm_auto_falls_back_to_the_kernel_when_cupy_cannot_run(cuda_backend, monkeypatch):
    """A CuPy that imports but cannot run (built for another CUDA, say) must not break the
    backend in ``gemm='auto'``: the tiled kernel takes over and ``last_gemm`` says why;
    ``gemm='cublas'`` raises instead."""
    import types as module_types
    broken = module_types.ModuleType("cupy")

    def asarray(array):
        raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")
    broken.asarray = asarray
    monkeypatch.setitem(sys.modules, "cupy", broken)
    monkeypatch.setattr(cuda_backend.backend, "simulator", False)   # "auto" tries cuBLAS off it only
    monkeypatch.setattr(cuda_backend.backend, "_cublas_unusable", "")
    problem = make_problem(2, 3, 2, 3, seed=13)
    reference = problem.run("numpy")
    cuda_backend.persistent = "never"
    _compare(problem.run("cuda"), reference, np.float64)
    assert cuda_backend.last_gemm.startswith("tiled kernel (cuBLAS through CuPy failed: ")
    cuda_backend.gemm = "cublas"
    try:
        with pytest.raises(RuntimeError, match="driver version"):
            problem.run("cuda")
    finally:
        cuda_backend.gemm = "auto"


def test_a_timestep_beyond_32_bit_indices_is_refused_clearly(cuda_backend, monkeypatch):
    """The backward kernels split one timestep's flat (row, unit) indices with 32-bit
    division; a training forward whose batch x units reaches the limit is refused before any
    kernel runs, while inference (which never splits) runs on (the limit is patched small
    here: the real one, 2**32, needs gigabytes of states)."""
    from numlstm.backends import cuda_kernels
    problem = make_problem(3, 2, 2, 4, seed=1).astype(np.float32)
    reference = problem.run("numpy")
    monkeypatch.setattr(cuda_kernels, "INDEX_LIMIT", 3 * 4)
    with pytest.raises(ValueError, match=r"batch x units must be below 12; got batch=3, "
                                         r"units=4"):
        problem.run("cuda")
    inference = problem.forward("cuda", return_cache=False)
    outputs = numlstm.get_backend("cuda").to_numpy(inference.outputs)
    assert within_tolerance("outputs", outputs, reference["outputs"], np.float32)
    monkeypatch.setattr(cuda_kernels, "INDEX_LIMIT", 3 * 4 + 1)
    _compare(problem.run("cuda"), reference, np.float32)
