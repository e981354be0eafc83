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
=====================  ====  ===============================================================

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

#: Every accepted activation name and the code it resolves to.
ACTIVATION_CODES: dict[str, int] = {
    "tanh": TANH,
    "sigmoid": SIGMOID,
    "relu": RELU,
    "linear": LINEAR,
    "hard_sigmoid": HARD_SIGMOID,
    "hard_sigmoid_keras3": HARD_SIGMOID,
    "hard_sigmoid_keras2": HARD_SIGMOID_KERAS2,
}

#: The canonical name of each code (used in configs and messages).
ACTIVATION_NAMES: dict[int, str] = {
    TANH: "tanh",
    SIGMOID: "sigmoid",
    RELU: "relu",
    LINEAR: "linear",
    HARD_SIGMOID: "hard_sigmoid",
    HARD_SIGMOID_KERAS2: "hard_sigmoid_keras2",
}
