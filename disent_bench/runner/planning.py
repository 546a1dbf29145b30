"""Planning (``run --dry-run``): every run's status from its folder, and how long the rest will take.

Speeds come from finished runs of the same model and device when there are any, else from a few
optimiser steps measured on random images; nothing here trains or writes.

The run store is read with one listing of its ``runs/`` folder: a run whose folder is not listed is
pending without touching the disk, so planning a grid of millions of runs costs one hash and one set
look-up per run, plus the files of the runs that have a folder. :func:`plan` gives one row per run (the
``--list`` table); :func:`summarize` walks the runs one at a time and keeps only counts and sums, so its
memory does not grow with the grid.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from disent_bench import data, models
from disent_bench.devices import resolve_device
from disent_bench.errors import UserError
from disent_bench.grid import RunSpec
from disent_bench.run_store import read_metrics, run_status
from disent_bench.train import (TrainConfig, loss_takes_step, make_optimizers, prepare_model, training_step,
                                use_channels_last)

__all__ = ["stored_run_folders", "stored_speeds", "measure_images_per_second", "plan", "summarize",
           "PlanSummary", "STATUS_ORDER", "check_data"]

#: The statuses of :func:`~disent_bench.run_store.run_status`, in the order a summary shows them.
STATUS_ORDER = ("done", "rescore", "running", "partial", "failed", "pending")


def stored_run_folders(out_dir: str | os.PathLike) -> frozenset[str]:
    """The names of the run folders under ``out_dir/runs``, from one directory listing (empty when none)."""
    try:
        with os.scandir(Path(out_dir) / "runs") as entries:
            # is_dir() answers from the listing itself (the entry's type) on the usual file systems: no stat.
            return frozenset(entry.name for entry in entries if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()


def stored_speeds(out_dir: str | os.PathLike, folders: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
    """Measured speeds of finished runs under ``out_dir``, by model name and device.

    ``folders``: the run folders to read (:func:`stored_run_folders`, listed when not given).
    Returns ``{"<model>@<device>": {"images_per_second": ..., "eval_seconds": ...}}`` (medians).
    """
    speeds: dict[str, dict[str, list[float]]] = {}
    runs = Path(out_dir) / "runs"
    for name in sorted(stored_run_folders(out_dir) if folders is None else folders):
        record = read_metrics(runs / name)  # None for a folder without metrics.json (not finished)
        if record is None:
            continue
        try:
            config = record["config"]
            key = f"{config['model']['name']}@{record['provenance'].get('device', '?')}"
            train = record["train"]
            entry = speeds.setdefault(key, {"images_per_second": [], "eval_seconds": []})
            if train.get("steps_this_attempt") and train.get("seconds_this_attempt"):
                entry["images_per_second"].append(train["steps_this_attempt"] * config["train"]["batch_size"]
                                                  * _images_per_example(config["model"]["name"])
                                                  / train["seconds_this_attempt"])
            entry["eval_seconds"].append(sum(record.get("eval", {}).get("seconds", {}).values()))
        except (KeyError, TypeError, ZeroDivisionError):
            continue
    return {k: {name: statistics.median(vals) for name, vals in v.items() if vals} for k, v in speeds.items()}


def _images_per_example(model_name: str) -> int:
    """2 for a model trained on pairs (a pair is two images), else 1; 1 for a model that cannot be loaded."""
    try:
        return models.resolve(model_name).images_per_example()
    except UserError:
        return 1


def measure_images_per_second(run: RunSpec, steps: int = 3) -> float:
    """Training images/s of ``run``'s model on random images, from a few optimiser steps (after a warm-up)."""
    device = resolve_device(run.device)
    config = TrainConfig(**{**run.train, "device": str(device)})
    height, width, channels = data.get_spec(run.dataset["name"]).image_shape
    model = models.build(run.model["name"], in_channels=channels, latent_dim=run.model["latent_dim"],
                         **run.model["params"])
    # The same layout and optimiser as train(): on a CPU channels-last is several times faster at batch 256.
    prepare_model(model, config, device)
    optimizers = make_optimizers(model, config)
    takes_step = loss_takes_step(model)
    batch = int(run.train["batch_size"])
    per_example = model.images_per_example()  # a pair model's example is two images
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(batch * per_example, channels, height, width, generator=generator) > 0.5).float().to(device)
    if use_channels_last(config, device):
        x = x.contiguous(memory_format=torch.channels_last)
    extra = {}
    if per_example == 2:
        x = x.reshape(2, batch, channels, height, width).transpose(0, 1)
        extra = {"labels": torch.zeros(batch, dtype=torch.int64, device=device)}

    def step() -> None:
        training_step(model, optimizers, x, None, 0, takes_step, extra)

    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch * per_example / (time.perf_counter() - start)


