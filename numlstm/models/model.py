"""``Model``: a graph of layers from ``Input`` tensors to outputs, with Keras's compile / fit /
evaluate / predict, the model and layer API, saving and loading.

Build one as in Keras's functional API::

    encoder_inputs = numlstm.Input((None, 16))
    _, h, c = numlstm.LSTM(64, return_state=True)(encoder_inputs)
    decoder_inputs = numlstm.Input((None, 12))
    sequence = numlstm.LSTM(64, return_sequences=True)(decoder_inputs, initial_state=[h, c])
    outputs = numlstm.Dense(12, activation="softmax")(sequence)
    model = numlstm.Model([encoder_inputs, decoder_inputs], outputs)

The model owns the training loop: each batch runs the graph forward (keeping what the
backward pass needs, per node), every output's loss and gradient, the graph backward, and one
optimizer update of the trainable weights. One backend runs the whole model (``backend=``, or
the backend in use at call time); the weights live on the host, so :meth:`Model.set_backend`
moves a trained model to another backend with identical weights.

:class:`~numlstm.Sequential` is the same class over a chain of nodes.

Reproducibility: the model's ``seed`` seeds the generator that shuffles batches and draws
dropout masks (and, in a ``Sequential``, every layer that has no seed of its own). The same
seed on the same backend gives the same training run; the generator's state is saved with the
model, so training resumed from a file continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings

import numpy as np

from .. import callbacks as C
from .. import distributed as _distributed
from .. import losses as L
from .. import metrics as M
from .. import optimizers as O
from .. import validation as V
from ..backends import BACKEND_NAMES, current_backend_name, get_backend
from ..layers import Bidirectional, Embedding, LSTM
from ..layers.base import to_xp
from ..layers.symbolic import Input, is_symbolic
from ..progress import EpochProgress
from .graph import Graph, apply_names, check_inputs, unique_names


class Model:
    """A model: the layers that compute ``outputs`` from ``inputs``.

    Parameters
    ----------
    inputs : Input or list of Input
    outputs : SymbolicTensor or list of them
        What calling layers on the inputs returned. With a list, ``predict`` returns a list
        of arrays, and ``compile`` takes a loss (and metrics) per output.
    name : str, default "model"
    backend : str, optional
        The backend that runs the model; None: the one in use at call time.
    seed : int ≥ 0, optional
        Seeds the training generator (shuffling, dropout). None draws a random seed.

    Notes
    -----
    The layers are built when they are called on the inputs, so the model's weights exist at
    once: ``get_weights``, ``count_params`` and ``summary`` work before any data is seen.

    Inputs given as a dict to ``fit``/``predict`` are matched by input name, targets given
    as a dict by output name (the name of the layer that produces the output; an LSTM's
    states are ``<name>_h`` and ``<name>_c``; the same tensor listed twice: ``<name>_1``).
    """

    def __init__(self, inputs=None, outputs=None, name="model", backend=None, seed=None):
        self._setup(name, backend, seed)
        if inputs is None or outputs is None:
            raise TypeError("Model needs inputs= and outputs=: Model(inputs, outputs), with "
                            "inputs made by numlstm.Input and outputs by calling layers on "
                            "them (or use numlstm.Sequential for a stack of layers)")
        for argument, value in (("inputs", inputs), ("outputs", outputs)):
            if isinstance(value, dict):
                raise TypeError(f"{argument} must be a tensor or a list of them; got a dict "
                                "(inputs given as a dict to fit/predict are matched by the "
                                "Inputs' names)")
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        inputs = [inputs] if self._single_input else list(inputs)
        outputs = [outputs] if self._single_output else list(outputs)
        if not inputs or not outputs:
            raise ValueError("a Model needs at least one input and one output")
        check_inputs(inputs)
        input_names = unique_names(inputs, "inputs")
        graph = Graph(inputs, outputs)
        apply_names(inputs, input_names)
        self._set_graph(graph)

    def _setup(self, name, backend, seed) -> None:
        """What every model has, before its graph."""
        self._backend_name = None if backend is None else V.check_name(backend, "backend",
                                                                       BACKEND_NAMES)
        self.seed = V.check_seed(seed)
        self._seed = self.seed if self.seed is not None else int(
            np.random.SeedSequence().generate_state(1)[0])
        self._train_rng = np.random.default_rng([self._seed, 1])
        self.name = V.check_string(name, "name")
        self._graph: Graph | None = None
        self._trainable = True
        self.compiled = False
        self.optimizer = None
        self._targets: list[_OutputTarget] = []
        self._compile_arguments = None
        self.stop_training = False
        self.history = None

    def _set_graph(self, graph: Graph) -> None:
        self._graph = graph
        names = [tensor.name for tensor in graph.outputs]
        self._output_names = _unique_names(names)
        if self.compiled:
            self._resolve_targets()

    # -- structure ----------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self._graph is not None

    def _require_built(self) -> Graph:
        if self._graph is None:
            raise ValueError(f"model {self.name!r} is not built yet: give it an Input first, "
                             "or call build(input_shape), fit or predict")
        return self._graph

    @property
    def layers(self) -> list:
        """The model's layers, each once, in the order the graph first uses them (the
        ``Input`` tensors are not layers and are not listed: see :attr:`inputs`)."""
        return list(self._require_built().layers)

    @property
    def inputs(self) -> list:
        return list(self._require_built().inputs)

    @property
    def outputs(self) -> list:
        return list(self._require_built().outputs)

    @property
    def input_names(self) -> list[str]:
        return [tensor.name for tensor in self.inputs]

    @property
    def output_names(self) -> list[str]:
        self._require_built()
        return list(self._output_names)

    @property
    def input_shape(self):
        """The input's shape with the batch axis (a list of them for several inputs)."""
        shapes = [tensor.shape for tensor in self.inputs]
        return shapes[0] if self._single_input else shapes

    @property
    def output_shape(self):
        shapes = [tensor.shape for tensor in self.outputs]
        return shapes[0] if self._single_output else shapes

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or at position ``index`` of :attr:`layers`."""
        if (name is None) == (index is None):
            raise ValueError(f"get_layer needs exactly one of name= or index=; got name={name!r}"
                             f", index={index!r}")
        layers = self.layers
        if index is not None:
            index = V.check_int_at_least(index, "index", -len(layers), len(layers) - 1) \
                if layers else V.check_int_at_least(index, "index", 0, -1)
            return layers[index]
        V.check_string(name, "name")
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"model {self.name!r} has no layer named {name!r}; its layers are "
                         f"{[layer.name for layer in layers]}")

    def _all_layers(self):
        """Every layer, with a Bidirectional's two directions after it."""
        for layer in self.layers:
            yield layer
            if isinstance(layer, Bidirectional):
                yield layer.forward_layer
                yield layer.backward_layer

    # -- backends -----------------------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        """The backend the model runs on."""
        return self._backend_name if self._backend_name is not None else current_backend_name()

    def set_backend(self, name) -> None:
        """Run the model on backend ``name`` from now on (None: the one in use at call time);
        the weights are unchanged."""
        if name is not None:
            V.check_name(name, "backend", BACKEND_NAMES)
            get_backend(name)                        # raises if it cannot run here
        self._backend_name = name
        if self.built:
            for layer in self._all_layers():
                layer.backend = name
                layer._weights_changed()

    def _backend(self):
        return get_backend(self._backend_name)

    @property
    def _distribution(self):
        """numlstm.distributed's strategy while ``numlstm.distributed.init()`` is in effect,
        else None (one process): fit, the train step and saving consult it."""
        return _distributed.active()

    # -- weights ------------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        """False freezes every weight of the model. Setting it sets every layer's
        ``trainable`` too (as Keras does), so a layer can then be unfrozen on its own -- but
        while the model itself is frozen, none of its weights train."""
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = V.check_bool(value, "trainable")
        if self.built:
            for layer in self.layers:
                layer.trainable = self._trainable

    @property
    def weights(self) -> list[np.ndarray]:
        """Every live weight array, layer by layer (the order of :meth:`get_weights`)."""
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        if not self._trainable:
            return []
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        if not self._trainable:
            return self.weights
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight array, layer by layer."""
        self._require_built()
        return [w.copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        """Replace every weight (the list :meth:`get_weights` returns); all are checked before
        any is replaced."""
        layers = self.layers
        weights = V.check_weight_list(weights, sum(len(layer.weights) for layer in layers))
        pending, position = [], 0
        for layer in layers:
            n = len(layer.weights)
            if n:
                pending.append((layer, layer.check_weights(list(weights[position:
                                                                        position + n]))))
            position += n
        for layer, checked in pending:
            layer.install_weights(checked)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def reset_states(self) -> None:
        """Zero the carried states of every stateful layer."""
        for layer in self.layers:
            if isinstance(layer, LSTM) and layer.stateful:
                layer.reset_states()

    def reset_state(self) -> None:
        """:meth:`reset_states` (Keras 3's name)."""
        self.reset_states()

    # -- compile ------------------------------------------------------------------------------
    def compile(self, optimizer="adam", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None) -> None:
        """Choose the optimizer (name or object), the loss and the metrics.

        ``loss``: a name or Loss object (every output), a list (one per output) or a dict by
        output name (outputs left out are not trained). ``loss_weights``: a list or dict of
        floats; the loss minimised is ``sum(weight * loss)`` over the outputs. ``metrics``: a
        list of names (one output), or one list per output (a list of lists, or a dict by
        output name). See :mod:`numlstm.optimizers`, :mod:`numlstm.losses`,
        :mod:`numlstm.metrics`.

        Logged names follow Keras: ``loss`` (the weighted total); with several outputs also
        ``<output>_loss`` (each unweighted) and ``<output>_<metric>``.

        Metrics may be names, :mod:`numlstm.metrics` objects or functions
        ``fn(y_true, y_pred)``; ``weighted_metrics`` (same forms) are weighted by
        ``sample_weight``/``class_weight``, plain ``metrics`` are not (Keras 3). A weighted
        metric whose name clashes with an unweighted one is logged as ``weighted_<name>``.
        Each metric is checked against the targets its output's loss takes (a metric that
        compares arrays elementwise cannot read the class indices of a sparse loss).
        """
        V.check_required(loss, "loss", f"one of {sorted(L.LOSSES)} or a Loss object, or a "
                         "list or dict of them (one per output)")
        optimizer = O.get(optimizer)
        for given in (metrics, weighted_metrics):
            if isinstance(given, str):
                V.check_metric_names(given)          # a bare name: a TypeError, as in Keras
        arguments = (loss, metrics, loss_weights, weighted_metrics)
        # Everything is checked before anything changes: a refused compile leaves the model
        # as it was. Unbuilt (a Sequential without Input), what needs the outputs is checked
        # when the model is built.
        targets = self._targets_for(arguments) if self.built else _check_unresolved(*arguments)
        self._compile_arguments = arguments
        self.optimizer = optimizer
        self._targets = targets
        self.compiled = True

    def _resolve_targets(self) -> None:
        self._targets = self._targets_for(self._compile_arguments)

    def _targets_for(self, arguments) -> list:
        """Per output: its loss, weight and metrics, from the compile arguments."""
        loss, metrics, loss_weights, weighted = (tuple(arguments) + (None,))[:4]
        names = self._output_names
        losses = _per_output(loss, names, "loss", allow_missing=True)
        weights = _per_output(loss_weights, names, "loss_weights", allow_missing=True) \
            if loss_weights is not None else [1.0] * len(names)
        metric_lists = _metric_lists(metrics, names, "metrics")
        weighted_lists = _metric_lists(weighted, names, "weighted_metrics")
        targets = []
        for index, name in enumerate(names):
            loss_k = None if losses[index] is None else L.get(losses[index])
            weight = 1.0 if weights[index] is None else V.check_non_negative_float(
                weights[index], f"loss_weights[{name!r}]")
            shape = self._graph.outputs[index].shape
            resolved = []
            for argument, lists in (("metrics", metric_lists), ("weighted_metrics",
                                                                 weighted_lists)):
                entry = lists[index]
                where = argument if len(names) == 1 else f"{argument} for output {name!r}"
                specs = V.check_metric_names([entry] if isinstance(entry, (str, dict)) or (
                    callable(entry) and not isinstance(entry, type)) else entry, where)
                if specs and loss_k is None:
                    raise ValueError(f"{where}: that output has no loss, so it gets no "
                                     "targets to compare with")
                objects = []
                for spec in specs:
                    M.check_identifier(spec, where)
                    metric = M.get(spec, loss_k, shape[-1] or 0)
                    M.check_targets(metric, loss_k, shape[-1] or 0, where)
                    objects.append(metric)
                resolved.append((specs, objects))
            (specs, objects), (w_specs, w_objects) = resolved
            metric_names = [m.name for m in objects]
            w_names = [f"weighted_{m.name}" if m.name in metric_names else m.name
                       for m in w_objects]
            target = _OutputTarget(name, loss_k, weight, objects + w_objects,
                                   metric_names + w_names)
            target.weighted = [False] * len(objects) + [True] * len(w_objects)
            target.metric_specs = [_metric_spec(s_, m) for s_, m in zip(specs, objects)]
            target.weighted_specs = [_metric_spec(s_, m) for s_, m in zip(w_specs, w_objects)]
            targets.append(target)
        if all(target.loss is None for target in targets):
            raise ValueError(f"loss names none of the model's outputs {list(names)}")
        return targets

    @property
    def loss(self):
        """The loss (a list of them, one per output, for several outputs)."""
        if not self._targets:
            return None
        losses = [target.loss for target in self._targets]
        return losses[0] if len(losses) == 1 else losses

    @property
    def metrics(self) -> list:
        return [metric for target in self._targets for metric in target.metrics]

    def _check_compiled(self):
        if not self.compiled:
            raise ValueError("the model must be compiled before training or evaluating: call "
                             "model.compile(optimizer=..., loss=...)")

    def _log_names(self) -> list[str]:
        names = ["loss"]
        several = len(self._targets) > 1
        if several:
            names += [f"{t.name}_loss" for t in self._targets if t.loss is not None]
        for target in self._targets:
            names += [f"{target.name}_{m}" if several else m for m in target.metric_names]
        return names

    # -- input checks -------------------------------------------------------------------------
    def _ensure_built_for(self, x) -> None:
        """Hook: a model without an Input builds from the first data (Sequential)."""

    def _check_x(self, x, argument="x") -> list[np.ndarray]:
        """Validate ``x`` against the inputs: one array per input (a list/tuple in input
        order, or a dict by input name), each of its Input's dtype (int64 token ids for an
        integer input) and shape, all with one batch size."""
        self._ensure_built_for(x)
        inputs = self._graph.inputs
        arrays = _by_position(x, [t.name for t in inputs], argument, "input")
        checked = []
        for tensor, array, name in zip(inputs, arrays, self._argument_names(argument, inputs)):
            if tensor.dtype.startswith("int"):
                array = V.check_token_ids(array, _vocabulary_of(self._graph, tensor), name)
            else:
                array = V.as_float_array(array, name, _float_dtype_of(self._graph, tensor))
            checked.append(V.check_model_input_shape(array, tensor.shape,
                                                     _describe_shape(tensor.shape), name))
        sizes = {len(a) for a in checked}
        if len(sizes) > 1:
            raise ValueError(f"{argument}: every input must have the same number of samples; "
                             f"got {[len(a) for a in checked]} for inputs "
                             f"{[t.name for t in inputs]}")
        return checked

    def _argument_names(self, argument, tensors) -> list[str]:
        if len(tensors) == 1:
            return [argument]
        return [f"{argument}[{t.name!r}]" for t in tensors]

    def _check_y(self, y, n, argument="y") -> list:
        """Targets for every output that has a loss (None for the others)."""
        names = self._output_names
        arrays = _by_position(y, names, argument, "output",
                              needed=[t.loss is not None for t in self._targets])
        checked = []
        for index, (target, array) in enumerate(zip(self._targets, arrays)):
            if target.loss is None:
                checked.append(None)
                continue
            shape = self._graph.outputs[index].shape
            checked.append(V.check_targets(
                array, n, (n,) + tuple(shape[1:]),
                sparse=bool(getattr(target.loss, "sparse", False)),
                dtype=self._graph.outputs[index].dtype,
                argument=argument if len(names) == 1 else f"{argument}[{target.name!r}]",
                probabilities=target.loss.name if isinstance(
                    target.loss, (L.BinaryCrossentropy, L.CategoricalCrossentropy)) else None))
        return checked

    def _check_xy(self, x, y, names=("x", "y")):
        x = self._check_x(x, names[0])
        if y is None:
            raise ValueError(f"{names[1]} is required")
        if len(self._targets) == 1 and not isinstance(y, dict):
            V.check_targets_given(_by_position(y, self._output_names, names[1], "output")[0],
                                  len(x[0]), names)
        return x, self._check_y(y, len(x[0]), names[1])

    def _fixed_batch_size(self):
        """The batch size stateful layers were built for (None without any)."""
        for layer in self.layers:
            if isinstance(layer, LSTM) and layer.stateful:
                return layer.batch_size
        return None

    def _check_batch_size(self, batch_size, n, samples="samples"):
        fixed = self._fixed_batch_size()
        if batch_size is None:
            # Keras's default is 32; a stateful model can only run its fixed batch size.
            batch_size = fixed if fixed is not None else 32
        batch_size = V.check_int_at_least(batch_size, "batch_size", 1)
        return V.check_stateful_batch_size(batch_size, fixed, n, samples=samples)

    # -- running ------------------------------------------------------------------------------
    def _forward_pass(self, xs, training, backend, rng=None):
        """The graph's forward :class:`~numlstm.models.graph.Pass` on one batch (a device
        backend copies each layer's weights once for it, also for a layer called twice, or
        once for the whole loop of ``fit``'s epoch, ``evaluate`` or ``predict``)."""
        with backend.keep_weights_resident(join=True):
            return self._graph.forward([to_xp(backend, x) for x in xs], training, backend, rng)

    @contextlib.contextmanager
    def _running_user_code(self):
        """Run code numlstm does not know (a user's callback hook, a generator's next batch)
        inside a model call: no device copy of the weights is reused inside it (a model or
        layer it calls copies them afresh), and none made before it is reused after it (it
        may have written weights in place)."""
        try:
            with self._backend().suspend_resident_weights():
                yield
        finally:
            self._weights_changed()

    def _weights_changed(self) -> None:
        """The weights have changed (or may have: user code ran), so every layer's weight
        version moves on: no plan or device copy made before is used again."""
        for layer in self._all_layers():
            layer._weights_changed()

    def _forward(self, x, training, backend, rng=None):
        """The first output's backend array for ``x`` (an array, or a list of one per
        input); its mask is kept in ``_output_mask``. One call at a time: for gradient
        checks."""
        xs = x if isinstance(x, list) else [x]
        self._last_pass = self._forward_pass(xs, training, backend, rng)
        self._output_mask = self._last_pass.masks[0]
        return self._last_pass.outputs[0]

    def _backward(self, grad):
        """Back-propagate dL/d(first output) through the pass :meth:`_forward` kept, filling
        every layer's ``grads``; returns dL/d(first input) (None for token ids)."""
        layer_grads, input_grads = self._graph.backward(
            self._last_pass, [grad] + [None] * (len(self._graph.outputs) - 1))
        for layer in self.layers:
            layer.grads = layer_grads.get(id(layer), [None] * len(layer.weights))
        return input_grads[0]

    def _loss_and_grads(self, ys, preds, masks, sws=None):
        """``(total, per-output losses, per-output dL/dpred)`` for one batch; ``sws``: the
        per-output sample weights (None: unweighted)."""
        total, losses, grads = 0.0, [], []
        sws = sws if sws is not None else [None] * len(self._targets)
        for target, y, pred, mask, sw in zip(self._targets, ys, preds, masks, sws):
            if target.loss is None:
                losses.append(None)
                grads.append(None)
                continue
            if tuple(np.shape(y)[1:]) not in (tuple(pred.shape[1:]), tuple(pred.shape[1:-1]),
                                               tuple(pred.shape[1:-1]) + (1,)):
                raise ValueError(f"targets for output {target.name!r} have shape "
                                 f"{np.shape(y)}, but the output has shape {pred.shape} for "
                                 "this batch (a sequence output is as long as the input "
                                 "it is computed from)")
            if sw is not None and tuple(np.shape(sw)) not in (
                    tuple(pred.shape[:1]), tuple(pred.shape[:-1]),
                    tuple(pred.shape[:1]) + (1,)):
                raise ValueError(f"sample_weight for output {target.name!r} has shape "
                                 f"{np.shape(sw)}; it must be (batch,) or, for a sequence "
                                 f"output, {tuple(pred.shape[:-1])} (batch, timesteps)")
            value, grad = target.loss.value_and_grad(y, pred, mask, sw)
            total += target.weight * value
            losses.append(value)
            grads.append(np.ascontiguousarray(target.weight * grad, dtype=pred.dtype))
        return total, losses, grads

    def _train_step(self, xs, ys, backend, sws=None):
        """One batch: forward, losses, backward and the optimizer's update of the trainable
        weights -- skipped when the loss is not finite (the caller stops training then).

        Under ``numlstm.distributed`` (``dist``), ``xs``/``ys`` are this rank's shard: the
        loss becomes the global batch's and the gradients the global ones (one Allreduce)
        before the optimizer step; dropout draws from this rank's own generator."""
        dist = self._distribution
        run = self._forward_pass(xs, True, backend, self._train_rng if dist is None
                                 else dist.training_rng(self))
        preds = [np.asarray(backend.to_numpy(o)) for o in run.outputs]
        total, losses, grads = self._loss_and_grads(ys, preds, run.masks, sws)
        if dist is not None:
            total, losses, grads = dist.share(self, ys, preds, run.masks, losses, grads, sws)
        # weight penalties: the same on every rank, so added after the ranks' reduction
        # (DataParallel refuses activity regularizers, which depend on the shard)
        total += self._regularization_penalty(run)
        if not np.isfinite(total):
            return total, losses, preds, run.masks
        layer_grads, _ = self._graph.backward(
            run, [None if g is None else to_xp(backend, g) for g in grads])
        if dist is not None:
            layer_grads = dist.allreduce_gradients(self, layer_grads, backend)
        self._apply_gradients(layer_grads)
        return total, losses, preds, run.masks

    def _apply_gradients(self, layer_grads: dict) -> None:
        """One optimizer step: each weight with its gradient, None (skipped) for a frozen
        weight or one no loss reaches, as Keras skips variables without gradients."""
        grads, weights = [], []
        for layer in self.layers:
            computed = layer_grads.get(id(layer))
            for index, (weight, trains) in enumerate(zip(layer.weights,
                                                         layer._weights_trainable())):
                weights.append(weight)
                grads.append(computed[index] if computed is not None and trains
                             and self._trainable else None)
        self.optimizer.apply_gradients(self._add_regularization_grads(grads), weights)
        self._apply_constraints()
        self._weights_changed()

    # -- regularizers and constraints (numlstm.regularizers, numlstm.constraints) -----------
    def _weight_rules(self) -> list[tuple]:
        """``(weight, regularizer, constraint, trains)`` for every weight, in the order
        :meth:`_apply_gradients` hands them to the optimizer."""
        rules = []
        for layer in self.layers:
            for weight, (regularizer, constraint), trains in zip(
                    layer.weights, layer._weight_rules(), layer._weights_trainable()):
                rules.append((weight, regularizer, constraint, trains and self._trainable))
        return rules

    def _regularization_penalty(self, run) -> float:
        """Keras's added losses for one batch: each trainable weight's regularizer penalty
        (a frozen weight's is not counted, as Keras sums over ``trainable_weights``) plus the
        activity regularizers' penalties of the pass ``run``."""
        total = run.activity_penalty
        for weight, regularizer, _, trains in self._weight_rules():
            if regularizer is not None and trains:
                total += regularizer.penalty(weight)
        return total

    def _add_regularization_grads(self, grads: list) -> list:
        """``grads`` (aligned with :meth:`_weight_rules`) plus each trainable weight's
        regularizer gradient (also where no loss reaches the weight, as Keras differentiates
        the regularized total)."""
        out = list(grads)
        for index, (weight, regularizer, _, trains) in enumerate(self._weight_rules()):
            if regularizer is not None and trains:
                extra = regularizer.gradient(weight)
                out[index] = extra if out[index] is None else out[index] + extra
        return out

    def _apply_constraints(self) -> None:
        """Project each trainable weight with a constraint, in place, after the optimizer's
        step (Keras applies a variable's constraint right after its update)."""
        for weight, _, constraint, trains in self._weight_rules():
            if constraint is not None and trains:
                weight[...] = constraint(weight)

    def _batch_logs(self, tracker, ys, losses, total, preds, masks, size, sws=None):
        tracker.add("loss", total * size, size)
        several = len(self._targets) > 1
        sws = sws if sws is not None else [None] * len(self._targets)
        for target, y, value, pred, mask, sw in zip(self._targets, ys, losses, preds, masks,
                                                    sws):
            if target.loss is None:
                continue
            if several:
                tracker.add(f"{target.name}_loss", value * size, size)
            weighted = getattr(target, "weighted", [False] * len(target.metrics))
            for metric, metric_name, uses_weights in zip(target.metrics, target.metric_names,
                                                         weighted):
                tracker.add_state(f"{target.name}_{metric_name}" if several else metric_name,
                                  metric, metric.update(y, pred, mask,
                                                        sw if uses_weights else None))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_freq=1):
        """Train for ``epochs`` passes over ``(x, y)``; returns a :class:`History`.

        ``x``: an array, or one per input (a list, or a dict by input name); ``y`` likewise
        per output. ``batch_size`` defaults to 32 (a stateful model's fixed batch size).
        ``validation_split`` holds out the *last* fraction of the samples (before shuffling,
        as Keras does); ``validation_data=(x_val, y_val)`` or ``(x_val, y_val, w_val)``
        gives them explicitly (or a generator, with ``validation_steps``). Every input is
        checked before the first training step, and so are the callbacks' settings
        (checkpoint path templates and folders, monitored names), the validation size of a
        stateful model and the optimizer's state against the model's weights.

        Keras's options: ``sample_weight`` (``(n,)``, or ``(n, timesteps)`` for a sequence
        output; one per output as a list/dict, or one array for all outputs),
        ``class_weight`` (``{class: weight}``, one classification output; not together with
        ``sample_weight``, as in Keras), ``initial_epoch`` (epochs counted from it),
        ``validation_freq`` (validate every that many epochs), ``steps_per_epoch`` (for a
        generator). ``x`` may be a Python generator or iterable yielding ``(x, y)`` or
        ``(x, y, sample_weight)`` batches (``y``, ``batch_size``, ``sample_weight`` and
        ``validation_split`` must then be left out): with ``steps_per_epoch`` each epoch takes
        that many batches from it, else an epoch runs until it is exhausted (an iterable is
        iterated afresh each epoch; a generator that runs out stops training with a
        warning, as in Keras).

        When a batch's loss is NaN or infinite, training stops there (Keras's
        ``TerminateOnNaN``) with a ``RuntimeWarning``: that batch's update is not applied, so
        the model keeps the last finite weights; the epoch is not completed and its
        ``on_epoch_end`` callbacks (e.g. a checkpoint) do not run.
        """
        self._check_compiled()
        epochs = V.check_int_at_least(epochs, "epochs", 0)
        initial_epoch = V.check_int_at_least(initial_epoch, "initial_epoch", 0)
        validation_freq = V.check_int_at_least(validation_freq, "validation_freq", 1)
        verbose = V.check_verbose(verbose)
        V.check_bool(shuffle, "shuffle")
        validation_split = V.check_validation_split(validation_split)
        steps_per_epoch = None if steps_per_epoch is None else V.check_int_at_least(
            steps_per_epoch, "steps_per_epoch", 1)
        validation_steps = None if validation_steps is None else V.check_int_at_least(
            validation_steps, "validation_steps", 1)
        generator = _is_batch_source(x)
        if generator:
            for name, value in (("y", y), ("sample_weight", sample_weight),
                                ("batch_size", batch_size)):
                if value is not None:
                    raise ValueError(f"fit: {name} must be left out when x is a generator of "
                                     f"batches (each batch carries its own); got {name}="
                                     f"{V.kind_of(value)}")
            if validation_split:
                raise ValueError("fit: validation_split needs arrays; with a generator give "
                                 "validation_data")
            self._check_class_weight(class_weight, None)
            data = _BatchSource(x, steps_per_epoch, "x")
            n = None
        else:
            if steps_per_epoch is not None:
                raise ValueError("fit: steps_per_epoch is for a generator of batches; with "
                                 "arrays an epoch is ceil(samples / batch_size) steps")
            x, y = self._check_xy(x, y)
            sws = self._check_sample_weight(sample_weight, y, len(x[0]))
            self._check_class_weight(class_weight, sws)
            if validation_split and validation_data is None:
                split_at = V.check_split_sizes(validation_split, len(x[0]))
                def cut(arrays, part):
                    return [None if a is None else a[part] for a in arrays]
                val = (cut(x, slice(split_at, None)), cut(y, slice(split_at, None)),
                       cut(sws, slice(split_at, None)))
                x, y, sws = (cut(x, slice(None, split_at)), cut(y, slice(None, split_at)),
                             cut(sws, slice(None, split_at)))
            # class weights weight the training samples only (Keras): after the split
            sws = self._class_weights_to_sample_weights(class_weight, y, sws)
            n = len(x[0])
            V.check_sample_count(n)
            batch_size = self._check_batch_size(batch_size, n)
        val_source = None
        if validation_data is not None:
            if _is_batch_source(validation_data):
                val_source = _BatchSource(validation_data, validation_steps, "validation_data")
                val = None
            else:
                val = self._check_validation_data(validation_data)
        elif not validation_split:
            val = None
        if val is not None:
            if generator:
                batch_size = self._check_batch_size(None, len(val[0][0]), "validation samples")
            else:
                self._check_batch_size(batch_size, len(val[0][0]), "validation samples")
        callbacks = V.check_callback_list(callbacks, C.Callback)
        self.optimizer.check_state_matches(self.weights)
        has_val = val is not None or val_source is not None
        dist = self._distribution                    # numlstm.distributed; None: one process
        if dist is not None:
            if generator:
                raise ValueError("fit under numlstm.distributed needs arrays (every rank gets "
                                 "the same x and y and trains on its shard of each batch); "
                                 f"got x={V.kind_of(x)}, a generator of batches")
            dist.check_fit(self, n, batch_size, epochs, shuffle)
            verbose = dist.verbose(verbose)
            if not dist.writes_files:
                # only rank 0 writes (CSVLogger, ModelCheckpoint, BackupAndRestore): every rank
                # sees the same reduced logs, so the others would write the same files
                callbacks = [c for c in callbacks if not getattr(c, "writes_files", False)]
        log_names = self._log_names()
        if has_val:
            log_names += [f"val_{name}" for name in log_names]
        for callback in callbacks:
            callback.check_before_training(log_names)
        steps = steps_per_epoch if generator else -(-n // batch_size)
        history = C.History()
        # History last, as in Keras: it records what other callbacks add to the logs
        # (ReduceLROnPlateau's learning_rate)
        all_callbacks = C.CallbackList([*callbacks, history], self,
                                       {"verbose": verbose, "epochs": epochs, "steps": steps})
        self._initial_epoch = initial_epoch
        self.stop_training = False
        all_callbacks.call("on_train_begin", None)
        if dist is not None:
            # after on_train_begin: what rank 0 restored (BackupAndRestore) reaches every rank
            dist.begin_fit(self)
        backend = self._backend()
        # a callback (BackupAndRestore) may move the start when it restores a run
        epoch = self._initial_epoch
        while epoch < epochs:
            all_callbacks.call("on_epoch_begin", epoch, None)
            progress = EpochProgress(verbose, epoch, epochs, steps)
            tracker = _Tracker(self._log_names())
            if generator:
                batches = data.epoch(self._running_user_code)
            else:
                order = self._train_rng.permutation(n) if shuffle else np.arange(n)
                batches = ((x, y, sws, order[i * batch_size:(i + 1) * batch_size])
                           for i in range(steps))
            with backend.keep_weights_resident():     # device copies while the epoch runs
                finished = self._fit_epoch(batches, generator, tracker, backend, all_callbacks,
                                           progress, epoch, class_weight if generator else None)
            if not finished:
                progress.close(tracker.logs())
                break
            logs = tracker.logs()
            if has_val and (epoch + 1) % validation_freq == 0:     # as Keras counts
                if val_source is not None:
                    values = self._evaluate_source(val_source, backend, all_callbacks)
                else:
                    values = self._evaluate_arrays(val[0], val[1], batch_size, backend,
                                                   val[2], all_callbacks)
                logs.update({f"val_{k}": v for k, v in values.items()})
            progress.close(logs)
            all_callbacks.call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
            epoch += 1
        all_callbacks.call("on_train_end", None)
        self.history = history
        return history

    def _fit_epoch(self, batches, generator, tracker, backend, callbacks, progress,
                   epoch, class_weight=None) -> bool:
        """Train on one epoch's batches. False when the epoch cannot end normally: a
        non-finite loss, or a generator with nothing left; True otherwise (also when a
        callback set ``stop_training`` or a generator ran out part-way: that epoch ends
        with what it saw, then training stops). ``class_weight``: fit's, for a generator's
        batches (each turned into sample weights; a batch that carries its own is refused, as
        with arrays)."""
        dist = self._distribution                    # numlstm.distributed; None: one process
        seen = 0
        for step, batch in enumerate(batches):
            if generator:
                xs, ys, sws = self._check_batch(batch, "x")
                sws = self._class_weights_to_sample_weights(class_weight, ys, sws)
                size = len(xs[0])
            else:
                x, y, sw_all, index = batch
                if dist is not None:
                    index = dist.shard(index)    # this rank's part of the global batch
                xs = [a[index] for a in x]
                ys = [None if a is None else a[index] for a in y]
                sws = [None if a is None else a[index] for a in sw_all]
                size = len(index)
            callbacks.call("on_train_batch_begin", step, None)
            total, losses, preds, masks = self._train_step(xs, ys, backend, sws)
            if not np.isfinite(total):
                warnings.warn(f"fit stopped at epoch {epoch + 1}, batch {step + 1}: the "
                              f"loss became non-finite ({total}); that batch's update was "
                              "not applied, so the model keeps the last finite weights",
                              RuntimeWarning, stacklevel=3)
                self.stop_training = True
                return False
            if dist is None:
                self._batch_logs(tracker, ys, losses, total, preds, masks, size, sws)
            else:
                dist.batch_logs(self, tracker, total)   # the global batch's loss and metrics
            seen += 1
            logs = tracker.logs()
            progress.update(step + 1, logs)
            callbacks.call("on_train_batch_end", step, logs)
            if self.stop_training:
                # a callback stopped training (TerminateOnNaN, a user's): as in Keras, the
                # epoch still ends -- validation and on_epoch_end run on what was seen
                return True
        if generator and getattr(batches, "ran_out", False):
            warnings.warn("fit: the generator ran out of data; training stops here (give an "
                          "iterable that can be iterated again, or fewer steps_per_epoch x "
                          "epochs batches)", RuntimeWarning, stacklevel=3)
            self.stop_training = True
            return seen > 0
        return True

    def _check_batch(self, batch, argument):
        """A generator's batch ``(x, y)`` or ``(x, y, sample_weight)``, checked like arrays."""
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise ValueError(f"{argument}: a generator must yield (x, y) or (x, y, "
                             f"sample_weight) tuples; got {V.kind_of(batch)}")
        xs, ys = self._check_xy(batch[0], batch[1], names=(f"{argument} batch x",
                                                           f"{argument} batch y"))
        sws = self._check_sample_weight(batch[2] if len(batch) == 3 else None, ys,
                                        len(xs[0]), f"{argument} batch sample_weight")
        self._check_one_batch(len(xs[0]), f"a batch of {argument}")
        return xs, ys, sws

    def _check_validation_data(self, validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            items = len(validation_data) if isinstance(validation_data, (tuple, list)) else 1
            raise TypeError(f"validation_data must be a tuple (x_val, y_val); got "
                            f"{type(validation_data).__name__} of {items} item(s) (also "
                            "accepted: (x_val, y_val, sample_weight_val), or a generator of "
                            "batches)")
        xv, yv = self._check_xy(validation_data[0], validation_data[1],
                                names=("validation_data x", "validation_data y"))
        sv = self._check_sample_weight(validation_data[2] if len(validation_data) == 3 else None,
                                       yv, len(xv[0]), "validation_data sample_weight")
        return xv, yv, sv

    def _check_sample_weight(self, sample_weight, ys, n, argument="sample_weight") -> list:
        """Per output (None for outputs without a loss, or when not given): finite weights
        >= 0 of shape ``(n,)`` (or ``(n, 1)``), or ``(n, timesteps)`` for a sequence output.
        One array for a multi-output model applies to every output (Keras)."""
        count = len(self._targets)
        if sample_weight is None:
            return [None] * count
        if count > 1 and (isinstance(sample_weight, dict) or (
                isinstance(sample_weight, (list, tuple)) and len(sample_weight) == count)):
            given = _by_position(sample_weight, self._output_names, argument, "output",
                                 needed=[False] * count)
        elif isinstance(sample_weight, (list, tuple, dict)) and count == 1 and not (
                isinstance(sample_weight, (list, tuple)) and not isinstance(
                    sample_weight[0] if sample_weight else None, np.ndarray)):
            given = _by_position(sample_weight, self._output_names, argument, "output")
        else:
            given = [sample_weight] * count
        checked = []
        for index, (target, w, y) in enumerate(zip(self._targets, given, ys)):
            name = argument if count == 1 else f"{argument}[{target.name!r}]"
            if w is None or target.loss is None:
                checked.append(None)
                continue
            try:
                array = np.asarray(w)
            except Exception:       # ragged: as_float_array says so
                array = None
            if array is not None and array.dtype.kind in "biu":
                # whole-number and boolean weights (np.where(y == 1, 5, 1)), as Keras takes
                w = array.astype(np.float64)
            w = V.as_float_array(w, name, np.float64)
            if w.size and (w.min() < 0):
                raise ValueError(f"{name} must be >= 0; got a minimum of {w.min()}")
            shape = self._graph.outputs[index].shape
            sequence = len(shape) == 3
            ok = w.shape in ((n,), (n, 1)) or (sequence and w.ndim == 2 and w.shape[0] == n)
            if not ok:
                expected = f"({n},)" + (f" or ({n}, timesteps)" if sequence else "")
                raise ValueError(f"{name} must have shape {expected} (one weight per sample"
                                 f"{', or per timestep' if sequence else ''}); got shape "
                                 f"{w.shape}")
            checked.append(w.reshape(n) if w.shape == (n, 1) else w)
        return checked

    def _check_class_weight(self, class_weight, sws):
        if class_weight is None:
            return None
        if not isinstance(class_weight, dict) or not class_weight:
            raise TypeError(f"class_weight must be a dict {{class index: weight}}; got "
                            f"{V.kind_of(class_weight)}")
        checked = {}
        for key, value in class_weight.items():
            if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) \
                    or key < 0:
                raise TypeError(f"class_weight keys must be class indices (ints >= 0); got "
                                f"{key!r}")
            checked[int(key)] = V.check_non_negative_float(value, f"class_weight[{key}]")
        if sws is not None and any(w is not None for w in sws):
            raise ValueError("you cannot give class_weight and sample_weight at the same time "
                             "(as in Keras): fold the class weights into sample_weight")
        trained = [i for i, t in enumerate(self._targets) if t.loss is not None]
        if len(self._targets) != 1 or len(trained) != 1:
            raise ValueError("class_weight is only supported for models with a single output "
                             "(as in Keras); give sample_weight per output instead")
        if len(self._graph.outputs[0].shape) != 2:
            raise ValueError("class_weight needs an output of shape (batch, classes); for a "
                             "sequence output give sample_weight of shape (batch, timesteps)")
        return checked

    def _class_weights_to_sample_weights(self, class_weight, ys, sws) -> list:
        """Keras's mapping: the class of each sample is ``argmax(y)`` for one-hot targets,
        else ``round(y)``; its weight ``class_weight.get(class, 1.0)``."""
        class_weight = self._check_class_weight(class_weight, sws)
        if class_weight is None:
            return sws
        y = np.asarray(ys[0])
        if y.ndim > 1:
            y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else y[..., 0]
        labels = np.round(y).astype(np.int64)
        return [np.array([class_weight.get(int(c), 1.0) for c in labels], dtype=np.float64)]

    def _evaluate_arrays(self, x, y, batch_size, backend, sws=None, callbacks=None) -> dict:
        tracker = _Tracker(self._log_names())
        n = len(x[0])
        sws = sws if sws is not None else [None] * len(self._targets)
        if callbacks is not None:
            callbacks.call("on_test_begin", None)
        with backend.keep_weights_resident():     # device copies while the batches run
            for step, start in enumerate(range(0, n, batch_size)):
                part = slice(start, start + batch_size)
                self._test_batch(tracker, [a[part] for a in x],
                                 [None if a is None else a[part] for a in y],
                                 [None if a is None else a[part] for a in sws], backend,
                                 callbacks, step)
        logs = tracker.logs()
        if callbacks is not None:
            callbacks.call("on_test_end", logs)
        return logs

    def _evaluate_source(self, source, backend, callbacks=None) -> dict:
        tracker = _Tracker(self._log_names())
        if callbacks is not None:
            callbacks.call("on_test_begin", None)
        seen = 0
        with backend.keep_weights_resident():     # device copies while the batches run
            for step, batch in enumerate(source.epoch(self._running_user_code)):
                xs, ys, sws = self._check_batch(batch, source.argument)
                self._test_batch(tracker, xs, ys, sws, backend, callbacks, step)
                seen += 1
        if not seen:
            # a loss of 0.0 from no data would pass for the best epoch (EarlyStopping,
            # ModelCheckpoint); Keras too refuses to report on nothing
            raise ValueError(f"{source.argument}: the generator gave no batch to evaluate "
                             "(it is used up: a generator can be read once; give an iterable "
                             "that can be iterated again (an object whose __iter__ starts over), or "
                             "validation_steps/steps so that each pass takes only part)")
        logs = tracker.logs()
        if callbacks is not None:
            callbacks.call("on_test_end", logs)
        return logs

    def _test_batch(self, tracker, xs, ys, sws, backend, callbacks, step) -> None:
        if callbacks is not None:
            callbacks.call("on_test_batch_begin", step, None)
        run = self._forward_pass(xs, False, backend)
        preds = [np.asarray(backend.to_numpy(o)) for o in run.outputs]
        total, losses, _ = self._loss_and_grads(ys, preds, run.masks, sws)
        total += self._regularization_penalty(run)
        self._batch_logs(tracker, ys, losses, total, preds, run.masks, len(xs[0]), sws)
        if callbacks is not None:
            callbacks.call("on_test_batch_end", step, tracker.logs())

    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, return_dict=False,
                 sample_weight=None, steps=None, callbacks=None):
        """The loss (and metrics) on ``(x, y)``: a float without metrics, else ``[loss,
        metric, ...]``; a dict with ``return_dict=True``. ``batch_size`` defaults to 32 (a
        stateful model's fixed batch size). ``sample_weight`` as in :meth:`fit`; ``x`` may be
        a generator of ``(x, y[, w])`` batches (``steps``: how many to take)."""
        self._check_compiled()
        steps = None if steps is None else V.check_int_at_least(steps, "steps", 1)
        backend = self._backend()
        callbacks = V.check_callback_list(callbacks, C.Callback)
        hooks = C.CallbackList(callbacks, self, {"verbose": verbose, "steps": steps}) \
            if callbacks else None
        if _is_batch_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError("evaluate: y and sample_weight must be left out when x is a "
                                 "generator of batches")
            logs = self._evaluate_source(_BatchSource(x, steps, "x"), backend, hooks)
        else:
            if steps is not None:
                raise ValueError("evaluate: steps is for a generator of batches")
            x, y = self._check_xy(x, y)
            sws = self._check_sample_weight(sample_weight, y, len(x[0]))
            V.check_sample_count(len(x[0]))
            batch_size = self._check_batch_size(batch_size, len(x[0]))
            logs = self._evaluate_arrays(x, y, batch_size, backend, sws, hooks)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None):
        """The model's outputs for ``x``, computed ``batch_size`` samples at a time (default
        32; a stateful model's fixed batch size): a NumPy array, or a list of them for a
        model with several outputs. ``x`` may be a generator of batches (``x``, or tuples
        whose first item is ``x``; ``steps``: how many to take)."""
        steps = None if steps is None else V.check_int_at_least(steps, "steps", 1)
        callbacks = V.check_callback_list(callbacks, C.Callback)
        hooks = C.CallbackList(callbacks, self, {"verbose": verbose, "steps": steps})
        backend = self._backend()
        start_time = time.perf_counter()
        hooks.call("on_predict_begin", None)
        parts = []
        with backend.keep_weights_resident():     # device copies while the batches run
            if _is_batch_source(x):
                n = 0
                for step, batch in enumerate(_BatchSource(x, steps, "x").epoch(
                        self._running_user_code)):
                    hooks.call("on_predict_batch_begin", step, None)
                    xs = self._check_x(batch[0] if isinstance(batch, tuple) else batch)
                    run = self._forward_pass(xs, False, backend)
                    parts.append([np.asarray(backend.to_numpy(o)) for o in run.outputs])
                    n += len(xs[0])
                    hooks.call("on_predict_batch_end", step, {"outputs": parts[-1]})
            else:
                if steps is not None:
                    raise ValueError("predict: steps is for a generator of batches")
                x = self._check_x(x)
                n = len(x[0])
                batch_size = self._check_batch_size(batch_size, n)
                for step, start in enumerate(range(0, n, batch_size)):
                    hooks.call("on_predict_batch_begin", step, None)
                    run = self._forward_pass([a[start:start + batch_size] for a in x], False,
                                             backend)
                    parts.append([np.asarray(backend.to_numpy(o)) for o in run.outputs])
                    hooks.call("on_predict_batch_end", step, {"outputs": parts[-1]})
        hooks.call("on_predict_end", None)
        if verbose:
            print(f"predicted {n} samples in {time.perf_counter() - start_time:.2f}s")
        outputs = []
        for index, tensor in enumerate(self._graph.outputs):
            if parts:
                outputs.append(np.concatenate([p[index] for p in parts], axis=0))
            else:
                outputs.append(np.zeros((0,) + tuple(d or 0 for d in tensor.shape[1:]),
                                        tensor.dtype))
        return outputs[0] if self._single_output else outputs

    def __call__(self, x, training=False):
        """The outputs for ``x`` in one batch (with ``training=True``: dropout active, masks
        drawn from the model's training generator)."""
        if is_symbolic(x):
            raise TypeError(f"model {self.name!r} was called on a symbolic tensor: using a "
                            "model as a layer of another model is not supported; call its "
                            "layers on the tensor instead")
        training = V.check_bool(training, "training")
        xs = self._check_x(x)
        self._check_one_batch(len(xs[0]), "model(x)", empty_ok=True)
        if not training:
            return self.predict(xs if len(xs) > 1 else xs[0], batch_size=max(len(xs[0]), 1))
        backend = self._backend()
        run = self._forward_pass(xs, True, backend, self._train_rng)
        outputs = [np.asarray(backend.to_numpy(o)) for o in run.outputs]
        return outputs[0] if self._single_output else outputs

    # -- one batch at a time ------------------------------------------------------------------
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on the batch ``(x, y)``; returns the loss (and metrics) computed
        on the batch before the update, as :meth:`evaluate` reports them.
        ``sample_weight``/``class_weight`` as in :meth:`fit`."""
        self._check_compiled()
        x, y = self._check_xy(x, y)
        self._check_one_batch(len(x[0]), "train_on_batch")
        sws = self._check_sample_weight(sample_weight, y, len(x[0]))
        sws = self._class_weights_to_sample_weights(class_weight, y, sws)
        self.optimizer.check_state_matches(self.weights)
        total, losses, preds, masks = self._train_step(x, y, self._backend(), sws)
        if not np.isfinite(total):
            warnings.warn(f"train_on_batch: the loss is non-finite ({total}); the update was "
                          "not applied", RuntimeWarning, stacklevel=2)
        tracker = _Tracker(self._log_names())
        self._batch_logs(tracker, y, losses, total, preds, masks, len(x[0]), sws)
        return self._returned(tracker.logs(), return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """The loss (and metrics) on the batch ``(x, y)``, without training."""
        self._check_compiled()
        x, y = self._check_xy(x, y)
        self._check_one_batch(len(x[0]), "test_on_batch")
        sws = self._check_sample_weight(sample_weight, y, len(x[0]))
        return self._returned(self._evaluate_arrays(x, y, max(len(x[0]), 1), self._backend(),
                                                    sws), return_dict)

    def predict_on_batch(self, x):
        """The outputs for ``x`` as one batch."""
        xs = self._check_x(x)
        self._check_one_batch(len(xs[0]), "predict_on_batch", empty_ok=True)
        return self.predict(xs if len(xs) > 1 else xs[0], batch_size=max(len(xs[0]), 1))

    def _check_one_batch(self, n: int, call: str, empty_ok: bool = False) -> None:
        """``x`` of ``n`` samples runs as one batch: at least one sample (unless
        ``empty_ok``), and a stateful model's fixed batch size."""
        if not empty_ok:
            V.check_sample_count(n)
        fixed = self._fixed_batch_size()
        if fixed is not None and n != fixed:
            raise ValueError(f"{call} runs x as one batch, and this stateful model runs "
                             f"batches of {fixed} samples (its fixed batch size); got {n} "
                             "samples")

    @staticmethod
    def _returned(logs: dict, return_dict: bool):
        if V.check_bool(return_dict, "return_dict"):
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # -- summary ------------------------------------------------------------------------------
    def summary(self, print_fn=None) -> None:
        """Print a table of the layers, their output shapes, parameter counts and (for a
        graph that is not a plain chain) which tensors each layer call reads."""
        graph = self._require_built()
        print_fn = print_fn or print
        chain = self._is_chain()
        header = ("Layer (type)", "Output Shape", "Param #") + (() if chain else
                                                                 ("Connected to",))
        rows = [header]
        counted = set()
        if not chain:
            for tensor in graph.inputs:
                rows.append((f"{tensor.name} (Input)", str(tensor.shape), "0", ""))
        for node in graph.nodes:
            layer = node.layer
            shapes = [t.shape for t in node.outputs]
            params = layer.count_params() if id(layer) not in counted else 0
            counted.add(id(layer))
            row = (f"{layer.name} ({type(layer).__name__})",
                   str(shapes[0] if len(shapes) == 1 else shapes), f"{params:,}")
            if not chain:
                row += (", ".join(t.name for t in node.inputs),)
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(header))]
        line = "-" * sum(widths)
        print_fn(f'Model: "{self.name}"  (backend: {self.backend_name})')
        print_fn(line)
        for i, row in enumerate(rows):
            print_fn("".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            print_fn("=" * sum(widths) if i == 0 else line)
        total = self.count_params()
        trainable = sum(w.size for w in self.trainable_weights)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")

    def _is_chain(self) -> bool:
        """One input, one output, each node reading the previous node's only output."""
        graph = self._graph
        previous = graph.inputs
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            return False
        for node in graph.nodes:
            if node.inputs != previous[:1] or len(previous) != 1:
                return False
            previous = node.outputs
        return True

    # -- configuration and files (numlstm.models.saving) -----------------------------------------
    def get_config(self) -> dict:
        """The model's structure as plain data (layers, how they connect, inputs, outputs),
        without weights; :meth:`from_config` rebuilds it."""
        from .saving import functional_config
        return functional_config(self)

    @classmethod
    def from_config(cls, config: dict):
        """A new model with the structure ``config`` describes (fresh weights)."""
        from .saving import model_from_config
        return model_from_config({"class_name": cls.__name__, "config": config})

    def to_json(self, **kwargs) -> str:
        """:meth:`get_config` as JSON (``{"class_name": ..., "config": ...}``), for
        :func:`numlstm.model_from_json`; keyword arguments go to ``json.dumps``."""
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()},
                          **kwargs)

    def save(self, path):
        """Write the model to ``path`` (one file, atomically): its configuration, weights,
        compile settings, optimizer state and training-generator state; see
        :func:`~numlstm.load_model`. Returns the path written.

        Weights or optimizer slots holding NaN or inf (a diverged run) raise ``ValueError``
        and write nothing: :func:`~numlstm.load_model` would refuse them, and an existing file
        at ``path`` (say, the last good checkpoint) stays as it was."""
        from .saving import save_model
        if self._distribution is not None and not self._distribution.writes_files:
            return path                  # numlstm.distributed: only rank 0 writes
        return save_model(self, path)

    def save_weights(self, path):
        """Write only the weights to ``path`` (numlstm's pickle-free archive, atomically),
        with each layer's name and shapes so that :meth:`load_weights` can check them.
        Returns the path written."""
        from .saving import save_weights
        if self._distribution is not None and not self._distribution.writes_files:
            return path                  # numlstm.distributed: only rank 0 writes
        return save_weights(self, path)

    def load_weights(self, path, *, max_bytes=None) -> None:
        """Set the weights from a file :meth:`save_weights` wrote, for a model of the same
        layers (names, kinds and shapes are checked; nothing changes unless all match)."""
        from .saving import load_weights
        load_weights(self, path, max_bytes=max_bytes)

    def export_onnx(self, path, *, opset=None):
        """Write the model as an ONNX graph that ONNX Runtime and other ONNX servers run with
        ``predict``'s outputs (needs ``numlstm[onnx]``); see
        :func:`numlstm.interop.onnx_export.export_onnx`. Returns the path written."""
        from ..interop.onnx_export import DEFAULT_OPSET, export_onnx
        return export_onnx(self, path, opset=DEFAULT_OPSET if opset is None else opset)


