"""Timing a backend fairly, and the thread limit every timed run holds.

:func:`time_backend` moves the inputs into the backend's memory once, times the first call
(JIT compilation or loading the on-disk cache) apart from the steady state, runs ``warmup``
untimed calls, synchronises the device before reading the clock, and keeps each of ``repeats``
calls. It calls the backend's kernels directly: the front-end's argument checks, a few
microseconds, are not timed (the peers are timed the same way, on tensors they already hold).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from .. import validation as V
from ..backends import get_backend
from .problems import MODES, Problem, backend_arrays, stack_backward, stack_forward

__all__ = ["Timing", "thread_limit", "time_backend", "elapsed_seconds"]


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` threads for numlstm's kernels and every BLAS
    (:func:`numlstm.num_threads`); ``None`` leaves everything as it is."""
    if threads is None:
        yield
        return
    import numlstm
    with numlstm.num_threads(V.check_positive_int(threads, "threads")):
        yield


@dataclass
class Timing:
    """Wall-clock times of one backend, milliseconds.

    ``first_call_ms`` is the very first call in this process (JIT compilation, or loading the
    on-disk cache, plus the run); ``times_ms`` the ``repeats`` timed calls after ``warmup``
    untimed ones, each ended by the device's ``synchronize()``.
    """

    first_call_ms: float
    times_ms: list

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def min_ms(self) -> float:
        return min(self.times_ms)

    @property
    def max_ms(self) -> float:
        return max(self.times_ms)

    def to_dict(self) -> dict:
        return {"first_call_ms": self.first_call_ms, "median_ms": self.median_ms,
                "min_ms": self.min_ms, "max_ms": self.max_ms, "times_ms": list(self.times_ms)}

    @classmethod
    def from_dict(cls, data: dict) -> "Timing":
        return cls(float(data["first_call_ms"]), [float(t) for t in data["times_ms"]])


def _step_function(backend, arrays: dict, mode: str) -> Callable[[], None]:
    """One call of ``mode`` on ``backend``, ended by the device's ``synchronize()``."""
    if mode == "forward":
        def step():
            stack_forward(backend, arrays, return_cache=False)
            backend.synchronize()
    else:
        def step():
            stack_backward(backend, arrays, stack_forward(backend, arrays, return_cache=True))
            backend.synchronize()
    return step


def time_backend(backend_name: str, problem: Problem, mode: str = "forward", *,
                 repeats: int = 10, warmup: int = 2, threads: int | None = None) -> Timing:
    """Time ``mode`` (``"forward"`` or ``"train"`` = forward + backward) on one backend.

    The inputs are moved to the backend once; every call reuses them, and the backend's
    buffers are whatever it keeps between calls. The first call is timed on its own, then
    ``warmup`` calls are run untimed and ``repeats`` are timed, each followed by
    ``synchronize()`` before the clock is read.
    """
    V.check_name(mode, "mode", MODES)
    repeats = V.check_positive_int(repeats, "repeats")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer; got warmup={warmup!r}")
    backend = get_backend(backend_name)
    with thread_limit(threads):
        arrays = backend_arrays(backend, problem)
        backend.synchronize()
        step = _step_function(backend, arrays, mode)
        first = elapsed_seconds(step)
        for _ in range(warmup):
            step()
        times = [elapsed_seconds(step) for _ in range(repeats)]
    return Timing(first * 1e3, [t * 1e3 for t in times])


def elapsed_seconds(function) -> float:
    """Wall-clock seconds of one call of ``function``."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start
