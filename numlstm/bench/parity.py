"""Agreement with the ``numpy`` reference: the tolerances of docs/numerics.md, in one place.

:func:`within_tolerance` is the one judge of "close enough": :func:`check_parity` (a backend
against the reference), :func:`peer_parity` (torch or ONNX Runtime against the reference), the
test suite's parity tests and ``benchmarks/gpu_check.py`` all call it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .problems import Problem, is_gradient, run_kernels

__all__ = ["FLOAT64_ATOL", "FLOAT32_ATOL", "FLOAT32_RTOL", "FLOAT32_GRADIENT_REL_NORM",
           "TOLERANCES", "Agreement", "ParityResult", "within_tolerance", "max_abs_difference",
           "relative_norm_error", "check_parity", "peer_parity"]

#: float64: every array, absolute.
FLOAT64_ATOL = 1e-10
#: float32 outputs and final states, against the float32 reference: ``|v − r| ≤ atol + rtol·|r|``.
FLOAT32_ATOL = 1e-5
FLOAT32_RTOL = 1e-5
#: float32 gradients (sums over batch × time, whose rounding grows with the problem), against
#: the float64 reference: ``‖g − g64‖ / ‖g64‖ ≤ 1e-5``.
FLOAT32_GRADIENT_REL_NORM = 1e-5

#: The tolerances as a report records them.
TOLERANCES = {
    "float64": {"atol": FLOAT64_ATOL},
    "float32": {"atol": FLOAT32_ATOL, "rtol": FLOAT32_RTOL,
                "gradient_rel_norm": FLOAT32_GRADIENT_REL_NORM},
}


def max_abs_difference(value, reference) -> float:
    """``max |value − reference|`` in float64; inf for a shape mismatch or a NaN, 0 when empty."""
    value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
    if value.shape != reference.shape:
        return float("inf")
    if value.size == 0:
        return 0.0
    return float(np.nan_to_num(np.abs(value - reference), nan=np.inf).max())


def relative_norm_error(value, reference) -> float:
    """``‖value − reference‖ / ‖reference‖`` in float64 (the plain norm of the difference when
    the reference is zero)."""
    reference = np.asarray(reference, np.float64)
    scale = np.linalg.norm(reference)
    error = np.linalg.norm(np.asarray(value, np.float64) - reference)
    return float(error / scale) if scale else float(error)


@dataclass(frozen=True)
class Agreement:
    """The verdict of :func:`within_tolerance` on one array; true when it passed.

    ``max_abs_diff`` is ``max |value − reference|``; ``rel_norm_diff`` the relative norm a
    float32 gradient is judged by (None for every other array).
    """

    name: str
    passed: bool
    max_abs_diff: float
    rel_norm_diff: float | None = None

    def __bool__(self) -> bool:
        return self.passed


def within_tolerance(name: str, value, reference, dtype, *,
                     other_precision_reference=None) -> Agreement:
    """Whether ``value``, the result array ``name`` of a run in ``dtype``, agrees with the
    reference (docs/numerics.md).

    * float64, every array: ``max |value − reference| ≤ 1e-10``, ``reference`` the float64
      reference.
    * float32 outputs and final states: ``|value − reference| ≤ 1e-5 + 1e-5·|reference|`` at
      every element, ``reference`` the float32 reference run on the same numbers.
    * float32 gradients (names starting ``d_``): ``‖value − reference‖ / ‖reference‖ ≤ 1e-5``,
      ``reference`` the float64 reference.

    A shape mismatch, or a NaN where the reference has a number, fails.

    ``other_precision_reference`` (float32 only) is the reference in the other precision: the
    float64 one for outputs and states, the float32 one for gradients. When given, the bound
    also admits twice the two references' own distance, measured the same way -- the rounding
    noise a randomly drawn, ill-conditioned problem amplifies (docs/numerics.md). On a
    well-conditioned problem that distance is ~1e-7 and the bounds are the plain ones.
    """
    precision = np.dtype(dtype).name
    value = np.asarray(value)
    reference = np.asarray(reference)
    worst = max_abs_difference(value, reference)
    if value.shape != reference.shape:
        return Agreement(name, False, worst)
    if precision == "float64":
        return Agreement(name, worst <= FLOAT64_ATOL, worst)
    if precision != "float32":
        raise ValueError(f"dtype must be float32 or float64; got {precision}")
    if is_gradient(name):
        error = relative_norm_error(value, reference)
        bound = FLOAT32_GRADIENT_REL_NORM
        if other_precision_reference is not None:
            bound = max(bound, 2 * relative_norm_error(other_precision_reference, reference))
        return Agreement(name, error <= bound, worst, error)
    reference64 = reference.astype(np.float64)
    bound = FLOAT32_ATOL + FLOAT32_RTOL * np.abs(reference64)
    if other_precision_reference is not None:
        bound = bound + 2 * np.abs(reference64 - np.asarray(other_precision_reference,
                                                            np.float64))
    difference = np.nan_to_num(np.abs(value.astype(np.float64) - reference64), nan=np.inf)
    return Agreement(name, bool(np.all(difference <= bound)), worst)


@dataclass
class ParityResult:
    """How one backend compares with the ``numpy`` reference on one problem.

    Attributes
    ----------
    backend : str
    dtype : str
    passed : bool
    max_abs_diff : dict of str to float
        Largest absolute difference of every array (outputs, final states ``h``/``c`` -- per
        layer as ``h[0]`` ... for stacks -- and gradients ``d_x``, ``d_kernel``, ...) from the
        reference run in the same dtype.
    rel_norm_diff : dict of str to float
        float32 only: ``‖g − g64‖ / ‖g64‖`` of every gradient against a float64 reference.
    failures : list of str
        The arrays beyond tolerance (empty when ``passed``).
    tolerance : dict
        The tolerances applied (:data:`TOLERANCES` of the dtype).
    """

    backend: str
    dtype: str
    passed: bool
    max_abs_diff: dict
    rel_norm_diff: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    tolerance: dict = field(default_factory=dict)

    @property
    def worst(self) -> float:
        """The largest of ``max_abs_diff`` (0 when there is nothing to compare)."""
        return max(self.max_abs_diff.values(), default=0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def check_parity(backend_name: str, problem: Problem, *,
                 reference: dict | None = None,
                 reference64: dict | None = None) -> ParityResult:
    """Compare ``backend_name`` with the ``numpy`` reference on ``problem``, every array judged
    by :func:`within_tolerance` (float32 gradients against the reference run in float64 on the
    same numbers).

    ``reference`` / ``reference64`` may pass in results of ``run_kernels("numpy", ...)``
    computed earlier, so that several backends share one reference run.
    """
    dtype = np.dtype(problem.dtype).name
    if reference is None:
        reference = run_kernels("numpy", problem)
    if dtype == "float32" and reference64 is None:
        reference64 = run_kernels("numpy", problem.astype(np.float64))
    result = run_kernels(backend_name, problem)
    max_abs = {name: max_abs_difference(result[name], reference[name]) for name in reference}
    failures, rel_norm = [], {}
    for name, expected in reference.items():
        if dtype == "float32" and is_gradient(name):
            expected = reference64[name]
        agreement = within_tolerance(name, result[name], expected, dtype)
        if agreement.rel_norm_diff is not None:
            rel_norm[name] = agreement.rel_norm_diff
        elif dtype == "float32" and is_gradient(name):     # a shape mismatch
            rel_norm[name] = float("inf")
        if not agreement:
            failures.append(name)
    return ParityResult(backend_name, dtype, not failures, max_abs, rel_norm, failures,
                        dict(TOLERANCES[dtype]))


def peer_parity(peer, reference: dict) -> dict:
    """How a peer's arrays (a :class:`~numlstm.bench.PeerResult`) compare with the numlstm
    reference's, each judged by :func:`within_tolerance` in the peer's dtype.

    ``reference`` holds ``outputs``, ``h``, ``c`` (the reference in the peer's dtype) and
    optionally ``d_x`` (from a float64 reference run when the peer ran in float32). Returns
    ``{"passed", "max_abs_diff", "rel_norm_diff", "failures"}``.
    """
    diffs, rel, failures = {}, {}, []
    for name, value in peer.arrays.items():
        if name not in reference:
            continue
        expected = reference[name]
        diffs[name] = max_abs_difference(value, expected)
        agreement = within_tolerance(name, value, expected, value.dtype)
        if agreement.rel_norm_diff is not None:
            rel[name] = agreement.rel_norm_diff
        if not agreement:
            failures.append(name)
    return {"passed": not failures, "max_abs_diff": diffs, "rel_norm_diff": rel,
            "failures": failures}
