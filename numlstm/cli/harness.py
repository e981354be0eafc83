"""The harness commands: ``numlstm backends``, ``numlstm bench`` and ``numlstm check``, the
command-line face of :mod:`numlstm.bench`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from .. import bench as B
from ..backends import BACKEND_NAMES, available_backends, get_backend, max_threads
from .common import EXIT_CHECK_FAILED, UsageFailure, check_output_path, make_console, write_output

__all__ = ["COMMANDS", "CHECK_CASES", "backends", "bench", "check"]


# -- numlstm backends ---------------------------------------------------------------------------

@click.command()
def backends():
    """Which backends can run here (and why not), the device and the versions that matter."""
    from rich.table import Table
    info = B.machine_info()
    console = make_console()
    cores = f"{info['usable_cores']} usable of {info['logical_cores']} logical"
    if info["physical_cores"]:
        cores += f", {info['physical_cores']} physical"
    console.print(f"CPU: {info['cpu']} ({cores} cores)")
    statuses = available_backends()
    table = Table(title="numlstm backends")
    for column in ("backend", "usable", "device / reason", "to fix"):
        table.add_column(column)
    for name, entry in info["backends"].items():
        usable = entry["available"]
        table.add_row(name, "yes" if usable else "no",
                      entry["device"] if usable else entry["reason"],
                      "" if usable else statuses[name].fix)
    console.print(table)
    versions = Table(title="versions")
    versions.add_column("package")
    versions.add_column("version")
    for package, version in info["versions"].items():
        versions.add_row(package, version or "not installed")
    versions.add_row("CUDA", info["cuda"] or "no usable GPU backend")
    versions.add_row("python", info["python"])
    console.print(versions)


# -- shared option parsing ----------------------------------------------------------------------

def _parse_backends(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    if not names:
        raise click.BadParameter("give at least one backend name", param_hint="--backends")
    for name in names:
        if name not in BACKEND_NAMES:
            raise click.BadParameter(f"unknown backend {name!r}; choose from "
                                     f"{', '.join(BACKEND_NAMES)}", param_hint="--backends")
    return list(dict.fromkeys(names))


def _split_usable(names: list[str] | None, console) -> list[str]:
    """The usable ones of ``names`` (of every backend when None), printing a note with the
    reason for each one that cannot run here."""
    statuses = available_backends()
    usable = []
    for name in (BACKEND_NAMES if names is None else names):
        if statuses[name].available:
            usable.append(name)
        else:
            console.print(f"note: skipping {name}: {statuses[name].reason}")
    return usable


def _positive(name: str):
    return click.option(f"--{name}", type=click.IntRange(min=1), default=None,
                        help=f"{name.capitalize()} (overrides --config).")


def _flop_text(flops: int) -> str:
    """``143 MFLOP``, ``32.7 GFLOP``: three significant digits in a unit that fits."""
    for scale, unit in ((1e9, "GFLOP"), (1e6, "MFLOP"), (1e3, "kFLOP")):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return f"{flops} FLOP"


def _fmt(value, digits=2) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


# -- numlstm bench ------------------------------------------------------------------------------

@click.command()
@click.option("--config", "config", type=click.Choice(sorted(B.CONFIGS)), default=None,
              help="A named shape of docs/performance.md: a B1 T100 D32 H64, b B32 T28 D28 H128, "
                   "c B64 T100 D64 H256, d B256 T50 D128 H512, e two layers of c "
                   "(default: b).")
@_positive("batch")
@_positive("timesteps")
@_positive("features")
@_positive("units")
@_positive("layers")
@click.option("--backends", "backend_list", default=None, metavar="NAMES",
              help="Comma-separated backends (default: every usable one).")
@click.option("--mode", type=click.Choice(B.MODES), default="forward", show_default=True,
              help="forward (inference) or train (forward + backward).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for numlstm, BLAS and the peer (default: every usable core).")
@click.option("--peer", type=click.Choice(list(B.PEERS)), default=None,
              help="Also time a peer with the same weights, in a child process: torch "
                   "(torch.nn.LSTM) or ort (that LSTM exported to ONNX, run by ONNX "
                   "Runtime; inference only).")
@click.option("--peer-python", type=click.Path(dir_okay=False), default=None,
              envvar=B.PEER_PYTHON_ENV, show_envvar=True,
              help="Interpreter with torch (and onnxruntime for ort) that runs the peer "
                   "(default: this one).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True),
              default=None, help="Write every figure, the machine and versions as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Draw a bar chart to this .png (needs numlstm[plot]).")
@click.option("--peak/--no-peak", default=True, show_default=True,
              help="Measure the matmul (sgemm) peak for a percent-of-peak column.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def bench(config, batch, timesteps, features, units, layers, backend_list, mode, dtype,
          repeats, warmup, threads, peer, peer_python, json_path, plot_path, peak, seed):
    """Check every backend against the reference, then time it.

    A backend whose results disagree with the numpy reference beyond the tolerances of
    docs/numerics.md is not timed (exit status 1). Times are the median, min and max of
    --repeats calls after --warmup calls; the first call (JIT compilation or cache loading)
    is shown apart.
    """
    shape, label = _bench_shape(config, batch=batch, timesteps=timesteps, features=features,
                                units=units, layers=layers)
    names = _parse_backends(backend_list)
    _check_bench_outputs(json_path, plot_path)
    threads = max_threads() if threads is None else threads
    console, err = make_console(), make_console(stderr=True)
    requested = _backends_to_time(names, console)
    console.print(f"shape: {shape.describe()} ({label and f'config {label}' or 'custom'}), "
                  f"{mode}, {dtype}, {threads} thread(s), {repeats} repeats after {warmup} "
                  f"warm-up; {_flop_text(shape.flops(mode))} per call")
    with err.status("benchmarking") as status:
        report = B.bench(shape, backends=requested, mode=mode, dtype=dtype, repeats=repeats,
                         warmup=warmup, threads=threads, peer=peer, peer_python=peer_python,
                         config=label, peak=peak, seed=seed,
                         progress=lambda line: status.update(line))
    failed = _print_bench_report(console, report, shape, threads=threads, peer=peer)
    if json_path:
        write_output(json_path, "--json", lambda: B.dump_report(report, json_path))
        console.print(f"wrote {json_path}")
    if plot_path:
        write_output(plot_path, "--plot", lambda: _plot(report, plot_path))
        console.print(f"wrote {plot_path}")
    if failed:
        sys.exit(EXIT_CHECK_FAILED)


def _bench_shape(config: str | None, **overrides) -> tuple:
    """The shape ``bench`` times -- ``config`` (default ``b``) with any given sizes replacing
    its own -- and the config's name to report (None once a size is overridden)."""
    base = B.CONFIGS[config or "b"]
    given = {k: v for k, v in overrides.items() if v is not None}
    shape = B.Shape(**{**base.__dict__, **given})
    return shape, ((config or "b") if not given else None)


