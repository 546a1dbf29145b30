"""Run a grid on a Slurm cluster through submitit (https://github.com/facebookincubator/submitit).

``disent-bench run --grid FILE --executor slurm [--partition P --time-min M --gpus-per-node G
--array-parallelism N] [--no-wait]``

* Every run that is not finished becomes one task of a Slurm job array (``sbatch --array``, at
  most ``array_parallelism`` running at once). Partition, time limit, GPUs and array parallelism
  come from the grid's ``[slurm]`` table, and the command-line flags override them; CPUs per task
  from ``[benchmark] cpus_per_run``, and ``gpus_per_run`` when ``[slurm] gpus_per_node`` is unset.
* A task calls :func:`disent_bench.runner.execute_run` on the shared results directory: it claims
  the run's lock, trains resuming from ``checkpoint.pt`` and writes the results atomically, exactly
  as a local run does.
* Preemption and time limits: Slurm signals the job before it stops it; submitit then calls
  :meth:`SlurmRunJob.checkpoint`, which resubmits the same run, and requeues the job. The requeued
  job resumes from the run's last checkpoint (at most ``checkpoint_every`` steps are redone).
* The driver waits for the jobs and prints the same progress lines as local runs; Ctrl-C cancels
  the jobs it submitted (checkpoints stay). With ``wait=False`` (``--no-wait``) it submits and
  returns; ``disent-bench run`` with the same grid later shows what finished and resumes the rest.

Slurm assumes what submitit assumes: the compute nodes see the results directory, the data home and
this Python environment at the same paths as the submitting machine.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from disent_bench import data
from disent_bench._io import atomic_write_json
from disent_bench.errors import UserError
from disent_bench.executors.local import OverallProgress
from disent_bench.grid import RunSpec
from disent_bench.progress import say
from disent_bench.run_store import ERROR, claim, is_done, run_dir, utc_now
from disent_bench.runner import RunOutcome, execute_pack, execute_run, make_packs

__all__ = ["SlurmExecutor", "SlurmRunJob", "INSTALL_HINT", "CLUSTERS"]

INSTALL_HINT = 'pip install "disent-bench[slurm]"'
#: submitit back-ends: a real Slurm cluster, local processes (tests, one machine) and in-process (debug).
CLUSTERS = ("slurm", "local", "debug")
#: Job logs and submitit's pickles, inside the results directory.
LOG_DIR = "submitit"
#: Default time limit (minutes) when neither the grid nor a flag sets one.
DEFAULT_TIME_MIN = 24 * 60


def import_submitit():
    """The ``submitit`` module, or a UserError saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise UserError(f"--executor slurm needs submitit, which is not installed; install it with: "
                        f"{INSTALL_HINT}") from None
    return submitit


