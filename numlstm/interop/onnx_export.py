"""Deploy numlstm models through ONNX: a :class:`numlstm.Sequential` as an ONNX graph.

:func:`export_onnx` writes a graph that computes what ``model.predict`` computes, built on the
standard ONNX operators (the ``onnx`` package builds and checks it: extra ``numlstm[onnx]``):

===========================  ==================================================================
numlstm layer                ONNX
===========================  ==================================================================
LSTM                         ``LSTM`` (``direction="reverse"`` for ``go_backwards``)
Bidirectional(LSTM)          one ``LSTM`` with ``direction="bidirectional"``, then the merge
                             (``Concat``, ``Add``, ``Mul``, ``Add`` and ``Div`` by 2)
Dense                        ``MatMul``, ``Add``, then ``Relu``/``Sigmoid``/``Tanh``/``Softmax``
Embedding                    ``Gather`` of the embedding rows
Masking                      ``Equal``/``Not``/``ReduceMax`` for the mask, ``Mul`` to zero steps
Dropout                      nothing (inference)
===========================  ==================================================================

The graph has one input ``"input"`` — float32 ``(batch, timesteps, features)``, or int64 token
ids ``(batch, timesteps)`` for a model that starts with an Embedding — and one output
``"output"``; batch and timesteps are dynamic (named ``"batch"`` and ``"timesteps"``).

Weights
-------
numlstm keeps Keras's layout, gate blocks i, f, c, o with one bias; ONNX's ``LSTM`` wants
``W (directions, 4H, D)``, ``R (directions, 4H, H)`` and ``B (directions, 8H) = [Wb, Rb]`` with
the blocks in the order i, o, f, c::

    W = kernel[:, iofc].T      R = recurrent_kernel[:, iofc].T      B = [bias[iofc], 0]

where ``iofc`` selects numlstm's columns block by block. Activations ``[f, g, h]`` =
``[recurrent_activation, activation, activation]``: ``Sigmoid``, ``Tanh``, ``Relu``, ``Affine``
(alpha 1, beta 0) for linear, and ``HardSigmoid`` with alpha 1/6, beta 1/2 for Keras 3's
``hard_sigmoid`` or alpha 0.2, beta 0.5 for ``hard_sigmoid_keras2``.

Masks
-----
A mask from ``Masking`` or ``Embedding(mask_zero=True)`` is computed in the graph from the
input, so it may have any pattern — right padding, holes, empty rows — and the graph gives
numlstm's masked semantics exactly: a masked step is skipped (the state carries over) and its
output is the carried output (zeros before a row's first real step), or zero with
``zero_output_for_mask=True``. ONNX's ``LSTM`` only knows right padding (``sequence_lens``), so
each row's real steps are first gathered to its front, in order (a ``TopK`` over
``invalid·T + t``), the LSTM runs with ``sequence_lens`` = the number of real steps, and the
outputs are gathered back to the input positions: going forwards, position ``t`` takes the
output of compact step ``n(t) − 1`` where ``n(t)`` counts the real steps at or before ``t`` (the
carried output at a masked step; zero when ``n(t) = 0``); going backwards, compact step
``n(t) − valid(t)`` (the next real step's output, which is the last one processed; zero past the
last). For right-padded masks the gathers are identities and ``sequence_lens`` is the length.

Refused at export (``ValueError`` naming the layer and the reason): stateful LSTMs (an ONNX
graph keeps no state between runs), a Bidirectional whose two layers differ in units or go
the same way, float64 layers (ONNX Runtime has no float64 LSTM kernel, so such a graph could
not be verified or served there), and models above the 2 GB limit of one ONNX protobuf file.
At run time the graph needs at least one timestep (ONNX Runtime rejects an empty sequence).
"""

from __future__ import annotations

import numpy as np

from ..errors import MissingExtraError

__all__ = ["export_onnx", "build_onnx_model", "DEFAULT_OPSET"]

#: The ONNX opset written by default (the LSTM operator's newest version is 14).
DEFAULT_OPSET = 17
_MIN_OPSET = 14
_PROTOBUF_LIMIT = 2 ** 31 - 1

#: ONNX activation, alpha, beta for each numlstm activation (None: no parameters).
_ACTIVATIONS = {
    "sigmoid": ("Sigmoid", None, None),
    "tanh": ("Tanh", None, None),
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "hard_sigmoid_keras2": ("HardSigmoid", 0.2, 0.5),
}
_DENSE_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


