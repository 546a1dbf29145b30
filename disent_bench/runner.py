"""Run one benchmark run end to end, safely: claim it, train (resuming), score, write its results.

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

:func:`execute_run` is a module-level function of plain arguments so that executors (local processes,
Ray, Slurm) can ship it to workers.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import filelock

from disent_bench._io import atomic_write_json, atomic_write_text
from disent_bench.errors import UserError
from disent_bench.grid import RunSpec

__all__ = ["RunOutcome", "execute_run", "run_status", "is_done", "run_dir", "read_metrics", "claim",
           "provenance", "time_breakdown", "run_threads", "cpu_threads", "make_packs", "execute_pack", "pack_size",
           "RESULTS_VERSION"]

#: Layout version of metrics.json; bumped when its structure changes.
RESULTS_VERSION = 1

DONE = "DONE"
METRICS = "metrics.json"
CONFIG = "config.json"
ERROR = "error.json"
CHECKPOINT = "checkpoint.pt"
LOCK = ".lock"


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


def run_dir(out_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(out_dir) / "runs" / run_id


# -- status -----------------------------------------------------------------------------------------
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


def _eval_matches(metrics: Mapping[str, Any], run: RunSpec) -> bool:
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
    return run is None or _eval_matches(metrics, run)


def checkpoint_step(directory: str | os.PathLike) -> int | None:
    """The step the run's checkpoint holds (None without a readable one)."""
    path = Path(directory) / CHECKPOINT
    if not path.is_file():
        return None
    from disent_bench.train import checkpoint_step as _train_checkpoint_step

    try:
        return int(_train_checkpoint_step(path))
    except Exception:  # noqa: BLE001 - a damaged checkpoint shows as "no step"; train() will say why
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
            return "running", checkpoint_step(directory)
        else:
            lock.release()
    step = checkpoint_step(directory)
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


# -- provenance -------------------------------------------------------------------------------------
def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - a missing package is recorded as None
        return None


def run_threads(run: RunSpec) -> int:
    """CPU threads the run computes with: its grid's ``cpus_per_run`` (whatever executes it)."""
    from disent_bench.grid import DEFAULT_CPUS_PER_RUN

    return max(1, int((run.resources or {}).get("cpus_per_run", DEFAULT_CPUS_PER_RUN)))


@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """Compute with ``threads`` CPU threads: torch's intra-op pool and the BLAS/OpenMP pools numpy and
    scikit-learn use (so the order of floating-point sums, and with it the last digits of every result,
    depends on the grid only, not on the executor or on ``--jobs``)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def provenance(device: Any = None, dataset: Any = None) -> dict[str, Any]:
    """Versions, device and dataset identity recorded with every result."""
    import numpy
    import sklearn
    import torch

    from disent_bench import __version__

    info: dict[str, Any] = {
        "disent_bench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "torch_threads": torch.get_num_threads(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device is not None:
        info["device"] = str(device)
        if getattr(device, "type", None) == "cuda":
            info["device_name"] = torch.cuda.get_device_name(device)
    if dataset is not None:
        info["dataset"] = {"name": dataset.name, "source": dataset.source, "checksum": dataset.checksum,
                           "num_images": len(dataset), "image_shape": list(dataset.image_shape),
                           "factor_names": list(dataset.factor_names),
                           "factor_sizes": list(dataset.factor_sizes)}
    return info


# -- executing one run ------------------------------------------------------------------------------
_DATASETS: dict[tuple[str, str, str], Any] = {}


def _dataset(name: str, source: str, progress: bool):
    """Load a dataset once per process (workers keep it across runs)."""
    from disent_bench import data

    key = (name, source, str(data.data_home()))
    if key not in _DATASETS:
        _DATASETS[key] = data.get_dataset(name, source, progress=progress)
    return _DATASETS[key]


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
                outcome = _train_and_score(run, directory, progress=progress)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failure must not stop the others: record it
            return _failed(run, directory, exc, time.perf_counter() - start)
        outcome.seconds = time.perf_counter() - start
        return outcome


def _failed(run: RunSpec, directory: Path, exc: BaseException, seconds: float) -> RunOutcome:
    """Record a failed attempt in ``error.json`` (with its traceback) and return its outcome."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    atomic_write_json(directory / ERROR, {
        "run_id": run.id, "error_type": type(exc).__name__, "error": str(exc),
        "user_error": isinstance(exc, UserError), "traceback": tb,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "pid": os.getpid(), "hostname": socket.gethostname()})
    return RunOutcome(run.id, "failed", seconds=seconds, error=f"{type(exc).__name__}: {exc}")


@dataclass
class _Prepared:
    """A run ready to train: its device, dataset, untrained model and config, and the time taken so far."""

    run: RunSpec
    directory: Path
    device: Any
    dataset: Any
    model: Any
    config: Any
    timing: dict[str, float]


