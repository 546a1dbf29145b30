"""How fast training runs here, and how close the training loop comes to a bare optimiser loop.

``measure_speed`` times, on the same model, batch size and device:

* the real training loop, :func:`disent_bench.train.train` (sampling indices, gathering and
  converting images from the in-memory uint8 store, the loss, backward, Adam, loss bookkeeping);
* a bare loop: forward, backward and Adam on one pre-made batch, nothing else: the ceiling (for a
  model with auxiliary optimisers, e.g. FactorVAE's discriminator, their updates count in both);
* encoding (what the metrics spend their time on): gather + encoder mean, no gradients.

The two training loops are interleaved repeat by repeat (alternating which goes first), so a
machine shared with other work slows both alike; the ratio is the median of the per-repeat ratios.
``ratio_cpu_time`` is the same ratio from process CPU time, which contention disturbs far less.
The data is a small in-memory set of random images stored as the real datasets are (bit-packed for
1 channel, uint8 RGB for 3), so no dataset has to be downloaded or rendered.
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import numpy as np
import torch

from disent_bench import models
from disent_bench.data.base import GroundTruthData
from disent_bench.errors import UserError
from disent_bench.train import (TrainConfig, loss_takes_step, make_optimizers, prepare_model, resolve_device,
                                train, training_step, use_channels_last)
from disent_bench.train.packed import train_packed
from disent_bench.train.sampling import draw_step_input

__all__ = ["measure_speed", "measure_pack_speed", "speed_dataset"]


def speed_dataset(channels: int = 1, num_images: int = 4096, seed: int = 0) -> GroundTruthData:
    """Random 64x64 images in the in-memory layout of the real datasets (bit-packed when ``channels == 1``)."""
    if channels not in (1, 3):
        raise UserError(f"speed: channels must be 1 or 3, got {channels}")
    rng = np.random.default_rng(seed)
    # Three factors of 16 values (4096 images) so that pairs can differ in some and agree on others.
    names, sizes = (["a", "b", "c"], [16, 16, 16]) if num_images == 4096 else (["index"], [num_images])
    if channels == 1:
        store = rng.integers(0, 256, size=(num_images, 64, 8), dtype=np.uint8)
        return GroundTruthData("speed_random", "synthetic", names, sizes, store, packed_bits=True)
    store = rng.integers(0, 256, size=(num_images, 64, 64, 3), dtype=np.uint8)
    return GroundTruthData("speed_random", "synthetic", names, sizes, store)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # Linux: the CPU model, e.g. "AMD EPYC 7B13"
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_speed(device: str | torch.device = "auto", batch_size: int = 64, steps: int = 20, *,
                  repeats: int = 3, model: str = "beta_vae", channels: int = 1, warmup_steps: int = 3,
                  encode_batch_size: int = 256, channels_last: bool | None = None,
                  seed: int = 0, threads: int | None = None) -> dict[str, Any]:
    """Images/s of the training loop, of a bare loop and of encoding; see the module docstring.

    ``threads``: torch's CPU thread count during the measurement (default: as it is).
    Returns a JSON-able dict with ``device``, ``batch_size``, ``train_images_per_s``,
    ``bare_images_per_s``, ``ratio`` (train / bare), ``encode_images_per_s`` and the raw repeats.
    """
    for key, value, low in (("batch_size", batch_size, 1), ("steps", steps, 1), ("repeats", repeats, 1),
                            ("warmup_steps", warmup_steps, 0), ("encode_batch_size", encode_batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"speed: {key} must be an integer >= {low}, got {value!r}")
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise UserError(f"speed: threads must be an integer >= 1, got {threads!r}")
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        return _measure(device, batch_size, steps, repeats, model, channels, warmup_steps, encode_batch_size,
                        channels_last, seed)
    finally:
        torch.set_num_threads(before)


def _measure(device, batch_size: int, steps: int, repeats: int, model: str, channels: int, warmup_steps: int,
             encode_batch_size: int, channels_last: bool | None, seed: int) -> dict[str, Any]:
    torch_device = resolve_device(device)
    dataset = speed_dataset(channels)
    pairs = models.resolve(model).images_per_example() == 2  # a weak model: trained on pairs, beta and k = random
    params = {"beta": 4.0} if model in ("beta_vae", "beta_tc_vae") or pairs else {}
    config = TrainConfig(steps=steps, batch_size=batch_size, seed=seed, device=str(torch_device),
                         log_every=steps, checkpoint_every=steps, channels_last=channels_last)

    # The bare loop: one batch made up front, then only forward, backward and the optimiser step.
    bare_model = prepare_model(models.build(model, in_channels=channels, **params), config, torch_device)
    bare_model.train()
    bare_optimizers = make_optimizers(bare_model, config)
    takes_step = loss_takes_step(bare_model)
    noise = torch.Generator(device=torch_device).manual_seed(seed)
    # One step's input drawn up front, as the loop draws it (a weak model's: pairs and their labels).
    batch, extra = draw_step_input(bare_model, dataset, batch_size, torch.Generator().manual_seed(seed),
                                   torch.device("cpu"), None)
    batch = batch.to(torch_device)
    extra = {key: value.to(torch_device) for key, value in extra.items()}
    per_step = batch_size * bare_model.images_per_example()  # a pair is two images

    def bare(n: int) -> tuple[float, float]:
        _sync(torch_device)
        start, cpu_start = time.perf_counter(), time.process_time()
        for i in range(n):
            training_step(bare_model, bare_optimizers, batch, noise, i, takes_step, extra)
        _sync(torch_device)
        return time.perf_counter() - start, time.process_time() - cpu_start

    train_model = models.build(model, in_channels=channels, **params)

    def loop(n: int) -> tuple[float, float]:
        # The whole call is timed: set-up (weight init, optimiser) counts against the loop.
        start, cpu_start = time.perf_counter(), time.process_time()
        train(train_model, dataset, TrainConfig(**{**config.to_dict(), "steps": n, "log_every": max(n, 1),
                                                   "checkpoint_every": max(n, 1)}), progress=False)
        _sync(torch_device)
        return time.perf_counter() - start, time.process_time() - cpu_start

    if warmup_steps:
        bare(warmup_steps)
        loop(warmup_steps)
    train_rates, bare_rates, ratios, cpu_ratios, setups, step_ratios = [], [], [], [], [], []
    for repeat in range(repeats):
        if repeat % 2 == 0:
            (b, b_cpu), (t, t_cpu) = bare(steps), loop(steps)
        else:
            (t, t_cpu), (b, b_cpu) = loop(steps), bare(steps)
        # A train() call of no steps: the set-up every call pays once (weights drawn from the seed,
        # memory layout, optimisers), which a short timing counts against the loop.
        _, setup_cpu = loop(0)
        train_rates.append(steps * per_step / t)
        bare_rates.append(steps * per_step / b)
        ratios.append(train_rates[-1] / bare_rates[-1])
        cpu_ratios.append(b_cpu / t_cpu if t_cpu > 0 else float("nan"))
        setups.append(setup_cpu)
        step_ratios.append(b_cpu / (t_cpu - setup_cpu) if t_cpu > setup_cpu else float("nan"))

    encode_rate = _encode_speed(train_model, dataset, torch_device, encode_batch_size, steps, seed)
    return {
        "device": str(torch_device),
        "device_name": _device_name(torch_device),
        "threads": torch.get_num_threads(),
        "model": model,
        "channels": channels,
        "channels_last": use_channels_last(config, torch_device),
        "batch_size": batch_size,
        "steps": steps,
        "repeats": repeats,
        "train_images_per_s": statistics.median(train_rates),
        "bare_images_per_s": statistics.median(bare_rates),
        "ratio": statistics.median(ratios),
        # Bare / loop process CPU time: the work ratio, much less disturbed than wall time when other
        # processes share the cores (meaningful on the CPU device; on GPUs it is host time only).
        "ratio_cpu_time": statistics.median(cpu_ratios),
        # The same with the set-up of the call taken out: the loop's steps against the bare steps.
        "setup_cpu_seconds": statistics.median(setups),
        "ratio_cpu_time_steps": statistics.median(step_ratios),
        "encode_images_per_s": encode_rate,
        "encode_batch_size": encode_batch_size,
        "train_images_per_s_repeats": train_rates,
        "bare_images_per_s_repeats": bare_rates,
        "torch_version": str(torch.__version__),
    }


def _encode_speed(model: models.BaseModel, dataset: GroundTruthData, device: torch.device, batch_size: int,
                  batches: int, seed: int) -> float:
    """Images/s of gathering + encoding (the mean code), the inner loop of every metric."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    batches = max(2, min(batches, 20))

    def run(n: int) -> None:
        for _ in range(n):
            indices = torch.randint(len(dataset), (batch_size,), generator=generator, device=device)
            mu, _ = model.encode(dataset.batch(indices, device))
        _sync(device)

    with torch.inference_mode():
        run(1)  # warm-up
        start = time.perf_counter()
        run(batches)
        seconds = time.perf_counter() - start
    return batches * batch_size / seconds


