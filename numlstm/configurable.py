"""The one base of numlstm's small configured objects -- initializers, regularizers and
constraints -- which Keras also describes by a class name and a ``config`` dict, and the
two functions that write and read that ``{"class_name", "config"}`` layout (learning-rate
schedules are written with it too).

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


def to_keras_config(obj) -> dict:
    """``obj`` (anything with ``get_config``) as ``{"class_name": ..., "config": {...}}``:
    Keras's ``serialize`` layout, which saved models and Keras files hold."""
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def from_keras_config(spec: dict, classes: dict, argument: str, allowed=None):
    """The object a ``{"class_name": ..., "config": {...}}`` describes, ``class_name`` one of
    ``classes`` (name -> class). ``allowed``: the only configuration keys the classes take
    (None: whatever their constructors take). Anything else raises a ``ValueError`` naming
    ``argument`` and what was given."""
    name, config = spec.get("class_name"), spec.get("config", {})
    if name not in classes or not isinstance(config, dict):
        raise ValueError(f"{argument}: a configuration must be {{'class_name': one of "
                         f"{sorted(classes)}, 'config': {{...}}}}; got {spec!r}")
    unknown = set(config) - set(allowed) if allowed is not None else set()
    if unknown:
        raise ValueError(f"{argument}: {name} takes only {sorted(allowed)}; got the unknown "
                         f"arguments {sorted(unknown)}")
    try:
        return classes[name](**config)
    except TypeError as error:
        raise ValueError(f"{argument}: {name} configuration {config!r}: {error}") from None
