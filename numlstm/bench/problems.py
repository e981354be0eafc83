"""Benchmark shapes, their FLOP counts, and the LSTM problems the harness and the tests run.

A :class:`Problem` holds the inputs of a stack of LSTM layers and the upstream gradients of its
results, as host NumPy arrays of one dtype. It runs two ways, with the same results by name:

* :func:`run_kernels` calls the backend's kernels directly, with the arrays moved into the
  backend's memory once (:func:`backend_arrays`) -- what :func:`numlstm.bench.time_backend`
  times and :func:`numlstm.bench.check_parity` compares;
* :meth:`Problem.run` goes through the public functional API (:mod:`numlstm.functional`), with
  its argument checks and conversions -- what the test suite holds to the reference.

Result names: ``outputs`` (the top layer's), ``h``/``c`` (final states), ``d_x``, and
``d_kernel``/``d_recurrent_kernel``/``d_bias`` (plus ``d_h0``/``d_c0`` when the problem gives
initial states); in a stack every per-layer name carries the layer's index, ``h[0]``,
``d_kernel[1]`` ...
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields
from typing import Iterator

import numpy as np

from .. import validation as V
from ..backends import get_backend

__all__ = ["MODES", "CONFIGS", "ENGINE_VARIANTS", "Shape", "Problem", "lstm_flops",
           "make_problem", "backend_scope", "backend_arrays", "stack_forward",
           "stack_backward", "run_kernels", "top_layer_view", "is_gradient"]

MODES = ("forward", "train")

#: Names for the ``numba`` backend with its float32 recurrent products on one engine
#: (:func:`numlstm.use_cpu_blas`): numlstm's packed kernel, oneMKL's packed GEMM, OpenBLAS.
#: Plain ``"numba"`` runs whatever ``"auto"`` picks on the machine.
ENGINE_VARIANTS = {"numba-numlstm": "numlstm", "numba-mkl": "mkl", "numba-openblas": "openblas"}


# -- shapes and FLOPs ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """A benchmark shape: ``layers`` stacked LSTM layers of ``units`` each.

    The first layer reads ``features`` inputs, every later one ``units``.
    """

    batch: int
    timesteps: int
    features: int
    units: int
    layers: int = 1

    def __post_init__(self):
        for name in ("batch", "timesteps", "features", "units", "layers"):
            V.check_positive_int(getattr(self, name), name)

    def layer_inputs(self) -> list[int]:
        """The input width ``D`` of each layer."""
        return [self.features] + [self.units] * (self.layers - 1)

    def flops(self, mode: str = "forward") -> int:
        """See :func:`lstm_flops`."""
        return lstm_flops(self, mode)

    def describe(self) -> str:
        text = f"B{self.batch} T{self.timesteps} D{self.features} H{self.units}"
        return text + (f" x{self.layers} layers" if self.layers > 1 else "")


#: The five benchmark configurations (docs/performance.md).
CONFIGS: dict[str, Shape] = {
    "a": Shape(1, 100, 32, 64),          # streaming, batch 1
    "b": Shape(32, 28, 28, 128),         # MNIST rows, as in the Keras tutorials
    "c": Shape(64, 100, 64, 256),
    "d": Shape(256, 50, 128, 512),
    "e": Shape(64, 100, 64, 256, 2),     # two stacked layers of c
}


def lstm_flops(shape: Shape, mode: str = "forward") -> int:
    """Floating-point operations of one pass over ``shape``.

    Forward: ``sum over layers of 2·T·B·4H·(D+H)`` (the two GEMMs; the gate math is not
    counted). ``mode="train"`` (forward + backward) counts 3× the forward.
    """
    V.check_name(mode, "mode", MODES)
    forward = sum(2 * shape.timesteps * shape.batch * 4 * shape.units * (d + shape.units)
                  for d in shape.layer_inputs())
    return forward * (3 if mode == "train" else 1)


# -- problems -----------------------------------------------------------------------------------

@dataclass
class Problem:
    """The inputs of an LSTM stack and the upstream gradients of its results.

    Attributes
    ----------
    x : array (batch, timesteps, features)
    kernel, recurrent_kernel, bias : arrays (features, 4H), (H, 4H), (4H,)
        The first layer's weights (gate order i, f, c, o).
    h0, c0 : array (batch, H) or None
        Every layer's initial states (None: zeros).
    mask : bool array (batch, timesteps) or None
    recurrent_dropout_mask : array (batch, H) or None
        Every layer's recurrent dropout mask.
    grad_outputs : array (batch, timesteps, H) or None
        The upstream gradient of the top layer's outputs (needed for a backward pass).
    grad_h, grad_c : array (batch, H) or None
        The upstream gradients of every layer's final states (None: zeros).
    options : dict
        Keyword options of :func:`numlstm.functional.lstm_forward` for every layer:
        ``reverse``, ``activation``, ``recurrent_activation``, ``zero_output_for_mask``.
    stacked : tuple of (kernel (H, 4H), recurrent_kernel (H, 4H), bias (4H,))
        The weights of every further layer, bottom to top; layer ``l + 1`` reads layer
        ``l``'s outputs.
    """

    x: np.ndarray
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    h0: np.ndarray | None = None
    c0: np.ndarray | None = None
    mask: np.ndarray | None = None
    recurrent_dropout_mask: np.ndarray | None = None
    grad_outputs: np.ndarray | None = None
    grad_h: np.ndarray | None = None
    grad_c: np.ndarray | None = None
    options: dict = field(default_factory=dict)
    stacked: tuple = ()

    @property
    def weights(self) -> list:
        """``[(kernel, recurrent_kernel, bias)]``, one per layer, bottom first."""
        return [(self.kernel, self.recurrent_kernel, self.bias), *self.stacked]

    @property
    def layers(self) -> int:
        return 1 + len(self.stacked)

    @property
    def shape(self) -> Shape:
        batch, timesteps, features = self.x.shape
        return Shape(batch, timesteps, features, self.recurrent_kernel.shape[0], self.layers)

    @property
    def dtype(self) -> np.dtype:
        return self.x.dtype

    @property
    def reverse(self) -> bool:
        return bool(self.options.get("reverse", False))

    @property
    def activation(self) -> str:
        return self.options.get("activation", "tanh")

    @property
    def recurrent_activation(self) -> str:
        return self.options.get("recurrent_activation", "sigmoid")

    def astype(self, dtype) -> "Problem":
        """The same problem with every float array cast to ``dtype`` (masks stay boolean)."""
        def cast(value):
            if isinstance(value, np.ndarray) and value.dtype != np.bool_:
                return value.astype(dtype)
            if isinstance(value, tuple):
                return tuple(cast(item) for item in value)
            return value
        return Problem(**{f.name: cast(getattr(self, f.name)) for f in fields(self)})

    # -- through the public functional API -------------------------------------------------
    def forward(self, backend: str, return_cache: bool = True):
        """The top layer's ``ForwardResult`` after :func:`numlstm.functional.lstm_forward` of
        every layer on ``backend`` (a registry name or one of :data:`ENGINE_VARIANTS`)."""
        return self._forward_layers(backend, return_cache)[-1]

    def _forward_layers(self, backend: str, return_cache: bool) -> list:
        from .. import functional
        inputs, results = self.x, []
        with backend_scope(backend) as name:
            for kernel, recurrent_kernel, bias in self.weights:
                result = functional.lstm_forward(
                    inputs, kernel, recurrent_kernel, bias, h0=self.h0, c0=self.c0,
                    mask=self.mask, recurrent_dropout_mask=self.recurrent_dropout_mask,
                    return_cache=return_cache, backend=name, **self.options)
                results.append(result)
                inputs = result.outputs
        return results

    def run(self, backend: str) -> dict[str, np.ndarray]:
        """Forward and backward through the functional API on ``backend``; every result as a
        host array, by name (see the module docstring)."""
        from .. import functional
        results = self._forward_layers(backend, return_cache=True)
        grads, upstream = [None] * len(results), self.grad_outputs
        with backend_scope(backend) as name:
            for index in range(len(results) - 1, -1, -1):
                grads[index] = functional.lstm_backward(
                    results[index].cache, grad_outputs=upstream, grad_h=self.grad_h,
                    grad_c=self.grad_c)
                upstream = grads[index].x
            return _named_results(get_backend(name).to_numpy, results, grads,
                                  initial_states=self.h0 is not None)


def make_problem(shape: Shape, dtype="float32", *, seed: int = 0, mask: bool = False,
                 reverse: bool = False, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid") -> Problem:
    """Random inputs for ``shape``: weights ``U(-1/√H, 1/√H)`` as ``torch.nn.LSTM`` initialises
    them, inputs and upstream gradients standard normal, states starting at zero. Made in
    float64, then cast, so the float32 and float64 problems of one seed hold the same numbers
    (to rounding).

    ``mask=True`` adds a random mask of any pattern (about 25% of steps masked, one row fully
    masked when the batch has more than one row).
    """
    dtype = V.check_float_dtype(dtype)
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(shape.units)
    weights = []
    for d in shape.layer_inputs():
        weights.append(tuple(rng.uniform(-bound, bound, size).astype(dtype) for size in
                             ((d, 4 * shape.units), (shape.units, 4 * shape.units),
                              (4 * shape.units,))))
    x = rng.standard_normal((shape.batch, shape.timesteps, shape.features)).astype(dtype)
    grad_outputs = rng.standard_normal((shape.batch, shape.timesteps, shape.units)).astype(dtype)
    mask_array = None
    if mask:
        mask_array = rng.random((shape.batch, shape.timesteps)) > 0.25
        if shape.batch > 1:
            mask_array[0] = False
    V.check_activation(activation, "activation")
    V.check_activation(recurrent_activation, "recurrent_activation")
    options = {"reverse": bool(reverse), "activation": activation,
               "recurrent_activation": recurrent_activation}
    (kernel, recurrent_kernel, bias), *stacked = weights
    return Problem(x, kernel, recurrent_kernel, bias, mask=mask_array,
                   grad_outputs=grad_outputs, options=options, stacked=tuple(stacked))


@contextlib.contextmanager
def backend_scope(name: str) -> Iterator[str]:
    """Run the block with the engine policy an :data:`ENGINE_VARIANTS` name stands for; yields
    the registry's backend name (``name`` itself for a plain backend name)."""
    engine = ENGINE_VARIANTS.get(name)
    if engine is None:
        yield name
        return
    import numlstm
    with numlstm.use_cpu_blas(engine):
        yield "numba"