class _OutputTarget:
    """What ``compile`` decided for one output."""

    def __init__(self, name, loss, weight, metrics, metric_names):
        self.name, self.loss, self.weight = name, loss, weight
        self.metrics, self.metric_names = metrics, list(metric_names)


class _Tracker:
    """An epoch's running averages: ``add(name, sum, count)`` for losses,
    ``add_state(name, metric, state)`` for metrics (states add up; ``metric.result`` gives the
    value); ``logs()`` gives every value, in the order of the names given."""

    def __init__(self, names):
        self._totals = {name: [0.0, 0.0] for name in names}
        self._metrics = {}

    def add(self, name, total, count) -> None:
        entry = self._totals[name]
        entry[0] += float(total)
        entry[1] += float(count)

    def add_state(self, name, metric, state) -> None:
        state = np.asarray(state, dtype=np.float64)
        if name in self._metrics:
            self._metrics[name][1] += state
        else:
            self._metrics[name] = [metric, state.copy()]

    def logs(self) -> dict:
        logs = {}
        for name, (total, count) in self._totals.items():
            if name in self._metrics:
                metric, state = self._metrics[name]
                logs[name] = metric.result(state)
            else:
                logs[name] = total / count if count else 0.0
        return logs


def _is_batch_source(value) -> bool:
    """A generator or other iterable of batches (not arrays, lists, tuples or dicts of
    them)."""
    if value is None or isinstance(value, (np.ndarray, list, tuple, dict, str, bytes)):
        return False
    if hasattr(value, "__array__") or hasattr(value, "shape"):
        return False
    return hasattr(value, "__iter__") or hasattr(value, "__next__")