def _import_onnx():
    try:
        import onnx
    except ImportError as error:
        raise MissingExtraError("onnx", "onnx", "numlstm ONNX export (export_onnx)",
                                module=error.name) from None
    return onnx


def _iofc(units: int) -> np.ndarray:
    """Column indices that reorder numlstm's gate blocks (i, f, c, o) to ONNX's (i, o, f, c)."""
    blocks = np.arange(4 * units).reshape(4, units)
    return blocks[[0, 3, 1, 2]].ravel()


class _Graph:
    """Collects nodes and initializers, naming every value uniquely."""

    def __init__(self, onnx, opset: int, dtype: np.dtype):
        self.onnx = onnx
        self.helper = onnx.helper
        self.opset = opset
        self.dtype = dtype
        self.float_type = onnx.helper.np_dtype_to_tensor_dtype(dtype)
        self.nodes = []
        self.initializers = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value, dtype=None) -> str:
        array = np.asarray(value, dtype=dtype if dtype is not None else self.dtype)
        name = self._name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, hint: str, values) -> str:
        return self.const(hint, np.asarray(values, np.int64), np.int64)

    def op(self, op_type: str, inputs, hint: str | None = None, outputs: int = 1,
           output_name: str | None = None, **attrs):
        names = [output_name] if output_name else \
            [self._name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names,
                                                name=self._name(f"node_{op_type}"), **attrs))
        return names[0] if outputs == 1 else names

    def as_float(self, value: str) -> str:
        return self.op("Cast", [value], to=self.float_type)

    def reduce_max(self, value: str, axis: int) -> str:
        # ReduceMax takes its axes as an attribute until opset 17, as an input from 18
        if self.opset >= 18:
            return self.op("ReduceMax", [value, self.ints("axes", [axis])], keepdims=0)
        return self.op("ReduceMax", [value], axes=[axis], keepdims=0)

    def unsqueeze(self, value: str, axis: int) -> str:
        return self.op("Unsqueeze", [value, self.ints("axes", [axis])])

    def take(self, value: str, index: int, axis: int) -> str:
        """``value`` at ``index`` along ``axis`` (the axis removed); negative indices count
        from the end."""
        return self.op("Gather", [value, self.const("index", np.int64(index), np.int64)],
                       axis=axis)

    def gather_steps(self, sequence: str, steps: str) -> str:
        """``sequence[b, steps[b, t], :]`` for a (batch, timesteps, n) sequence."""
        index = self.op("Expand", [self.unsqueeze(steps, 2), self.op("Shape", [sequence])])
        return self.op("GatherElements", [sequence, index], axis=1)

    def reverse_time(self, sequence: str) -> str:
        int64 = np.iinfo(np.int64)
        return self.op("Slice", [sequence, self.ints("starts", [-1]),
                                 self.ints("ends", [int64.min]), self.ints("axes", [1]),
                                 self.ints("steps", [-1])])


class _MaskPlan:
    """What a masked LSTM needs, computed once per mask: the compacting order, the number of
    real steps per row and the running count of real steps."""

    def __init__(self, graph: _Graph, mask: str, x: str):
        g = graph
        valid = g.op("Cast", [mask], to=g.onnx.TensorProto.INT64)                  # (B, T)
        timesteps = g.op("Slice", [g.op("Shape", [x]), g.ints("start", [1]),
                                   g.ints("end", [2])])                              # [T]
        positions = g.op("Range", [g.const("zero", np.int64(0), np.int64),
                                   g.op("Squeeze", [timesteps]),
                                   g.const("one", np.int64(1), np.int64)])           # (T,)
        invalid = g.op("Sub", [g.const("one", np.int64(1), np.int64), valid])
        # real steps first, each group in time order: sort invalid·T + t ascending
        key = g.op("Add", [g.op("Mul", [invalid, timesteps]), positions])
        _, self.order = g.op("TopK", [key, timesteps], outputs=2, axis=1, largest=0,
                             sorted=1)
        self.valid = valid
        self.count = g.op("ReduceSum", [valid, g.ints("axes", [1])], keepdims=0)   # (B,)
        self.count_so_far = g.op("CumSum", [valid, g.const("axis", np.int64(1), np.int64)])
        self.float_valid = g.unsqueeze(g.as_float(mask), 2)                         # (B,T,1)
        self.last_step = g.op("Sub", [g.op("Squeeze", [timesteps]),
                                      g.const("one", np.int64(1), np.int64)])
        # a row with no real step has length 0: ONNX Runtime accepts it, and every one of its
        # outputs is replaced by zero in expand()
        self.sequence_lens = g.op("Cast", [self.count], to=g.onnx.TensorProto.INT32)

    def compact(self, graph: _Graph, x: str) -> str:
        return graph.gather_steps(x, self.order)

    def expand(self, graph: _Graph, outputs: str, reverse: bool, zero_output: bool) -> str:
        """Outputs at compact positions -> numlstm's outputs at the input positions."""
        g = graph
        if reverse:
            source = g.op("Sub", [self.count_so_far, self.valid])
            exists = g.op("Less", [source, g.unsqueeze(self.count, 1)])
            source = g.op("Min", [source, self.last_step])
        else:
            zero = g.const("zero", np.int64(0), np.int64)
            source = g.op("Sub", [self.count_so_far, g.const("one", np.int64(1), np.int64)])
            exists = g.op("Greater", [self.count_so_far, zero])
            source = g.op("Max", [source, zero])
        result = g.op("Mul", [g.gather_steps(outputs, source),
                              g.unsqueeze(g.as_float(exists), 2)])
        if zero_output:
            result = g.op("Mul", [result, self.float_valid])
        return result


