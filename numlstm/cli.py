"""The ``numlstm`` command: list, check and time the backends; train and use models.

    numlstm backends                     # which backends can run here, and why not
    numlstm check                        # every usable backend against the reference
    numlstm bench --config b --peer torch    # or --peer ort (ONNX Runtime)
    numlstm train digits --epochs 5 --out model.npz
    numlstm predict model.npz inputs.npy --out outputs.npy

Exit status: 0 on success, 1 when a check fails (``check``, or a backend that ``bench``
refused to time), 2 for a bad argument (one line on stderr, no traceback), including a
``--backends`` selection that leaves nothing usable to time or check.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import numpy as np

from . import __version__
from . import benchmarking as B
from .backends import BACKEND_NAMES, available_backends, get_backend
from .errors import BackendUnavailableError

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class UsageFailure(click.ClickException):
    """A bad argument discovered after parsing (missing file, wrong shape): exit status 2."""

    exit_code = EXIT_USAGE


class _Group(click.Group):
    """Prints click's usage errors as one line (``Error: ...``) instead of the usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.ctx.get_help())
            sys.exit(0)
        except click.UsageError as error:
            click.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.exceptions.Exit as error:
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except (ValueError, TypeError, BackendUnavailableError, ImportError) as error:
            # numlstm's own checks (shapes, dtypes, names, model files), a backend that cannot
            # run here, a missing optional extra: each message names the problem and the fix
            click.echo(f"Error: {error}", err=True)
            sys.exit(EXIT_USAGE)
        sys.exit(0)


def _console(stderr: bool = False):
    from rich.console import Console
    stream = sys.stderr if stderr else sys.stdout
    # A pipe or a file gets wide lines rather than cells wrapped at 80 columns.
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", 160))
    return Console(stderr=stderr, width=width, highlight=False, markup=False)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="numlstm")
def main():
    """numlstm: fast LSTM layers without a deep-learning framework."""


# -- numlstm backends ---------------------------------------------------------------------------

@main.command()
def backends():
    """Which backends can run here (and why not), the device and the versions that matter."""
    from rich.table import Table
    info = B.machine_info()
    console = _console()
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


def check_output_path(path, option: str) -> None:
    """Before any work starts: ``path`` (an output file) can be created or replaced -- its
    folder exists and takes a new file (probed by creating and removing one), its name fits
    the file system, it is not a folder or a read-only file. Otherwise a one-line usage error
    (exit status 2), rather than a traceback after the work is done."""
    target = Path(os.path.abspath(path))      # not resolve(): it fails on too-long names
    folder = target.parent
    if not folder.is_dir():
        raise UsageFailure(f"{option}: the folder of {path!r} does not exist")
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        name_max = 255
    if len(os.fsencode(target.name)) > name_max:
        raise UsageFailure(f"{option}: the file name of {path!r} is "
                           f"{len(os.fsencode(target.name))} bytes long; this file system "
                           f"allows at most {name_max}")
    if target.is_dir():
        raise UsageFailure(f"{option}: {path!r} is a folder, not a file")
    probe = folder / f".numlstm-write-probe-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * 4096)       # a full disk refuses data, not only new names
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as error:
        raise UsageFailure(f"{option}: the folder of {path!r} is not writable "
                           f"({error.strerror or error})") from None
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageFailure(f"{option}: {path!r} exists and is not writable")


def _write_output(path, option: str, write) -> None:
    """Run ``write()``; a failure to write ``path`` (disk full meanwhile, ...) becomes a
    one-line usage error naming the option."""
    try:
        write()
    except OSError as error:
        raise UsageFailure(f"{option}: could not write {str(path)!r} "
                           f"({error.strerror or error})") from None


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

