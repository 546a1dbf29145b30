"""Execute one run end to end, safely: claim its folder, train (resuming), score, record.

:func:`execute_run` is a module-level function of plain arguments so that executors (local processes,
Ray, Slurm) can ship it to workers. It never raises for a failure of the run itself: the error goes to
the run's ``error.json`` (:mod:`disent_bench.run_store`) and the other runs go on.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from disent_bench import data, metrics, models
from disent_bench.data import integrity
from disent_bench.devices import resolve_device
from disent_bench.errors import StorageError
from disent_bench.grid import RunSpec
from disent_bench.run_store import (RESULTS_VERSION, claim, is_done, run_dir, write_config, write_error,
                                    write_results)
from disent_bench.runner.provenance import provenance
from disent_bench.runner.resources import cpu_threads, run_threads
from disent_bench.train import TrainConfig, TrainResult, train

__all__ = ["RunOutcome", "Prepared", "execute_run", "prepare", "train_prepared", "score_and_record", "failed",
           "evaluation_seed", "time_breakdown"]


@dataclass
class RunOutcome:
    """What happened to one run in one invocation.

    ``status``: ``"done"`` (trained/scored now), ``"skipped"`` (already finished), ``"claimed"``
    (another process holds it), or ``"failed"`` (see ``error`` and runs/<id>/error.json).
    """

    run_id: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    steps_trained: int = 0
    images_per_second: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_DATASETS: dict[tuple[str, str, str], Any] = {}


def _dataset(name: str, source: str, progress: bool):
    """Load a dataset once per process (workers keep it across runs)."""
    key = (name, source, str(data.data_home()))
    if key not in _DATASETS:
        _DATASETS[key] = data.get_dataset(name, source, progress=progress)
        return _DATASETS[key]
    dataset = _DATASETS[key]
    # Kept across runs, so checked again before each: its file against its stamp (size and mtime, ~40 us; a
    # full checksum when they changed). A file changed since this process loaded it is an error, not used.
    stamped = Path(dataset.path) if getattr(dataset, "path", None) else None
    if stamped is not None and integrity.read_stamp(stamped) is not None:
        check = integrity.check_stamped(stamped, name, "run `disent-bench data verify` and render or fetch it "
                                                       "again")
        dataset.integrity = {**(dataset.integrity or {}), **check.record()}
    return dataset


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def execute_run(run: RunSpec | Mapping[str, Any], out_dir: str | os.PathLike, *, progress: bool = False,
                wait: bool = False) -> RunOutcome:
    """Claim, train (resuming), score and record one run; never raises for a failure of the run itself.

    Returns a :class:`RunOutcome`. A run someone else holds is not touched (``"claimed"``) unless
    ``wait`` is set, in which case this waits for the lock and then finishes the run if it still needs it.
    """
    if not isinstance(run, RunSpec):
        run = RunSpec.from_json(run)
    directory = run_dir(out_dir, run.id)
    start = time.perf_counter()
    with claim(directory, wait=wait) as owned:
        if not owned:
            return RunOutcome(run.id, "claimed")
        if is_done(directory, run):
            return RunOutcome(run.id, "skipped")
        try:
            with cpu_threads(run_threads(run)):
                outcome = train_prepared(prepare(run, directory, progress=progress), progress=progress)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failure must not stop the others: record it
            return failed(run, directory, exc, time.perf_counter() - start)
        outcome.seconds = time.perf_counter() - start
        return outcome


def failed(run: RunSpec, directory: Path, exc: BaseException, seconds: float) -> RunOutcome:
    """Record a failed attempt in ``error.json`` (with its traceback) and return its outcome.

    A :class:`StorageError` (disk full, read-only, permission denied) ends the whole grid, since every
    next run would fail the same way: it is recorded when the record can still be written, then raised. When
    even ``error.json`` cannot be written, nothing else is attempted: the first error is raised for the
    terminal. The run's last good checkpoint and every finished run stay as they were (all writes are atomic).
    """
    try:
        write_error(directory, run.id, exc)
    except StorageError:
        if isinstance(exc, StorageError):
            raise exc from None
        raise
    if isinstance(exc, StorageError):
        raise exc
    return RunOutcome(run.id, "failed", seconds=seconds, error=f"{type(exc).__name__}: {exc}")


@dataclass
class Prepared:
    """A run ready to train: its device, dataset, untrained model and config, and the time taken so far."""

    run: RunSpec
    directory: Path
    device: torch.device
    dataset: data.GroundTruthData
    model: models.BaseModel
    config: TrainConfig
    timing: dict[str, float]


def prepare(run: RunSpec, directory: Path, *, progress: bool) -> Prepared:
    """Write the run's config, load its dataset (once per process) and build its untrained model."""
    write_config(directory, run)
    device = resolve_device(run.device)
    t_data = time.perf_counter()
    dataset = _dataset(run.dataset["name"], run.dataset["source"], progress)
    timing = {"data": time.perf_counter() - t_data}
    model = models.build(run.model["name"], in_channels=dataset.num_channels,
                         latent_dim=run.model["latent_dim"], **run.model["params"])
    # Correlated training data changes how the trainer draws batches, never what the metrics see.
    config = TrainConfig(**{**run.train, "device": str(device),
                            "correlations": tuple(run.dataset.get("correlations", ()))})
    return Prepared(run, directory, device, dataset, model, config, timing)