class _EpochBatches:
    """One epoch's batches from a source: ``steps`` of them (or until exhausted);
    ``ran_out`` tells whether the source ended before ``steps``."""

    def __init__(self, iterator, steps, user_code):
        self.iterator, self.steps, self.ran_out = iterator, steps, False
        self.user_code = user_code

    def __iter__(self):
        taken = 0
        while self.steps is None or taken < self.steps:
            try:
                with self.user_code():           # the generator's own code runs here
                    batch = next(self.iterator)
            except StopIteration:
                self.ran_out = self.steps is not None or taken == 0
                return
            taken += 1
            yield batch


class _BatchSource:
    """Batches from a generator (consumed across epochs) or an iterable (iterated afresh
    each epoch without ``steps``; continued with ``steps``, as Keras does)."""

    def __init__(self, source, steps, argument):
        self.source, self.steps, self.argument = source, steps, argument
        self._iterator = None

    def epoch(self, user_code=contextlib.nullcontext) -> _EpochBatches:
        """This epoch's batches; ``user_code``: the context every ``next`` runs in (the
        model's ``_running_user_code``)."""
        is_iterator = iter(self.source) is self.source if hasattr(self.source, "__iter__") \
            else True
        if self._iterator is None or (self.steps is None and not is_iterator):
            self._iterator = iter(self.source) if hasattr(self.source, "__iter__") \
                else self.source
        return _EpochBatches(self._iterator, self.steps, user_code)