def _prepare(run: RunSpec, directory: Path, *, progress: bool) -> _Prepared:
    from disent_bench import models
    from disent_bench.train import TrainConfig, resolve_device

    atomic_write_json(directory / CONFIG, run.to_json())
    device = resolve_device(run.device)
    t_data = time.perf_counter()
    dataset = _dataset(run.dataset["name"], run.dataset["source"], progress)
    timing = {"data": time.perf_counter() - t_data}
    model = models.build(run.model["name"], in_channels=dataset.num_channels,
                         latent_dim=run.model["latent_dim"], **run.model["params"])
    config = TrainConfig(**{**run.train, "device": str(device)})
    return _Prepared(run, directory, device, dataset, model, config, timing)


def _train_and_score(run: RunSpec, directory: Path, *, progress: bool) -> RunOutcome:
    return _train_prepared(_prepare(run, directory, progress=progress), progress=progress)


def _train_prepared(prepared: _Prepared, *, progress: bool) -> RunOutcome:
    """Train a prepared run alone (resuming), then score and record it."""
    from disent_bench.train import train

    t0 = time.perf_counter()
    result = train(prepared.model, prepared.dataset, prepared.config, run_dir=prepared.directory, progress=progress)
    prepared.timing["train"] = time.perf_counter() - t0
    return _score_and_record(prepared, result, progress=progress)


def _score_and_record(prepared: _Prepared, result: Any, *, progress: bool, packed_with: int = 1) -> RunOutcome:
    """Score a trained run with every metric and representation, write metrics.json and DONE."""
    import torch

    from disent_bench import metrics as metric_lib

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
    results: dict[str, dict[str, float]] = {}
    eval_seconds = {}
    representations = list(run.eval["representation"])
    skipped_reps = []
    for representation in representations:
        if representation == "sampled" and not trained_model.has_variance:
            skipped_reps.append(representation)  # a deterministic encoder has no sampled code
            continue
        t1 = time.perf_counter()
        scores = metric_lib.evaluate(
            dataset, trained_model, metrics=tuple(run.eval["metrics"]), preset=run.eval["preset"],
            seed=run.seed, representation=representation, settings=run.eval.get("settings") or None,
            device=device, progress=progress)
        eval_seconds[representation] = time.perf_counter() - t1
        for key, value in scores.items():
            if key == "encoding_seconds":
                timing["encoding"] = timing.get("encoding", 0.0) + float(value)
            elif key.endswith(".seconds"):
                timing[key[:-len(".seconds")]] = timing.get(key[:-len(".seconds")], 0.0) + float(value)
        results[representation] = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in scores.items()}

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
        "provenance": {**provenance(device, dataset), "seed": run.seed, "packed_with": packed_with,
                       "eval_preset": run.eval["preset"], "torch_deterministic": torch.are_deterministic_algorithms_enabled()},
    }
    atomic_write_json(directory / METRICS, record)
    with contextlib.suppress(FileNotFoundError):
        (directory / ERROR).unlink()
    atomic_write_text(directory / DONE, record["provenance"]["date"] + "\n")
    return RunOutcome(run.id, "done", steps_trained=steps_trained,
                      images_per_second=float(result.images_per_s) if steps_trained else None,
                      extra={"timing": {k: round(v, 3) for k, v in timing.items()}})


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


def log(message: str) -> None:
    """One status line on stderr (through rich on a terminal, so it does not break progress bars)."""
    from disent_bench.progress import console, is_terminal

    if is_terminal():
        console.print(message, highlight=False, markup=False)
    else:
        print(message, file=sys.stderr, flush=True)