def _check_bench_outputs(json_path, plot_path) -> None:
    """Before any work: the output files can be written, and --plot has matplotlib."""
    for path, what in ((json_path, "--json"), (plot_path, "--plot")):
        if path is not None:
            check_output_path(path, what)
    if plot_path is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageFailure('--plot needs matplotlib: pip install "numlstm[plot]"') from None


def _backends_to_time(names: list[str] | None, console) -> list[str]:
    """The backends ``bench`` asks the harness for: the named ones (an unusable one is reported
    as such), or every usable one except those that run in Numba's CUDA simulator. A usage
    error when none of them can run here."""
    usable = _split_usable(names, console)
    if not usable:
        raise UsageFailure(f"--backends: none of {', '.join(names or BACKEND_NAMES)} can run "
                           "here, so there is nothing to time; `numlstm backends` says which "
                           "can and why not")
    if names is not None:
        return names
    # Numba's CUDA simulator runs kernels in Python: usable for checks, not for timing
    for name in list(usable):
        if getattr(get_backend(name), "simulator", False):
            usable.remove(name)
            console.print(f"note: skipping {name}: it runs in Numba's CUDA simulator; "
                          "name it in --backends to time it anyway")
    return usable


def _print_bench_report(console, report: dict, shape, *, threads: int, peer: str | None) -> bool:
    """Print the matmul peak, the results table and the notes of ``report``; whether any
    backend failed its check or crashed."""
    from rich.table import Table
    peaks = report["matmul_peak_gflops"]
    peak_value = None
    if peaks:
        peak_value = peaks.get(str(threads))
        console.print("matmul peak (NumPy BLAS sgemm 1024): " + ", ".join(
            f"{n} thread(s) {v:.0f} GFLOP/s" for n, v in peaks.items()))
    settings = report["settings"]
    table = Table(title=f"numlstm bench: {shape.describe()}, {settings['mode']}, "
                        f"{settings['dtype']}")
    columns = ["backend", "check", "max |diff|", "grad diff", "first call ms", "median ms",
               "min ms", "max ms", "GFLOP/s", "% peak", "x fastest"]
    if peer:
        columns.append(f"x {peer}")
    for column in columns:
        table.add_column(column, justify="left" if column == "backend" else "right")
    failed = False
    for entry in report["results"]:
        if entry["status"] == "unavailable" and entry["kind"] == "backend":
            continue       # already noted when the backends were chosen
        failed |= entry["status"] in ("check_failed", "error")
        table.add_row(*_result_row(entry, len(columns), peak_value, peer))
    console.print(table)
    for entry in report["results"]:
        if entry["note"] and entry["status"] != "unavailable" or (
                entry["kind"] == "peer" and entry["note"]):
            console.print(f"note: {entry['name']}: {entry['note']}")
    console.print("max |diff|: outputs and final states against the numpy reference in the "
                  "same dtype; grad diff: gradients, by relative norm against a float64 "
                  "reference (float32) or max |diff| (float64); the peer: its outputs, states "
                  "(and input gradient when training) against the reference. x fastest, "
                  "x " + (peer or "peer") + ": median over the other's median (below 1 is "
                  "faster).")
    return failed