def _unique_name(base: str, taken) -> str:
    """``base_1``, ``base_2``, ...: the first not in ``taken`` (Keras's naming of repeated
    layers)."""
    index = 1
    while f"{base}_{index}" in taken:
        index += 1
    return f"{base}_{index}"


def _unique_names(names: list) -> list:
    taken, unique = set(), []
    for name in names:
        name = name if name not in taken else _unique_name(name, taken)
        taken.add(name)
        unique.append(name)
    return unique


def _check_unresolved(loss, metrics, loss_weights, weighted_metrics=None) -> list:
    """What compile can check before the model's outputs are known: every loss and metric,
    every loss weight. Returns no targets (they are resolved at build)."""
    def leaves(value):
        if isinstance(value, dict):
            return list(value.values())
        return list(value) if isinstance(value, (list, tuple)) else [value]
    for entry in leaves(loss):
        if entry is not None:
            L.get(entry)
    if loss_weights is not None:
        for entry in leaves(loss_weights):
            if entry is not None:
                V.check_non_negative_float(entry, "loss_weights")
    for argument, given in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
        if given is None:
            continue
        for entry in leaves(given):
            for spec in (leaves(entry) if isinstance(entry, (list, tuple)) else [entry]):
                if spec is not None:
                    M.check_identifier(spec, argument)
    return []


