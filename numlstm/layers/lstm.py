"""The Keras-style ``LSTM`` layer: a sequence run of an :class:`~numlstm.layers.LSTMCell`.

The layer owns the sequence semantics (whole-sequence runs through the backend's fused
kernels, ``return_sequences``/``return_state``, ``go_backwards`` order, masks, dropout in
training, a stateful layer's carried states); its cell owns the weights, the activations and
the one-timestep step -- as Keras's ``LSTM`` (an ``RNN``) owns an ``LSTMCell``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import constraints
from .. import validation as V
from ..backends import get_backend
from .base import Layer, to_xp
from .lstm_cell import LSTMCell
from .symbolic import call_on_symbolic, is_symbolic


def _of_the_cell(name: str, doc: str, settable: bool = False) -> property:
    """A property of the layer that is its cell's attribute ``name`` (one source of truth)."""
    def get(self):
        return getattr(self.cell, name)

    def set_(self, value):
        setattr(self.cell, name, value)
    return property(get, set_ if settable else None, doc=doc)


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
        (Keras 3), "hard_sigmoid_keras2" (Keras 2), "softsign", "elu", "selu",
        "exponential", "softplus", "relu6", "leaky_relu", "hard_tanh", "log_sigmoid" (every
        backend; :mod:`numlstm.activations`). "gelu", "silu"/"swish", "mish", "softmax" and
        the other Keras activations whose derivative cannot be written through their output
        are refused with a ``ValueError`` (Dense takes them).
    recurrent_activation : str, default "sigmoid"
        σ above; the same choices.
    use_bias : bool, default True
    kernel_initializer, recurrent_initializer, bias_initializer : str, object or callable
        Defaults "glorot_uniform", "orthogonal", "zeros"; any name or object of
        :mod:`numlstm.initializers` (``HeNormal(seed=1)``, ``Constant(0.1)``, ...).
    kernel_regularizer, recurrent_regularizer, bias_regularizer
        Optional penalties added to the training loss as Keras adds them
        (:mod:`numlstm.regularizers`: "l1", "l2", ``L1L2(l1=, l2=)``...).
    kernel_constraint, recurrent_constraint, bias_constraint
        Optional projections applied after each optimizer step (:mod:`numlstm.constraints`:
        "max_norm", "non_neg", "unit_norm", "min_max_norm" or objects).
    unroll : bool, default False
        Accepted for Keras compatibility: numlstm always runs the backend's fused sequence
        kernel, which gives the same results as Keras's unrolled or looped graph.
    implementation : {1, 2}, default 2
        Accepted and ignored (Keras's choice of how to split the gate products; numlstm's
        fused kernels compute the same function either way).
    use_cudnn : "auto", True or False, default "auto"
        Accepted and ignored (the ``cuda`` and ``cupy`` backends run numlstm's own kernels).
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

    Notes
    -----
    Keras's base-layer keywords are taken too (see :class:`~numlstm.layers.Layer`):
    ``input_shape``/``input_dim`` (on the first layer of a :class:`~numlstm.Sequential`,
    the shape of its Input without the batch axis: ``LSTM(32, input_shape=(20, 80))``) and
    ``activity_regularizer`` (a penalty on every output -- with ``return_state``, the states
    too -- divided by the batch size, as Keras 3).

    Attributes
    ----------
    cell : LSTMCell
        Holds the weights, the activations and the dropout rates (the layer's attributes of
        those names are the cell's), and runs :meth:`step`.
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
        In a model graph, symbolic tensors: another LSTM's ``return_state`` outputs (an
        encoder's states starting a decoder) or model Inputs; gradients flow into them.

    On symbolic tensors (``layer(numlstm.Input((None, 8)))``) the call builds the layer and
    returns symbolic outputs for :class:`numlstm.Model`, as Keras's functional API does.

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

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, return_sequences=False,
                 return_state=False, go_backwards=False, zero_output_for_mask=False, seed=None,
                 backend=None, dtype="float32", name=None, dropout=0.0, recurrent_dropout=0.0,
                 stateful=False, batch_size=None, trainable=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, unroll=False,
                 implementation=2, use_cudnn="auto"):
        # The cell checks and keeps the weights' arguments; the sequence options are the layer's.
        self.cell = LSTMCell(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, backend=backend, dtype=dtype,
            name="lstm" if name is None else name, trainable=trainable,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint)
        # Accepted for Keras code; the fused kernel runs either way (see the docstring).
        self.unroll = V.check_bool(unroll, "unroll")
        if implementation not in (1, 2) or isinstance(implementation, bool):
            raise ValueError(f"implementation must be 1 or 2 (Keras's choices; numlstm ignores "
                             f"it); got implementation={implementation!r}")
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"use_cudnn must be 'auto', True or False (numlstm ignores it); "
                             f"got use_cudnn={use_cudnn!r}")
        self.stateful = V.check_bool(stateful, "stateful")
        self.batch_size = None if batch_size is None else V.check_positive_int(batch_size,
                                                                               "batch_size")
        self.return_sequences = V.check_bool(return_sequences, "return_sequences")
        self.return_state = V.check_bool(return_state, "return_state")
        self.go_backwards = V.check_bool(go_backwards, "go_backwards")
        self.zero_output_for_mask = V.check_bool(zero_output_for_mask, "zero_output_for_mask")
        super().__init__(name="lstm" if name is None else name, dtype=dtype, seed=seed,
                         backend=backend, trainable=trainable)
        self._states = None                # a stateful layer's carried [h, c]
        self._cache = None                 # a training forward's _PendingBackward
        self.last_backend: str | None = None

    # -- what the cell holds ----------------------------------------------------------------------
    units = _of_the_cell("units", "``H``: the size of the output and of both states.", True)
    activation = _of_the_cell("activation", "``act``: the candidate's and the output's.")
    recurrent_activation = _of_the_cell("recurrent_activation", "``σ``: the gates'.")
    use_bias = _of_the_cell("use_bias", "Whether the layer has a bias.", True)
    unit_forget_bias = _of_the_cell("unit_forget_bias", "Forget-gate bias initialised to 1.",
                                    True)
    dropout = _of_the_cell("dropout", "Input dropout rate in training.", True)
    recurrent_dropout = _of_the_cell("recurrent_dropout", "Recurrent dropout rate in training.",
                                     True)
    kernel_regularizer = _of_the_cell("kernel_regularizer", "The kernel's regularizer.")
    recurrent_regularizer = _of_the_cell("recurrent_regularizer",
                                         "The recurrent kernel's regularizer.")
    bias_regularizer = _of_the_cell("bias_regularizer", "The bias's regularizer.")
    kernel_constraint = _of_the_cell("kernel_constraint", "The kernel's constraint.")
    recurrent_constraint = _of_the_cell("recurrent_constraint",
                                        "The recurrent kernel's constraint.")
    bias_constraint = _of_the_cell("bias_constraint", "The bias's constraint.")
    input_features = _of_the_cell("input_features", "``features``, once built.", True)
    kernel = _of_the_cell("kernel", "ndarray (features, 4*units); assigning checks it.", True)
    recurrent_kernel = _of_the_cell("recurrent_kernel", "ndarray (units, 4*units); assigning "
                                    "checks it.", True)
    bias = _of_the_cell("bias", "ndarray (4*units,) or None; assigning checks it.", True)
    # Layer's own attributes, kept on the cell so that the two never disagree (a model renames
    # and seeds its layers, and may pin them to a backend; weights set on the cell build both).
    name = _of_the_cell("name", "The layer's name.", True)
    dtype = _of_the_cell("dtype", "The layer's dtype.", True)
    seed = _of_the_cell("seed", "The initializers' seed.", True)
    backend = _of_the_cell("backend", "The backend to run on (None: the one in use).", True)
    built = _of_the_cell("built", "Whether the weights exist.", True)
    trainable = _of_the_cell("trainable", "Whether training updates the weights.", True)
    _activation_code = _of_the_cell("_activation_code", "``activation``'s integer code.")
    _recurrent_activation_code = _of_the_cell("_recurrent_activation_code",
                                              "``recurrent_activation``'s integer code.")
    _kernel = _of_the_cell("_kernel", "The live kernel array.")
    _recurrent_kernel = _of_the_cell("_recurrent_kernel", "The live recurrent kernel array.")
    _bias = _of_the_cell("_bias", "The live bias array (None without use_bias).")


    def __repr__(self) -> str:
        shape = f"features={self.input_features}, " if self.built else ""
        return (f"LSTM(units={self.units}, {shape}activation={self.activation!r}, "
                f"recurrent_activation={self.recurrent_activation!r}, "
                f"return_sequences={self.return_sequences}, backend={self.backend!r})")

    # -- weights (the cell's) --------------------------------------------------------------------
    @property
    def weights(self) -> list[np.ndarray]:
        """The cell's live ``[kernel, recurrent_kernel(, bias)]``."""
        return self.cell.weights

    def weight_specs(self, input_shape) -> list[tuple[str, tuple]]:
        """``kernel (features, 4*units)``, ``recurrent_kernel (units, 4*units)`` and, with
        ``use_bias``, ``bias (4*units,)`` for inputs of shape (batch, timesteps, features)."""
        return self.cell.weight_specs(self._checked_input_shape(input_shape))

    @staticmethod
    def _checked_input_shape(input_shape) -> tuple:
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
            raise ValueError("input_shape must be a 3-tuple (batch, timesteps, features); "
                             f"got {input_shape!r}")
        V.check_positive_int(input_shape[2], "input_shape[2] (features)")
        return tuple(input_shape)

    def build(self, input_shape) -> None:
        """Create the weights for inputs of shape (batch, timesteps, features).

        ``input_shape`` may use None for the batch and timesteps; only ``features`` is used.
        """
        input_shape = self._checked_input_shape(input_shape)
        # A constraint's axis is checked against its weight now, naming this layer (not
        # after the first optimizer step has changed the weights).
        constraints.check_weight_rules(self, self.weight_specs(input_shape))
        self.cell.build(input_shape)
        self._built_for(input_shape)

    def get_weights(self) -> list[np.ndarray]:
        """``[kernel, recurrent_kernel, bias]`` (Keras layout, gate order i, f, c, o); copies."""
        return self.cell.get_weights()

    def check_weights(self, weights, input_shape=None):
        """Validate ``[kernel, recurrent_kernel(, bias)]`` without changing the layer; returns
        what :meth:`install_weights` takes. The features are the built layer's,
        ``input_shape``'s when given, else the kernel's."""
        if input_shape is not None:
            input_shape = self._checked_input_shape(input_shape)
        return self.cell.check_weights(weights, input_shape)

    def install_weights(self, checked, input_shape=None) -> None:
        """Put what :meth:`check_weights` returned in place (cannot fail), building the layer
        for ``input_shape`` (or, unbuilt, for the kernel's features) without initializers."""
        self.cell.install_weights(checked, input_shape)
        self._built_for(input_shape)

    def _built_for(self, input_shape) -> None:
        if input_shape is not None:
            self.input_shape = tuple(input_shape)
            if self.stateful and self.batch_size is None and input_shape[0] is not None:
                self.batch_size = V.check_positive_int(input_shape[0], "batch size")
        elif self.input_shape is None:
            self.input_shape = (self.batch_size, None, self.input_features)
        self.built = True

    def set_weights(self, weights) -> None:
        """Set ``[kernel (features, 4*units), recurrent_kernel (units, 4*units), bias (4*units,)]``.

        An unbuilt layer is built for the kernel's number of features.
        """
        self.install_weights(self.check_weights(weights))

    def _weights_changed(self) -> None:
        self.cell._weights_changed()

    def count_params(self) -> int:
        """``4*units*(features + units + 1)`` (without the ``+ 1`` when ``use_bias=False``)."""
        return self.cell.count_params()

    def _weight_rules(self) -> list[tuple]:
        return self.cell._weight_rules()

    def get_config(self) -> dict:
        """The constructor arguments, as plain data."""
        config = self.cell.get_config()
        config.update(self._activity_config())
        if self.unroll:
            config["unroll"] = True
        config.update({
            "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "zero_output_for_mask": self.zero_output_for_mask,
            "stateful": self.stateful, "batch_size": self.batch_size,
        })
        return config

    # -- streaming: one timestep at a time (the cell's step, with the layer's carried states) ----
    def step(self, x_t, states=None, out=None):
        """Advance by one timestep: ``(x_t, [h, c]) -> (h_t, [h_t, c_t])``, any batch size.

        The cell's :meth:`~numlstm.layers.LSTMCell.step` (parameters, fast path and checks are
        described there), except that a stateful layer called without ``states`` steps from
        its carried states and carries the new ones on. ``last_backend`` names the backend the
        step ran on. Dropout never applies.
        """
        if states is None and self.stateful:
            h_new, new_states = self.cell.step(x_t, None, out, carried=self._stateful_states)
            self._states = new_states
        else:
            h_new, new_states = self.cell.step(x_t, states, out)
        self.last_backend = self.cell.last_backend
        return h_new, new_states

    # -- running over a sequence: the one route into the backend -------------------------------
    def __call__(self, x, mask=None, initial_state=None):
        if is_symbolic(x) or is_symbolic(initial_state):
            return self._call_on_symbolic(x, mask, initial_state)
        cell = self.cell
        x = V.check_sequence_input(x, dtype=cell.dtype, features=cell.input_features,
                                   argument=f"{type(self).__name__} input")
        batch, timesteps, features = x.shape
        if not self.built:
            self.build((None, None, features))
        mask = V.check_mask(mask, batch, timesteps)
        states = None                      # None: zeros, or a stateful layer's carried states
        if initial_state is not None or not self.stateful:
            states = V.check_initial_state(initial_state, batch, cell.units, cell.dtype)
        elif self.batch_size is None:
            self.batch_size = batch        # Keras 3: a stateful layer takes its first batch's size
        backend = get_backend(cell.backend)
        h0, c0 = (None, None) if states is None else (backend.asarray(s) for s in states)
        run = self._run(backend, to_xp(backend, x),
                        None if mask is None else to_xp(backend, mask), h0, c0)
        output = backend.to_numpy(run.sequence if self.return_sequences else run.last)
        if self.return_sequences and self.go_backwards:
            output = np.ascontiguousarray(output)    # a reversed view of the backend's outputs
        if not self.return_state:
            return output
        # copies: a stateful layer carries run.h and run.c on
        return [output, np.array(backend.to_numpy(run.h)), np.array(backend.to_numpy(run.c))]

    def forward(self, x, mask=None, training=False, backend=None, rng=None):
        """Run on backend arrays ``x (batch, timesteps, features)``; keeps what
        :meth:`backward` needs when ``training``. Dropout masks are drawn from ``rng``."""
        return self._forward_in_model(x, mask, training, backend, rng, aligned=False)

    def _forward_in_model(self, x, mask, training, backend, rng, *, aligned: bool):
        """:meth:`forward`; with ``aligned`` a ``go_backwards`` sequence output stays aligned
        with the input positions (what :class:`Bidirectional` merges)."""
        if self.return_state:
            raise ValueError(f"LSTM {self.name!r} has return_state=True: its three outputs "
                             "run through a model graph (numlstm.Model, or the last layer of "
                             "a Sequential), not forward()")
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
        cell = self.cell           # its attributes directly (the layer's are properties over them)
        dtype, units = cell.dtype, cell.units
        input_keep = recurrent_keep = None
        if training and cell.dropout > 0:
            keep = (rng.random((batch, features)) >= cell.dropout) / (1.0 - cell.dropout)
            input_keep = to_xp(backend, keep.astype(dtype))
            x = x * input_keep[:, None, :]
        if training and cell.recurrent_dropout > 0:
            keep = (rng.random((batch, units)) >= cell.recurrent_dropout) / \
                (1.0 - cell.recurrent_dropout)
            recurrent_keep = backend.asarray(keep.astype(dtype))
        if h0 is None:
            if self.stateful:
                h0, c0 = self._stateful_states(batch, backend)
            else:
                h0 = backend.asarray(np.zeros((batch, units), dtype))
                c0 = backend.asarray(np.zeros((batch, units), dtype))
        # The weights on the backend: a device backend keeps its copy for as long as the
        # model call (fit/evaluate/predict) lasts and the cell's weight version holds.
        kernel, recurrent_kernel, bias = backend.weights_for_call(
            cell, cell._weights_version, cell._kernel_weights())
        result = backend.lstm_forward(
            backend.asarray(xp.ascontiguousarray(x)), kernel, recurrent_kernel, bias,
            h0=h0, c0=c0,
            mask=None if mask is None else backend.asarray(mask),
            recurrent_dropout_mask=recurrent_keep, reverse=self.go_backwards,
            activation=cell._activation_code,
            recurrent_activation=cell._recurrent_activation_code,
            zero_output_for_mask=self.zero_output_for_mask, return_cache=bool(training))
        self.last_backend = result.backend
        if self.stateful:
            self._states = [result.h, result.c]
        self._cache = _PendingBackward(result.cache, input_keep, backend, (batch, timesteps),
                                       aligned) if training else None
        # The backend's outputs are aligned with the input positions; Keras returns a
        # go_backwards sequence in processing order.
        outputs = to_xp(backend, result.outputs)
        sequence = outputs[:, ::-1] if self.go_backwards and not aligned else outputs
        if timesteps == 0:
            # No step processed: the initial h (a copy: a stateful layer carries result.h on).
            last = xp.array(to_xp(backend, result.h))
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

    def reset_state(self, states=None) -> None:
        """:meth:`reset_states` (Keras 3's name)."""
        self.reset_states(states)

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
        return self._backward_from(grad, None, None)[0]

    def _backward_from(self, grad, grad_h, grad_c):
        """Back through the pending run: ``(dx, dh0, dc0)`` from dL/d(output) and, for a
        ``return_state`` call, dL/dh and dL/dc of the final states (None: zero); fills
        ``grads``."""
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

        def state_grad(value):
            if value is None:
                return backend.asarray(np.zeros((batch, units), dtype))
            return backend.asarray(xp.ascontiguousarray(value, dtype=dtype))
        grads = backend.lstm_backward(pending.cache,
                                      grad_outputs=backend.asarray(grad_outputs),
                                      grad_h=state_grad(grad_h), grad_c=state_grad(grad_c))
        dx = to_xp(backend, grads.x)
        if pending.input_keep is not None:
            dx = dx * pending.input_keep[:, None, :]
        self.grads = [backend.to_numpy(grads.kernel), backend.to_numpy(grads.recurrent_kernel)]
        if self.use_bias:
            self.grads.append(backend.to_numpy(grads.bias))
        self._cache = None
        return dx, to_xp(backend, grads.h0), to_xp(backend, grads.c0)

    # -- in a model graph: initial_state inputs, return_state outputs ---------------------------
    def _call_on_symbolic(self, x, mask, initial_state):
        if mask is not None:
            raise ValueError(f"LSTM {self.name!r} was called on a symbolic tensor with a mask: "
                             "in a model graph masks come from Masking or "
                             "Embedding(mask_zero=True) layers and travel with the data")
        states = []
        if initial_state is not None:
            if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2:
                raise ValueError(f"initial_state of LSTM {self.name!r} must be a list [h, c] "
                                 f"of two tensors (batch, {self.units}); got "
                                 f"{V.kind_of(initial_state)}")
            states = list(initial_state)
        return call_on_symbolic(self, [x] + states)

    def _output_specs(self, inputs: list) -> list[tuple[tuple, str]]:
        """``[x]`` or ``[x, h0, c0]`` -> the output, then ``h`` and ``c`` with
        ``return_state``."""
        x, states = inputs[0], inputs[1:]
        if x.ndim != 3:
            raise ValueError(f"layer {self.name!r} needs 3-D input (batch, timesteps, "
                             f"features); got a tensor of shape {x.shape}")
        if not x.dtype.startswith("float"):
            raise ValueError(f"layer {self.name!r} needs floating-point input; got {x.dtype} "
                             "(token ids go through an Embedding first)")
        if self.stateful and self.batch_size is None:
            self.batch_size = V.check_fixed_batch(x.shape, self.name)
        self._build_in_graph(x.shape)
        for state_name, state in zip(("h", "c"), states):
            if state.ndim != 2 or state.shape[1] not in (None, self.units):
                raise ValueError(f"initial_state of LSTM {self.name!r}: {state_name} must "
                                 f"have shape (batch, {self.units}); got a tensor of shape "
                                 f"{state.shape}")
        dtype = self.dtype.name
        specs = [(tuple(self.compute_output_shape(x.shape)), dtype)]
        if self.return_state:
            specs += [((x.shape[0], self.units), dtype)] * 2
        return specs

    def _check_built_for(self, shape: tuple) -> None:
        super()._check_built_for(shape)
        self.input_shape = tuple(shape)

    def _output_suffix(self, index: int) -> str:
        return ("", "_h", "_c")[index]

    def _graph_forward(self, inputs: list, masks: list, training: bool, backend, rng):
        x, mask = inputs[0], masks[0]
        batch = x.shape[0]
        h0 = c0 = None
        if len(inputs) == 3:
            for state_name, state in zip(("h", "c"), inputs[1:]):
                if tuple(state.shape) != (batch, self.units):
                    raise ValueError(f"initial_state of LSTM {self.name!r}: {state_name} must "
                                     f"have shape ({batch}, {self.units}) for this batch; got "
                                     f"{tuple(state.shape)}")
            h0, c0 = (backend.asarray(backend.xp.ascontiguousarray(state))
                      for state in inputs[1:])
        run = self._run(backend, x, mask, h0, c0, training=training, rng=rng)
        outputs = [run.sequence if self.return_sequences else run.last]
        out_masks = [mask if self.return_sequences else None]
        if self.return_state:
            xp = backend.xp
            # copies: a stateful layer carries run.h and run.c on
            outputs += [xp.array(to_xp(backend, run.h)), xp.array(to_xp(backend, run.c))]
            out_masks += [None, None]
        pending = (self._cache, len(inputs) == 3) if training else None
        self._cache = None
        return outputs, out_masks, pending

    def _graph_backward(self, pending, output_grads: list):
        cache, with_states = pending
        self._cache = cache
        grad_h = output_grads[1] if self.return_state else None
        grad_c = output_grads[2] if self.return_state else None
        dx, dh0, dc0 = self._backward_from(output_grads[0], grad_h, grad_c)
        return ([dx, dh0, dc0] if with_states else [dx]), list(self.grads)


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
