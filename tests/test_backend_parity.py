"""Every backend against the ``numpy`` reference: outputs, final states and all gradients.

Judged by the harness's :func:`numlstm.bench.within_tolerance` (docs/numerics.md): float64 atol
1e-10; float32 outputs and states atol = rtol = 1e-5; float32 gradients, which are sums over
batch × time, by relative norm ≤ 1e-5 against the float64 reference.
"""

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from numlstm.activations import ACTIVATION_NAMES
from numlstm.bench import within_tolerance

from conftest import CANDIDATE_BACKENDS, NUMBA_ENGINES, backend_param, make_problem

#: Every backend, and the numba backend on each of its recurrent-product engines.
BACKENDS = [backend_param(name) for name in CANDIDATE_BACKENDS + tuple(NUMBA_ENGINES)]
FORWARD_NAMES = ("outputs", "h", "c")


def assert_matches_reference(problem, backend, dtype, *, allow_reference_error=False):
    """``backend`` against the numpy reference with the design's tolerances.

    ``allow_reference_error``: for randomly drawn problems, which include ill-conditioned ones
    (unbounded activations amplify every rounding step after step), where two correct float32
    implementations differ by more than 1e-5. There each float32 bound also admits twice the
    float32 reference's own distance from the float64 reference -- the rounding noise the
    problem amplifies, measured on this very problem. On a well-conditioned problem that term
    is ~1e-7 and the bounds are the design's; a wrong kernel misses by orders of magnitude more.
    """
    reference64 = problem.run("numpy")
    if dtype == np.float64:
        result = problem.run(backend)
        for name, expected in reference64.items():
            assert result[name].dtype == np.float64, name
            assert within_tolerance(name, result[name], expected, np.float64), \
                f"{backend} {name}"
        return
    problem32 = problem.astype(np.float32)
    reference32 = problem32.run("numpy")
    result = problem32.run(backend)
    for name in reference32:
        assert result[name].dtype == np.float32, name
        assert result[name].shape == reference32[name].shape, name
    for name in reference64:
        # outputs and states against the float32 reference, gradients against float64
        forward = name in FORWARD_NAMES
        expected, other = ((reference32[name], reference64[name]) if forward else
                           (reference64[name], reference32[name]))
        assert within_tolerance(name, result[name], expected, np.float32,
                                other_precision_reference=other if allow_reference_error
                                else None), f"{backend} {name}"


