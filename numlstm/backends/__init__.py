"""The backend registry: which backends exist, which can run here, and which one is in use.

Everything is decided at run time. Importing numlstm imports no backend module; a backend's
module is imported the first time it is asked for, and availability is probed without
importing CUDA or CuPy (a package's presence is looked up with ``importlib.util.find_spec``,
a GPU driver with ``ctypes.util.find_library``).

The backend in use is, in order of precedence: the innermost :func:`use_backend` block, then
:func:`set_default_backend`, then the ``NUMLSTM_BACKEND`` environment variable, then ``numba``.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes.util
import importlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

from ..errors import BackendUnavailableError
from . import cpu_blas as cpu_blas_policy
from . import threads as thread_policy
from .base import Backend, ForwardResult, Gradients, SequenceCache
from .threads import MAX_THREADS, blas_single_thread, get_num_threads, max_threads

__all__ = [
    "BACKEND_NAMES", "DEFAULT_BACKEND", "ENV_VAR", "IMPLEMENTED_BACKENDS", "Backend",
    "BackendStatus", "ForwardResult",
    "Gradients", "SequenceCache", "available_backends", "backend_status", "current_backend_name",
    "get_backend", "selection_key", "set_default_backend", "use_backend",
    # the CPU thread and engine policy (numlstm.threads validates and re-exports it)
    "MAX_THREADS", "blas_single_thread", "cpu_blas_policy", "get_num_threads", "max_threads",
    "thread_policy",
]

BACKEND_NAMES = ("numpy", "numba", "cuda", "cupy")
DEFAULT_BACKEND = "numba"
ENV_VAR = "NUMLSTM_BACKEND"


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can run here.

    Attributes
    ----------
    name : str
    available : bool
    reason : str
        Empty when available; otherwise why not, in words a person can act on.
    fix : str
        What to do about it (empty when available).
    note : str
        Anything a user should know about an available backend (e.g. that ``cuda`` runs in
        Numba's CUDA simulator); usually empty.
    """

    name: str
    available: bool
    reason: str = ""
    fix: str = ""
    note: str = ""

    def __bool__(self) -> bool:
        return self.available


# -- probes: cheap, and never import numba.cuda or cupy --------------------------------------

def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def _nvidia_driver_missing() -> bool:
    return ctypes.util.find_library("cuda") is None and not os.path.exists("/dev/nvidiactl")


_NO_GPU = ("no NVIDIA GPU driver was found on this machine (libcuda is missing)",
           "run on a machine with an NVIDIA GPU and its driver, or use backend='numba'")


def _probe_numpy() -> BackendStatus:
    return BackendStatus("numpy", True)


def _probe_numba() -> BackendStatus:
    if _missing("numba"):
        return BackendStatus("numba", False, "Numba is not installed", "pip install numba")
    try:
        # Numba is a core dependency, so importing it here is fair; it fails when the
        # installed Numba does not support the installed NumPy, which must be reported.
        importlib.import_module("numba")
    except Exception as error:
        return BackendStatus("numba", False, f"importing Numba failed ({error})",
                             "pip install -U numba (a release that supports your NumPy)")
    return BackendStatus("numba", True)


def _probe_cuda() -> BackendStatus:
    if _missing("numba_cuda"):
        return BackendStatus("cuda", False, "numba-cuda (Numba's CUDA target) is not installed",
                             "pip install 'numlstm[cuda]'")
    from .cuda_backend import compatibility_problem   # imports neither numba nor CUDA
    too_old = compatibility_problem()
    if too_old:
        return BackendStatus("cuda", False, too_old, "pip install -U 'numlstm[cuda]'")
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return BackendStatus("cuda", True, note="Numba's CUDA simulator "
                             "(NUMBA_ENABLE_CUDASIM=1): correct but slow, and no GPU is used")
    if _nvidia_driver_missing():
        return BackendStatus("cuda", False, *_NO_GPU)
    return BackendStatus("cuda", True)


def _probe_cupy() -> BackendStatus:
    if _missing("cupy"):
        return BackendStatus("cupy", False, "CuPy is not installed",
                             "pip install 'numlstm[cupy]' (CUDA 12) or "
                             "'numlstm[cupy13]' (CUDA 13)")
    if _nvidia_driver_missing():
        return BackendStatus("cupy", False, *_NO_GPU)
    return BackendStatus("cupy", True)


_PROBES: dict[str, Callable[[], BackendStatus]] = {
    "numpy": _probe_numpy, "numba": _probe_numba, "cuda": _probe_cuda, "cupy": _probe_cupy,
}

