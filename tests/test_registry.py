"""The backend registry: names, availability with reasons, selection, and lazy imports."""

import os
import subprocess
import sys

import pytest

import numlstm
from numlstm import BackendUnavailableError
from numlstm.backends import BackendStatus


def test_available_backends_lists_all_four_in_order():
    statuses = numlstm.available_backends()
    assert list(statuses) == ["numpy", "numba", "cuda", "cupy"]
    for name, status in statuses.items():
        assert isinstance(status, BackendStatus) and status.name == name
    assert statuses["numpy"].available and statuses["numba"].available


def test_unusable_backends_say_why_and_how_to_fix():
    for name, status in numlstm.available_backends().items():
        if not status.available:
            assert status.reason and status.fix, name
            with pytest.raises(BackendUnavailableError) as info:
                numlstm.get_backend(name)
            assert info.value.backend == name
            assert status.reason in str(info.value) and status.fix in str(info.value)


def test_missing_gpu_packages_are_reported(monkeypatch):
    """With numba-cuda and CuPy absent (simulated), the reasons name the package and extra."""
    import numlstm.backends as registry
    monkeypatch.setattr(registry, "_missing", lambda module: module in ("numba_cuda", "cupy"))
    statuses = numlstm.available_backends()
    assert "numba-cuda" in statuses["cuda"].reason
    assert "numlstm[cuda]" in statuses["cuda"].fix
    assert "CuPy" in statuses["cupy"].reason and "numlstm[cupy]" in statuses["cupy"].fix


def test_no_gpu_driver_is_reported(monkeypatch):
    import numlstm.backends as registry
    monkeypatch.setattr(registry, "_missing", lambda module: False)
    monkeypatch.setattr(registry, "_nvidia_driver_missing", lambda: True)
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    statuses = numlstm.available_backends()
    for name in ("cuda", "cupy"):
        assert not statuses[name].available
        assert "NVIDIA" in statuses[name].reason


def test_import_loads_no_backend_and_no_gpu_library():
    code = ("import sys, numlstm; numlstm.available_backends(); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('cupy', 'numba_cuda') "
            "or m.startswith('numba.cuda') or m == 'numba']; "
            "print(bad); sys.exit(1 if bad else 0)")
    env = dict(os.environ)
    env.pop("NUMLSTM_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def test_unknown_backend_name_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"backend must be one of \['numpy', 'numba', 'cuda', "
                                         r"'cupy'\]; got 'tensorflow'"):
        numlstm.get_backend("tensorflow")
    with pytest.raises(TypeError, match="backend must be a string"):
        numlstm.get_backend(3)


def test_default_is_numba(monkeypatch):
    monkeypatch.delenv("NUMLSTM_BACKEND", raising=False)
    assert numlstm.current_backend_name() == "numba"
    assert numlstm.get_backend().name == "numba"


def test_environment_variable_selects_backend(monkeypatch):
    monkeypatch.setenv("NUMLSTM_BACKEND", "numpy")
    assert numlstm.get_backend().name == "numpy"
    monkeypatch.setenv("NUMLSTM_BACKEND", "nope")
    with pytest.raises(ValueError, match="NUMLSTM_BACKEND environment variable must be one of"):
        numlstm.get_backend()


def test_use_backend_nests_and_restores(monkeypatch):
    monkeypatch.delenv("NUMLSTM_BACKEND", raising=False)
    with numlstm.use_backend("numpy") as backend:
        assert backend.name == "numpy" and numlstm.current_backend_name() == "numpy"
        with numlstm.use_backend("numba"):
            assert numlstm.current_backend_name() == "numba"
        assert numlstm.current_backend_name() == "numpy"
    assert numlstm.current_backend_name() == "numba"


def test_set_default_backend(monkeypatch):
    monkeypatch.setenv("NUMLSTM_BACKEND", "numba")
    try:
        numlstm.set_default_backend("numpy")
        assert numlstm.current_backend_name() == "numpy"      # beats the environment
        with numlstm.use_backend("numba"):
            assert numlstm.current_backend_name() == "numba"  # a block beats the default
        unusable = [n for n, s in numlstm.available_backends().items() if not s.available]
        for name in unusable:
            with pytest.raises(BackendUnavailableError):
                numlstm.set_default_backend(name)
            assert numlstm.current_backend_name() == "numpy"  # unchanged after the error
    finally:
        numlstm.set_default_backend(None)
    assert numlstm.current_backend_name() == "numba"


def test_layer_reports_which_backend_ran(monkeypatch):
    import numpy as np
    monkeypatch.delenv("NUMLSTM_BACKEND", raising=False)
    x = np.ones((2, 3, 4), np.float32)
    layer = numlstm.LSTM(5, seed=0)
    layer(x)
    assert layer.last_backend == "numba"
    with numlstm.use_backend("numpy"):
        layer(x)
    assert layer.last_backend == "numpy"
    pinned = numlstm.LSTM(5, seed=0, backend="numpy")
    pinned(x)
    assert pinned.last_backend == "numpy"