def _result_row(entry: dict, width: int, peak_value: float | None, peer: str | None) -> list:
    """One result of the report as ``width`` table cells."""
    cells = [entry["name"], *_check_cells(entry)]
    timing = entry["timing"]
    if timing is None:
        return cells + ["-"] * (width - len(cells))
    cells += [_fmt(timing["first_call_ms"], 1), _fmt(timing["median_ms"], 3),
              _fmt(timing["min_ms"], 3), _fmt(timing["max_ms"], 3), _fmt(entry["gflops"], 1),
              _fmt(None if not peak_value or entry["gflops"] is None
                   else 100 * entry["gflops"] / peak_value, 0),
              _fmt(entry["ratio_to_fastest"])]
    if peer:
        cells.append(_fmt(entry["ratio_to_peer"]))
    return cells


def _check_cells(entry: dict) -> tuple[str, str, str]:
    """The check verdict, the worst output/state difference and the worst gradient
    difference of one result, as table cells."""
    parity = entry["parity"]
    if entry["name"] == "numpy" and entry["kind"] == "backend" and entry["status"] == "ok":
        return "reference", "-", "-"
    if parity is None:
        return ("ERROR" if entry["status"] == "error" else "-"), "-", "-"
    diffs = parity["max_abs_diff"]
    forward = [v for k, v in diffs.items() if not B.is_gradient(k)]
    grads = parity.get("rel_norm_diff") or {k: v for k, v in diffs.items() if B.is_gradient(k)}
    verdict = "ok" if parity["passed"] else ("DIFFERS" if entry["kind"] == "peer"
                                             else "FAILED")
    return (verdict, f"{max(forward):.1e}" if forward else "-",
            f"{max(grads.values()):.1e}" if grads else "-")


