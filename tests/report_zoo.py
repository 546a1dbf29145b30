"""A synthetic results directory of a whole model zoo, for report tests: no training, plausible numbers.

Every family of the reference study with its six sweep values (shared spec models.md section 5), the
AE and VAE baselines, each for a few seeds, written as finished runs (metrics.json + DONE) the way the
runner writes them. Scores follow a smooth made-up trend in the family's parameter plus seed noise, so
figures look like real ones; nothing here is a real result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

#: The reference sweeps (disentanglement_lib unsupervised_study_v1) and the fixed parameters' values.
SWEEPS = {
    "beta_vae": ("beta", [1, 2, 4, 6, 8, 16], {}),
    "factor_vae": ("gamma", [10, 20, 30, 40, 50, 100], {}),
    "beta_tc_vae": ("beta", [1, 2, 4, 6, 8, 10], {}),
    "dip_vae_i": ("lambda_od", [1, 2, 5, 10, 20, 50], {"lambda_d_factor": 10.0}),
    "dip_vae_ii": ("lambda_od", [1, 2, 5, 10, 20, 50], {"lambda_d_factor": 1.0}),
    "annealed_vae": ("c_max", [5, 10, 25, 50, 75, 100], {"gamma": 1000.0, "iteration_threshold": 100000}),
}
HEADLINE_KEYS = ("beta_vae.eval_accuracy", "factor_vae.eval_accuracy", "mig.score", "dci.disentanglement",
                 "sap.score", "modularity.score")


def zoo_settings(sweeps=SWEEPS, values_per_family: int | None = None) -> list[tuple[str, dict, dict]]:
    """(model, grid params, model hparams without name/in_channels/latent_dim) of every setting."""
    settings = [("ae", {}, {}), ("vae", {}, {})]
    for model, (param, values, fixed) in sweeps.items():
        for value in values[:values_per_family]:
            settings.append((model, {param: value}, {param: float(value), **fixed}))
    return settings


def _scores(model: str, params: dict, seed: int, rng: np.random.Generator) -> dict[str, float]:
    """Made-up but plausible scores: disentanglement rises then saturates with the regularisation,
    reconstruction error grows with it; the AE and VAE sit low."""
    if model in ("ae", "vae"):
        strength = 0.0
    else:
        param, values, _ = SWEEPS.get(model, (None, [1, 10], {}))
        value = params.get(param, values[0])
        strength = min(max(math.log(value / values[0]) / math.log(values[-1] / values[0]), 0.0), 1.0)
        if model == "annealed_vae":
            strength = 1.0 - strength  # a larger capacity is a weaker constraint
    offset = {"ae": -0.15, "vae": -0.05, "beta_vae": 0.0, "factor_vae": 0.04, "beta_tc_vae": 0.03,
              "dip_vae_i": -0.02, "dip_vae_ii": -0.04, "annealed_vae": -0.01}.get(model, 0.0)
    level = 0.25 + offset + 0.25 * math.sin(min(strength, 1.0) * 2.2)
    noise = lambda scale: float(rng.normal(0.0, scale))  # noqa: E731
    scores = {
        "beta_vae.eval_accuracy": min(0.6 + level * 0.8 + noise(0.03), 1.0),
        "beta_vae.train_accuracy": min(0.62 + level * 0.8 + noise(0.03), 1.0),
        "factor_vae.eval_accuracy": min(0.45 + level * 0.9 + noise(0.04), 1.0),
        "mig.score": max(level * 0.6 + noise(0.03), 0.0),
        "dci.disentanglement": max(level * 0.8 + noise(0.04), 0.0),
        "dci.completeness": max(level * 0.7 + noise(0.04), 0.0),
        "dci.informativeness_test": 0.7 - 0.2 * strength + noise(0.02),
        "sap.score": max(level * 0.15 + noise(0.01), 0.0),
        "modularity.score": min(0.78 + level * 0.3 + noise(0.02), 1.0),
        "reconstruction.bce": 40.0 + 60.0 * strength ** 1.5 + (12.0 if model != "ae" else 0.0) + noise(3.0),
        "reconstruction.mse": 8.0 + 9.0 * strength + noise(0.5),
        "images_encoded": 12000.0,
        "encoding_seconds": 1.5 + abs(noise(0.1)),
        # A metric the report does not know (added by another branch): shown in the CSVs, never breaks.
        "unsupervised.gaussian_total_correlation": 2.0 - 1.5 * strength + noise(0.1),
        "unsupervised.gaussian_wasserstein_correlation": 1.0 - 0.6 * strength + noise(0.05),
        "unsupervised.mutual_info_score": 0.3 - 0.2 * strength + noise(0.02),
    }
    return scores


def write_run(results_dir: Path, run_id: str, model: str, grid_params: dict, hparams: dict, seed: int,
              scores: dict[str, dict], *, dataset: str = "dsprites", source: str = "synthetic",
              latent_dim: int = 10, preset: str = "quick") -> Path:
    """One finished run directory (metrics.json + DONE) as the runner writes it."""
    directory = results_dir / "runs" / run_id
    directory.mkdir(parents=True, exist_ok=True)
    representations = list(scores)
    record = {
        "results_version": 1,
        "run_id": run_id,
        "config": {
            "id": run_id, "benchmark": "zoo", "dataset": {"name": dataset, "source": source},
            "model": {"name": model, "latent_dim": latent_dim, "params": grid_params},
            "train": {"steps": 1200, "batch_size": 64, "lr": 1e-4, "seed": seed},
            "seed": seed, "device": "cpu",
            "eval": {"metrics": sorted({k.split(".")[0] for s in scores.values() for k in s if "." in k}),
                     "preset": preset, "representation": representations, "settings": {}},
            "resources": {},
        },
        "model_hparams": {"name": model, "in_channels": 1, "latent_dim": latent_dim, **hparams},
        "results": scores,
        "skipped_representations": [],
        "train": {"steps": 1200, "seconds_total": 60.0 + seed},
        "eval": {"seconds": {r: 5.0 for r in representations}},
        "provenance": {"disent_bench": "0.0-test", "python": "3.11", "torch": "2.13.0", "numpy": "2",
                       "scikit_learn": "1.5", "device": "cpu", "date": "2026-01-01T00:00:00+00:00",
                       "dataset": {"name": dataset, "source": source, "checksum": "0" * 64},
                       "eval_preset": preset, "seed": seed},
    }
    (directory / "metrics.json").write_text(json.dumps(record))
    (directory / "DONE").write_text("2026-01-01T00:00:00+00:00\n")
    return directory


def write_zoo(results_dir: Path, *, seeds=(0, 1), values_per_family: int | None = None,
              representations=("mean", "sampled"), seed: int = 0) -> list[str]:
    """Write every setting of the zoo for every seed under ``results_dir/runs``; return the run ids."""
    rng = np.random.default_rng(seed)
    ids = []
    for model, grid_params, hparams in zoo_settings(values_per_family=values_per_family):
        for s in seeds:
            tag = "-".join(f"{k}{v:g}" for k, v in grid_params.items())
            run_id = f"{model}-{tag}-s{s}" if tag else f"{model}-s{s}"
            reps = [r for r in representations if r == "mean" or model != "ae"]  # an AE has no variance
            scores = {r: _scores(model, hparams, s, rng) for r in reps}
            write_run(results_dir, run_id, model, grid_params, hparams, s, scores)
            ids.append(run_id)
    return ids
