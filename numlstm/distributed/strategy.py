"""The data-parallel step: what :class:`DataParallel` does inside ``Model.fit`` and
``Model._train_step`` once :func:`numlstm.distributed.init` is in effect.

One training step on rank ``r`` of ``R``, for a global batch ``B`` split into shards ``B_r``:

1. forward on ``B_r`` (dropout masks from this rank's own generator), each output's loss
   ``L_k,r`` -- the mean over ``c_k,r`` positions (samples, times timesteps for a sequence
   output; only the unmasked ones under a mask) -- and ``dL_k,r/dpred``;
2. one small ``Allreduce`` (float64) of, per output, ``c_k,r`` and ``L_k,r · max(c_k,r, 1)``,
   the metrics' sums and counts, and the shard's sample count. Afterwards every rank knows
   the global denominators ``C_k = Σ_r c_k,r``, the global losses ``L_k = Σ_r L_k,r ·
   max(c_k,r, 1) / max(C_k, 1)`` and metrics -- exactly what one process computes on ``B``;
3. ``dL_k,r/dpred`` is scaled by ``max(c_k,r, 1) / max(C_k, 1)``: the losses are means, so
   this turns the shard's mean gradient into its share of the global mean's gradient (a rank
   with no samples contributes zeros);
4. backward on ``B_r``; every trainable weight's gradient (and one presence flag per weight,
   so that a weight no loss reaches stays skipped, as in one process) is packed into **one**
   contiguous buffer of the weights' dtype, summed in place by **one** ``Allreduce`` and
   unpacked: the sum of the shares is the gradient of ``B``;
5. the same optimizer step on every rank (same weights, same state, same gradient: the weights
   stay identical; MPI's sum is commutative per element, and every rank receives the same
   reduced buffer).

The global loss decides the non-finite stop on every rank alike. Floating-point sums run in
another order than in one process, so a 2-rank gradient equals the 1-process one to rounding
(≈1e-15 relative in float64), not bit for bit.
"""

from __future__ import annotations

import hashlib
import numbers
import json
import sys
import time

import numpy as np


