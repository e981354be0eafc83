"""numlstm against PyTorch's nn.LSTM, through saved fixture files (torch is never imported).

The files in ``tests/fixtures/torch_*.npz`` come from ``tests/fixtures/make_torch_fixtures.py``
(run by hand where torch is installed; see its docstring for the keys). Each holds one
``nn.LSTM(batch_first=True)``: its parameters, an input, a float32 forward, a float64 forward
and a float64 backward from random upstream gradients.

Stacked and bidirectional LSTMs are composed here from single-layer, single-direction calls of
:func:`numlstm.functional.lstm_forward`, the way torch defines them: layer ``k+1`` reads layer
``k``'s output; a bidirectional layer concatenates its forward and reverse outputs along the
feature axis; torch's state tensors ``(num_layers * num_directions, batch, hidden)`` are indexed
``layer * num_directions + direction``. Packed sequences become a boolean mask, True at the
first ``length`` steps of each row, with ``zero_output_for_mask=True`` because
``pad_packed_sequence`` pads with zeros; the reverse direction uses the same mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from numlstm.convert import from_torch_state_dict
from numlstm.functional import lstm_backward, lstm_forward

from conftest import ALL_BACKENDS, FIXTURES, backend_param, load_fixture, relative_norm_error

CASES = ("torch_single", "torch_two_layer", "torch_bidirectional", "torch_packed",
         "torch_packed_bidirectional")
BACKENDS = [backend_param(name) for name in ALL_BACKENDS]

# docs/numerics.md: against PyTorch with converted weights, the same tolerances as between backends.
FLOAT32_TOL = dict(atol=1e-5, rtol=1e-5)
FLOAT64_TOL = dict(atol=1e-10, rtol=0)
FLOAT64_GRAD_TOL = dict(atol=1e-9, rtol=1e-9)
FLOAT32_GRAD_REL_NORM = 1e-5


def geometry(fx):
    """(num_layers, num_directions, hidden_size)."""
    return int(fx["num_layers"]), 2 if int(fx["bidirectional"]) else 1, int(fx["hidden_size"])


def mask_of(fx):
    """torch's packed lengths as numlstm's mask (batch, timesteps); None when not packed."""
    if "lengths" not in fx:
        return None
    timesteps = fx["x"].shape[1]
    return np.arange(timesteps)[None, :] < fx["lengths"][:, None]


def parameter_names(num_layers, num_directions):
    return [f"{kind}_l{layer}{suffix}"
            for layer in range(num_layers)
            for suffix in ("", "_reverse")[:num_directions]
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


@dataclass
class Run:
    """A composed multi-layer, multi-direction forward pass."""

    outputs: np.ndarray                     # (batch, timesteps, dirs * hidden), last layer
    h_n: np.ndarray                         # (layers * dirs, batch, hidden), torch's layout
    c_n: np.ndarray
    caches: dict = field(default_factory=dict)   # (layer, direction) -> cache


def forward(fx, dtype, backend, return_cache=False) -> Run:
    num_layers, dirs, hidden = geometry(fx)
    mask = mask_of(fx)
    layer_input = fx["x"].astype(dtype)
    h_n, c_n, caches = [], [], {}
    for layer in range(num_layers):
        outputs = []
        for direction in range(dirs):
            k = layer * dirs + direction
            # dtype= makes the float64 case sum bias_ih + bias_hh in float64, as torch does;
            # summing the stored float32 biases first is off by up to 6e-8.
            kernel, recurrent_kernel, bias = from_torch_state_dict(
                fx, layer=layer, reverse=bool(direction), dtype=dtype)
            initial = {}
            if "h0" in fx:
                initial = dict(h0=fx["h0"][k].astype(dtype), c0=fx["c0"][k].astype(dtype))
            res = lstm_forward(layer_input, kernel, recurrent_kernel, bias, **initial,
                               mask=mask, reverse=bool(direction),
                               zero_output_for_mask=mask is not None,
                               return_cache=return_cache, backend=backend)
            assert res.backend == backend
            assert res.outputs.dtype == dtype
            outputs.append(np.asarray(res.outputs))
            h_n.append(np.asarray(res.h))
            c_n.append(np.asarray(res.c))
            caches[layer, direction] = res.cache
        layer_input = np.concatenate(outputs, axis=-1)
    return Run(layer_input, np.stack(h_n), np.stack(c_n), caches)


def backward(fx, run: Run, dtype) -> dict[str, np.ndarray]:
    """Chain lstm_backward through the layers; the gradients under torch's names."""
    num_layers, dirs, hidden = geometry(fx)
    up_outputs = fx["upstream_outputs"].astype(dtype)
    up_h = fx["upstream_h_n"].astype(dtype)
    up_c = fx["upstream_c_n"].astype(dtype)
    grads = {}
    grad_h0 = np.zeros_like(up_h)
    grad_c0 = np.zeros_like(up_c)
    grad_layer_output = up_outputs
    for layer in reversed(range(num_layers)):
        grad_layer_input = 0.0
        for direction in range(dirs):
            k = layer * dirs + direction
            g = lstm_backward(run.caches[layer, direction],
                              grad_outputs=grad_layer_output[..., direction * hidden:
                                                             (direction + 1) * hidden],
                              grad_h=up_h[k], grad_c=up_c[k])
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            grads[f"grad_weight_ih{suffix}"] = np.asarray(g.kernel).T
            grads[f"grad_weight_hh{suffix}"] = np.asarray(g.recurrent_kernel).T
            # bias = bias_ih + bias_hh, so both get the gradient of the sum.
            grads[f"grad_bias_ih{suffix}"] = np.asarray(g.bias)
            grads[f"grad_bias_hh{suffix}"] = np.asarray(g.bias)
            grad_h0[k] = np.asarray(g.h0)
            grad_c0[k] = np.asarray(g.c0)
            grad_layer_input = grad_layer_input + np.asarray(g.x)
        grad_layer_output = grad_layer_input
    grads["grad_x"] = grad_layer_output
    if "h0" in fx:
        grads["grad_h0"] = grad_h0
        grads["grad_c0"] = grad_c0
    return grads


