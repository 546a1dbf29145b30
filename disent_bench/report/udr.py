"""UDR in the report: every model setting's runs scored against each other, without ground truth.

The Unsupervised Disentanglement Ranking (Duan et al. 2020, ICLR, "Unsupervised Model Selection for
Variational Disentangled Representation Learning"; disentanglement_lib ``evaluation/udr/``) scores a
model by how well its active latents agree with those of the same setting's other seeds. It needs
several trained models at once, so no single run can compute it: the report does, after the runs.

For every model setting (dataset, source, model and its parameters, latent size and the varying
training settings) with at least two finished seeds, each run's saved model encodes one shared sample
of ``UDR_POINTS`` images (the reference's ``num_data_points`` default, 1,000, drawn with
``UDR_SEED`` from the dataset's own sampler, the same images for every model of the dataset), giving its
mean codes and its per-dimension KL to the prior (the batch mean of 0.5 (mu^2 + exp(logvar) - logvar - 1));
:func:`disent_bench.metrics.udr.udr_scores` turns those into one score per run, with the Lasso and with
the Spearman correlation matrix (columns ``udr.lasso`` and ``udr.spearman`` of the runs frame, so
``runs.csv``, the tables, the statistics and ``--select-by udr.lasso`` see them like any metric).

Cached: a setting's scores are written to ``RESULTS_DIR/udr/<key>.json``, keyed by its runs and the
SHA-256 of each run's checkpoint (and the sample's size and seed), so the next report reads them back
instead of loading the models again, and a retrained or added seed recomputes that setting alone.

A setting of a model without a posterior variance (the AE) has no KL to filter its latents by, and
gets no UDR (NaN), as in the reference, which defines UDR for VAEs.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from disent_bench import data
from disent_bench._io import atomic_write_text, file_digest
from disent_bench.errors import UserError
from disent_bench.metrics import udr
from disent_bench.progress import ProgressReporter
from disent_bench.report.pictures import encode_indices
from disent_bench.report.runs import SETTING_CANDIDATES
from disent_bench.train import load_model

#: The reference's defaults (``compute_udr_sklearn``: num_data_points 1000, kl_filter_threshold 0.01).
UDR_POINTS = 1000
UDR_SEED = 0
KL_THRESHOLD = 0.01
#: The runs-frame column of each correlation variant.
COLUMNS = {"lasso": "udr.lasso", "spearman": "udr.spearman"}
CACHE_DIR = "udr"
CACHE_VERSION = 1
#: What tells two settings apart (besides the model's parameters, which its label names): correlated training
#: data is another setting of the same model.
SETTING_KEYS = ["dataset", "source", "training_data", "model", "label", "latent_dim", *SETTING_CANDIDATES]


def setting_groups(frame: pd.DataFrame) -> list[list[str]]:
    """The run ids of each model setting (the runs that differ only by seed), in table order."""
    runs = frame.drop_duplicates("run_id")
    keys = [k for k in dict.fromkeys(SETTING_KEYS) if k in runs.columns]
    return [list(part.sort_values("seed")["run_id"]) for _, part in runs.groupby(keys, sort=False, dropna=False)]


def _cache_key(run_ids: list[str], checksums: list[str]) -> str:
    payload = json.dumps({"version": CACHE_VERSION, "points": UDR_POINTS, "seed": UDR_SEED,
                          "kl_threshold": KL_THRESHOLD, "runs": list(zip(run_ids, checksums))}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def setting_scores(results_dir: Path, run_ids: list[str], dataset_key: tuple[str, str],
                   datasets: dict) -> dict[str, dict[str, float]] | None:
    """``{run_id: {"udr.lasso": .., "udr.spearman": ..}}`` for one setting's runs on the dataset ``dataset_key``
    (name, source), from the cache when its runs' checkpoints are unchanged; None when its model has no
    posterior variance. ``datasets`` keeps the loaded datasets across settings."""
    directories = [results_dir / "runs" / run_id for run_id in run_ids]
    checksums = [file_digest(d / "checkpoint.pt") for d in directories]
    cache = results_dir / CACHE_DIR / f"{_cache_key(run_ids, checksums)}.json"
    if cache.is_file():
        try:
            stored = json.loads(cache.read_text())
            return stored["scores"] if stored.get("runs") == run_ids else None
        except (OSError, ValueError, KeyError):
            pass  # an unreadable cache entry is recomputed and rewritten
    means, kls = [], []
    for directory in directories:
        model = load_model(directory / "checkpoint.pt", device="cpu")
        if not getattr(model, "has_variance", True):
            return None
        if dataset_key not in datasets:
            datasets[dataset_key] = data.get_dataset(*dataset_key, progress=False)
        dataset = datasets[dataset_key]
        indices = dataset.sample_indices(UDR_POINTS, np.random.default_rng(UDR_SEED))
        mean, logvar = encode_indices(model, dataset, indices, "cpu")
        means.append(mean)
        kls.append(udr.kl_per_dimension(mean, logvar))
    scores: dict[str, dict[str, float]] = {run_id: {} for run_id in run_ids}
    for correlation, column in COLUMNS.items():
        result = udr.udr_scores(means, kls, correlation=correlation, kl_threshold=KL_THRESHOLD)
        for run_id, value in zip(run_ids, result.model_scores):
            scores[run_id][column] = float(value)
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, json.dumps({"runs": run_ids, "checkpoints_sha256": checksums, "points": UDR_POINTS,
                                         "seed": UDR_SEED, "kl_threshold": KL_THRESHOLD, "scores": scores},
                                        indent=1, sort_keys=True))
    return scores


def add_udr(frame: pd.DataFrame, results_dir: str | Path, *, progress: bool = True) -> pd.DataFrame:
    """``frame`` with the columns ``udr.lasso`` and ``udr.spearman`` (NaN for a run whose setting has fewer
    than two finished seeds with a saved model, or no posterior variance); the frame unchanged when no
    setting can be scored. Runs whose ``checkpoint.pt`` is missing (results copied without their models)
    are left out, with one warning."""
    results_dir = Path(results_dir)
    groups, missing = [], 0
    for run_ids in setting_groups(frame):
        if len(run_ids) < 2:
            continue  # one seed: nothing to score it against, with or without its model
        present = [r for r in run_ids if (results_dir / "runs" / r / "checkpoint.pt").is_file()]
        missing += len(run_ids) - len(present)
        if len(present) >= 2:
            groups.append(present)
    if missing:
        warnings.warn(f"UDR leaves out {missing} run(s) without a saved model (checkpoint.pt) under "
                      f"{results_dir / 'runs'}", stacklevel=2)
    values: dict[str, dict[str, float]] = {}
    datasets: dict = {}
    with ProgressReporter("UDR", len(groups), enabled=progress and bool(groups)) as bar:
        for run_ids in groups:
            # the dataset and source the runs frame read from each run's metrics.json (a setting has one)
            first = frame.loc[frame["run_id"] == run_ids[0]].iloc[0]
            scores = setting_scores(results_dir, run_ids, (first["dataset"], first["source"]), datasets)
            if scores is not None:
                values.update(scores)
            bar.update(1)
    if not values:
        return frame
    frame = frame.copy()
    for column in COLUMNS.values():
        frame[column] = frame["run_id"].map(lambda run_id, c=column: values.get(run_id, {}).get(c, np.nan))
    return frame


def add_udr_safe(frame: pd.DataFrame, results_dir: str | Path, *, progress: bool = True) -> pd.DataFrame:
    """:func:`add_udr`, or the frame without UDR (with a warning) when the data or a checkpoint is not at
    hand, e.g. results copied from a cluster without the official files."""
    try:
        return add_udr(frame, results_dir, progress=progress)
    except (UserError, OSError) as exc:
        warnings.warn(f"UDR skipped: {exc}", stacklevel=2)
        return frame
