"""The ``cupy`` backend: CuPy arrays end to end, cuBLAS GEMMs and two fused gate kernels.

Structure (time-major inside, so that every per-step slice is C-contiguous):

* forward: ``x_proj = x @ kernel + bias`` for all timesteps in one cuBLAS GEMM; per step one
  GEMM ``(h_{t-1} * r) @ recurrent_kernel`` and one launch of
  :data:`~.cupy_kernels.LSTM_GATES_FORWARD` (gates, cell update, mask, output, cache);
* backward: per step one launch of :data:`~.cupy_kernels.LSTM_GATES_BACKWARD` and one GEMM
  ``dz @ recurrent_kernel.T``; then the input and weight gradients as GEMMs over the whole
  sequence.

Arrays come back in the kind the forward's ``x`` was given: CuPy in, CuPy out; NumPy in, NumPy
out. ``xp`` is ``cupy``, so the front-end's non-recurrent math can run on the device too.
"""

from __future__ import annotations

from ..errors import BackendUnavailableError
from .base import Backend, ForwardResult, Gradients, SequenceCache
from .resident import KeepsWeightsResident, ResidentWeights

try:
    import cupy
except Exception as error:  # pragma: no cover - depends on the machine
    raise ImportError(f"CuPy could not be imported ({error})") from error


class CupyCache(SequenceCache):
    """:class:`~.base.SequenceCache` with time-major device arrays (``gates (T, B, 4H)``,
    ``cells``/``h_prev (T, B, H)``, ``x (T, B, D)``; ``mask (T, B)``), plus the kind of array
    the forward was given."""

    def __init__(self, *, kind: str, batch_major_x, **fields):
        super().__init__(**fields)
        self.kind = kind
        self.x_time_major = fields["x"]
        # functional.lstm_backward reads cache.x's shape and dtype: keep it batch-major.
        self.x = batch_major_x


