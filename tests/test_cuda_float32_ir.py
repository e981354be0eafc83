"""float32 stays float32 on the GPU: every ``cuda`` kernel a float32 forward and backward
launches is lowered to LLVM IR with the argument types it was launched with, and no line of
that IR may mention ``double`` (a float64 literal in the shared gate math, or a ``* 0`` on an
integer, promotes the whole computation to float64, which runs at a small fraction of float32's
rate on most GPUs).

The launches are recorded where the tests run (the CUDA simulator without a GPU); the lowering
runs in a child process with the simulator off (see ``tests/cuda_ir_check.py``: it needs
numba-cuda but no GPU, driver or CUDA toolkit). A control kernel with a bare float64 literal
must be reported, so the check can fail.

It also proves that every launched kernel compiles for a real GPU target (type inference and
lowering by numba-cuda's CUDA compiler), which the simulator does not: the simulator runs the
kernels as Python and accepts, for instance, a shared array whose shape is not a constant.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numlstm

from conftest import make_problem

STATUS = numlstm.available_backends()["cuda"]
pytestmark = pytest.mark.skipif(not STATUS.available,
                                reason=f"cuda backend not usable here: {STATUS.reason}")
HERE = Path(__file__).resolve().parent


def _type_spec(value):
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (int, np.integer)):
        return "int64"
    if isinstance(value, float):
        return "float64"
    contiguous = value.is_c_contiguous() if hasattr(value, "is_c_contiguous") else \
        value.flags.c_contiguous
    return ["array", np.dtype(value.dtype).str, value.ndim, bool(contiguous)]


class _RecordingKernel:
    """Stands in for a kernel: records the argument types of each launch, then launches."""

    def __init__(self, name, kernel, seen):
        self.name, self.kernel, self.seen = name, kernel, seen

    def __getitem__(self, configuration):
        launch = self.kernel[configuration]

        def record_and_launch(*args):
            self.seen.setdefault(self.name, [_type_spec(a) for a in args])
            return launch(*args)
        return record_and_launch

    def __getattr__(self, attribute):
        return getattr(self.kernel, attribute)


def _float32_launches(monkeypatch) -> dict:
    """``{kernel name: argument types}`` of every kernel launched by float32 forwards and
    backwards on both forward paths, with a mask, recurrent dropout and zero outputs."""
    from numlstm.backends import cuda_kernels
    seen = {}
    for name in dir(cuda_kernels):
        kernel = getattr(cuda_kernels, name)
        # The kernels: public ``@cuda.jit`` objects (not the private device functions, nor
        # the gate math's ``@njit`` functions imported into the module).
        is_cuda = type(kernel).__module__.startswith(("numba.cuda", "numba_cuda"))
        if is_cuda and not name.startswith("_"):
            monkeypatch.setattr(cuda_kernels, name, _RecordingKernel(name, kernel, seen))
    backend = numlstm.get_backend("cuda")
    problem = make_problem(2, 3, 2, 3, mask="holes", dropout=True, seed=2,
                           zero_output_for_mask=True).astype(np.float32)
    for mode in ("auto", "never"):
        with backend.options(persistent=mode):
            problem.run("cuda")
    # A non-contiguous input is copied by the copy kernels.
    wide = np.repeat(problem.x, 2, axis=-1)
    backend.asarray(backend.asarray(wide)[:, :, ::2])
    return seen


#: The kernels that split flat indices into (row, column) every timestep, with
#: ``cuda_kernels._index_divmod``'s 32-bit division.
PER_STEP_SPLITS = ("forward_persistent", "backward_persistent", "backward_step_gates")


@pytest.fixture(scope="module")
def ir_report():
    """``(launches, report)``: the float32 launches recorded here and what
    ``cuda_ir_check.py`` found in their IR, lowered once for the tests below."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        launches = _float32_launches(monkeypatch)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(HERE / "cuda_ir_check.py")],
                          input=json.dumps({"kernels": launches, "control": True,
                                            "divisions": True}),
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return launches, json.loads(done.stdout)


def test_float32_kernels_have_no_double_in_their_llvm_ir(ir_report):
    launches, report = ir_report
    report = dict(report)
    assert {"gemm", "forward_step", "forward_persistent", "backward_persistent",
            "backward_step_gates", "backward_step_recurrent", "column_sums", "scale_rows",
            "copy_3d"} <= set(launches)
    assert report.pop("control"), "the control kernel's float64 literal went unnoticed"
    report.pop("divisions")
    assert set(report) == set(launches)
    offending = {name: lines[:5] for name, lines in report.items() if lines}
    assert not offending, f"float64 in float32 kernels: {offending}"


def test_per_step_index_splits_divide_in_32_bits(ir_report):
    """The GPU has no 64-bit divide instruction: the kernels that split flat indices every
    timestep use ``cuda_kernels._index_divmod``'s unsigned 32-bit division."""
    from numlstm.backends import cuda_kernels
    if cuda_kernels._cuda_intrinsic is None:
        pytest.skip("this numba-cuda has no numba.cuda.extending.intrinsic: the kernels fall "
                    "back to 64-bit division")
    _, report = ir_report
    for name in PER_STEP_SPLITS:
        assert report["divisions"][name].get("udiv i32", 0) >= 1, (name, report["divisions"])
        assert report["divisions"][name].get("urem i32", 0) >= 1, (name, report["divisions"])


@pytest.mark.parametrize("index_type", ["int64", "uint32", "int32"])
def test_index_divmod_code_generation_divides_exactly(index_type):
    """The intrinsic's code generation, registered on Numba's CPU target (the same LLVM
    instructions the GPU gets), against Python's divmod over its whole range."""
    from numba import njit
    from numba.extending import intrinsic
    from numlstm.backends.cuda_kernels import INDEX_LIMIT, index_divmod_typer
    divmod32 = intrinsic(index_divmod_typer)
    kind = getattr(np, index_type)

    @njit
    def split(indices, divisors, out):
        for position in range(indices.size):
            quotient, remainder = divmod32(indices[position], divisors[position])
            out[position, 0] = quotient
            out[position, 1] = remainder
    top = min(INDEX_LIMIT, np.iinfo(kind).max + 1) - 1
    rng = np.random.default_rng(0)
    indices = np.concatenate([[0, 1, top, top - 1], rng.integers(0, top, 2000)]).astype(kind)
    divisors = np.concatenate([[1, 1, top, 7], rng.integers(1, 5000, 2000)]).astype(kind)
    out = np.empty((indices.size, 2), np.int64)
    split(indices, divisors, out)
    expected = np.array([divmod(int(i), int(d)) for i, d in zip(indices, divisors)])
    np.testing.assert_array_equal(out, expected)
