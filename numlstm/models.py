"""``Sequential`` models: a stack of layers with Keras's compile / fit / evaluate / predict,
saving and loading.

The model owns the training loop: each batch runs every layer's ``forward`` (keeping what the
backward pass needs), the loss's value and gradient, every layer's ``backward`` in reverse, and
one optimizer update of all weights. One backend runs the whole model (``backend=``, or the
backend in use at call time); the weights live on the host, so :meth:`Sequential.set_backend`
moves a trained model to another backend with identical weights.

Reproducibility: the model's ``seed`` seeds every layer that has none (layer ``i`` gets a seed
derived from ``(seed, i)``) and the generator that shuffles batches and draws dropout masks.
The same seed on the same backend gives the same weights and the same training run; the
generator's state is saved with the model, so training resumed from a file continues exactly
as an uninterrupted run would.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from . import callbacks as C
from . import losses as L
from . import metrics as M
from . import optimizers as O
from . import validation as V
from .backends import BACKEND_NAMES, backend_status, current_backend_name, get_backend
from .layers import LAYER_CLASSES, Bidirectional, Embedding, Input, Layer, LSTM, LSTMCell
from .layers.base import to_xp
from .progress import EpochProgress

#: The name and version of the saved-model format (inside a numlstm archive).
MODEL_FORMAT = "numlstm.sequential"
MODEL_FORMAT_VERSION = 1


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list, optional
        Optionally an :class:`~numlstm.layers.Input` first, then layers.
    backend : str, optional
        The backend that runs the model; None: the one in use at call time.
    seed : int ≥ 0, optional
        Seeds unseeded layers' weights and the training generator (shuffling, dropout).
        None draws a random seed.
    name : str, default "sequential"

    Examples
    --------
    >>> model = Sequential([Input((8, 8)), LSTM(64), Dense(10, activation="softmax")], seed=0)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> history = model.fit(x, y, epochs=5, validation_split=0.1)
    """

    def __init__(self, layers=None, backend=None, seed=None, name="sequential"):
        self._backend_name = None if backend is None else V.check_name(backend, "backend",
                                                                       BACKEND_NAMES)
        self.seed = V.check_seed(seed)
        self._seed = self.seed if self.seed is not None else int(
            np.random.SeedSequence().generate_state(1)[0])
        self._train_rng = np.random.default_rng([self._seed, 1])
        self.name = name
        self.layers: list[Layer] = []
        self._input: Input | None = None
        self.built = False
        self.compiled = False
        self.optimizer = self.loss = None
        self.metrics: list[M.Metric] = []
        self._compile_config = None
        self.stop_training = False
        self.history = None
        if layers is not None:
            for layer in V.check_layer_list(layers):
                self.add(layer)

    # -- structure ----------------------------------------------------------------------------
    def add(self, layer) -> None:
        """Append a layer (or set the ``Input``, which must come first)."""
        if isinstance(layer, Input):
            if self._input is not None or self.layers:
                raise ValueError("Input must be the first element of the model, and only one")
            self._input = layer
            return
        _check_new_layer(layer, self.layers, self.name)
        taken = {existing.name for existing in self.layers}
        if layer.name in taken:                  # a generated name: Keras's _1, _2 suffix
            layer.name = _unique_name(layer.name, taken)
        self.layers.append(layer)
        self.built = False

    def _seed_layers(self) -> None:
        for index, layer in enumerate(self.layers):
            if layer.seed is None and not layer.built:
                seed = int(np.random.SeedSequence([self._seed, index]).generate_state(1)[0])
                if isinstance(layer, Bidirectional):
                    layer._assign_seed(seed)
                else:
                    layer.seed = seed

    def build(self, input_shape=None) -> None:
        """Build every layer for ``input_shape`` (with the batch axis, None for any size)."""
        if not self.layers:
            raise ValueError("the model has no layers")
        if input_shape is None:
            if self._input is None:
                raise ValueError("the model has no Input: give Input(shape) as its first "
                                 "element, call build(input_shape), or call fit/predict")
            input_shape = self._input.batch_shape
        self._build(tuple(input_shape))

    def _build(self, shape: tuple, weights=None) -> None:
        """Build every layer for the batch shape ``shape``: with their initializers, or (what
        loading does) with ``weights``, every array checked against the shapes the layers'
        configurations call for before any layer is touched and without running an
        initializer."""
        self._seed_layers()
        pending, position = [], 0
        input_shape = shape
        for layer in self.layers:
            if isinstance(layer, LSTM) and layer.stateful and layer.batch_size is None:
                layer.batch_size = V.check_fixed_batch(shape, layer.name)
            if isinstance(layer, (LSTM, Bidirectional)):
                V.check_layer_input_rank(shape, 3, layer.name,
                                         "(batch, timesteps, features)")
            if weights is not None:
                count = len(layer.weight_specs(shape))
                pending.append((layer, layer.check_weights(
                    weights[position:position + count], shape), shape))
                position += count
            elif not layer.built:
                layer.build(shape)
            else:
                self._check_built_layer(layer, shape)
            shape = tuple(layer.compute_output_shape(shape))
        if weights is not None:
            if position != len(weights):
                raise ValueError(f"the layers need {position} weight arrays; got "
                                 f"{len(weights)}")
            for layer, checked, layer_input in pending:
                layer.install_weights(checked, layer_input)
        self._batch_shape = input_shape
        self._output_shape = shape
        self.built = True

    @staticmethod
    def _check_built_layer(layer, shape):
        weights = layer.trainable_weights
        if weights and not isinstance(layer, Embedding):
            V.check_built_features(weights[0].shape[0], shape, layer.name)
        if layer.input_shape is None or isinstance(layer, LSTM):
            layer.input_shape = shape

    @property
    def input_shape(self) -> tuple:
        self._require_built()
        return self._batch_shape

    @property
    def output_shape(self) -> tuple:
        self._require_built()
        return self._output_shape

    def _require_built(self):
        if not self.built:
            if self._input is not None:
                self.build()
            else:
                raise ValueError("the model is not built yet: give it an Input(shape) first, "
                                 "or call build(input_shape), fit or predict")

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
        for layer in self._all_layers():
            layer.backend = name
            layer._weights_changed()

    def _all_layers(self):
        for layer in self.layers:
            yield layer
            if isinstance(layer, Bidirectional):
                yield layer.forward_layer
                yield layer.backward_layer

    # -- weights ------------------------------------------------------------------------------
    def _weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers for w in layer.trainable_weights]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight array, layer by layer."""
        self._require_built()
        return [w.copy() for w in self._weights()]

    def set_weights(self, weights) -> None:
        self._require_built()
        weights = V.check_weight_list(
            weights, sum(len(layer.trainable_weights) for layer in self.layers))
        # Every layer's arrays are checked before any layer's are replaced.
        pending, position = [], 0
        for layer in self.layers:
            n = len(layer.trainable_weights)
            if n:
                pending.append((layer, layer.check_weights(list(weights[position:
                                                                        position + n]))))
            position += n
        for layer, checked in pending:
            layer.install_weights(checked)

    def count_params(self) -> int:
        self._require_built()
        return sum(layer.count_params() for layer in self.layers)

    def reset_states(self) -> None:
        """Zero the carried states of every stateful layer."""
        for layer in self.layers:
            if isinstance(layer, LSTM) and layer.stateful:
                layer.reset_states()

    # -- compile ------------------------------------------------------------------------------
    def compile(self, optimizer="adam", loss=None, metrics=None) -> None:
        """Choose the optimizer (name or object), the loss (name or object) and metrics
        (names); see :mod:`numlstm.optimizers`, :mod:`numlstm.losses`, :mod:`numlstm.metrics`."""
        V.check_required(loss, "loss", f"one of {sorted(L.LOSSES)} or a Loss object")
        optimizer = O.get(optimizer)
        loss = L.get(loss)
        self._metric_names = V.check_metric_names(metrics)
        self.optimizer, self.loss = optimizer, loss
        self._resolve_metrics()
        self.compiled = True

    def _resolve_metrics(self):
        units = None
        if self.built:
            units = self._output_shape[-1]
        elif self.layers and hasattr(self.layers[-1], "units"):
            units = self.layers[-1].units
        self.metrics = [M.get(name, self.loss, units or 0) for name in self._metric_names]

    def _check_compiled(self):
        if not self.compiled:
            raise ValueError("the model must be compiled before training or evaluating: call "
                             "model.compile(optimizer=..., loss=...)")

    # -- input checks -------------------------------------------------------------------------
    def _check_x(self, x, argument="x"):
        """Validate ``x`` against the model's input (building the model from it if needed);
        returns an array of the first layer's dtype (int64 ids for an Embedding)."""
        first = self.layers[0] if self.layers else None
        if first is None:
            raise ValueError("the model has no layers")
        if isinstance(first, Embedding):
            array = V.check_token_ids(x, first.input_dim, argument)
        else:
            array = V.as_float_array(x, argument, first.dtype)
        if not self.built:
            if self._input is not None:
                self.build()
            else:
                if array.ndim == 3 or isinstance(first, Embedding):
                    shape = (None, None) + tuple(array.shape[2:])
                else:
                    shape = (None,) + tuple(array.shape[1:])
                self.build(shape)
        return V.check_model_input_shape(array, self._batch_shape,
                                         self._describe_shape(self._batch_shape), argument)

    @staticmethod
    def _describe_shape(shape):
        names = ["batch", "timesteps", "features"] if len(shape) == 3 else \
            ["batch", "timesteps"] if len(shape) == 2 else [f"axis{i}" for i in
                                                            range(len(shape))]
        return "(" + ", ".join(n if d is None else f"{n}={d}" for n, d in zip(names, shape)) \
            + ")"

    def _check_y(self, y, n, argument="y"):
        """Validate targets for the compiled loss and the model's output."""
        return V.check_targets(
            y, n, (n,) + tuple(self._output_shape[1:]),
            sparse=isinstance(self.loss, L.SparseCategoricalCrossentropy),
            dtype=self.layers[-1].dtype, argument=argument,
            probabilities=self.loss.name if isinstance(
                self.loss, (L.BinaryCrossentropy, L.CategoricalCrossentropy)) else None)

    def _check_xy(self, x, y, names=("x", "y")):
        x = self._check_x(x, names[0])
        V.check_targets_given(y, len(x), names)
        return x, self._check_y(y, len(x), names[1])

    def _check_batch_size(self, batch_size, n, samples="samples"):
        batch_size = V.check_int_at_least(batch_size, "batch_size", 1)
        fixed = [layer.batch_size for layer in self.layers
                 if isinstance(layer, LSTM) and layer.stateful]
        return V.check_stateful_batch_size(batch_size, fixed[0] if fixed else None, n,
                                           samples=samples)

    # -- running ------------------------------------------------------------------------------
    def _backend(self):
        return get_backend(self._backend_name)

    def _run_layers(self, x, training, backend, rng=None):
        """Run every layer; returns the output and its mask (a host bool array, or None) for
        the loss and metrics. Masks travel with the call, never on the layers, so that
        threads may share a model. Floating data is cast to each layer's dtype as it enters
        it (as Keras does), so layers of different dtypes can follow one another."""
        mask = None
        out = to_xp(backend, x)
        for layer in self.layers:
            if out.dtype.kind == "f" and out.dtype != layer.dtype:
                out = out.astype(layer.dtype)
            next_mask = layer.compute_mask(mask, out)
            out = layer.forward(out, mask=mask, training=training, backend=backend, rng=rng)
            mask = next_mask
        if mask is not None and out.ndim == 3 and tuple(mask.shape) == tuple(out.shape[:2]):
            return out, np.asarray(backend.to_numpy(mask), dtype=bool)
        return out, None

    def _forward(self, x, training, backend, rng=None):
        """:meth:`_run_layers`'s output; its mask is kept in ``_output_mask`` (for callers
        that run one call at a time, such as gradient checks)."""
        out, self._output_mask = self._run_layers(x, training, backend, rng)
        return out

    def _backward(self, grad):
        """Back-propagate dL/d(output) through every layer (filling their ``grads``); returns
        dL/dx (None for token ids). A gradient leaving a layer is cast to the dtype of the
        layer before it, the dtype its input had."""
        for index in range(len(self.layers) - 1, -1, -1):
            grad = self.layers[index].backward(grad)
            if grad is not None and index and grad.dtype != self.layers[index - 1].dtype:
                grad = grad.astype(self.layers[index - 1].dtype)
        return grad

    def _train_step(self, xb, yb, backend):
        """One batch: forward, loss, backward and the optimizer's update -- which is skipped
        when the loss is not finite (the caller stops training then)."""
        out, mask = self._run_layers(xb, True, backend, self._train_rng)
        pred = backend.to_numpy(out)
        loss, grad = self.loss.value_and_grad(yb, pred, mask)
        if not np.isfinite(loss):
            return loss, pred, mask
        self._backward(to_xp(backend, np.ascontiguousarray(grad, dtype=pred.dtype)))
        grads = [g for layer in self.layers for g in layer.grads]
        self.optimizer.apply_gradients(grads, self._weights())
        for layer in self._all_layers():
            layer._weights_changed()
        return loss, pred, mask

    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True):
        """Train for ``epochs`` passes over ``(x, y)``; returns a :class:`History`.

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
        self._resolve_metrics()
        epochs = V.check_int_at_least(epochs, "epochs", 0)
        verbose = V.check_verbose(verbose)
        V.check_bool(shuffle, "shuffle")
        validation_split = V.check_validation_split(validation_split)
        val = None
        if validation_data is not None:
            val = self._check_xy(*V.check_validation_data(validation_data),
                                 names=("validation_data x", "validation_data y"))
        elif validation_split:
            split_at = V.check_split_sizes(validation_split, len(x))
            x, val = x[:split_at], (x[split_at:], y[split_at:])
            y = y[:split_at]
        V.check_sample_count(len(x))
        batch_size = self._check_batch_size(batch_size, len(x))
        if val is not None:
            self._check_batch_size(batch_size, len(val[0]), "validation samples")
        callbacks = V.check_callback_list(callbacks, C.Callback)
        self.optimizer.check_state_matches(self._weights())
        log_names = list(self._logs(np.zeros(1 + len(self.metrics))))
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
        n = len(x)
        steps = -(-n // batch_size)
        self.stop_training = False
        for epoch in range(epochs):
            for callback in all_callbacks:
                callback.on_epoch_begin(epoch)
            order = self._train_rng.permutation(n) if shuffle else np.arange(n)
            progress = EpochProgress(verbose, epoch, epochs, steps)
            totals = np.zeros(1 + len(self.metrics))
            seen = 0
            for step in range(steps):
                index = order[step * batch_size:(step + 1) * batch_size]
                yb = y[index]
                loss, pred, mask = self._train_step(x[index], yb, backend)
                if not np.isfinite(loss):
                    warnings.warn(f"fit stopped at epoch {epoch + 1}, batch {step + 1}: the "
                                  f"loss became non-finite ({loss}); that batch's update was "
                                  "not applied, so the model keeps the last finite weights",
                                  RuntimeWarning, stacklevel=2)
                    self.stop_training = True
                    break
                size = len(index)
                totals += size * np.array([loss] + [m(yb, pred, mask) for m in self.metrics])
                seen += size
                logs = self._logs(totals / seen)
                progress.update(step + 1, logs)
                for callback in all_callbacks:
                    callback.on_batch_end(step, logs)
            if self.stop_training and seen < n:
                progress.close(self._logs(totals / max(seen, 1)))
                break
            logs = self._logs(totals / seen)
            if val is not None:
                values = self._evaluate_arrays(val[0], val[1], batch_size, backend)
                logs.update({f"val_{k}": v for k, v in self._logs(values).items()})
            progress.close(logs)
            for callback in all_callbacks:
                callback.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for callback in all_callbacks:
            callback.on_train_end()
        self.history = history
        return history

    def _logs(self, values) -> dict:
        names = ["loss"] + [m.name for m in self.metrics]
        return {name: float(v) for name, v in zip(names, values)}

    def _evaluate_arrays(self, x, y, batch_size, backend):
        totals = np.zeros(1 + len(self.metrics))
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            out, mask = self._run_layers(xb, False, backend)
            pred = backend.to_numpy(out)
            loss, _ = self.loss.value_and_grad(yb, pred, mask)
            totals += len(xb) * np.array([loss] + [m(yb, pred, mask) for m in self.metrics])
        return totals / max(len(x), 1)

    def evaluate(self, x=None, y=None, batch_size=32, verbose=0, return_dict=False):
        """The loss (and metrics) on ``(x, y)``: a float without metrics, else ``[loss,
        metric, ...]``; a dict with ``return_dict=True``."""
        self._check_compiled()
        x, y = self._check_xy(x, y)
        self._resolve_metrics()
        batch_size = self._check_batch_size(batch_size, len(x))
        logs = self._logs(self._evaluate_arrays(x, y, batch_size, self._backend()))
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=32, verbose=0):
        """The model's outputs for ``x``, computed ``batch_size`` samples at a time (a NumPy
        array)."""
        x = self._check_x(x)
        batch_size = self._check_batch_size(batch_size, len(x))
        backend = self._backend()
        start_time = time.perf_counter()
        parts = [backend.to_numpy(self._run_layers(x[s:s + batch_size], False, backend)[0])
                 for s in range(0, len(x), batch_size)]
        if verbose:
            print(f"predicted {len(x)} samples in {time.perf_counter() - start_time:.2f}s")
        if not parts:
            return np.zeros((0,) + tuple(self._output_shape[1:]), self.layers[-1].dtype)
        return np.concatenate(parts, axis=0)

    def __call__(self, x, training=False):
        """The outputs for ``x`` in one batch (with ``training=True``: dropout active, masks
        drawn from the model's training generator)."""
        x = self._check_x(x)
        if not V.check_bool(training, "training"):
            return self.predict(x, batch_size=max(len(x), 1))
        backend = self._backend()
        return backend.to_numpy(self._run_layers(x, True, backend, self._train_rng)[0])

    # -- summary ------------------------------------------------------------------------------
    def summary(self, print_fn=None) -> None:
        """Print a table of the layers, their output shapes and parameter counts."""
        self._require_built()
        print_fn = print_fn or print
        rows = [("Layer (type)", "Output Shape", "Param #")]
        shape = self._batch_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            rows.append((f"{layer.name} ({type(layer).__name__})", str(tuple(shape)),
                         f"{layer.count_params():,}"))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "-" * sum(widths)
        print_fn(f'Model: "{self.name}"  (backend: {self.backend_name})')
        print_fn(line)
        for i, row in enumerate(rows):
            print_fn("".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            print_fn("=" * sum(widths) if i == 0 else line)
        total = self.count_params()
        # every numlstm weight is trained (there is no layer freezing), so the non-trainable
        # count is always 0; the line is kept so that the summary reads like Keras's
        trainable = sum(w.size for w in self._weights())
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")

    # -- saving -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        self._require_built()
        return {"name": self.name, "seed": self._seed, "backend": self._backend_name,
                "input": None if self._input is None else self._input.get_config(),
                "batch_shape": list(self._batch_shape),
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers]}

    def save(self, path):
        """Write the model to ``path`` (one file, atomically): its configuration, weights,
        compile settings, optimizer state and training-generator state; see
        :func:`load_model`. Returns the path written.

        Weights or optimizer slots holding NaN or inf (a diverged run) raise ``ValueError``
        and write nothing: :func:`load_model` would refuse them, and an existing file at
        ``path`` (say, the last good checkpoint) stays as it was."""
        from . import __version__
        from .archive import save_archive
        config = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
                  "numlstm_version": __version__, "model": self.get_config(),
                  "compile": None, "optimizer_iterations": 0,
                  "train_rng": _jsonable_rng_state(self._train_rng)}
        arrays = {f"weights/{i}": w for i, w in enumerate(self._weights())}
        if self.compiled:
            config["compile"] = {"optimizer": self.optimizer.get_config(),
                                 "loss": self.loss.get_config(),
                                 "metrics": list(self._metric_names)}
            iterations, slots = self.optimizer.get_state()
            config["optimizer_iterations"] = iterations
            arrays.update({f"optimizer/{k}": v for k, v in slots.items()})
        names = [f"weights of layer {layer.name!r} (array {index})" for layer in self.layers
                 for index in range(len(layer.trainable_weights))]
        V.check_all_finite({**dict(zip(names, arrays.values())),
                            **{f"optimizer state {k[len('optimizer/'):]!r}": v
                               for k, v in arrays.items() if k.startswith("optimizer/")}},
                           f"cannot save the model to {str(path)!r}")
        return save_archive(path, config, arrays)

    def export_onnx(self, path, *, opset=None):
        """Write the model as an ONNX graph that ONNX Runtime and other ONNX servers run with
        ``predict``'s outputs (needs ``numlstm[onnx]``); see
        :func:`numlstm.interop.onnx_export.export_onnx`. Returns the path written."""
        from .interop.onnx_export import DEFAULT_OPSET, export_onnx
        return export_onnx(self, path, opset=DEFAULT_OPSET if opset is None else opset)