class CupyBackend(KeepsWeightsResident, Backend):
    """CuPy arrays, cuBLAS GEMMs and fused elementwise gate kernels; float32 and float64."""

    name = "cupy"
    xp = cupy

    def __init__(self):
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as error:
            raise BackendUnavailableError(
                "cupy", f"CuPy found no usable CUDA GPU ({error})",
                "run on a machine with an NVIDIA GPU and its driver, or use backend='numba'"
            ) from error
        if count < 1:
            raise BackendUnavailableError("cupy", "CuPy found no CUDA GPU",
                                          "run on a machine with an NVIDIA GPU")
        from . import cupy_kernels
        self._kernels = cupy_kernels
        self._resident = ResidentWeights(self._upload_weight)

    def describe(self) -> str:
        device = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(device.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"{name} (CuPy {cupy.__version__})"

    def runtime_info(self) -> dict:
        """CuPy's version, the CUDA runtime and driver versions (``"12.8"``) and the device's
        name."""
        def version(encoded: int) -> str:     # CUDA encodes 12.8 as 12080
            return f"{encoded // 1000}.{encoded % 1000 // 10}"
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return {"cupy": cupy.__version__,
                "cuda_runtime": version(cupy.cuda.runtime.runtimeGetVersion()),
                "cuda_driver": version(cupy.cuda.runtime.driverGetVersion()), "device": name}

    def asarray(self, array, dtype=None):
        return cupy.ascontiguousarray(cupy.asarray(array, dtype=dtype))

    def to_numpy(self, array):
        return cupy.asnumpy(array)

    @staticmethod
    def _is_device_array(array) -> bool:
        return isinstance(array, cupy.ndarray)

    @staticmethod
    def _upload_weight(host, into):
        if into is None:
            return cupy.asarray(host)
        into.set(host)         # on the current stream, after the kernels that read it before
        return into

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

    @staticmethod
    def _kind(array) -> str:
        return "cupy" if isinstance(array, cupy.ndarray) else "host"

    @staticmethod
    def _to_kind(array, kind):
        return cupy.asnumpy(array) if kind == "host" else array

    # -- the recurrence -----------------------------------------------------------------------
    def lstm_forward(self, x, kernel, recurrent_kernel, bias, *, h0, c0, mask,
                     recurrent_dropout_mask, reverse, activation, recurrent_activation,
                     zero_output_for_mask, return_cache):
        kind = self._kind(x)
        x, kernel, recurrent_kernel, bias, h0, c0 = (
            self.asarray(a) for a in (x, kernel, recurrent_kernel, bias, h0, c0))
        batch, timesteps, features = x.shape
        units = recurrent_kernel.shape[0]
        dtype = x.dtype
        has_mask = mask is not None
        mask_tm = (cupy.ascontiguousarray(cupy.asarray(mask, dtype=bool).T) if has_mask
                   else cupy.ones((max(timesteps, 1), batch), bool))
        dropout = (self.asarray(recurrent_dropout_mask)
                   if recurrent_dropout_mask is not None else None)
        x_tm = cupy.ascontiguousarray(x.transpose(1, 0, 2))
        store = bool(return_cache)

        outputs_tm = cupy.empty((timesteps, batch, units), dtype)
        gates = cupy.empty((timesteps, batch, 4 * units), dtype)
        cells = cupy.empty((timesteps, batch, units), dtype) if store else None
        h_prev = cupy.empty((timesteps, batch, units), dtype)
        h, c = h0.copy(), c0.copy()
        if batch and timesteps:
            x_proj = cupy.matmul(x_tm.reshape(timesteps * batch, features), kernel)
            x_proj += bias
            x_proj = x_proj.reshape(timesteps, batch, 4 * units)
            recurrent = cupy.empty((batch, 4 * units), dtype)
            # Per step only kernels run: no array is allocated inside the loop.
            h_in = cupy.empty((batch, units), dtype) if dropout is not None else h
            for step in range(timesteps):
                t = timesteps - 1 - step if reverse else step
                if dropout is not None:
                    cupy.multiply(h, dropout, out=h_in)
                cupy.matmul(h_in, recurrent_kernel, out=recurrent)
                c_out = cells[t] if store else c
                # h and c are read and written element by element only: in place is safe.
                self._kernels.LSTM_GATES_FORWARD(
                    x_proj[t], recurrent, h, c, mask_tm[t], has_mask, int(activation),
                    int(recurrent_activation), units, bool(zero_output_for_mask),
                    h, c_out, outputs_tm[t], h_prev[t], gates[t])
                if store:
                    c[...] = c_out
        outputs = cupy.ascontiguousarray(outputs_tm.transpose(1, 0, 2))
        cache = None
        if store:
            cache = CupyCache(
                kind=kind, batch_major_x=x, x=x_tm, kernel=kernel,
                recurrent_kernel=recurrent_kernel, c0=c0, mask=mask_tm if has_mask else None,
                recurrent_dropout_mask=dropout, reverse=bool(reverse),
                zero_output_for_mask=bool(zero_output_for_mask), activation=int(activation),
                recurrent_activation=int(recurrent_activation), gates=gates, cells=cells,
                h_prev=h_prev, backend=self.name)
        return ForwardResult(outputs=self._to_kind(outputs, kind), h=self._to_kind(h, kind),
                             c=self._to_kind(c, kind), cache=cache, backend=self.name)

    def lstm_backward(self, cache, *, grad_outputs, grad_h, grad_c):
        x_tm = cache.x_time_major
        timesteps, batch, features = x_tm.shape
        units = cache.recurrent_kernel.shape[0]
        dtype = x_tm.dtype
        grad_outputs_tm = cupy.ascontiguousarray(
            self.asarray(grad_outputs).transpose(1, 0, 2))
        dh = self.asarray(grad_h).copy()
        dc = self.asarray(grad_c).copy()
        has_mask = cache.mask is not None
        mask_tm = cache.mask if has_mask else cupy.ones((max(timesteps, 1), batch), bool)
        dz_all = cupy.zeros((timesteps, batch, 4 * units), dtype)
        recurrent_t = cache.recurrent_kernel.T
        dh_recurrent = cupy.empty((batch, units), dtype)
        for step in range(timesteps - 1, -1, -1) if batch else ():
            t = timesteps - 1 - step if cache.reverse else step
            t_before = t + 1 if cache.reverse else t - 1
            c_prev = cache.c0 if step == 0 else cache.cells[t_before]
            self._kernels.LSTM_GATES_BACKWARD(
                cache.gates[t], cache.cells[t], c_prev, dh, dc, grad_outputs_tm[t], mask_tm[t],
                has_mask, cache.zero_output_for_mask, cache.activation,
                cache.recurrent_activation, units, dh, dc, dz_all[t])
            cupy.matmul(dz_all[t], recurrent_t, out=dh_recurrent)
            if cache.recurrent_dropout_mask is not None:
                dh_recurrent *= cache.recurrent_dropout_mask
            if has_mask:   # rows masked at t keep their dh (in place: no allocation per step)
                cupy.copyto(dh, dh_recurrent, where=mask_tm[t][:, None])
            else:
                dh[...] = dh_recurrent

        rows = timesteps * batch
        dz = dz_all.reshape(rows, 4 * units)
        dx_tm = cupy.matmul(dz, cache.kernel.T).reshape(timesteps, batch, features)
        dkernel = cupy.matmul(x_tm.reshape(rows, features).T, dz)
        h_in = cache.h_prev
        if cache.recurrent_dropout_mask is not None:
            h_in = h_in * cache.recurrent_dropout_mask[None]
        drecurrent = cupy.matmul(h_in.reshape(rows, units).T, dz)
        dbias = dz.sum(axis=0)
        kind = cache.kind
        return Gradients(
            x=self._to_kind(cupy.ascontiguousarray(dx_tm.transpose(1, 0, 2)), kind),
            kernel=self._to_kind(dkernel, kind), recurrent_kernel=self._to_kind(drecurrent, kind),
            bias=self._to_kind(dbias, kind), h0=self._to_kind(dh, kind),
            c0=self._to_kind(dc, kind))
