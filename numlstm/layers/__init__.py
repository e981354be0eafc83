"""Keras-style layers."""

from .base import Input, Layer
from .bidirectional import Bidirectional
from .core import Dense, Dropout, Embedding, Masking
from .lstm import LSTM
from .lstm_cell import LSTMCell

#: Layer classes a saved model may name (loading refuses anything else).
LAYER_CLASSES = {cls.__name__: cls for cls in (LSTM, Dense, Dropout, Masking, Embedding,
                                               Bidirectional)}

__all__ = ["Bidirectional", "Dense", "Dropout", "Embedding", "Input", "LAYER_CLASSES", "LSTM",
           "LSTMCell", "Layer", "Masking"]