def _check_new_layer(layer, layers: list, model_name: str) -> None:
    """What a :class:`~numlstm.Sequential` model can append: a numlstm layer not already in
    ``layers``, whose name is unique there unless it was generated (the model suffixes it),
    an ``Embedding`` only first, no ``LSTM(return_state=True)`` and no
    ``Bidirectional(merge_mode=None)`` (their two outputs cannot be passed on)."""
    if not isinstance(layer, Layer) or isinstance(layer, LSTMCell):
        raise TypeError(f"layers must be numlstm layers (LSTM, Dense, ...); got "
                        f"{type(layer).__name__}" + (" (one timestep: a model runs "
                        "sequences, with LSTM)" if isinstance(layer, LSTMCell) else ""))
    if any(existing is layer for existing in layers):
        raise ValueError(f"layer {layer.name!r} is already in the model")
    if getattr(layer, "_name_given", True) and any(e.name == layer.name for e in layers):
        raise ValueError(f"layer names must be unique within a model: name {layer.name!r} is "
                         f"already used by another layer of {model_name!r}; give this "
                         f"{type(layer).__name__} another name=")
    if isinstance(layer, Embedding) and layers:
        raise ValueError("Embedding must be the first layer of a model (it reads token ids)")
    if isinstance(layer, LSTM) and layer.return_state:
        raise ValueError(f"LSTM {layer.name!r} has return_state=True, which a Sequential "
                         "model cannot pass on; use return_state=False in a model")
    if isinstance(layer, Bidirectional) and layer.merge_mode is None:
        raise ValueError("Bidirectional(merge_mode=None) returns two outputs, which a "
                         "Sequential model cannot pass on; use concat, sum, mul or ave")