class _Estimator:
    """A run's status and estimate; what is the same for many runs (the listing, the speeds, a model's images
    per example, a device's name) is looked up once."""

    def __init__(self, out_dir: str | os.PathLike, measure: bool) -> None:
        self.out_dir = out_dir
        self.measure = measure
        self.folders = stored_run_folders(out_dir)
        self.stored = stored_speeds(out_dir, self.folders)
        self.measured: dict[str, float] = {}
        self.devices: dict[str, str] = {}
        self.per_example: dict[str, int] = {}

    def status(self, run: RunSpec) -> tuple[str, int | None]:
        if run.id not in self.folders:
            return "pending", None  # no folder: nothing to read
        return run_status(run, self.out_dir)

    def row(self, run: RunSpec) -> dict[str, Any]:
        status, step = self.status(run)
        device = self.devices.get(run.device)
        if device is None:
            device = self.devices[run.device] = str(resolve_device(run.device))
        name = run.model["name"]
        key = f"{name}@{device}"
        speed = self.stored.get(key, {})
        ips = speed.get("images_per_second")
        source = "stored" if ips else None
        if ips is None and self.measure and status not in ("done",):
            if key not in self.measured:
                self.measured[key] = measure_images_per_second(run)
            ips, source = self.measured[key], "measured"
        if name not in self.per_example:
            self.per_example[name] = _images_per_example(name)
        remaining_steps = 0 if status in ("done", "rescore") else int(run.train["steps"]) - int(step or 0)
        images = remaining_steps * int(run.train["batch_size"]) * self.per_example[name]
        train_s = images / ips if ips and remaining_steps else 0.0
        eval_s = speed.get("eval_seconds") if status != "done" else 0.0
        return {"run": run, "status": status, "step": step, "remaining_steps": remaining_steps,
                "images_per_second": ips, "speed_source": source,
                "train_seconds": train_s, "eval_seconds": eval_s}


def plan(runs: Iterable[RunSpec], out_dir: str | os.PathLike, *, measure: bool = True) -> list[dict[str, Any]]:
    """Status and estimated remaining seconds of every run (for ``run --dry-run --list``).

    The training estimate is remaining steps x batch size / images per second, with images/s taken from
    finished runs of the same model and device under ``out_dir`` when there are any, else measured with
    a few steps on random images (``measure=True``). Evaluation time comes from finished runs only.
    """
    estimator = _Estimator(out_dir, measure)
    return [estimator.row(run) for run in runs]


@dataclass
class PlanSummary:
    """Counts and estimates of many runs (``run --dry-run``): a few numbers per status, model and dataset."""

    runs: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    #: model name -> status -> runs; dataset name -> status -> runs
    by_model: dict[str, dict[str, int]] = field(default_factory=dict)
    by_dataset: dict[str, dict[str, int]] = field(default_factory=dict)
    #: estimated seconds left, in all and by model and dataset
    seconds: float = 0.0
    seconds_by_model: dict[str, float] = field(default_factory=dict)
    seconds_by_dataset: dict[str, float] = field(default_factory=dict)
    #: some unfinished run's evaluation could not be timed (no finished run of its model and device)
    unknown_eval: bool = False
    #: model name -> (images per second, "stored" or "measured")
    speeds: dict[str, tuple[float, str]] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        """Count one :func:`plan` row."""
        run, status = row["run"], row["status"]
        model = run.model["name"]
        dataset = run.dataset["name"] + (" (correlated)" if run.dataset.get("correlations") else "")
        seconds = row["train_seconds"] + (row["eval_seconds"] or 0.0)
        if status != "done" and row["eval_seconds"] is None:
            self.unknown_eval = True
        self.runs += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        for table, name in ((self.by_model, model), (self.by_dataset, dataset)):
            counts = table.setdefault(name, {})
            counts[status] = counts.get(status, 0) + 1
        self.seconds += seconds
        self.seconds_by_model[model] = self.seconds_by_model.get(model, 0.0) + seconds
        self.seconds_by_dataset[dataset] = self.seconds_by_dataset.get(dataset, 0.0) + seconds
        if row["images_per_second"]:
            self.speeds[model] = (row["images_per_second"], row["speed_source"])


def summarize(runs: Iterable[RunSpec], out_dir: str | os.PathLike, *, measure: bool = True) -> PlanSummary:
    """:func:`plan`'s rows counted as they come: memory bounded by the grid's models and datasets, not its runs."""
    estimator = _Estimator(out_dir, measure)
    summary = PlanSummary()
    for run in runs:
        summary.add(estimator.row(run))
    return summary


def check_data(runs: list[RunSpec]) -> None:
    """Fail before any run starts (and before anything is written) when a requested official file is missing.

    Synthetic data is rendered on first use by the run that needs it; ``auto`` falls back to it.
    """
    for name, source in sorted({(run.dataset["name"], run.dataset["source"]) for run in runs}):
        if source == "official":
            data.verify_official(name)
