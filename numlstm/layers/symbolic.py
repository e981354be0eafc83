"""Symbolic tensors: the graph a functional model is built from.

Calling a layer on a :class:`SymbolicTensor` (an :class:`Input`, or what an earlier call
returned) computes nothing: it builds the layer for the tensor's shape (as Keras does, so the
weights exist at once) and records a :class:`Node` -- the layer, the tensors it was called on
and the tensors it returns. :class:`numlstm.Model` walks these nodes back from its outputs to
its inputs; :class:`numlstm.Sequential` records the same nodes, one layer after another.

Nothing is stored on the layers: a tensor knows the node that made it, a node knows its
input tensors, so a layer can be called in several graphs (shared layers, an encoder used by
a training model and an inference model) without any bookkeeping going stale.
"""

from __future__ import annotations

from .. import validation as V

#: dtypes an :class:`Input` may carry: floats, or integer token ids for an Embedding.
INPUT_DTYPES = ("float32", "float64", "int32", "int64")


class SymbolicTensor:
    """A placeholder for the array a model graph will compute.

    Attributes
    ----------
    shape : tuple
        The full shape, batch axis first; None where any size is allowed.
    dtype : str
        "float32", "float64", or "int32"/"int64" (token ids).
    node : Node or None
        The layer call that produces it; None for an :class:`Input`.
    index : int
        Which of ``node``'s outputs it is.
    """

    def __init__(self, shape, dtype, node=None, index=0):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.node = node
        self.index = index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str:
        """``<layer name>`` for a layer's first output; its later ones are named by the layer
        (an LSTM's states ``<name>_h`` and ``<name>_c``, a Bidirectional's directions
        ``<name>_forward`` and ``<name>_backward``), so no output name can be read as another
        layer's generated name (``lstm_1``)."""
        layer = self.node.layer
        return layer.name + layer._output_suffix(self.index)

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype} from {self.name!r}>"

    # Arrays answer these; a symbolic tensor has no values yet, so say what to do instead.
    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic: it has no values until a model built on it "
                        "runs (numlstm.Model(inputs, outputs).predict(...))")


class Input(SymbolicTensor):
    """A model input: the symbolic tensor that layers are first called on (Keras's
    ``keras.Input``), and the optional first element of a :class:`~numlstm.Sequential`.

    Parameters
    ----------
    shape : tuple of int or None
        The shape of one sample, e.g. ``(timesteps, features)``; None for any length.
    batch_size : int, optional
        A fixed batch size (needed by ``stateful=True`` LSTMs).
    dtype : str, default "float32"
        "int32"/"int64" for token ids fed to an :class:`Embedding`.
    name : str, optional
        Names the input in a model (inputs given as a dict are matched by name); a model
        makes unnamed inputs unique (``input``, ``input_1``, ...).
    batch_shape : tuple, optional
        ``(batch_size,) + shape`` in one argument, instead of ``shape`` and ``batch_size``.

    Attributes
    ----------
    shape : tuple
        The full shape with the batch axis first, as Keras reports it: ``Input((5, 3)).shape
        == (None, 5, 3)``. :attr:`sample_shape` is the shape without it.
    """

    def __init__(self, shape=None, batch_size=None, dtype="float32", name=None,
                 batch_shape=None):
        if batch_shape is not None:
            if shape is not None or batch_size is not None:
                raise ValueError("give Input either batch_shape or shape (and batch_size), not "
                                 f"both; got shape={shape!r}, batch_size={batch_size!r}, "
                                 f"batch_shape={batch_shape!r}")
            if not isinstance(batch_shape, (tuple, list)) or len(batch_shape) < 2:
                raise TypeError("batch_shape must be a tuple (batch_size, ...) of at least two "
                                f"entries; got {batch_shape!r}")
            batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
        if not isinstance(shape, (tuple, list)) or not shape:
            raise TypeError(f"shape must be a non-empty tuple such as (timesteps, features); "
                            f"got {shape!r}")
        for i, dim in enumerate(shape):
            if dim is not None:
                V.check_positive_int(dim, f"shape[{i}]")
        batch_size = None if batch_size is None else V.check_positive_int(batch_size,
                                                                          "batch_size")
        if dtype not in INPUT_DTYPES:
            raise ValueError(f"dtype must be one of {list(INPUT_DTYPES)}; got {dtype!r}")
        super().__init__((batch_size,) + tuple(None if d is None else int(d) for d in shape),
                         dtype)
        self._name_given = name is not None
        self._name = V.check_string(name, "name") if name is not None else "input"

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value) -> None:
        self._name = V.check_string(value, "name")

    @property
    def sample_shape(self) -> tuple:
        """The shape of one sample (without the batch axis)."""
        return self.shape[1:]

    @property
    def batch_size(self):
        return self.shape[0]

    @property
    def batch_shape(self) -> tuple:
        return self.shape

    def get_config(self) -> dict:
        return {"shape": list(self.sample_shape), "batch_size": self.batch_size,
                "dtype": self.dtype, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "Input":
        config = dict(config)
        shape = config.pop("shape")
        if not isinstance(shape, (list, tuple)):
            raise TypeError(f"an Input's shape must be a list; got {V.kind_of(shape)}")
        return cls(tuple(shape), **config)

    def __repr__(self) -> str:
        return (f"Input(shape={self.sample_shape}, batch_size={self.batch_size}, "
                f"dtype={self.dtype!r}, name={self.name!r})")


class Node:
    """One call of ``layer`` in a graph: on the symbolic ``inputs`` (a flat list: the layer's
    main input(s), then an LSTM's ``initial_state``), returning ``outputs``."""

    __slots__ = ("layer", "inputs", "outputs")

    def __init__(self, layer, inputs: list):
        self.layer = layer
        self.inputs = list(inputs)
        self.outputs: list[SymbolicTensor] = []

    def __repr__(self) -> str:
        return (f"<Node {self.layer.name!r} on "
                f"{[tensor.name for tensor in self.inputs]}>")


def is_symbolic(value) -> bool:
    """Whether ``value`` is a symbolic tensor, or a list/tuple holding one."""
    if isinstance(value, SymbolicTensor):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(v, SymbolicTensor)
                                                   for v in value)


def call_on_symbolic(layer, inputs: list):
    """Record ``layer`` called on the symbolic ``inputs``: the layer checks them and builds
    itself (``layer._output_specs``); returns its output tensor, or the list of them for a
    layer with several outputs."""
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, SymbolicTensor):
            raise TypeError(f"layer {layer.name!r} was called on symbolic tensors mixed with "
                            f"{V.kind_of(tensor)} (input {position}): in a model graph every "
                            "input must come from an Input or another layer's output")
    specs = layer._output_specs(list(inputs))
    node = Node(layer, inputs)
    node.outputs = [SymbolicTensor(shape, dtype, node, index)
                    for index, (shape, dtype) in enumerate(specs)]
    return node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)