def measure_pack_speed(device: str | torch.device = "auto", pack: int = 4, batch_size: int = 64, steps: int = 10, *,
                       repeats: int = 3, model: str = "beta_vae", channels: int = 1, warmup_steps: int = 2,
                       seed: int = 0, threads: int | None = None) -> dict[str, Any]:
    """Images/s of ``pack`` runs trained packed (:func:`disent_bench.train.packed.train_packed`) against one run alone.

    Both through the real loops (set-up included), interleaved repeat by repeat. Returns ``alone_images_per_s``
    (one run by :func:`train`), ``pack_images_per_s`` (all runs of the pack together), ``per_run_images_per_s``
    and ``speedup`` (pack total / alone).
    """
    for key, value, low in (("pack", pack, 1), ("batch_size", batch_size, 1), ("steps", steps, 1),
                            ("repeats", repeats, 1), ("warmup_steps", warmup_steps, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"speed: {key} must be an integer >= {low}, got {value!r}")
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        torch_device = resolve_device(device)
        dataset = speed_dataset(channels)
        params = {"beta": 4.0} if model in ("beta_vae", "beta_tc_vae") else {}

        def config(n: int, s: int) -> TrainConfig:
            return TrainConfig(steps=n, batch_size=batch_size, seed=s, device=str(torch_device), log_every=n,
                               checkpoint_every=n)

        def alone(n: int) -> float:
            start = time.perf_counter()
            train(models.build(model, in_channels=channels, **params), dataset, config(n, seed), progress=False)
            _sync(torch_device)
            return time.perf_counter() - start

        def packed(n: int) -> float:
            members = [models.build(model, in_channels=channels, **params) for _ in range(pack)]
            start = time.perf_counter()
            train_packed(members, dataset, [config(n, seed + i) for i in range(pack)], progress=False)
            _sync(torch_device)
            return time.perf_counter() - start

        if warmup_steps:
            alone(warmup_steps)
            packed(warmup_steps)
        alone_rates, pack_rates = [], []
        for repeat in range(repeats):
            if repeat % 2 == 0:
                a, p = alone(steps), packed(steps)
            else:
                p, a = packed(steps), alone(steps)
            alone_rates.append(steps * batch_size / a)
            pack_rates.append(steps * batch_size * pack / p)
        alone_rate, pack_rate = statistics.median(alone_rates), statistics.median(pack_rates)
        return {"device": str(torch_device), "device_name": _device_name(torch_device),
                "threads": torch.get_num_threads(), "model": model, "pack": pack, "batch_size": batch_size,
                "steps": steps, "repeats": repeats, "alone_images_per_s": alone_rate,
                "pack_images_per_s": pack_rate, "per_run_images_per_s": pack_rate / pack,
                "speedup": pack_rate / alone_rate, "torch_version": str(torch.__version__)}
    finally:
        torch.set_num_threads(before)
