"""The whole benchmark -- check, then time, every backend and a peer -- and its JSON report.

The report (:func:`bench` returns it as a dict; ``numlstm bench --json`` writes it with
:func:`dump_report`) has the schema ``"numlstm.bench/1"`` described in :mod:`numlstm.bench`.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import validation as V
from ..backends import BACKEND_NAMES, available_backends
from .machine import machine_info, matmul_peak
from .parity import check_parity, peer_parity
from .peers import PEERS, run_peer
from .problems import MODES, Problem, Shape, make_problem, run_kernels, top_layer_view
from .timing import thread_limit, time_backend

__all__ = ["SCHEMA", "bench", "load_report", "dump_report"]

SCHEMA = "numlstm.bench/1"


def _empty_entry(name: str, kind: str) -> dict:
    return {"name": name, "kind": kind, "status": "ok", "note": "", "parity": None,
            "timing": None, "gflops": None, "ratio_to_fastest": None, "ratio_to_peer": None}


def _backend_entry(name: str, status, problem: Problem, mode: str, references: tuple, say,
                   **timing_options) -> dict:
    """Check (unless ``name`` is the reference itself), then time, one backend."""
    entry = _empty_entry(name, "backend")
    if not status.available:
        entry.update(status="unavailable", note=status.reason)
        return entry
    try:
        if name != "numpy":     # the reference itself has nothing to be compared with
            say(f"checking {name} against the reference")
            with thread_limit(timing_options["threads"]):
                parity = check_parity(name, problem, reference=references[0],
                                      reference64=references[1])
            entry["parity"] = parity.to_dict()
            if not parity.passed:
                entry.update(status="check_failed", note="disagrees with the reference on "
                             + ", ".join(parity.failures) + "; not timed")
                return entry
        say(f"timing {name} ({mode})" if name != "numpy" else "timing the numpy reference")
        entry["timing"] = time_backend(name, problem, mode, **timing_options).to_dict()
    except Exception as error:  # a backend crash is reported, the others still run
        entry.update(status="error", note=f"{type(error).__name__}: {error}")
    return entry


def _peer_entry(peer: str, problem: Problem, mode: str, references: tuple, say,
                **peer_options) -> dict:
    """Time a peer and compare its results with the reference's top layer."""
    say("timing torch.nn.LSTM in a child process" if peer == "torch" else
        "timing ONNX Runtime (torch's LSTM exported to ONNX) in a child process")
    entry = {**_empty_entry(peer, "peer"), "versions": {}}
    result = run_peer(problem, mode, runtime=peer, **peer_options)
    if not result.available:
        entry.update(status="unavailable", note=result.note)
        return entry
    entry["timing"] = result.timing.to_dict()
    entry["versions"] = result.versions
    reference, reference64 = references
    view = top_layer_view(reference, problem.layers)
    if reference64 is not None:     # float32 gradients are judged against float64
        view["d_x"] = reference64["d_x"]
    parity = peer_parity(result, view)
    entry["parity"] = parity
    if not parity["passed"]:
        entry["note"] = f"{peer}'s results differ from the reference on " + ", ".join(
            parity["failures"])
    return entry


def _add_ratios(results: list, flops: int, peer_entry: dict | None) -> None:
    """GFLOP/s and the ratios to the fastest and to the peer of every timed entry."""
    timed = [r for r in results if r["timing"] is not None]
    if not timed:
        return
    fastest = min(r["timing"]["median_ms"] for r in timed)
    peer_ms = peer_entry["timing"]["median_ms"] if peer_entry and peer_entry["timing"] \
        else None
    for entry in timed:
        median = entry["timing"]["median_ms"]
        entry["gflops"] = flops / (median * 1e-3) / 1e9 if median > 0 else None
        entry["ratio_to_fastest"] = median / fastest if fastest > 0 else None
        entry["ratio_to_peer"] = median / peer_ms if peer_ms else None


def bench(shape: Shape, *, backends: Sequence[str] | None = None, mode: str = "forward",
          dtype="float32", repeats: int = 10, warmup: int = 2, threads: int | None = None,
          peer: str | None = None, peer_python: str | None = None, config: str | None = None,
          peak: bool = True, seed: int = 0,
          progress: Callable[[str], None] | None = None) -> dict:
    """Check, then time, every requested backend on ``shape``; the report as a dict.

    ``backends`` None means every usable backend; a named backend that is not usable gets a
    result with status ``"unavailable"`` and its reason. A backend that fails
    :func:`~numlstm.bench.check_parity` is not timed (status ``"check_failed"``); the ``numpy``
    reference itself is timed without a check (its ``parity`` is None). ``peer="torch"`` adds
    the torch peer, ``peer="ort"`` the ONNX Runtime peer (:func:`~numlstm.bench.run_peer`;
    status ``"unavailable"`` with a note when it cannot run, e.g. ONNX Runtime in training
    mode). ``progress`` is called with a short line before each stage. See
    :mod:`numlstm.bench` for the schema.
    """
    V.check_name(mode, "mode", MODES)
    dtype = V.check_float_dtype(dtype)
    if peer is not None:
        V.check_name(peer, "peer", PEERS)
    statuses = available_backends()
    if backends is None:
        backends = [name for name in BACKEND_NAMES if statuses[name].available]
    else:
        backends = [V.check_name(name, "backend", BACKEND_NAMES) for name in backends]
    say = progress or (lambda line: None)
    problem = make_problem(shape, dtype, seed=seed)
    say("running the numpy reference")
    references = (run_kernels("numpy", problem),
                  None if dtype == np.float64 else
                  run_kernels("numpy", problem.astype(np.float64)))
    results = [_backend_entry(name, statuses[name], problem, mode, references, say,
                              repeats=repeats, warmup=warmup, threads=threads)
               for name in backends]
    peer_entry = None
    if peer is not None:
        peer_entry = _peer_entry(peer, problem, mode, references, say, repeats=repeats,
                                 warmup=warmup, threads=threads, python=peer_python)
        results.append(peer_entry)
    flops = shape.flops(mode)
    _add_ratios(results, flops, peer_entry)
    peaks = None
    if peak:
        say("measuring the matmul peak")
        peaks = matmul_peak(threads=(1, threads) if threads not in (None, 1) else (1, None))
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {"config": config, "shape": asdict(shape), "mode": mode,
                     "dtype": np.dtype(dtype).name, "repeats": repeats, "warmup": warmup,
                     "threads": threads, "flops": flops},
        "matmul_peak_gflops": peaks,
        "results": results,
    }


def load_report(path) -> dict:
    """Read a report written by ``numlstm bench --json`` (checks the schema tag)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a numlstm bench report (schema {SCHEMA!r})")
    return data


def _json_default(value: Any):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def dump_report(report: dict, path) -> Path:
    """Write ``report`` as indented JSON (infinities as strings, so any JSON reader copes)."""
    def clean(value):
        if isinstance(value, float) and not np.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value
    path = Path(path)
    path.write_text(json.dumps(clean(report), indent=2, default=_json_default) + "\n",
                    encoding="utf-8")
    return path
