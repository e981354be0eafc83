"""Thread control: numlstm.set_num_threads / num_threads, BLAS held at one thread inside the
Numba loops, and results that do not depend on the thread count."""

import multiprocessing
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import numlstm
from numlstm.backends import threads
from numlstm.backends import numba_backend

from conftest import make_problem, relative_norm_error
from test_backend_parity import assert_matches_reference

MAX_THREADS = threads.max_threads()


def blas_thread_counts():
    """Thread counts of the BLAS libraries that have threads to hold or restore (oneMKL, once
    numlstm's MKL path has loaded it, runs its sequential layer: always one thread)."""
    threads._blas_controller()
    return [lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas" and lib.get("threading_layer") != "sequential"]


@pytest.fixture(autouse=True)
def restore_thread_settings():
    with numlstm.num_threads(numlstm.get_num_threads()):
        yield


@pytest.mark.parametrize("value, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                          (True, TypeError), ("2", TypeError)])
def test_bad_thread_counts_are_refused_with_the_argument_named(value, error):
    with pytest.raises(error, match=r"n must be a positive integer; got"):
        numlstm.set_num_threads(value)
    with pytest.raises(error, match=r"n must be a positive integer; got"):
        with numlstm.num_threads(value):
            pass


def test_set_num_threads_sets_numlstm_and_blas():
    numlstm.set_num_threads(1)
    assert numlstm.get_num_threads() == 1
    assert set(blas_thread_counts()) == {1}
    numlstm.set_num_threads(MAX_THREADS + 5)        # capped, not an error
    assert numlstm.get_num_threads() == MAX_THREADS


def test_numba_threads_follow_once_numbas_pool_runs_and_are_never_started_by_numlstm():
    import subprocess
    import sys
    code = ("import numlstm, sys; numlstm.set_num_threads(1); "
            "from numlstm.backends.threads import running_numba; print(running_numba() is None); "
            "import numba; numba.get_num_threads(); numlstm.set_num_threads(1); "
            "print(numba.get_num_threads())")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert output == ["True", "1"]


def test_num_threads_context_restores_every_setting():
    numlstm.set_num_threads(MAX_THREADS)
    before_blas = blas_thread_counts()
    with numlstm.num_threads(1):
        assert numlstm.get_num_threads() == 1
        assert set(blas_thread_counts()) == {1}
    assert numlstm.get_num_threads() == MAX_THREADS
    assert blas_thread_counts() == before_blas


def test_blas_is_single_threaded_inside_the_kernels_and_restored_after(monkeypatch):
    """The oversubscription guard: while the Numba loops run, every BLAS is at one thread."""
    numlstm.set_num_threads(MAX_THREADS)
    threads._blas_controller()
    for lib in threads._blas_libs:
        lib.set_num_threads(MAX_THREADS)
    before = blas_thread_counts()
    seen = []
    real_forward_rows = numba_backend.forward_rows

    def spy(*args):
        seen.append(blas_thread_counts())
        return real_forward_rows(*args)

    monkeypatch.setattr(numba_backend, "forward_rows", spy)
    problem = make_problem(batch=1, timesteps=3, features=2, units=3)
    with numlstm.num_threads(1):
        problem.forward("numba")
    assert seen and all(set(counts) == {1} for counts in seen)
    assert blas_thread_counts() == before


def test_blas_single_thread_nests_and_restores():
    threads._blas_controller()
    for lib in threads._blas_libs:
        lib.set_num_threads(2)
    with threads.blas_single_thread():
        with threads.blas_single_thread():
            assert set(blas_thread_counts()) == {1}
        assert set(blas_thread_counts()) == {1}      # still inside the outer block
    assert set(blas_thread_counts()) == {2}


# A problem big enough for the batch to be split across threads (see numba_backend._chunks).
BIG = dict(batch=7, timesteps=24, features=16, units=33)


@pytest.mark.skipif(MAX_THREADS < 2, reason="this process may use only one core")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("options", [
    dict(mask="none"),
    dict(mask="holes", dropout=True, reverse=True),
    dict(mask="random", zero_output_for_mask=True, activation="relu", scale=0.2,
         recurrent_activation="hard_sigmoid"),
], ids=["plain", "mask-dropout-reverse", "zero-output-other-activations"])
def test_results_do_not_depend_on_the_thread_count(dtype, options):
    problem = make_problem(seed=3, **BIG, **options).astype(dtype)
    with numlstm.num_threads(2):
        assert numba_backend._chunks(BIG["batch"], BIG["timesteps"], BIG["features"],
                                     BIG["units"]) == 2, "the parallel path must be exercised"
        two = problem.run("numba")
    with numlstm.num_threads(1):
        assert numba_backend._chunks(BIG["batch"], BIG["timesteps"], BIG["features"],
                                     BIG["units"]) == 1
        one = problem.run("numba")
    for name in one:
        # Each row's recurrence is computed identically; only the summation order of the
        # weight gradients (chunk partial sums) may differ.
        tolerance = 1e-12 if dtype == np.float64 else 1e-6
        assert relative_norm_error(two[name], one[name]) <= tolerance, name
    with numlstm.num_threads(2):      # and the threaded results hold the parity tolerances
        assert_matches_reference(make_problem(seed=3, **BIG, **options), "numba", dtype)


def _forward_in_child(problem):
    return problem.forward("numba", return_cache=False).outputs


@pytest.mark.skipif(not hasattr(os, "fork") or MAX_THREADS < 2,
                    reason="needs fork() and two usable cores")
def test_threaded_forward_works_in_a_forked_child():
    """A child forked after a threaded call inherits the worker pool object but not its
    threads; its own threaded calls must still run (not wait forever on dead workers)."""
    problem = make_problem(seed=1, **BIG).astype(np.float32)
    with numlstm.num_threads(2):
        expected = _forward_in_child(problem)
        with multiprocessing.get_context("fork").Pool(1) as pool:
            outputs = pool.apply_async(_forward_in_child, (problem,)).get(timeout=120)
    np.testing.assert_array_equal(outputs, expected)
