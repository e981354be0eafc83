"""The ``cuda`` backend: ``numba.cuda`` kernels on an NVIDIA GPU (launch code).

The kernels live in :mod:`numlstm.backends.cuda_kernels`; this module chooses launch
configurations, moves arrays between host and device, and runs the kernels in order.

Arrays. Every method accepts host NumPy arrays or device arrays: Numba device arrays, or any
object with ``__cuda_array_interface__`` (a CuPy array, a PyTorch CUDA tensor), used in place
without a copy when C-contiguous. Results come back in the kind the forward's ``x`` was given:
NumPy in, NumPy out; Numba device arrays in, Numba device arrays out; CuPy in, CuPy out (other
CUDA-array-interface objects get Numba device arrays). What the backward needs stays on the
device, in the cache.

Two forward paths; each result's ``details["path"]`` says which one ran (and
``details["path_note"]`` why):

* ``"per-step"``: the input projection of all timesteps as one GEMM, then one fused launch
  per timestep (recurrent product through shared memory + gates + cell update), through a
  :class:`StepLauncher` that on a GPU converts the arguments to driver parameters once per
  call, so only the timestep changes from launch to launch;
* ``"persistent"``: for batch <= :data:`PERSISTENT_MAX_BATCH`, one cooperative launch runs every
  timestep with the recurrent weights held in shared memory (opted in to the device's larger
  per-block limit) and a grid-wide barrier between steps; the reduction over the hidden units
  is split across warps so that a block has at least :data:`PERSISTENT_TARGET_THREADS`
  threads. It declines (and the per-step path runs) when the weights do not fit in the
  co-resident blocks' shared memory, or, in Numba's CUDA simulator, when more than one block
  would be needed (the simulator runs blocks one after another, so it cannot synchronise a
  grid).

The backward has the same two paths (its ``Gradients.details``): a persistent kernel where it
fits, else two launches per step (through :class:`StepLauncher` too) -- gate derivatives, then
``dz @ recurrent_kernel.T``. Then the weight and input gradients as GEMMs over the whole
sequence and the bias gradient as a parallel reduction. The GEMMs go through cuBLAS where CuPy
is installed, else through the tiled kernel (``details["gemm"]`` says which; the choice is
:meth:`CudaBackend.options`'s ``gemm``). Scratch arrays that
never leave a call are pooled per thread by shape (:class:`_DeviceWorkspace`).

Launch configuration comes from the module constants below; tests patch them small so that
every kernel spans several blocks and every grid-stride loop runs more than once.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
from dataclasses import dataclass, replace

import numpy as np

from ..errors import BackendUnavailableError
from .base import Backend, ForwardResult, Gradients, SequenceCache
from .resident import KeepsWeightsResident, ResidentWeights

#: Threads per block of the 1-D kernels; the tiled 2-D kernels use square blocks of edge
#: ``min(MAX_TILE, isqrt(THREADS_PER_BLOCK))``.
THREADS_PER_BLOCK = 256
#: The most blocks a grid has along any dimension; grid-stride loops cover the rest.
MAX_GRID_BLOCKS = 4096
#: The persistent path is tried for batches up to this size (where cuDNN is weakest).
PERSISTENT_MAX_BATCH = 8
#: The most threads one persistent block may have (CUDA's per-block limit).
PERSISTENT_MAX_THREADS = 1024
#: The threads a persistent block aims for: when its units x rows are fewer, the reduction
#: over the hidden units is split across more threads (and warps) until it has this many.
PERSISTENT_TARGET_THREADS = 128
#: Shared memory a persistent block may use: 48 KiB, what every CUDA device gives a kernel
#: without an opt-in.
PERSISTENT_SHARED_BYTES = 48 * 1024
#: On a GPU, let the persistent kernel use the device's opt-in shared memory per block (227 KiB
#: on Hopper) when that is more: set through the driver attribute
#: ``CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`` on the compiled kernel, since numba-cuda
#: has no API for it.
PERSISTENT_OPT_IN_SHARED = True

#: Per-step kernels launched through :class:`StepLauncher`'s prepared parameter lists on a GPU
#: (False: plain numba-cuda launches, which convert every argument on every launch).
PREPARED_LAUNCHES = True

#: The most device scratch arrays a thread's workspace keeps (see :class:`_DeviceWorkspace`).
WORKSPACE_ENTRIES = 32

#: Values of the ``persistent`` option (:meth:`CudaBackend.options`).
PERSISTENT_MODES = ("auto", "never")
#: Values of the ``gemm`` option.
GEMM_MODES = ("auto", "cublas", "tiled")


@dataclass(frozen=True)
class CudaOptions:
    """How the ``cuda`` backend runs, for the calls inside one :meth:`CudaBackend.options`
    block (per thread and per asyncio task: a context variable, never the shared instance).

    Attributes
    ----------
    persistent : {"auto", "never"}
        ``"auto"``: the persistent kernels where the shape fits; ``"never"``: per-step only.
    gemm : {"auto", "cublas", "tiled"}
        The GEMMs (input projection, input and weight gradients): ``"auto"`` runs them
        through cuBLAS where CuPy is installed (not in the simulator) and with the tiled
        kernel otherwise; ``"cublas"`` insists on CuPy; ``"tiled"`` always uses the kernel.
    """

    persistent: str = "auto"
    gemm: str = "auto"


_OPTIONS: contextvars.ContextVar[CudaOptions] = contextvars.ContextVar(
    "numlstm_cuda_options", default=CudaOptions())
#: The oldest numba-cuda with every API this backend uses (``numba.cuda.core.config`` appeared
#: in 0.20); with an older one the backend reports itself unusable instead of failing later.
MIN_NUMBA_CUDA = (0, 20)


def _check_index_range(batch: int, units: int) -> None:
    """The per-step backward kernel splits one timestep's flat ``(row, unit)`` indices (up to
    ``batch * units``) with 32-bit division (``cuda_kernels._index_divmod``); refuse a
    training forward beyond that, clearly, before anything runs. (The persistent kernels,
    which split up to ``batch * 4 * units``, run only for small batches.)"""
    limit = _kernels().INDEX_LIMIT
    if batch * units >= limit:
        raise ValueError(f"the cuda backend's backward kernels index one timestep's batch x "
                         f"units values with 32-bit integers: batch x units must be below "
                         f"{limit}; got batch={batch}, units={units} (split the batch)")


def _release(version: str) -> tuple[int, ...]:
    """``"0.30.4"`` -> ``(0, 30, 4)``; stops at the first part that is not a number."""
    parts = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def compatibility_problem(version: str | None = None) -> str | None:
    """Why the installed numba-cuda (or ``version``) cannot run this backend, or None.

    Reads the installed distribution's metadata only, so it is cheap and imports nothing.
    """
    if version is None:
        from importlib import metadata
        try:
            version = metadata.version("numba-cuda")
        except metadata.PackageNotFoundError:
            return "numba-cuda is not installed"
    if _release(version) < MIN_NUMBA_CUDA:
        wanted = ".".join(map(str, MIN_NUMBA_CUDA))
        return f"numba-cuda {version} is too old: the cuda backend needs {wanted} or newer"
    return None


def _cuda():
    from numba import cuda
    return cuda


def _kernels():
    from . import cuda_kernels
    return cuda_kernels


def _tile() -> int:
    return max(1, min(_kernels().MAX_TILE, math.isqrt(THREADS_PER_BLOCK)))


def _blocks(count: int, per_block: int) -> int:
    return max(1, min(MAX_GRID_BLOCKS, -(-count // per_block)))


def _grid_1d(count: int) -> tuple:
    return _blocks(count, THREADS_PER_BLOCK), THREADS_PER_BLOCK


def _grid_2d(rows: int, cols: int) -> tuple:
    """Square blocks; ``blockIdx.x`` walks the columns, ``blockIdx.y`` the rows."""
    tile = _tile()
    return (_blocks(cols, tile), _blocks(rows, tile)), (tile, tile)


def _launch_1d(kernel, count: int, *args) -> None:
    kernel[_grid_1d(count)](*args)


def _launch_2d(kernel, rows: int, cols: int, *args) -> None:
    kernel[_grid_2d(rows, cols)](*args)


def _compiled(kernel, args):
    """The compiled kernel for ``args``: compiled (or loaded from the on-disk cache) on first
    use, the same object every later launch with these argument types uses."""
    return kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))


def _allow_dynamic_shared_memory(compiled, nbytes: int) -> None:
    """Opt ``compiled`` in to ``nbytes`` of dynamic shared memory per block (beyond the 48 KiB
    every kernel gets), through the driver attribute on its function handle."""
    from numba.cuda.cudadrv import driver as cuda_driver
    function = compiled._codelibrary.get_cufunc()
    attribute = cuda_driver.binding.CUfunction_attribute
    cuda_driver.driver.cuKernelSetAttribute(
        attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, int(nbytes),
        function.handle, function.device.id)


class StepLauncher:
    """Launches one kernel once per timestep, where only a few scalar arguments (``t`` and
    the like) change from launch to launch.

    A plain ``kernel[grid, block](*args)`` makes numba-cuda look up the compiled kernel and
    convert every argument to driver parameters on every call (a few microseconds per array,
    tens of microseconds per launch for the step kernels: more than the GPU needs for a step
    at moderate sizes). On a GPU, after the first (plain) launch has compiled the kernel, this
    converts the arguments once, keeps the parameter list, and per launch replaces only the
    parameters of the changing arguments before handing the list to the driver -- as
    numba-cuda's own launch does, minus the repeated conversions.

    In the CUDA simulator, with :data:`PREPARED_LAUNCHES` off, or when the installed
    numba-cuda lacks an internal this relies on, every launch is a plain one (``note`` says
    which ran and why).

    Parameters
    ----------
    kernel : numba-cuda kernel
    configuration : (griddim, blockdim)
    args : sequence
        Every argument; the ones at ``varying`` are placeholders, replaced by each call's values.
    varying : tuple of int
        The positions of the arguments that change; they must be scalars.
    """

    def __init__(self, kernel, configuration, args, varying, *, simulator: bool):
        self.kernel = kernel
        self.griddim, self.blockdim = configuration
        self.args = list(args)
        self.varying = tuple(varying)
        self.try_prepared = PREPARED_LAUNCHES and not simulator
        self.prepared = None
        self.note = "plain launches" + (" (simulator)" if simulator else "")

    def __call__(self, *values) -> None:
        if self.prepared is not None:
            compiled, params, slots, launch, stream, config, handle = self.prepared
            for (slot, argument_type), value in zip(slots, values):
                converted = []
                compiled._prepare_args(argument_type, value, stream, [], converted)
                params[slot] = converted[0]
            launch(stream, config, handle, *params)
            return
        for position, value in zip(self.varying, values):
            self.args[position] = value
        self.kernel[self.griddim, self.blockdim](*self.args)
        if self.try_prepared:
            self.try_prepared = False
            try:
                self.prepared = self._prepare()
                self.note = "prepared launches (arguments converted once)"
            except Exception as error:    # an internal moved in this numba-cuda: stay plain
                self.note = f"plain launches (preparing failed: {type(error).__name__}: {error})"

    def _prepare(self):
        from numba.cuda import dispatcher as numba_dispatcher
        from numba.cuda.cudadrv import driver as cuda_driver
        compiled = _compiled(self.kernel, self.args)
        # The default stream, as numba-cuda hands it to cuda.core for a plain launch.
        stream = cuda_driver._to_core_stream(0)
        params, slots = [], []
        for position, (argument_type, value) in enumerate(zip(compiled.argument_types,
                                                               self.args)):
            if position in self.varying:
                slots.append((len(params), argument_type))
            compiled._prepare_args(argument_type, value, stream, [], params)
        # One parameter per scalar: checked, since the slots above rely on it.
        if any(not isinstance(t, (numba_dispatcher.types.Integer, numba_dispatcher.types.Boolean))
               for _, t in slots):
            raise TypeError("only integer and boolean arguments may vary")
        option = ("is_cooperative" if numba_dispatcher.CUDA_CORE_GE_1_0
                  else "cooperative_launch")
        config = numba_dispatcher.LaunchConfig(grid=self.griddim, block=self.blockdim,
                                               shmem_size=0, **{option: compiled.cooperative})
        handle = compiled._codelibrary.get_cufunc().kernel
        return compiled, params, slots, numba_dispatcher.launch, stream, config, handle


def _is_numba_device_array(array) -> bool:
    return bool(getattr(array, "__cuda_ndarray__", False))


def _kind(array) -> str:
    """``"numba"``, ``"cupy"``, ``"cai"`` (another CUDA array) or ``"host"``."""
    if _is_numba_device_array(array):
        return "numba"
    if hasattr(array, "__cuda_array_interface__"):
        return "cupy" if type(array).__module__.split(".")[0] == "cupy" else "cai"
    return "host"


class _DeviceWorkspace(threading.local):
    """Per-thread device scratch arrays, pooled by role, shape and dtype, so that repeated
    calls on the same shapes allocate none of them (Numba's allocator does not pool, and its
    deferred frees synchronise the device). Only arrays that never leave a call live here;
    device work is ordered on one stream, so a later call's kernels cannot overtake the
    earlier call's use of them. At most :data:`WORKSPACE_ENTRIES` arrays are kept (the oldest
    go first)."""

    def __init__(self):
        self.arrays = {}

    def get(self, role: str, shape, dtype):
        key = (role, tuple(shape), np.dtype(dtype).str)
        array = self.arrays.pop(key, None)
        if array is None:
            array = _cuda().device_array(shape, dtype)
        self.arrays[key] = array          # most recently used last
        while len(self.arrays) > WORKSPACE_ENTRIES:
            del self.arrays[next(iter(self.arrays))]
        return array


def _check_option(value, argument: str, valid) -> str:
    if value not in valid:
        raise ValueError(f"{argument} must be one of {list(valid)}; got {value!r}")
    return value


class CudaCache(SequenceCache):
    """:class:`~.base.SequenceCache` on the device, plus the kind of array the forward got."""

    def __init__(self, *, kind: str, **fields):
        super().__init__(**fields)
        self.kind = kind


class CudaBackend(KeepsWeightsResident, Backend):
    """``numba.cuda`` kernels; float32 and float64.

    How a call ran is in its result's ``details`` (``"path"``, ``"path_note"``, ``"gemm"``);
    how calls should run is set per block with :meth:`options`.

    Attributes
    ----------
    simulator : bool
        True when the kernels run in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``).
    """

    name = "cuda"
    xp = np

    def __init__(self):
        import os
        import sys
        wanted_simulator = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
        numba_before = "numba" in sys.modules and "numba.cuda" not in sys.modules
        too_old = compatibility_problem()
        if too_old:
            raise BackendUnavailableError("cuda", too_old, "pip install -U 'numlstm[cuda]'")
        try:
            cuda = _cuda()
            from numba.cuda.core import config
        except Exception as error:   # numba-cuda without its CUDA bindings, and the like
            raise BackendUnavailableError(
                "cuda", f"importing numba.cuda failed ({error})",
                "pip install 'numlstm[cuda]' (numba-cuda with its CUDA bindings)") from error
        self.simulator = bool(config.ENABLE_CUDASIM)
        if wanted_simulator and not self.simulator:
            hint = " (Numba was imported before it was set)" if numba_before else ""
            raise BackendUnavailableError(
                "cuda", f"NUMBA_ENABLE_CUDASIM=1 is set but Numba's CUDA target is not the "
                f"simulator{hint}", "set NUMBA_ENABLE_CUDASIM=1 before importing numba or "
                "numlstm")
        if not cuda.is_available():
            raise BackendUnavailableError(
                "cuda", "Numba found no usable CUDA GPU", "run on a machine with an NVIDIA GPU "
                "and its driver, or use backend='numba'")
        self._workspace = _DeviceWorkspace()
        self._resident = ResidentWeights(self._upload_weight)
        # Why cuBLAS through CuPy failed, once it has: a fact about this process's CuPy (say,
        # built for another CUDA), learnt once, not a result of any one call.
        self._cublas_unusable = ""

    @staticmethod
    @contextlib.contextmanager
    def options(*, persistent: str | None = None, gemm: str | None = None):
        """Run the calls inside the ``with`` block with these :class:`CudaOptions` (the
        others unchanged); the previous options come back after it.

        >>> with backend.options(persistent="never"):
        ...     result = backend.lstm_forward(...)       # result.details["path"] == "per-step"
        """
        changes = {}
        if persistent is not None:
            changes["persistent"] = _check_option(persistent, "persistent", PERSISTENT_MODES)
        if gemm is not None:
            changes["gemm"] = _check_option(gemm, "gemm", GEMM_MODES)
        token = _OPTIONS.set(replace(_OPTIONS.get(), **changes))
        try:
            yield _OPTIONS.get()
        finally:
            _OPTIONS.reset(token)

    @property
    def persistent(self) -> str:
        """The ``persistent`` option in force here (see :meth:`options`)."""
        return _OPTIONS.get().persistent

    @property
    def gemm(self) -> str:
        """The ``gemm`` option in force here (see :meth:`options`)."""
        return _OPTIONS.get().gemm

    @staticmethod
    def _is_device_array(array) -> bool:
        return _kind(array) != "host"

    @staticmethod
    def _upload_weight(host, into):
        if into is None:
            return _cuda().to_device(host)
        into.copy_to_device(host)
        return into

    def clear_workspace(self) -> None:
        """Release this thread's pooled device scratch arrays."""
        self._workspace.arrays.clear()

    # -- arrays and devices -------------------------------------------------------------------
    def describe(self) -> str:
        if self.simulator:
            return ("Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1): the kernels run on the CPU "
                    "in Python, for testing; no GPU is used")
        import numba_cuda
        device = _cuda().get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else device.name
        major, minor = device.compute_capability
        return f"{name} (compute capability {major}.{minor}, numba-cuda {numba_cuda.__version__})"

    def runtime_info(self) -> dict:
        """numba-cuda's version and, on a GPU, the CUDA runtime and driver versions
        (``"12.8"``) and the device's name."""
        import numba_cuda
        info = {"numba-cuda": numba_cuda.__version__}
        if self.simulator:      # no CUDA runtime: the kernels run in Python
            return {**info, "device": "Numba CUDA simulator"}
        cuda = _cuda()
        from numba.cuda.cudadrv.driver import driver
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else device.name
        return {**info, "cuda_runtime": "{}.{}".format(*cuda.runtime.get_version()),
                "cuda_driver": "{}.{}".format(*driver.get_version()), "device": name}

    def synchronize(self) -> None:
        _cuda().synchronize()

    def asarray(self, array, dtype=None):
        """A C-contiguous Numba device array with ``array``'s contents (no copy when it
        already is one, or a contiguous CUDA array of that dtype)."""
        return self._device(array, dtype)

    def to_numpy(self, array):
        kind = _kind(array)
        if kind == "host":
            return np.asarray(array)
        return self._device(array).copy_to_host()

    def _device(self, array, dtype=None):
        cuda = _cuda()
        kind = _kind(array)
        if kind == "host":
            host = np.ascontiguousarray(array, dtype=dtype)
            return cuda.to_device(host)
        device = array if kind == "numba" else cuda.as_cuda_array(array)
        if dtype is not None and np.dtype(dtype) != device.dtype:
            return cuda.to_device(device.copy_to_host().astype(dtype))
        if not device.is_c_contiguous():
            device = self._contiguous_copy(device)
        return device

    def _contiguous_copy(self, device):
        out = _cuda().device_array(device.shape, device.dtype)
        if device.size:
            copy = {1: _kernels().copy_1d, 2: _kernels().copy_2d, 3: _kernels().copy_3d}
            _launch_1d(copy[device.ndim], device.size, device, out)
        return out

    def _copy(self, device):
        out = _cuda().device_array(device.shape, device.dtype)
        if device.size:
            out.copy_to_device(device)
        return out

    def _zeros(self, shape, dtype):
        return _cuda().to_device(np.zeros(shape, dtype))

    def _placeholder(self, dtype, ndim=2):
        return self._workspace.get("placeholder", (0,) * ndim, dtype)

    @staticmethod
    def _to_kind(device, kind: str):
        if kind == "host":
            return device.copy_to_host()
        if kind == "cupy":
            import cupy
            return cupy.asarray(device)
        return device

    # -- the recurrence -----------------------------------------------------------------------
    def lstm_forward(self, x, kernel, recurrent_kernel, bias, *, h0, c0, mask,
                     recurrent_dropout_mask, reverse, activation, recurrent_activation,
                     zero_output_for_mask, return_cache):
        cuda = _cuda()
        K = _kernels()
        kind = _kind(x)
        x, kernel, recurrent_kernel, bias, h0, c0 = (
            self._device(a) for a in (x, kernel, recurrent_kernel, bias, h0, c0))
        batch, timesteps, features = x.shape
        units = recurrent_kernel.shape[0]
        if return_cache:
            _check_index_range(batch, units)
        dtype = x.dtype
        has_mask = mask is not None
        has_dropout = recurrent_dropout_mask is not None
        mask = self._device(mask) if has_mask else self._placeholder(np.bool_)
        dropout = (self._device(recurrent_dropout_mask) if has_dropout
                   else self._placeholder(dtype))
        reverse = bool(reverse)
        activation, recurrent_activation = int(activation), int(recurrent_activation)
        zero_output_for_mask, store = bool(zero_output_for_mask), bool(return_cache)

        outputs = cuda.device_array((batch, timesteps, units), dtype)
        c = self._copy(c0)
        if store:
            gates = cuda.device_array((batch, timesteps, 4 * units), dtype)
            cells = cuda.device_array((batch, timesteps, units), dtype)
            h_prev = cuda.device_array((batch, timesteps, units), dtype)
        else:
            gates = cells = h_prev = self._placeholder(dtype, 3)

        if batch == 0 or timesteps == 0:
            h = self._copy(h0)
            details = {"path": "per-step", "path_note": "nothing to compute", "gemm": None}
        else:
            x_proj = self._workspace.get("x_proj", (batch, timesteps, 4 * units), dtype)
            gemm = self._gemm(x.reshape(batch * timesteps, features), kernel,
                              x_proj.reshape(batch * timesteps, 4 * units), bias=bias)
            flags = (mask, has_mask, dropout, has_dropout)
            options = (activation, recurrent_activation, zero_output_for_mask, store,
                       outputs, gates, cells, h_prev)
            plan, note = self._persistent_plan(batch, units, dtype)
            if plan is not None:
                h_buffers = self._workspace.get("h_buffers", (2, batch, units), dtype)
                h_buffers[0].copy_to_device(h0)
                args = (x_proj, recurrent_kernel, h_buffers, c, *flags, reverse, *options)
                plan, note = self._launch_persistent(K.forward_persistent, plan, note, batch,
                                                     args)
            if plan is not None:
                h = self._copy(h_buffers[timesteps % 2])
                path = "persistent"
            else:
                h, h_spare = self._copy(h0), cuda.device_array((batch, units), dtype)
                # Even steps read h and write h_spare, odd steps the other way round.
                launchers = [StepLauncher(K.forward_step, _grid_2d(batch, units),
                                          (x_proj, 0, recurrent_kernel, h_in, h_out, c,
                                           *flags, *options), (1,), simulator=self.simulator)
                             for h_in, h_out in ((h, h_spare), (h_spare, h))]
                for step in range(timesteps):
                    launchers[step % 2](timesteps - 1 - step if reverse else step)
                if timesteps % 2:
                    h = h_spare
                path = "per-step"
                note = f"{note}; {launchers[0].note}"
            details = {"path": path, "path_note": note, "gemm": gemm}

        cache = None
        if store:
            cache = CudaCache(
                kind=kind, x=x, kernel=kernel, recurrent_kernel=recurrent_kernel, c0=c0,
                mask=mask if has_mask else None,
                recurrent_dropout_mask=dropout if has_dropout else None, reverse=reverse,
                zero_output_for_mask=zero_output_for_mask, activation=activation,
                recurrent_activation=recurrent_activation, gates=gates, cells=cells,
                h_prev=h_prev, backend=self.name)
        return ForwardResult(outputs=self._to_kind(outputs, kind), h=self._to_kind(h, kind),
                             c=self._to_kind(c, kind), cache=cache, backend=self.name,
                             details=details)

    def _gemm(self, a, b, out, *, trans_a=False, trans_b=False, bias=None) -> str:
        """``out (M, N) = op(a) @ op(b)`` (+ ``bias (N,)`` on every row), ``op`` an optional
        transpose: through cuBLAS where CuPy is installed (see :meth:`options`), else with the
        tiled kernel. Returns which ran, for the call's ``details``."""
        mode = self.gemm
        library = self._gemm_library(mode)
        if library is not None:
            try:
                # Zero-copy views of the Numba device arrays; both libraries use the legacy
                # default stream here, so the order of work is kept.
                left, right, target = (library.asarray(v) for v in (a, b, out))
                library.matmul(left.T if trans_a else left, right.T if trans_b else right,
                               out=target)
                if bias is not None:
                    target += library.asarray(bias)
                return "cuBLAS (CuPy)"
            except Exception as error:
                if mode == "cublas":
                    raise
                # "auto": a CuPy that cannot run here (say, built for another CUDA) must not
                # break the backend; the tiled kernel takes over for this backend's lifetime.
                self._cublas_unusable = f"{type(error).__name__}: {error}"
        rows, cols = out.shape
        tile = _tile()
        edge = tile * _kernels().GEMM_REGISTERS      # each block computes edge x edge outputs
        _kernels().gemm[(_blocks(cols, edge), _blocks(rows, edge)), (tile, tile)](
            a, b, out, trans_a, trans_b,
            self._placeholder(out.dtype, 1) if bias is None else bias, bias is not None)
        return "tiled kernel" + (
            f" (cuBLAS through CuPy failed: {self._cublas_unusable})"
            if self._cublas_unusable and mode == "auto" else "")

    def _gemm_library(self, mode: str):
        """CuPy when the GEMMs should go through cuBLAS under the ``gemm`` option ``mode``,
        else None."""
        if mode == "tiled" or (mode == "auto" and (self.simulator or self._cublas_unusable)):
            return None
        try:
            import cupy
        except Exception:
            if mode == "cublas":
                raise
            return None
        return cupy

    def _persistent_plan(self, batch: int, units: int, dtype, *, backward: bool = False):
        """``((units_per_block, k_split, blocks, shared_bytes), note)`` when the persistent
        forward (or ``backward``) kernel fits, else ``(None, why not)``."""
        if self.persistent == "never":
            return None, "persistent kernel switched off (persistent='never')"
        if batch > PERSISTENT_MAX_BATCH:
            return None, (f"batch {batch} > {PERSISTENT_MAX_BATCH}: the per-step kernels "
                          "use the GPU better")
        if batch * 4 * units >= _kernels().INDEX_LIMIT:     # its 32-bit index splits
            return None, f"batch x 4 x units = {batch * 4 * units} needs 64-bit indices"
        itemsize = np.dtype(dtype).itemsize
        shared_limit = PERSISTENT_SHARED_BYTES
        if PERSISTENT_OPT_IN_SHARED and not self.simulator:
            device = _cuda().get_current_device()
            shared_limit = max(shared_limit, device.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        # Shared memory per block: the 4H weights of every unit it owns, the staged h_{t-1}
        # (forward, B x H) or dz_t (backward, B x 4H), and the partial sums of every thread
        # (4 forward, 1 backward; one thread per unit and row at least).
        staged = batch * units * (4 if backward else 1)
        per_thread = 1 if backward else 4
        room = shared_limit // itemsize - staged
        most_per_block = min(units, PERSISTENT_MAX_THREADS // batch,
                             room // (4 * units + per_thread * batch))
        if most_per_block < 1:
            return None, (f"hidden state of {units} units does not fit in "
                          f"{shared_limit} bytes of shared memory per block")
        if self.simulator:
            if most_per_block < units:
                return None, ("the CUDA simulator cannot synchronise a grid of several "
                              f"blocks, and {units} units need more than one")
            per_block, blocks = units, 1
        else:
            device_blocks = _cuda().get_current_device().MULTIPROCESSOR_COUNT
            # Spread the units over as many blocks as there are SMs, each within its limits.
            per_block = max(-(-units // device_blocks), 1)
            if per_block > most_per_block:
                return None, (f"{units} units need more shared memory than the co-resident "
                              "blocks have")
            blocks = -(-units // per_block)
        # Split the reduction (over H forward, 4H backward) until the block has its target
        # threads, within the thread limit, the shared memory left and the reduction's length.
        threads = per_block * batch
        room_left = room - 4 * units * per_block
        k_split = max(1, min(-(-PERSISTENT_TARGET_THREADS // threads),
                             PERSISTENT_MAX_THREADS // threads,
                             4 * units if backward else units,
                             room_left // (per_thread * threads)))
        shared_bytes = (4 * units * per_block + staged + per_thread * threads * k_split) * itemsize
        return (per_block, k_split, blocks, shared_bytes), (
            f"persistent kernel: {blocks} block(s) of {per_block} units x {batch} rows x "
            f"{k_split} k-parts")

    def _launch_persistent(self, kernel, plan, note: str, batch: int, args):
        """Launch a persistent kernel by its plan; returns ``(plan, note)``, with ``plan``
        None (and nothing launched) when the device cannot keep every block resident."""
        per_block, k_split, blocks, shared_bytes = plan
        block = (per_block, batch, k_split)
        if not self.simulator:
            # Every block of a cooperative grid must be resident at once.
            compiled = _compiled(kernel, args)
            if shared_bytes > PERSISTENT_SHARED_BYTES:
                _allow_dynamic_shared_memory(compiled, shared_bytes)
            limit = compiled.max_cooperative_grid_blocks(block, shared_bytes)
            if blocks > limit:
                return None, (f"{blocks} blocks needed, only {limit} can be co-resident for "
                              "a grid-wide barrier")
        kernel[blocks, block, 0, shared_bytes](*args)
        return plan, note

    def lstm_backward(self, cache, *, grad_outputs, grad_h, grad_c):
        cuda = _cuda()
        K = _kernels()
        x = cache.x
        batch, timesteps, features = x.shape
        units = cache.recurrent_kernel.shape[0]
        dtype = x.dtype
        grad_outputs, grad_h, grad_c = (self._device(a) for a in (grad_outputs, grad_h, grad_c))
        dh, dc = self._copy(grad_h), self._copy(grad_c)
        if batch == 0 or timesteps == 0:
            gradients = dict(
                x=self._zeros(x.shape, dtype), kernel=self._zeros((features, 4 * units), dtype),
                recurrent_kernel=self._zeros((units, 4 * units), dtype),
                bias=self._zeros((4 * units,), dtype))
            details = {"path": "per-step", "path_note": "nothing to compute", "gemm": None}
        else:
            has_mask = cache.mask is not None
            has_dropout = cache.recurrent_dropout_mask is not None
            mask = cache.mask if has_mask else self._placeholder(np.bool_)
            dropout = cache.recurrent_dropout_mask if has_dropout else self._placeholder(dtype)
            dz_all = self._workspace.get("dz_all", (batch, timesteps, 4 * units), dtype)
            plan, note = self._persistent_plan(batch, units, dtype, backward=True)
            if plan is not None:
                plan, note = self._launch_persistent(
                    K.backward_persistent, plan, note, batch,
                    (cache.reverse, cache.c0, mask, has_mask, cache.zero_output_for_mask,
                     cache.activation, cache.recurrent_activation, cache.gates, cache.cells,
                     grad_outputs, cache.recurrent_kernel, dropout, has_dropout, dh, dc,
                     dz_all))
            if plan is None:
                gates_step = StepLauncher(
                    K.backward_step_gates, _grid_1d(batch * units),
                    (0, 0, False, cache.c0, mask, has_mask, cache.zero_output_for_mask,
                     cache.activation, cache.recurrent_activation, cache.gates, cache.cells,
                     grad_outputs, dh, dc, dz_all), (0, 1, 2), simulator=self.simulator)
                recurrent_step = StepLauncher(
                    K.backward_step_recurrent, _grid_2d(batch, units),
                    (0, dz_all, cache.recurrent_kernel, mask, has_mask, dropout, has_dropout,
                     dh), (0,), simulator=self.simulator)
                for step in range(timesteps - 1, -1, -1):
                    t = timesteps - 1 - step if cache.reverse else step
                    gates_step(t, t + 1 if cache.reverse else t - 1, step == 0)
                    recurrent_step(t)
                note = f"{note}; {gates_step.note}"
            path = "per-step" if plan is None else "persistent"

            rows = batch * timesteps
            dz = dz_all.reshape(rows, 4 * units)
            dx = cuda.device_array(x.shape, dtype)
            gemms = [self._gemm(dz, cache.kernel, dx.reshape(rows, features), trans_b=True)]
            dkernel = cuda.device_array((features, 4 * units), dtype)
            gemms.append(self._gemm(x.reshape(rows, features), dz, dkernel, trans_a=True))
            h_in = cache.h_prev
            if has_dropout:
                h_in = self._workspace.get("h_dropped", cache.h_prev.shape, dtype)
                _launch_1d(K.scale_rows, rows * units, cache.h_prev, dropout, h_in)
            drecurrent = cuda.device_array((units, 4 * units), dtype)
            gemms.append(self._gemm(h_in.reshape(rows, units), dz, drecurrent, trans_a=True))
            dbias = cuda.device_array(4 * units, dtype)
            _launch_2d(K.column_sums, 1, 4 * units, dz, dbias)   # a 1-D grid over columns
            gradients = dict(x=dx, kernel=dkernel, recurrent_kernel=drecurrent, bias=dbias)
            # Which GEMM ran, once per kind (a cuBLAS failure part-way shows as two).
            details = {"path": path, "path_note": note, "gemm": "; ".join(dict.fromkeys(gemms))}
        kind = getattr(cache, "kind", "numba")
        return Gradients(**{k: self._to_kind(v, kind) for k, v in gradients.items()},
                         h0=self._to_kind(dh, kind), c0=self._to_kind(dc, kind),
                         details=details)

    # -- one timestep -------------------------------------------------------------------------
    def lstm_step(self, x_t, kernel, recurrent_kernel, bias, h, c, *, activation: int,
                  recurrent_activation: int, out_h=None, out_c=None):
        kind = _kind(x_t)
        x_t = self._device(x_t)
        result = self.lstm_forward(
            x_t.reshape(x_t.shape[0], 1, x_t.shape[1]), kernel, recurrent_kernel, bias,
            h0=self._device(h), c0=self._device(c), mask=None, recurrent_dropout_mask=None,
            reverse=False, activation=activation, recurrent_activation=recurrent_activation,
            zero_output_for_mask=False, return_cache=False)
        new = []
        for state, out in ((result.h, out_h), (result.c, out_c)):
            if out is None:
                new.append(self._to_kind(state, kind))
            elif _kind(out) == "host":
                out[...] = state.copy_to_host()
                new.append(out)
            else:
                target = out if _is_numba_device_array(out) else _cuda().as_cuda_array(out)
                target.copy_to_device(state)
                new.append(out)
        return new[0], new[1]