# -- the fixture files themselves -------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_fixture_file_exists_and_is_complete(case):
    path = FIXTURES / f"{case}.npz"
    assert path.is_file(), (f"missing fixture {path.name}: regenerate it with "
                            f"tests/fixtures/make_torch_fixtures.py (needs torch)")
    fx = load_fixture(case)
    num_layers, dirs, hidden = geometry(fx)
    batch, timesteps, features = fx["x"].shape
    params = parameter_names(num_layers, dirs)
    expected = {"x", "outputs_float32", "h_n_float32", "c_n_float32", "outputs_float64",
                "h_n_float64", "c_n_float64", "upstream_outputs", "upstream_h_n",
                "upstream_c_n", "grad_x", "num_layers", "bidirectional", "input_size",
                "hidden_size", "description", "torch_version", "numpy_version", "generator",
                *params, *(f"grad_{p}" for p in params)}
    missing = expected - set(fx)
    assert not missing, f"{case}: missing keys {sorted(missing)}"
    assert ("lengths" in fx) == ("packed" in case)
    assert ("h0" in fx) == ("c0" in fx) == ("grad_h0" in fx) == ("grad_c0" in fx)
    assert ("h0" in fx) == (case != "torch_bidirectional")
    assert num_layers == (2 if case in ("torch_two_layer", "torch_packed_bidirectional") else 1)
    assert dirs == (2 if "bidirectional" in case else 1)

    for key in ("description", "torch_version", "numpy_version", "generator"):
        assert fx[key].ndim == 0 and fx[key].dtype.kind == "U" and str(fx[key])
    assert fx["x"].dtype == np.float32 and features == int(fx["input_size"])
    state_shape = (num_layers * dirs, batch, hidden)
    for suffix, dtype in (("float32", np.float32), ("float64", np.float64)):
        assert fx[f"outputs_{suffix}"].shape == (batch, timesteps, dirs * hidden)
        assert fx[f"outputs_{suffix}"].dtype == dtype
        assert fx[f"h_n_{suffix}"].shape == fx[f"c_n_{suffix}"].shape == state_shape
    assert fx["upstream_outputs"].shape == (batch, timesteps, dirs * hidden)
    assert fx["upstream_h_n"].shape == fx["upstream_c_n"].shape == state_shape
    assert fx["grad_x"].shape == fx["x"].shape and fx["grad_x"].dtype == np.float64
    for p in params:
        assert fx[f"grad_{p}"].shape == fx[p].shape
    if "h0" in fx:
        assert fx["h0"].shape == fx["grad_h0"].shape == state_shape
        assert np.abs(fx["h0"]).min() > 0   # the case is about nonzero initial states
    if "lengths" in fx:
        lengths = fx["lengths"]
        # What the packed cases are meant to exercise: unsorted, a length-1 row, a full row.
        assert lengths.shape == (batch,)
        assert list(lengths) != sorted(lengths, reverse=True)
        assert lengths.min() == 1 and lengths.max() == timesteps
        padded = ~mask_of(fx)
        for suffix in ("float32", "float64"):
            assert np.all(fx[f"outputs_{suffix}"][padded] == 0)
        assert np.all(fx["grad_x"][padded] == 0)
        assert np.all(fx["upstream_outputs"][padded] != 0)  # must be ignored, not absent


