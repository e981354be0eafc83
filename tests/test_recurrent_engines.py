"""The numba backend's engines for the per-step recurrent products (``numlstm.set_cpu_blas``):
numlstm's own packed kernel, oneMKL's packed GEMM, OpenBLAS.

The parity suite holds each engine to the reference (``numba-numlstm``, ``numba-mkl``,
``numba-openblas``); this file covers what is particular to them: the packed kernel itself on
odd shapes, that the chosen engine's loops really run, that the packed engines equal the
OpenBLAS path, that packed weights are never stale, that their compiled loops stay in Numba's
on-disk cache, and the policy. What needs MKL skips with the reason where it is not installed
(the README's test command installs the ``mkl`` extra, so CI runs it).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

import numlstm
from numlstm.backends import cpu_blas, numba_kernels, packed_gemm

from conftest import make_problem

MKL = numlstm.cpu_blas_info()
needs_mkl = pytest.mark.skipif(not MKL["mkl"], reason=f"oneMKL not usable here: {MKL['reason']}")
PACKED_ENGINES = [pytest.param("numlstm", id="numlstm"),
                  pytest.param("mkl", id="mkl", marks=needs_mkl)]
#: The loops each packed engine runs (forward, backward).
ENGINE_LOOPS = {"numlstm": (numba_kernels.forward_rows_panels,
                            numba_kernels.backward_rows_panels),
                "mkl": (numba_kernels.forward_rows_mkl, numba_kernels.backward_rows_mkl)}


@njit(cache=True)
def _packed_matmul(a, panels, c, width, accumulate):
    packed_gemm.packed_matmul(a, panels, c, width, accumulate,
                              np.empty((4, packed_gemm.PANEL), np.float32))


@pytest.mark.parametrize("rows", [1, 3, 4, 5, 9])
@pytest.mark.parametrize("depth, width", [(1, 4), (7, 64), (33, 100), (64, 256), (20, 130)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_packed_kernel_on_odd_shapes_and_strided_rows(rows, depth, width, accumulate):
    """Rows that are not a multiple of the 4-row tile, widths that are not a multiple of the
    64-column panel (the tail goes through a scratch tile and must not write past ``width``),
    strided rows in ``a`` and ``c``, ``=`` and ``+=``."""
    rng = np.random.default_rng(rows * 1000 + depth + width)
    weights = rng.standard_normal((depth, width)).astype(np.float32)
    a_storage = rng.standard_normal((rows, 3, depth)).astype(np.float32)
    a = a_storage[:, 1]                                       # row stride 3 * depth
    c_storage = rng.standard_normal((rows, 2, width + 5)).astype(np.float32)
    before = c_storage.copy()
    c = c_storage[:, 0, :width]
    panels = packed_gemm.pack_panels(
        weights, False, np.empty(packed_gemm.panels_shape(weights.shape, False), np.float32))
    _packed_matmul(a, panels, c, width, accumulate)
    expected = a.astype(np.float64) @ weights + (before[:, 0, :width] if accumulate else 0)
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5 * max(1, depth) ** 0.5)
    np.testing.assert_array_equal(c_storage[:, 0, width:], before[:, 0, width:])
    np.testing.assert_array_equal(c_storage[:, 1], before[:, 1])


def test_packing_transposed_equals_packing_the_transpose():
    weights = np.arange(5 * 70, dtype=np.float32).reshape(5, 70)
    shape = packed_gemm.panels_shape(weights.shape, True)
    assert shape == (1, 70, 64)
    direct = packed_gemm.pack_panels(np.ascontiguousarray(weights.T), False,
                                     np.empty(shape, np.float32))
    transposed = packed_gemm.pack_panels(weights, True, np.full(shape, np.nan, np.float32))
    np.testing.assert_array_equal(transposed, direct)
    np.testing.assert_array_equal(transposed[0, :, 5:], 0)      # padded with zeros


def _run_engines(problem, engines):
    results = {}
    for engine in engines:
        with numlstm.use_cpu_blas(engine):
            results[engine] = problem.run("numba")
    return results


@pytest.mark.parametrize("engine", PACKED_ENGINES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_packed_engine_runs_and_equals_the_openblas_path(engine, threads, reverse):
    # 40 rows: more than one 16-row block per thread; 33 units: no vector-width multiple.
    problem = make_problem(40, 9, 5, 33, mask="holes", dropout=True, reverse=reverse,
                           seed=5, scale=0.3).astype(np.float32)
    with numlstm.num_threads(threads):
        results = _run_engines(problem, ("openblas", engine))
    for loop in ENGINE_LOOPS[engine]:
        assert loop.signatures, f"{loop.__name__} never ran"
    for name, value in results["openblas"].items():
        other = results[engine][name]
        if name in ("outputs", "h", "c"):
            np.testing.assert_allclose(other, value, rtol=1e-5, atol=1e-5, err_msg=name)
        else:
            assert np.linalg.norm(other - value) <= 1e-5 * np.linalg.norm(value), name


@pytest.mark.parametrize("engine", PACKED_ENGINES)
def test_packed_weights_are_never_stale(engine):
    """Change the weights in every way a user or an optimizer can, and compare each following
    forward with the reference on the same weights."""
    rng = np.random.default_rng(0)
    layer = numlstm.LSTM(24, return_sequences=True, seed=1)
    x = rng.standard_normal((20, 6, 5)).astype(np.float32)

    def check():
        with numlstm.use_cpu_blas(engine):
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
    y = rng.standard_normal((20, 1)).astype(np.float32)
    with numlstm.use_cpu_blas(engine):
        before = model.predict(x, verbose=0)
        model.fit(x, y, epochs=1, batch_size=20, verbose=0)               # optimizer step
        after = model.predict(x, verbose=0)
    with numlstm.use_backend("numpy"):
        expected = model.predict(x, verbose=0)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-5)


CACHE_SCRIPT = textwrap.dedent("""
    import json, sys, numpy as np, numlstm
    from numlstm.backends import numba_kernels
    numlstm.set_cpu_blas(sys.argv[1])
    x = np.random.default_rng(0).standard_normal((8, 5, 3)).astype(np.float32)
    layer = numlstm.LSTM(6, seed=0)
    layer(x)
    loop = {"numlstm": numba_kernels.forward_rows_panels,
            "mkl": numba_kernels.forward_rows_mkl}[sys.argv[1]]
    print(json.dumps({"hits": sum(loop.stats.cache_hits.values()),
                      "misses": sum(loop.stats.cache_misses.values())}))