def _activation_attributes(layers) -> dict:
    """``activations`` ``[f, g, h]`` per direction and, where some need them,
    ``activation_alpha``/``activation_beta``: one entry per activation that takes parameters
    (Affine, HardSigmoid), in the order of the activations -- how ONNX Runtime reads the lists
    (an entry for Sigmoid, Tanh or Relu would shift every later one: measured)."""
    names, alphas, betas = [], [], []
    for layer in layers:
        for activation in (layer.recurrent_activation, layer.activation, layer.activation):
            onnx_name, alpha, beta = _ACTIVATIONS[activation]
            names.append(onnx_name)
            if alpha is not None:
                alphas.append(alpha)
                betas.append(beta)
    attributes = {"activations": names}
    if alphas:
        attributes["activation_alpha"] = alphas
        attributes["activation_beta"] = betas
    return attributes


def _lstm(graph: _Graph, layers, x: str, mask_plan, name: str) -> list:
    """One ONNX LSTM over the numlstm LSTM ``layers`` (one, or a forward and a backward);
    returns each layer's outputs (batch, timesteps, units) aligned with the input positions."""
    g = graph
    units = layers[0].units
    order = _iofc(units)
    w, r, b = [], [], []
    for layer in layers:
        w.append(layer.kernel[:, order].T)
        r.append(layer.recurrent_kernel[:, order].T)
        bias = layer.bias[order] if layer.use_bias else np.zeros(4 * units, g.dtype)
        b.append(np.concatenate([bias, np.zeros(4 * units, g.dtype)]))
    direction = "bidirectional" if len(layers) == 2 else \
        ("reverse" if layers[0].go_backwards else "forward")
    inputs = x if mask_plan is None else mask_plan.compact(g, x)
    time_major = g.op("Transpose", [inputs], perm=[1, 0, 2])
    lstm_inputs = [time_major, g.const(f"{name}_W", np.stack(w)),
                   g.const(f"{name}_R", np.stack(r)), g.const(f"{name}_B", np.stack(b))]
    if mask_plan is not None:
        lstm_inputs.append(mask_plan.sequence_lens)
    y = g.op("LSTM", lstm_inputs, hint=f"{name}_Y", hidden_size=units, direction=direction,
             **_activation_attributes(layers))                      # (T, dirs, B, H)
    per_direction = g.op("Transpose", [y], perm=[1, 2, 0, 3])          # (dirs, B, T, H)
    outputs = []
    for index, layer in enumerate(layers):
        sequence = g.take(per_direction, index, 0)
        if mask_plan is not None:
            sequence = mask_plan.expand(g, sequence, layer.go_backwards,
                                        layer.zero_output_for_mask)
        outputs.append(sequence)
    return outputs


def _last_or_sequence(graph: _Graph, layer, aligned: str, keep_alignment: bool) -> str:
    """The layer's output from its aligned outputs, as numlstm returns it."""
    if not layer.return_sequences:
        # the output of the last step processed: position 0 when going backwards
        return graph.take(aligned, 0 if layer.go_backwards else -1, 1)
    if layer.go_backwards and not keep_alignment:
        return graph.reverse_time(aligned)          # numlstm returns processing order
    return aligned