# -- numlstm reproduces torch -----------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_forward_float32_matches_torch(case, backend):
    fx = load_fixture(case)
    run = forward(fx, np.float32, backend)
    np.testing.assert_allclose(run.outputs, fx["outputs_float32"], **FLOAT32_TOL,
                               err_msg=f"{case} outputs")
    np.testing.assert_allclose(run.h_n, fx["h_n_float32"], **FLOAT32_TOL,
                               err_msg=f"{case} h_n")
    np.testing.assert_allclose(run.c_n, fx["c_n_float32"], **FLOAT32_TOL,
                               err_msg=f"{case} c_n")
    if "lengths" in fx:
        assert np.all(run.outputs[~mask_of(fx)] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_forward_float64_matches_torch(case, backend):
    fx = load_fixture(case)
    run = forward(fx, np.float64, backend)
    assert run.outputs.dtype == np.float64
    np.testing.assert_allclose(run.outputs, fx["outputs_float64"], **FLOAT64_TOL,
                               err_msg=f"{case} outputs")
    np.testing.assert_allclose(run.h_n, fx["h_n_float64"], **FLOAT64_TOL,
                               err_msg=f"{case} h_n")
    np.testing.assert_allclose(run.c_n, fx["c_n_float64"], **FLOAT64_TOL,
                               err_msg=f"{case} c_n")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_gradients_float64_match_torch(case, backend):
    fx = load_fixture(case)
    grads = backward(fx, forward(fx, np.float64, backend, return_cache=True), np.float64)
    expected = sorted(key for key in fx if key.startswith("grad_"))
    assert sorted(grads) == expected
    for key in expected:
        assert grads[key].dtype == np.float64, key
        np.testing.assert_allclose(grads[key], fx[key], **FLOAT64_GRAD_TOL,
                                   err_msg=f"{case} {key}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_gradients_float32_close_to_torch_float64(case, backend):
    # docs/numerics.md: float32 gradients are judged by relative norm against a float64 reference.
    fx = load_fixture(case)
    grads = backward(fx, forward(fx, np.float32, backend, return_cache=True), np.float32)
    for key, grad in grads.items():
        assert grad.dtype == np.float32, key
        error = relative_norm_error(grad, fx[key])
        assert error <= FLOAT32_GRAD_REL_NORM, f"{case} {key}: relative error {error:.2e}"


def test_a_wrong_mapping_would_be_caught():
    # The comparison is sharp enough to see a plausible mistake: reading the bidirectional
    # fixture's reverse direction without reverse=True.
    fx = load_fixture("torch_bidirectional")
    kernel, recurrent_kernel, bias = from_torch_state_dict(fx, reverse=True)
    res = lstm_forward(fx["x"], kernel, recurrent_kernel, bias, backend="numpy")
    hidden = int(fx["hidden_size"])
    error = np.abs(res.outputs - fx["outputs_float32"][..., hidden:]).max()
    assert error > 1e-3
