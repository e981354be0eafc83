"""The benchmark harness (numlstm.bench): configurations, FLOPs, parity, timing, peer.

Shapes are tiny: these tests check the harness's logic, not the speed of any backend.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import numlstm
from numlstm import bench as B
from numlstm.bench import parity, peers, problems
from numlstm.bench import timing as bench_timing

TINY = B.Shape(batch=3, timesteps=4, features=2, units=3)
TINY_STACK = B.Shape(batch=2, timesteps=3, features=2, units=3, layers=2)


def test_configs_are_the_five_of_the_design():
    assert sorted(B.CONFIGS) == ["a", "b", "c", "d", "e"]
    assert B.CONFIGS["a"] == B.Shape(1, 100, 32, 64)
    assert B.CONFIGS["b"] == B.Shape(32, 28, 28, 128)
    assert B.CONFIGS["c"] == B.Shape(64, 100, 64, 256)
    assert B.CONFIGS["d"] == B.Shape(256, 50, 128, 512)
    assert B.CONFIGS["e"] == B.Shape(64, 100, 64, 256, layers=2)


def test_flops_follow_the_formula():
    # config b by hand: 2 * T28 * B32 * 4*128 * (28 + 128)
    assert B.lstm_flops(B.CONFIGS["b"]) == 2 * 28 * 32 * 512 * 156 == 143_130_624
    assert B.lstm_flops(B.CONFIGS["b"], "train") == 3 * 143_130_624
    # a stack: the second layer reads H inputs, not D
    c_flops = B.lstm_flops(B.CONFIGS["c"])
    second = 2 * 100 * 64 * 4 * 256 * (256 + 256)
    assert B.lstm_flops(B.CONFIGS["e"]) == c_flops + second


def test_shape_and_mode_are_checked():
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        B.Shape(-1, 2, 3, 4)
    with pytest.raises(ValueError, match="mode"):
        B.lstm_flops(TINY, "backward")


def test_make_problem_is_deterministic_and_dtype_consistent():
    p32 = B.make_problem(TINY_STACK, "float32", seed=3)
    p64 = B.make_problem(TINY_STACK, "float64", seed=3)
    again = B.make_problem(TINY_STACK, "float32", seed=3)
    assert p32.x.dtype == np.float32 and p64.x.dtype == np.float64
    np.testing.assert_array_equal(p32.x, again.x)
    np.testing.assert_allclose(p32.x, p64.x, rtol=1e-7)
    assert [w[0].shape for w in p32.weights] == [(2, 12), (3, 12)]
    assert p32.grad_outputs.shape == (2, 3, 3)
    masked = B.make_problem(TINY, mask=True, seed=1)
    assert masked.mask.shape == (3, 4) and not masked.mask[0].any()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [TINY, TINY_STACK], ids=["one-layer", "two-layers"])
def test_numba_passes_parity(dtype, shape):
    problem = B.make_problem(shape, dtype, mask=True, reverse=True, seed=2)
    result = B.check_parity("numba", problem)
    assert result.passed, result.failures
    assert result.dtype == dtype
    names = set(result.max_abs_diff)
    assert {"outputs", "d_x"} <= names
    if shape.layers == 2:
        assert {"h[0]", "h[1]", "d_kernel[1]"} <= names
    assert 0 <= result.worst < (1e-5 if dtype == "float32" else 1e-10)
    if dtype == "float32":
        assert set(result.rel_norm_diff) == {n for n in names if n.startswith("d_")}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parity_with_other_activations(dtype):
    problem = B.make_problem(TINY, dtype, activation="relu",
                             recurrent_activation="hard_sigmoid_keras2", seed=4)
    assert B.check_parity("numba", problem).passed
    # the activation really reaches the kernels: the tanh/sigmoid outputs differ
    plain = B.run_kernels("numpy", B.make_problem(TINY, dtype, seed=4))
    assert not np.allclose(B.run_kernels("numpy", problem)["outputs"], plain["outputs"])


def test_make_problem_and_torch_peer_check_the_options():
    with pytest.raises(ValueError, match="activation"):
        B.make_problem(TINY, activation="gelu")
    for problem in (B.make_problem(TINY, mask=True), B.make_problem(TINY, reverse=True),
                    B.make_problem(TINY, recurrent_activation="hard_sigmoid")):
        with pytest.raises(ValueError, match="torch peer"):
            B.run_torch_peer(problem)


class _Broken:
    """Wraps a backend and perturbs one of its results (for failing-check tests)."""

    def __init__(self, inner, where, amount):
        self._inner, self._where, self._amount = inner, where, amount
        self.name = inner.name

    def __getattr__(self, attribute):
        return getattr(self._inner, attribute)

    def lstm_forward(self, *args, **kwargs):
        result = self._inner.lstm_forward(*args, **kwargs)
        if self._where == "outputs":
            result.outputs = result.outputs + self._amount
        return result

    def lstm_backward(self, *args, **kwargs):
        grads = self._inner.lstm_backward(*args, **kwargs)
        if self._where == "bias":
            grads.bias = grads.bias * (1 + self._amount)
        return grads


def break_backend(monkeypatch, name, where, amount):
    real = problems.get_backend

    def fake(requested=None):
        backend = real(requested)
        return _Broken(backend, where, amount) if requested == name else backend
    for module in (problems, bench_timing):      # where the harness looks backends up
        monkeypatch.setattr(module, "get_backend", fake)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parity_fails_for_a_wrong_output(monkeypatch, dtype):
    break_backend(monkeypatch, "numba", "outputs", 1e-3)
    result = B.check_parity("numba", B.make_problem(TINY, dtype))
    assert not result.passed
    assert "outputs" in result.failures
    assert result.max_abs_diff["outputs"] == pytest.approx(1e-3, rel=1e-3)


def test_parity_fails_for_a_slightly_wrong_gradient(monkeypatch):
    # 1e-4 relative is far below what a max-abs check on outputs would see, but beyond the
    # gradient's relative-norm tolerance
    break_backend(monkeypatch, "numba", "bias", 1e-4)
    result = B.check_parity("numba", B.make_problem(TINY, "float32"))
    assert result.failures == ["d_bias"]
    assert result.rel_norm_diff["d_bias"] == pytest.approx(1e-4, rel=1e-2)


class _CountingBackend(numlstm.backends.base.Backend):
    """A backend that delegates to the reference and counts synchronize() calls."""

    name = "numpy"
    xp = np

    def __init__(self):
        self.inner = numlstm.get_backend("numpy")
        self.syncs = 0
        self.forwards = 0
        self.backwards = 0

    def asarray(self, array, dtype=None):
        return np.asarray(array, dtype=dtype)

    def to_numpy(self, array):
        return np.asarray(array)

    def synchronize(self):
        self.syncs += 1

    def lstm_forward(self, *args, **kwargs):
        self.forwards += 1
        return self.inner.lstm_forward(*args, **kwargs)

    def lstm_backward(self, *args, **kwargs):
        self.backwards += 1
        return self.inner.lstm_backward(*args, **kwargs)


@pytest.mark.parametrize("mode", ["forward", "train"])
def test_time_backend_warms_up_synchronises_and_times_each_repeat(monkeypatch, mode):
    counting = _CountingBackend()
    monkeypatch.setattr(bench_timing, "get_backend", lambda name=None: counting)
    timing = B.time_backend("numpy", B.make_problem(TINY_STACK), mode, repeats=4, warmup=2)
    calls = 1 + 2 + 4                       # first call, warm-up, timed
    assert len(timing.times_ms) == 4
    assert counting.forwards == 2 * calls   # two layers per call
    assert counting.backwards == (2 * calls if mode == "train" else 0)
    assert counting.syncs == calls + 1      # plus one after the transfer, before any clock
    assert timing.min_ms <= timing.median_ms <= timing.max_ms
    assert timing.first_call_ms > 0
    data = timing.to_dict()
    assert B.Timing.from_dict(data).times_ms == timing.times_ms
    assert set(data) == {"first_call_ms", "median_ms", "min_ms", "max_ms", "times_ms"}


def test_time_backend_checks_its_arguments():
    problem = B.make_problem(TINY)
    with pytest.raises(ValueError, match="repeats"):
        B.time_backend("numpy", problem, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        B.time_backend("numpy", problem, warmup=-1)
    with pytest.raises(ValueError, match="mode"):
        B.time_backend("numpy", problem, "inference")


def test_thread_limit_sets_and_restores_threads_and_blas():
    """numlstm's own thread count (numlstm.get_num_threads where it exists, else Numba's) and
    every BLAS are held at the limit inside the block and restored after it."""
    import numba
    from threadpoolctl import threadpool_info

    def kernel_threads():
        getter = getattr(numlstm, "get_num_threads", numba.get_num_threads)
        return getter()

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    before = kernel_threads()
    with B.thread_limit(2):
        blas_before = blas_threads()
        with B.thread_limit(1):
            assert kernel_threads() == 1
            assert blas_threads() and set(blas_threads()) == {1}
        assert blas_threads() == blas_before
    assert kernel_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with B.thread_limit(0):
            pass


def test_machine_info_names_versions_and_backends_without_importing_torch():
    code = ("import sys, json; from numlstm.bench import machine_info; "
            "info = machine_info(); print(json.dumps(info)); "
            "print('torch' in sys.modules, 'cupy' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    info = json.loads(output[0])
    assert output[1] == "False False"
    assert info["logical_cores"] >= 1 and info["cpu"]
    assert {"numlstm", "numpy", "numba", "numba-cuda", "cupy", "torch"} <= set(info["versions"])
    assert info["versions"]["numpy"] == np.__version__
    assert set(info["backends"]) == set(numlstm.BACKEND_NAMES)
    assert info["backends"]["numpy"]["available"] is True
    for entry in info["backends"].values():
        assert entry["available"] or entry["reason"]


def test_matmul_peak_reports_positive_gflops():
    peaks = B.matmul_peak(64, threads=(1, 2), repeats=2)
    assert set(peaks) == {"1", "2"}
    assert all(value > 0 for value in peaks.values())


def test_torch_peer_missing_torch_gives_a_note(tmp_path, monkeypatch):
    """Never skipped: an interpreter whose `import torch` fails gives a note, not an error."""
    (tmp_path / "torch.py").write_text("raise ImportError('torch is hidden for this test')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    peer = B.run_torch_peer(B.make_problem(TINY), python=sys.executable)
    assert not peer.available
    assert "torch is not installed" in peer.note and "--peer-python" in peer.note


def test_torch_peer_missing_interpreter_gives_a_note(tmp_path):
    peer = B.run_torch_peer(B.make_problem(TINY), python=str(tmp_path / "no-python"))
    assert not peer.available and "was not found" in peer.note


FAKE_PEER = textwrap.dedent("""
    # Stands in for the torch child: reads the same files, answers with the reference's
    # results and fixed timings.
    import argparse, json
    from pathlib import Path
    import numpy as np
    import numlstm.bench as B
    parser = argparse.ArgumentParser()
    parser.add_argument("--in", dest="inputs"); parser.add_argument("--settings")
    parser.add_argument("--out")
    args = parser.parse_args()
    settings = json.loads(Path(args.settings).read_text())
    data = np.load(args.inputs)
    layers = settings["layers"]
    from numlstm.convert import from_torch
    weights = [tuple(from_torch(data[f"weight_ih_l{k}"], data[f"weight_hh_l{k}"],
                                data[f"bias_ih_l{k}"], data[f"bias_hh_l{k}"]))
               for k in range(layers)]
    x = data["x"]
    (kernel, recurrent_kernel, bias), *stacked = weights
    problem = B.Problem(x, kernel, recurrent_kernel, bias, grad_outputs=data["grad_outputs"],
                        stacked=tuple(stacked))
    named = B.top_layer_view(B.run_kernels("numpy", problem), layers)
    out = Path(args.out)
    np.savez(out.with_name(out.stem + "_arrays.npz"), **named)
    out.write_text(json.dumps({"timing": {"first_call_ms": 5.0, "times_ms": [1.0, 3.0, 2.0]},
                               "versions": {"torch": "fake",
                                            "runtime": settings.get("runtime", "torch")}}))