def _metric_lists(metrics, names, argument) -> list:
    """``metrics`` (or ``weighted_metrics``) as one list (or None) per output: a flat list
    for a one-output model, else a list of lists or a dict by output name."""
    if metrics is None:
        return [None] * len(names)
    if isinstance(metrics, (list, tuple)) and len(names) == 1 and not any(
            isinstance(m, (list, tuple)) for m in metrics):
        return [list(metrics)]
    if isinstance(metrics, dict) and not set(metrics) <= set(names) and len(names) == 1:
        return [[metrics]]                           # a metric's config dict
    return _per_output(metrics, names, argument, allow_missing=True)


def _metric_spec(spec, metric):
    """What a saved model stores for a metric: its name, or its config (saving asks the
    metric for it; a Python function cannot be saved)."""
    return spec if isinstance(spec, str) else metric


def _per_output(value, names, argument, allow_missing=False) -> list:
    """``value`` for each output: the same for all (a single value), one per output (a list
    or tuple of the outputs' length), or by output name (a dict; outputs left out get
    None when ``allow_missing``)."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{argument} names no output {unknown[0]!r}; the model's outputs "
                             f"are {list(names)}")
        if not allow_missing and set(value) != set(names):
            raise ValueError(f"{argument} must give every output {list(names)}")
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"{argument} must have one entry per output ({len(names)}: "
                             f"{list(names)}); got {len(value)}")
        return list(value)
    return [value] * len(names)


def _by_position(value, names, argument, kind, needed=None) -> list:
    """Arrays for each input (``kind`` "input") or output, from a single array (one
    input/output), a list/tuple in order, or a dict by name."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{argument} names no {kind} {unknown[0]!r}; the model's {kind}s "
                             f"are {list(names)}")
        missing = [n for i, n in enumerate(names)
                   if n not in value and (needed is None or needed[i])]
        if missing:
            raise ValueError(f"{argument} is missing the {kind} {missing[0]!r}")
        return [value.get(name) for name in names]
    if len(names) == 1:
        # [x] for a one-input model (Keras accepts it): a list holding one array, not a
        # nested list of numbers
        if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(
                value[0], np.ndarray) and value[0].ndim >= 1:
            return [value[0]]
        return [value]
    if not isinstance(value, (list, tuple)) or len(value) != len(names):
        raise ValueError(f"{argument} must be a list of {len(names)} arrays, one per {kind} "
                         f"{list(names)} (or a dict by name); got {V.kind_of(value)}")
    return list(value)


def _vocabulary_of(graph: Graph, tensor) -> int:
    """The ``input_dim`` of the Embedding that reads integer input ``tensor`` (the smallest
    when several do)."""
    dims = [node.layer.input_dim for node in graph.nodes
            if isinstance(node.layer, Embedding) and node.inputs[0] is tensor]
    if not dims:
        raise ValueError(f"integer Input {tensor.name!r} must feed an Embedding (token ids); "
                         "use a float dtype for other inputs")
    return min(dims)


def _float_dtype_of(graph: Graph, tensor):
    """The dtype floating data for ``tensor`` is read as: that of the first layer that reads
    it (layers cast what enters them, as Keras's do, so data keeps the precision of the
    layers it feeds), else the Input's."""
    for node in graph.nodes:
        if any(t is tensor for t in node.inputs):
            return node.layer.dtype
    return tensor.dtype


def _describe_shape(shape) -> str:
    names = ["batch", "timesteps", "features"] if len(shape) == 3 else \
        ["batch", "timesteps"] if len(shape) == 2 else [f"axis{i}" for i in range(len(shape))]
    return "(" + ", ".join(n if d is None else f"{n}={d}" for n, d in zip(names, shape)) + ")"
