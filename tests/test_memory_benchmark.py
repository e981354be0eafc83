"""The memory benchmark script measures what it says: a step that allocates more shows more."""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
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
    script = _load_script()
    small = script._measured(lambda: np.ones(1 << 20))           # 8 MiB, kept
    large = script._measured(lambda: np.ones(8 << 20))           # 64 MiB, kept
    assert 7 * script.MiB <= small <= 20 * script.MiB
    assert 63 * script.MiB <= large <= 80 * script.MiB

    def transient():                                             # 64 MiB freed before return
        np.ones(8 << 20).sum()
    assert script._measured(transient) >= 63 * script.MiB      # the peak, not the end state


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
