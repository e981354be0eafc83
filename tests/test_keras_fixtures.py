"""numlstm.LSTM against Keras 3's keras.layers.LSTM, through saved fixture files (Keras is never
imported).

The files in ``tests/fixtures/keras_*.npz`` come from ``tests/fixtures/make_keras_fixtures.py``
(run by hand where Keras 3 is installed, on Keras's JAX backend in 64-bit mode on the CPU; its
docstring lists the keys and says why not the NumPy backend). Each holds one
``keras.layers.LSTM``: its options, ``layer.get_weights()`` (already numlstm's layout), an
input with its mask and initial state where the case has them, and the layer's results in
float32 and float64 with ``return_sequences=True, return_state=True`` (``sequence``, ``h``,
``c``) and with ``return_sequences=False`` (``last``). ``numlstm.LSTM`` gets the same options
and weights and must give the same results.

At masked steps numlstm outputs the carried hidden state, as Keras 3's default
(``unroll=False``) loop does on its NumPy and JAX backends (``keras/src/backend/{numpy,jax}/
rnn.py``: a masked step outputs ``states[0]``): before a row's first unmasked step that is the
initial state ``h0``. Keras's own ``unroll=True`` loop (and, by their source, its TensorFlow and
torch loops) output zeros there instead; that difference inside Keras is pinned down exactly by
``test_keras_unrolled_loop_differs_only_before_the_first_unmasked_step``. With zero initial
states, the default, all of them agree.
"""

from __future__ import annotations


import numpy as np
import pytest

import numlstm

from conftest import ALL_BACKENDS, FIXTURES, backend_param, load_fixture

BACKENDS = [backend_param(name) for name in ALL_BACKENDS]

# docs/numerics.md: the same tolerances as between backends and against PyTorch.
TOLERANCES = {"float32": dict(atol=1e-5, rtol=1e-5), "float64": dict(atol=1e-10, rtol=0)}
DTYPES = tuple(TOLERANCES)

#: What each fixture is about: the options its Keras layer was built with.
OPTION_DEFAULTS = dict(activation="tanh", recurrent_activation="sigmoid", use_bias=1,
                       unit_forget_bias=1, go_backwards=0, zero_output_for_mask=0, unroll=0,
                       mask=False, initial_state=False)
CASE_OPTIONS = {
    "keras_default": dict(initial_state=True),
    "keras_mask": dict(mask=True),
    "keras_mask_initial_state": dict(mask=True, initial_state=True),
    "keras_mask_initial_state_unroll": dict(mask=True, initial_state=True, unroll=1),
    "keras_mask_zero_output": dict(mask=True, initial_state=True, zero_output_for_mask=1),
    "keras_go_backwards": dict(go_backwards=1, initial_state=True),
    "keras_go_backwards_mask": dict(go_backwards=1, mask=True),
    "keras_relu_hard_sigmoid": dict(activation="relu", recurrent_activation="hard_sigmoid",
                                    initial_state=True),
    "keras_hard_sigmoid_keras2": dict(recurrent_activation="hard_sigmoid_keras2",
                                      initial_state=True),
    "keras_no_bias": dict(use_bias=0, initial_state=True),
    "keras_unit_forget_bias": dict(),
}
CASES = tuple(CASE_OPTIONS)

#: Fixtures where Keras's result differs from numlstm's documented semantics (see the module
#: docstring); test_keras_unrolled_loop_differs_only_before_the_first_unmasked_step says how.
KERAS_UNROLLED_CASES = ("keras_mask_initial_state_unroll",)

RESULT_KEYS = tuple(f"{name}_{dtype}" for dtype in DTYPES
                    for name in ("sequence", "h", "c", "last"))
METADATA_KEYS = ("activation", "recurrent_activation", "keras_activation_float32",
                 "keras_activation_float64", "keras_recurrent_activation_float32",
                 "keras_recurrent_activation_float64", "description", "keras_version",
                 "keras_backend", "jax_version", "numpy_version", "generator")
FLAG_KEYS = ("units", "use_bias", "unit_forget_bias", "go_backwards", "zero_output_for_mask",
             "unroll")


def weights_of(fx, dtype) -> list[np.ndarray]:
    names = ("kernel", "recurrent_kernel", "bias") if int(fx["use_bias"]) else \
        ("kernel", "recurrent_kernel")
    return [fx[name].astype(dtype) for name in names]