def _check_exportable(model, layers_module) -> np.dtype:
    """Refuse what the graph cannot express, before building anything; returns the dtype."""
    LSTM, Bidirectional = layers_module.LSTM, layers_module.Bidirectional
    dtypes = set()
    for layer in model.layers:
        dtypes.add(np.dtype(layer.dtype))
        inner = [layer.forward_layer, layer.backward_layer] if isinstance(
            layer, Bidirectional) else [layer] if isinstance(layer, LSTM) else []
        for lstm in inner:
            for activation in (lstm.activation, lstm.recurrent_activation):
                if activation not in _ACTIVATIONS:
                    raise ValueError(f"layer {layer.name!r}: the activation {activation!r} has "
                                     f"no ONNX LSTM export; exportable: "
                                     f"{sorted(_ACTIVATIONS)}")
            if lstm.stateful:
                raise ValueError(f"layer {layer.name!r} is stateful: an ONNX graph keeps no "
                                 "state between runs, so it cannot be exported; export a copy "
                                 "with stateful=False (its outputs equal the stateful layer's "
                                 "right after reset_states())")
        if isinstance(layer, layers_module.Dense) and layer.activation not in (
                "linear", "softmax", *_DENSE_OPS):
            raise ValueError(f"layer {layer.name!r}: the Dense activation "
                             f"{layer.activation!r} has no ONNX export here; exportable: "
                             f"{sorted(['linear', 'softmax', *_DENSE_OPS])}")
        if isinstance(layer, Bidirectional):
            forward, backward = layer.forward_layer, layer.backward_layer
            if forward.units != backward.units or forward.go_backwards == \
                    backward.go_backwards:
                raise ValueError(f"layer {layer.name!r}: ONNX's bidirectional LSTM needs two "
                                 "directions of the same units going opposite ways; got "
                                 f"units {forward.units}/{backward.units}, go_backwards "
                                 f"{forward.go_backwards}/{backward.go_backwards}")
            if forward.return_sequences != backward.return_sequences:
                raise ValueError(f"layer {layer.name!r}: its two directions differ in "
                                 "return_sequences")
    if dtypes != {np.dtype(np.float32)}:
        raise ValueError(f"ONNX export writes float32 graphs; the model's layers are "
                         f"{sorted(d.name for d in dtypes)} (ONNX Runtime's LSTM has no float64 "
                         "kernel: 'LSTM operator does not support double yet')")
    return np.dtype(np.float32)


