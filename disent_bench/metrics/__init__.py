"""Disentanglement metrics of the reference protocol (Locatello et al. 2019), computed with one encoding pass.

``evaluate(dataset, encoder, metrics=..., preset="paper", seed=0)`` returns a flat dict of floats with
keys ``"<metric>.<name>"`` (e.g. ``"mig.score"``, ``"beta_vae.eval_accuracy"``, ``"dci.seconds"``) plus
``"images_encoded"`` (distinct images encoded for the whole evaluation), ``"encoding_seconds"`` (the
shared encoding pass, not included in any ``"<metric>.seconds"``) and ``"seconds"`` (everything).

How: every metric first draws, vectorised, all the image indices it will need, from its own numpy
generator derived from ``seed`` (so a metric's numbers do not depend on which other metrics run with it);
the union of those indices is encoded once in large batches (:mod:`disent_bench.metrics.cache`); then
each metric computes its estimator from cached codes. At paper settings on dSprites the suite would
encode ~3 million images in the reference; here it encodes at most the 737,280 the dataset holds.

Datasets with per-observation nuisance (``dataset.has_nuisance``: color, noisy and scream dSprites,
SmallNORB) are the exception: there two draws of one factor row are two different images, so every
drawn occurrence is encoded as an observation of its own (:class:`~disent_bench.metrics.cache.ObservationSet`),
with nuisance keyed by the seed, the metric and the occurrence. ``images_encoded`` is then the total
number of draws (the sum of every metric's sample sizes, e.g. ~3 million at paper settings, as many as
the reference encodes) instead of the number of distinct indices, and the encoding costs that much more
plus the nuisance itself: measured on one core of the 2-core AMD EPYC test machine, batches of 1024 cost
77 us an image for color, 108 for noisy and 127 for scream dSprites against 14 for plain dSprites (so ~5
minutes of nuisance for the ~3 million draws of the paper preset, beside the encoder's own time).

The estimators, their settings and the presets: :mod:`~disent_bench.metrics.beta_vae`,
:mod:`~disent_bench.metrics.factor_vae`, :mod:`~disent_bench.metrics.mig`, :mod:`~disent_bench.metrics.dci`,
:mod:`~disent_bench.metrics.sap`, :mod:`~disent_bench.metrics.modularity`,
:mod:`~disent_bench.metrics.reconstruction`, :mod:`~disent_bench.metrics.unsupervised` (no labels: total
correlation, Wasserstein dependency and mutual information of the codes); the rest of the study's evaluation,
:mod:`~disent_bench.metrics.downstream` (downstream-task accuracy and sample efficiency), and the metrics
reported since, :mod:`~disent_bench.metrics.irs`, :mod:`~disent_bench.metrics.mig_sup`,
:mod:`~disent_bench.metrics.jemmig`, :mod:`~disent_bench.metrics.dcimig`, :mod:`~disent_bench.metrics.infomec`;
:mod:`~disent_bench.metrics.presets`. UDR needs several models at once, so it is not one of these:
:mod:`~disent_bench.metrics.udr` is its estimator, which the report runs per setting.
What a metric module must provide, and how to add one: :mod:`~disent_bench.metrics.interface`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import sklearn
import torch

from disent_bench.data.base import GroundTruthData
from disent_bench.devices import resolve_device, usable_cores
from disent_bench.errors import UserError
from disent_bench.metrics import (beta_vae, dci, dcimig, downstream, factor_vae, infomec, irs, jemmig, mig, mig_sup,
                                  modularity, reconstruction, sap, unsupervised)
from disent_bench.metrics.cache import (CodeView, Encoder, ObservationSet, RepresentationCache, can_decode, is_model,
                                       model_device)
from disent_bench.metrics.interface import LABELS_SUFFIX, Metric
from disent_bench.metrics.presets import PRESETS, resolve_settings
from disent_bench.progress import ProgressReporter

__all__ = ["evaluate", "available", "parse_metrics", "PRESETS", "DEFAULT_METRICS", "REPRESENTATIONS", "versions",
           "Metric"]

# Order matters: a metric's position here fixes its random stream (SeedSequence spawn key), so a new
# metric goes at the end and the numbers of the others do not change. Each module is a Metric
# (disent_bench.metrics.interface).
_MODULES: dict[str, Metric] = {module.NAME: module for module in (beta_vae, factor_vae, mig, dci, sap, modularity,
                                                                  reconstruction, unsupervised, downstream, irs,
                                                                  mig_sup, jemmig, dcimig, infomec)}
DEFAULT_METRICS: tuple[str, ...] = tuple(_MODULES)
REPRESENTATIONS = ("mean", "sampled")


def available() -> list[str]:
    """Names of the metrics :func:`evaluate` computes."""
    return list(_MODULES)


def versions() -> dict[str, str]:
    """Library versions to record with every result (several sklearn estimators changed defaults)."""
    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "torch": torch.__version__}


def parse_metrics(metrics: str | Sequence[str]) -> list[str]:
    """Checked metric names from a list or a comma-separated string (UserError naming the unknown ones)."""
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    names = list(dict.fromkeys(metrics))  # drop repeats, keep order
    if not names:
        raise UserError(f"no metrics given; valid metrics: {', '.join(_MODULES)}")
    unknown = [m for m in names if m not in _MODULES]
    if unknown:
        raise UserError(f"unknown metric{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                        f"valid metrics: {', '.join(_MODULES)}")
    return names


def _resolve_device(encoder: object, device) -> torch.device:
    if device is not None:
        return resolve_device(str(device)) if not isinstance(device, torch.device) else device
    if isinstance(encoder, torch.nn.Module):
        return model_device(encoder)
    return torch.device("cpu")


def evaluate(dataset: GroundTruthData, encoder, metrics: str | Sequence[str] = DEFAULT_METRICS,
             preset: str = "paper", seed: int = 0, representation: str = "mean",
             settings: Mapping[str, Mapping[str, object]] | None = None, device=None,
             progress: bool = True, batch_size: int = 1024, threads: int | None = None) -> dict[str, float]:
    """Score ``encoder`` on ``dataset`` with the chosen metrics.

    Parameters
    ----------
    dataset:
        A :class:`~disent_bench.data.GroundTruthData` (full-factorial: a factor row is an image index).
    encoder:
        A disent-bench model (a torch module with ``encode(x) -> (mu, logvar)`` and ``decode(z) -> logits``),
        any other torch module mapping images ``(n, C, H, W)`` in [0, 1] to codes ``(n, D)``, or any
        callable doing the same on a float32 numpy array (numpy or torch output).
    metrics:
        Names from :func:`available` (a list, or one comma-separated string).
    preset, settings:
        ``"paper"`` (reference defaults) or ``"quick"``; ``settings`` overrides per metric, e.g.
        ``{"factor_vae": {"num_train": 2000}}``. See :mod:`disent_bench.metrics.presets`.
    seed:
        Everything random (samples, sampled-code noise, sklearn estimators) derives from it.
    representation:
        ``"mean"`` (headline) or ``"sampled"`` (``mean + std * eps``, fresh noise on every use; needs an
        encoder with a variance).
    device:
        Where to encode; default: the model's device (CPU for plain callables).
    batch_size:
        Images per encoder call.
    threads:
        CPU threads a metric may use for itself (DCI's boosting); default: the cores this process may
        use. It changes the speed only, never a number. (The encoding runs with torch's own thread
        setting, which the caller controls.)
    """
    start = time.perf_counter()
    names = parse_metrics(metrics)
    if representation not in REPRESENTATIONS:
        raise UserError(f"unknown representation {representation!r}; valid: {', '.join(REPRESENTATIONS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise UserError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or threads < 1):
        raise UserError(f"threads must be an integer >= 1 (or None: the usable cores), got {threads!r}")
    if not isinstance(dataset, GroundTruthData):
        raise UserError(f"dataset must be a GroundTruthData (see disent_bench.data.get_dataset), "
                        f"got {type(dataset).__name__}")
    chosen = resolve_settings(names, preset, settings)
    decoding = [name for name in names if "model" in _MODULES[name].NEEDS]
    if decoding and not can_decode(encoder):
        for name in decoding:
            warnings.warn(f"{name} skipped: the encoder has no decoder (model.decode); "
                          "it needs a model, not an encoder-only callable", stacklevel=2)
            names.remove(name)
        if not names:
            raise UserError(f"only {', '.join(decoding)} was asked for, and it needs a model with a decoder "
                            "(encode and decode); this encoder has no decode()")
    if representation == "sampled" and not is_model(encoder):
        raise UserError("representation='sampled' needs an encoder that returns a variance "
                        "(a model with encode(x) -> (mu, logvar)); use representation='mean'")
    if representation == "sampled" and getattr(encoder, "has_variance", True) is False:
        raise UserError("representation='sampled' needs an encoder with a variance (a VAE); "
                        "this model is deterministic: use representation='mean'")

    device = _resolve_device(encoder, device)
    # What a metric may ask for besides its codes: its NEEDS, from disent_bench.metrics.interface.EXTRAS.
    extras = {"model": encoder, "device": device,
              "threads": int(threads) if threads is not None else usable_cores()}
    # One independent stream per metric, fixed by the metric's place in the canonical list.
    # Each stream splits into (samples, sampled-code noise, sklearn random_state).
    # The fourth child keys the nuisance of datasets that draw some per observation (spawning it does not
    # change the first three, so results on other datasets are unchanged).
    streams = {name: np.random.SeedSequence(int(seed), spawn_key=(i,)).spawn(4)
               for i, name in enumerate(_MODULES) if name in names}
    # Per-observation nuisance: every draw is an observation of its own (see ObservationSet); the metrics
    # see observation ids where they would see image indices.
    observations = ObservationSet(dataset) if getattr(dataset, "has_nuisance", False) else None
    views = {name: observations.drawer(int(streams[name][3].generate_state(1, np.uint64)[0]))
             if observations is not None else dataset for name in names}
    draws: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        draws[name] = _MODULES[name].draw(views[name], chosen[name], np.random.default_rng(streams[name][0]))
    encoded = observations if observations is not None else dataset
    # Every drawn array is image indices except the "*_labels" ones (the factor a point is about).
    needed = np.zeros(len(encoded), dtype=bool)  # a mask, not np.unique: O(n) for millions of draws
    for d in draws.values():
        for key, array in d.items():
            if not key.endswith(LABELS_SUFFIX):
                needed[array.ravel()] = True
    union = np.flatnonzero(needed)

    result: dict[str, float] = {}
    # Encode in eval mode on ``device``; the model's mode and device are restored afterwards.
    is_module = isinstance(encoder, torch.nn.Module)
    was_training = encoder.training if is_module else False
    home = model_device(encoder) if is_module else None
    if is_module:
        encoder.eval()
        if home != device:
            encoder.to(device)
    try:
        adapter = Encoder(encoder, device)
        encode_start = time.perf_counter()
        cache = RepresentationCache(encoded, adapter, union, batch_size=batch_size, progress=progress)
        result["encoding_seconds"] = time.perf_counter() - encode_start
        if representation == "sampled" and cache.std is None:
            raise UserError("representation='sampled' needs an encoder that returns a variance "
                            "(encode(x) -> (mu, logvar)); use representation='mean'")
        with ProgressReporter("metrics", len(names), enabled=progress) as bar:
            for name in names:
                metric_start = time.perf_counter()
                noise_rng = np.random.default_rng(streams[name][1])
                random_state = int(streams[name][2].generate_state(1)[0] % (2**31 - 1))
                view = CodeView(cache, representation, noise_rng)
                module = _MODULES[name]
                scores = module.compute(views[name], draws[name], view, chosen[name], random_state,
                                        **{extra: extras[extra] for extra in module.NEEDS})
                for key, value in scores.items():
                    result[f"{name}.{key}"] = float(value)
                result[f"{name}.seconds"] = time.perf_counter() - metric_start
                bar.update(1, metric=name)
    finally:
        if is_module:
            encoder.train(was_training)
            if home != device:
                encoder.to(home)
    result["images_encoded"] = float(cache.images_encoded)
    result["seconds"] = time.perf_counter() - start
    return result
