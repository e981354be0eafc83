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
from .layers import (LSTM, Add, Average, Bidirectional, Concatenate, Dense, Dropout, Embedding,
                     Input, Masking, Multiply, RepeatVector, Subtract)
from .models import Model, Sequential, load_model, model_from_json
from .interop import load_keras_model
from . import archive, datasets  # noqa: F401  (NumPy only; scikit-learn loads in digits())
from . import utils  # noqa: F401  (Keras's pad_sequences, to_categorical, ...; NumPy only)
from . import constraints, regularizers
from .threads import (cpu_blas_info, get_num_threads, num_threads, set_cpu_blas, set_num_threads,
                      use_cpu_blas)

__version__ = "0.1.0"

__all__ = [
    "Add", "Average", "BACKEND_NAMES", "BackendStatus", "BackendUnavailableError",
    "Bidirectional", "Concatenate", "Dense", "Model", "Multiply", "RepeatVector", "Subtract",
    "model_from_json",
    "cpu_blas_info", "set_cpu_blas", "use_cpu_blas",
    "Dropout", "Embedding", "Input", "LSTM", "Masking", "Sequential", "activations", "archive",
    "available_backends", "callbacks", "current_backend_name", "datasets", "functional",
    "get_backend", "get_num_threads", "initializers", "load_keras_model", "load_model",
    "losses", "metrics",
    "num_threads", "optimizers", "set_default_backend", "set_num_threads",
    "use_backend", "utils", "__version__",
    "constraints", "regularizers",
]
