"""The ``numlstm`` command (click's CliRunner): every command, the error exits, the JSON schema.

Benchmarks run on tiny shapes with few repeats; the point is the command's behaviour.
"""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import numlstm
from numlstm import bench as B
from numlstm.bench import problems
from numlstm.cli import main

from test_benchmarking import break_backend, fake_peer  # noqa: F401 (fake_peer: a fixture)

TINY = ["--batch", "2", "--timesteps", "3", "--features", "2", "--units", "3",
        "--repeats", "2", "--warmup", "0", "--no-peak"]


def run(*args, **kwargs):
    return CliRunner().invoke(main, list(args), **kwargs)


def assert_usage_error(result, *fragments):
    """Exit 2 with one line on stderr that names the problem, and no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def unusable_backends():
    return [n for n, s in numlstm.available_backends().items() if not s.available]


def test_backends_lists_every_backend_with_reasons_and_versions():
    result = run("backends")
    assert result.exit_code == 0, result.output
    for name in numlstm.BACKEND_NAMES:
        assert name in result.output
    for name in unusable_backends():
        reason = numlstm.available_backends()[name].reason
        assert reason[:40] in result.output
    assert "numba" in result.output and numlstm.__version__ in result.output
    assert "CPU:" in result.output and "cores" in result.output


def test_python_dash_m_numlstm_runs_the_same_command():
    completed = subprocess.run([sys.executable, "-m", "numlstm", "--help"],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    for command in ("backends", "bench", "check"):
        assert command in completed.stdout


def test_bench_checks_then_times_and_writes_the_json_report(tmp_path):
    path = tmp_path / "report.json"
    result = run("bench", *TINY, "--backends", "numpy,numba", "--mode", "train",
                 "--threads", "1", "--json", str(path))
    assert result.exit_code == 0, result.output
    assert "B2 T3 D2 H3" in result.output and "reference" in result.output
    assert "2.16 kFLOP per call" in result.output      # 3 * 2*3*2*4*3*(2+3) = 2160
    for column in ("check", "max |diff|", "first call ms", "median ms", "GFLOP/s",
                   "x fastest"):
        assert column in result.output
    report = B.load_report(path)
    assert report["settings"]["mode"] == "train" and report["settings"]["threads"] == 1
    assert report["settings"]["shape"] == {"batch": 2, "timesteps": 3, "features": 2,
                                           "units": 3, "layers": 1}
    assert report["settings"]["flops"] == B.lstm_flops(B.Shape(2, 3, 2, 3), "train")
    assert [r["name"] for r in report["results"]] == ["numpy", "numba"]
    for entry in report["results"]:
        assert entry["status"] == "ok"
        # the reference is not checked against itself; every other backend is
        assert (entry["parity"] is None) if entry["name"] == "numpy" else \
            entry["parity"]["passed"]
        assert len(entry["timing"]["times_ms"]) == 2
        assert entry["gflops"] > 0
    assert {"cpu", "logical_cores", "versions", "backends"} <= set(report["machine"])


def test_bench_named_config_with_an_override():
    result = run("bench", "--config", "e", "--batch", "1", "--timesteps", "2", "--features",
                 "2", "--units", "2", "--repeats", "1", "--warmup", "0", "--no-peak",
                 "--backends", "numba", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "x2 layers" in result.output


def test_flop_text_picks_a_unit():
    from numlstm.cli.harness import _flop_text
    assert _flop_text(B.lstm_flops(B.CONFIGS["b"])) == "143 MFLOP"
    assert _flop_text(B.lstm_flops(B.CONFIGS["e"], "train")) == "32.7 GFLOP"
    assert _flop_text(1500) == "1.5 kFLOP" and _flop_text(12) == "12 FLOP"


def test_bench_default_backends_skip_unusable_ones_with_a_note():
    result = run("bench", *TINY, "--threads", "1")
    assert result.exit_code == 0, result.output
    for name in unusable_backends():
        assert f"skipping {name}" in result.output


def test_bench_refuses_to_time_a_backend_that_disagrees(monkeypatch, tmp_path):
    break_backend(monkeypatch, "numba", "outputs", 1e-2)
    path = tmp_path / "report.json"
    result = run("bench", *TINY, "--backends", "numpy,numba", "--json", str(path))
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "not timed" in result.output
    numba_entry = B.load_report(path)["results"][1]
    assert numba_entry["status"] == "check_failed" and numba_entry["timing"] is None


def test_bench_peer_without_torch_prints_a_note_and_continues(tmp_path, monkeypatch):
    (tmp_path / "torch.py").write_text("raise ImportError('hidden for this test')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    result = run("bench", *TINY, "--backends", "numba", "--peer", "torch", "--peer-python",
                 sys.executable)
    assert result.exit_code == 0, result.output
    assert "torch is not installed" in result.output
    assert "numba" in result.output and "ok" in result.output


def test_bench_peer_row_and_ratio_column(tmp_path, fake_peer):
    path = tmp_path / "report.json"
    result = run("bench", *TINY, "--backends", "numba", "--peer", "torch", "--json",
                 str(path), env={B.PEER_PYTHON_ENV: sys.executable})
    assert result.exit_code == 0, result.output
    assert "x torch" in result.output
    peer = B.load_report(path)["results"][-1]
    assert peer["name"] == "torch" and peer["kind"] == "peer" and peer["parity"]["passed"]
    assert peer["timing"]["median_ms"] == 2.0


def test_bench_ort_peer_row_tells_the_child_to_run_onnx_runtime(tmp_path, fake_peer):
    path = tmp_path / "report.json"
    result = run("bench", *TINY, "--backends", "numba", "--peer", "ort", "--json",
                 str(path), env={B.PEER_PYTHON_ENV: sys.executable})
    assert result.exit_code == 0, result.output
    assert "x ort" in result.output
    peer = B.load_report(path)["results"][-1]
    assert peer["name"] == "ort" and peer["kind"] == "peer" and peer["parity"]["passed"]
    assert peer["versions"]["runtime"] == "ort"


def test_bench_ort_peer_in_training_mode_says_it_only_infers(fake_peer):
    result = run("bench", *TINY, "--backends", "numba", "--mode", "train", "--peer", "ort",
                 env={B.PEER_PYTHON_ENV: sys.executable})
    assert result.exit_code == 0, result.output
    assert "ONNX Runtime is an inference runtime" in result.output


def test_bench_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    result = run("bench", *TINY, "--backends", "numpy,numba", "--plot", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_plot_without_matplotlib_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = run("bench", *TINY, "--plot", str(tmp_path / "x.png"))
    assert_usage_error(result, "numlstm[plot]")


@pytest.mark.parametrize("args, fragments", [
    (["--batch", "-1"], ["--batch", "-1"]),
    (["--units", "0"], ["--units", "0"]),
    (["--timesteps", "many"], ["--timesteps", "many"]),
    (["--backends", "numpy,tpu"], ["--backends", "tpu"]),
    (["--backends", ","], ["--backends"]),
    (["--config", "f"], ["--config", "f"]),
    (["--mode", "backward"], ["--mode"]),
    (["--dtype", "float16"], ["--dtype"]),
    (["--repeats", "0"], ["--repeats"]),
    (["--threads", "0"], ["--threads"]),
    (["--peer", "jax"], ["--peer"]),
    (["--json", "/nonexistent-folder/x.json"], ["--json", "does not exist"]),
])
def test_bench_bad_arguments_exit_2_with_one_line(args, fragments):
    assert_usage_error(run("bench", *args), *fragments)


def test_unknown_command_exits_2():
    assert_usage_error(run("benchmark"), "benchmark")


def test_check_reports_every_case_and_passes():
    result = run("check", "--batch", "3", "--timesteps", "3", "--features", "2", "--units",
                 "2")
    assert result.exit_code == 0, result.output
    for case in ("plain", "mask", "go_backwards", "mask + go_backwards", "2 layers + mask",
                 "relu + hard_sigmoid", "linear + hard_sigmoid_keras2"):
        assert case in result.output
    assert "float32" in result.output and "float64" in result.output
    assert "agree with the reference" in result.output
    for name in unusable_backends():
        assert f"skipping {name}" in result.output


def test_check_exits_1_when_a_backend_disagrees(monkeypatch, tmp_path):
    break_backend(monkeypatch, "numba", "bias", 1e-3)
    path = tmp_path / "check.json"
    result = run("check", "--batch", "4", "--timesteps", "4", "--features", "2", "--units",
                 "2", "--dtype", "float64", "--json", str(path))
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "d_bias" in result.output
    data = json.loads(path.read_text())
    assert data["schema"] == "numlstm.check/1" and data["passed"] is False
    numba_results = [r for r in data["results"] if r["backend"] == "numba"]
    assert len(numba_results) == 7            # one per case, float64 only
    assert all(any(f.startswith("d_bias") for f in r["failures"]) for r in numba_results)
    assert all(r["passed"] for r in data["results"] if r["backend"] != "numba")


def test_check_exits_1_when_a_backend_crashes(monkeypatch):
    real = problems.get_backend

    class Crashing:
        def __getattr__(self, name):
            return getattr(real("numba"), name)

        def lstm_backward(self, *args, **kwargs):
            raise RuntimeError("kernel exploded")

    monkeypatch.setattr(problems, "get_backend",
                        lambda name=None: Crashing() if name == "numba" else real(name))
    result = run("check", "--batch", "2", "--timesteps", "2", "--features", "2", "--units",
                 "2", "--dtype", "float32")
    assert result.exit_code == 1
    assert "ERROR RuntimeError" in result.output and "Traceback" not in result.output


def test_check_bad_arguments_exit_2():
    assert_usage_error(run("check", "--backends", "gpu"), "gpu")
    assert_usage_error(run("check", "--batch", "0"), "--batch")


def test_bench_skips_a_simulated_gpu_backend_unless_named(monkeypatch):
    import numlstm.cli.harness as cli
    real = cli.get_backend

    class Simulated:
        simulator = True

    monkeypatch.setattr(cli, "get_backend",
                        lambda name=None: Simulated() if name == "numba" else real(name))
    result = run("bench", *TINY, "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "skipping numba: it runs in Numba's CUDA simulator" in result.output
    named = run("bench", *TINY, "--threads", "1", "--backends", "numba")
    assert named.exit_code == 0 and "simulator" not in named.output


def test_version_and_bare_command():
    result = run("--version")
    assert result.exit_code == 0 and numlstm.__version__ in result.output
    bare = run()
    assert bare.exit_code == 0 and "bench" in bare.output


def _pretend_unusable(monkeypatch, *names):
    """Make ``names`` look unusable to the command, whatever this machine has."""
    import numlstm.cli.harness as cli
    from numlstm.backends import BackendStatus
    real = cli.available_backends

    def fake():
        statuses = dict(real())
        for name in names:
            statuses[name] = BackendStatus(name, False, reason="pretended missing for a test",
                                           fix="nothing")
        return statuses

    monkeypatch.setattr(cli, "available_backends", fake)


def test_bench_with_no_usable_backend_left_exits_2_with_one_line(monkeypatch):
    _pretend_unusable(monkeypatch, "cupy", "cuda")
    result = run("bench", *TINY, "--backends", "cupy,cuda")
    assert_usage_error(result, "nothing to time", "cupy")
    assert "skipping cupy" in result.stdout


def test_check_with_nothing_but_the_reference_exits_2(monkeypatch):
    _pretend_unusable(monkeypatch, "cupy")
    assert_usage_error(run("check", "--backends", "cupy"), "nothing to check")
    assert_usage_error(run("check", "--backends", "numpy"), "nothing to check")
