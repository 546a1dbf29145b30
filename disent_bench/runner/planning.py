"""Planning (``run --dry-run``): every run's status from its folder, and how long the rest will take.

Speeds come from finished runs of the same model and device when there are any, else from a few
optimiser steps measured on random images; nothing here trains or writes.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from disent_bench import data, models
from disent_bench.devices import resolve_device
from disent_bench.errors import UserError
from disent_bench.grid import RunSpec
from disent_bench.run_store import METRICS, read_metrics, run_status
from disent_bench.train import (TrainConfig, loss_takes_step, make_optimizers, prepare_model, training_step,
                                use_channels_last)

__all__ = ["stored_speeds", "measure_images_per_second", "plan", "check_data"]


def stored_speeds(out_dir: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Measured speeds of finished runs under ``out_dir``, by model name and device.

    Returns ``{"<model>@<device>": {"images_per_second": ..., "eval_seconds": ...}}`` (medians).
    """
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


def plan(runs: list[RunSpec], out_dir: str | os.PathLike, *, measure: bool = True) -> list[dict[str, Any]]:
    """Status and estimated remaining seconds of every run (for ``run --dry-run``).

    The training estimate is remaining steps x batch size / images per second, with images/s taken from
    finished runs of the same model and device under ``out_dir`` when there are any, else measured with
    a few steps on random images (``measure=True``). Evaluation time comes from finished runs only.
    """
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
        images = remaining_steps * int(run.train["batch_size"]) * _images_per_example(run.model["name"])
        train_s = images / ips if ips and remaining_steps else 0.0
        eval_s = speed.get("eval_seconds") if status != "done" else 0.0
        rows.append({"run": run, "status": status, "step": step, "remaining_steps": remaining_steps,
                     "images_per_second": ips, "speed_source": source,
                     "train_seconds": train_s, "eval_seconds": eval_s})
    return rows


def check_data(runs: list[RunSpec]) -> None:
    """Fail before any run starts (and before anything is written) when a requested official file is missing.

    Synthetic data is rendered on first use by the run that needs it; ``auto`` falls back to it.
    """
    for name, source in sorted({(run.dataset["name"], run.dataset["source"]) for run in runs}):
        if source == "official":
            data.verify_official(name)