def is_gradient(name: str) -> bool:
    """Whether a result name is a gradient (``d_...``) rather than an output or a state."""
    return name.startswith("d_")


# -- straight to the kernels --------------------------------------------------------------------

def backend_arrays(backend, problem: Problem) -> dict:
    """The problem's arrays moved into ``backend``'s memory once (timed calls reuse them);
    initial states and state gradients that the problem leaves out are zeros."""
    dtype = problem.dtype
    batch, units = problem.x.shape[0], problem.recurrent_kernel.shape[0]

    def on_backend(array):
        return None if array is None else backend.asarray(array)

    def or_zeros(array):     # one array per role, so that no two arguments alias each other
        return backend.asarray(np.zeros((batch, units), dtype) if array is None else array)
    return {
        "x": backend.asarray(problem.x),
        "weights": [tuple(backend.asarray(w) for w in layer) for layer in problem.weights],
        "h0": or_zeros(problem.h0), "c0": or_zeros(problem.c0),
        "mask": on_backend(problem.mask),
        "recurrent_dropout_mask": on_backend(problem.recurrent_dropout_mask),
        "grad_outputs": on_backend(problem.grad_outputs),
        "grad_h": or_zeros(problem.grad_h), "grad_c": or_zeros(problem.grad_c),
        "reverse": problem.reverse,
        "activation": V.check_activation(problem.activation, "activation"),
        "recurrent_activation": V.check_activation(problem.recurrent_activation,
                                                   "recurrent_activation"),
        "zero_output_for_mask": bool(problem.options.get("zero_output_for_mask", False)),
    }