def build_onnx_model(model, *, opset: int = DEFAULT_OPSET):
    """The ONNX ``ModelProto`` of a built :class:`numlstm.Sequential` (see the module
    docstring for the graph). Raises ``ValueError`` for what ONNX export refuses."""
    from .. import layers as L
    from .. import validation as V
    from ..models import Sequential
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a numlstm.Sequential; got {type(model).__name__}")
    opset = V.check_int_at_least(opset, "opset", _MIN_OPSET)
    onnx = _import_onnx()
    model._require_built()
    if len(model.outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.outputs)} outputs (its last "
                         "layer returns states or both directions); ONNX export writes models "
                         "with one output")
    dtype = _check_exportable(model, L)
    g = _Graph(onnx, opset, dtype)
    helper = onnx.helper

    token_input = isinstance(model.layers[0], L.Embedding)
    if token_input:
        input_type = onnx.TensorProto.INT64
        input_shape = ["batch", "timesteps"]
    else:
        input_type = g.float_type
        input_shape = ["batch", "timesteps", model.input_shape[-1]]
    x, mask, mask_plan = "input", None, None
    for layer in model.layers:
        if isinstance(layer, L.Embedding):
            ids = x
            x = g.op("Gather", [g.const(f"{layer.name}_embeddings", layer.embeddings), ids],
                     axis=0)
            if layer.mask_zero:
                own = g.op("Not", [g.op("Equal", [ids, g.const("pad", np.int64(0),
                                                               np.int64)])])
                mask = own if mask is None else g.op("And", [mask, own])
                mask_plan = None
        elif isinstance(layer, L.Masking):
            differs = g.op("Not", [g.op("Equal", [x, g.const("mask_value", layer.mask_value)])])
            own = g.op("Cast", [g.reduce_max(g.as_float(differs), 2)], to=onnx.TensorProto.BOOL)
            mask = own if mask is None else g.op("And", [mask, own])
            mask_plan = None
            x = g.op("Mul", [x, g.unsqueeze(g.as_float(mask), 2)])
        elif isinstance(layer, L.Dropout):
            continue                               # the identity at inference
        elif isinstance(layer, L.Dense):
            y = g.op("MatMul", [x, g.const(f"{layer.name}_kernel", layer.kernel)])
            if layer.use_bias:
                y = g.op("Add", [y, g.const(f"{layer.name}_bias", layer.bias)])
            if layer.activation == "softmax":
                y = g.op("Softmax", [y], axis=-1)
            elif layer.activation in _DENSE_OPS:
                y = g.op(_DENSE_OPS[layer.activation], [y])
            x = y
        elif isinstance(layer, (L.LSTM, L.Bidirectional)):
            if mask is not None and mask_plan is None:
                mask_plan = _MaskPlan(g, mask, x)
            if isinstance(layer, L.LSTM):
                aligned, = _lstm(g, [layer], x, mask_plan, layer.name)
                x = _last_or_sequence(g, layer, aligned, keep_alignment=False)
            else:
                forward, backward = layer.forward_layer, layer.backward_layer
                pair = [forward, backward] if not forward.go_backwards else [backward, forward]
                outputs = dict(zip((id(pair[0]), id(pair[1])),
                                   _lstm(g, pair, x, mask_plan, layer.name)))
                y_f = _last_or_sequence(g, forward, outputs[id(forward)], True)
                y_b = _last_or_sequence(g, backward, outputs[id(backward)], True)
                x = _merge(g, layer.merge_mode, y_f, y_b)
            if not layer.return_sequences:
                mask, mask_plan = None, None
        else:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has no ONNX "
                             "export")
    g.op("Identity", [x], output_name="output")
    output_shape = ["batch"] + (["timesteps"] if len(model.output_shape) == 3 else []) + \
        [model.output_shape[-1]]
    graph = helper.make_graph(
        g.nodes, model.name, [helper.make_tensor_value_info("input", input_type, input_shape)],
        [helper.make_tensor_value_info("output", g.float_type, output_shape)],
        initializer=g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="numlstm",
                              ir_version=helper.find_min_ir_version_for(opsets))
    from .. import __version__
    proto.producer_version = __version__
    return proto


def _merge(graph: _Graph, mode: str, y_f: str, y_b: str) -> str:
    if mode == "concat":
        return graph.op("Concat", [y_f, y_b], axis=-1)
    if mode == "sum":
        return graph.op("Add", [y_f, y_b])
    if mode == "mul":
        return graph.op("Mul", [y_f, y_b])
    if mode == "ave":
        return graph.op("Div", [graph.op("Add", [y_f, y_b]), graph.const("two", 2.0)])
    raise ValueError(f"Bidirectional merge_mode {mode!r} has no ONNX export (a Sequential "
                     "model has one output)")


def export_onnx(model, path, *, opset: int = DEFAULT_OPSET):
    """Write ``model`` to ``path`` as an ONNX model (atomically); returns the path.

    Parameters
    ----------
    model : numlstm.Sequential
        A built model (LSTM, Bidirectional, Dense, Dropout, Masking and Embedding layers).
    path : str or os.PathLike
        The ``.onnx`` file to write; its folder must exist.
    opset : int ≥ 14, default :data:`DEFAULT_OPSET`

    Notes
    -----
    The graph's input ``"input"`` is float ``(batch, timesteps, features)`` (int64 token ids
    ``(batch, timesteps)`` for an Embedding model), its output ``"output"`` is what
    ``model.predict`` returns; batch and timesteps (≥ 1) are dynamic. The model is checked
    with ``onnx.checker`` (full check, with shape inference) before it is written.

    Raises
    ------
    ValueError
        For what ONNX export refuses (see the module docstring), naming the layer.
    MissingExtraError
        When onnx is not installed (``pip install "numlstm[onnx]"``).
    """
    from ..archive import write_file_atomically
    proto = build_onnx_model(model, opset=opset)
    onnx = _import_onnx()
    size = proto.ByteSize()
    if size > _PROTOBUF_LIMIT:
        raise ValueError(f"the model's ONNX graph would be {size} bytes, above the 2 GB limit "
                         "of one ONNX file")
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    return write_file_atomically(path, lambda handle: handle.write(data))
