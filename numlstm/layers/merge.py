"""Layers that join several tensors into one -- what a functional model with several inputs or
branches needs: ``Concatenate``, ``Add``, ``Subtract``, ``Multiply``, ``Average`` -- and
``RepeatVector``, which turns one vector per sample into a sequence (the decoder input of a
RepeatVector encoder-decoder).

A merge layer is called on a list of tensors of one shape (``Concatenate``: equal but for its
axis), has no weights, and passes on the AND of the masks that reach it (a timestep is real
where it is real in every input), as Keras does.
"""

from __future__ import annotations

from functools import reduce

import numpy as np

from .. import validation as V
from .base import Layer
from .symbolic import call_on_symbolic, is_symbolic


class _Merge(Layer):
    """Base: checks the inputs' shapes, combines masks, runs :meth:`_merge` and its
    derivative :meth:`_merge_backward` over a list of arrays."""

    def __init__(self, name=None, dtype="float32", backend=None, trainable=True):
        super().__init__(name=name if name is not None else _snake(type(self).__name__),
                         dtype=dtype, backend=backend, trainable=trainable)

    def __call__(self, inputs, mask=None, training=False):
        """On a list of symbolic tensors: the merged symbolic tensor. On a list of arrays: the
        merged array (NumPy)."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise TypeError(f"layer {self.name!r} ({type(self).__name__}) must be called on a "
                            f"list of at least 2 tensors; got {V.kind_of(inputs)}")
        if mask is not None:
            raise ValueError(f"layer {self.name!r}: masks travel with the data in a model; "
                             "a merge layer takes no mask argument")
        if is_symbolic(inputs):
            return call_on_symbolic(self, list(inputs))
        arrays = [V.as_float_array(x, f"{type(self).__name__} input {i}", self.dtype)
                  for i, x in enumerate(inputs)]
        self._check_shapes([(None,) + a.shape[1:] for a in arrays])
        return self._merge(np, arrays)

    def _check_shapes(self, shapes: list) -> tuple:
        """The output shape for inputs of ``shapes`` (each with its batch axis)."""
        first = shapes[0]
        for index, shape in enumerate(shapes[1:], 1):
            if len(shape) != len(first) or any(a is not None and b is not None and a != b
                                               for a, b in zip(shape[1:], first[1:])):
                raise ValueError(f"layer {self.name!r} ({type(self).__name__}) needs inputs of "
                                 f"one shape; input 0 has shape {first}, input {index} "
                                 f"{shape}")
        return first

    def _output_specs(self, inputs: list) -> list[tuple[tuple, str]]:
        for index, tensor in enumerate(inputs):
            if not tensor.dtype.startswith("float"):
                raise ValueError(f"layer {self.name!r} merges floating-point tensors; input "
                                 f"{index} is {tensor.dtype}")
        shape = self._check_shapes([tensor.shape for tensor in inputs])
        if not self.built:
            Layer.build(self, shape)
        return [(tuple(shape), self.dtype.name)]

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def _graph_forward(self, inputs: list, masks: list, training: bool, backend, rng):
        xp = backend.xp
        # the graph's shapes may leave sizes open (None): the arrays must agree all the same
        shapes = [tuple(a.shape) for a in inputs]
        if len({shape[0] for shape in shapes}) > 1:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) got inputs with "
                             f"different batch sizes: shapes {shapes}")
        self._check_shapes(shapes)
        out = self._merge(xp, inputs)
        return [out], [self._merge_masks(xp, masks, inputs)], (xp, inputs) if training else None

    def _merge_masks(self, xp, masks: list, inputs: list):
        """The mask of the output: a step is real where it is real in every input."""
        present = [m for m in masks if m is not None]
        return reduce(lambda a, b: a & b, present) if present else None

    def _graph_backward(self, pending, output_grads: list):
        xp, inputs = pending
        return self._merge_backward(xp, inputs, output_grads[0]), []

    def _merge(self, xp, arrays):
        raise NotImplementedError

    def _merge_backward(self, xp, arrays, grad) -> list:
        raise NotImplementedError

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("seed")
        return config


class Add(_Merge):
    """``sum(inputs)``, element by element."""

    def _merge(self, xp, arrays):
        return reduce(lambda a, b: a + b, arrays)

    def _merge_backward(self, xp, arrays, grad):
        return [grad for _ in arrays]


class Subtract(_Merge):
    """``inputs[0] - inputs[1]`` (exactly two inputs)."""

    def _check_shapes(self, shapes):
        if len(shapes) != 2:
            raise ValueError(f"layer {self.name!r} (Subtract) takes exactly 2 inputs; got "
                             f"{len(shapes)}")
        return super()._check_shapes(shapes)

    def _merge(self, xp, arrays):
        return arrays[0] - arrays[1]

    def _merge_backward(self, xp, arrays, grad):
        return [grad, -grad]


class Multiply(_Merge):
    """The product of the inputs, element by element."""

    def _merge(self, xp, arrays):
        return reduce(lambda a, b: a * b, arrays)

    def _merge_backward(self, xp, arrays, grad):
        grads = []
        for index in range(len(arrays)):
            others = [a for j, a in enumerate(arrays) if j != index]
            grads.append(reduce(lambda a, b: a * b, others, grad))
        return grads


class Average(_Merge):
    """The mean of the inputs, element by element."""

    def _merge(self, xp, arrays):
        return reduce(lambda a, b: a + b, arrays) / len(arrays)

    def _merge_backward(self, xp, arrays, grad):
        share = grad / len(arrays)
        return [share for _ in arrays]


class Concatenate(_Merge):
    """The inputs joined along ``axis`` (default the last, the features); every other axis
    must agree.

    Parameters
    ----------
    axis : int, default -1
    """

    def __init__(self, axis=-1, name=None, dtype="float32", backend=None, trainable=True):
        super().__init__(name=name, dtype=dtype, backend=backend, trainable=trainable)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"axis must be an integer; got {V.kind_of(axis)}")
        self.axis = axis

    def _check_shapes(self, shapes):
        rank = len(shapes[0])
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"layer {self.name!r} (Concatenate): axis must name a non-batch "
                             f"axis of the {rank}-D inputs; got axis={self.axis}")
        axis = self.axis % rank
        for index, shape in enumerate(shapes[1:], 1):
            if len(shape) != rank or any(
                    a is not None and b is not None and a != b
                    for k, (a, b) in enumerate(zip(shape, shapes[0])) if k not in (0, axis)):
                raise ValueError(f"layer {self.name!r} (Concatenate) needs inputs that agree "
                                 f"on every axis but {self.axis}; input 0 has shape "
                                 f"{shapes[0]}, input {index} {shape}")
        sizes = [shape[axis] for shape in shapes]
        joined = None if any(s is None for s in sizes) else sum(sizes)
        return tuple(shapes[0][:axis]) + (joined,) + tuple(shapes[0][axis + 1:])

    def _merge(self, xp, arrays):
        return xp.concatenate(arrays, axis=self.axis)

    def _merge_masks(self, xp, masks: list, inputs: list):
        """Joined along the timestep axis, the masks are joined too (an input without a mask
        counts as all real), as Keras does; along the features, a step is real where it is
        real in every input."""
        if inputs[0].ndim != 3 or self.axis % 3 != 1 or all(m is None for m in masks):
            return super()._merge_masks(xp, masks, inputs)
        return xp.concatenate([xp.ones(x.shape[:2], dtype=bool) if m is None else m
                               for m, x in zip(masks, inputs)], axis=1)

    def _merge_backward(self, xp, arrays, grad):
        grads, start = [], 0
        axis = self.axis % grad.ndim
        for array in arrays:
            stop = start + array.shape[axis]
            index = [slice(None)] * grad.ndim
            index[axis] = slice(start, stop)
            grads.append(grad[tuple(index)])
            start = stop
        return grads

    def get_config(self) -> dict:
        return {"axis": self.axis, **super().get_config()}


class RepeatVector(Layer):
    """``(batch, features) -> (batch, n, features)``: the input repeated ``n`` times along a
    new timestep axis.

    Parameters
    ----------
    n : int
        The number of timesteps.
    """

    def __init__(self, n, name=None, dtype="float32", backend=None, trainable=True):
        super().__init__(name=name if name is not None else "repeat_vector", dtype=dtype,
                         backend=backend, trainable=trainable)
        self.n = V.check_positive_int(n, "n", V.MAX_LAYER_SIZE)

    def weight_specs(self, input_shape) -> list[tuple[str, tuple]]:
        """None; checks that the input is 2-D (a loader builds through here too)."""
        if len(tuple(input_shape)) != 2:
            raise ValueError(f"layer {self.name!r} (RepeatVector) needs 2-D input (batch, "
                             f"features); got shape {tuple(input_shape)}")
        return []

    def build(self, input_shape) -> None:
        self.weight_specs(input_shape)
        super().build(input_shape)

    def _check_built_for(self, shape: tuple) -> None:
        self.build(shape)

    def compute_output_shape(self, input_shape) -> tuple:
        return (input_shape[0], self.n, input_shape[1])

    def compute_mask(self, mask, inputs=None):
        return None

    def forward(self, x, mask=None, training=False, backend=None, rng=None):
        xp = backend.xp
        self._cache = x.shape if training else None
        return xp.ascontiguousarray(xp.broadcast_to(x[:, None, :], (x.shape[0], self.n,
                                                                     x.shape[1])))

    def backward(self, grad):
        self.grads = []
        self._cache = None
        return grad.sum(axis=1)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("seed")
        return {"n": self.n, **config}


def _snake(name: str) -> str:
    """``Concatenate`` -> ``concatenate``, ``RepeatVector`` -> ``repeat_vector``."""
    return "".join("_" + c.lower() if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))