def stack_forward(backend, arrays: dict, *, return_cache: bool = False) -> list:
    """Run every layer of the stack on ``backend``; one ``ForwardResult`` per layer.

    ``arrays`` is what :func:`backend_arrays` returns. Layer ``l + 1`` reads layer ``l``'s
    outputs; the states, masks and options apply to every layer.
    """
    inputs, results = arrays["x"], []
    for kernel, recurrent_kernel, bias in arrays["weights"]:
        result = backend.lstm_forward(
            inputs, kernel, recurrent_kernel, bias, h0=arrays["h0"], c0=arrays["c0"],
            mask=arrays["mask"], recurrent_dropout_mask=arrays["recurrent_dropout_mask"],
            reverse=arrays["reverse"], activation=arrays["activation"],
            recurrent_activation=arrays["recurrent_activation"],
            zero_output_for_mask=arrays["zero_output_for_mask"], return_cache=return_cache)
        results.append(result)
        inputs = result.outputs
    return results


def stack_backward(backend, arrays: dict, results: list) -> list:
    """Back-propagate ``arrays["grad_outputs"]`` through a stack run with ``return_cache=True``.

    Returns one ``Gradients`` per layer (bottom first); every layer's final states get
    ``arrays["grad_h"]``/``["grad_c"]``, and each layer's input gradient is the upstream
    gradient of the outputs of the layer below it.
    """
    grads, upstream = [None] * len(results), arrays["grad_outputs"]
    for index in range(len(results) - 1, -1, -1):
        grads[index] = backend.lstm_backward(results[index].cache, grad_outputs=upstream,
                                             grad_h=arrays["grad_h"],
                                             grad_c=arrays["grad_c"])
        upstream = grads[index].x
    return grads