def _unique_name(base: str, taken) -> str:
    """``base_1``, ``base_2``, ...: the first not in ``taken`` (Keras's naming of repeated
    layers)."""
    index = 1
    while f"{base}_{index}" in taken:
        index += 1
    return f"{base}_{index}"


def _jsonable_rng_state(rng) -> dict:
    state = rng.bit_generator.state
    # PCG64's 128-bit integers are written as decimal strings (JSON readers differ on big ints).
    return {"bit_generator": state["bit_generator"],
            "state": {k: str(v) for k, v in state["state"].items()},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}


def _restore_rng(data) -> np.random.Generator:
    """The generator whose state :func:`_jsonable_rng_state` wrote, every field checked:
    PCG64's ``state`` and ``inc`` decimal strings of integers in [0, 2**128), ``has_uint32``
    0 or 1, ``uinteger`` in [0, 2**32)."""
    def bad(what):
        return ValueError(f"train_rng {what}")
    if not isinstance(data, dict) or data.get("bit_generator") != "PCG64":
        raise bad(f"names an unknown bit generator "
                  f"{data.get('bit_generator') if isinstance(data, dict) else data!r}")
    state = data.get("state")
    if not isinstance(state, dict) or set(state) != {"state", "inc"}:
        raise bad(f"must hold PCG64's 'state' and 'inc'; got {state!r}")
    values = {}
    for key, text in state.items():
        if not isinstance(text, str) or not text.isdigit() or len(text) > 39 \
                or int(text) >= 1 << 128:
            raise bad(f"{key} must be a decimal integer in [0, 2**128); got {text!r}")
        values[key] = int(text)
    has_uint32 = V.check_int_at_least(data.get("has_uint32"), "train_rng has_uint32", 0, 1)
    uinteger = V.check_int_at_least(data.get("uinteger"), "train_rng uinteger", 0,
                                    (1 << 32) - 1)
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": values,
                               "has_uint32": has_uint32, "uinteger": uinteger}
    return rng


