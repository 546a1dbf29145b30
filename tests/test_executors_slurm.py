"""The Slurm executor through submitit's local back-end (no Slurm here): a tiny grid as a job array,
a preempted job requeued and resumed from its checkpoint, settings from [slurm] and flags, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from disent_bench.errors import UserError
from disent_bench.grid import expand, load_grid
from disent_bench.models import BetaVAE
from grid_helpers import environ, run_locally, run_scores, tiny_grid

TESTS_ROOT = Path(__file__).resolve().parents[len(__name__.split(".")) - 1]  # what makes this module importable


class PreemptedOnceVAE(BetaVAE):
    """A VAE whose job receives ``signal_name`` at training step ``preempt_after + 1``, the first time only.

    SIGUSR2 is Slurm's preemption/time-limit warning as submitit sets it up: submitit's handler then
    checkpoints the job and requeues it. SIGKILL is a job that dies. ``marker`` (a file) marks the
    first time. Same weights and losses as ``beta_vae`` with the same beta.
    """

    def __init__(self, *, in_channels: int, latent_dim: int = 10, beta: float = 1.0, marker: str = "",
                 preempt_after: int = 3, signal_name: str = "SIGUSR2") -> None:
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, beta=beta)
        self.hparams.update(marker=marker, preempt_after=preempt_after, signal_name=signal_name)
        self._losses = 0

    def loss(self, x, *, generator=None):
        if self.training:
            self._losses += 1
            marker = Path(self.hparams["marker"])
            if self._losses > self.hparams["preempt_after"] and self.hparams["marker"] and not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), getattr(signal, self.hparams["signal_name"]))
                time.sleep(5)  # the handler exits the process long before this ends
        return super().loss(x, generator=generator)


def _write_grid(path: Path, *, models=({"name": "beta_vae", "beta": [1.0, 4.0]},), **tables) -> Path:
    return tiny_grid(path, name="slurmtiny", benchmark={"cpus_per_run": 1}, models=models,
                     metrics=["mig", "beta_vae", "reconstruction"], **tables)


@pytest.fixture(scope="module")
def submitit_mod():
    return pytest.importorskip("submitit", reason="submitit is not installed (pip install 'disent-bench[slurm]')")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A data home, and PYTHONPATH so that job processes import PreemptedOnceVAE from this module."""
    root = tmp_path_factory.mktemp("slurm")
    pythonpath = os.pathsep.join(p for p in (str(TESTS_ROOT), os.environ.get("PYTHONPATH")) if p)
    with environ(DISENT_BENCH_DATA=str(root / "datasets"), PYTHONPATH=pythonpath):
        yield root


@pytest.fixture(scope="module")
def local_scores(env):
    """The tiny grid with the local executor in this process (the grid's cpus_per_run threads, whatever this
    process was set to: the executors must give the same numbers)."""
    return run_locally(_write_grid(env / "grid.toml"), env / "out_local")


@pytest.mark.slow
def test_submitit_local_array_then_rerun_shows_finished(submitit_mod, env, local_scores):
    """Submit without waiting, let the jobs finish, run again: everything is finished, with local's scores."""
    from disent_bench.executors.slurm import LOG_DIR, SlurmExecutor
    from disent_bench.run_store import run_status

    runs = local_scores["runs"]
    out = env / "out_slurm"
    outcomes = SlurmExecutor(cluster="local", wait=False).run(runs, out, progress=False)
    assert [o.status for o in outcomes] == ["submitted", "submitted"]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and any(run_status(run, out)[0] != "done" for run in runs):
        failed = [run.id for run in runs if run_status(run, out)[0] == "failed"]
        assert not failed, failed
        time.sleep(0.5)
    assert [run_status(run, out)[0] for run in runs] == ["done", "done"]
    assert run_scores(out) == local_scores["scores"]
    assert any((out / LOG_DIR).rglob("*_log.out")), "submitit job logs missing"
    again = SlurmExecutor(cluster="local", poll_s=0.2).run(runs, out, progress=False)
    assert [o.status for o in again] == ["skipped", "skipped"]


@pytest.mark.slow
def test_preempted_job_is_requeued_and_resumes_from_checkpoint(submitit_mod, env, local_scores, tmp_path):
    from disent_bench.executors.slurm import SlurmExecutor

    marker = tmp_path / "preempted"
    grid = _write_grid(tmp_path / "grid.toml", models=[{"name": f"{__name__}:PreemptedOnceVAE", "beta": 1.0,
                                                        "marker": str(marker), "preempt_after": 3}])
    runs = expand(load_grid(grid))
    out = tmp_path / "out"
    outcomes = SlurmExecutor(cluster="local", poll_s=0.2).run(runs, out, progress=False)
    assert marker.is_file(), "the job was never signalled"
    assert outcomes[0].status == "done", outcomes
    record = json.loads((out / "runs" / runs[0].id / "metrics.json").read_text())
    assert record["train"]["resumed_from_step"] == 2  # signalled during step 4; last checkpoint: step 2
    reference = next(v for k, v in local_scores["scores"].items() if "beta1-" in k)
    assert run_scores(out)[runs[0].id] == reference


