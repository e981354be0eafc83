"""Doors between numlstm and other frameworks' model files.

=====================  ==========================================================================
module                 what it does
=====================  ==========================================================================
``keras_import``       reads a trained Keras model (a Keras 3 ``.keras`` archive or a legacy
                       full-model ``.h5`` of Keras 2 or 3) into a :class:`numlstm.Sequential`,
                       without importing Keras (extra ``numlstm[keras]``: h5py)
``onnx_export``        writes a :class:`numlstm.Sequential` as an ONNX graph built on the
                       standard ``LSTM`` operator (extra ``numlstm[onnx]``: onnx)
``commands``           the ``numlstm convert`` and ``numlstm export`` commands
=====================  ==========================================================================

PyTorch weights convert with :mod:`numlstm.convert`. The file-format details and what each
door refuses are in ``docs/interop.md``.
"""

from .keras_import import load_keras_model
from .onnx_export import export_onnx

__all__ = ["export_onnx", "load_keras_model"]
