"""The ``numba`` backend: JIT-compiled CPU loops (the default backend).

This module prepares arrays (contiguity, output buffers, placeholders for absent options) and
calls the ``@njit`` loops in :mod:`numlstm.backends.numba_kernels`. Kernels are compiled on
first use per dtype (float32, float64) and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np

from .base import Backend, ForwardResult, Gradients, SequenceCache
from .numba_kernels import lstm_backward_kernel, lstm_forward_kernel


def _kernel_array(array) -> np.ndarray:
    """C-contiguous and writeable: Numba compiles a separate specialisation for every
    read-only/writeable combination of arguments, so read-only inputs (e.g. memory-mapped
    files) are copied rather than paid for in compile time."""
    return np.require(array, requirements=("C", "W"))


def _placeholder(dtype) -> np.ndarray:
    """An empty 2-D array standing in for an absent optional input (keeps kernel types fixed)."""
    return np.empty((0, 0), dtype=dtype)


class NumbaBackend(Backend):
    """``@njit`` loops on the CPU; float32 and float64."""

    name = "numba"
    xp = np

    def asarray(self, array, dtype=None):
        return np.asarray(array, dtype=dtype)

    def to_numpy(self, array):
        return np.asarray(array)

    def describe(self) -> str:
        import numba
        return f"CPU (Numba {numba.__version__} JIT loops)"

    def lstm_forward(self, x, kernel, recurrent_kernel, bias, *, h0, c0, mask,
                     recurrent_dropout_mask, reverse, activation, recurrent_activation,
                     zero_output_for_mask, return_cache):
        batch, timesteps, _ = x.shape
        units = recurrent_kernel.shape[0]
        dtype = x.dtype
        x, kernel, recurrent_kernel, bias, h0, c0 = (
            _kernel_array(a) for a in (x, kernel, recurrent_kernel, bias, h0, c0))
        if mask is not None:
            mask = _kernel_array(mask)
        if recurrent_dropout_mask is not None:
            recurrent_dropout_mask = _kernel_array(recurrent_dropout_mask)
        outputs = np.zeros((batch, timesteps, units), dtype)
        h = h0.copy()
        c = c0.copy()
        if return_cache:
            gates = np.zeros((batch, timesteps, 4 * units), dtype)
            cells = np.zeros((batch, timesteps, units), dtype)
            h_prev = np.zeros((batch, timesteps, units), dtype)
        else:
            gates = np.empty((0, 0, 0), dtype)
            cells = h_prev = np.empty((0, 0, 0), dtype)

        # Zero-sized GEMMs are legal but pointless; the answer is already in the buffers.
        if batch > 0 and timesteps > 0:
            lstm_forward_kernel(
                x, kernel, recurrent_kernel, bias, h0, c0,
                mask if mask is not None else _placeholder(np.bool_), mask is not None,
                (recurrent_dropout_mask if recurrent_dropout_mask is not None
                 else _placeholder(dtype)),
                recurrent_dropout_mask is not None,
                bool(reverse), int(activation), int(recurrent_activation),
                bool(zero_output_for_mask), bool(return_cache),
                outputs, h, c, gates, cells, h_prev)

        cache = None
        if return_cache:
            cache = SequenceCache(
                x=x, kernel=kernel, recurrent_kernel=recurrent_kernel, c0=c0, mask=mask,
                recurrent_dropout_mask=recurrent_dropout_mask, reverse=bool(reverse),
                zero_output_for_mask=bool(zero_output_for_mask), activation=int(activation),
                recurrent_activation=int(recurrent_activation), gates=gates, cells=cells,
                h_prev=h_prev, backend=self.name)
        return ForwardResult(outputs=outputs, h=h, c=c, cache=cache, backend=self.name)

    def lstm_backward(self, cache, *, grad_outputs, grad_h, grad_c):
        x = cache.x
        batch, timesteps, features = x.shape
        units = cache.recurrent_kernel.shape[0]
        dtype = x.dtype
        dx = np.zeros_like(x)
        dkernel = np.zeros((features, 4 * units), dtype)
        drecurrent_kernel = np.zeros((units, 4 * units), dtype)
        dbias = np.zeros(4 * units, dtype)
        dh = np.array(grad_h, dtype=dtype, copy=True)
        dc = np.array(grad_c, dtype=dtype, copy=True)
        if batch > 0 and timesteps > 0:
            mask = cache.mask
            dropout = cache.recurrent_dropout_mask
            lstm_backward_kernel(
                x, cache.kernel, cache.recurrent_kernel, cache.c0,
                mask if mask is not None else _placeholder(np.bool_), mask is not None,
                dropout if dropout is not None else _placeholder(dtype), dropout is not None,
                cache.reverse, cache.activation, cache.recurrent_activation,
                cache.zero_output_for_mask, cache.gates, cache.cells, cache.h_prev,
                _kernel_array(grad_outputs), _kernel_array(grad_h), _kernel_array(grad_c),
                dx, dkernel, drecurrent_kernel, dbias, dh, dc)
        return Gradients(x=dx, kernel=dkernel, recurrent_kernel=drecurrent_kernel, bias=dbias,
                         h0=dh, c0=dc)
