"""``Bidirectional``: an LSTM run forwards and a copy run backwards, outputs merged."""

from __future__ import annotations

import numpy as np

from .. import validation as V
from .base import Layer
from .lstm import LSTM

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _check_backward_layer(layer, backward_layer) -> None:
    """``Bidirectional(layer, backward_layer=...)``: an LSTM that reads the sequence the
    other way and gives outputs of the same kind and shape (as Keras requires)."""
    if not isinstance(backward_layer, LSTM):
        raise TypeError(f"backward_layer must be an LSTM layer; got {V.kind_of(backward_layer)}")
    if backward_layer is layer:
        raise ValueError("backward_layer must be another LSTM than layer; got the same object")
    if backward_layer.go_backwards == layer.go_backwards:
        raise ValueError(f"backward_layer must read the sequence the other way: its "
                         f"go_backwards must be {not layer.go_backwards}; got "
                         f"go_backwards={backward_layer.go_backwards}")
    for attribute in ("units", "return_sequences", "return_state", "stateful", "dtype"):
        if getattr(backward_layer, attribute) != getattr(layer, attribute):
            raise ValueError(f"backward_layer must have the same {attribute} as layer "
                             f"({getattr(layer, attribute)}); got "
                             f"{attribute}={getattr(backward_layer, attribute)}")


def _refuse_direction_activity_regularizers(forward_layer, backward_layer) -> None:
    """A direction's own ``activity_regularizer`` is refused: Keras adds its penalty on that
    direction's output (``regularizer(y_direction) / batch``, for both directions, the copied
    backward one included), which numlstm's models do not compute for a wrapped layer -- it
    would silently drop out of the loss. On the wrapper it penalises the merged output; with
    ``merge_mode="concat"`` and an L1/L2/L1L2 regularizer that is the same number (the
    concatenation's sum of |y| or y**2 is the two directions' sums added)."""
    for argument, direction in (("layer", forward_layer), ("backward_layer", backward_layer)):
        regularizer = getattr(direction, "activity_regularizer", None)
        if regularizer is not None:
            raise ValueError(
                f"Bidirectional: {argument} {direction.name!r} has activity_regularizer="
                f"{regularizer!r}, which numlstm does not apply to a layer inside a "
                "Bidirectional; give activity_regularizer to the Bidirectional wrapper "
                "instead (with merge_mode='concat' it is the same penalty as Keras's on each "
                "direction) and build the LSTM without it")