def load_model(path, backend=None, *, max_bytes=None) -> Sequential:
    """Rebuild a model written by :meth:`Sequential.save`: layers, weights, compile settings,
    optimizer state. ``backend`` overrides the saved backend choice (e.g. a model trained on
    ``cuda`` served on ``numba``). Only the known layer classes can be named by a file, and
    nothing in the file is executed. A missing, truncated, tampered or foreign file raises
    :class:`numlstm.errors.ModelFileError` naming the file.

    A bad ``backend`` raises ``ValueError``/``TypeError`` (an unusable one
    :class:`~numlstm.errors.BackendUnavailableError`) before the file is read. Without
    ``backend``, a model saved for a backend that cannot run here (e.g. ``cuda`` on a machine
    without a GPU) raises :class:`~numlstm.errors.BackendUnavailableError` naming the saved
    backend and the call that loads it on another one, rather than failing later in
    ``predict``.

    Nothing is built before the whole configuration has been checked: every value's type and
    range by the layers' own constructors (which allocate nothing), and every weight array's
    shape against what the configuration calls for; the weights then come from the file and
    no initializer runs. ``max_bytes`` bounds the bytes the file's arrays may declare in all
    (None: :data:`numlstm.archive.DEFAULT_MAX_BYTES`, 4 GiB); see :mod:`numlstm.archive` for
    what else the loader refuses."""
    from .archive import load_archive
    from .errors import ModelFileError
    if backend is not None:
        V.check_name(backend, "backend", BACKEND_NAMES)
        get_backend(backend)                 # an unusable backend fails before any file work
    config, arrays = load_archive(path, **({} if max_bytes is None else
                                           {"max_bytes": max_bytes}))
    model_config = config.get("model") if isinstance(config, dict) else None
    saved = model_config.get("backend") if isinstance(model_config, dict) else None
    if backend is None and saved in BACKEND_NAMES:
        _require_saved_backend(path, saved)
    try:
        return _model_from_archive(config, arrays, backend)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError, MemoryError) as error:
        # Any of these from a file that passed the archive's checks means a config that no
        # numlstm wrote (MemoryError included, although the checks leave nothing large to
        # allocate): one error type, naming the file.
        raise ModelFileError(path, f"not a valid numlstm model ({type(error).__name__}: "
                                   f"{_short(error)})") from None


