"""Sample sizes and settings of every metric: the "paper" and "quick" presets.

``paper`` is the reference protocol of Locatello et al. (2019), i.e. the defaults of
google-research/disentanglement_lib ``config/unsupervised_study_v1/metric_configs/*.gin``:

=================  ==========================================================================
beta_vae           batch_size 64, num_train 10000, num_eval 5000
factor_vae         batch_size 64, num_train 10000, num_eval 5000, num_variance_estimate 10000,
                   prune_threshold 0.05
mig                num_train 10000, num_bins 20
dci                num_train 10000, num_test 5000 (GradientBoostingClassifier, sklearn defaults)
sap                num_train 10000, num_test 5000, continuous_factors 0 (classification, LinearSVC)
modularity         num_train 10000, num_test 5000, num_bins 20
reconstruction     num_batches 1000, batch_size 64 (64,000 held-out images)
unsupervised       num_train 10000, num_bins 20
downstream         train_sizes (10, 100, 1000, 10000), num_test 5000 per size (downstream_task_*.gin)
irs                num_train 10000, num_bins 20, diff_quantile 0.99 (config/sample/irs/irs.gin)
mig_sup            num_train 10000, num_bins 10 (the laforge implementation's default)
jemmig             num_train 10000, num_bins 10
dcimig             num_train 10000, num_bins 10
infomec            num_train 10000 (the reference fixes none), discrete_latents 0
=================  ==========================================================================

The last six are not in the 2019 study's ``unsupervised_study_v1`` metric set: the downstream task
was part of its evaluation (section "usefulness"), IRS is in disentanglement_lib's sample configs, and
MIG-sup, JEMMIG, DCIMIG and InfoMEC come from later papers (see each module).

``quick`` is for CPU runs and smoke tests: the same estimators with smaller samples. The per-point batch
(64) and the bin count (20) stay those of the reference, so only the sampling noise grows, not what a
score means. On full dSprites it draws ~70k images (the paper preset draws ~3.0 M, of which ~725k are
distinct). With 100 evaluation points the BetaVAE and FactorVAE accuracies move in steps of 1% and
have a sampling standard error of up to 5%; fewer points made them too noisy to tell models apart.
On a quiet 2-core CPU, a beta-VAE of the reference architecture on synthetic dSprites takes about 20 s
per model in all, most of it DCI (its per-factor gradient boosting, 113 classes x 100 stages of trees
on dSprites, has a fixed cost per tree however few the points) and modularity (its per-factor
LogisticRegression fits), then encoding.

=================  ==========================================================================
beta_vae           batch_size 64, num_train 200, num_eval 100         (38,400 images)
factor_vae         batch_size 64, num_train 200, num_eval 100, num_variance_estimate 1000,
                   prune_threshold 0.05                                (20,200 images)
mig                num_train 2000, num_bins 20
dci                num_train 500, num_test 250
sap                num_train 2000, num_test 1000, continuous_factors 0
modularity         num_train 2000, num_test 1000, num_bins 20
reconstruction     num_batches 8, batch_size 64 (512 held-out images)
unsupervised       num_train 2000, num_bins 20
downstream         train_sizes (10, 100, 1000, 10000), num_test 1000 per size (the study's sizes: the
                   sample efficiency compares 100 with 10,000)
irs                num_train 2000, num_bins 20, diff_quantile 0.99
mig_sup, jemmig,   num_train 2000, num_bins 10
dcimig
infomec            num_train 2000, discrete_latents 0
=================  ==========================================================================

Quick numbers are noisier than paper numbers and must not be compared with them.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping

from disent_bench.errors import UserError

PAPER: dict[str, dict[str, float]] = {
    "beta_vae": {"batch_size": 64, "num_train": 10000, "num_eval": 5000},
    "factor_vae": {"batch_size": 64, "num_train": 10000, "num_eval": 5000, "num_variance_estimate": 10000,
                   "prune_threshold": 0.05},
    "mig": {"num_train": 10000, "num_bins": 20},
    "dci": {"num_train": 10000, "num_test": 5000},
    "sap": {"num_train": 10000, "num_test": 5000, "continuous_factors": 0},
    "modularity": {"num_train": 10000, "num_test": 5000, "num_bins": 20},
    "reconstruction": {"num_batches": 1000, "batch_size": 64},
    "unsupervised": {"num_train": 10000, "num_bins": 20},
    "downstream": {"train_sizes": (10, 100, 1000, 10000), "num_test": 5000},
    "irs": {"num_train": 10000, "num_bins": 20, "diff_quantile": 0.99},
    "mig_sup": {"num_train": 10000, "num_bins": 10},
    "jemmig": {"num_train": 10000, "num_bins": 10},
    "dcimig": {"num_train": 10000, "num_bins": 10},
    "infomec": {"num_train": 10000, "discrete_latents": 0},
}

QUICK: dict[str, dict[str, float]] = {
    "beta_vae": {"batch_size": 64, "num_train": 200, "num_eval": 100},
    "factor_vae": {"batch_size": 64, "num_train": 200, "num_eval": 100, "num_variance_estimate": 1000,
                   "prune_threshold": 0.05},
    "mig": {"num_train": 2000, "num_bins": 20},
    "dci": {"num_train": 500, "num_test": 250},
    "sap": {"num_train": 2000, "num_test": 1000, "continuous_factors": 0},
    "modularity": {"num_train": 2000, "num_test": 1000, "num_bins": 20},
    "reconstruction": {"num_batches": 8, "batch_size": 64},
    "unsupervised": {"num_train": 2000, "num_bins": 20},
    "downstream": {"train_sizes": (10, 100, 1000, 10000), "num_test": 1000},
    "irs": {"num_train": 2000, "num_bins": 20, "diff_quantile": 0.99},
    "mig_sup": {"num_train": 2000, "num_bins": 10},
    "jemmig": {"num_train": 2000, "num_bins": 10},
    "dcimig": {"num_train": 2000, "num_bins": 10},
    "infomec": {"num_train": 2000, "discrete_latents": 0},
}

PRESETS: dict[str, dict[str, dict[str, float]]] = {"paper": PAPER, "quick": QUICK}

# The smallest value each setting may take (the estimators need at least this much data).
_MINIMUM: dict[str, dict[str, float]] = {
    "beta_vae": {"batch_size": 1, "num_train": 1, "num_eval": 1},
    # Variances with ddof=1 need two points.
    "factor_vae": {"batch_size": 2, "num_train": 1, "num_eval": 1, "num_variance_estimate": 2,
                   "prune_threshold": 0.0},
    "mig": {"num_train": 1, "num_bins": 1},
    "dci": {"num_train": 1, "num_test": 1},
    "sap": {"num_train": 1, "num_test": 1, "continuous_factors": 0},
    "modularity": {"num_train": 1, "num_test": 1, "num_bins": 1},
    "reconstruction": {"num_batches": 1, "batch_size": 1},
    # A covariance (ddof=1) needs two points.
    "unsupervised": {"num_train": 2, "num_bins": 1},
    "downstream": {"train_sizes": 5, "num_test": 1},  # 5: the logistic regression's 5-fold cross-validation
    "irs": {"num_train": 1, "num_bins": 1, "diff_quantile": 0.0},
    "mig_sup": {"num_train": 1, "num_bins": 1},
    "jemmig": {"num_train": 1, "num_bins": 2},  # its normaliser log2(num_bins) must not be 0
    "dcimig": {"num_train": 1, "num_bins": 1},
    "infomec": {"num_train": 2, "discrete_latents": 0},
}
_FLOAT_SETTINGS = {("factor_vae", "prune_threshold"), ("irs", "diff_quantile")}
# The largest value a float setting may take, where there is one (a quantile).
_MAXIMUM = {("irs", "diff_quantile"): 1.0}
_FLAG_SETTINGS = {("sap", "continuous_factors"), ("infomec", "discrete_latents")}
# Settings that are a list of sample sizes (each at least the minimum), kept as a tuple in list order.
_SIZES_SETTINGS = {("downstream", "train_sizes")}


def resolve_settings(metrics: list[str], preset: str,
                     overrides: Mapping[str, Mapping[str, object]] | None) -> dict[str, dict]:
    """The settings of each metric in ``metrics``: the preset's, with ``overrides`` applied and checked."""
    if preset not in PRESETS:
        raise UserError(f"unknown metrics preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    chosen = copy.deepcopy(PRESETS[preset])
    overrides = overrides or {}
    if not isinstance(overrides, Mapping):
        raise UserError(f"metric settings must map a metric name to its settings, got {overrides!r}")
    for metric, values in overrides.items():
        if metric not in chosen:
            raise UserError(f"settings for unknown metric {metric!r}; valid metrics: {', '.join(chosen)}")
        if not isinstance(values, Mapping):
            raise UserError(f"settings for {metric} must map setting names to values, got {values!r}")
        for key, value in values.items():
            if key not in chosen[metric]:
                raise UserError(f"unknown setting {key!r} for metric {metric}; valid settings: "
                                f"{', '.join(chosen[metric])}")
            chosen[metric][key] = _check_value(metric, key, value)
    return {metric: chosen[metric] for metric in metrics}


def _check_value(metric: str, key: str, value: object):
    minimum = _MINIMUM[metric][key]
    if (metric, key) in _SIZES_SETTINGS:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value or any(
                isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum for v in value):
            raise UserError(f"setting {metric}.{key} must be a non-empty list of integers >= {int(minimum)}, "
                            f"got {value!r}")
        if len(set(value)) != len(value):
            raise UserError(f"setting {metric}.{key} lists a size twice: {list(value)!r}")
        return tuple(int(v) for v in value)
    if (metric, key) in _FLAG_SETTINGS:
        if value not in (0, 1, True, False):
            raise UserError(f"setting {metric}.{key} must be 0/1 (false/true), got {value!r}")
        return int(value)
    if (metric, key) in _FLOAT_SETTINGS:
        maximum = _MAXIMUM.get((metric, key), float("inf"))
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not minimum <= value <= maximum:
            bounds = f">= {minimum}" if maximum == float("inf") else f"between {minimum} and {maximum}"
            raise UserError(f"setting {metric}.{key} must be a number {bounds}, got {value!r}")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise UserError(f"setting {metric}.{key} must be an integer >= {int(minimum)}, got {value!r}")
    return int(value)