def _plot(report: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    timed = [e for e in report["results"] if e["timing"] is not None]
    names = [e["name"] for e in timed]
    medians = [e["timing"]["median_ms"] for e in timed]
    low = [m - e["timing"]["min_ms"] for m, e in zip(medians, timed)]
    high = [e["timing"]["max_ms"] - m for m, e in zip(medians, timed)]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    colors = ["tab:gray" if e["kind"] == "peer" else "tab:blue" for e in timed]
    bars = axes.bar(names, medians, yerr=[low, high], color=colors, capsize=4)
    for bar, entry in zip(bars, timed):
        if entry["gflops"] is not None:
            axes.annotate(f"{entry['gflops']:.1f} GFLOP/s", (bar.get_x() + bar.get_width() / 2,
                          bar.get_height()), ha="center", va="bottom", fontsize=8)
    settings = report["settings"]
    shape = B.Shape(**settings["shape"])
    if medians and max(medians) > 20 * min(medians) > 0:
        axes.set_yscale("log")      # keep a fast backend's bar visible beside slow ones
    axes.set_ylabel("median ms (bars: min-max)")
    axes.set_title(f"{shape.describe()}, {settings['mode']}, {settings['dtype']}, "
                   f"{settings['threads']} thread(s)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# -- numlstm check ------------------------------------------------------------------------------

CHECK_CASES = (  # (label, mask, reverse, layers, activation, recurrent_activation)
    ("plain", False, False, 1, "tanh", "sigmoid"),
    ("mask", True, False, 1, "tanh", "sigmoid"),
    ("go_backwards", False, True, 1, "tanh", "sigmoid"),
    ("mask + go_backwards", True, True, 1, "tanh", "sigmoid"),
    ("2 layers + mask", True, False, 2, "tanh", "sigmoid"),
    ("relu + hard_sigmoid", True, False, 1, "relu", "hard_sigmoid"),
    ("linear + hard_sigmoid_keras2", False, True, 1, "linear", "hard_sigmoid_keras2"),
)


@click.command()
@click.option("--backends", "backend_list", default=None, metavar="NAMES",
              help="Comma-separated backends (default: every usable one).")
@click.option("--dtype", "dtypes", type=click.Choice(["float32", "float64"]), multiple=True,
              help="Repeat for several (default: both).")
@click.option("--batch", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--timesteps", type=click.IntRange(min=1), default=7, show_default=True)
@click.option("--features", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--units", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True),
              default=None, help="Write every comparison as JSON.")
def check(backend_list, dtypes, batch, timesteps, features, units, seed, json_path):
    """Every usable backend against the numpy reference: outputs, final states and all
    gradients, with masks, go_backwards, a two-layer stack and other activations (relu,
    linear, both hard sigmoids), in float32 and float64.

    Exit status 1 if any backend disagrees beyond the tolerances of docs/numerics.md (float64:
    1e-10; float32: 1e-5 on outputs and states, gradients by relative norm 1e-5 against a
    float64 reference).
    """
    from rich.table import Table
    names = _parse_backends(backend_list)
    if json_path is not None:
        check_output_path(json_path, "--json")
    console = make_console()
    usable = [n for n in _split_usable(names, console) if n != "numpy"]
    if not usable:
        # numpy is the reference itself: a selection without another usable backend checks
        # nothing, which is a usage error rather than a silent pass
        raise UsageFailure("nothing to check: no usable backend other than the numpy reference "
                           f"among {', '.join(names or BACKEND_NAMES)}; `numlstm backends` says "
                           "which can run here and why not")
    table = Table(title=f"numlstm check against the numpy reference (B{batch} T{timesteps} "
                        f"D{features} H{units})")
    for column in ("backend", "dtype", "case", "max |diff| outputs/states",
                   "max |diff| gradients", "max rel-norm gradients", "result"):
        table.add_column(column, justify="left" if column in ("backend", "case") else "right")
    records = []
    for dtype in dtypes or ("float32", "float64"):
        for case in CHECK_CASES:
            shape = B.Shape(batch, timesteps, features, units, case[3])
            records += _check_case(table, usable, shape, dtype, case, seed)
    console.print(table)
    failed = not all(record["passed"] for record in records)
    if json_path:
        text = json.dumps({"schema": "numlstm.check/1", "shape": {
            "batch": batch, "timesteps": timesteps, "features": features, "units": units},
            "results": records, "passed": not failed}, indent=2, default=float) + "\n"
        write_output(json_path, "--json", lambda: Path(json_path).write_text(text))
        console.print(f"wrote {json_path}")
    if failed:
        console.print("check FAILED: at least one backend disagrees with the reference")
        sys.exit(EXIT_CHECK_FAILED)
    console.print(f"all {len(usable)} backend(s) agree with the reference")


def _check_case(table, backend_names: list[str], shape, dtype: str, case: tuple,
                seed: int) -> list[dict]:
    """Check every backend on one of :data:`CHECK_CASES`, adding a row per backend to
    ``table``; one JSON record per backend (a crash is a failed check, not a traceback)."""
    label, mask, reverse, _, activation, recurrent = case
    problem = B.make_problem(shape, dtype, seed=seed, mask=mask, reverse=reverse,
                             activation=activation, recurrent_activation=recurrent)
    reference = B.run_kernels("numpy", problem)
    reference64 = (None if dtype == "float64" else
                   B.run_kernels("numpy", problem.astype(np.float64)))
    records = []
    for name in backend_names:
        try:
            result = B.check_parity(name, problem, reference=reference,
                                    reference64=reference64)
        except Exception as error:
            table.add_row(name, dtype, label, "-", "-", "-", f"ERROR {type(error).__name__}")
            records.append({"backend": name, "dtype": dtype, "case": label, "passed": False,
                            "error": f"{type(error).__name__}: {error}"})
            continue
        forward = [v for k, v in result.max_abs_diff.items() if not B.is_gradient(k)]
        grads = [v for k, v in result.max_abs_diff.items() if B.is_gradient(k)]
        table.add_row(name, dtype, label, f"{max(forward):.1e}", f"{max(grads):.1e}",
                      f"{max(result.rel_norm_diff.values()):.1e}"
                      if result.rel_norm_diff else "-",
                      "ok" if result.passed else "FAILED: " + ", ".join(result.failures))
        records.append({"case": label, **result.to_dict()})
    return records


#: The commands :mod:`numlstm.cli` adds to the ``numlstm`` group.
COMMANDS = (backends, bench, check)