class Bidirectional(Layer):
    """Run ``layer`` over the sequence forwards and a fresh copy of it backwards.

    The backward copy has the same configuration with ``go_backwards`` flipped and its own
    weights (as in Keras). With ``return_sequences`` its outputs are aligned with the input
    positions before merging, so ``y[:, t]`` combines both directions' outputs at ``x[:, t]``;
    without it the backward copy's output is the one after it has read the whole sequence
    (i.e. at position 0). The incoming mask goes to both directions.

    Parameters
    ----------
    layer : LSTM
        The forward layer (``return_state`` must be False; ``stateful`` is not supported).
    merge_mode : {"concat", "sum", "mul", "ave", None}, default "concat"
        How the two outputs combine; None returns a list ``[forward, backward]`` (only usable
        as the last layer of a model, or on its own).

    Notes
    -----
    Weights: the forward layer's three arrays, then the backward layer's.

    ``activity_regularizer`` belongs on the wrapper (it penalises the merged output); a wrapped
    LSTM that has one is refused with a ``ValueError`` (Keras would penalise each direction's
    output, which numlstm does not compute; with ``merge_mode="concat"`` the wrapper's
    regularizer gives the same penalty).
    """

    def __init__(self, layer, merge_mode="concat", name=None, backend=None, backward_layer=None,
                 trainable=True):
        if not isinstance(layer, LSTM):
            raise TypeError(f"layer must be an LSTM layer; got {type(layer).__name__}")
        if layer.return_state or layer.stateful:
            raise ValueError("Bidirectional needs an LSTM with return_state=False and "
                             "stateful=False")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {list(MERGE_MODES)}; got "
                             f"{merge_mode!r}")
        if backward_layer is None:
            config = layer.get_config()
            config["go_backwards"] = not layer.go_backwards
            config["name"] = f"backward_{layer.name}"
            if config["seed"] is not None:
                config["seed"] = config["seed"] + 1
            backward_layer = LSTM(**config)
        else:
            _check_backward_layer(layer, backward_layer)
        _refuse_direction_activity_regularizers(layer, backward_layer)
        # As Keras does: inside a Bidirectional, a direction that returns sequences outputs
        # zeros at masked steps (not the carried state), and one that returns its last output
        # does not -- whatever the wrapped layers said.
        for direction in (layer, backward_layer):
            direction.zero_output_for_mask = direction.return_sequences
        self.forward_layer = layer
        self.backward_layer = backward_layer
        # trainable=False freezes both directions; the default leaves each as it was given
        # (a frozen LSTM stays frozen, and a direction frozen on its own is saved as such)
        super().__init__(name=name if name is not None else f"bidirectional_{layer.name}",
                         dtype=layer.dtype.name, seed=layer.seed, backend=backend,
                         trainable=None if V.check_bool(trainable, "trainable") else False)
        self.merge_mode = merge_mode

    @property
    def trainable(self) -> bool:
        """Whether training updates both directions; setting it sets both."""
        return self.forward_layer.trainable and self.backward_layer.trainable

    @trainable.setter
    def trainable(self, value) -> None:
        value = V.check_bool(value, "trainable")
        self.forward_layer.trainable = value
        self.backward_layer.trainable = value

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    def _assign_seed(self, seed: int) -> None:
        """Give both directions seeds derived from one (used by models for unseeded layers)."""
        self.seed = seed
        self.forward_layer.seed = seed
        self.backward_layer.seed = seed + 1

    @property
    def weights(self):
        return self.forward_layer.weights + self.backward_layer.weights

    def _weight_rules(self) -> list[tuple]:
        return self.forward_layer._weight_rules() + self.backward_layer._weight_rules()

    def _weights_trainable(self) -> list[bool]:
        return (self.forward_layer._weights_trainable()
                + self.backward_layer._weights_trainable())

    @property
    def trainable_weights(self):
        return self.forward_layer.trainable_weights + self.backward_layer.trainable_weights

    @property
    def non_trainable_weights(self):
        return (self.forward_layer.non_trainable_weights
                + self.backward_layer.non_trainable_weights)

    def build(self, input_shape) -> None:
        # again here: a direction's activity_regularizer may have been set after construction
        _refuse_direction_activity_regularizers(self.forward_layer, self.backward_layer)
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        super().build(input_shape)

    def weight_specs(self, input_shape) -> list[tuple[str, tuple]]:
        return (self.forward_layer.weight_specs(input_shape)
                + self.backward_layer.weight_specs(input_shape))

    def check_weights(self, weights, input_shape=None):
        """Both directions' weights checked (forward's, then backward's) before either is
        replaced."""
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a list of arrays; got {type(weights).__name__}")
        n = len(self.forward_layer.weights) if self.built else \
            2 + int(self.forward_layer.use_bias)
        if len(weights) != 2 * n:
            raise ValueError(f"Bidirectional {self.name!r} needs {2 * n} weight arrays "
                             f"(forward then backward); got {len(weights)}")
        return (self.forward_layer.check_weights(list(weights[:n]), input_shape),
                self.backward_layer.check_weights(list(weights[n:]), input_shape))

    def install_weights(self, checked, input_shape=None) -> None:
        self.forward_layer.install_weights(checked[0], input_shape)
        self.backward_layer.install_weights(checked[1], input_shape)
        if input_shape is not None or not self.built:
            Layer.build(self, input_shape if input_shape is not None else
                        (None, None, self.forward_layer.input_features))

    def set_weights(self, weights) -> None:
        self.install_weights(self.check_weights(weights))

    def compute_output_shape(self, input_shape) -> tuple:
        single = self.forward_layer.compute_output_shape(input_shape)
        if self.merge_mode == "concat":
            return tuple(single[:-1]) + (2 * single[-1],)
        return single

    def compute_mask(self, mask, inputs=None):
        return mask if self.return_sequences else None

    def _check_input(self, x):
        return V.check_sequence_input(x, dtype=self.dtype,
                                      features=self.forward_layer.input_features,
                                      argument="Bidirectional input")

    def forward(self, x, mask=None, training=False, backend=None, rng=None):
        xp = backend.xp
        # Both directions' sequence outputs aligned with the input positions, so that
        # y[:, t] merges what each direction produced at x[:, t].
        y_f = self.forward_layer._forward_in_model(x, mask, training, backend, rng,
                                                   aligned=True)
        y_b = self.backward_layer._forward_in_model(x, mask, training, backend, rng,
                                                    aligned=True)
        self._cache = (y_f, y_b)
        mode = self.merge_mode
        if mode == "concat":
            return xp.concatenate([y_f, y_b], axis=-1)
        if mode == "sum":
            return y_f + y_b
        if mode == "mul":
            return y_f * y_b
        if mode == "ave":
            return (y_f + y_b) / 2
        return [y_f, y_b]

    def backward(self, grad):
        y_f, y_b = self._cache
        mode = self.merge_mode
        if mode == "concat":
            units = y_f.shape[-1]
            g_f, g_b = grad[..., :units], grad[..., units:]
        elif mode == "sum":
            g_f = g_b = grad
        elif mode == "mul":
            g_f, g_b = grad * y_b, grad * y_f
        elif mode == "ave":
            g_f = g_b = grad / 2
        else:
            g_f, g_b = grad
        dx = self.forward_layer.backward(g_f) + self.backward_layer.backward(g_b)
        self.grads = self.forward_layer.grads + self.backward_layer.grads
        self._cache = None
        return dx

    def _output_specs(self, inputs: list) -> list[tuple[tuple, str]]:
        (x,) = self._single_input(inputs)
        if x.ndim != 3:
            raise ValueError(f"layer {self.name!r} needs 3-D input (batch, timesteps, "
                             f"features); got a tensor of shape {x.shape}")
        self._build_in_graph(x.shape)
        shape = tuple(self.compute_output_shape(x.shape))
        return [(shape, self.dtype.name)] * (2 if self.merge_mode is None else 1)

    def _output_suffix(self, index: int) -> str:
        return "" if self.merge_mode is not None else ("_forward", "_backward")[index]

    def _check_built_for(self, shape: tuple) -> None:
        self.forward_layer._check_built_for(shape)
        self.backward_layer._check_built_for(shape)

    def _take_pending(self):
        pending = (self._cache, self.forward_layer._take_pending(),
                   self.backward_layer._take_pending())
        self._cache = None
        return pending

    def _restore_pending(self, pending) -> None:
        self._cache = pending[0]
        self.forward_layer._restore_pending(pending[1])
        self.backward_layer._restore_pending(pending[2])

    def _graph_forward(self, inputs: list, masks: list, training: bool, backend, rng):
        (x,), (mask,) = inputs, masks
        out_mask = self.compute_mask(mask, x)
        y = self.forward(x, mask=mask, training=training, backend=backend, rng=rng)
        pending = self._take_pending() if training else None
        if self.merge_mode is None:
            return list(y), [out_mask, out_mask], pending
        return [y], [out_mask], pending

    def _graph_backward(self, pending, output_grads: list):
        self._restore_pending(pending)
        dx = self.backward(output_grads if self.merge_mode is None else output_grads[0])
        return [dx], list(self.grads)

    def _weights_changed(self) -> None:
        self.forward_layer._weights_changed()
        self.backward_layer._weights_changed()

    def get_config(self) -> dict:
        return {"layer": {"class_name": "LSTM", "config": self.forward_layer.get_config()},
                "backward_layer": {"class_name": "LSTM",
                                   "config": self.backward_layer.get_config()},
                "merge_mode": self.merge_mode, "name": self.name, "backend": self.backend,
                **self._activity_config()}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        layer = LSTM(**config.pop("layer")["config"])
        backward = LSTM(**config.pop("backward_layer")["config"])
        return cls(layer, backward_layer=backward, **config)
