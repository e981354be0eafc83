"""The Keras-style ``LSTM`` layer."""

from __future__ import annotations

import numpy as np

from .. import initializers
from .. import validation as V
from ..activations import ACTIVATION_NAMES
from ..backends import BACKEND_NAMES, get_backend
from ..functional import run_forward


class LSTM:
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

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, return_sequences=False,
                 return_state=False, go_backwards=False, zero_output_for_mask=False, seed=None,
                 backend=None, dtype="float32", name=None):
        self.units = V.check_positive_int(units, "units")
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
        self.seed = V.check_seed(seed)
        self.backend = None if backend is None else V.check_name(backend, "backend",
                                                                 BACKEND_NAMES)
        self.dtype = V.check_float_dtype(dtype, "dtype")
        self.name = name if name is not None else "lstm"
        self.built = False
        self.input_features: int | None = None
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
    def build(self, input_shape) -> None:
        """Create the weights for inputs of shape (batch, timesteps, features).

        ``input_shape`` may use None for the batch and timesteps; only ``features`` is used.
        """
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
            raise ValueError("input_shape must be a 3-tuple (batch, timesteps, features); "
                             f"got {input_shape!r}")
        features = V.check_positive_int(input_shape[2], "input_shape[2] (features)")
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
        self.input_features = features
        self._assign(V.check_lstm_weights(weights, features, units, dtype, self.use_bias,
                                          argument="initialized weights"))
        self.built = True

    def _assign(self, weights) -> None:
        self._kernel, self._recurrent_kernel = weights[0], weights[1]
        self._bias = weights[2] if self.use_bias else None

    def get_weights(self) -> list[np.ndarray]:
        """``[kernel, recurrent_kernel, bias]`` (Keras layout, gate order i, f, c, o); copies."""
        if not self.built:
            return []
        weights = [self.kernel, self.recurrent_kernel]
        if self.use_bias:
            weights.append(self.bias)
        return [w.copy() for w in weights]

    def set_weights(self, weights) -> None:
        """Set ``[kernel (features, 4*units), recurrent_kernel (units, 4*units), bias (4*units,)]``.

        An unbuilt layer is built for the kernel's number of features.
        """
        if self.built:
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
        self.input_features = features
        self._assign([w.copy() for w in checked])
        self.built = True

    def count_params(self) -> int:
        """``4*units*(features + units + 1)`` (without the ``+ 1`` when ``use_bias=False``)."""
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: call it on an input or "
                             "call build((batch, timesteps, features)) first")
        return 4 * self.units * (self.input_features + self.units + int(self.use_bias))

    def get_config(self) -> dict:
        """The constructor arguments, as plain data."""
        def spec(value):
            return value if isinstance(value, str) else getattr(value, "__name__", repr(value))
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
        }

    # -- the call -------------------------------------------------------------------------------
    def __call__(self, x, mask=None, initial_state=None):
        x = V.check_sequence_input(x, dtype=self.dtype, features=self.input_features,
                                   argument=f"{type(self).__name__} input")
        batch, timesteps, features = x.shape
        if not self.built:
            self.build((None, None, features))
        mask = V.check_mask(mask, batch, timesteps)
        h0, c0 = V.check_initial_state(initial_state, batch, self.units, self.dtype)
        bias = self._bias if self.use_bias else np.zeros(4 * self.units, self.dtype)
        backend = get_backend(self.backend)
        result = run_forward(
            backend, x, self._kernel, self._recurrent_kernel, bias, h0, c0,
            mask=mask, recurrent_dropout_mask=None, reverse=self.go_backwards,
            activation=self._activation_code,
            recurrent_activation=self._recurrent_activation_code,
            zero_output_for_mask=self.zero_output_for_mask, return_cache=False)
        self.last_backend = result.backend

        outputs = backend.to_numpy(result.outputs)
        h, c = backend.to_numpy(result.h), backend.to_numpy(result.c)
        if self.go_backwards:
            # Kernel outputs are aligned with the input; Keras returns processing order.
            outputs = np.ascontiguousarray(outputs[:, ::-1])
        if self.return_sequences:
            output = outputs
        else:
            # The output of the last processed step; with no step at all, the initial h.
            output = outputs[:, -1] if timesteps else h.copy()
        return [output, h, c] if self.return_state else output
