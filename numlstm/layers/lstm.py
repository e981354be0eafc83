"""The Keras-style ``LSTM`` layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np

from .. import initializers
from .. import validation as V
from ..activations import ACTIVATION_NAMES
from ..backends import get_backend, selection_key
from .base import Layer, to_xp


class LSTM(Layer):
    """Long Short-Term Memory layer (Hochreiter & Schmidhuber, 1997), Keras's semantics.

    For each timestep ``t`` of an input ``x`` of shape (batch, timesteps, features)::

        z   = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias
        i   = σ(z[:, 0H:1H])      input gate
        f   = σ(z[:, 1H:2H])      forget gate
        g   = act(z[:, 2H:3H])    candidate cell
        o   = σ(z[:, 3H:4H])      output gate
        c_t = f * c_{t-1} + i * g
        h_t = o * act(c_t)

    with σ = ``recurrent_activation``, act = ``activation`` and ``H = units``.

    Parameters
    ----------
    units : int
        Dimensionality of the output and of both states (``H``).
    activation : str, default "tanh"
        ``act`` above. One of "tanh", "sigmoid", "relu", "linear" (or None), "hard_sigmoid"
        (Keras 3), "hard_sigmoid_keras2" (Keras 2).
    recurrent_activation : str, default "sigmoid"
        σ above; the same choices.
    use_bias : bool, default True
    kernel_initializer, recurrent_initializer, bias_initializer : str or callable
        Defaults "glorot_uniform", "orthogonal", "zeros"; see :mod:`numlstm.initializers`.
    unit_forget_bias : bool, default True
        Initialise the forget gate's bias to ones, whatever ``bias_initializer`` says
        (Jozefowicz et al., 2015), as Keras does.
    return_sequences : bool, default False
        Return the output at every timestep (batch, timesteps, units) instead of the last one
        (batch, units).
    return_state : bool, default False
        Return ``[output, h, c]`` instead of ``output``.
    go_backwards : bool, default False
        Process the sequence backwards. As in Keras, the returned sequence is then in
        processing order (reversed with respect to the input).
    zero_output_for_mask : bool, default False
        Output zeros at masked timesteps instead of the carried-over hidden state.
    dropout : float in [0, 1), default 0
        Fraction of the input features dropped in training. As in Keras, one Bernoulli mask
        per sequence (per batch row and feature), the same at every timestep, with the kept
        values scaled by ``1/(1 - dropout)``.
    recurrent_dropout : float in [0, 1), default 0
        The same for ``h_{t-1}`` where it enters the recurrent product (one mask per batch row
        and unit); applied inside the backend's fused kernel.
    stateful : bool, default False
        Carry the final states of one call (or training batch) over as the initial states of
        the next; :meth:`reset_states` zeroes them. Needs a fixed batch size, given by
        ``Input(shape, batch_size=...)`` in a model or ``batch_size`` here.
    batch_size : int, optional
        The fixed batch size of a stateful layer used on its own.
    seed : int ≥ 0, optional
        Seed for the initializers: the same seed gives the same weights.
    backend : str, optional
        The backend to run on ("numpy", "numba", "cuda", "cupy"); None: the one in use at call
        time (see :func:`numlstm.get_backend`).
    dtype : str, default "float32"
        "float32" or "float64"; floating inputs are cast to it.
    name : str, optional

    Attributes
    ----------
    kernel : ndarray (features, 4*units)
    recurrent_kernel : ndarray (units, 4*units)
    bias : ndarray (4*units,) or None
        The weights; assigning to them checks the shape and casts to the layer's dtype.
    built : bool
    last_backend : str or None
        The name of the backend that ran the most recent call.

    Call arguments
    --------------
    x : array (batch, timesteps, features)
    mask : bool array (batch, timesteps), optional
        True where a step is processed. Any pattern works. At a masked step the states carry
        over and the output is the carried hidden state: the previous step's output, or the
        initial ``h`` before the first processed step (see ``zero_output_for_mask``).
    initial_state : list [h0, c0] of arrays (batch, units), optional

    Returns
    -------
    output : ndarray (batch, units), or (batch, timesteps, units) with ``return_sequences``;
    or ``[output, h, c]`` with ``return_state``.

    Examples
    --------
    >>> layer = numlstm.LSTM(32, return_sequences=True, seed=0)
    >>> layer(np.zeros((4, 10, 8), np.float32)).shape
    (4, 10, 32)
    """

    _weight_names = ("kernel", "recurrent_kernel", "bias")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, return_sequences=False,
                 return_state=False, go_backwards=False, zero_output_for_mask=False, seed=None,
                 backend=None, dtype="float32", name=None, dropout=0.0, recurrent_dropout=0.0,
                 stateful=False, batch_size=None):
        self.dropout = V.check_rate(dropout, "dropout")
        self.recurrent_dropout = V.check_rate(recurrent_dropout, "recurrent_dropout")
        self.stateful = V.check_bool(stateful, "stateful")
        self.batch_size = None if batch_size is None else V.check_positive_int(batch_size,
                                                                               "batch_size")
        self.units = V.check_positive_int(units, "units", V.MAX_LAYER_SIZE)
        self._activation_code = V.check_activation(activation, "activation")
        self._recurrent_activation_code = V.check_activation(recurrent_activation,
                                                             "recurrent_activation")
        self.use_bias = V.check_bool(use_bias, "use_bias")
        self._kernel_init = initializers.resolve(kernel_initializer, "kernel_initializer")
        self._recurrent_init = initializers.resolve(recurrent_initializer,
                                                    "recurrent_initializer")
        self._bias_init = initializers.resolve(bias_initializer, "bias_initializer")
        self._initializer_specs = (kernel_initializer, recurrent_initializer, bias_initializer)
        self.unit_forget_bias = V.check_bool(unit_forget_bias, "unit_forget_bias")
        self.return_sequences = V.check_bool(return_sequences, "return_sequences")
        self.return_state = V.check_bool(return_state, "return_state")
        self.go_backwards = V.check_bool(go_backwards, "go_backwards")
        self.zero_output_for_mask = V.check_bool(zero_output_for_mask, "zero_output_for_mask")
        super().__init__(name="lstm" if name is None else name, dtype=dtype, seed=seed,
                         backend=backend)
        self.input_features: int | None = None
        self._states = None                # a stateful layer's carried [h, c]
        self._cache = None                 # a training forward's _PendingBackward
        self._step_plan: _StepPlan | None = None
        self._step_buffers: _StepBuffers | None = None
        self._kernel = self._recurrent_kernel = self._bias = None
        self.last_backend: str | None = None

    # -- properties -----------------------------------------------------------------------------
    @property
    def activation(self) -> str:
        return ACTIVATION_NAMES[self._activation_code]

    @property
    def recurrent_activation(self) -> str:
        return ACTIVATION_NAMES[self._recurrent_activation_code]

    @property
    def kernel(self):
        return self._kernel

    @kernel.setter
    def kernel(self, value):
        self._set_one_weight(0, value)

    @property
    def recurrent_kernel(self):
        return self._recurrent_kernel

    @recurrent_kernel.setter
    def recurrent_kernel(self, value):
        self._set_one_weight(1, value)

    @property
    def bias(self):
        return self._bias

    @bias.setter
    def bias(self, value):
        if not self.use_bias:
            raise ValueError(f"layer {self.name!r} has use_bias=False: it has no bias to set")
        self._set_one_weight(2, value)

    def _set_one_weight(self, index, value):
        """Replace one weight, checked as ``set_weights`` checks it."""
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: set all its weights "
                             "with set_weights([kernel, recurrent_kernel, bias])")
        weights = self.get_weights()
        weights[index] = value
        self.set_weights(weights)

    def __repr__(self) -> str:
        shape = f"features={self.input_features}, " if self.built else ""
        return (f"LSTM(units={self.units}, {shape}activation={self.activation!r}, "
                f"recurrent_activation={self.recurrent_activation!r}, "
                f"return_sequences={self.return_sequences}, backend={self.backend!r})")

    # -- weights --------------------------------------------------------------------------------
    def weight_specs(self, input_shape) -> list[tuple[str, tuple]]:
        """``kernel (features, 4*units)``, ``recurrent_kernel (units, 4*units)`` and, with
        ``use_bias``, ``bias (4*units,)`` for inputs of shape (batch, timesteps, features)."""
        features = self._features_of(input_shape)
        units = self.units
        specs = [("kernel", (features, 4 * units)), ("recurrent_kernel", (units, 4 * units))]
        return specs + [("bias", (4 * units,))] if self.use_bias else specs

    @staticmethod
    def _features_of(input_shape) -> int:
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
            raise ValueError("input_shape must be a 3-tuple (batch, timesteps, features); "
                             f"got {input_shape!r}")
        return V.check_positive_int(input_shape[2], "input_shape[2] (features)")

    def build(self, input_shape) -> None:
        """Create the weights for inputs of shape (batch, timesteps, features).

        ``input_shape`` may use None for the batch and timesteps; only ``features`` is used.
        """
        features = self._features_of(input_shape)
        rng = np.random.default_rng(self.seed)
        units, dtype = self.units, self.dtype
        kernel = self._kernel_init((features, 4 * units), dtype, rng)
        recurrent_kernel = self._recurrent_init((units, 4 * units), dtype, rng)
        weights = [kernel, recurrent_kernel]
        if self.use_bias:
            if self.unit_forget_bias:
                # Keras: bias_initializer for i, ones for f, bias_initializer for c and o.
                bias = np.concatenate([
                    np.asarray(self._bias_init((units,), dtype, rng), dtype),
                    np.ones(units, dtype),
                    np.asarray(self._bias_init((2 * units,), dtype, rng), dtype)])
            else:
                bias = self._bias_init((4 * units,), dtype, rng)
            weights.append(bias)
        checked = V.check_lstm_weights(weights, features, units, dtype, self.use_bias,
                                       argument="initialized weights")
        self.install_weights((features, checked), input_shape)

    def _assign(self, weights) -> None:
        # C order: the optimizers update the arrays in place and the kernels read them as is.
        weights = [np.ascontiguousarray(w) for w in weights]
        self._kernel, self._recurrent_kernel = weights[0], weights[1]
        self._bias = weights[2] if self.use_bias else None
        self._weights_changed()

    def _weights_changed(self) -> None:
        self._step_plan = None             # it holds the weights moved to the backend
        self._step_buffers = None

    def get_weights(self) -> list[np.ndarray]:
        """``[kernel, recurrent_kernel, bias]`` (Keras layout, gate order i, f, c, o); copies."""
        if not self.built:
            return []
        weights = [self.kernel, self.recurrent_kernel]
        if self.use_bias:
            weights.append(self.bias)
        return [w.copy() for w in weights]

    def check_weights(self, weights, input_shape=None):
        """Validate ``[kernel, recurrent_kernel(, bias)]`` without changing the layer; returns
        ``(features, arrays)`` for :meth:`install_weights`. ``features`` is the built layer's,
        ``input_shape``'s when given, else the kernel's."""
        if input_shape is not None:
            features = self._features_of(input_shape)
        elif self.built:
            features = self.input_features
        else:
            kernel_shape = np.shape(weights[0]) if isinstance(weights, (list, tuple)) and \
                weights else ()
            if len(kernel_shape) != 2:
                raise ValueError("weights[0] (kernel) must have shape (features, 4*units) = "
                                 f"(features, {4 * self.units}); got shape {kernel_shape}")
            features = V.check_positive_int(int(kernel_shape[0]), "kernel features")
        checked = V.check_lstm_weights(weights, features, self.units, self.dtype,
                                       self.use_bias)
        return features, [w.copy() for w in checked]

    def install_weights(self, checked, input_shape=None) -> None:
        """Put what :meth:`check_weights` returned in place (cannot fail), building the layer
        for ``input_shape`` (or, unbuilt, for the kernel's features) without initializers."""
        features, arrays = checked
        self.input_features = features
        self._assign(arrays)
        if input_shape is not None:
            self.input_shape = tuple(input_shape)
            if self.stateful and self.batch_size is None and input_shape[0] is not None:
                self.batch_size = V.check_positive_int(input_shape[0], "batch size")
        elif self.input_shape is None:
            self.input_shape = (self.batch_size, None, features)
        self.built = True

    def set_weights(self, weights) -> None:
        """Set ``[kernel (features, 4*units), recurrent_kernel (units, 4*units), bias (4*units,)]``.

        An unbuilt layer is built for the kernel's number of features.
        """
        self.install_weights(self.check_weights(weights))

    def count_params(self) -> int:
        """``4*units*(features + units + 1)`` (without the ``+ 1`` when ``use_bias=False``)."""
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: call it on an input or "
                             "call build((batch, timesteps, features)) first")
        return 4 * self.units * (self.input_features + self.units + int(self.use_bias))

    def get_config(self) -> dict:
        """The constructor arguments, as plain data."""
        def spec(value):
            # A Python callable cannot be stored: its name is, marked as such, so that a saved
            # model loads (loading never runs initializers; see numlstm.initializers.resolve).
            if isinstance(value, (str, dict)):
                return value
            return {"callable": getattr(value, "__qualname__", None) or repr(value)}
        return {
            "units": self.units, "activation": self.activation,
            "recurrent_activation": self.recurrent_activation, "use_bias": self.use_bias,
            "kernel_initializer": spec(self._initializer_specs[0]),
            "recurrent_initializer": spec(self._initializer_specs[1]),
            "bias_initializer": spec(self._initializer_specs[2]),
            "unit_forget_bias": self.unit_forget_bias,
            "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "zero_output_for_mask": self.zero_output_for_mask, "seed": self.seed,
            "backend": self.backend, "dtype": self.dtype.name, "name": self.name,
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
            "stateful": self.stateful, "batch_size": self.batch_size,
        }

    # -- running over a sequence: the one route into the backend -------------------------------
    def __call__(self, x, mask=None, initial_state=None):
        x = V.check_sequence_input(x, dtype=self.dtype, features=self.input_features,
                                   argument=f"{type(self).__name__} input")
        batch, timesteps, features = x.shape
        if not self.built:
            self.build((None, None, features))
        mask = V.check_mask(mask, batch, timesteps)
        backend = get_backend(self.backend)
        h0 = c0 = None                     # None: zeros, or a stateful layer's carried states
        if initial_state is not None or not self.stateful:
            h0, c0 = (backend.asarray(s) for s in
                      V.check_initial_state(initial_state, batch, self.units, self.dtype))
        run = self._run(backend, to_xp(backend, x),
                        None if mask is None else to_xp(backend, mask), h0, c0)
        output = run.sequence if self.return_sequences else run.last
        output, h, c = (np.array(backend.to_numpy(a)) for a in (output, run.h, run.c))
        return [output, h, c] if self.return_state else output

    def forward(self, x, mask=None, training=False, backend=None, rng=None):
        """Run on backend arrays ``x (batch, timesteps, features)``; keeps what
        :meth:`backward` needs when ``training``. Dropout masks are drawn from ``rng``."""
        return self._forward_in_model(x, mask, training, backend, rng, aligned=False)

    def _forward_in_model(self, x, mask, training, backend, rng, *, aligned: bool):
        """:meth:`forward`; with ``aligned`` a ``go_backwards`` sequence output stays aligned
        with the input positions (what :class:`Bidirectional` merges)."""
        if self.return_state:
            raise ValueError(f"LSTM {self.name!r} has return_state=True, which a Sequential "
                             "model cannot pass on; use return_state=False in a model")
        run = self._run(backend, x, mask, None, None, training=training, rng=rng,
                        aligned=aligned)
        return run.sequence if self.return_sequences else run.last

    def _run(self, backend, x, mask, h0, c0, *, training=False, rng=None,
             aligned=False) -> "_Run":
        """Run the layer over ``x`` on ``backend`` -- the one place the layer calls a backend's
        ``lstm_forward``, for stand-alone calls and models alike.

        ``x (batch, timesteps, features)`` and ``mask (batch, timesteps)`` are arrays of
        ``backend.xp``, already validated; ``h0``/``c0 (batch, units)`` backend arrays, or None
        for zeros (a stateful layer: its carried states, which are then updated). In training,
        dropout masks are drawn from ``rng`` and what :meth:`backward` needs is kept.
        """
        xp = backend.xp
        batch, timesteps, features = x.shape
        dtype, units = self.dtype, self.units
        input_keep = recurrent_keep = None
        if training and self.dropout > 0:
            keep = (rng.random((batch, features)) >= self.dropout) / (1.0 - self.dropout)
            input_keep = to_xp(backend, keep.astype(dtype))
            x = x * input_keep[:, None, :]
        if training and self.recurrent_dropout > 0:
            keep = (rng.random((batch, units)) >= self.recurrent_dropout) / \
                (1.0 - self.recurrent_dropout)
            recurrent_keep = backend.asarray(keep.astype(dtype))
        if h0 is None:
            if self.stateful:
                h0, c0 = self._stateful_states(batch, backend)
            else:
                h0 = backend.asarray(np.zeros((batch, units), dtype))
                c0 = backend.asarray(np.zeros((batch, units), dtype))
        bias = self._bias if self.use_bias else np.zeros(4 * units, dtype)
        result = backend.lstm_forward(
            backend.asarray(xp.ascontiguousarray(x)), backend.asarray(self._kernel),
            backend.asarray(self._recurrent_kernel), backend.asarray(bias), h0=h0, c0=c0,
            mask=None if mask is None else backend.asarray(mask),
            recurrent_dropout_mask=recurrent_keep, reverse=self.go_backwards,
            activation=self._activation_code,
            recurrent_activation=self._recurrent_activation_code,
            zero_output_for_mask=self.zero_output_for_mask, return_cache=bool(training))
        self.last_backend = result.backend
        if self.stateful:
            self._states = [result.h, result.c]
        self._cache = _PendingBackward(result.cache, input_keep, backend, (batch, timesteps),
                                       aligned) if training else None
        # The backend's outputs are aligned with the input positions; Keras returns a
        # go_backwards sequence in processing order.
        outputs = to_xp(backend, result.outputs)
        reorder = self.go_backwards and not aligned
        sequence = xp.ascontiguousarray(outputs[:, ::-1]) if reorder else outputs
        if timesteps == 0:
            last = to_xp(backend, result.h)    # no step processed: the initial h
        else:
            # The output of the last *processed* step: position 0 when going backwards.
            last = outputs[:, 0] if self.go_backwards else outputs[:, -1]
        return _Run(sequence, last, result.h, result.c)

    # -- the model protocol (training) ----------------------------------------------------------
    def compute_output_shape(self, input_shape) -> tuple:
        batch, timesteps = tuple(input_shape)[:2]
        if self.return_sequences:
            return (batch, timesteps, self.units)
        return (batch, self.units)

    def compute_mask(self, mask, inputs=None):
        """A sequence output keeps the incoming mask; a last-step output has none."""
        return mask if self.return_sequences else None

    def _stateful_states(self, batch, backend):
        """The carried ``[h, c]`` of a stateful layer (zeros at first), on ``backend``."""
        if self.batch_size is None:
            raise ValueError(f"stateful LSTM {self.name!r} needs a fixed batch size: give the "
                             "model Input(shape, batch_size=...) or the layer batch_size=...")
        if batch != self.batch_size:
            raise ValueError(f"stateful LSTM {self.name!r} was built for batch size "
                             f"{self.batch_size}; got a batch of {batch} (stateful layers "
                             "need every batch to have the same size)")
        states = self._states
        if states is None or not isinstance(states[0], type(backend.asarray(np.zeros(0)))):
            if states is None:
                states = [np.zeros((batch, self.units), self.dtype) for _ in range(2)]
            states = [backend.asarray(backend.to_numpy(s) if hasattr(s, "shape") else s)
                      for s in states]
            self._states = states
        return states

    @property
    def states(self):
        """The carried ``[h, c]`` of a stateful layer as NumPy arrays (None before any call)."""
        if self._states is None:
            return None
        backend = get_backend(self.backend)
        return [np.array(backend.to_numpy(s)) for s in self._states]

    def reset_states(self, states=None) -> None:
        """Zero the carried states of a stateful layer, or set them to ``states=[h, c]``
        (arrays of shape (batch_size, units))."""
        if not self.stateful:
            raise ValueError(f"layer {self.name!r} is not stateful: reset_states() needs "
                             "LSTM(..., stateful=True)")
        if states is None:
            self._states = None
            return
        if self.batch_size is None:
            raise ValueError(f"stateful LSTM {self.name!r} has no fixed batch size yet")
        h, c = V.check_initial_state(states, self.batch_size, self.units, self.dtype)
        self._states = [h.copy(), c.copy()]

    def backward(self, grad):
        """dL/dx from dL/d(output); fills ``grads`` = [kernel, recurrent_kernel(, bias)]."""
        pending = self._cache
        backend = pending.backend
        xp = backend.xp
        (batch, timesteps), dtype, units = pending.shape, self.dtype, self.units
        if self.return_sequences:
            if self.go_backwards and not pending.aligned:
                grad = grad[:, ::-1]           # back from processing order to input positions
            grad_outputs = xp.ascontiguousarray(grad, dtype=dtype)
        else:
            grad_outputs = xp.zeros((batch, timesteps, units), dtype)
            if timesteps:
                grad_outputs[:, 0 if self.go_backwards else -1] = grad
        zeros = np.zeros((batch, units), dtype)
        grads = backend.lstm_backward(pending.cache,
                                      grad_outputs=backend.asarray(grad_outputs),
                                      grad_h=backend.asarray(zeros),
                                      grad_c=backend.asarray(zeros.copy()))
        dx = to_xp(backend, grads.x)
        if pending.input_keep is not None:
            dx = dx * pending.input_keep[:, None, :]
        self.grads = [backend.to_numpy(grads.kernel), backend.to_numpy(grads.recurrent_kernel)]
        if self.use_bias:
            self.grads.append(backend.to_numpy(grads.bias))
        self._cache = None
        return dx

    # -- streaming: one timestep at a time -------------------------------------------------------
    def _plan_step(self) -> "_StepPlan":
        """Resolve the backend and move the weights there once; ``step`` reuses the plan until
        the weights, the layer's backend or the registry's choice change."""
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: call build((batch, "
                             "timesteps, features)) or run it on a sequence before step()")
        backend = get_backend(self.backend)
        bias = self._bias if self.use_bias else np.zeros(4 * self.units, self.dtype)
        self._step_plan = _StepPlan(
            backend=backend, layer_backend=self.backend,
            # What decides the backend of a layer without one, compared per call. (A change
            # of the NUMLSTM_BACKEND environment variable mid-stream is not seen.)
            selection=None if self.backend is not None else selection_key(),
            kernel=backend.asarray(np.ascontiguousarray(self._kernel)),
            recurrent_kernel=backend.asarray(np.ascontiguousarray(self._recurrent_kernel)),
            bias=backend.asarray(np.ascontiguousarray(bias)),
            activation=self._activation_code,
            recurrent_activation=self._recurrent_activation_code,
            array_type=type(backend.asarray(np.zeros(1, self.dtype))), dtype=self.dtype,
            features=self.input_features, units=self.units, step_kernel=backend.step_kernel(),
            lstm_step=type(backend).lstm_step)
        self._step_buffers = None
        return self._step_plan

    def _check_step_array(self, value, argument, shape, meaning, backend, array_type):
        if type(value) is array_type and value.dtype == self.dtype and value.shape == shape \
                and value.flags.c_contiguous:
            return value
        if type(value) is array_type and array_type is not np.ndarray:
            value = backend.to_numpy(value)
        host = V.check_shape(V.as_float_array(value, argument, self.dtype), argument, shape,
                             meaning)
        return backend.asarray(np.ascontiguousarray(host))

    def step(self, x_t, states=None, out=None):
        """Advance by one timestep: ``(x_t, [h, c]) -> (h_t, [h_t, c_t])``, any batch size.

        Parameters
        ----------
        x_t : array (batch, features)
        states : list [h, c] of arrays (batch, units), optional
            The states entering the step; zeros when None (for a stateful layer: its carried
            states, which are then updated).
        out : list [h_out, c_out] of arrays (batch, units), optional
            Where to write the new states; may be ``states`` itself. With ``out`` given (and
            arrays of the layer's dtype), a step allocates no arrays::

                states = [np.zeros((1, 64), np.float32), np.zeros((1, 64), np.float32)]
                for x_t in stream:
                    h, _ = layer.step(x_t, states, out=states)

        Returns
        -------
        (h_t, [h_t, c_t])

        The first call validates everything and moves the weights to the backend; later calls
        with arrays of the same kind only compare shapes (an in-place loop over the same
        buffers therefore does not re-check its inputs for NaN or inf; every other call does).
        ``last_backend`` names the backend the step ran on. Dropout never applies.
        """
        # The fast path: the same state and output arrays as the previous (validated) call
        # and an input of the same kind and shape -- identities and a shape are compared, and
        # the backend's unchecked step kernel (see Backend.step_kernel) runs directly: at
        # batch 1 the Python around a step costs as much as the step.
        buffers = self._step_buffers
        if buffers is not None and out is not None and states is not None:
            plan = self._step_plan
            if (states[0] is buffers.h and states[1] is buffers.c and out[0] is buffers.out_h
                    and out[1] is buffers.out_c and type(x_t) is plan.array_type
                    and x_t.dtype is plan.dtype and x_t.shape == buffers.x_shape
                    and plan.layer_backend == self.backend
                    and (plan.selection is None or plan.selection == selection_key())
                    and type(plan.backend).lstm_step is plan.lstm_step):
                if buffers.direct and x_t.flags.c_contiguous:
                    plan.step_kernel(x_t, plan.kernel, plan.recurrent_kernel, plan.bias,
                                     buffers.h, buffers.c, plan.activation,
                                     plan.recurrent_activation, buffers.out_h, buffers.out_c)
                    return buffers.out_h, [buffers.out_h, buffers.out_c]
                h_new, c_new = plan.backend.lstm_step(
                    x_t, plan.kernel, plan.recurrent_kernel, plan.bias, buffers.h, buffers.c,
                    activation=plan.activation, recurrent_activation=plan.recurrent_activation,
                    out_h=buffers.out_h, out_c=buffers.out_c)
                return h_new, [h_new, c_new]
        return self._step_checked(x_t, states, out)

    def _step_checked(self, x_t, states, out):
        """``step`` with every argument validated (and converted where needed)."""
        plan = self._step_plan
        if plan is None or not plan.still_valid(self.backend):
            plan = self._plan_step()
        backend, array_type, dtype = plan.backend, plan.array_type, plan.dtype
        # Non-finite inputs are refused here, on every checked call; the fast path in ``step``
        # (the same buffers again) skips this check to stay within a few microseconds.
        if type(x_t) is not array_type or x_t.dtype is not dtype or x_t.ndim != 2 \
                or x_t.shape[1] != plan.features or \
                (type(x_t) is np.ndarray and not np.isfinite(x_t).all()):
            x_t = self._check_step_input(x_t, backend, array_type)
        self.last_backend = backend.name
        shape = (x_t.shape[0], plan.units)
        carried = False
        if states is None:
            if self.stateful:
                h, c = self._stateful_states(x_t.shape[0], backend)
                carried = True
            else:
                h = backend.xp.zeros(shape, dtype)
                c = backend.xp.zeros(shape, dtype)
        else:
            if type(states) not in (list, tuple) or len(states) != 2:
                raise TypeError("states must be a list [h, c] of two arrays of shape (batch, "
                                f"units) = {shape}; got {type(states).__name__}")
            h, c = states
            if type(h) is not array_type or h.dtype is not dtype or h.shape != shape:
                h = self._check_step_array(h, "states[0] (h)", shape, "(batch, units)",
                                           backend, array_type)
            if type(c) is not array_type or c.dtype is not dtype or c.shape != shape:
                c = self._check_step_array(c, "states[1] (c)", shape, "(batch, units)",
                                           backend, array_type)
        out_h, out_c = self._check_step_out(out, shape, dtype, array_type)
        if out is not None and (type(out_h) is not array_type or type(out_c) is not array_type):
            # host buffers for a backend with device arrays: computed there, copied back
            h_new, c_new = backend.lstm_step(x_t, plan.kernel, plan.recurrent_kernel, plan.bias,
                                             h, c, activation=plan.activation,
                                             recurrent_activation=plan.recurrent_activation)
            out_h[...] = backend.to_numpy(h_new)
            out_c[...] = backend.to_numpy(c_new)
            return out_h, [out_h, out_c]
        h_new, c_new = backend.lstm_step(x_t, plan.kernel, plan.recurrent_kernel, plan.bias, h,
                                         c, activation=plan.activation,
                                         recurrent_activation=plan.recurrent_activation,
                                         out_h=out_h, out_c=out_c)
        if carried:
            self._states = [h_new, c_new]
        elif out is not None and h is states[0] and c is states[1]:
            # The validated buffers of an in-place loop: the next call may take the fast path.
            self._step_buffers = _StepBuffers.of(h, c, out_h, out_c, x_t.shape, plan)
        return h_new, [h_new, c_new]

    @staticmethod
    def _check_step_out(out, shape, dtype, array_type):
        """``out`` as ``(out_h, out_c)`` (``(None, None)`` when not given), each checked to be
        a C-contiguous, writeable array of ``dtype`` and ``shape``."""
        if out is None:
            return None, None
        if type(out) not in (list, tuple) or len(out) != 2:
            raise TypeError("out must be a list [h_out, c_out] of two arrays of shape "
                            f"(batch, units) = {shape}; got {type(out).__name__}")
        for value, argument in ((out[0], "out[0]"), (out[1], "out[1]")):
            if type(value) not in (array_type, np.ndarray) or value.dtype != dtype or \
                    value.shape != shape or not value.flags.c_contiguous:
                raise ValueError(f"{argument} must be a C-contiguous {dtype} array of "
                                 f"shape (batch, units) = {shape} to be written in place; "
                                 f"got {type(value).__name__} of shape "
                                 f"{getattr(value, 'shape', None)}")
            if not getattr(value.flags, "writeable", True):
                raise ValueError(f"{argument} must be writeable to be written in place; "
                                 "got a read-only array")
        return out[0], out[1]

    def _check_step_input(self, x_t, backend, array_type):
        if type(x_t) is not np.ndarray and type(x_t) is array_type:
            x_t = backend.to_numpy(x_t)
        x_t = V.as_float_array(x_t, "step input x_t", self.dtype)
        if x_t.ndim != 2 or x_t.shape[1] != self.input_features:
            raise ValueError(f"step input x_t must be 2-D (batch, features) = (batch, "
                             f"{self.input_features}); got shape {x_t.shape}")
        return backend.asarray(np.ascontiguousarray(x_t))


class _Run(NamedTuple):
    """What :meth:`LSTM._run` returns, as ``backend.xp`` arrays."""

    sequence: Any      # (batch, timesteps, units), in the order the layer returns it
    last: Any          # (batch, units): the output of the last processed step
    h: Any             # (batch, units): the final states
    c: Any


class _PendingBackward(NamedTuple):
    """What a training forward keeps for :meth:`LSTM.backward` (one pending at a time)."""

    cache: Any             # the backend's SequenceCache
    input_keep: Any        # the input dropout mask (batch, features), or None
    backend: Any
    shape: tuple           # (batch, timesteps)
    aligned: bool          # a go_backwards sequence output was left aligned with the input


@dataclass(eq=False)
class _StepPlan:
    """What :meth:`LSTM.step` resolves once: the backend and its unchecked step kernel, the
    weights moved there, and what a call is compared against to reuse the plan."""

    backend: Any
    layer_backend: str | None      # the layer's ``backend`` when planned
    selection: tuple | None        # the registry's selection_key(), for a layer without one
    kernel: Any
    recurrent_kernel: Any
    bias: Any
    activation: int
    recurrent_activation: int
    array_type: type               # the backend's array type
    dtype: np.dtype
    features: int
    units: int
    step_kernel: Callable          # Backend.step_kernel()
    lstm_step: Callable            # the backend class's lstm_step when planned: a replaced one
                                   # (an instrumented class) needs a new step kernel

    def still_valid(self, layer_backend) -> bool:
        """Whether a call may reuse this plan (checked in full on the fast path's line)."""
        return (self.layer_backend == layer_backend
                and (self.selection is None or self.selection == selection_key())
                and type(self.backend).lstm_step is self.lstm_step)


@dataclass(eq=False)
class _StepBuffers:
    """The validated buffers of an in-place streaming loop (``states`` and ``out``), which the
    next call may reuse without checks."""

    h: Any
    c: Any
    out_h: Any
    out_c: Any
    x_shape: tuple
    direct: bool       # the step kernel may run on them (see ``of``)

    @classmethod
    def of(cls, h, c, out_h, out_c, x_shape, plan: _StepPlan) -> "_StepBuffers":
        """The buffers, marked ``direct`` when they and the weights are C-contiguous,
        writeable host arrays (what a step kernel takes; device arrays go through the
        backend's checked ``lstm_step``, whose checks cost little beside a launch)."""
        arrays = (h, c, out_h, out_c, plan.kernel, plan.recurrent_kernel, plan.bias)
        direct = all(type(a) is np.ndarray and a.flags.c_contiguous and a.flags.writeable
                     for a in arrays)
        return cls(h, c, out_h, out_c, x_shape, direct)
