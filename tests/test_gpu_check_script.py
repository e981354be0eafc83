"""``benchmarks/gpu_check.py`` end to end in Numba's CUDA simulator with a tiny deadline: the
JSON lines arrive in order, each variant's result is recorded, the deadline cuts the run short
visibly (sections cut and variants skipped, not lost), and the last line is the verdict."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import numlstm

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
STATUS = numlstm.available_backends()["cuda"]
DEADLINE_S = 45


@pytest.mark.skipif(not STATUS.available, reason=f"cuda backend not usable: {STATUS.reason}")
def test_gpu_check_simulated_with_a_tiny_deadline_writes_json_lines(tmp_path):
    out = tmp_path / "results"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--simulate", "--deadline-s", str(DEADLINE_S), "--out",
         str(out)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=240)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The deadline holds (a margin for starting Python and writing the verdict).
    assert elapsed < DEADLINE_S + 20, elapsed

    records = [json.loads(line) for line in
               (out / "results.jsonl").read_text().splitlines()]
    assert all(r["schema"] == "numlstm.gpu_check/1" for r in records)
    assert records[0]["kind"] == "start" and records[-1]["kind"] == "verdict"
    times = [r["t_s"] for r in records]
    assert times == sorted(times)
    results = {(r["section"], r["name"]): r for r in records if r["kind"] == "result"}

    versions = results[("preflight", "versions")]
    assert versions["ok"] and versions["numba_cuda_compatibility"] == "compatible"
    assert versions["versions"]["numba-cuda"]
    # Each section has a share of the time; on a loaded machine a later variant may be cut
    # (recorded as such), but the first of each section comes in.
    smoke = [r for (section, name), r in results.items() if section == "smoke"
             and name != "section"]
    assert ("smoke", "cuda persistent float32") in results
    assert all(r["ok"] and r["path"] == r["backward_path"] == "persistent" for r in smoke), smoke
    parity = [r for (section, _), r in results.items() if section == "parity"
              and _ != "section"]
    assert parity and all(r["ok"] for r in parity), [r for r in parity if not r["ok"]]
    assert all(set(r["max_abs_diff"]) >= {"outputs", "d_recurrent_kernel"} for r in parity)

    # The tiny deadline cut the run: what was not reached is recorded, never silently lost.
    cut = [r for r in records if r.get("timed_out")]
    skipped = [r for r in records if r["kind"] == "skipped"]
    assert cut or skipped
    started_sections = {r["section"] for r in records if r["kind"] == "section-start"}
    assert {"preflight", "smoke", "parity"} <= started_sections
    verdict = records[-1]
    assert verdict["ok"] and verdict["failed"] == []
    assert [g["met"] for g in verdict["goals"]] == [None] * len(verdict["goals"])
    assert "goals (cuDNN time / ours)" in done.stdout


def test_gpu_check_records_a_failing_variant_with_its_traceback(tmp_path, monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    results = gpu_check.Results(tmp_path, time.time())

    class Stub:
        deadline_at = time.time() + 60
        time_left = gpu_check.Worker.time_left

    def broken():
        raise RuntimeError("kernel exploded")

    record = gpu_check.Worker.variant.__get__(Stub())
    Stub.results = results
    record("parity", "broken variant", broken, dtype="float32")
    record("parity", "working variant", lambda: {"ok": True, "value": 1})
    lines = results.read()
    assert lines[0]["ok"] is False and "kernel exploded" in lines[0]["error"]
    assert "RuntimeError" in lines[0]["traceback"] and lines[0]["dtype"] == "float32"
    assert lines[1]["ok"] is True and lines[1]["value"] == 1
    assert gpu_check.verdict(lines)["failed"] == ["parity: broken variant"]


@pytest.mark.skipif(not STATUS.available, reason=f"cuda backend not usable: {STATUS.reason}")
def test_gpu_check_model_section_counts_the_weight_copies(tmp_path):
    """The ``model`` section (last in a device run, so the tiny-deadline run above never
    reaches it) on its own: a model's predict agrees with the reference with the weights kept
    on the device and copied per batch, and keeping them halves the copies over two batches
    (two LSTM layers x three weights: 6 against 12)."""
    out = tmp_path / "results"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--simulate", "--sections", "model", "--deadline-s", "400",
         "--out", str(out)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    rows = {r["resident"]: r for r in records if r["kind"] == "result"
            and r["section"] == "model" and r["name"] != "section"}
    assert set(rows) == {True, False}, records
    assert all(r["ok"] and r["max_abs_diff_vs_reference"] < 1e-5 for r in rows.values())
    assert rows[True]["weight_copies_per_predict"] == 6
    assert rows[False]["weight_copies_per_predict"] == 12