def train_prepared(prepared: Prepared, *, progress: bool) -> RunOutcome:
    """Train a prepared run alone (resuming), then score and record it."""
    t0 = time.perf_counter()
    result = train(prepared.model, prepared.dataset, prepared.config, run_dir=prepared.directory, progress=progress)
    prepared.timing["train"] = time.perf_counter() - t0
    return score_and_record(prepared, result, progress=progress)


def score_and_record(prepared: Prepared, result: TrainResult, *, progress: bool, packed_with: int = 1) -> RunOutcome:
    """Score a trained run with every metric and representation, write metrics.json and DONE."""
    run, directory, dataset, device, timing = (prepared.run, prepared.directory, prepared.dataset,
                                               prepared.device, prepared.timing)
    train_seconds = timing["train"]
    trained_model = result.model
    final = dict(result.final_losses)
    bad = {k: v for k, v in final.items() if not _finite(v)}
    if bad:
        raise FloatingPointError(f"training diverged: the last logged losses are not finite ({bad})")
    step_before = int(result.start_step)
    steps_trained = max(int(result.step) - step_before, 0)

    trained_model.eval()
    repeats = int(run.eval.get("repeats", 1))
    by_repeat: list[dict[str, dict[str, float]]] = []
    eval_seconds: dict[str, float] = {}
    skipped_reps = []
    for repeat in range(repeats):
        results: dict[str, dict[str, float]] = {}
        for representation in run.eval["representation"]:
            if representation == "sampled" and not trained_model.has_variance:
                if repeat == 0:
                    skipped_reps.append(representation)  # a deterministic encoder has no sampled code
                continue
            t1 = time.perf_counter()
            scores = metrics.evaluate(
                dataset, trained_model, metrics=tuple(run.eval["metrics"]), preset=run.eval["preset"],
                seed=evaluation_seed(run.seed, repeat), representation=representation,
                settings=run.eval.get("settings") or None, device=device, progress=progress,
                threads=run_threads(run))
            eval_seconds[representation] = eval_seconds.get(representation, 0.0) + time.perf_counter() - t1
            for key, value in scores.items():
                if key == "encoding_seconds":
                    timing["encoding"] = timing.get("encoding", 0.0) + float(value)
                elif key.endswith(".seconds"):
                    timing[key[:-len(".seconds")]] = timing.get(key[:-len(".seconds")], 0.0) + float(value)
            results[representation] = {k: (float(v) if isinstance(v, (int, float)) else v)
                                       for k, v in scores.items()}
        by_repeat.append(results)
    results = by_repeat[0]

    record = {
        "results_version": RESULTS_VERSION,
        "run_id": run.id,
        "config": run.to_json(),
        "model_hparams": trained_model.hparams,
        "results": results,
        "skipped_representations": skipped_reps,
        "train": {"steps": int(run.train["steps"]), "steps_this_attempt": steps_trained,
                  "resumed_from_step": step_before, "seconds_this_attempt": round(train_seconds, 3),
                  "seconds_total": float(result.final.get("elapsed", result.seconds)),
                  "images_per_second_this_attempt": float(result.images_per_s),
                  "final_loss": final},
        "eval": {"seconds": {k: round(v, 3) for k, v in eval_seconds.items()}},
        **({"repeats": [{"repeat": r, "seed": evaluation_seed(run.seed, r), "results": scores}
                        for r, scores in enumerate(by_repeat)]} if repeats > 1 else {}),
        "provenance": {**provenance(device, dataset), "seed": run.seed, "packed_with": packed_with,
                       "eval_preset": run.eval["preset"],
                       "torch_deterministic": torch.are_deterministic_algorithms_enabled()},
    }
    write_results(directory, record, record["provenance"]["date"])
    return RunOutcome(run.id, "done", steps_trained=steps_trained,
                      images_per_second=float(result.images_per_s) if steps_trained else None,
                      extra={"timing": {k: round(v, 3) for k, v in timing.items()}})


def evaluation_seed(seed: int, repeat: int) -> int:
    """The evaluation seed of ``repeat`` (``[eval] repeats``) of a run of seed ``seed``: the run's own seed
    for the first, so one repeat gives the numbers a run always had; then seeds derived from both."""
    if repeat == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(repeat)]).generate_state(1, dtype=np.uint32)[0] >> 1)


def time_breakdown(outcomes: list[RunOutcome], wall_seconds: float) -> str:
    """One line: where the runs' time went (data, training, encoding, each metric), summed over the runs."""
    totals: dict[str, float] = {}
    for outcome in outcomes:
        for key, value in (outcome.extra or {}).get("timing", {}).items():
            totals[key] = totals.get(key, 0.0) + float(value)
    if not totals:
        return f"time: {wall_seconds:.0f} s wall (no run trained or scored)"
    order = ["data", "train", "encoding"]
    parts = [f"{key} {totals[key]:.0f} s" for key in order if key in totals]
    parts += [f"{key} {value:.0f} s" for key, value in sorted(totals.items(), key=lambda kv: -kv[1]) if key not in order]
    return f"time summed over runs: {' · '.join(parts)}; {wall_seconds:.0f} s wall"
