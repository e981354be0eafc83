"""Activation names understood by numlstm, and the integer codes the backends receive.

Backends never see activation *names*: the front-end resolves a name once (and rejects unknown
ones with a clear error) and hands the backend a small integer code. Passing the choice as a
run-time integer, rather than compiling one kernel per activation, keeps the number of JIT
specialisations (and so cold-start compile time) small.

=====================  ====  ===============================================================
name                   code  definition
=====================  ====  ===============================================================
``tanh``               0     tanh(x)
``sigmoid``            1     1 / (1 + exp(-x))
``relu``               2     max(x, 0)
``linear``             3     x  (also accepted: ``None``)
``hard_sigmoid``       4     clip(x / 6 + 1/2, 0, 1) -- Keras 3's definition
``hard_sigmoid_keras2``5     clip(0.2 x + 0.5, 0, 1) -- Keras 2's (and its old tutorials')
                             default ``recurrent_activation``
``softsign``           6     x / (1 + |x|)
``elu``                7     x if x > 0 else exp(x) - 1  (Keras's alpha = 1)
``selu``               8     λ x if x > 0 else λ α (exp(x) - 1), λ = 1.0507009873554805,
                             α = 1.6732632423543772 (Keras's constants)
``exponential``        9     exp(x)
``softplus``           10    log(1 + exp(x))
``relu6``              11    min(max(x, 0), 6)
``leaky_relu``         12    x if x > 0 else 0.2 x  (Keras's negative_slope = 0.2)
``hard_tanh``          13    clip(x, -1, 1)
``log_sigmoid``        14    log(1 / (1 + exp(-x))) = -softplus(-x)
=====================  ====  ===============================================================

Every backend (``numpy``, ``numba``, ``cuda``, ``cupy``) implements every code above, forward
and backward. The LSTM kernels keep only the activated gate values for the backward pass, so
an activation is available to ``LSTM`` only if its derivative can be written through its own
output ``y = act(z)`` (e.g. elu: ``1 if y > 0 else y + 1``; softplus: ``1 - exp(-y)``).
``gelu``, ``silu``/``swish``, ``mish``, ``hard_silu``/``hard_swish``, ``celu`` and the other
Keras activations outside this table are not monotone or not invertible in closed form, so
``LSTM`` refuses them with a ``ValueError`` that says so; :class:`numlstm.Dense` accepts every
activation Keras 3 has (see :mod:`numlstm.layers.core`).

``hard_sigmoid_keras3`` is an alias of ``hard_sigmoid`` for code that wants to say which one it
means. Models trained with Keras 2 defaults need ``recurrent_activation="hard_sigmoid_keras2"``
to reproduce their outputs.
"""

from __future__ import annotations

TANH = 0
SIGMOID = 1
RELU = 2
LINEAR = 3
HARD_SIGMOID = 4
HARD_SIGMOID_KERAS2 = 5
SOFTSIGN = 6
ELU = 7
SELU = 8
EXPONENTIAL = 9
SOFTPLUS = 10
RELU6 = 11
LEAKY_RELU = 12
HARD_TANH = 13
LOG_SIGMOID = 14

#: Keras's SELU constants (Klambauer et al., 2017), and leaky_relu's default slope.
SELU_SCALE = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
LEAKY_RELU_SLOPE = 0.2

#: Every accepted activation name and the code it resolves to.
ACTIVATION_CODES: dict[str, int] = {
    "tanh": TANH,
    "sigmoid": SIGMOID,
    "relu": RELU,
    "linear": LINEAR,
    "hard_sigmoid": HARD_SIGMOID,
    "hard_sigmoid_keras3": HARD_SIGMOID,
    "hard_sigmoid_keras2": HARD_SIGMOID_KERAS2,
    "softsign": SOFTSIGN,
    "elu": ELU,
    "selu": SELU,
    "exponential": EXPONENTIAL,
    "softplus": SOFTPLUS,
    "relu6": RELU6,
    "leaky_relu": LEAKY_RELU,
    "hard_tanh": HARD_TANH,
    "log_sigmoid": LOG_SIGMOID,
}

#: The canonical name of each code (used in configs and messages).
ACTIVATION_NAMES: dict[int, str] = {
    TANH: "tanh",
    SIGMOID: "sigmoid",
    RELU: "relu",
    LINEAR: "linear",
    HARD_SIGMOID: "hard_sigmoid",
    HARD_SIGMOID_KERAS2: "hard_sigmoid_keras2",
    SOFTSIGN: "softsign",
    ELU: "elu",
    SELU: "selu",
    EXPONENTIAL: "exponential",
    SOFTPLUS: "softplus",
    RELU6: "relu6",
    LEAKY_RELU: "leaky_relu",
    HARD_TANH: "hard_tanh",
    LOG_SIGMOID: "log_sigmoid",
}

#: Keras 3 activations an LSTM cannot take, and why (Dense takes them).
NOT_FOR_LSTM: dict[str, str] = {
    name: "its derivative cannot be written through its output, which is all the fused LSTM "
          "kernels keep for the backward pass; Dense accepts it"
    for name in ("gelu", "silu", "swish", "mish", "hard_silu", "hard_swish", "celu",
                 "tanh_shrink", "squareplus", "sparse_plus", "soft_shrink", "hard_shrink",
                 "threshold", "sparse_sigmoid")
}
NOT_FOR_LSTM.update({
    name: "it normalises over the last axis (not elementwise), so it cannot be a gate or cell "
          "activation; Dense accepts it"
    for name in ("softmax", "log_softmax", "sparsemax", "glu")
})