def _short(error, limit: int = 300) -> str:
    """An exception's message, cut to ``limit`` characters (a tampered value may be huge)."""
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "..."


def _require_saved_backend(path, saved: str) -> None:
    """Raise BackendUnavailableError when the backend a model was saved for cannot run here,
    with the call that loads it on one that can."""
    from .errors import BackendUnavailableError
    status = backend_status(saved)
    if status.available:
        return
    usable = [n for n in ("numba", "numpy") if backend_status(n).available]
    alternative = usable[0] if usable else "numpy"
    fix = (f"the model in {str(path)!r} was saved to run on {saved!r}; load it on a backend "
           f"that runs here with load_model({str(path)!r}, backend={alternative!r}) (a loaded "
           "model moves with model.set_backend(...))")
    if status.fix:
        fix += f", or make {saved!r} usable: {status.fix}"
    raise BackendUnavailableError(saved, status.reason, fix)


def _model_from_archive(config, arrays, backend):
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise ValueError(f"the file holds no numlstm model (format "
                         f"{config.get('format') if isinstance(config, dict) else None!r})")
    if config.get("format_version") != MODEL_FORMAT_VERSION:
        raise ValueError(f"unsupported model format version {config.get('format_version')!r}")
    model_config = config["model"]
    if not isinstance(model_config, dict) or not isinstance(model_config["layers"], list):
        raise TypeError("'model' must be an object with a list of 'layers'")
    layers = []
    for entry in model_config["layers"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise TypeError(f"a layer entry must be an object with a 'config' object; got "
                            f"{_short(repr(entry), 80)}")
        class_name = entry["class_name"]
        if class_name not in LAYER_CLASSES:
            raise ValueError(f"the file names an unknown layer class {class_name!r}; known: "
                             f"{sorted(LAYER_CLASSES)}")
        layer = LAYER_CLASSES[class_name].from_config(dict(entry["config"]))
        if any(layer.name == earlier.name for earlier in layers):
            layer._name_given = False        # a file written before names were unique
        layers.append(layer)
    items = list(layers)
    if model_config.get("input") is not None:
        spec = dict(model_config["input"])
        items.insert(0, Input(tuple(spec.pop("shape")), **spec))
    model = Sequential(items, backend=backend if backend is not None else
                       model_config.get("backend"), seed=model_config["seed"],
                       name=V.check_string(model_config.get("name", "sequential"), "name"))
    n = sum(1 for key in arrays if key.startswith("weights/"))
    weights = [arrays[f"weights/{i}"] for i in range(n)]
    # Every weight's shape is checked against the layers' configs before anything is built,
    # and the layers take the file's arrays: no initializer runs, nothing large is allocated.
    model._build(V.check_batch_shape(model_config["batch_shape"]), weights)
    if backend is not None:
        model.set_backend(backend)           # the layers' own backend settings follow too
    model._train_rng = _restore_rng(config["train_rng"])
    compile_config = config.get("compile")
    if compile_config is not None:
        model.compile(optimizer=O.get(compile_config["optimizer"]),
                      loss=L.get(compile_config["loss"]), metrics=compile_config["metrics"])
        slots = {k[len("optimizer/"):]: v for k, v in arrays.items()
                 if k.startswith("optimizer/")}
        model.optimizer.set_state(config["optimizer_iterations"], slots, model._weights())
    unknown = sorted(k for k in arrays if not k.startswith(("weights/", "optimizer/")))
    if unknown:
        raise ValueError(f"the file holds an array {unknown[0]!r} that no part of a model uses")
    return model