def run_numlstm(fx, dtype, backend, *, return_sequences=True, **overrides):
    """numlstm.LSTM with the fixture's options, weights, input, mask and initial state.

    ``return_sequences=True`` gives ``[sequence, h, c]``, False the single output.
    """
    options = dict(activation=str(fx["activation"]),
                   recurrent_activation=str(fx["recurrent_activation"]),
                   use_bias=bool(fx["use_bias"]), unit_forget_bias=bool(fx["unit_forget_bias"]),
                   go_backwards=bool(fx["go_backwards"]),
                   zero_output_for_mask=bool(fx["zero_output_for_mask"]))
    options.update(overrides)
    layer = numlstm.LSTM(int(fx["units"]), return_sequences=return_sequences,
                         return_state=return_sequences, backend=backend, dtype=dtype,
                         **options)
    layer.set_weights(weights_of(fx, dtype))
    initial_state = [fx["h0"].astype(dtype), fx["c0"].astype(dtype)] if "h0" in fx else None
    result = layer(fx["x"].astype(dtype), mask=fx.get("mask"), initial_state=initial_state)
    assert layer.last_backend == backend
    return result


def processing_order(fx, array):
    """``array`` (batch, timesteps, ...) in the order the layer processes the steps."""
    return array[:, ::-1] if int(fx["go_backwards"]) else array


def before_first_unmasked_step(fx) -> np.ndarray:
    """(batch, timesteps), in processing order: True where no step of the row has run yet."""
    return np.cumsum(processing_order(fx, fx["mask"]), axis=1) == 0


# -- the fixture files themselves -------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_fixture_file_exists_and_is_complete(case):
    path = FIXTURES / f"{case}.npz"
    assert path.is_file(), (f"missing fixture {path.name}: regenerate it with "
                            f"tests/fixtures/make_keras_fixtures.py (needs Keras 3)")
    fx = load_fixture(case)
    expected = dict(OPTION_DEFAULTS, **CASE_OPTIONS[case])
    keys = {"x", "kernel", "recurrent_kernel", *RESULT_KEYS, *METADATA_KEYS, *FLAG_KEYS}
    if expected["use_bias"]:
        keys.add("bias")
    if expected["mask"]:
        keys.add("mask")
    if expected["initial_state"]:
        keys |= {"h0", "c0"}
    assert set(fx) == keys, (f"{case}: missing {sorted(keys - set(fx))}, "
                             f"unexpected {sorted(set(fx) - keys)}")

    for key in METADATA_KEYS:
        assert fx[key].ndim == 0 and fx[key].dtype.kind == "U" and str(fx[key]), key
    for key in FLAG_KEYS:
        assert fx[key].ndim == 0 and fx[key].dtype.kind == "i", key
    assert str(fx["keras_version"]).startswith("3.")
    assert str(fx["keras_backend"]) == "jax"
    for key in ("activation", "recurrent_activation", "use_bias", "unit_forget_bias",
                "go_backwards", "zero_output_for_mask", "unroll"):
        assert fx[key] == expected[key], f"{case}: {key} is {fx[key]}, expected {expected[key]}"

    batch, timesteps, features = fx["x"].shape
    units = int(fx["units"])
    assert batch <= 5 and timesteps <= 7 and features <= 4 and units <= 6
    assert fx["x"].dtype == np.float32
    assert fx["kernel"].shape == (features, 4 * units)
    assert fx["recurrent_kernel"].shape == (units, 4 * units)
    for key in ("kernel", "recurrent_kernel", "bias"):
        if key in fx:
            assert fx[key].dtype == np.float32, key
    if "bias" in fx:
        assert fx["bias"].shape == (4 * units,)
    if "h0" in fx:
        assert fx["h0"].shape == fx["c0"].shape == (batch, units)
        assert np.abs(fx["h0"]).min() > 0   # the case is about nonzero initial states
    for dtype in DTYPES:
        assert fx[f"sequence_{dtype}"].shape == (batch, timesteps, units)
        for key in ("h", "c", "last"):
            assert fx[f"{key}_{dtype}"].shape == (batch, units), key
        for key in ("sequence", "h", "c", "last"):
            assert fx[f"{key}_{dtype}"].dtype == dtype, key
        # Keras's own consistency: the single output is the sequence's last entry (processing
        # order), and float64 is float32 to float32 precision.
        np.testing.assert_array_equal(fx[f"last_{dtype}"], fx[f"sequence_{dtype}"][:, -1])
    for key in ("sequence", "h", "c", "last"):
        np.testing.assert_allclose(fx[f"{key}_float32"], fx[f"{key}_float64"], atol=1e-5)