SHAPES = {  # (batch, timesteps, features, units)
    "batch0": (0, 4, 3, 5),
    "batch1": (1, 6, 3, 4),
    "units1": (3, 5, 2, 1),
    "units3": (2, 4, 1, 3),
    "units17": (4, 3, 5, 17),
    "timesteps1": (3, 1, 4, 3),
    "timesteps0": (3, 0, 2, 3),
}
MASKS = ["none", "random", "holes"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_parity_shapes_masks_reverse(backend, dtype, shape, mask, reverse):
    batch, timesteps, features, units = SHAPES[shape]
    problem = make_problem(batch, timesteps, features, units, mask=mask, reverse=reverse,
                           seed=zlib.crc32(repr((shape, mask, reverse)).encode()) % 1000)
    assert_matches_reference(problem, backend, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("activation", sorted(ACTIVATION_NAMES.values()))
def test_parity_every_activation(backend, dtype, activation):
    """Each activation as ``activation`` and, with another, as ``recurrent_activation``."""
    others = sorted(ACTIVATION_NAMES.values())
    partner = others[(others.index(activation) + 1) % len(others)]
    for act, rec in ((activation, "sigmoid"), ("tanh", activation), (partner, activation)):
        problem = make_problem(3, 5, 4, 3, mask="holes", activation=act,
                               recurrent_activation=rec, seed=11)
        if not _moderate(problem):
            # Unbounded gates (elu, selu, exponential, softplus...) with an unbounded
            # activation grow the states without limit (to inf with these weights); the
            # tolerances judge values of moderate size, so such a pair runs on smaller weights.
            problem = make_problem(3, 5, 4, 3, mask="holes", activation=act,
                                   recurrent_activation=rec, seed=11, scale=0.1)
            assert _moderate(problem), (act, rec)
        assert_matches_reference(problem, backend, dtype)


def _moderate(problem) -> bool:
    """Whether every value of the reference's results is finite and below 1e4."""
    with np.errstate(all="ignore"):
        return all(np.isfinite(v).all() and np.abs(v).max(initial=0.0) < 1e4
                   for v in problem.run("numpy").values())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_parity_recurrent_dropout_and_zero_output(backend, dtype, zero_output_for_mask,
                                                  reverse):
    problem = make_problem(4, 6, 3, 5, mask="holes", dropout=True, reverse=reverse,
                           zero_output_for_mask=zero_output_for_mask, seed=5)
    assert_matches_reference(problem, backend, dtype)


RANDOM_CONFIGURATIONS = dict(
    batch=st.integers(0, 5), timesteps=st.integers(0, 7), features=st.integers(1, 6),
    units=st.integers(1, 9), mask=st.sampled_from(MASKS), reverse=st.booleans(),
    dropout=st.booleans(), zero_output_for_mask=st.booleans(),
    activations=st.tuples(st.sampled_from(sorted(ACTIVATION_NAMES.values())),
                          st.sampled_from(sorted(ACTIVATION_NAMES.values()))),
    dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
#: Random examples per backend; the cuda backend runs in Numba's CUDA simulator on machines
#: without a GPU, where every example costs seconds, so it gets fewer.
RANDOM_EXAMPLES = {"cuda": 8}


def _check_random_configuration(backend, batch, timesteps, features, units, mask, reverse,
                                dropout, zero_output_for_mask, activations, dtype, seed):
    problem = make_problem(batch, timesteps, features, units, mask=mask, reverse=reverse,
                           dropout=dropout, zero_output_for_mask=zero_output_for_mask,
                           activation=activations[0], recurrent_activation=activations[1],
                           seed=seed)
    # Unbounded activations (linear, relu) can grow a state doubly exponentially within a few
    # steps. The tolerances are absolute (float64 atol 1e-10; float32 atol 1e-5, and a float32
    # state that leaves float32's range is inf/NaN wherever rounding tips it over), so they can
    # only judge values of moderate size: draws whose reference exceeds 1e4 are discarded.
    assume(all(np.abs(value).max(initial=0.0) < 1e4
               for value in problem.run("numpy").values()))
    assert_matches_reference(problem, backend, dtype, allow_reference_error=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parity_random_configurations(backend):
    check = settings(max_examples=RANDOM_EXAMPLES.get(backend, 25), deadline=None,
                     derandomize=True, suppress_health_check=[HealthCheck.too_slow])(
        given(**RANDOM_CONFIGURATIONS)(
            lambda **drawn: _check_random_configuration(backend, **drawn)))
    check()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, name, error", [
    (np.float64, "d_recurrent_kernel", 1e-8),
    (np.float32, "outputs", 1e-4),
    (np.float32, "d_kernel", 1e-3),
], ids=["f64-gradient", "f32-output", "f32-gradient"])
def test_parity_check_catches_a_wrong_backend(backend, dtype, name, error, monkeypatch):
    """The comparison can fail: perturb one result entry of the backend and see it caught."""
    problem = make_problem(2, 3, 2, 2, seed=1)
    original_run = type(problem).run

    def broken_run(self, backend_name):
        results = original_run(self, backend_name)
        if backend_name == backend:
            results[name].flat[0] += error * max(1.0, abs(results[name].flat[0]))
        return results

    monkeypatch.setattr(type(problem), "run", broken_run)
    with pytest.raises(AssertionError):
        assert_matches_reference(problem, backend, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_saturated_gates_stay_finite_and_match(backend, dtype):
    """Pre-activations of ±1e3..1e4 must not produce NaN or inf (exp overflow in the sigmoid),
    and the saturated results must still match the reference.

    In float32 only the forward is compared: a saturated gate's derivative is computed from
    its output, σ' = y(1 - y), and with y within an ulp or two of 1, 1 - y is 6e-8 or 1.2e-7
    depending on the last bit of y; gradients through such gates are float32 noise on every
    implementation (PyTorch's included), so float64 is where they are checked."""
    problem = make_problem(3, 4, 3, 3, scale=2e3, seed=2, mask="holes").astype(dtype)
    result, reference = problem.run(backend), problem.run("numpy")
    for name, value in result.items():
        assert np.isfinite(value).all(), name
        if dtype == np.float64 or name in FORWARD_NAMES:
            scale = max(1.0, float(np.abs(reference[name]).max(initial=0)))
            atol = 1e-10 if dtype == np.float64 else 1e-5
            np.testing.assert_allclose(value, reference[name], rtol=0, atol=atol * scale,
                                       err_msg=name)


@pytest.mark.parametrize("backend", [backend_param("numpy")] + BACKENDS)
def test_unusual_memory_layouts_give_the_same_results(backend):
    """Fortran-ordered, transposed, strided and read-only inputs give the contiguous inputs'
    results; no input is modified and no result aliases an input."""
    problem = make_problem(3, 5, 4, 3, mask="random", dropout=True, seed=8)
    expected = problem.run(backend)

    def odd(array):
        if array is None:
            return None
        twice = np.repeat(array, 2, axis=-1)[..., ::2]      # same values, strided view
        result = np.asfortranarray(twice)
        result.flags.writeable = False
        return result

    inputs = {k: odd(v) if isinstance(v, np.ndarray) else v for k, v in vars(problem).items()}
    snapshots = {k: v.copy() for k, v in inputs.items() if isinstance(v, np.ndarray)}
    odd_problem = type(problem)(**inputs)
    results = odd_problem.run(backend)
    for name, value in expected.items():
        np.testing.assert_allclose(results[name], value, rtol=0, atol=1e-12, err_msg=name)
        for source in snapshots:
            assert not np.shares_memory(results[name], inputs[source]), (name, source)
    for key, snapshot in snapshots.items():
        np.testing.assert_array_equal(inputs[key], snapshot, err_msg=key)
    # Two calls never share result buffers.
    again = odd_problem.run(backend)
    for name in results:
        assert not np.shares_memory(results[name], again[name]), name
