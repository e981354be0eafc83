"""The ``cupy`` backend beyond the shared parity suite (which runs it wherever it is usable):
CuPy arrays end to end, its named fused kernels, and CuPy arrays handed to the ``cuda`` backend
without a copy. Skipped, with the registry's reason, where CuPy or a GPU is missing."""

import numpy as np
import pytest

import numlstm

from conftest import make_problem

STATUS = numlstm.available_backends()["cupy"]
pytestmark = pytest.mark.skipif(
    not STATUS.available,
    reason=f"cupy backend not usable here: {STATUS.reason} (to run these: {STATUS.fix})")


def _device_problem(cupy, problem):
    return {k: (cupy.asarray(v) if isinstance(v, np.ndarray) else v)
            for k, v in vars(problem).items()}


def _forward_backward(backend, arrays):
    forward = backend.lstm_forward(
        arrays["x"], arrays["kernel"], arrays["recurrent_kernel"], arrays["bias"],
        h0=arrays["h0"], c0=arrays["c0"], mask=arrays["mask"],
        recurrent_dropout_mask=arrays["recurrent_dropout_mask"], reverse=True, activation=0,
        recurrent_activation=1, zero_output_for_mask=False, return_cache=True)
    grads = backend.lstm_backward(forward.cache, grad_outputs=arrays["grad_outputs"],
                                  grad_h=arrays["grad_h"], grad_c=arrays["grad_c"])
    return {"outputs": forward.outputs, "h": forward.h, "c": forward.c,
            **{f"d_{n}": getattr(grads, n)
               for n in ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0")}}


@pytest.mark.parametrize("name", ["cupy", "cuda"])
def test_cupy_arrays_in_cupy_arrays_out(name):
    import cupy
    if not numlstm.available_backends()[name].available:
        pytest.skip(f"{name} backend not usable here")
    problem = make_problem(3, 5, 4, 6, mask="holes", dropout=True, reverse=True, seed=2)
    reference = problem.run("numpy")
    results = _forward_backward(numlstm.get_backend(name), _device_problem(cupy, problem))
    for key, value in results.items():
        assert isinstance(value, cupy.ndarray), key
        np.testing.assert_allclose(cupy.asnumpy(value), reference[key], rtol=0, atol=1e-10,
                                   err_msg=key)


def test_fused_gate_kernels_are_named_module_level_kernels():
    import cupy
    from numlstm.backends import cupy_kernels
    for kernel, name in ((cupy_kernels.LSTM_GATES_FORWARD, "numlstm_lstm_gates_forward"),
                         (cupy_kernels.LSTM_GATES_BACKWARD, "numlstm_lstm_gates_backward")):
        assert isinstance(kernel, cupy.ElementwiseKernel) and kernel.name == name


def test_xp_is_cupy_and_describe_names_the_device():
    import cupy
    backend = numlstm.get_backend("cupy")
    assert backend.xp is cupy
    assert "CuPy" in backend.describe()
