"""numlstm: fast LSTM layers for Python without a deep-learning framework.

One Keras-like front-end (:class:`LSTM`, :mod:`numlstm.functional`) over pluggable backends:
``numpy`` (the reference), ``numba`` (JIT-compiled CPU loops, the default), ``cuda`` and
``cupy``. Choose one per call (``backend=``), per block (:func:`use_backend`), per process
(:func:`set_default_backend` or the ``NUMLSTM_BACKEND`` environment variable).

Importing numlstm imports no backend: Numba compiles on first use, and CUDA/CuPy are only
imported when their backend is chosen.
"""

from . import activations, callbacks, functional, initializers, losses, metrics, optimizers
from .backends import (BACKEND_NAMES, BackendStatus, available_backends, current_backend_name,
                       get_backend, set_default_backend, use_backend)
from .errors import BackendUnavailableError
from .layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Input, Masking
from .models import Sequential, load_model
from .interop import load_keras_model
from . import archive, datasets  # noqa: F401  (NumPy only; scikit-learn loads in digits())
from .threads import get_num_threads, num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "BACKEND_NAMES", "BackendStatus", "BackendUnavailableError", "Bidirectional", "Dense",
    "Dropout", "Embedding", "Input", "LSTM", "Masking", "Sequential", "activations", "archive",
    "available_backends", "callbacks", "current_backend_name", "datasets", "functional",
    "get_backend", "get_num_threads", "initializers", "load_keras_model", "load_model",
    "losses", "metrics",
    "num_threads", "optimizers", "set_default_backend", "set_num_threads",
    "use_backend", "__version__",
]
