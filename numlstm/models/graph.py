"""The layer graph a model runs: the nodes between its inputs and outputs, in order, and the
forward and backward passes over them.

One implementation serves both model kinds: a :class:`~numlstm.Model` built from ``Input``
tensors and layer calls, and a :class:`~numlstm.Sequential` (a chain of the same nodes).

Forward: every node runs after the nodes that produce its inputs; each tensor's value and
mask are kept by the tensor's identity. Masks travel with the data, as in Keras: a layer
receives the masks of its inputs and says (``compute_mask``) which mask its outputs carry.
Floating inputs are cast to each layer's dtype as they enter it.

Backward: nodes in reverse order. A tensor used by several nodes receives the sum of their
gradients; an output that no loss reaches (say, an LSTM's unused final state) receives zeros,
and a node none of whose outputs is reached is skipped. A layer called at several nodes (a
shared layer) is differentiated once per call, from the record that call kept, and its weight
gradients are summed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import validation as V
from ..layers.base import to_xp
from ..layers.symbolic import Input, SymbolicTensor


class Graph:
    """The nodes that compute ``outputs`` from ``inputs``.

    Parameters
    ----------
    inputs : list of Input
    outputs : list of SymbolicTensor

    Attributes
    ----------
    nodes : list of Node
        Every node needed for the outputs, each after the nodes producing its inputs.
    layers : list of Layer
        Each layer once, in the order of its first node.
    """

    def __init__(self, inputs: list, outputs: list):
        check_inputs(inputs)
        for index, tensor in enumerate(outputs):
            if not isinstance(tensor, SymbolicTensor):
                raise TypeError(f"outputs must be symbolic tensors (what calling layers on "
                                f"Inputs returns); output {index} is {V.kind_of(tensor)}")
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.nodes = self._order_nodes()
        self.layers = []
        seen = set()
        for node in self.nodes:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                self.layers.append(node.layer)
        apply_names(self.layers, unique_names(self.layers, "layers"))

    def _order_nodes(self) -> list:
        """Depth-first from the outputs back to the inputs (without recursion: a long chain
        must not hit Python's recursion limit)."""
        input_ids = {id(t) for t in self.inputs}
        ordered, done, on_path = [], set(), set()
        for output in self.outputs:
            stack = [(output, False)]
            while stack:
                tensor, expanded = stack.pop()
                if id(tensor) in input_ids:
                    continue
                node = tensor.node
                if node is None:
                    raise ValueError(f"the graph is disconnected: output {output!r} needs "
                                     f"Input {tensor.name!r}, which is not among the model's "
                                     f"inputs {[t.name for t in self.inputs]}")
                if id(node) in done:
                    continue
                if expanded:
                    on_path.discard(id(node))
                    done.add(id(node))
                    ordered.append(node)
                    continue
                if id(node) in on_path:
                    continue
                on_path.add(id(node))
                stack.append((tensor, True))
                stack.extend((t, False) for t in reversed(node.inputs))
        used = {id(t) for node in ordered for t in node.inputs} | {id(t) for t in self.outputs}
        for tensor in self.inputs:
            if id(tensor) not in used:
                raise ValueError(f"Input {tensor.name!r} is not used to compute any of the "
                                 "model's outputs")
        return ordered

    def nodes_of(self, layer) -> list:
        return [node for node in self.nodes if node.layer is layer]

    # -- running --------------------------------------------------------------------------------
    def forward(self, arrays: list, training: bool, backend, rng=None) -> "Pass":
        """Run every node on ``arrays`` (one per input, in ``backend.xp``); in training, keep
        what :meth:`backward` needs."""
        values, masks = {}, {}
        for tensor, array in zip(self.inputs, arrays):
            values[id(tensor)], masks[id(tensor)] = to_xp(backend, array), None
        records = []
        penalty, seeds = 0.0, []
        for node in self.nodes:
            layer = node.layer
            inputs = []
            for tensor in node.inputs:
                value = values[id(tensor)]
                if value.dtype.kind == "f" and value.dtype != layer.dtype:
                    value = value.astype(layer.dtype)
                inputs.append(value)
            outputs, out_masks, pending = layer._graph_forward(
                inputs, [masks[id(t)] for t in node.inputs], training, backend, rng)
            for tensor, value, mask in zip(node.outputs, outputs, out_masks):
                values[id(tensor)], masks[id(tensor)] = value, mask
            if getattr(layer, "activity_regularizer", None) is not None:
                penalty += _activity_penalty(layer.activity_regularizer, node.outputs,
                                             outputs, seeds if training else None)
            if training:
                records.append(_NodeRecord(node, pending,
                                           [(tuple(v.shape), v.dtype) for v in outputs]))
        outputs = [values[id(t)] for t in self.outputs]
        output_masks = []
        for tensor, value in zip(self.outputs, outputs):
            mask = masks[id(tensor)]
            # A mask is reported only where it matches a sequence output's (batch, timesteps).
            if mask is not None and value.ndim == 3 and tuple(mask.shape) == tuple(
                    value.shape[:2]):
                output_masks.append(np.asarray(backend.to_numpy(mask), dtype=bool))
            else:
                output_masks.append(None)
        return Pass(outputs, output_masks, records, backend, penalty, seeds)

    def backward(self, run: "Pass", output_grads: list) -> tuple[dict, list]:
        """Back-propagate ``output_grads`` (one per output, None for an output no loss
        reaches) through ``run``; returns ``({id(layer): weight grads}, input grads)``."""
        xp = run.backend.xp
        grads: dict[int, Any] = {}
        for tensor, grad in zip(self.outputs, output_grads):
            if grad is not None:
                _accumulate(grads, tensor, grad)
        for tensor, grad in run.activity_grads:      # activity regularizers' gradients
            _accumulate(grads, tensor, grad)
        layer_grads: dict[int, list] = {}
        for record in reversed(run.records):
            node = record.node
            out_grads = [grads.pop(id(t), None) for t in node.outputs]
            if all(g is None for g in out_grads):
                continue
            out_grads = [xp.zeros(shape, dtype) if g is None else g
                         for g, (shape, dtype) in zip(out_grads, record.output_specs)]
            in_grads, weight_grads = node.layer._graph_backward(record.pending, out_grads)
            summed = layer_grads.get(id(node.layer))
            layer_grads[id(node.layer)] = (list(weight_grads) if summed is None else
                                           [a + b for a, b in zip(summed, weight_grads)])
            for tensor, grad in zip(node.inputs, in_grads):
                if grad is not None:
                    _accumulate(grads, tensor, grad)
        return layer_grads, [grads.get(id(t)) for t in self.inputs]


def check_inputs(inputs: list) -> None:
    """A model's inputs: distinct :class:`Input` tensors."""
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, Input):
            raise TypeError(f"inputs must be numlstm.Input tensors (an Input or a list of "
                            f"them); input {index} is {V.kind_of(tensor)}")
    if len({id(t) for t in inputs}) != len(inputs):
        raise ValueError("inputs lists the same Input twice")


