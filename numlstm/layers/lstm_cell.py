"""``LSTMCell``: one LSTM step's weights, activations and math -- apart from the loop over a
sequence and the state handling, which are :class:`~numlstm.LSTM`'s.

A cell maps ``(x_t, [h, c])`` to ``(h_t, [h_t, c_t])``::

    z   = x_t @ kernel + h @ recurrent_kernel + bias
    i, f, g, o = σ(z[:, :H]), σ(z[:, H:2H]), act(z[:, 2H:3H]), σ(z[:, 3H:])
    c_t = f * c + i * g
    h_t = o * act(c_t)

(docs/numerics.md has the equations, layouts and tolerances). The arithmetic itself is the
backends': a cell hands its weights to the backend once (a step plan) and calls the backend's
step kernel per step. :class:`~numlstm.LSTM` owns a cell and runs whole sequences through the
backend's fused sequence kernels with the cell's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import constraints, initializers, regularizers
from .. import validation as V
from ..activations import ACTIVATION_NAMES
from ..backends import get_backend, selection_key
from .base import Layer


class LSTMCell(Layer):
    """The weights and the one-timestep math of an LSTM (Keras's ``LSTMCell``).

    Parameters
    ----------
    units : int
        ``H``: the size of ``h`` and ``c``.
    activation : str, default "tanh"
        ``act`` above; see :mod:`numlstm.activations`.
    recurrent_activation : str, default "sigmoid"
        ``σ`` above.
    use_bias : bool, default True
    kernel_initializer : str, initializer object or callable, default "glorot_uniform"
    recurrent_initializer : str, initializer object or callable, default "orthogonal"
    bias_initializer : str, initializer object or callable, default "zeros"
        See :mod:`numlstm.initializers`.
    kernel_regularizer, recurrent_regularizer, bias_regularizer : optional
        Penalties on the weights added to the training loss (:mod:`numlstm.regularizers`).
    kernel_constraint, recurrent_constraint, bias_constraint : optional
        Projections applied after each optimizer step (:mod:`numlstm.constraints`).
    unit_forget_bias : bool, default True
        Initialise the forget gate's bias to ones, as Keras does.
    dropout : float in [0, 1), default 0
        The training dropout of the inputs, applied by :class:`~numlstm.LSTM` over whole
        sequences (never in :meth:`step`).
    recurrent_dropout : float in [0, 1), default 0
        The same for ``h`` where it enters the recurrent product.
    seed : int ≥ 0, optional
        Seed for the initializers.
    backend : str, optional
        The backend to run on; None: the one in use at call time.
    dtype : str, default "float32"
    name : str, optional

    Attributes
    ----------
    kernel : ndarray (features, 4*units)
    recurrent_kernel : ndarray (units, 4*units)
    bias : ndarray (4*units,) or None
        The weights, gate order i, f, c, o; assigning to one checks it.
    input_features : int or None
        ``features``, once built.
    last_backend : str or None
        The backend that ran the latest step.
    """

    _weight_names = ("kernel", "recurrent_kernel", "bias")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, backend=None, dtype="float32", name=None,
                 trainable=True, kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None):
        self.dropout = V.check_rate(dropout, "dropout")
        self.recurrent_dropout = V.check_rate(recurrent_dropout, "recurrent_dropout")
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
        for weight, regularizer, constraint in (
                ("kernel", kernel_regularizer, kernel_constraint),
                ("recurrent", recurrent_regularizer, recurrent_constraint),
                ("bias", bias_regularizer, bias_constraint)):
            setattr(self, f"{weight}_regularizer",
                    regularizers.get(regularizer, f"{weight}_regularizer"))
            setattr(self, f"{weight}_constraint",
                    constraints.get(constraint, f"{weight}_constraint"))
        super().__init__(name="lstm_cell" if name is None else name, dtype=dtype, seed=seed,
                         backend=backend, trainable=trainable)
        self.input_features: int | None = None
        self._kernel = self._recurrent_kernel = self._bias = None
        # Bumped by every change of the weights through numlstm (set_weights, an optimizer
        # step, set_backend, ...): a device backend's copy of them is current while it holds
        # (Backend.weights_for_call).
        self._weights_version = 0
        self._zero_bias = None         # the bias the kernels get without use_bias
        self._step_plan: _StepPlan | None = None
        self._step_buffers: _StepBuffers | None = None
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
        return (f"LSTMCell(units={self.units}, {shape}activation={self.activation!r}, "
                f"recurrent_activation={self.recurrent_activation!r}, "
                f"backend={self.backend!r})")

    # -- weights --------------------------------------------------------------------------------
    def weight_specs(self, input_shape) -> list[tuple[str, tuple]]:
        """``kernel (features, 4*units)``, ``recurrent_kernel (units, 4*units)`` and, with
        ``use_bias``, ``bias (4*units,)`` for inputs whose last dimension is ``features``."""
        features = self._features_of(input_shape)
        units = self.units
        specs = [("kernel", (features, 4 * units)), ("recurrent_kernel", (units, 4 * units))]
        return specs + [("bias", (4 * units,))] if self.use_bias else specs

    @staticmethod
    def _features_of(input_shape) -> int:
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 2:
            raise ValueError("input_shape must be a tuple (batch, features) or (batch, "
                             f"timesteps, features); got {input_shape!r}")
        return V.check_positive_int(input_shape[-1], "input_shape[-1] (features)")

    def build(self, input_shape) -> None:
        """Create the weights for inputs of shape (batch, features) or (batch, timesteps,
        features): only ``features``, the last entry, is used (the others may be None).
        Initialised from ``seed``; the same seed gives the same weights."""
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
        self._weights_version += 1
        self._step_plan = None             # it holds the weights moved to the backend
        self._step_buffers = None

    def _kernel_weights(self) -> tuple:
        """``(kernel, recurrent_kernel, bias)`` as the kernels take them: zeros for the bias
        without ``use_bias`` (the same array every call, so that a device copy of it is
        kept as the others are)."""
        if self.use_bias:
            return self._kernel, self._recurrent_kernel, self._bias
        zero = self._zero_bias
        if zero is None or zero.shape != (4 * self.units,) or zero.dtype != self.dtype:
            zero = self._zero_bias = np.zeros(4 * self.units, self.dtype)
        return self._kernel, self._recurrent_kernel, zero

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
        """Put what :meth:`check_weights` returned in place (cannot fail), building the cell
        for ``input_shape`` (or, unbuilt, for the kernel's features) without initializers."""
        features, arrays = checked
        self.input_features = features
        self._assign(arrays)
        if input_shape is not None:
            self.input_shape = tuple(input_shape)
        elif self.input_shape is None:
            self.input_shape = (None, features)
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


    def _weight_rules(self) -> list[tuple]:
        rules = [(self.kernel_regularizer, self.kernel_constraint),
                 (self.recurrent_regularizer, self.recurrent_constraint)]
        return rules + [(self.bias_regularizer, self.bias_constraint)] if self.use_bias \
            else rules

    def _rules_config(self) -> dict:
        """The regularizers and constraints that are set (configs without them are as they
        always were)."""
        config = {}
        for weight in ("kernel", "recurrent", "bias"):
            for kind, module in (("regularizer", regularizers), ("constraint", constraints)):
                value = getattr(self, f"{weight}_{kind}")
                if value is not None:
                    config[f"{weight}_{kind}"] = module.serialize(value)
        return config

    def get_config(self) -> dict:
        """The constructor arguments, as plain data."""
        # A Python callable cannot be stored: its name is, marked as such, so that a saved
        # model loads (loading never runs initializers; see numlstm.initializers.resolve).
        spec = initializers.serialize
        return {
            "units": self.units, "activation": self.activation,
            "recurrent_activation": self.recurrent_activation, "use_bias": self.use_bias,
            "kernel_initializer": spec(self._initializer_specs[0]),
            "recurrent_initializer": spec(self._initializer_specs[1]),
            "bias_initializer": spec(self._initializer_specs[2]),
            "unit_forget_bias": self.unit_forget_bias, "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout, "seed": self.seed,
            "backend": self.backend, "dtype": self.dtype.name, "name": self.name,
            "trainable": self.trainable, **self._rules_config(),
        }

    def __call__(self, x_t, states=None):
        """:meth:`step` (Keras's ``cell(inputs, states)``)."""
        return self.step(x_t, states)

    # -- streaming: one timestep at a time -------------------------------------------------------
    def _plan_step(self) -> "_StepPlan":
        """Resolve the backend and move the weights there once; ``step`` reuses the plan until
        the weights, the layer's backend or the registry's choice change."""
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: call build((batch, "
                             "timesteps, features)), set its weights, or run it (an LSTM: on "
                             "a sequence) before step()")
        backend = get_backend(self.backend)
        kernel, recurrent_kernel, bias = self._kernel_weights()
        self._step_plan = _StepPlan(
            backend=backend, layer_backend=self.backend,
            # What decides the backend of a layer without one, compared per call. (A change
            # of the NUMLSTM_BACKEND environment variable mid-stream is not seen.)
            selection=None if self.backend is not None else selection_key(),
            kernel=backend.asarray(np.ascontiguousarray(kernel)),
            recurrent_kernel=backend.asarray(np.ascontiguousarray(recurrent_kernel)),
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

    def step(self, x_t, states=None, out=None, *, carried=None):
        """Advance by one timestep: ``(x_t, [h, c]) -> (h_t, [h_t, c_t])``, any batch size.

        Parameters
        ----------
        x_t : array (batch, features)
        states : list [h, c] of arrays (batch, units), optional
            The states entering the step; zeros when None, or ``carried(batch, backend)``
            when that is given (how an :class:`~numlstm.LSTM` passes the states it carries).
        out : list [h_out, c_out] of arrays (batch, units), optional
            Where to write the new states; may be ``states`` itself. With ``out`` given (and
            arrays of the layer's dtype), a step allocates no arrays::

                states = [np.zeros((1, 64), np.float32), np.zeros((1, 64), np.float32)]
                for x_t in stream:
                    h, _ = cell.step(x_t, states, out=states)

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
        return self._step_checked(x_t, states, out, carried)

    def _step_checked(self, x_t, states, out, carried=None):
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
        if states is None:
            if carried is not None:
                h, c = carried(x_t.shape[0], backend)
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
        if states is not None and out is not None and h is states[0] and c is states[1]:
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



@dataclass(eq=False)
class _StepPlan:
    """What :meth:`LSTMCell.step` resolves once: the backend and its unchecked step kernel, the
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
