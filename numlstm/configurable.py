"""The one base of numlstm's small configured objects -- initializers, regularizers and
constraints -- which Keras also describes by a class name and a ``config`` dict.

Two such objects are equal when they are of the same class with the same configuration, and
print as ``ClassName(argument=value, ...)``; :meth:`Configurable.from_config` rebuilds one
from its :meth:`~Configurable.get_config`, which is how saved models and Keras files hold
them.
"""

from __future__ import annotations


class Configurable:
    """``get_config()`` (the constructor's arguments, a JSON-friendly dict; subclasses with
    arguments override it), ``from_config``, equality by class and configuration, a
    ``repr`` of the arguments."""

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        # the class alone: configurations may hold lists (a constraint's axes), and equal
        # objects must hash alike
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"