""")


@pytest.fixture
def fake_peer(tmp_path, monkeypatch):
    script = tmp_path / "fake_peer.py"
    script.write_text(FAKE_PEER)
    monkeypatch.setattr(peers, "PEER_SCRIPT", script)
    return script


def test_bench_with_a_peer_reports_timings_ratios_and_peer_parity(fake_peer):
    report = B.bench(TINY_STACK, backends=["numpy", "numba"], mode="train", repeats=2,
                     warmup=1, threads=1, peer="torch", peer_python=sys.executable,
                     peak=False)
    by_name = {entry["name"]: entry for entry in report["results"]}
    assert list(by_name) == ["numpy", "numba", "torch"]
    peer = by_name["torch"]
    assert peer["kind"] == "peer" and peer["status"] == "ok", peer["note"]
    assert peer["timing"]["median_ms"] == 2.0 and peer["ratio_to_peer"] == 1.0
    assert peer["parity"]["passed"] and set(peer["parity"]["max_abs_diff"]) == {
        "outputs", "h", "c", "d_x"}
    for name in ("numpy", "numba"):
        entry = by_name[name]
        assert entry["status"] == "ok"
        # the reference is not checked against itself; every other backend is
        assert (entry["parity"] is None) if entry["name"] == "numpy" else \
            entry["parity"]["passed"]
        median = entry["timing"]["median_ms"]
        assert entry["ratio_to_peer"] == pytest.approx(median / 2.0)
        assert entry["gflops"] == pytest.approx(report["settings"]["flops"] / median / 1e6)
    fastest = min(e["timing"]["median_ms"] for e in report["results"])
    assert min(e["ratio_to_fastest"] for e in report["results"]) == 1.0
    assert by_name["numpy"]["ratio_to_fastest"] == pytest.approx(
        by_name["numpy"]["timing"]["median_ms"] / fastest)


def test_peer_parity_flags_a_peer_that_disagrees():
    problem = B.make_problem(TINY)
    reference = B.top_layer_view(B.run_kernels("numpy", problem), 1)
    wrong = dict(reference, outputs=reference["outputs"] + 1e-3)
    verdict = B.peer_parity(B.PeerResult(True, arrays=wrong), reference)
    assert not verdict["passed"] and verdict["failures"] == ["outputs"]
    assert B.peer_parity(B.PeerResult(True, arrays=reference), reference)["passed"]


def test_the_real_torch_peer_matches_the_reference():
    """Runs torch.nn.LSTM in a child when the peer interpreter ($NUMLSTM_PEER_PYTHON, else this
    one) has torch; the fallback without torch is covered by the never-skipped test above."""
    python = B.torch_peer_python()
    has_torch = subprocess.run([python, "-c", "import torch"], capture_output=True).returncode
    if has_torch != 0:
        pytest.skip(f"torch is not importable by {python} (set {B.PEER_PYTHON_ENV})")
    problem = B.make_problem(TINY_STACK, "float64")
    peer = B.run_torch_peer(problem, "train", repeats=2, warmup=0, threads=1)
    assert peer.available, peer.note
    verdict = B.peer_parity(peer, B.top_layer_view(B.run_kernels("numpy", problem), 2))
    assert verdict["passed"], verdict
    assert peer.versions["threads"] == 1


def test_bench_report_schema_and_json_round_trip(tmp_path):
    report = B.bench(TINY, backends=["numpy", "cuda"], repeats=2, warmup=0, config=None,
                     peak=True)
    assert report["schema"] == B.SCHEMA
    assert set(report) == {"schema", "created", "machine", "settings", "matmul_peak_gflops",
                           "results"}
    assert report["settings"] == {"config": None, "shape": {
        "batch": 3, "timesteps": 4, "features": 2, "units": 3, "layers": 1},
        "mode": "forward", "dtype": "float32", "repeats": 2, "warmup": 0, "threads": None,
        "flops": B.lstm_flops(TINY)}
    numpy_entry, cuda_entry = report["results"]
    keys = {"name", "kind", "status", "note", "parity", "timing", "gflops",
            "ratio_to_fastest", "ratio_to_peer"}
    assert set(numpy_entry) == keys and set(cuda_entry) == keys
    if not numlstm.available_backends()["cuda"].available:
        assert cuda_entry["status"] == "unavailable" and cuda_entry["note"]
        assert cuda_entry["timing"] is None
    assert numpy_entry["ratio_to_peer"] is None
    path = B.dump_report(report, tmp_path / "report.json")
    assert B.load_report(path) == json.loads(json.dumps(report))
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not a numlstm bench report"):
        B.load_report(tmp_path / "other.json")


def test_bench_does_not_time_a_backend_that_fails_its_check(monkeypatch):
    break_backend(monkeypatch, "numba", "outputs", 1e-2)
    report = B.bench(TINY, backends=["numpy", "numba"], repeats=1, warmup=0, peak=False)
    numba_entry = report["results"][1]
    assert numba_entry["status"] == "check_failed"
    assert numba_entry["timing"] is None and "outputs" in numba_entry["note"]
    assert report["results"][0]["timing"] is not None


def test_peer_module_runs_as_python_dash_m_and_reports_missing_torch(tmp_path):
    """`python -m numlstm.peers.torch_lstm` is the documented entry point too; without torch
    it exits with its own status 3, which run_torch_peer turns into the note."""
    import os
    (tmp_path / "torch.py").write_text("raise ImportError('hidden for this test')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path)] + sys.path)
    completed = subprocess.run(
        [sys.executable, "-m", "numlstm.peers.torch_lstm", "--in", "x.npz", "--settings",
         "s.json", "--out", "r.json"], capture_output=True, text=True, env=env)
    assert completed.returncode == 3, completed.stderr
    assert "torch is not importable" in completed.stderr


# -- the one tolerance function ------------------------------------------------------------------

def test_within_tolerance_draws_the_documented_boundaries():
    """docs/numerics.md: float64 absolute 1e-10; float32 outputs/states atol = rtol = 1e-5;
    float32 gradients relative norm 1e-5 against float64. Just inside passes, just outside
    fails; a shape mismatch or a NaN fails."""
    reference = np.array([0.5, -2.0, 3.0])
    assert B.within_tolerance("outputs", reference + 0.9e-10, reference, "float64")
    assert not B.within_tolerance("d_x", reference + 1.1e-10, reference, "float64")
    reference32 = reference.astype(np.float32)
    bound = 1e-5 + 1e-5 * np.abs(reference)            # per element
    assert B.within_tolerance("h", reference + 0.9 * bound, reference32, "float32")
    assert not B.within_tolerance("h", reference + 1.1 * bound, reference32, "float32")
    direction = np.array([1.0, 1.0, -1.0]) / np.sqrt(3)
    scale = np.linalg.norm(reference)
    inside = B.within_tolerance("d_bias", reference + 0.9e-5 * scale * direction, reference,
                                "float32")
    assert inside and inside.rel_norm_diff == pytest.approx(0.9e-5)
    assert not B.within_tolerance("d_bias", reference + 1.1e-5 * scale * direction,
                                  reference, "float32")
    assert not B.within_tolerance("outputs", reference[:2], reference, "float64")
    assert not B.within_tolerance("outputs", np.array([np.nan, -2.0, 3.0]), reference,
                                  "float64")
    # an ill-conditioned problem's own float32 rounding noise is admitted, twice over
    noisy64 = reference + 1e-4
    assert B.within_tolerance("c", reference + 1.5e-4, reference32, "float32",
                              other_precision_reference=noisy64)


def test_the_harness_and_the_parity_suite_share_the_tolerance_function(monkeypatch):
    import test_backend_parity
    assert test_backend_parity.within_tolerance is parity.within_tolerance
    assert problems.is_gradient("d_x") and not problems.is_gradient("h")
    problem = B.make_problem(TINY, "float64")
    assert B.check_parity("numba", problem).passed
    # whatever the function says is the harness's verdict
    monkeypatch.setattr(parity, "within_tolerance",
                        lambda name, *args, **kwargs: B.Agreement(name, name != "d_x", 0.0))
    assert B.check_parity("numba", problem).failures == ["d_x"]


# -- Backend.runtime_info ------------------------------------------------------------------------

def test_runtime_info_of_cpu_and_simulated_backends():
    assert numlstm.get_backend("numpy").runtime_info() == {}
    assert numlstm.get_backend("numba").runtime_info() == {}
    if numlstm.available_backends()["cuda"].available and \
            numlstm.get_backend("cuda").simulator:
        info = numlstm.get_backend("cuda").runtime_info()
        assert info == {"numba-cuda": B.package_version("numba-cuda"),
                        "device": "Numba CUDA simulator"}


def test_machine_info_reads_the_cuda_version_from_the_backend(monkeypatch):
    from numlstm.backends import BackendStatus
    from numlstm.bench import machine

    class FakeGpu:
        def describe(self):
            return "a GPU"

        def runtime_info(self):
            return {"cuda_runtime": "12.8", "device": "a GPU"}

    real = machine.get_backend
    monkeypatch.setattr(machine, "available_backends", lambda: {
        "numpy": BackendStatus("numpy", True), "cupy": BackendStatus("cupy", True)})
    monkeypatch.setattr(machine, "get_backend",
                        lambda name: FakeGpu() if name == "cupy" else real(name))
    info = machine.machine_info()
    assert info["cuda"] == "12.8" and info["backends"]["cupy"]["device"] == "a GPU"


def test_a_problem_runs_the_same_on_the_kernels_and_through_the_functional_api():
    """One Problem, two routes (what the harness times, what the parity suite checks): the
    same results by name, initial states, dropout and options included."""
    from conftest import make_problem as suite_problem
    problem = suite_problem(3, 4, 2, 3, mask="holes", dropout=True, reverse=True,
                            zero_output_for_mask=True, activation="relu", seed=5)
    kernels, functional = B.run_kernels("numba", problem), problem.run("numba")
    assert set(kernels) == set(functional) >= {"d_h0", "d_c0", "d_x", "outputs"}
    for name, value in kernels.items():
        np.testing.assert_array_equal(value, functional[name], err_msg=name)
