"""numlstm.distributed: data-parallel training over MPI, run for real with ``mpiexec -n 2``
(the scripts under tests/mpi_scripts/ are the ranks' programs; results come back as .npz
files and are compared here with the same computation in one process)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import numlstm
from numlstm import distributed

pytest.importorskip("mpi4py", reason='needs mpi4py and Open MPI: pip install "numlstm[mpi]"')

SCRIPTS = Path(__file__).parent / "mpi_scripts"
ROOT = Path(__file__).parent.parent


def _worker_module():
    spec = importlib.util.spec_from_file_location("mpi_worker", SCRIPTS / "worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


W = _worker_module()


#: Seconds a run may take beyond its own work: on a cold compile cache (a fresh checkout) each
#: rank compiles numlstm's kernels first.
COLD_START = 240


def mpiexec(*args, ranks=2, timeout=COLD_START + 60):
    """Run ``mpiexec -n ranks args`` with this Python and this checkout; the root permission
    variables Open MPI wants in a container are set for this subprocess only."""
    try:
        launcher = distributed.mpiexec_path()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               # two ranks on shared CI cores: no busy-polling while one waits for the other
               OMPI_MCA_mpi_yield_when_idle="1")
    return subprocess.run([launcher, "-n", str(ranks), "--oversubscribe", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Both ranks' results of tests/mpi_scripts/worker.py."""
    out = tmp_path_factory.mktemp("mpi")
    result = mpiexec(sys.executable, SCRIPTS / "worker.py", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]


