"""The backend contract: what every numlstm backend implements, and the results it returns.

Every backend runs one LSTM layer in one direction over a whole sequence, forward and backward,
with exactly these semantics (docs/numerics.md):

    z_t = x_t @ kernel + (h_{t-1} * r) @ recurrent_kernel + bias      r: recurrent dropout mask
    i = σ(z[:, 0H:1H])   f = σ(z[:, 1H:2H])   g = act(z[:, 2H:3H])   o = σ(z[:, 3H:4H])
    c_t = f * c_{t-1} + i * g
    h_t = o * act(c_t)

Shapes (``B`` batch, ``T`` timesteps, ``D`` features, ``H`` units):

    x (B, T, D)   kernel (D, 4H)   recurrent_kernel (H, 4H)   bias (4H,)   h0, c0 (B, H)
    mask (B, T) bool, True where a step is processed   recurrent_dropout_mask (B, H)

* ``reverse=True`` processes the timesteps from ``T-1`` down to ``0``. Outputs stay aligned with
  the input positions either way: ``outputs[:, t]`` is what was produced while ``x[:, t]`` was
  processed (the front-end flips them for Keras's ``go_backwards``).
* At a masked step (``mask[b, t]`` False) row ``b``'s states carry over unchanged, and its
  output there is the carried hidden state (``h0`` before any unmasked step), or zeros when
  ``zero_output_for_mask`` is True. So without ``zero_output_for_mask`` the output at every
  step equals the hidden state after it. Final states are those after the last unmasked step
  (``h0``/``c0`` for a fully masked row).
* The recurrent dropout mask (already scaled by ``1/(1-p)``) multiplies ``h_{t-1}`` where it
  enters the recurrent product; the carried state itself is not dropped.

The front-end validates user input before a backend sees it (values included: NaN and inf
are refused there), and activations arrive as integer codes from :mod:`numlstm.activations`.
A backend's own code never validates. Its public entry points are nevertheless guarded: every
subclass's ``lstm_forward``, ``lstm_backward`` and ``lstm_step`` is wrapped, when the class is
defined, with the matching check of :mod:`numlstm.backends.entry_checks` (shapes, dtypes,
contiguity and writability of outputs; a few microseconds a call), so that a wrong-shaped
array raises a clear error instead of reaching an unchecked kernel. For user-facing calls
use :mod:`numlstm.functional`, which also checks values.
"""

from __future__ import annotations

import abc
import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from . import entry_checks


@dataclass
class ForwardResult:
    """What ``lstm_forward`` returns.

    Attributes
    ----------
    outputs : array (B, T, H)
        The output at every timestep, aligned with the input positions.
    h, c : array (B, H)
        The final hidden and cell states.
    cache : object or None
        What ``lstm_backward`` of the same backend needs; None unless ``return_cache=True``.
        Opaque to everyone but the backend that made it.
    backend : str
        The name of the backend that ran.
    details : dict
        How this call ran, where a backend has choices to report (the ``cuda`` backend:
        ``{"path", "path_note", "gemm"}``); empty otherwise. It belongs to the call: no
        backend keeps "the last call's" anything on itself, since one backend instance
        serves every thread.
    """

    outputs: Any
    h: Any
    c: Any
    cache: Any
    backend: str
    details: dict = field(default_factory=dict)


@dataclass
class Gradients:
    """What ``lstm_backward`` returns: the loss's gradient with respect to every input.

    Attributes
    ----------
    x : array (B, T, D)
    kernel : array (D, 4H)
    recurrent_kernel : array (H, 4H)
    bias : array (4H,)
    h0, c0 : array (B, H)
    details : dict
        How this call ran, as :attr:`ForwardResult.details` (usually empty).
    """

    x: Any
    kernel: Any
    recurrent_kernel: Any
    bias: Any
    h0: Any
    c0: Any
    details: dict = field(default_factory=dict)


