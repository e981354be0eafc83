"""The ``cupy`` backend's host-side logic, checked without CuPy or a GPU.

Where CuPy and a GPU are missing, the CuPy tests skip. So that the backend's Python side (the
time-major layout, the processing order of ``reverse``, the per-step loop, mask and dropout
handling, the cache and the whole-sequence gradient GEMMs) is still held to the reference in
every test run, this module runs it on a stand-in for the ``cupy`` module made of NumPy, with
the two fused kernels replaced by NumPy functions that follow their documented contract
(``numlstm.backends.cupy_kernels``): masks, carried states and outputs as the kernels handle
them, and for the gate math the reference's own (``numpy_backend.gate_update`` and
``gate_update_backward``), so this module has no gate equations of its own. It proves nothing
about the CUDA C++ of those kernels: that is what ``tests/test_cupy_backend.py`` and the
parity suite do on a GPU.
"""

import sys
import types

import numpy as np
import pytest

from numlstm.backends.numpy_backend import gate_update, gate_update_backward

from conftest import make_problem


def _processed_rows(step, has_mask, batch):
    """The rows that take the step: all, or those whose ``step`` flag is set."""
    return step if has_mask else np.ones(batch, bool)


def _gates_forward(x_proj, recurrent, h_prev, c_prev, step, has_mask, activation,
                   recurrent_activation, units, zero_output_for_mask,
                   h_new, c_new, output, h_before, gates):
    """``LSTM_GATES_FORWARD``'s contract, with the reference's gate update for the math. As
    the kernel does, a row that does not take the step keeps its states, outputs the carried
    ``h`` (or zero) and leaves its ``gates`` unwritten."""
    hp, cp = h_prev.copy(), c_prev.copy()        # h_new and c_new may be h_prev and c_prev
    rows = _processed_rows(step, has_mask, len(hp))
    step_gates, c, h = gate_update(x_proj[rows] + recurrent[rows], cp[rows], activation,
                                   recurrent_activation)
    h_before[...] = hp
    h_new[...], c_new[...] = hp, cp
    output[...] = 0 if zero_output_for_mask else hp
    h_new[rows], c_new[rows], output[rows], gates[rows] = h, c, h, step_gates


def _gates_backward(gates, cell, c_prev, dh, dc, grad_output, step, has_mask,
                    zero_output_for_mask, activation, recurrent_activation, units,
                    dh_out, dc_out, dz):
    """``LSTM_GATES_BACKWARD``'s contract, with the reference's gate update for the math: a
    row that did not take the step gets ``dz = 0``, keeps ``dc`` and carries ``dh`` (plus the
    output's gradient unless masked outputs are zeros)."""
    dh, dc = dh.copy(), dc.copy()                # dh_out and dc_out may be dh and dc
    rows = _processed_rows(step, has_mask, len(dh))
    dh_total = dh + grad_output
    dz_rows, dc_prev = gate_update_backward(gates[rows], cell[rows], c_prev[rows],
                                            dh_total[rows], dc[rows], activation,
                                            recurrent_activation)
    dz[...] = 0
    dc_out[...] = dc
    dh_out[...] = dh if zero_output_for_mask else dh_total
    dz[rows], dc_out[rows], dh_out[rows] = dz_rows, dc_prev, dh_total[rows]


class _StandInKernel:
    """Takes ``ElementwiseKernel``'s constructor arguments; runs the NumPy stand-in named."""

    stand_ins = {"numlstm_lstm_gates_forward": _gates_forward,
                 "numlstm_lstm_gates_backward": _gates_backward}

    def __init__(self, in_params, out_params, operation, name, preamble=""):
        self.name = name
        self._function = self.stand_ins[name]

    def __call__(self, *args):
        self._function(*args)


def _matmul(a, b, out=None):
    if out is None:
        return np.matmul(a, b)
    out[...] = np.matmul(a, b)
    return out


@pytest.fixture
def numpy_cupy_backend(monkeypatch):
    stand_in = types.ModuleType("cupy")
    for name in ("ascontiguousarray", "asarray", "empty", "ones", "zeros", "where", "ndarray",
                 "multiply", "copyto"):
        setattr(stand_in, name, getattr(np, name))
    stand_in.matmul = _matmul
    stand_in.asnumpy = np.asarray
    stand_in.ElementwiseKernel = _StandInKernel
    stand_in.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    monkeypatch.setitem(sys.modules, "cupy", stand_in)
    for module in ("numlstm.backends.cupy_backend", "numlstm.backends.cupy_kernels"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    from numlstm.backends import cupy_backend
    yield cupy_backend.CupyBackend()
    for module in ("numlstm.backends.cupy_backend", "numlstm.backends.cupy_kernels"):
        sys.modules.pop(module, None)


CASES = {  # (batch, timesteps, features, units), options
    "holes": ((3, 5, 4, 3), dict(mask="holes")),
    "reverse-dropout": ((2, 4, 3, 5), dict(mask="random", dropout=True, reverse=True)),
    "zero-output": ((4, 3, 5, 7), dict(mask="holes", dropout=True, zero_output_for_mask=True,
                                       activation="relu",
                                       recurrent_activation="hard_sigmoid")),
    "batch1-reverse": ((1, 6, 3, 4), dict(reverse=True)),
    "batch0": ((0, 3, 2, 2), {}),
    "timesteps0": ((2, 0, 2, 2), dict(mask="random")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cupy_backend_host_logic_matches_the_reference(numpy_cupy_backend, case):
    from numlstm.activations import ACTIVATION_CODES
    shape, options = CASES[case]
    problem = make_problem(*shape, seed=4, **options)
    codes = {key: ACTIVATION_CODES[problem.options.get(key, default)]
             for key, default in (("activation", "tanh"), ("recurrent_activation", "sigmoid"))}
    reference = problem.run("numpy")
    forward = numpy_cupy_backend.lstm_forward(
        problem.x, problem.kernel, problem.recurrent_kernel, problem.bias, h0=problem.h0,
        c0=problem.c0, mask=problem.mask, recurrent_dropout_mask=problem.recurrent_dropout_mask,
        reverse=problem.options.get("reverse", False),
        zero_output_for_mask=problem.options.get("zero_output_for_mask", False),
        return_cache=True, **codes)
    grads = numpy_cupy_backend.lstm_backward(forward.cache, grad_outputs=problem.grad_outputs,
                                             grad_h=problem.grad_h, grad_c=problem.grad_c)
    results = {"outputs": forward.outputs, "h": forward.h, "c": forward.c,
               **{f"d_{n}": getattr(grads, n)
                  for n in ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0")}}
    for name, expected in reference.items():
        np.testing.assert_allclose(results[name], expected, rtol=0, atol=1e-10, err_msg=name)