# -- planning (dry runs) ----------------------------------------------------------------------------
def stored_speeds(out_dir: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Measured speeds of finished runs under ``out_dir``, by model name and device.

    Returns ``{"<model>@<device>": {"images_per_second": ..., "eval_seconds": ...}}`` (medians).
    """
    import statistics

    speeds: dict[str, dict[str, list[float]]] = {}
    for path in sorted(Path(out_dir).glob("runs/*/" + METRICS)):
        record = read_metrics(path.parent)
        if record is None:
            continue
        try:
            config = record["config"]
            key = f"{config['model']['name']}@{record['provenance'].get('device', '?')}"
            train = record["train"]
            entry = speeds.setdefault(key, {"images_per_second": [], "eval_seconds": []})
            if train.get("steps_this_attempt") and train.get("seconds_this_attempt"):
                entry["images_per_second"].append(
                    train["steps_this_attempt"] * config["train"]["batch_size"] / train["seconds_this_attempt"])
            entry["eval_seconds"].append(sum(record.get("eval", {}).get("seconds", {}).values()))
        except (KeyError, TypeError, ZeroDivisionError):
            continue
    return {k: {name: statistics.median(vals) for name, vals in v.items() if vals} for k, v in speeds.items()}


def measure_images_per_second(run: RunSpec, steps: int = 3) -> float:
    """Training images/s of ``run``'s model on random images, from a few optimiser steps (after a warm-up)."""
    import torch

    from disent_bench import data, models
    from disent_bench.train import (TrainConfig, loss_takes_step, make_optimizers, prepare_model, resolve_device,
                                    training_step, use_channels_last)

    device = resolve_device(run.device)
    config = TrainConfig(**{**run.train, "device": str(device)})
    spec = data.get_spec(run.dataset["name"])
    height, width, channels = spec.image_shape
    model = models.build(run.model["name"], in_channels=channels, latent_dim=run.model["latent_dim"],
                         **run.model["params"])
    # The same layout and optimiser as train(): on a CPU channels-last is several times faster at batch 256.
    prepare_model(model, config, device)
    optimizers = make_optimizers(model, config)
    takes_step = loss_takes_step(model)
    batch = int(run.train["batch_size"])
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, channels, height, width, generator=generator) > 0.5).float().to(device)
    if use_channels_last(config, device):
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        training_step(model, optimizers, x, None, 0, takes_step)

    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch / (time.perf_counter() - start)


def plan(runs: list[RunSpec], out_dir: str | os.PathLike, *, measure: bool = True) -> list[dict[str, Any]]:
    """Status and estimated remaining seconds of every run (for ``run --dry-run``).

    The training estimate is remaining steps x batch size / images per second, with images/s taken from
    finished runs of the same model and device under ``out_dir`` when there are any, else measured with
    a few steps on random images (``measure=True``). Evaluation time comes from finished runs only.
    """
    from disent_bench.train import resolve_device

    stored = stored_speeds(out_dir)
    measured: dict[str, float] = {}
    rows = []
    for run in runs:
        status, step = run_status(run, out_dir)
        key = f"{run.model['name']}@{resolve_device(run.device)}"
        speed = stored.get(key, {})
        ips = speed.get("images_per_second")
        source = "stored" if ips else None
        if ips is None and measure and status not in ("done",):
            if key not in measured:
                measured[key] = measure_images_per_second(run)
            ips, source = measured[key], "measured"
        remaining_steps = 0 if status in ("done", "rescore") else int(run.train["steps"]) - int(step or 0)
        train_s = remaining_steps * int(run.train["batch_size"]) / ips if ips and remaining_steps else 0.0
        eval_s = speed.get("eval_seconds") if status != "done" else 0.0
        rows.append({"run": run, "status": status, "step": step, "remaining_steps": remaining_steps,
                     "images_per_second": ips, "speed_source": source,
                     "train_seconds": train_s, "eval_seconds": eval_s})
    return rows


def check_data(runs: list[RunSpec]) -> None:
    """Fail before any run starts (and before anything is written) when a requested official file is missing.

    Synthetic data is rendered on first use by the run that needs it; ``auto`` falls back to it.
    """
    from disent_bench import data

    for name, source in sorted({(run.dataset["name"], run.dataset["source"]) for run in runs}):
        if source == "official":
            data.verify_official(name)


# -- packs: runs trained together -------------------------------------------------------------------
#: ``[benchmark] pack = "auto"``: runs per pack by device. On a CPU packing does not pay (measured with
#: ``disent-bench speed --pack``: a pack of 4 trains about half as many images/s as runs alone); on CUDA
#: it turns kernel-launch-bound single runs into batched work.
AUTO_PACK = {"cpu": 1, "mps": 1, "cuda": 8}


def pack_size(run: RunSpec) -> int:
    """How many runs may train together with ``run``: the grid's ``pack`` (``"auto"``: by device)."""
    value = (run.resources or {}).get("pack", "auto")
    if value == "auto":
        from disent_bench.train import resolve_device

        try:
            kind = resolve_device(run.device).type
        except UserError:
            kind = "cpu"  # the run will fail with the device error itself
        return AUTO_PACK.get(kind, 1)
    return max(1, int(value))


def _pack_group(run: RunSpec) -> str | None:
    """Runs with equal groups may share a pack (None: this run trains alone)."""
    from disent_bench import models

    from disent_bench.train.packed import class_pack_problem

    try:
        cls = models.resolve(run.model["name"])
    except UserError:
        return None
    if class_pack_problem(cls):
        return None  # not packable: trained alone
    swept = set(getattr(cls, "hyper_parameter_names", ()))
    fixed = {k: v for k, v in run.model["params"].items() if k not in swept}
    train = {k: v for k, v in run.train.items() if k not in ("seed", "checkpoint_every", "log_every")}
    return json.dumps([run.dataset, run.model["name"], run.model["latent_dim"], fixed, train, run.device,
                       run_threads(run)], sort_keys=True, default=str)