@dataclass
class SequenceCache:
    """The forward quantities a backward pass needs: the ``cache`` of every backend's
    :class:`ForwardResult` (a backend may subclass it, as the ``cuda`` backend does).

    To everyone but the backend that made it, a cache is opaque except for ``backend``,
    :attr:`problem_shape` and :attr:`dtype`.

    Attributes
    ----------
    x, kernel, recurrent_kernel : the forward's inputs
    c0 : array (B, H)
    mask : bool array (B, T) or None (None: every step processed)
    recurrent_dropout_mask : array (B, H) or None
    reverse, zero_output_for_mask : bool
    activation, recurrent_activation : int codes
    gates : array (B, T, 4H)
        The activated gates ``[i, f, g, o]`` at every step (garbage at masked steps).
    cells : array (B, T, H)
        The cell state after each step (carried over at masked steps).
    h_prev : array (B, T, H)
        The hidden state entering each step, before recurrent dropout.
    """

    x: Any
    kernel: Any
    recurrent_kernel: Any
    c0: Any
    mask: Any
    recurrent_dropout_mask: Any
    reverse: bool
    zero_output_for_mask: bool
    activation: int
    recurrent_activation: int
    gates: Any
    cells: Any
    h_prev: Any
    backend: str

    # What the front-end may ask of a cache (everything else in it is the backend's own).
    @property
    def problem_shape(self) -> tuple[int, int, int, int]:
        """``(batch, timesteps, features, units)`` of the forward that made the cache."""
        batch, timesteps, features = self.x.shape
        return int(batch), int(timesteps), int(features), int(self.recurrent_kernel.shape[0])

    @property
    def dtype(self):
        """The NumPy dtype the forward computed in."""
        return self.x.dtype


def _checked(method, check, pass_name: bool = False):
    """``method`` preceded by ``check`` of its arguments (with the backend's name first when
    ``pass_name``)."""
    if getattr(method, "_entry_checked", False):
        return method

    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        if pass_name:
            check(self.name, *args, **kwargs)
        else:
            check(*args, **kwargs)
        return method(self, *args, **kwargs)
    checked._entry_checked = True
    return checked


#: The public entry points every backend has checked, and their checks.
_ENTRY_CHECKS = {"lstm_forward": (entry_checks.check_forward, False),
                 "lstm_backward": (entry_checks.check_backward, True),
                 "lstm_step": (entry_checks.check_step, False)}


