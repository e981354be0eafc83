"""Keras-style layers."""

from .lstm import LSTM

__all__ = ["LSTM"]