def make_packs(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """The runs as units of work: packs of at most ``pack_size`` runs that can train together, in grid order."""
    groups: dict[str, list[RunSpec]] = {}
    units: list[list[RunSpec]] = []
    for run in runs:
        size = pack_size(run)
        key = _pack_group(run) if size > 1 else None
        if key is None:
            units.append([run])
            continue
        members = groups.get(key)
        if members is None or len(members) >= size:
            members = groups[key] = []
            units.append(members)
        members.append(run)
    return units


def execute_pack(runs: list[RunSpec] | list[Mapping[str, Any]], out_dir: str | os.PathLike, *,
                 progress: bool = False, wait: bool = False) -> list[RunOutcome]:
    """:func:`execute_run` for a pack: its runs train together where they stand at the same step, then each
    is scored and recorded on its own. Never raises for a failure of a run; returns an outcome per run."""
    runs = [run if isinstance(run, RunSpec) else RunSpec.from_json(run) for run in runs]
    if len(runs) == 1:
        return [execute_run(runs[0], out_dir, progress=progress, wait=wait)]
    start = time.perf_counter()
    outcomes: dict[str, RunOutcome] = {}
    with contextlib.ExitStack() as stack:
        mine: list[RunSpec] = []
        for run in runs:
            directory = run_dir(out_dir, run.id)
            if not stack.enter_context(claim(directory, wait=wait)):
                outcomes[run.id] = RunOutcome(run.id, "claimed")
            elif is_done(directory, run):
                outcomes[run.id] = RunOutcome(run.id, "skipped")
            else:
                mine.append(run)
        with cpu_threads(max(run_threads(run) for run in runs)):
            outcomes.update(_train_pack(mine, out_dir, progress=progress, start=start))
    return [outcomes[run.id] for run in runs]


def _train_pack(runs: list[RunSpec], out_dir, *, progress: bool, start: float) -> dict[str, RunOutcome]:
    from disent_bench.train import checkpoint_step as _checkpoint_step
    from disent_bench.train.packed import train_packed

    outcomes: dict[str, RunOutcome] = {}
    prepared: list[_Prepared] = []
    for run in runs:
        directory = run_dir(out_dir, run.id)
        try:
            prepared.append(_prepare(run, directory, progress=progress))
        except Exception as exc:  # noqa: BLE001 - this run fails; the pack goes on without it
            outcomes[run.id] = _failed(run, directory, exc, time.perf_counter() - start)
    # Only runs at the same step train together (a pack interrupted between two runs' checkpoints resumes
    # as smaller packs); a run whose checkpoint cannot be read trains alone and reports why.
    by_step: dict[int | None, list[_Prepared]] = {}
    for item in prepared:
        path = item.directory / CHECKPOINT
        try:
            step = _checkpoint_step(path) if path.exists() else 0
        except UserError:
            step = None
        by_step.setdefault(step, []).append(item)
    for step, group in by_step.items():
        if step is None or len(group) == 1:
            for item in group:
                outcomes[item.run.id] = _train_one(item, progress=progress, start=start)
            continue
        t0 = time.perf_counter()
        try:
            results = train_packed([item.model for item in group], group[0].dataset, [item.config for item in group],
                                   [item.directory for item in group], progress=progress)
        except UserError as exc:  # not packable after all (e.g. a user model with buffers): train alone
            log(f"warning: training {len(group)} runs alone instead of packed: {exc}")
            for item in group:
                outcomes[item.run.id] = _train_one(item, progress=progress, start=start)
            continue
        seconds = time.perf_counter() - t0
        for item, result in zip(group, results):
            item.timing["train"] = seconds / len(group)  # the pack's time, shared
            if isinstance(result, BaseException):
                outcomes[item.run.id] = _failed(item.run, item.directory, result, time.perf_counter() - start)
                continue
            try:
                outcome = _score_and_record(item, result, progress=progress, packed_with=len(group))
            except Exception as exc:  # noqa: BLE001
                outcome = _failed(item.run, item.directory, exc, time.perf_counter() - start)
            outcome.seconds = time.perf_counter() - start
            outcome.extra = {**outcome.extra, "packed_with": len(group)}
            outcomes[item.run.id] = outcome
    return outcomes


def _train_one(item: _Prepared, *, progress: bool, start: float) -> RunOutcome:
    try:
        outcome = _train_prepared(item, progress=progress)
    except Exception as exc:  # noqa: BLE001
        return _failed(item.run, item.directory, exc, time.perf_counter() - start)
    outcome.seconds = time.perf_counter() - start
    return outcome
