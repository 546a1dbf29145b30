"""The run store: one run's folder, its files and its lock. Everything that reads or writes a run goes here.

A run lives in ``<out>/runs/<run-id>/``:

* ``config.json``: the resolved :class:`~disent_bench.grid.RunSpec`;
* ``checkpoint.pt`` and ``train_log.csv``: written by :func:`disent_bench.train.train`, which resumes
  from the checkpoint by itself, so a killed run loses at most the steps since its last checkpoint;
* ``metrics.json``: every metric per representation, plus provenance (versions, device, the dataset
  source actually used and its checksum, seeds, wall times, date);
* ``DONE``: written last; a run is finished when ``DONE`` exists and ``metrics.json`` is valid;
* ``error.json``: the error and traceback of a failed attempt (removed when a later attempt succeeds);
* ``.lock``: an OS file lock (``flock``, via :mod:`filelock`) held while a process works on the run.
  It dies with its process, so a killed runner never blocks the run for good.

Every write is atomic (:mod:`disent_bench._io`): a kill leaves the old file or the new one. Readers (the
report, ``run --dry-run``, the executors) use only this module, never the orchestration that trains.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import filelock

from disent_bench._io import atomic_write_json, atomic_write_text
from disent_bench.errors import UserError
from disent_bench.grid import RunSpec
from disent_bench.train.checkpoint import CHECKPOINT_NAME, checkpoint_step as _checkpoint_file_step

__all__ = ["RESULTS_VERSION", "DONE", "METRICS", "CONFIG", "ERROR", "CHECKPOINT", "LOCK", "run_dir",
           "read_metrics", "eval_matches", "is_done", "checkpoint_step", "run_status", "claim", "write_config",
           "write_error", "write_results", "utc_now"]

#: Layout version of metrics.json; bumped when its structure changes.
RESULTS_VERSION = 1

DONE = "DONE"
METRICS = "metrics.json"
CONFIG = "config.json"
ERROR = "error.json"
CHECKPOINT = CHECKPOINT_NAME
LOCK = ".lock"


def utc_now() -> str:
    """The time now as recorded in a run's files (ISO 8601, UTC, seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def run_dir(out_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(out_dir) / "runs" / run_id


# -- reading ----------------------------------------------------------------------------------------
def read_metrics(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed metrics.json of a run directory, or None when missing or damaged."""
    path = Path(directory) / METRICS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or not data["results"]:
        return None
    return data


def eval_matches(metrics: Mapping[str, Any], run: RunSpec) -> bool:
    """True when a finished run was scored with the evaluation the grid asks for now."""
    stored = metrics.get("config", {}).get("eval")
    return json.dumps(stored, sort_keys=True) == json.dumps(run.eval, sort_keys=True)


def is_done(directory: str | os.PathLike, run: RunSpec | None = None) -> bool:
    """Finished: DONE present, metrics.json valid, and (given ``run``) scored with ``run``'s evaluation."""
    directory = Path(directory)
    if not (directory / DONE).is_file():
        return False
    metrics = read_metrics(directory)
    if metrics is None:
        return False
    return run is None or eval_matches(metrics, run)


def checkpoint_step(directory: str | os.PathLike) -> int | None:
    """The step the run's checkpoint holds: None when it has none yet; :class:`UserError` when unreadable.

    The one contract for every caller (the trainer's :func:`disent_bench.train.checkpoint.checkpoint_step`
    on the run's ``checkpoint.pt``).
    """
    return _checkpoint_file_step(Path(directory) / CHECKPOINT)


def _readable_step(directory: Path) -> int | None:
    """For status displays: a damaged checkpoint shows as "no step" (training says why when it reads it)."""
    try:
        return checkpoint_step(directory)
    except UserError:
        return None


def run_status(run: RunSpec, out_dir: str | os.PathLike) -> tuple[str, int | None]:
    """``("done"|"running"|"partial"|"failed"|"pending"|"rescore", step)`` of a run, reading only its files."""
    directory = run_dir(out_dir, run.id)
    if not directory.is_dir():
        return "pending", None
    if is_done(directory, run):
        return "done", run.train.get("steps")
    if is_done(directory):
        return "rescore", run.train.get("steps")  # trained, but scored with other eval settings
    if directory.joinpath(LOCK).exists():
        lock = filelock.FileLock(str(directory / LOCK))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            return "running", _readable_step(directory)
        else:
            lock.release()
    step = _readable_step(directory)
    if (directory / ERROR).is_file():
        return "failed", step
    if step is not None:
        return "partial", step
    return "pending", None


# -- claiming ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def claim(directory: Path, *, wait: bool = False) -> Iterator[bool]:
    """Hold the run's lock for the block; yields False (without waiting) when another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(directory / LOCK))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except filelock.Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


# -- writing ----------------------------------------------------------------------------------------
def write_config(directory: Path, run: RunSpec) -> None:
    atomic_write_json(directory / CONFIG, run.to_json())


def write_error(directory: Path, run_id: str, exc: BaseException) -> None:
    """Record a failed attempt in ``error.json``, with its traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    atomic_write_json(directory / ERROR, {
        "run_id": run_id, "error_type": type(exc).__name__, "error": str(exc),
        "user_error": isinstance(exc, UserError), "traceback": tb, "date": utc_now(),
        "pid": os.getpid(), "hostname": socket.gethostname()})


def write_results(directory: Path, record: Mapping[str, Any], date: str) -> None:
    """Finish a run: ``metrics.json``, then no ``error.json``, then ``DONE`` (the order readers rely on)."""
    atomic_write_json(directory / METRICS, record)
    with contextlib.suppress(FileNotFoundError):
        (directory / ERROR).unlink()
    atomic_write_text(directory / DONE, date + "\n")