class SlurmRunJob:
    """One run as a submitit job: a picklable callable with submitit's ``checkpoint`` protocol.

    On preemption or time-out submitit calls :meth:`checkpoint` and requeues what it returns: the
    same run, which resumes from the run's ``checkpoint.pt`` (the trainer's own checkpoint, written
    every ``checkpoint_every`` steps), so nothing but the steps since the last checkpoint is lost.
    """

    def __init__(self, run_json: Mapping[str, Any], out_dir: str, data_home: str | None = None,
                 threads: int | None = None) -> None:
        self.run_json = dict(run_json)
        self.out_dir = str(out_dir)
        self.data_home = data_home
        self.threads = threads

    def __call__(self) -> dict[str, Any]:
        if self.data_home:
            os.environ["DISENT_BENCH_DATA"] = self.data_home
        if self.threads:
            torch.set_num_threads(self.threads)
        if "runs" in self.run_json:  # a pack: its runs train together in this one job
            outcomes = execute_pack(self.run_json["runs"], self.out_dir, progress=False, wait=False)
            return {"outcomes": [{**o.to_json(), "extra": {**o.extra, **_job_info()}} for o in outcomes]}
        outcome = execute_run(self.run_json, self.out_dir, progress=False, wait=False)
        result = outcome.to_json()
        result["extra"] = {**result.get("extra", {}), **_job_info()}
        return result

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit before a requeue: resubmit this run (training resumes from its checkpoint)."""
        submitit = import_submitit()
        return submitit.helpers.DelayedSubmission(
            type(self)(self.run_json, self.out_dir, self.data_home, self.threads))


def _job_info() -> dict[str, Any]:
    try:
        import submitit

        env = submitit.JobEnvironment()
        return {"executor": "slurm", "job_id": env.job_id, "host": env.hostname}
    except Exception:  # noqa: BLE001 - called outside a submitit job (e.g. directly in a test)
        return {"executor": "slurm"}


class SlurmExecutor:
    """Submits runs as a submitit job array and (by default) waits for them.

    Parameters
    ----------
    partition, time_min, gpus_per_node, array_parallelism:
        Slurm settings; each overrides the grid's ``[slurm]`` value given as ``slurm``.
    slurm:
        The grid's ``[slurm]`` table (``Grid.slurm``).
    cluster:
        ``"slurm"`` (default), or submitit's ``"local"`` (jobs as local processes: tests, a
        workstation) or ``"debug"`` (in this process).
    wait:
        Wait for the jobs and report their outcomes; False submits and returns ``"submitted"``
        outcomes.
    poll_s:
        Seconds between checks of the jobs' states while waiting.
    max_num_timeout:
        How often a job may be requeued after preemption or time-out.
    """

    name = "slurm"

    def __init__(self, partition: str | None = None, time_min: int | None = None,
                 gpus_per_node: int | None = None, array_parallelism: int | None = None, *,
                 slurm: Mapping[str, Any] | None = None, cluster: str = "slurm", wait: bool = True,
                 poll_s: float = 10.0, max_num_timeout: int = 3, mem_gb: float | None = None,
                 **_: object) -> None:
        import_submitit()
        if cluster not in CLUSTERS:
            raise UserError(f"slurm executor: cluster must be one of {', '.join(CLUSTERS)}, got {cluster!r}")
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise UserError("--executor slurm needs Slurm's sbatch, which is not on PATH here; run on a login "
                            "node of your Slurm cluster, or use --executor local or ray")
        settings = dict(slurm or {})
        for key, value in (("partition", partition), ("time_min", time_min), ("gpus_per_node", gpus_per_node),
                           ("array_parallelism", array_parallelism)):
            if value is not None:
                settings[key] = value
        for key in ("time_min", "gpus_per_node", "array_parallelism"):
            value = settings.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise UserError(f"slurm {key} must be an integer >= 0, got {value!r}")
        if settings.get("time_min") == 0:
            raise UserError("slurm time_min must be at least 1 minute, got 0")
        if settings.get("array_parallelism") == 0:
            raise UserError("slurm array_parallelism must be at least 1, got 0")
        self.settings = settings
        self.cluster = cluster
        self.wait = wait
        self.poll_s = float(poll_s)
        self.max_num_timeout = int(max_num_timeout)
        self.mem_gb = mem_gb

    # -- submitting ---------------------------------------------------------------------------------
    def job_parameters(self, runs: Sequence[RunSpec]) -> dict[str, Any]:
        """submitit (AutoExecutor) parameters for the array: one task per run, on one node."""
        resources: dict[str, Any] = {}
        for run in runs:
            resources.update(run.resources or {})
        gpus = self.settings.get("gpus_per_node")
        if gpus is None and resources.get("gpus_per_run") is not None:
            gpus = int(resources["gpus_per_run"])
        cpus = resources.get("cpus_per_run")
        params: dict[str, Any] = {
            "name": "disent-bench",
            "nodes": 1,
            "tasks_per_node": 1,
            "timeout_min": int(self.settings.get("time_min") or DEFAULT_TIME_MIN),
        }
        if gpus:
            params["gpus_per_node"] = int(gpus)
        if cpus:
            params["cpus_per_task"] = max(1, int(cpus))
        if self.mem_gb:
            params["mem_gb"] = float(self.mem_gb)
        if self.cluster == "slurm":
            if self.settings.get("partition"):
                params["slurm_partition"] = str(self.settings["partition"])
            if self.settings.get("array_parallelism"):
                params["slurm_array_parallelism"] = int(self.settings["array_parallelism"])
        return params

    def _executor(self, out_dir: Path, runs: Sequence[RunSpec]) -> Any:
        submitit = import_submitit()
        # How often a timed-out job is requeued (the debug back-end runs in-process and has no such limit).
        kwargs = {f"{self.cluster}_max_num_timeout": self.max_num_timeout} if self.cluster != "debug" else {}
        executor = submitit.AutoExecutor(folder=out_dir / LOG_DIR, cluster=self.cluster, **kwargs)
        executor.update_parameters(**self.job_parameters(runs))
        return executor

    def submit(self, runs: Sequence[RunSpec], out_dir: Path) -> list[Any]:
        """Submit ``runs`` as one job array, a job per pack (``[benchmark] pack``); returns each run's job."""
        out_dir = Path(out_dir).resolve()
        executor = self._executor(out_dir, runs)
        threads = self.job_parameters(runs).get("cpus_per_task")
        data_home = str(data.data_home().resolve())
        units = make_packs(list(runs))
        with executor.batch():
            jobs = [executor.submit(SlurmRunJob(unit[0].to_json() if len(unit) == 1 else
                                                {"runs": [run.to_json() for run in unit]},
                                                str(out_dir), data_home, threads)) for unit in units]
        by_run = {}
        for unit, job in zip(units, jobs):
            for run in unit:
                by_run[run.id] = job
        return [by_run[run.id] for run in runs]  # a pack's runs share its job

    # -- running ------------------------------------------------------------------------------------
    def run(self, runs: Sequence[RunSpec], out_dir: Path, *, jobs: int | None = None, progress: bool = True) -> list[RunOutcome]:
        """Submit the unfinished runs and wait for them (``jobs`` is ignored: Slurm schedules)."""
        out_dir = Path(out_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        overall = OverallProgress(runs, max(1, int(self.settings.get("array_parallelism") or len(runs) or 1)))
        outcomes, todo = overall.skip_finished(runs, out_dir)
        if todo:
            submitted = self.submit(todo, out_dir)
            ids = sorted({str(job.job_id).split("_")[0] for job in submitted})
            say(f"slurm ({self.cluster}): submitted {len(submitted)} run(s) as job {', '.join(ids)}; "
                f"logs in {out_dir / LOG_DIR}")
            if not self.wait:
                for run, job in zip(todo, submitted):
                    outcomes[run.id] = RunOutcome(run.id, "submitted", extra={"job_id": str(job.job_id)})
                say("not waiting: run `disent-bench run` with the same grid later to see what finished")
            else:
                outcomes.update(self._wait(todo, submitted, out_dir, overall))
        return [outcomes[run.id] for run in runs]

    def _wait(self, runs: Sequence[RunSpec], jobs: Sequence[Any], out_dir: Path, overall: Any) -> dict[str, RunOutcome]:
        pending = {run.id: (run, job) for run, job in zip(runs, jobs)}
        outcomes: dict[str, RunOutcome] = {}
        try:
            while pending:
                for run_id, (run, job) in list(pending.items()):
                    if not job.done():
                        continue
                    del pending[run_id]
                    outcome = self._outcome(run, out_dir, job)
                    overall.record(outcome)
                    outcomes[run_id] = outcome
                    say(overall.line(outcome))
                if pending:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            say(f"interrupted: cancelling {len(pending)} Slurm job(s); checkpoints are kept")
            for _, job in pending.values():
                try:
                    job.cancel(check=False)
                except Exception:  # noqa: BLE001 - a job that just ended cannot be cancelled; fine
                    pass
            raise
        return outcomes

    @staticmethod
    def _outcome(run: RunSpec, out_dir: Path, job: Any) -> RunOutcome:
        try:
            reply = job.result()
        except Exception as exc:  # noqa: BLE001 - the job died (killed, out of memory, time-out, node failure)
            text = str(exc).strip()
            last = text.splitlines()[-1] if text else ""
            message = (f"slurm job {job.job_id} did not finish: {type(exc).__name__}: {last[:300]} "
                       f"(log: {out_dir / LOG_DIR})")
            _record_job_failure(run, out_dir, job, exc, message)
            return RunOutcome(run.id, "failed", error=message, extra={"executor": "slurm", "job_id": str(job.job_id)})
        if "outcomes" in reply:  # the job of a pack: this run's outcome among its runs'
            reply = next(o for o in reply["outcomes"] if o["run_id"] == run.id)
        return RunOutcome(**reply)


def _record_job_failure(run: RunSpec, out_dir: Path, job: Any, error: BaseException, message: str) -> None:
    """error.json for a run whose job died without recording anything itself (when nobody holds the run)."""
    directory = run_dir(out_dir, run.id)
    with claim(directory) as owned:
        if owned and not is_done(directory, run) and not (directory / ERROR).is_file():
            atomic_write_json(directory / ERROR, {
                "run_id": run.id, "error_type": type(error).__name__, "error": message, "user_error": False,
                "traceback": str(error)[-5000:], "executor": "slurm", "job_id": str(job.job_id),
                "date": utc_now()})
