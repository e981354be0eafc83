"""Models: :class:`Model` (a graph of layers from ``Input`` tensors to outputs, Keras's
functional API) and :class:`Sequential` (the same over a chain), with compile / fit /
evaluate / predict, and their files.

* :mod:`numlstm.models.graph` -- the nodes between inputs and outputs, forward and backward;
* :mod:`numlstm.models.model` -- ``Model``: compile, the training loop, the model API;
* :mod:`numlstm.models.sequential` -- ``Sequential``: a chain built from a list of layers;
* :mod:`numlstm.models.saving` -- configurations, JSON, whole-model and weights files.
"""

from .model import Model
from .saving import (FUNCTIONAL_FORMAT, MODEL_FORMAT, MODEL_FORMAT_VERSION, WEIGHTS_FORMAT,
                     load_model, model_from_config, model_from_json)
from .sequential import Sequential

__all__ = ["FUNCTIONAL_FORMAT", "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "Model", "Sequential",
           "WEIGHTS_FORMAT", "load_model", "model_from_config", "model_from_json"]