def run_kernels(backend_name: str, problem: Problem) -> dict[str, np.ndarray]:
    """Forward and backward of the stack on the backend's kernels; every result as a host
    array, by name (see the module docstring)."""
    with backend_scope(backend_name) as name:
        backend = get_backend(name)
        arrays = backend_arrays(backend, problem)
        results = stack_forward(backend, arrays, return_cache=True)
        grads = stack_backward(backend, arrays, results)
        return _named_results(backend.to_numpy, results, grads,
                              initial_states=problem.h0 is not None)


def _named_results(host, results: list, grads: list, *, initial_states: bool) -> dict:
    named = {"outputs": host(results[-1].outputs)}
    parts = ("kernel", "recurrent_kernel", "bias") + (("h0", "c0") if initial_states else ())
    for index, (result, grad) in enumerate(zip(results, grads)):
        tag = f"[{index}]" if len(results) > 1 else ""
        named[f"h{tag}"] = host(result.h)
        named[f"c{tag}"] = host(result.c)
        for part in parts:
            named[f"d_{part}{tag}"] = host(getattr(grad, part))
    named["d_x"] = host(grads[0].x)
    return named


def top_layer_view(named: dict, layers: int) -> dict:
    """``outputs``, ``h``, ``c`` and ``d_x`` of a stack's results: the top layer's final
    states under a single layer's names (what a peer's results are compared with)."""
    tag = f"[{layers - 1}]" if layers > 1 else ""
    return {"outputs": named["outputs"], "h": named[f"h{tag}"], "c": named[f"c{tag}"],
            "d_x": named["d_x"]}