""")


@pytest.mark.parametrize("engine", PACKED_ENGINES)
def test_engine_loops_are_loaded_from_the_on_disk_cache_in_a_new_process(engine, tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", CACHE_SCRIPT, engine], env=env,
                              text=True, capture_output=True, timeout=300)
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
    with pytest.raises(ValueError, match=r"name must be one of \['auto', 'numlstm', 'mkl', "
                                         r"'openblas'\]; got 'atlas'"):
        numlstm.set_cpu_blas("atlas")
    with pytest.raises(TypeError, match="name must be a string"):
        numlstm.set_cpu_blas(3)
    before = cpu_blas.explicit_policy()
    with numlstm.use_cpu_blas("openblas"):
        assert numlstm.cpu_blas_info()["float32"] == "openblas"
        assert numlstm.cpu_blas_info()["requested"] == "openblas"
        with numlstm.use_cpu_blas("numlstm"):
            assert numlstm.cpu_blas_info()["float32"] == "numlstm"
        assert numlstm.cpu_blas_info()["float32"] == "openblas"
    assert cpu_blas.explicit_policy() == before


def _auto(monkeypatch, vendor, mkl_problem, kernel_problem):
    monkeypatch.setattr(cpu_blas, "_policy", None)
    monkeypatch.delenv("NUMLSTM_BLAS", raising=False)
    monkeypatch.setattr(cpu_blas, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(cpu_blas, "_mkl_problem", lambda: mkl_problem)
    monkeypatch.setattr(cpu_blas, "_kernel_problem", lambda: kernel_problem)


def test_auto_picks_mkl_on_intel_the_kernel_on_avx512_amd_else_openblas(monkeypatch):
    _auto(monkeypatch, "GenuineIntel", None, None)
    assert cpu_blas.engine(np.float32) == "mkl"
    _auto(monkeypatch, "AuthenticAMD", None, None)               # MKL installed, but AMD
    assert cpu_blas.engine(np.float32) == "numlstm"
    _auto(monkeypatch, "GenuineIntel", "oneMKL is not installed", "not measured on this CPU")
    assert cpu_blas.engine(np.float32) == "openblas"
    assert cpu_blas.info()["reason"] == ("OpenBLAS: oneMKL is not installed; numlstm's "
                                         "kernel: not measured on this CPU")
    _auto(monkeypatch, "AuthenticAMD", None, "the CPU has no AVX-512")
    assert cpu_blas.engine(np.float32) == "openblas"
    for vendor in ("GenuineIntel", "AuthenticAMD"):
        _auto(monkeypatch, vendor, None, None)
        assert cpu_blas.engine(np.float64) == "openblas"
    monkeypatch.setenv("NUMLSTM_BLAS", "openblas")               # the variable decides
    assert cpu_blas.engine(np.float32) == "openblas"


def test_asking_for_mkl_without_it_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(cpu_blas, "_mkl_problem", lambda: "oneMKL is not installed")
    monkeypatch.setattr(cpu_blas, "_policy", None)
    with pytest.raises(numlstm.BackendUnavailableError,
                       match=r"MKL path was requested but oneMKL is not installed.*"
                             r"numlstm\[mkl\]"):
        numlstm.set_cpu_blas("mkl")
    assert cpu_blas.explicit_policy() is None
    monkeypatch.setenv("NUMLSTM_BLAS", "mkl")          # the variable asks, nothing to load:
    assert cpu_blas.engine(np.float32) == "openblas"   # OpenBLAS, and info says why
    assert cpu_blas.info()["reason"] == "OpenBLAS: oneMKL is not installed"


def test_the_backend_describes_the_engine_it_uses():
    with numlstm.use_cpu_blas("numlstm"):
        assert numlstm.get_backend("numba").describe().endswith(
            "recurrent products: numlstm's packed kernel (float32))")
    with numlstm.use_cpu_blas("openblas"):
        assert numlstm.get_backend("numba").describe().endswith("recurrent products: OpenBLAS)")


def test_the_engine_choice_asks_llvm_once_per_process():
    """LLVM's host-CPU queries cost ~0.2 ms, more than a small forward: the choice must not
    repeat them on every call."""
    layer = numlstm.LSTM(8, seed=0)
    x = np.ones((6, 3, 2), np.float32)
    layer(x)
    asked = packed_gemm.why_not_usable.cache_info().misses
    for _ in range(3):
        layer(x)
    assert packed_gemm.why_not_usable.cache_info().misses == asked <= 1
