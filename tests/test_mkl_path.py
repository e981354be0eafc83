"""The numba backend's oneMKL packed-GEMM path (``numlstm.set_cpu_blas("mkl")``).

The parity suite runs this path as the ``numba-mkl`` backend parameter; this file covers what
is particular to it: that it really runs, that it equals the OpenBLAS path, that packed weights
are never stale, that its compiled loops stay in Numba's on-disk cache, and the policy.
Everything that needs MKL skips with the reason where MKL is not installed (the test command
in the README installs the ``mkl`` extra, so CI runs it).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import numlstm
from numlstm.backends import cpu_blas, numba_kernels

from conftest import make_problem

MKL = numlstm.cpu_blas_info()
needs_mkl = pytest.mark.skipif(not MKL["mkl"], reason=f"oneMKL not usable here: {MKL['reason']}")


def _run_both(problem):
    """Forward + backward on each BLAS path, float32."""
    results = {}
    for blas in ("openblas", "mkl"):
        with numlstm.use_cpu_blas(blas):
            results[blas] = problem.run("numba")
    return results


@needs_mkl
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_mkl_path_runs_and_equals_the_openblas_path(threads, reverse):
    # 40 rows: more than one 16-row packed block per thread; 33 units: no vector-width multiple.
    problem = make_problem(40, 9, 5, 33, mask="holes", dropout=True, reverse=reverse,
                           seed=5).astype(np.float32)
    with numlstm.num_threads(threads):
        results = _run_both(problem)
    assert numba_kernels.forward_rows_packed.signatures, "the packed forward never ran"
    assert numba_kernels.backward_rows_packed.signatures, "the packed backward never ran"
    for name, value in results["openblas"].items():
        other = results["mkl"][name]
        if name in ("outputs", "h", "c"):
            np.testing.assert_allclose(other, value, rtol=1e-5, atol=1e-5, err_msg=name)
        else:
            assert np.linalg.norm(other - value) <= 1e-5 * np.linalg.norm(value), name


@needs_mkl
def test_packed_weights_are_never_stale():
    """Change the weights in every way a user or an optimizer can, and compare each following
    forward with the reference on the same weights."""
    rng = np.random.default_rng(0)
    layer = numlstm.LSTM(24, return_sequences=True, seed=1)
    x = rng.standard_normal((20, 6, 5)).astype(np.float32)

    def check():
        with numlstm.use_cpu_blas("mkl"):
            got = layer(x)
        with numlstm.use_backend("numpy"):
            expected = layer(x)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

    check()
    kernel, recurrent_kernel, bias = layer.get_weights()
    layer.set_weights([kernel, recurrent_kernel * 0.5, bias])            # set_weights
    check()
    layer.recurrent_kernel[...] += 0.1                                   # in place, whole
    check()
    layer.recurrent_kernel[3, 7] = 2.0                                   # in place, one value
    check()
    model = numlstm.Sequential([numlstm.Input((6, 5)), numlstm.LSTM(16),
                                numlstm.Dense(1)], seed=2)
    model.compile(optimizer="adam", loss="mse")
    lstm = model.layers[1] if len(model.layers) > 2 else model.layers[0]
    y = rng.standard_normal((20, 1)).astype(np.float32)
    with numlstm.use_cpu_blas("mkl"):
        before = model.predict(x, verbose=0)
        model.fit(x, y, epochs=1, batch_size=20, verbose=0)               # optimizer step
        after = model.predict(x, verbose=0)
    with numlstm.use_backend("numpy"):
        expected = model.predict(x, verbose=0)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-5)
    assert lstm.count_params() > 0


CACHE_SCRIPT = textwrap.dedent("""
    import json, numpy as np, numlstm
    from numlstm.backends import numba_kernels
    numlstm.set_cpu_blas("mkl")
    x = np.random.default_rng(0).standard_normal((8, 5, 3)).astype(np.float32)
    layer = numlstm.LSTM(6, seed=0)
    layer(x)
    stats = numba_kernels.forward_rows_packed.stats
    print(json.dumps({"hits": sum(stats.cache_hits.values()),
                      "misses": sum(stats.cache_misses.values())}))
""")


@needs_mkl
def test_mkl_loops_are_loaded_from_the_on_disk_cache_in_a_new_process(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", CACHE_SCRIPT], env=env, text=True,
                              capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0] == {"hits": 0, "misses": 1}
    assert runs[1] == {"hits": 1, "misses": 0}


def test_importing_numlstm_and_running_openblas_never_loads_mkl():
    script = textwrap.dedent("""
        import sys, numpy as np, numlstm
        print("numlstm.backends.mkl_blas" in sys.modules)
        numlstm.set_cpu_blas("openblas")
        numlstm.LSTM(4, seed=0)(np.ones((3, 2, 2), np.float32))
        maps = open("/proc/self/maps").read() if sys.platform == "linux" else ""
        print("libmkl_rt" in maps)
    """)
    done = subprocess.run([sys.executable, "-c", script], text=True, capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_policy_is_validated_and_restored():
    with pytest.raises(ValueError, match=r"name must be one of \['auto', 'mkl', 'openblas'\]; "
                                         r"got 'atlas'"):
        numlstm.set_cpu_blas("atlas")
    with pytest.raises(TypeError, match="name must be a string"):
        numlstm.set_cpu_blas(3)
    before = cpu_blas.explicit_policy()
    with numlstm.use_cpu_blas("openblas"):
        assert numlstm.cpu_blas_info()["float32"] == "openblas"
        assert numlstm.cpu_blas_info()["requested"] == "openblas"
    assert cpu_blas.explicit_policy() == before


def test_float64_and_non_intel_auto_stay_on_openblas(monkeypatch):
    assert not cpu_blas.use_mkl(np.float64)
    monkeypatch.setattr(cpu_blas, "_policy", None)
    monkeypatch.setenv("NUMLSTM_BLAS", "auto")
    monkeypatch.setattr(cpu_blas, "cpu_vendor", lambda: "AuthenticAMD")
    assert not cpu_blas.use_mkl(np.float32)
    assert "auto keeps OpenBLAS" in cpu_blas.info()["reason"]
    monkeypatch.setenv("NUMLSTM_BLAS", "openblas")
    monkeypatch.setattr(cpu_blas, "cpu_vendor", lambda: "GenuineIntel")
    assert not cpu_blas.use_mkl(np.float32)


def test_asking_for_mkl_without_it_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(cpu_blas, "_mkl_problem", lambda: "oneMKL is not installed")
    monkeypatch.setattr(cpu_blas, "_policy", None)
    with pytest.raises(numlstm.BackendUnavailableError,
                       match=r"MKL path was requested but oneMKL is not installed.*"
                             r"numlstm\[mkl\]"):
        numlstm.set_cpu_blas("mkl")
    assert cpu_blas.explicit_policy() is None
    monkeypatch.setenv("NUMLSTM_BLAS", "mkl")          # the variable asks, nothing to load:
    assert not cpu_blas.use_mkl(np.float32)            # OpenBLAS, and info says why
    assert cpu_blas.info()["reason"] == "OpenBLAS: oneMKL is not installed"


@needs_mkl
def test_intel_auto_takes_mkl(monkeypatch):
    monkeypatch.setattr(cpu_blas, "_policy", None)
    monkeypatch.delenv("NUMLSTM_BLAS", raising=False)
    monkeypatch.setattr(cpu_blas, "cpu_vendor", lambda: "GenuineIntel")
    assert cpu_blas.use_mkl(np.float32)
    assert numlstm.get_backend("numba").describe().endswith(
        "recurrent products: oneMKL packed GEMM (float32))")
