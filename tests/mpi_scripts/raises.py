"""Run by tests/test_distributed.py as ``mpiexec -n 2 python raises.py``: rank 1 raises in the
middle of ``fit`` (at its third batch) while rank 0 goes on to the next ``Allreduce``; the
whole job must end with a non-zero exit, not hang."""

import sys
import time

import numpy as np

import numlstm


class FailOnRank1(numlstm.callbacks.Callback):
    def on_batch_end(self, batch, logs=None):
        if numlstm.distributed.rank() == 1 and batch == 2:
            # when, for the test to time the end of the job from here (not from start-up,
            # which may include compiling the kernels)
            print(f"raising at {time.time()!r}", file=sys.stderr, flush=True)
            raise RuntimeError("rank 1 fails on purpose")


numlstm.distributed.init()
rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 5, 3)).astype(np.float32), rng.normal(size=(64, 1)).astype(np.float32)
model = numlstm.Sequential([numlstm.Input((5, 3)), numlstm.LSTM(4), numlstm.Dense(1)], seed=0)
model.compile("adam", "mse")
model.fit(x, y, batch_size=8, epochs=50, verbose=0, callbacks=[FailOnRank1()])