@main.command()
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
    from rich.table import Table
    base = B.CONFIGS[config or "b"]
    overrides = {"batch": batch, "timesteps": timesteps, "features": features,
                 "units": units, "layers": layers}
    given = {k: v for k, v in overrides.items() if v is not None}
    shape = B.Shape(**{**base.__dict__, **given})
    label = (config or "b") if not given else None
    names = _parse_backends(backend_list)
    for path, what in ((json_path, "--json"), (plot_path, "--plot")):
        if path is not None:
            check_output_path(path, what)
    if plot_path is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageFailure('--plot needs matplotlib: pip install "numlstm[plot]"') from None
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
    console, err = _console(), _console(stderr=True)
    usable = _split_usable(names, console)
    if not usable:
        raise UsageFailure(f"--backends: none of {', '.join(names or BACKEND_NAMES)} can run "
                           "here, so there is nothing to time; `numlstm backends` says which "
                           "can and why not")
    if names is None:
        # Numba's CUDA simulator runs kernels in Python: usable for checks, not for timing
        for name in list(usable):
            if getattr(get_backend(name), "simulator", False):
                usable.remove(name)
                console.print(f"note: skipping {name}: it runs in Numba's CUDA simulator; "
                              "name it in --backends to time it anyway")
    requested = names if names is not None else usable
    console.print(f"shape: {shape.describe()} ({label and f'config {label}' or 'custom'}), "
                  f"{mode}, {dtype}, {threads} thread(s), {repeats} repeats after {warmup} "
                  f"warm-up; {_flop_text(shape.flops(mode))} per call")
    with err.status("benchmarking") as status:
        report = B.bench(shape, backends=requested, mode=mode, dtype=dtype, repeats=repeats,
                         warmup=warmup, threads=threads, peer=peer, peer_python=peer_python,
                         config=label, peak=peak, seed=seed,
                         progress=lambda line: status.update(line))
    peaks = report["matmul_peak_gflops"]
    peak_value = None
    if peaks:
        peak_value = peaks.get(str(threads))
        console.print("matmul peak (NumPy BLAS sgemm 1024): " + ", ".join(
            f"{n} thread(s) {v:.0f} GFLOP/s" for n, v in peaks.items()))

    table = Table(title=f"numlstm bench: {shape.describe()}, {mode}, {dtype}")
    columns = ["backend", "check", "max |diff|", "grad diff", "first call ms", "median ms",
               "min ms", "max ms", "GFLOP/s", "% peak", "x fastest"]
    if peer:
        columns.append(f"x {peer}")
    for column in columns:
        table.add_column(column, justify="left" if column == "backend" else "right")
    failed = False
    for entry in report["results"]:
        if entry["status"] == "unavailable" and entry["kind"] == "backend":
            continue       # already noted above
        check, forward_diff, grad_diff = _check_cells(entry)
        if entry["status"] in ("check_failed", "error"):
            failed = True
        timing = entry["timing"]
        if timing is None:
            table.add_row(entry["name"], check, forward_diff, grad_diff,
                          *(["-"] * (len(columns) - 4)))
            continue
        row = [entry["name"], check, forward_diff, grad_diff,
               _fmt(timing["first_call_ms"], 1),
               _fmt(timing["median_ms"], 3), _fmt(timing["min_ms"], 3),
               _fmt(timing["max_ms"], 3), _fmt(entry["gflops"], 1),
               _fmt(None if not peak_value or entry["gflops"] is None
                    else 100 * entry["gflops"] / peak_value, 0),
               _fmt(entry["ratio_to_fastest"])]
        if peer:
            row.append(_fmt(entry["ratio_to_peer"]))
        table.add_row(*row)
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
    if json_path:
        _write_output(json_path, "--json", lambda: B.dump_report(report, json_path))
        console.print(f"wrote {json_path}")
    if plot_path:
        _write_output(plot_path, "--plot", lambda: _plot(report, plot_path))
        console.print(f"wrote {plot_path}")
    if failed:
        sys.exit(EXIT_CHECK_FAILED)


def _check_cells(entry: dict) -> tuple[str, str, str]:
    """The check verdict, the worst output/state difference and the worst gradient
    difference of one result, as table cells."""
    parity = entry["parity"]
    if entry["name"] == "numpy" and entry["kind"] == "backend" and entry["status"] == "ok":
        return "reference", "-", "-"
    if parity is None:
        return ("ERROR" if entry["status"] == "error" else "-"), "-", "-"
    diffs = parity["max_abs_diff"]
    forward = [v for k, v in diffs.items() if not k.startswith("d_")]
    grads = parity.get("rel_norm_diff") or {k: v for k, v in diffs.items()
                                            if k.startswith("d_")}
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