class DataParallel:
    """Synchronous data parallelism over an mpi4py communicator (see the module's notes).

    Attributes
    ----------
    comm : mpi4py.MPI.Comm
    rank, size : int
    dropout_rng : numpy.random.Generator or None
        This rank's dropout generator (set at the start of each ``fit``).
    allreduce_seconds : float
        Time spent in the gradient ``Allreduce`` (including waiting for slower ranks),
        summed over steps; ``stats_seconds`` the same for the small loss/count reduction;
        ``steps`` the steps taken. :meth:`reset_timers` zeroes them (benchmarks read them).
    """

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.dropout_rng = None
        self._step_logs = None
        self._buffer = None
        self._previous_hook = None
        self.reset_timers()

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.rank}, size={self.size})"

    @property
    def _MPI(self):
        from mpi4py import MPI      # imported on first use (importing it initialises MPI)
        return MPI

    def reset_timers(self) -> None:
        self.allreduce_seconds = 0.0
        self.stats_seconds = 0.0
        self.steps = 0

    # -- process-wide settings ------------------------------------------------------------------
    def auto_threads(self) -> int:
        """Usable cores divided by the ranks on this node (at least 1): ranks sharing a node
        must not oversubscribe its cores (two busy threads per core run far slower)."""
        from ..threads import max_threads
        local = self.comm.Split_type(self._MPI.COMM_TYPE_SHARED)
        try:
            ranks_here = local.Get_size()
        finally:
            local.Free()
        return max(1, max_threads() // ranks_here)

    def install_excepthook(self) -> None:
        """On an uncaught exception: print it as Python would, then abort the communicator, so
        that the launcher ends every rank (non-zero exit) instead of leaving them blocked in a
        collective that this rank will never join."""
        if self._previous_hook is not None:
            return
        self._previous_hook = sys.excepthook

        def hook(kind, value, traceback):
            try:
                self._previous_hook(kind, value, traceback)
                sys.stderr.write(f"numlstm.distributed: rank {self.rank} failed; aborting all "
                                 f"{self.size} ranks\n")
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                self.comm.Abort(1)
        sys.excepthook = hook

    def uninstall_excepthook(self) -> None:
        if self._previous_hook is not None:
            sys.excepthook = self._previous_hook
            self._previous_hook = None

    @property
    def writes_files(self) -> bool:
        """Only rank 0 writes (``save``, ``save_weights``, ``ModelCheckpoint``)."""
        return self.rank == 0

    def verbose(self, verbose: int) -> int:
        """``fit``'s verbosity on this rank: only rank 0 reports progress."""
        return verbose if self.rank == 0 else 0

    # -- start of fit ---------------------------------------------------------------------------
    def check_fit(self, model, n: int, batch_size: int, epochs: int, shuffle: bool) -> None:
        """Check, before any callback runs, that every rank trains the same way.

        Raises ``ValueError`` on every rank alike when the ranks disagree (the check is an
        ``allgather`` of the settings, so they all see the same answer)."""
        if model._fixed_batch_size() is not None:
            raise ValueError("numlstm.distributed does not train stateful models: their "
                             "carried states tie each batch row to one sample stream, which "
                             "sharding batches across ranks would break")
        regularized = [layer.name for layer in model._all_layers()
                       if getattr(layer, "activity_regularizer", None) is not None]
        if regularized:
            raise ValueError("numlstm.distributed does not train activity regularizers (their "
                             "penalty is a mean over each shard's own outputs, not the global "
                             f"batch's); layer(s) {regularized} have one: remove it or train "
                             "in one process")
        settings = {"samples": int(n), "batch_size": int(batch_size), "epochs": int(epochs),
                    "shuffle": bool(shuffle),
                    "optimizer": json.dumps(model.optimizer.get_config(), sort_keys=True,
                                            default=str),
                    "losses": [None if t.loss is None else repr(t.loss) for t in
                               model._targets],
                    "weights": [(tuple(w.shape), str(w.dtype)) for w in model.weights]}
        every = self.comm.allgather(settings)
        for other_rank, other in enumerate(every):
            for key, value in other.items():
                if value != every[0][key]:
                    raise ValueError(f"numlstm.distributed: every rank must fit the same way, "
                                     f"but {key} is {every[0][key]!r} on rank 0 and {value!r} "
                                     f"on rank {other_rank} (give every rank the same data "
                                     "and settings; each takes its own shard of every batch)")

    def begin_fit(self, model) -> None:
        """Give every rank rank 0's weights, optimizer state, training generator and first
        epoch (after ``on_train_begin``, so that what rank 0's ``BackupAndRestore`` restored
        is what every rank resumes from), and derive this rank's dropout generator."""
        self.broadcast_state(model)
        self.dropout_rng = self._derive_dropout_rng(model)

    def broadcast_state(self, model) -> None:
        """Rank 0's weights, optimizer state (iterations, slots and a numeric learning rate),
        training-generator state and first epoch to every rank (one object broadcast; once per ``fit``, so its cost is
        negligible beside the steps)."""
        state = None
        if self.rank == 0:
            iterations, slots = model.optimizer.get_state()
            state = ([np.ascontiguousarray(w) for w in model.weights], iterations, slots,
                     model._train_rng.bit_generator.state,
                     getattr(model, "_initial_epoch", 0), model.optimizer.learning_rate)
        state = self.comm.bcast(state, root=0)
        if self.rank != 0:
            weights, iterations, slots, rng_state, initial_epoch, learning_rate = state
            model.set_weights(weights)
            # a number that rank 0's BackupAndRestore restored (a schedule is in the config
            # every rank compiled, and follows the broadcast iterations)
            if isinstance(learning_rate, numbers.Real):
                model.optimizer.learning_rate = learning_rate
            model.optimizer.set_state(iterations, slots, model.weights)
            model._train_rng.bit_generator.state = rng_state
            model._initial_epoch = initial_epoch

    def _derive_dropout_rng(self, model) -> np.random.Generator:
        """A generator for this rank's dropout masks, keyed by the shared training generator's
        state (read, not drawn from: the shuffled order stays the one a single process
        draws) and by the rank, so masks differ across ranks but a run is reproducible."""
        state = json.dumps(model._train_rng.bit_generator.state, sort_keys=True, default=str)
        digest = hashlib.sha256(state.encode()).digest()
        key = [int.from_bytes(digest[i:i + 8], "little") for i in range(0, 32, 8)]
        return np.random.default_rng(np.random.SeedSequence(key, spawn_key=(self.rank,)))

    def training_rng(self, model) -> np.random.Generator:
        """The generator this rank's training forward draws dropout masks from."""
        if self.dropout_rng is None:               # train_on_batch before any fit
            self.dropout_rng = self._derive_dropout_rng(model)
        return self.dropout_rng

    # -- one step -------------------------------------------------------------------------------
    def shard(self, index):
        """This rank's contiguous part of a global batch's sample indices: sizes differ by at
        most one, lower ranks get the extra samples (7 over 2 ranks: 4 and 3; 1 over 2: 1
        and 0)."""
        base, extra = divmod(len(index), self.size)
        start = self.rank * base + min(self.rank, extra)
        return index[start:start + base + (1 if self.rank < extra else 0)]

    def share(self, model, ys, preds, masks, losses, grads, sws=None):
        """Step 2 and 3 of the module's notes: returns the global ``(total, losses)`` and this
        rank's scaled ``dL/dpred`` per output; keeps the global logs for :meth:`batch_logs`.
        ``sws``: this shard's sample weights per output (None: unweighted); they weight the
        loss's numerator only (Keras's ``sum_over_batch_size``), so the denominators stay
        the position counts. Metric states add up (:class:`numlstm.metrics.Metric`), so
        their sum over the ranks is the global batch's state."""
        local, counts, shapes = [], [], []
        sws = sws if sws is not None else [None] * len(model._targets)
        for target, y, pred, mask, value, sw in zip(model._targets, ys, preds, masks, losses,
                                                    sws):
            if target.loss is None:
                continue
            # the loss's own denominator (numlstm.losses.Loss.value_and_grad)
            count = float(np.prod(pred.shape[:-1])) if mask is None else float(
                np.asarray(mask, dtype=np.float64).sum())
            counts.append(count)
            local += [count, value * max(count, 1.0)]
            weighted = getattr(target, "weighted", [False] * len(target.metrics))
            for metric, uses_weights in zip(target.metrics, weighted):
                state = np.asarray(metric.update(y, pred, mask, sw if uses_weights else None),
                                   dtype=np.float64)
                shapes.append(state.shape)      # the same on every rank: set by the metric
                local += list(state.reshape(-1))
        local.append(float(len(preds[0])) if preds else 0.0)
        reduced = np.array(local, dtype=np.float64)
        start = time.perf_counter()
        self.comm.Allreduce(self._MPI.IN_PLACE, reduced, op=self._MPI.SUM)
        self.stats_seconds += time.perf_counter() - start
        total, global_losses, scaled, metric_totals = 0.0, [], [], []
        position, k = 0, 0
        for target, grad in zip(model._targets, grads):
            if target.loss is None:
                global_losses.append(None)
                scaled.append(None)
                continue
            denominator = max(reduced[position], 1.0)
            value = float(reduced[position + 1] / denominator)
            position += 2
            total += target.weight * value
            global_losses.append(value)
            factor = max(counts[k], 1.0) / denominator
            scaled.append(np.ascontiguousarray(grad * grad.dtype.type(factor)))
            k += 1
            for _ in target.metrics:
                shape = shapes[len(metric_totals)]
                size = int(np.prod(shape))
                metric_totals.append(reduced[position:position + size].reshape(shape).copy())
                position += size
        self._step_logs = (total, global_losses, metric_totals, float(reduced[position]))
        return total, global_losses, scaled

    def _layout(self, model):
        """``[(layer, index, weight)]`` of every weight the optimizer may update, in the
        order ``Model._apply_gradients`` visits them (the same on every rank)."""
        layout = []
        if not model._trainable:
            return layout
        for layer in model.layers:
            for index, (weight, trains) in enumerate(zip(layer.weights,
                                                         layer._weights_trainable())):
                if trains:
                    layout.append((layer, index, weight))
        return layout

    def allreduce_gradients(self, model, layer_grads: dict, backend) -> dict:
        """Step 4 of the module's notes: the global gradient, as ``{id(layer): [grad or
        None per weight]}`` (NumPy arrays that view one reused buffer, valid until the next
        step)."""
        layout = self._layout(model)
        dtype = np.result_type(*[w.dtype for _, _, w in layout]) if layout else np.float64
        total = sum(w.size for _, _, w in layout) + len(layout)
        if self._buffer is None or self._buffer.size != total or self._buffer.dtype != dtype:
            self._buffer = np.empty(total, dtype)
        buffer = self._buffer
        flags = buffer[total - len(layout):]
        position = 0
        for slot, (layer, index, weight) in enumerate(layout):
            computed = layer_grads.get(id(layer))
            grad = None if computed is None else computed[index]
            part = buffer[position:position + weight.size]
            if grad is None:
                part[...] = 0
                flags[slot] = 0
            else:
                part[...] = np.asarray(backend.to_numpy(grad)).reshape(-1)
                flags[slot] = 1
            position += weight.size
        start = time.perf_counter()
        self.comm.Allreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM)
        self.allreduce_seconds += time.perf_counter() - start
        self.steps += 1
        reduced = {id(layer): [None] * len(layer.weights) for layer, _, _ in layout}
        position = 0
        for slot, (layer, index, weight) in enumerate(layout):
            if flags[slot] > 0:
                reduced[id(layer)][index] = buffer[position:position + weight.size].reshape(
                    weight.shape)
            position += weight.size
        return reduced

    def gradients(self, model, x, y) -> list:
        """The global gradient of every trainable weight (None for the others), in the order
        of ``model.weights``, for this rank's shard ``(x, y)`` of a batch -- the gradient one
        process computes on the ranks' shards joined, without changing the model. A shard may
        hold no samples. (For checks and debugging; ``fit`` runs the same code.)"""
        model._check_compiled()
        backend = model._backend()
        xs, ys = model._check_xy(x, y)
        run = model._forward_pass(xs, True, backend, self.training_rng(model))
        preds = [np.asarray(backend.to_numpy(o)) for o in run.outputs]
        _, losses, grads = model._loss_and_grads(ys, preds, run.masks)
        _, _, grads = self.share(model, ys, preds, run.masks, losses, grads)
        from ..layers.base import to_xp
        layer_grads, _ = model._graph.backward(
            run, [None if g is None else to_xp(backend, g) for g in grads])
        reduced = self.allreduce_gradients(model, layer_grads, backend)
        return [None if g is None else np.array(g) for layer in model.layers
                for g in reduced.get(id(layer), [None] * len(layer.weights))]

    def batch_logs(self, model, tracker, total) -> None:
        """Add the last step's global loss and metrics to ``fit``'s epoch tracker, as
        ``Model._batch_logs`` adds a single process's (loss weighted by the global batch's
        samples, metrics as the global batch's summed states). ``total``: the step's global
        loss as ``Model._train_step`` returned it (with the weight penalties, which it adds
        after :meth:`share`)."""
        _, losses, metric_totals, samples = self._step_logs
        tracker.add("loss", total * samples, samples)
        several = len(model._targets) > 1
        metric_index = 0
        for target, value in zip(model._targets, losses):
            if target.loss is None:
                continue
            if several:
                tracker.add(f"{target.name}_loss", value * samples, samples)
            for metric, metric_name in zip(target.metrics, target.metric_names):
                tracker.add_state(f"{target.name}_{metric_name}" if several else metric_name,
                                  metric, metric_totals[metric_index])
                metric_index += 1
