"""The peers: ``torch.nn.LSTM``, and that LSTM exported to ONNX and run by ONNX Runtime,
timed with the same weights in a child process.

Importing torch into the process that times Numba made Numba's threaded timings erratic, so
:func:`run_peer` writes the weights to a temporary ``.npz`` and runs
:mod:`numlstm.peers.torch_lstm` in a child interpreter with the same thread count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import validation as V
from ..peers.torch_lstm import EXIT_NO_ONNXRUNTIME, EXIT_NO_TORCH
from .problems import MODES, Problem
from .timing import Timing

__all__ = ["PEERS", "PEER_SCRIPT", "PEER_PYTHON_ENV", "PeerResult", "run_peer",
           "run_torch_peer", "torch_peer_python"]

#: The script the child interpreter runs (by file path, so it needs only torch and NumPy).
PEER_SCRIPT = Path(__file__).resolve().parent.parent / "peers" / "torch_lstm.py"
#: Environment variable naming the Python interpreter that runs the peer.
PEER_PYTHON_ENV = "NUMLSTM_PEER_PYTHON"

#: The peers :func:`run_peer` can time: torch's own LSTM, and the same LSTM exported to ONNX
#: and run by ONNX Runtime (inference only).
PEERS = ("torch", "ort")
_PEER_LABELS = {"torch": "the torch peer", "ort": "the ONNX Runtime peer"}


@dataclass
class PeerResult:
    """What a peer returned.

    Attributes
    ----------
    available : bool
        False when the peer could not run (``note`` says why).
    note : str
    timing : Timing or None
    arrays : dict of str to np.ndarray
        The peer's ``outputs``, ``h`` and ``c`` (top layer; numlstm layout) and, in training
        mode, ``d_x``: for a parity check against numlstm.
    versions : dict
        The peer's versions and thread count as the child saw them.
    """

    available: bool
    note: str = ""
    timing: Timing | None = None
    arrays: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)


def torch_peer_python(python: str | None = None) -> str:
    """The interpreter that runs the peer: ``python``, else ``$NUMLSTM_PEER_PYTHON``, else this
    one."""
    return python or os.environ.get(PEER_PYTHON_ENV) or sys.executable


def run_torch_peer(problem: Problem, mode: str = "forward", **options) -> PeerResult:
    """:func:`run_peer` with ``runtime="torch"``."""
    return run_peer(problem, mode, runtime="torch", **options)


def run_peer(problem: Problem, mode: str = "forward", *, runtime: str = "torch",
             repeats: int = 10, warmup: int = 2, threads: int | None = None,
             python: str | None = None, timeout: float = 600.0) -> PeerResult:
    """Time ``torch.nn.LSTM`` (``batch_first=True``, ``num_layers`` = the stack's layers) with
    ``problem``'s weights in a child process -- or, with ``runtime="ort"``, that LSTM exported
    by torch's ONNX exporter and run in ONNX Runtime (``intra_op_num_threads = threads``;
    forward only: ``mode="train"`` returns an unavailable result saying so).

    The weights are converted with :func:`numlstm.convert.to_torch` and written, with the
    input and upstream gradient, to a temporary ``.npz``; the child
    (:mod:`numlstm.peers.torch_lstm`, run by file path so the interpreter needs only torch and
    NumPy) sets ``torch.set_num_threads(threads)`` (and ``OMP_NUM_THREADS``), times the same
    way as :func:`~numlstm.bench.time_backend` (training: ``outputs.backward(grad_outputs)``;
    forward under ``torch.inference_mode()``), and writes a JSON result plus its outputs.
    Masks, reverse, initial states, recurrent dropout and other activations than tanh/sigmoid
    are refused (``ValueError``): torch.nn.LSTM has no such options.

    Never raises for a missing torch, a crashing child or a timeout: returns
    ``PeerResult(available=False, note=...)`` instead.
    """
    V.check_name(mode, "mode", MODES)
    V.check_name(runtime, "runtime", PEERS)
    if runtime == "ort" and mode == "train":
        return PeerResult(False, "ONNX Runtime is an inference runtime: no training time")
    _check_torch_form(problem)
    interpreter = torch_peer_python(python)
    with tempfile.TemporaryDirectory(prefix="numlstm-peer-") as folder:
        folder = Path(folder)
        command = _write_inputs(folder, problem, interpreter, mode=mode, repeats=repeats,
                                warmup=warmup, threads=threads, runtime=runtime)
        env = dict(os.environ)
        if threads is not None:
            for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[variable] = str(threads)
        try:
            completed = subprocess.run(command, capture_output=True, text=True, env=env,
                                       timeout=timeout)
        except FileNotFoundError:
            return PeerResult(False, f"the peer interpreter {interpreter!r} was not found")
        except subprocess.TimeoutExpired:
            return PeerResult(False, f"{_PEER_LABELS[runtime]} did not finish within "
                              f"{timeout:.0f} s")
        return _read_result(folder, completed, interpreter, runtime)


def _check_torch_form(problem: Problem) -> None:
    """Refuse a problem ``torch.nn.LSTM`` cannot express."""
    extras = (problem.mask, problem.h0, problem.c0, problem.recurrent_dropout_mask)
    if any(extra is not None for extra in extras) or problem.reverse or (
            problem.activation, problem.recurrent_activation) != ("tanh", "sigmoid"):
        raise ValueError("the torch peer times unmasked forward-direction sequences with tanh "
                         "and sigmoid only (torch.nn.LSTM's one form), from zero states "
                         "without recurrent dropout; got a problem with a mask, "
                         "reverse=True, initial states, a dropout mask or other activations")


def _write_inputs(folder: Path, problem: Problem, interpreter: str, **settings) -> list:
    """Write the weights, inputs and settings the child reads; the child's command line."""
    from ..convert import to_torch
    arrays = {"x": problem.x, "grad_outputs": problem.grad_outputs}
    for index, layer in enumerate(problem.weights):
        arrays.update(to_torch(*layer, layer=index))
    np.savez(folder / "weights.npz", **arrays)
    (folder / "settings.json").write_text(json.dumps({**settings, "layers": problem.layers}))
    return [interpreter, str(PEER_SCRIPT), "--in", str(folder / "weights.npz"),
            "--settings", str(folder / "settings.json"), "--out", str(folder / "result.json")]


def _read_result(folder: Path, completed, interpreter: str, runtime: str) -> PeerResult:
    """The child's result, or an unavailable result that says why there is none."""
    if completed.returncode == EXIT_NO_TORCH:
        return PeerResult(False, f"torch is not installed for {interpreter} "
                          f"(use --peer-python or ${PEER_PYTHON_ENV} to name an "
                          "interpreter that has it)")
    if completed.returncode == EXIT_NO_ONNXRUNTIME:
        return PeerResult(False, f"onnxruntime (and onnx) are not installed for "
                          f"{interpreter}")
    if completed.returncode != 0 or not (folder / "result.json").exists():
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return PeerResult(False, f"{_PEER_LABELS[runtime]} failed (exit "
                          f"{completed.returncode}): {last}")
    data = json.loads((folder / "result.json").read_text())
    with np.load(folder / "result_arrays.npz") as loaded:
        outputs = {name: loaded[name] for name in loaded.files}
    return PeerResult(True, "", Timing.from_dict(data["timing"]), outputs,
                      data.get("versions", {}))
