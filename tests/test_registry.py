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


def _modules_loaded_by(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the heavy or GPU modules it left loaded."""
    probe = (f"import sys; {code}; print(sorted(m for m in sys.modules if m.split('.')[0] in "
             f"('numba', 'cupy', 'numba_cuda', 'llvmlite') and m.count('.') < 2))")
    env = dict(os.environ)
    env.pop("NUMLSTM_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, check=True)
    return eval(done.stdout)


def test_import_loads_no_backend():
    assert _modules_loaded_by("import numlstm") == []


def test_probing_backends_loads_no_gpu_library():
    loaded = _modules_loaded_by("import numlstm; numlstm.available_backends()")
    assert "numba" in loaded                       # the numba probe imports Numba itself
    assert not [m for m in loaded if m.startswith(("cupy", "numba_cuda", "numba.cuda"))]


def test_a_numba_that_fails_to_import_is_reported(monkeypatch):
    import importlib
    import numlstm.backends as registry
    real_import = importlib.import_module

    def failing_import(name, *args):
        if name == "numba":
            raise ImportError("Numba needs NumPy 2.2 or less")
        return real_import(name, *args)

    monkeypatch.setattr(registry.importlib, "import_module", failing_import)
    monkeypatch.delitem(registry._instances, "numba", raising=False)
    status = numlstm.available_backends()["numba"]
    assert not status.available
    assert "importing Numba failed (Numba needs NumPy 2.2 or less)" in status.reason
    with pytest.raises(BackendUnavailableError, match="pip install -U numba"):
        numlstm.get_backend("numba")


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


def test_use_backend_is_local_to_its_thread(monkeypatch):
    import threading
    monkeypatch.delenv("NUMLSTM_BACKEND", raising=False)
    inside, seen_by_other = threading.Event(), []
    release = threading.Event()

    def hold_numpy():
        with numlstm.use_backend("numpy"):
            inside.set()
            release.wait(5)

    holder = threading.Thread(target=hold_numpy)
    holder.start()
    assert inside.wait(5)
    other = threading.Thread(target=lambda: seen_by_other.append(numlstm.current_backend_name()))
    other.start()
    other.join()
    seen_here = numlstm.current_backend_name()
    release.set()
    holder.join()
    assert seen_by_other == ["numba"] and seen_here == "numba"