def test_masked_fixtures_cover_irregular_patterns():
    # What the mask cases are meant to exercise, in processing order.
    for case in ("keras_mask", "keras_go_backwards_mask"):
        fx = load_fixture(case)
        mask = processing_order(fx, fx["mask"])
        assert mask.dtype == np.bool_
        assert (~mask).all(axis=1).any(), f"{case}: no fully masked row"
        assert (~mask[:, 0] & mask.any(axis=1)).any(), f"{case}: no row masked at its start"
        assert (~mask[:, -1] & mask.any(axis=1)).any(), f"{case}: no row masked at its end"
        holes = mask[:, :-2] & ~mask[:, 1:-1] & mask[:, 2:]
        assert holes.any() or case == "keras_go_backwards_mask", f"{case}: no hole"
    for case in ("keras_mask_initial_state", "keras_mask_initial_state_unroll",
                 "keras_mask_zero_output"):
        np.testing.assert_array_equal(load_fixture(case)["mask"], load_fixture("keras_mask")["mask"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_keras_mask_semantics_recorded_in_the_fixtures(dtype):
    # The fixtures say what Keras did at masked steps, independently of numlstm.
    fx = load_fixture("keras_mask")      # zero initial states
    sequence = fx[f"sequence_{dtype}"]
    mask = fx["mask"]
    for b, t in zip(*np.nonzero(~mask)):
        previous = sequence[b, t - 1] if t else np.zeros_like(sequence[b, 0])
        np.testing.assert_array_equal(sequence[b, t], previous)
    assert np.all(sequence[~mask.any(axis=1)] == 0)

    fx = load_fixture("keras_mask_zero_output")
    assert np.all(fx[f"sequence_{dtype}"][~fx["mask"]] == 0)
    assert np.all(fx[f"sequence_{dtype}"][fx["mask"]] != 0)

    fx = load_fixture("keras_go_backwards_mask")
    sequence = fx[f"sequence_{dtype}"]           # processing order
    mask = processing_order(fx, fx["mask"])
    for b, t in zip(*np.nonzero(~mask)):
        previous = sequence[b, t - 1] if t else np.zeros_like(sequence[b, 0])
        np.testing.assert_array_equal(sequence[b, t], previous)


# -- numlstm reproduces Keras -----------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
# The unrolled-loop fixture is compared, difference and all, by the test after this one.
@pytest.mark.parametrize("case", [c for c in CASES if c not in KERAS_UNROLLED_CASES])
def test_layer_matches_keras(case, dtype, backend):
    fx = load_fixture(case)
    tol = TOLERANCES[dtype]
    sequence, h, c = run_numlstm(fx, dtype, backend)
    for key, value in (("sequence", sequence), ("h", h), ("c", c)):
        assert value.dtype == dtype, key
        np.testing.assert_allclose(value, fx[f"{key}_{dtype}"], **tol,
                                   err_msg=f"{case} {key} {dtype}")
    last = run_numlstm(fx, dtype, backend, return_sequences=False)
    assert last.dtype == dtype
    np.testing.assert_allclose(last, fx[f"last_{dtype}"], **tol, err_msg=f"{case} last {dtype}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_keras_unrolled_loop_differs_only_before_the_first_unmasked_step(dtype, backend):
    # keras/src/backend/numpy/rnn.py (and jax/rnn.py), unroll=False with a mask: a masked
    # step's output is `states[0]`, the carried h, which is h0 until a row's first unmasked
    # step; numlstm does the same. The unrolled loop starts from `zeros_like(output)` instead.
    # The two fixtures share input, weights, mask and initial state.
    scan, unrolled = load_fixture("keras_mask_initial_state"), load_fixture("keras_mask_initial_state_unroll")
    for key in ("x", "mask", "h0", "c0", "kernel", "recurrent_kernel", "bias"):
        np.testing.assert_array_equal(scan[key], unrolled[key])
    tol = TOLERANCES[dtype]
    early = before_first_unmasked_step(scan)
    assert early.any() and (~scan["mask"]).all(axis=1).any()
    h0 = scan["h0"].astype(dtype)
    keras_scan = scan[f"sequence_{dtype}"]
    keras_unrolled = unrolled[f"sequence_{dtype}"]

    # Keras against itself: the two loops differ exactly at those steps.
    for b, t in zip(*np.nonzero(early)):
        np.testing.assert_array_equal(keras_scan[b, t], h0[b])
        assert np.all(keras_unrolled[b, t] == 0)
    np.testing.assert_allclose(keras_scan[~early], keras_unrolled[~early], **tol)
    for key in ("h", "c"):
        np.testing.assert_allclose(scan[f"{key}_{dtype}"], unrolled[f"{key}_{dtype}"], **tol)

    # numlstm: h0 there (Keras's default loop), the unrolled result everywhere else.
    sequence, h, c = run_numlstm(unrolled, dtype, backend)
    np.testing.assert_array_equal(sequence[early], np.broadcast_to(h0[:, None],
                                                                   sequence.shape)[early])
    np.testing.assert_allclose(sequence[~early], keras_unrolled[~early], **tol)
    np.testing.assert_allclose(h, unrolled[f"h_{dtype}"], **tol)
    np.testing.assert_allclose(c, unrolled[f"c_{dtype}"], **tol)
    last = run_numlstm(unrolled, dtype, backend, return_sequences=False)
    never = early[:, -1]            # fully masked rows: Keras's unrolled last output is zero
    assert np.all(unrolled[f"last_{dtype}"][never] == 0)
    np.testing.assert_array_equal(last[never], h0[never])
    np.testing.assert_allclose(last[~never], unrolled[f"last_{dtype}"][~never], **tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_built_weights_match_keras_unit_forget_bias(backend):
    # Keras's bias after build: zeros, with ones on the forget gate's slice; numlstm builds the
    # same bias (kernels come from different random generators and are not compared).
    fx = load_fixture("keras_unit_forget_bias")
    units = int(fx["units"])
    np.testing.assert_array_equal(fx["bias"], np.r_[np.zeros(units), np.ones(units),
                                                    np.zeros(2 * units)])
    layer = numlstm.LSTM(units, seed=0, backend=backend)
    layer.build((None, None, fx["x"].shape[2]))
    kernel, recurrent_kernel, bias = layer.get_weights()
    np.testing.assert_array_equal(bias, fx["bias"])
    assert kernel.shape == fx["kernel"].shape
    assert recurrent_kernel.shape == fx["recurrent_kernel"].shape
    # Keras's recurrent kernel is orthogonal too (orthonormal rows).
    np.testing.assert_allclose(fx["recurrent_kernel"] @ fx["recurrent_kernel"].T,
                               np.eye(units), atol=1e-5)


# -- the comparison can fail ------------------------------------------------------------------

def _max_error(fx, dtype="float32", **overrides):
    sequence, h, c = run_numlstm(fx, dtype, "numpy", **overrides)
    return max(np.abs(sequence - fx[f"sequence_{dtype}"]).max(),
               np.abs(h - fx[f"h_{dtype}"]).max())


def test_hard_sigmoid_variants_are_told_apart():
    # The fixtures reach the range where the two hard sigmoids differ, so swapping them fails.
    assert _max_error(load_fixture("keras_relu_hard_sigmoid"),
                      recurrent_activation="hard_sigmoid_keras2") > 1e-3
    assert _max_error(load_fixture("keras_hard_sigmoid_keras2"),
                      recurrent_activation="hard_sigmoid") > 1e-3


@pytest.mark.parametrize("case", ["keras_go_backwards", "keras_go_backwards_mask"])
def test_a_wrong_go_backwards_mapping_would_be_caught(case):
    fx = load_fixture(case)
    assert _max_error(fx, go_backwards=False) > 1e-3
    # Going backwards but returning the sequence aligned with the input, not in processing
    # order (what numlstm's functional API returns).
    sequence, _, _ = run_numlstm(fx, "float32", "numpy")
    assert np.abs(sequence[:, ::-1] - fx["sequence_float32"]).max() > 1e-3


def test_ignoring_the_mask_or_zero_output_would_be_caught():
    fx = load_fixture("keras_mask")
    ignored = numlstm.LSTM(int(fx["units"]), return_sequences=True, backend="numpy")
    ignored.set_weights(weights_of(fx, "float32"))
    assert np.abs(ignored(fx["x"]) - fx["sequence_float32"]).max() > 1e-3
    assert _max_error(load_fixture("keras_mask_zero_output"), zero_output_for_mask=False) > 1e-3
    assert _max_error(load_fixture("keras_mask"), zero_output_for_mask=True) > 1e-3