@main.command()
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
    import json

    from rich.table import Table
    names = _parse_backends(backend_list)
    if json_path is not None:
        check_output_path(json_path, "--json")
    console = _console()
    usable = [n for n in _split_usable(names, console) if n != "numpy"]
    if not usable:
        # numpy is the reference itself: a selection without another usable backend checks
        # nothing, which is a usage error rather than a silent pass
        raise UsageFailure("nothing to check: no usable backend other than the numpy reference "
                           f"among {', '.join(names or BACKEND_NAMES)}; `numlstm backends` says "
                           "which can run here and why not")
    dtypes = dtypes or ("float32", "float64")
    table = Table(title=f"numlstm check against the numpy reference (B{batch} T{timesteps} "
                        f"D{features} H{units})")
    for column in ("backend", "dtype", "case", "max |diff| outputs/states",
                   "max |diff| gradients", "max rel-norm gradients", "result"):
        table.add_column(column, justify="left" if column in ("backend", "case") else "right")
    records, failed = [], False
    for dtype in dtypes:
        for label, mask, reverse, layers, activation, recurrent in CHECK_CASES:
            shape = B.Shape(batch, timesteps, features, units, layers)
            problem = B.make_problem(shape, dtype, seed=seed, mask=mask, reverse=reverse,
                                     activation=activation, recurrent_activation=recurrent)
            reference = B._run_all("numpy", problem)
            reference64 = (None if dtype == "float64" else
                           B._run_all("numpy", problem.astype(np.float64)))
            for name in usable:
                try:
                    result = B.check_parity(name, problem, reference=reference,
                                            reference64=reference64)
                except Exception as error:      # a crash is a failed check, not a traceback
                    failed = True
                    table.add_row(name, dtype, label, "-", "-", "-",
                                  f"ERROR {type(error).__name__}")
                    records.append({"backend": name, "dtype": dtype, "case": label,
                                    "passed": False, "error": f"{type(error).__name__}: "
                                                              f"{error}"})
                    continue
                forward = [v for k, v in result.max_abs_diff.items() if not k.startswith("d_")]
                grads = [v for k, v in result.max_abs_diff.items() if k.startswith("d_")]
                failed |= not result.passed
                table.add_row(name, dtype, label, f"{max(forward):.1e}", f"{max(grads):.1e}",
                              f"{max(result.rel_norm_diff.values()):.1e}"
                              if result.rel_norm_diff else "-",
                              "ok" if result.passed else "FAILED: " + ", ".join(
                                  result.failures))
                records.append({"case": label, **result.to_dict()})
    console.print(table)
    if json_path:
        text = json.dumps({"schema": "numlstm.check/1", "shape": {
            "batch": batch, "timesteps": timesteps, "features": features, "units": units},
            "results": records, "passed": not failed}, indent=2, default=float) + "\n"
        _write_output(json_path, "--json", lambda: Path(json_path).write_text(text))
        console.print(f"wrote {json_path}")
    if failed:
        console.print("check FAILED: at least one backend disagrees with the reference")
        sys.exit(EXIT_CHECK_FAILED)
    if usable:
        console.print(f"all {len(usable)} backend(s) agree with the reference")


# -- models: train, evaluate, predict, summary ---------------------------------------------------
# These use the Keras-like front-end (numlstm.Sequential, numlstm.load_model) and the built-in
# datasets (numlstm.datasets).

TASKS = ("digits", "adding", "sine")

# Sizes `numlstm train` refuses above, in one line rather than a MemoryError after minutes:
# far beyond anything the command's small tasks need.
MAX_UNITS = 4096              # a 4096-unit layer's recurrent kernel alone is 256 MiB
MAX_LAYERS = 64
MAX_SAMPLES = 10 ** 6
MAX_TIMESTEPS = 10 ** 5
MAX_TASK_VALUES = 10 ** 8     # samples x timesteps of a generated task (400 MB of float32)
MAX_CLASSES = 10 ** 5         # integer labels: one output unit per class