@pytest.mark.slow
def test_job_that_dies_is_recorded_failed(submitit_mod, env, tmp_path, monkeypatch):
    """A job killed outright (no requeue): the run is reported failed with an error.json naming the job."""
    from submitit.local.local import LocalJob

    from disent_bench.executors.slurm import SlurmExecutor
    from disent_bench.run_store import run_status

    # submitit waits 15 s for a dead job's result file (slow network file systems); none will come here.
    monkeypatch.setattr(LocalJob, "_results_timeout_s", 1)

    marker = tmp_path / "killed"
    grid = _write_grid(tmp_path / "grid.toml", models=[{"name": f"{__name__}:PreemptedOnceVAE", "beta": 1.0,
                                                        "marker": str(marker), "preempt_after": 3,
                                                        "signal_name": "SIGKILL"}])
    runs = expand(load_grid(grid))
    out = tmp_path / "out"
    outcomes = SlurmExecutor(cluster="local", poll_s=0.2).run(runs, out, progress=False)
    assert marker.is_file()
    assert outcomes[0].status == "failed" and "did not finish" in outcomes[0].error, outcomes
    error = json.loads((out / "runs" / runs[0].id / "error.json").read_text())
    assert error["executor"] == "slurm" and error["job_id"] == outcomes[0].extra["job_id"]
    assert run_status(runs[0], out) == ("failed", 2)  # its step-2 checkpoint is kept for the next attempt


def test_settings_from_grid_and_flags(submitit_mod, env):
    from disent_bench.executors.slurm import SlurmExecutor

    grid = _write_grid(env / "grid_settings.toml", models=[{"name": "beta_vae", "beta": 4.0}],
                       slurm={"partition": "gpu", "time_min": 90, "gpus_per_node": 1, "array_parallelism": 8})
    spec = load_grid(grid)
    runs = expand(spec)
    executor = SlurmExecutor(slurm=spec.slurm, time_min=30, cluster="local")
    assert executor.settings == {"partition": "gpu", "time_min": 30, "gpus_per_node": 1, "array_parallelism": 8}
    params = executor.job_parameters(runs)
    assert params["timeout_min"] == 30 and params["gpus_per_node"] == 1 and params["cpus_per_task"] == 1
    assert "slurm_partition" not in params  # only the slurm back-end takes these
    executor.cluster = "slurm"
    params = executor.job_parameters(runs)
    assert params["slurm_partition"] == "gpu" and params["slurm_array_parallelism"] == 8
    # Names submitit's AutoExecutor takes (generic, or slurm_ + a SlurmExecutor parameter).
    generic = submitit_mod.AutoExecutor._valid_parameters()
    slurm_only = submitit_mod.SlurmExecutor._valid_parameters()
    for key in params:
        assert key in generic or (key.startswith("slurm_") and key[len("slurm_"):] in slurm_only), key
    with pytest.raises(UserError, match="array_parallelism must be at least 1"):
        SlurmExecutor(array_parallelism=0, cluster="local")
    with pytest.raises(UserError, match="cluster must be one of"):
        SlurmExecutor(cluster="pbs")


def test_without_sbatch_slurm_is_a_user_error(submitit_mod, monkeypatch, tmp_path):
    from disent_bench.executors.slurm import SlurmExecutor

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(UserError, match="needs Slurm's sbatch"):
        SlurmExecutor()


def test_without_submitit_the_error_says_what_to_install(monkeypatch):
    from disent_bench.executors import get_executor

    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(UserError, match=r'pip install "disent-bench\[slurm\]"'):
        get_executor("slurm", cluster="local")


def test_cli_slurm_without_sbatch_exits_2(env, tmp_path):
    pytest.importorskip("submitit", reason="submitit is not installed")
    grid = _write_grid(tmp_path / "grid.toml")
    exe = Path(sys.executable).parent / "disent-bench"
    result = subprocess.run([str(exe), "run", "--grid", str(grid), "--out", str(tmp_path / "out"),
                             "--executor", "slurm", "--partition", "gpu"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: --executor slurm needs Slurm's sbatch" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