# module and class of each backend that can be constructed
_IMPLEMENTATIONS = {
    "numpy": ("numlstm.backends.numpy_backend", "NumpyBackend"),
    "numba": ("numlstm.backends.numba_backend", "NumbaBackend"),
    "cuda": ("numlstm.backends.cuda_backend", "CudaBackend"),
    "cupy": ("numlstm.backends.cupy_backend", "CupyBackend"),
}
#: The backends this version implements (each reports whether it can run here, and why not).
IMPLEMENTED_BACKENDS = tuple(_IMPLEMENTATIONS)

_instances: dict[str, Backend] = {}
_instances_lock = threading.Lock()
_default_name: str | None = None
_scoped_name: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "numlstm_backend", default=None)


def check_name(value, argument: str, valid=BACKEND_NAMES) -> str:
    """``value`` when it is one of ``valid`` (the backend names by default); otherwise a
    ``TypeError``/``ValueError`` that names ``argument``, the choices and what was given.
    (The registry is called with user input, and backends import nothing of the front-end's
    validation.)"""
    if not isinstance(value, str):
        shown = (f"array of dtype {value.dtype} and shape {tuple(value.shape)}"
                 if hasattr(value, "shape") and hasattr(value, "dtype")
                 else f"{type(value).__name__} {value!r}")
        raise TypeError(f"{argument} must be a string, one of {list(valid)}; got {shown}")
    if value not in valid:
        raise ValueError(f"{argument} must be one of {list(valid)}; got {value!r}")
    return value


def backend_status(name: str) -> BackendStatus:
    """The :class:`BackendStatus` of one backend (``ValueError`` for an unknown name)."""
    check_name(name, "backend", BACKEND_NAMES)
    return _PROBES[name]()


def available_backends() -> dict[str, BackendStatus]:
    """Every known backend (reference first) with whether it can run here and, if not, why.

    Examples
    --------
    >>> statuses = numlstm.available_backends()
    >>> statuses["numba"].available
    True
    >>> statuses["cupy"].reason          # on a machine without CuPy
    'CuPy is not installed'
    """
    return {name: _PROBES[name]() for name in BACKEND_NAMES}


def get_backend(name: str | None = None) -> Backend:
    """The backend called ``name``, or the one in use when ``name`` is None.

    Raises
    ------
    ValueError
        ``name`` is not one of :data:`BACKEND_NAMES`.
    BackendUnavailableError
        The backend exists but cannot run here; the error carries the reason and the fix.
    """
    if name is None:
        name = current_backend_name()
    backend = _instances.get(name)        # the hot path: one dict look-up per layer call
    if backend is not None:
        return backend
    status = backend_status(name)
    if not status.available:
        raise BackendUnavailableError(name, status.reason, status.fix)
    with _instances_lock:
        if name not in _instances:
            module_name, class_name = _IMPLEMENTATIONS[name]
            try:
                module = importlib.import_module(module_name)
            except ImportError as error:
                raise BackendUnavailableError(
                    name, f"its module could not be imported ({error})",
                    "reinstall numlstm and its dependencies") from error
            _instances[name] = getattr(module, class_name)()
        return _instances[name]


def current_backend_name() -> str:
    """The name of the backend a call without ``backend=`` would use (see module docstring)."""
    scoped = _scoped_name.get()
    if scoped is not None:
        return scoped
    if _default_name is not None:
        return _default_name
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return check_name(from_env.strip().lower(), f"the {ENV_VAR} environment variable",
                          BACKEND_NAMES)
    return DEFAULT_BACKEND


def selection_key() -> tuple:
    """A value that changes whenever :func:`use_backend` or :func:`set_default_backend` change
    which backend a call without ``backend=`` would use: a caller that resolved the backend
    once (a layer's streaming ``step``) compares it per call, with ``==``, which is cheaper
    than resolving again. (The ``NUMLSTM_BACKEND`` variable is read by
    :func:`current_backend_name` only, not here.)"""
    return (_scoped_name.get(), _default_name)


def set_default_backend(name: str | None) -> None:
    """Make ``name`` the backend used when none is given (None restores the default).

    The backend must be usable here; otherwise :class:`BackendUnavailableError` is raised and
    the previous default stays.
    """
    global _default_name
    if name is not None:
        get_backend(name)
    _default_name = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Backend]:
    """Use ``name`` for every call without ``backend=`` inside the ``with`` block.

    >>> with numlstm.use_backend("numpy"):
    ...     y = layer(x)          # runs on the reference backend
    """
    backend = get_backend(name)
    token = _scoped_name.set(name)
    try:
        yield backend
    finally:
        _scoped_name.reset(token)
