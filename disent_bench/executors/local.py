"""Run on this machine: one run at a time in this process, or ``jobs`` runs at once as processes.

Each run computes with its grid's ``cpus_per_run`` threads however it is executed (see
:func:`disent_bench.runner.cpu_threads`), so ``jobs`` changes how many runs share the machine, never a
number. ``disent-bench run`` without ``--jobs`` fills the cores: ``cores // cpus_per_run`` runs at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from disent_bench.errors import StorageError
from disent_bench.grid import RunSpec
from disent_bench.progress import say
from disent_bench.run_store import is_done, run_dir
from disent_bench.runner import RunOutcome, available_cpus, execute_pack, make_packs, run_threads


def _init_worker() -> None:
    # Threads are set per run (execute_run). Warnings as one line, as the CLI prints them in the main process.
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


def default_jobs(runs: Sequence[RunSpec]) -> int:
    """Runs at once when ``--jobs`` is not given: as many as the cores hold at ``cpus_per_run`` threads each
    (at most one per run, and one for runs that want a GPU: they would share it)."""
    if not runs:
        return 1
    if any(run.device == "auto" or run.device.startswith(("cuda", "mps")) for run in runs):
        if torch.cuda.is_available() or (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            return 1
    threads = max(run_threads(run) for run in runs)
    return max(1, min(len(runs), available_cpus() // threads))


def _fmt_seconds(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class OverallProgress:
    """Runs done/total and an ETA from the seconds per training step measured so far (every executor's view)."""

    def __init__(self, runs: Sequence[RunSpec], jobs: int) -> None:
        self.total = len(runs)
        self.jobs = jobs
        self.steps = {run.id: int(run.train.get("steps", 1)) for run in runs}
        self.finished: set[str] = set()
        self.work_seconds = 0.0
        self.work_steps = 0

    def record(self, outcome: RunOutcome) -> None:
        if outcome.status in ("done", "skipped", "failed"):
            self.finished.add(outcome.run_id)
        if outcome.status == "done" and outcome.steps_trained:
            self.work_seconds += outcome.seconds
            self.work_steps += outcome.steps_trained

    def eta(self) -> str:
        if not self.work_steps:
            return "eta ?"
        remaining = sum(s for rid, s in self.steps.items() if rid not in self.finished)
        return "eta " + _fmt_seconds(remaining * self.work_seconds / self.work_steps / self.jobs)

    def skip_finished(self, runs: Sequence[RunSpec], out_dir: Path) -> tuple[dict[str, RunOutcome], list[RunSpec]]:
        """Outcomes ("skipped", recorded here) of the runs already finished under ``out_dir``, and the rest."""
        outcomes: dict[str, RunOutcome] = {}
        todo = []
        for run in runs:
            if is_done(run_dir(out_dir, run.id), run):
                outcomes[run.id] = RunOutcome(run.id, "skipped")
                self.record(outcomes[run.id])
            else:
                todo.append(run)
        return outcomes, todo

    def line(self, outcome: RunOutcome) -> str:
        detail = {"done": f"done in {_fmt_seconds(outcome.seconds)}", "skipped": "already finished",
                  "claimed": "claimed by another process; will revisit",
                  "failed": f"FAILED: {outcome.error}"}[outcome.status]
        return f"[{len(self.finished)}/{self.total} runs, {self.eta()}] {outcome.run_id}: {detail}"


class LocalExecutor:
    """Executes runs on this machine; ``jobs > 1`` runs that many at once in spawned processes."""

    name = "local"

    def __init__(self, **_: object) -> None:
        pass

    def run(self, runs: Sequence[RunSpec], out_dir: Path, *, jobs: int | None = 1,
            progress: bool = True) -> list[RunOutcome]:
        """Execute ``runs``; ``jobs=None`` picks :func:`default_jobs` (what ``disent-bench run`` does)."""
        jobs = max(1, int(jobs)) if jobs is not None else default_jobs(runs)
        if len(runs) and jobs > 1:
            threads = max(run_threads(run) for run in runs)
            if jobs * threads > available_cpus():
                say(f"warning: {jobs} jobs x {threads} thread(s) per run (cpus_per_run) exceed the "
                    f"{available_cpus()} cores here: runs will compete for them (numbers are unaffected)")
        overall = OverallProgress(runs, jobs)
        outcomes: dict[str, RunOutcome] = {}
        if jobs == 1:
            first = self._sequential(runs, out_dir, overall, progress, wait=False)
        else:
            first = self._parallel(runs, out_dir, overall, jobs, wait=False)
        outcomes.update(first)
        # Runs another process held: wait for each, then finish it if that process did not.
        claimed = [run for run in runs if outcomes[run.id].status == "claimed"]
        if claimed:
            say(f"revisiting {len(claimed)} run(s) claimed by another process (waiting for their locks)")
            if jobs == 1:
                outcomes.update(self._sequential(claimed, out_dir, overall, progress, wait=True))
            else:
                outcomes.update(self._parallel(claimed, out_dir, overall, jobs, wait=True))
        return [outcomes[run.id] for run in runs]

    def _sequential(self, runs, out_dir, overall: OverallProgress, progress: bool, *, wait: bool):
        outcomes = {}
        for pack in make_packs(list(runs)):
            if progress:
                what = pack[0].id if len(pack) == 1 else f"a pack of {len(pack)} runs ({pack[0].id}, ...)"
                say(f"[{len(overall.finished)}/{overall.total} runs, {overall.eta()}] starting {what}")
            for outcome in execute_pack(pack, out_dir, progress=progress, wait=wait):
                overall.record(outcome)
                outcomes[outcome.run_id] = outcome
                say(overall.line(outcome))
        return outcomes

    def _parallel(self, runs, out_dir, overall: OverallProgress, jobs: int, *, wait: bool):
        outcomes = {}
        context = multiprocessing.get_context("spawn")  # fork after torch threads start is unsafe
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(execute_pack, [run.to_json() for run in pack], str(out_dir), progress=False,
                                   wait=wait): pack for pack in make_packs(list(runs))}
            for future in cf.as_completed(futures):
                pack = futures[future]
                try:
                    pack_outcomes = future.result()
                except StorageError:  # the disk is full (or read-only): every other run would fail the same way
                    for other in futures:
                        other.cancel()
                    raise
                except Exception as exc:  # noqa: BLE001 - a worker that died (killed, out of memory)
                    pack_outcomes = [RunOutcome(run.id, "failed", error=f"worker process failed: "
                                                                       f"{type(exc).__name__}: {exc}") for run in pack]
                for outcome in pack_outcomes:
                    overall.record(outcome)
                    outcomes[outcome.run_id] = outcome
                    say(overall.line(outcome))
        return outcomes


__all__ = ["LocalExecutor"]
