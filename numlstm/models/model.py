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

import json
import time
import warnings

import numpy as np

from .. import callbacks as C
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
    def compile(self, optimizer="adam", loss=None, metrics=None, loss_weights=None) -> None:
        """Choose the optimizer (name or object), the loss and the metrics.

        ``loss``: a name or Loss object (every output), a list (one per output) or a dict by
        output name (outputs left out are not trained). ``loss_weights``: a list or dict of
        floats; the loss minimised is ``sum(weight * loss)`` over the outputs. ``metrics``: a
        list of names (one output), or one list per output (a list of lists, or a dict by
        output name). See :mod:`numlstm.optimizers`, :mod:`numlstm.losses`,
        :mod:`numlstm.metrics`.

        Logged names follow Keras: ``loss`` (the weighted total); with several outputs also
        ``<output>_loss`` (each unweighted) and ``<output>_<metric>``.
        """
        V.check_required(loss, "loss", f"one of {sorted(L.LOSSES)} or a Loss object, or a "
                         "list or dict of them (one per output)")
        optimizer = O.get(optimizer)
        if isinstance(metrics, str):
            V.check_metric_names(metrics)            # a bare name: a TypeError, as in Keras
        arguments = (loss, metrics, loss_weights)
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
        loss, metrics, loss_weights = arguments
        names = self._output_names
        losses = _per_output(loss, names, "loss", allow_missing=True)
        weights = _per_output(loss_weights, names, "loss_weights", allow_missing=True) \
            if loss_weights is not None else [1.0] * len(names)
        if len(names) == 1 and isinstance(metrics, (list, tuple)) and all(
                isinstance(m, str) for m in metrics):
            metric_lists = [metrics]
        elif metrics is None:
            metric_lists = [None] * len(names)
        else:
            metric_lists = _per_output(metrics, names, "metrics", allow_missing=True)
        targets = []
        for index, name in enumerate(names):
            loss_k = None if losses[index] is None else L.get(losses[index])
            weight = 1.0 if weights[index] is None else V.check_non_negative_float(
                weights[index], f"loss_weights[{name!r}]")
            entry = metric_lists[index]
            metric_names = V.check_metric_names([entry] if isinstance(entry, str) else entry,
                                                "metrics" if len(names) == 1 else
                                                f"metrics for output {name!r}")
            if metric_names and loss_k is None:
                raise ValueError(f"metrics for output {name!r}: that output has no loss, so it "
                                 "gets no targets to compare with")
            shape = self._graph.outputs[index].shape
            metric_objects = [M.get(m, loss_k, shape[-1] or 0) for m in metric_names]
            targets.append(_OutputTarget(name, loss_k, weight, metric_objects, metric_names))
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
                sparse=isinstance(target.loss, L.SparseCategoricalCrossentropy),
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
        """The graph's forward :class:`~numlstm.models.graph.Pass` on one batch."""
        return self._graph.forward([to_xp(backend, x) for x in xs], training, backend, rng)

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

    def _loss_and_grads(self, ys, preds, masks):
        """``(total, per-output losses, per-output dL/dpred)`` for one batch."""
        total, losses, grads = 0.0, [], []
        for target, y, pred, mask in zip(self._targets, ys, preds, masks):
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
            value, grad = target.loss.value_and_grad(y, pred, mask)
            total += target.weight * value
            losses.append(value)
            grads.append(np.ascontiguousarray(target.weight * grad, dtype=pred.dtype))
        return total, losses, grads

    def _train_step(self, xs, ys, backend):
        """One batch: forward, losses, backward and the optimizer's update of the trainable
        weights -- skipped when the loss is not finite (the caller stops training then)."""
        run = self._forward_pass(xs, True, backend, self._train_rng)
        preds = [np.asarray(backend.to_numpy(o)) for o in run.outputs]
        total, losses, grads = self._loss_and_grads(ys, preds, run.masks)
        total += self._regularization_penalty(run)
        if not np.isfinite(total):
            return total, losses, preds, run.masks
        layer_grads, _ = self._graph.backward(
            run, [None if g is None else to_xp(backend, g) for g in grads])
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
        for layer in self._all_layers():
            layer._weights_changed()

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

    def _batch_logs(self, tracker, ys, losses, total, preds, masks, size):
        tracker.add("loss", total * size, size)
        several = len(self._targets) > 1
        for target, y, value, pred, mask in zip(self._targets, ys, losses, preds, masks):
            if target.loss is None:
                continue
            if several:
                tracker.add(f"{target.name}_loss", value * size, size)
            for metric, metric_name in zip(target.metrics, target.metric_names):
                tracker.add(f"{target.name}_{metric_name}" if several else metric_name,
                            *metric.totals(y, pred, mask))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True):
        """Train for ``epochs`` passes over ``(x, y)``; returns a :class:`History`.

        ``x``: an array, or one per input (a list, or a dict by input name); ``y`` likewise
        per output. ``batch_size`` defaults to 32 (a stateful model's fixed batch size).
        ``validation_split`` holds out the *last* fraction of the samples (before shuffling,
        as Keras does); ``validation_data=(x_val, y_val)`` gives them explicitly. Every input
        is checked before the first training step, and so are the callbacks' settings
        (checkpoint path templates and folders, monitored names), the validation size of a
        stateful model and the optimizer's state against the model's weights.

        When a batch's loss is NaN or infinite, training stops there (Keras's
        ``TerminateOnNaN``) with a ``RuntimeWarning``: that batch's update is not applied, so
        the model keeps the last finite weights; the epoch is not completed and its
        ``on_epoch_end`` callbacks (e.g. a checkpoint) do not run.
        """
        self._check_compiled()
        x, y = self._check_xy(x, y)
        epochs = V.check_int_at_least(epochs, "epochs", 0)
        verbose = V.check_verbose(verbose)
        V.check_bool(shuffle, "shuffle")
        validation_split = V.check_validation_split(validation_split)
        val = None
        if validation_data is not None:
            val = self._check_xy(*V.check_validation_data(validation_data),
                                 names=("validation_data x", "validation_data y"))
        elif validation_split:
            split_at = V.check_split_sizes(validation_split, len(x[0]))
            val = ([a[split_at:] for a in x], [None if a is None else a[split_at:] for a in y])
            x = [a[:split_at] for a in x]
            y = [None if a is None else a[:split_at] for a in y]
        n = len(x[0])
        V.check_sample_count(n)
        batch_size = self._check_batch_size(batch_size, n)
        if val is not None:
            self._check_batch_size(batch_size, len(val[0][0]), "validation samples")
        callbacks = V.check_callback_list(callbacks, C.Callback)
        self.optimizer.check_state_matches(self.weights)
        log_names = self._log_names()
        if val is not None:
            log_names += [f"val_{name}" for name in log_names]
        for callback in callbacks:
            callback.check_before_training(log_names)
        history = C.History()
        all_callbacks = [history, *callbacks]
        for callback in all_callbacks:
            callback.set_model(self)
            callback.on_train_begin()
        backend = self._backend()
        steps = -(-n // batch_size)
        self.stop_training = False
        for epoch in range(epochs):
            for callback in all_callbacks:
                callback.on_epoch_begin(epoch)
            order = self._train_rng.permutation(n) if shuffle else np.arange(n)
            progress = EpochProgress(verbose, epoch, epochs, steps)
            tracker = _Tracker(self._log_names())
            seen = 0
            for step in range(steps):
                index = order[step * batch_size:(step + 1) * batch_size]
                ys = [None if a is None else a[index] for a in y]
                total, losses, preds, masks = self._train_step([a[index] for a in x], ys,
                                                               backend)
                if not np.isfinite(total):
                    warnings.warn(f"fit stopped at epoch {epoch + 1}, batch {step + 1}: the "
                                  f"loss became non-finite ({total}); that batch's update was "
                                  "not applied, so the model keeps the last finite weights",
                                  RuntimeWarning, stacklevel=2)
                    self.stop_training = True
                    break
                self._batch_logs(tracker, ys, losses, total, preds, masks, len(index))
                seen += len(index)
                logs = tracker.logs()
                progress.update(step + 1, logs)
                for callback in all_callbacks:
                    callback.on_batch_end(step, logs)
            if self.stop_training and seen < n:
                progress.close(tracker.logs())
                break
            logs = tracker.logs()
            if val is not None:
                values = self._evaluate_arrays(val[0], val[1], batch_size, backend)
                logs.update({f"val_{k}": v for k, v in values.items()})
            progress.close(logs)
            for callback in all_callbacks:
                callback.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for callback in all_callbacks:
            callback.on_train_end()
        self.history = history
        return history

    def _evaluate_arrays(self, x, y, batch_size, backend) -> dict:
        tracker = _Tracker(self._log_names())
        n = len(x[0])
        for start in range(0, n, batch_size):
            xs = [a[start:start + batch_size] for a in x]
            ys = [None if a is None else a[start:start + batch_size] for a in y]
            run = self._forward_pass(xs, False, backend)
            preds = [np.asarray(backend.to_numpy(o)) for o in run.outputs]
            total, losses, _ = self._loss_and_grads(ys, preds, run.masks)
            total += self._regularization_penalty(run)
            self._batch_logs(tracker, ys, losses, total, preds, run.masks, len(xs[0]))
        return tracker.logs()

    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, return_dict=False):
        """The loss (and metrics) on ``(x, y)``: a float without metrics, else ``[loss,
        metric, ...]``; a dict with ``return_dict=True``. ``batch_size`` defaults to 32 (a
        stateful model's fixed batch size)."""
        self._check_compiled()
        x, y = self._check_xy(x, y)
        V.check_sample_count(len(x[0]))
        batch_size = self._check_batch_size(batch_size, len(x[0]))
        logs = self._evaluate_arrays(x, y, batch_size, self._backend())
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose=0):
        """The model's outputs for ``x``, computed ``batch_size`` samples at a time (default
        32; a stateful model's fixed batch size): a NumPy array, or a list of them for a
        model with several outputs."""
        x = self._check_x(x)
        n = len(x[0])
        batch_size = self._check_batch_size(batch_size, n)
        backend = self._backend()
        start_time = time.perf_counter()
        parts = []
        for start in range(0, n, batch_size):
            run = self._forward_pass([a[start:start + batch_size] for a in x], False, backend)
            parts.append([np.asarray(backend.to_numpy(o)) for o in run.outputs])
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
    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on the batch ``(x, y)``; returns the loss (and metrics) computed
        on the batch before the update, as :meth:`evaluate` reports them."""
        self._check_compiled()
        x, y = self._check_xy(x, y)
        self._check_one_batch(len(x[0]), "train_on_batch")
        self.optimizer.check_state_matches(self.weights)
        total, losses, preds, masks = self._train_step(x, y, self._backend())
        if not np.isfinite(total):
            warnings.warn(f"train_on_batch: the loss is non-finite ({total}); the update was "
                          "not applied", RuntimeWarning, stacklevel=2)
        tracker = _Tracker(self._log_names())
        self._batch_logs(tracker, y, losses, total, preds, masks, len(x[0]))
        return self._returned(tracker.logs(), return_dict)

    def test_on_batch(self, x, y, return_dict=False):
        """The loss (and metrics) on the batch ``(x, y)``, without training."""
        self._check_compiled()
        x, y = self._check_xy(x, y)
        self._check_one_batch(len(x[0]), "test_on_batch")
        return self._returned(self._evaluate_arrays(x, y, max(len(x[0]), 1), self._backend()),
                              return_dict)

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
        return save_model(self, path)

    def save_weights(self, path):
        """Write only the weights to ``path`` (numlstm's pickle-free archive, atomically),
        with each layer's name and shapes so that :meth:`load_weights` can check them.
        Returns the path written."""
        from .saving import save_weights
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
    """An epoch's running averages: ``add(name, sum, count)``; ``logs()`` gives sum/count per
    name, in the order of the names given."""

    def __init__(self, names):
        self._totals = {name: [0.0, 0.0] for name in names}

    def add(self, name, total, count) -> None:
        entry = self._totals[name]
        entry[0] += float(total)
        entry[1] += float(count)

    def logs(self) -> dict:
        return {name: (total / count if count else 0.0)
                for name, (total, count) in self._totals.items()}


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


def _check_unresolved(loss, metrics, loss_weights) -> list:
    """What compile can check before the model's outputs are known: every loss and metric
    name, every loss weight. Returns no targets (they are resolved at build)."""
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
    if metrics is not None:
        for entry in leaves(metrics):
            for name in V.check_metric_names([entry] if isinstance(entry, str) else entry):
                if name not in M.METRIC_NAMES:
                    raise ValueError(f"metrics must be names from {list(M.METRIC_NAMES)}; got "
                                     f"{name!r}")
    return []


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