class Backend(abc.ABC):
    """One way of running the LSTM recurrence. Subclasses implement every abstract method.

    Class attributes
    ----------------
    name : str
        The registry name (``"numpy"``, ``"numba"``, ...).
    xp : module
        The array namespace the backend computes with (``numpy`` or ``cupy``); the front-end
        uses it for the non-recurrent math around the kernels.
    """

    name: str = ""
    xp: Any = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Guard the entry points this class defines itself (see the module docstring).
        for method_name, (check, pass_name) in _ENTRY_CHECKS.items():
            method = cls.__dict__.get(method_name)
            if method is not None and not getattr(method, "__isabstractmethod__", False):
                setattr(cls, method_name, _checked(method, check, pass_name))

    # -- arrays and devices -------------------------------------------------------------------
    @abc.abstractmethod
    def asarray(self, array, dtype=None):
        """Move a host array (or anything array-like) to this backend's memory."""

    @abc.abstractmethod
    def to_numpy(self, array):
        """Return a host NumPy array with the contents of a backend array."""

    def synchronize(self) -> None:
        """Block until all queued work on this backend is finished (a no-op on the CPU)."""

    def weights_for_call(self, owner, version, arrays) -> tuple:
        """The backend's arrays for an owner's host weights ``arrays`` (a tuple of C-contiguous
        NumPy arrays), for a call that only reads them.

        This default moves each with :meth:`asarray` (no copy on a CPU backend: the arrays
        themselves). A device backend may hand back the copies it made earlier for the same
        ``owner`` (an object the backend keeps only a weak reference to) while a
        :meth:`keep_weights_resident` scope is open, ``version`` is unchanged and the host
        arrays are the same objects (see :mod:`numlstm.backends.resident`).
        """
        return tuple(self.asarray(array) for array in arrays)

    def keep_weights_resident(self, join: bool = False):
        """A context manager: a scope in which :meth:`weights_for_call` may reuse the device
        copies it made in it; they are released when it closes. With ``join``, an enclosing
        scope that keeps copies is used instead of a new one. Whoever opens a scope
        guarantees that every change of the weights while it is the innermost one comes with
        a new ``version``; user code runs under :meth:`suspend_resident_weights`. A no-op on
        CPU backends."""
        return contextlib.nullcontext()

    def suspend_resident_weights(self):
        """A context manager for code numlstm does not know (a user's callback, a generator):
        inside it no device copy is reused or kept, except in scopes opened inside it. A
        no-op on CPU backends."""
        return contextlib.nullcontext()

    def describe(self) -> str:
        """One line naming the device this backend runs on."""
        return self.name

    def runtime_info(self) -> dict:
        """The runtime this backend runs on, for a benchmark report: a dict of names to
        strings (a GPU backend gives its package's version, the CUDA runtime version as
        ``"cuda_runtime"``, ``"12.8"`` say, and the device's name); empty for a CPU backend.
        Never imports anything the backend has not imported already."""
        return {}

    # -- the recurrence -----------------------------------------------------------------------
    @abc.abstractmethod
    def lstm_forward(self, x, kernel, recurrent_kernel, bias, *, h0, c0, mask,
                     recurrent_dropout_mask, reverse: bool, activation: int,
                     recurrent_activation: int, zero_output_for_mask: bool,
                     return_cache: bool) -> ForwardResult:
        """Run one LSTM layer over a whole sequence (see the module docstring for semantics).

        ``h0`` and ``c0`` are always arrays; ``mask`` and ``recurrent_dropout_mask`` may be None.
        """

    @abc.abstractmethod
    def lstm_backward(self, cache, *, grad_outputs, grad_h, grad_c) -> Gradients:
        """Back-propagate through the sequence recorded in ``cache``.

        ``grad_outputs`` (B, T, H), ``grad_h`` and ``grad_c`` (B, H) are the loss's gradients
        with respect to ``outputs``, the final ``h`` and the final ``c``; each is an array
        (the front-end turns a missing one into zeros).
        """

    # -- one timestep (streaming inference) ---------------------------------------------------
    def lstm_step(self, x_t, kernel, recurrent_kernel, bias, h, c, *, activation: int,
                  recurrent_activation: int, out_h=None, out_c=None):
        """Advance every row by one timestep: ``(x_t, h, c) -> (h_new, c_new)``.

        The same equations as :meth:`lstm_forward` for ``T = 1`` with no mask and no dropout.

        Parameters
        ----------
        x_t : array (B, D)
        kernel, recurrent_kernel, bias : as for :meth:`lstm_forward` (``bias`` is an array)
        h, c : array (B, H)
            The states entering the step; never modified unless they are also ``out_h``/``out_c``.
        out_h, out_c : array (B, H), optional
            Where to write the new states (may be ``h`` and ``c`` themselves, for an in-place
            streaming loop that allocates nothing); new arrays are returned when omitted.

        Returns
        -------
        (h_new, c_new) : arrays (B, H) -- ``out_h`` and ``out_c`` when given.

        This default runs :meth:`lstm_forward` on a one-step sequence, which is correct on every
        backend; backends override it with a path that skips the sequence machinery.
        """
        result = self.lstm_forward(
            x_t[:, None, :], kernel, recurrent_kernel, bias, h0=h, c0=c, mask=None,
            recurrent_dropout_mask=None, reverse=False, activation=activation,
            recurrent_activation=recurrent_activation, zero_output_for_mask=False,
            return_cache=False)
        h_new, c_new = result.h, result.c
        if out_h is not None:
            out_h[...] = h_new
            h_new = out_h
        if out_c is not None:
            out_c[...] = c_new
            c_new = out_c
        return h_new, c_new

    lstm_step = _checked(lstm_step, entry_checks.check_step)

    def step_kernel(self) -> Callable[..., None]:
        """The unchecked form of :meth:`lstm_step`, for a streaming loop that calls it on the
        same, already checked arrays again and again (the layer's ``step`` fast path).

        Returns a function ``step(x_t, kernel, recurrent_kernel, bias, h, c, activation,
        recurrent_activation, out_h, out_c)`` that writes the new states into ``out_h`` and
        ``out_c`` and returns nothing. The caller guarantees what :meth:`lstm_step` would
        check: arrays of this backend, of one dtype, with matching shapes, C-contiguous, and
        ``out_h``/``out_c`` writeable (they may be ``h``/``c`` themselves). Nothing is
        checked, so a wrong argument is undefined behaviour: only code that has validated the
        arrays once, and keeps them, may call it.

        This default runs :meth:`lstm_step` (checks included), which every backend has; the
        ``numba`` backend returns its compiled step itself.
        """
        def step(x_t, kernel, recurrent_kernel, bias, h, c, activation, recurrent_activation,
                 out_h, out_c):
            self.lstm_step(x_t, kernel, recurrent_kernel, bias, h, c, activation=activation,
                           recurrent_activation=recurrent_activation, out_h=out_h, out_c=out_c)
        return step
