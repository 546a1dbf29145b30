"""How long the evaluation of a model takes here, metric by metric, and how fast it encodes.

``measure_eval`` scores the reference conv encoder (the β-VAE of :mod:`disent_bench.models.vae`,
randomly initialised from ``seed``: timing does not need a trained model, and its codes are float32
like a trained one's) with :func:`disent_bench.metrics.evaluate` at a metric preset (default: the
reference study's "paper" preset), and reports:

* the seconds of each metric, of the shared encoding pass and of the whole evaluation;
* encoding throughput (distinct images encoded per second, image gathering included) against the
  encoder's bare forward throughput: the same batch size, one pre-made batch, inference mode;
* optionally (``dci_baseline``) DCI's boosted trees both ways on the same codes, the paper-preset
  sample (10,000 train / 5,000 test codes of the same encoder): :mod:`disent_bench.metrics.dci.boosting`
  and scikit-learn's ``GradientBoostingClassifier`` with the same settings, with the largest difference
  between their importances and accuracies (0 when they agree).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

from disent_bench import models
from disent_bench.data import get_dataset
from disent_bench.devices import resolve_device, usable_cores
from disent_bench.errors import UserError
from disent_bench.metrics import dci, evaluate, parse_metrics
from disent_bench.metrics.presets import resolve_settings
from disent_bench.speed import _device_name, _sync
from disent_bench.train import TrainConfig, prepare_model

__all__ = ["measure_eval", "bare_encode_rate"]


def bare_encode_rate(model: models.BaseModel, channels: int, batch_size: int, device: torch.device,
                     batches: int = 10, repeats: int = 3) -> float:
    """Images/s of ``model.encode`` on one pre-made batch in inference mode (median of ``repeats``)."""
    batch = torch.rand((batch_size, channels, 64, 64), generator=torch.Generator().manual_seed(0)).to(device)
    rates = []
    with torch.inference_mode():
        model.encode(batch)  # warm-up
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            for _ in range(batches):
                model.encode(batch)
            _sync(device)
            rates.append(batches * batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def measure_eval(device: str = "auto", *, preset: str = "paper", metrics: str | list[str] | None = None,
                 dataset: str = "dsprites", source: str = "synthetic", seed: int = 0, batch_size: int = 1024,
                 dci_baseline: bool = False, threads: int | None = None, progress: bool = True,
                 data_dir=None) -> dict[str, Any]:
    """Time the ``preset`` evaluation of the reference encoder on ``dataset``; see the module docstring.

    ``threads``: torch's threads (the encoding) and the metrics' own (DCI's boosting) for the measurement;
    default: torch's setting as it is, and the cores this process may use for the metrics.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"speed: threads must be an integer >= 1, got {threads!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"speed: batch_size must be an integer >= 1, got {batch_size!r}")
    names = parse_metrics(metrics) if metrics is not None else None
    metric_threads = threads if threads is not None else usable_cores()
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        torch_device = resolve_device(device)
        data = get_dataset(dataset, source=source, data_dir=data_dir, progress=progress)
        channels = data.num_channels
        torch.manual_seed(seed)
        # Laid out as train() and load_model() leave a trained model (channels-last on a CPU).
        model = prepare_model(models.build("beta_vae", in_channels=channels, beta=4.0),
                              TrainConfig(steps=0, device=str(torch_device)), torch_device).eval()
        kwargs = {} if names is None else {"metrics": names}
        start = time.perf_counter()
        scores = evaluate(data, model, preset=preset, seed=seed, device=torch_device, progress=progress,
                          batch_size=batch_size, threads=metric_threads, **kwargs)
        total = time.perf_counter() - start
        metric_seconds = {key[:-len(".seconds")]: value for key, value in scores.items()
                          if key.endswith(".seconds")}
        encode_rate = scores["images_encoded"] / scores["encoding_seconds"]
        bare_rate = bare_encode_rate(model, channels, batch_size, torch_device)
        result: dict[str, Any] = {
            "device": str(torch_device), "device_name": _device_name(torch_device),
            "threads": torch.get_num_threads(), "metric_threads": metric_threads,
            "dataset": f"{dataset} ({data.source})", "preset": preset,
            "seconds": total, "encoding_seconds": scores["encoding_seconds"],
            "images_encoded": int(scores["images_encoded"]), "metric_seconds": metric_seconds,
            "encode_images_per_s": encode_rate, "bare_encode_images_per_s": bare_rate,
            "encode_ratio": encode_rate / bare_rate, "batch_size": batch_size, "scores": scores,
            "torch_version": str(torch.__version__),
        }
        if dci_baseline:
            result["dci_baseline"] = _dci_both_ways(data, model, preset, seed, torch_device, batch_size,
                                                    metric_threads)
        return result
    finally:
        torch.set_num_threads(before)


def _dci_both_ways(data, model, preset: str, seed: int, device: torch.device, batch_size: int,
                   threads: int) -> dict[str, Any]:
    """DCI's classifiers on the preset's sample of codes, re-implemented (on ``threads`` threads) and with
    scikit-learn."""
    settings = resolve_settings(["dci"], preset, None)["dci"]
    rng = np.random.default_rng(seed)
    draws = dci.draw(data, settings, rng)

    def codes(indices: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(indices), batch_size):
                mu, _ = model.encode(data.batch(torch.as_tensor(indices[start:start + batch_size]), device))
                out.append(mu.float().cpu().numpy().astype(np.float64))
        return np.concatenate(out)

    train, test = draws["train"], draws["test"]
    args = (codes(train), data.factors_of(train), codes(test), data.factors_of(test), seed)
    timings, results = {}, {}
    for estimator in dci.ESTIMATORS:
        start = time.perf_counter()
        results[estimator] = dci.importance_gbt(*args, estimator=estimator, n_threads=threads)
        timings[estimator] = time.perf_counter() - start
    exact, reference = results["exact"], results["sklearn"]
    return {"num_train": len(train), "num_test": len(test), "factor_sizes": list(data.factor_sizes),
            "exact_seconds": timings["exact"], "sklearn_seconds": timings["sklearn"],
            "speedup": timings["sklearn"] / timings["exact"],
            "max_importance_difference": float(np.max(np.abs(exact[0] - reference[0]))),
            "accuracy_differences": [exact[1] - reference[1], exact[2] - reference[2]]}
