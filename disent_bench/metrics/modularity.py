"""Modularity and explicitness.

Ridgeway & Mozer 2018, "Learning Deep Disentangled Embeddings With the F-Statistic Loss" (NeurIPS), as
estimated by google-research/disentanglement_lib (``evaluation/metrics/modularity_explicitness.py``,
Locatello et al. 2019):

* Modularity, from the same binned mutual-information matrix ``m`` ``(num_codes, K)`` as MIG (on
  ``num_train`` random images): per code, ``theta = max_j m^2``, ``delta = (sum_j m^2 - theta) /
  (theta * (K - 1))``, score ``1 - delta``; codes with ``theta = 0`` score 0; mean over codes.
* Explicitness: codes standardised with the training mean and standard deviation; per factor, a
  ``LogisticRegression`` (the reference's scikit-learn 0.20 defaults, pinned: liblinear, one-vs-rest,
  L2 penalty, C=1.0, tol=1e-4, max_iter=100, fit_intercept=True, intercept_scaling=1; see
  :func:`~disent_bench.metrics.sklearn_utils.logistic_regression`) on all codes; the ROC AUC of its class
  probabilities (one-vs-rest sigmoid scores normalised per sample) against the one-vs-rest binarised
  labels (macro average over classes), on the training images and on ``num_test`` fresh ones; mean over
  factors. ``explicitness`` is the test value.

Where the reference would divide by zero or crash, we choose the neutral reading and say so: a code with
zero standard deviation is left at 0 after centring (the reference gives NaN), and classes absent from
an evaluation sample are left out of the macro-average AUC (the reference's ``MultiLabelBinarizer``
would then mismatch the probability columns).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.sampling import draw_train_test
from disent_bench.metrics.discrete import histogram_discretize, mutual_info_matrix
from disent_bench.metrics.sklearn_utils import logistic_regression, quiet_fit

NAME = "modularity"
NEEDS: tuple[str, ...] = ()  # compute() reads codes and factors only


def modularity(mutual_information: np.ndarray) -> float:
    """Modularity of a mutual-information matrix ``(num_codes, num_factors)``."""
    squared = np.square(np.asarray(mutual_information, dtype=np.float64))
    theta = squared.max(axis=1)
    num_factors = squared.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - theta) / (theta * (num_factors - 1.0))
        score = 1.0 - delta
    if num_factors == 1:
        score = np.ones_like(theta)  # one factor: every informative code is trivially modular
    score[theta == 0.0] = 0.0
    return float(np.mean(score))


def ovr_auc(classes: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC over the classes that occur (with both outcomes) in ``labels``.

    For each class the AUC is the Mann-Whitney statistic of its probability column (ties averaged),
    which is what ``sklearn.metrics.roc_auc_score`` computes; ranking all columns at once keeps this
    one vectorised pass instead of one sklearn call per class.
    """
    positive = labels[:, None] == np.asarray(classes)[None, :]  # (n, C)
    num_pos = positive.sum(axis=0)
    num_neg = positive.shape[0] - num_pos
    usable = (num_pos > 0) & (num_neg > 0)
    if not usable.any():
        return float("nan")
    ranks = scipy.stats.rankdata(probabilities[:, usable], axis=0)  # average ranks for ties
    pos = positive[:, usable]
    rank_sum = (ranks * pos).sum(axis=0)
    n_pos, n_neg = num_pos[usable], num_neg[usable]
    auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return float(np.mean(auc))


def explicitness(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                 test_factors: np.ndarray, random_state: int) -> tuple[float, float]:
    """Mean over factors of the logistic-regression ROC AUC: (train, test)."""
    mean = train_codes.mean(axis=0)
    std = train_codes.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    train_x = (train_codes - mean) / std
    test_x = (test_codes - mean) / std
    train_scores, test_scores = [], []
    for j in range(train_factors.shape[1]):
        y = train_factors[:, j]
        if np.unique(y).size < 2:
            continue  # one class: AUC is undefined
        model = quiet_fit(logistic_regression(random_state), train_x, y)
        train_scores.append(ovr_auc(model.classes_, model.predict_proba(train_x), y))
        test_scores.append(ovr_auc(model.classes_, model.predict_proba(test_x), test_factors[:, j]))
    if not train_scores:
        return float("nan"), float("nan")
    return float(np.nanmean(train_scores)), float(np.nanmean(test_scores))


draw = draw_train_test


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    train, test = draws["train"], draws["test"]
    train_codes, train_factors = view.codes(train), dataset.factors_of(train)
    mi = mutual_info_matrix(histogram_discretize(train_codes, settings["num_bins"]), train_factors)
    explicit_train, explicit_test = explicitness(train_codes, train_factors, view.codes(test),
                                                 dataset.factors_of(test), random_state)
    return {"score": modularity(mi), "explicitness": explicit_test, "explicitness_train": explicit_train}
