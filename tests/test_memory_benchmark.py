"""The memory benchmark script measures what it says: a step that allocates more shows more."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "memory_vs_torch.py"
pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"),
                                reason="the memory benchmark reads Linux's /proc/self")


def _load_script():
    spec = importlib.util.spec_from_file_location("memory_vs_torch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_measured_peak_tracks_what_a_step_allocates():
    # In a fresh process: in this one, memory freed by earlier tests is already resident and
    # malloc would reuse it, so a new array need not raise the peak at all.
    probe = f"""
import importlib.util, numpy as np
spec = importlib.util.spec_from_file_location("m", {str(SCRIPT)!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
def transient():                      # 64 MiB, freed before the step returns
    np.ones(8 << 20).sum()
print(m._measured(lambda: np.ones(1 << 20)), m._measured(lambda: np.ones(8 << 20)),
      m._measured(transient), m.MiB)
"""
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               check=True)
    small, large, transient, mib = map(int, completed.stdout.split())
    assert 7 * mib <= small <= 20 * mib                         # 8 MiB kept
    assert 63 * mib <= large <= 80 * mib                        # 64 MiB kept
    assert transient >= 63 * mib                                # the peak, not the end state


def test_script_reports_numlstm_and_names_a_missing_torch(capsys, monkeypatch, tmp_path):
    script = _load_script()
    missing = tmp_path / "python-without-torch"
    missing.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import sys; sys.exit(\"no torch\")'\n")
    missing.chmod(0o755)
    assert script.main(["--config", "a", "--peer-python", str(missing)]) == 0
    out = capsys.readouterr().out
    numlstm_row = next(line for line in out.splitlines() if line.startswith("numlstm"))
    assert float(numlstm_row.split()[2]) > 0                     # B1 T100 H64: caches exist
    assert "torch      not measured" in out


def test_script_refuses_multi_layer_config(capsys):
    assert _load_script().main(["--config", "e"]) == 2
    assert "--config must be" in capsys.readouterr().err