def _relative(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("case", sorted(W.CASES))
def test_two_rank_gradient_equals_one_process_gradient(ranks, case):
    """float64, a masked sequence output and a softmax with loss weights: the global batch of
    7 split 4 + 3, and of 1 split 1 + 0 (a rank with no samples)."""
    _, results = ranks
    model = W.gradient_model()
    x, y = W.gradient_data(W.CASES[case])
    expected = W.single_gradients(model, x, y)
    assert len(expected) == len(model.weights)
    for i, g in enumerate(expected):
        assert g is not None
        for rank in (0, 1):
            got = results[rank][f"grad_{case}_{i}"]
            assert got.shape == g.shape
            assert _relative(got, g) <= 1e-12, (case, i, rank, _relative(got, g))
        # every rank holds the same reduced gradient
        np.testing.assert_array_equal(results[0][f"grad_{case}_{i}"],
                                      results[1][f"grad_{case}_{i}"])


def test_weights_bit_identical_after_20_adam_steps_with_dropout(ranks):
    _, (rank0, rank1) = ranks
    assert int(rank0["dropout_steps"]) == int(rank1["dropout_steps"]) == 20
    names = sorted(k for k in rank0 if k.startswith("dropout_weights_"))
    assert names
    for name in names:
        np.testing.assert_array_equal(rank0[name], rank1[name])
    # the ranks drew different dropout masks: their generators differ
    assert float(rank0["dropout_draw"]) != float(rank1["dropout_draw"])
    # and training moved the weights from their initial values
    initial = W.dropout_model().get_weights()
    assert any(not np.array_equal(a, rank0[n]) for a, n in zip(initial, names))


def test_two_ranks_follow_the_one_process_loss_curve(ranks):
    """No dropout, float64, sample weights: 2 ranks with a global batch of 8 against 1
    process with 8, per batch (running losses), per epoch, validation loss and the metric
    unweighted and weighted."""
    _, results = ranks
    _, batch_losses, history = W.run_curve()
    steps = -(-W.CURVE["samples"] // W.CURVE["batch_size"]) * W.CURVE["epochs"]
    assert len(batch_losses) == steps
    for rank in (0, 1):
        np.testing.assert_allclose(results[rank]["curve_batch_losses"], batch_losses,
                                   rtol=1e-10, atol=0)
        np.testing.assert_allclose(results[rank]["curve_epoch_losses"], history["loss"],
                                   rtol=1e-10, atol=0)
        np.testing.assert_allclose(results[rank]["curve_val_losses"], history["val_loss"],
                                   rtol=1e-10, atol=0)
        np.testing.assert_allclose(results[rank]["curve_mae"], history["mae"], rtol=1e-10,
                                   atol=0)
        np.testing.assert_allclose(results[rank]["curve_weighted_mae"],
                                   history["weighted_mae"], rtol=1e-10, atol=0)
    # the sample weights count: an unweighted metric differs from the weighted one
    assert not np.allclose(history["mae"], history["weighted_mae"])


def test_only_rank_0_writes_files(ranks):
    out, _ = ranks
    assert (out / "saved-rank0.npz").is_file()
    assert not (out / "saved-rank1.npz").exists()
    model = numlstm.load_model(out / "saved-rank0.npz")
    assert model.optimizer.iterations == -(-W.CURVE["samples"] // W.CURVE["batch_size"]) * \
        W.CURVE["epochs"]


def test_a_rank_raising_mid_fit_ends_the_job_quickly():
    """Rank 1 raises at its third batch while rank 0 waits in the next collective: the job
    ends non-zero within 30 s of the raise (a hang would hit the subprocess timeout)."""
    result = mpiexec(sys.executable, SCRIPTS / "raises.py", timeout=COLD_START + 30)
    ended = time.time()
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stderr
    # (mpiexec may interleave the ranks' and its own output: find the line anywhere)
    raised = [float(t) for t in re.findall(r"raising at ([0-9.]+)", result.stderr)]
    assert len(raised) == 1, result.stderr
    assert ended - raised[0] < 30


def test_cli_train_digits_on_two_ranks(tmp_path):
    pytest.importorskip("sklearn", reason="digits needs scikit-learn (numlstm[datasets])")
    out = tmp_path / "digits.npz"
    result = mpiexec(sys.executable, "-m", "numlstm", "train", "digits", "--units", "4",
                     "--epochs", "1", "--batch-size", "64", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    # rank 0 alone reports (the other rank's console is quiet)
    assert result.stdout.count("training on digits") == 1
    assert result.stdout.count("data-parallel on 2 ranks") == 1
    assert result.stdout.count("saved the model") == 1
    (x_train, _), _ = numlstm.datasets.digits(seed=0)
    assert numlstm.load_model(out).optimizer.iterations == -(-len(x_train) // 64)


def test_shard_sizes_and_helpers():
    """The contiguous split (no MPI needed: a stand-in communicator of 3 ranks)."""
    from numlstm.distributed.strategy import DataParallel

    class Comm:
        def __init__(self, rank):
            self.rank = rank

        def Get_rank(self):
            return self.rank

        def Get_size(self):
            return 3

    parts = [DataParallel(Comm(r)).shard(np.arange(7)) for r in range(3)]
    assert [list(p) for p in parts] == [[0, 1, 2], [3, 4], [5, 6]]
    parts = [DataParallel(Comm(r)).shard(np.arange(1)) for r in range(3)]
    assert [len(p) for p in parts] == [1, 0, 0]
    assert distributed.rank() == 0 and distributed.size() == 1
    assert not distributed.is_initialized()
    assert Path(distributed.mpiexec_path()).name == "mpiexec"


def test_launched_by_mpi_reads_the_launchers_variables(monkeypatch):
    for name in distributed.MPI_ENVIRONMENT + ("PMIX_RANK", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched_by_mpi()
    monkeypatch.setenv("SLURM_NTASKS", "8")                 # srun without an MPI plugin
    assert not distributed.launched_by_mpi()
    monkeypatch.setenv("PMIX_RANK", "0")                    # srun --mpi=pmix
    assert distributed.launched_by_mpi()
    monkeypatch.delenv("SLURM_NTASKS")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")
    assert not distributed.launched_by_mpi()
    monkeypatch.setenv("PMI_SIZE", "4")
    assert distributed.launched_by_mpi()


def test_init_checks_its_arguments():
    with pytest.raises(ValueError, match="num_threads"):
        distributed.init(num_threads=0)
    with pytest.raises(TypeError, match="abort_on_exception"):
        distributed.init(abort_on_exception="yes")
    assert not distributed.is_initialized()