def name_is_fixed(item) -> bool:
    """Whether ``item``'s name may no longer change: the caller gave it, or a model has
    already named it (renaming it then would change that model's layer or input names)."""
    return getattr(item, "_name_given", True) or getattr(item, "_name_fixed", False)


def unique_names(items: list, what: str) -> list:
    """The names ``items`` (layers or Inputs) get in one model, as Keras names them: a
    generated name that repeats gets a ``_1``, ``_2`` suffix (``lstm``, ``lstm_1``), a fixed
    name (:func:`name_is_fixed`) never changes, and two fixed names must differ. Changes
    nothing: :func:`apply_names` does."""
    taken = {}
    for item in items:
        if name_is_fixed(item):
            if taken.setdefault(item.name, item) is not item:
                raise ValueError(f"two different {what} of the model are named {item.name!r}; "
                                 f"names must be unique within a model (give one of them "
                                 f"another name=)")
    names = []
    for item in items:
        name = item.name
        if not name_is_fixed(item):
            if name in taken:
                index = 1
                while f"{name}_{index}" in taken:
                    index += 1
                name = f"{name}_{index}"
            taken[name] = item
        names.append(name)
    return names


def apply_names(items: list, names: list) -> None:
    """Give ``items`` the ``names`` :func:`unique_names` chose, and fix them."""
    for item, name in zip(items, names):
        if item.name != name:
            item.name = name
        item._name_fixed = True


def _activity_penalty(regularizer, tensors, values, seeds) -> float:
    """Keras 3's activity regularization of one call: ``regularizer(output) / batch`` summed
    over the call's floating outputs; with ``seeds`` (training) each output's gradient
    ``regularizer'(output) / batch`` is appended to it as ``(tensor, grad)``."""
    total = 0.0
    for tensor, value in zip(tensors, values):
        if value.dtype.kind != "f":
            continue
        batch = value.shape[0] if value.ndim else 1
        if batch == 0:                         # Keras divides "no NaN": an empty batch adds 0
            continue
        total += regularizer.penalty(value) / batch
        if seeds is not None:
            seeds.append((tensor, regularizer.gradient(value) / value.dtype.type(batch)))
    return total


def _accumulate(grads: dict, tensor, grad) -> None:
    """Add ``grad`` to what ``tensor`` has received, in the tensor's dtype."""
    if tensor.dtype.startswith("float") and grad.dtype != np.dtype(tensor.dtype):
        grad = grad.astype(tensor.dtype)
    previous = grads.get(id(tensor))
    grads[id(tensor)] = grad if previous is None else previous + grad


class _NodeRecord(NamedTuple):
    node: Any
    pending: Any                 # what the layer's _graph_backward needs for this call
    output_specs: list           # [(shape, dtype)] of the outputs: zeros for unreached ones


class Pass(NamedTuple):
    """One forward pass over a graph."""

    outputs: list                # one backend array per model output
    masks: list                  # host bool (batch, timesteps) per sequence output, or None
    records: list                # per node, in training
    backend: Any
    activity_penalty: float = 0.0  # the activity regularizers' added loss (Keras 3's)
    activity_grads: list = []    # [(tensor, its gradient)] of those penalties, in training
