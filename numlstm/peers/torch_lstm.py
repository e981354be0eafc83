"""Time ``torch.nn.LSTM`` -- or the same LSTM exported to ONNX and run by ONNX Runtime -- on
weights written by :func:`numlstm.bench.run_peer`.

Run in its own process (importing torch into the process that times Numba disturbs Numba's
threaded timings), by file path or as a module::

    python numlstm/peers/torch_lstm.py --in weights.npz --settings settings.json --out result.json
    python -m numlstm.peers.torch_lstm --in weights.npz --settings settings.json --out result.json

It needs only torch and NumPy (it never imports numlstm), so any interpreter with torch can run
it. Input ``.npz``: ``x`` (batch, timesteps, features), ``grad_outputs`` (batch, timesteps,
units) and PyTorch state-dict arrays ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
``bias_hh_l{k}`` for every layer ``k``. Settings JSON: ``mode`` (``forward`` | ``train``),
``repeats``, ``warmup``, ``threads`` (int or null), ``layers``, and optionally ``runtime``:
``"torch"`` (default) or ``"ort"``. With ``"ort"`` the model is exported by torch's ONNX exporter
(the standard ``LSTM`` operator, opset 17) and timed in an ``onnxruntime.InferenceSession``
with ``intra_op_num_threads = threads`` and sequential execution (inference only).

Output: ``result.json`` with ``timing`` (``first_call_ms``, ``times_ms``) and ``versions``; and
``result_arrays.npz`` beside it with ``outputs``, ``h`` and ``c`` of the top layer and, in
training mode, ``d_x``, for a parity check. Exit status 3 when torch cannot be imported, 4 when
onnxruntime (or onnx) cannot be imported for ``runtime="ort"``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

EXIT_NO_TORCH = 3
EXIT_NO_ONNXRUNTIME = 4


def _ort_step(model, x, threads):
    """Export ``model`` to ONNX in memory and return a function that runs it once in ONNX
    Runtime on ``x`` and returns ``(outputs, (h, c))`` as torch tensors."""
    import io

    import onnxruntime
    import torch
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, input_names=["x"], output_names=["y", "h", "c"],
                      dynamic_axes={"x": {0: "batch", 1: "timesteps"}}, opset_version=17,
                      dynamo=False)
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    session = onnxruntime.InferenceSession(buffer.getvalue(), options,
                                           providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}

    def step():
        y, h, c = session.run(None, feed)
        return torch.from_numpy(y), (torch.from_numpy(h), torch.from_numpy(c))
    return step, onnxruntime.__version__


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Time torch.nn.LSTM for numlstm's benchmarks.")
    parser.add_argument("--in", dest="inputs", required=True)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError as error:
        print(f"torch is not importable: {error}", file=sys.stderr)
        return EXIT_NO_TORCH

    settings = json.loads(Path(args.settings).read_text())
    if settings.get("threads"):
        torch.set_num_threads(int(settings["threads"]))
    with np.load(args.inputs) as data:
        arrays = {name: data[name] for name in data.files}
    x_np = arrays.pop("x")
    grad_np = arrays.pop("grad_outputs")
    layers = int(settings["layers"])
    dtype = torch.float64 if x_np.dtype == np.float64 else torch.float32
    features = x_np.shape[2]
    units = arrays["weight_hh_l0"].shape[1]
    model = torch.nn.LSTM(features, units, num_layers=layers, batch_first=True).to(dtype)
    model.load_state_dict({name: torch.from_numpy(value) for name, value in arrays.items()})
    x = torch.from_numpy(x_np)
    grad_outputs = torch.from_numpy(grad_np)
    train = settings["mode"] == "train"
    runtime = settings.get("runtime", "torch")
    versions = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                "python": sys.version.split()[0]}

    if runtime == "ort":
        if train:
            print("ONNX Runtime is timed for inference only", file=sys.stderr)
            return 2
        try:
            step, versions["onnxruntime"] = _ort_step(model, x, settings.get("threads"))
        except ImportError as error:
            print(f"onnxruntime is not importable: {error}", file=sys.stderr)
            return EXIT_NO_ONNXRUNTIME
    elif train:
        x.requires_grad_(True)

        def step():
            model.zero_grad(set_to_none=False)
            x.grad = None
            outputs, state = model(x)
            outputs.backward(grad_outputs)
            return outputs, state
    else:
        def step():
            with torch.inference_mode():
                return model(x)

    start = time.perf_counter()
    outputs, (h, c) = step()
    first = time.perf_counter() - start
    for _ in range(int(settings["warmup"])):
        step()
    times = []
    for _ in range(int(settings["repeats"])):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)

    out = Path(args.out)
    result_arrays = {"outputs": outputs.detach().numpy(), "h": h[-1].detach().numpy(),
                     "c": c[-1].detach().numpy()}
    if train:
        result_arrays["d_x"] = x.grad.detach().numpy()
    np.savez(out.with_name(out.stem + "_arrays.npz"), **result_arrays)
    out.write_text(json.dumps({
        "timing": {"first_call_ms": first * 1e3, "times_ms": [t * 1e3 for t in times]},
        "versions": versions,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