def _load_npz(path, names=("x", "y")) -> tuple:
    """Arrays ``names`` of a user's ``.npz`` (never unpickled); a usage error when unreadable
    or when one is missing."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [n for n in names if n not in data.files]
            if missing:
                raise UsageFailure(f"{path}: missing array(s) {', '.join(missing)} (found: "
                                   f"{', '.join(data.files) or 'none'})")
            return tuple(np.asarray(data[n]) for n in names)
    except UsageFailure:
        raise
    except Exception as error:
        raise UsageFailure(f"{path}: not a readable .npz file ({type(error).__name__}: "
                           f"{error})") from None


def _load_array(path) -> np.ndarray:
    """A ``.npy`` array, or the ``x`` of an ``.npz``."""
    if str(path).endswith(".npz"):
        return _load_npz(path, ("x",))[0]
    try:
        return np.load(path, allow_pickle=False)
    except Exception as error:
        raise UsageFailure(f"{path}: not a readable .npy file ({type(error).__name__}: "
                           f"{error})") from None


def _task_data(task: str, *, samples: int, timesteps: int | None, seed: int, test: bool):
    """``(x, y)`` of a built-in task: the training split, or the test split with ``test``."""
    from . import datasets
    if task == "digits":
        (x_train, y_train), (x_test, y_test) = datasets.digits(seed=seed)
        return (x_test, y_test) if test else (x_train, y_train)
    # a different seed gives the test set fresh sequences of the same distribution
    seed = seed + 1 if test else seed
    n = max(1, samples // 4) if test else samples
    if task == "adding":
        return datasets.adding_problem(n, timesteps=timesteps or 50, seed=seed)
    return datasets.sine_waves(n, timesteps=timesteps or 50, seed=seed)


def _head(y: np.ndarray) -> tuple:
    """The output layer, loss and metrics that fit targets ``y``: integer class labels get a
    softmax and sparse cross-entropy, real targets a linear layer and mean squared error."""
    if np.issubdtype(y.dtype, np.integer):
        if y.ndim != 1 or y.size == 0 or y.min() < 0:
            raise UsageFailure("y: integer class labels must be a 1-D array of labels >= 0; got "
                               f"shape {y.shape}")
        if y.max() >= MAX_CLASSES:
            raise UsageFailure(f"y: class labels must be below {MAX_CLASSES} (one output unit "
                               f"per class); got a label of {y.max()}")
        return int(y.max()) + 1, "softmax", "sparse_categorical_crossentropy", ["accuracy"]
    if not np.issubdtype(y.dtype, np.floating) or y.ndim not in (1, 2):
        raise UsageFailure(f"y must hold integer class labels (1-D) or real targets (1-D or "
                           f"2-D); got dtype {y.dtype}, shape {y.shape}")
    return (1 if y.ndim == 1 else y.shape[1]), None, "mse", ["mae"]


def _print_logs(console, title: str, logs: dict) -> None:
    from rich.table import Table
    console.print(title)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in logs.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)


def _load_model(path, backend=None):
    from .models import load_model
    try:
        return load_model(path, backend=backend)
    except BackendUnavailableError as error:
        if backend is not None:
            raise
        # the model was saved for a backend this machine lacks: name the option that fixes it
        raise UsageFailure(f"{path}: the model was saved to run on {error.backend!r}, which "
                           f"is not usable here ({error.reason}); "
                           "pick one that is with --backend, e.g. --backend numba") from None


_backend_choice = click.Choice(BACKEND_NAMES)


@main.command()
@click.argument("task", metavar="TASK|DATA.npz")
@click.option("--backend", type=_backend_choice, default=None,
              help="Backend to train on (default: the one in use, normally numba).")
@click.option("--units", type=click.IntRange(1, MAX_UNITS), default=64, show_default=True)
@click.option("--layers", type=click.IntRange(1, MAX_LAYERS), default=1, show_default=True,
              help="Stacked LSTM layers.")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=0.005,
              show_default=True, help="Adam's learning rate.")
@click.option("--samples", type=click.IntRange(2, MAX_SAMPLES), default=2000,
              show_default=True, help="Training sequences of the adding and sine tasks.")
@click.option("--timesteps", type=click.IntRange(1, MAX_TIMESTEPS), default=None,
              help="Sequence length of the adding and sine tasks (default 50).")
@click.option("--validation-split", type=click.FloatRange(0, 1, max_open=True), default=0.1,
              show_default=True, help="Fraction of a DATA.npz held out for validation.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default="model.npz",
              show_default=True, help="Where to save the trained model.")
def train(task, backend, units, layers, epochs, batch_size, learning_rate, samples, timesteps,
          validation_split, seed, out):
    """Train an LSTM on a built-in task (digits, adding, sine) or on DATA.npz (arrays x of
    shape (samples, timesteps, features) and y), then save it to --out.

    digits: scikit-learn's 8x8 digits read as 8 rows of 8 pixels, 10 classes (needs
    numlstm[datasets]). adding: the adding problem (regression). sine: next value of a sine
    wave. For DATA.npz, integer y means class labels (softmax, cross-entropy, accuracy), real y
    regression (mean squared error).
    """
    from . import optimizers
    from .layers import LSTM, Dense, Input
    from .models import Sequential
    check_output_path(out, "--out")
    if task in TASKS and samples * (timesteps or 50) > MAX_TASK_VALUES:
        raise UsageFailure(f"--samples {samples} x --timesteps {timesteps or 50} is more than "
                           f"{MAX_TASK_VALUES} values of data; give fewer")
    if backend is not None:
        get_backend(backend)        # a backend that cannot run here fails before any work
    console = _console()
    if task in TASKS:
        x, y = _task_data(task, samples=samples, timesteps=timesteps, seed=seed, test=False)
        test_data = _task_data(task, samples=samples, timesteps=timesteps, seed=seed,
                               test=True)
        split = 0.0
    elif task.endswith(".npz") or Path(task).exists():
        if not Path(task).is_file():
            raise UsageFailure(f"{task}: no such file")
        x, y = _load_npz(task)
        test_data, split = None, validation_split
    else:
        raise click.BadParameter(f"unknown task {task!r}: choose one of {', '.join(TASKS)} or "
                                 "give a .npz file with arrays x and y", param_hint="TASK")
    if x.ndim != 3:
        raise UsageFailure(f"x must be 3-D (samples, timesteps, features); got shape {x.shape}")
    outputs, activation, loss, metrics = _head(y)
    stack = [Input(x.shape[1:])]
    stack += [LSTM(units, return_sequences=i < layers - 1) for i in range(layers)]
    stack.append(Dense(outputs, activation=activation))
    model = Sequential(stack, backend=backend, seed=seed)
    model.compile(optimizer=optimizers.Adam(learning_rate=learning_rate), loss=loss,
                  metrics=metrics)
    console.print(f"training on {task}: {len(x)} sequences of shape {x.shape[1:]}, "
                  f"{layers} LSTM layer(s) of {units} units, backend {model.backend_name}")
    model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_split=split,
              verbose=1 if sys.stdout.isatty() else 2)
    if test_data is not None:
        logs = model.evaluate(*test_data, batch_size=batch_size, return_dict=True)
        _print_logs(console, f"{task}: {len(test_data[0])} test sequences", logs)
    saved = []
    _write_output(out, "--out", lambda: saved.append(model.save(out)))
    console.print(f"saved the model to {saved[0]}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", metavar="TASK|DATA.npz")
@click.option("--backend", type=_backend_choice, default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--samples", type=click.IntRange(min=2), default=2000, show_default=True,
              help="For the adding and sine tasks: evaluate on samples/4 fresh sequences.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="The seed the model was trained with (selects the held-out test split).")
def evaluate(model_path, data, backend, batch_size, samples, seed):
    """The loss and metrics of a saved MODEL on DATA.npz (arrays x, y) or on the test split of
    a built-in task (digits, adding, sine)."""
    if backend is not None:
        get_backend(backend)
    model = _load_model(model_path, backend)
    if not getattr(model, "compiled", False):
        raise UsageFailure(f"{model_path}: the model was saved without compile settings, so it "
                           "has no loss to evaluate")
    if data in TASKS:
        x, y = _task_data(data, samples=samples, timesteps=model.input_shape[1], seed=seed,
                          test=True)
    elif Path(data).is_file():
        x, y = _load_npz(data)
    else:
        raise click.BadParameter(f"{data!r} is neither a task ({', '.join(TASKS)}) nor a file",
                                 param_hint="DATA")
    logs = model.evaluate(x, y, batch_size=batch_size, return_dict=True)
    _print_logs(_console(), f"{Path(model_path).name} on {data} ({len(x)} sequences, "
                            f"backend {model.backend_name})", logs)


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.argument("input_path", metavar="INPUT.npy", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Where to write the predictions (.npy).")
@click.option("--backend", type=_backend_choice, default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
def predict(model_path, input_path, out, backend, batch_size):
    """Run a saved MODEL on INPUT.npy (samples, timesteps, features) -- or the x of an .npz --
    and write its outputs to --out."""
    check_output_path(out, "--out")
    if backend is not None:
        get_backend(backend)
    model = _load_model(model_path, backend)
    x = _load_array(input_path)
    outputs = model.predict(x, batch_size=batch_size)
    _write_output(out, "--out", lambda: np.save(out, outputs))
    _console().print(f"predicted {len(x)} sequences on {model.backend_name}: outputs "
                     f"{outputs.shape} {outputs.dtype} written to {out}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--backend", type=_backend_choice, default=None,
              help="Load the model for this backend (default: the one it was saved for).")
def summary(model_path, backend):
    """The layers, output shapes and parameter counts of a saved MODEL."""
    if backend is not None:
        get_backend(backend)
    model = _load_model(model_path, backend)
    console = _console()
    model.summary(print_fn=console.print)


# -- numlstm convert, numlstm export: Keras import and ONNX export (numlstm/interop/commands.py)
from .interop.commands import COMMANDS as _INTEROP_COMMANDS  # noqa: E402
for _command in _INTEROP_COMMANDS:
    main.add_command(_command)
