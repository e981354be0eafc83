"""Keras-style layers."""

from .base import Layer
from .bidirectional import Bidirectional
from .core import Dense, Dropout, Embedding, Masking
from .lstm import LSTM
from .lstm_cell import LSTMCell
from .merge import Add, Average, Concatenate, Multiply, RepeatVector, Subtract
from .symbolic import Input, SymbolicTensor

#: Layer classes a saved model may name (loading refuses anything else).
LAYER_CLASSES = {cls.__name__: cls for cls in (LSTM, Dense, Dropout, Masking, Embedding,
                                               Bidirectional, Add, Average, Concatenate,
                                               Multiply, RepeatVector, Subtract)}

__all__ = ["Add", "Average", "Bidirectional", "Concatenate", "Dense", "Dropout", "Embedding",
           "Input", "LAYER_CLASSES", "LSTM", "LSTMCell", "Layer", "Masking", "Multiply",
           "RepeatVector", "Subtract", "SymbolicTensor"]
