"""DCI: disentanglement, completeness and informativeness.

Eastwood & Williams 2018, "A Framework for the Quantitative Evaluation of Disentangled Representations"
(ICLR), as estimated by google-research/disentanglement_lib (``evaluation/metrics/dci.py``, Locatello et
al. 2019): for each factor ``j`` a ``sklearn.ensemble.GradientBoostingClassifier`` with default settings
is fitted on the codes of ``num_train`` random images; ``R[:, j] = |feature_importances_|``;
informativeness is the mean accuracy over factors on the training and on ``num_test`` fresh images.

The classifier is computed by :mod:`disent_bench.metrics.dci.boosting`, an exact re-implementation of
that estimator (same trees, importances and predictions as scikit-learn 1.9's, to the last bit in the
cases the tests pin), several times faster and parallel over the trees of a boosting stage; the
settings are the reference's (scikit-learn 0.20 defaults, listed in
:mod:`disent_bench.metrics.sklearn_utils`). ``importance_gbt(..., estimator="sklearn")`` runs
scikit-learn's own estimator with the same settings instead.

Disentanglement: per code ``i``, ``D_i = 1 - H(R[i, :] + 1e-11)`` with entropy base = number of factors,
weighted by ``R[i, :].sum() / R.sum()``. Completeness: per factor, ``C_j = 1 - H(R[:, j] + 1e-11)`` with base
= number of codes, weighted by factor importance. If ``R.sum() == 0`` the weights are uniform. The
``1e-11`` is the reference's: it turns an all-zero row into a uniform one (score 0) instead of NaN.

The reference leaves the boosting's ``random_state`` to the global numpy state; we pass a seed derived
from the evaluation seed so that results are reproducible.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.dci import boosting
from disent_bench.metrics.sampling import draw_train_test
from disent_bench.metrics.sklearn_utils import gradient_boosting

NAME = "dci"
NEEDS: tuple[str, ...] = ("threads",)  # the boosting's threads: its speed, never its numbers


def _per_row_score(weights: np.ndarray) -> np.ndarray:
    """``1 - entropy`` of each row of ``weights`` (normalised), in base = the row length."""
    base = weights.shape[1]
    if base < 2:
        return np.ones(weights.shape[0])  # one outcome: nothing to spread over
    return 1.0 - scipy.stats.entropy(weights.T + 1e-11, base=base)


def disentanglement(importance: np.ndarray) -> float:
    """Importance-weighted disentanglement of an importance matrix ``(num_codes, num_factors)``."""
    importance = np.asarray(importance, dtype=np.float64)
    per_code = _per_row_score(importance)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    weights = importance.sum(axis=1) / importance.sum()
    return float(np.sum(per_code * weights))


def completeness(importance: np.ndarray) -> float:
    """Importance-weighted completeness of an importance matrix ``(num_codes, num_factors)``."""
    importance = np.asarray(importance, dtype=np.float64)
    per_factor = _per_row_score(importance.T)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    weights = importance.sum(axis=0) / importance.sum()
    return float(np.sum(per_factor * weights))


ESTIMATORS = ("exact", "sklearn")


def importance_gbt(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                   test_factors: np.ndarray, random_state: int, *, estimator: str = "exact",
                   n_threads: int | None = None) -> tuple[np.ndarray, float, float]:
    """Importance matrix ``(D, K)`` and mean train / test accuracy of one boosted classifier per factor.

    ``estimator``: ``"exact"`` (:mod:`~disent_bench.metrics.dci.boosting`, the default) or ``"sklearn"``
    (scikit-learn's ``GradientBoostingClassifier`` with the pinned settings); both give the same numbers.
    ``n_threads`` (exact only; default: the usable cores) changes only the speed.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown DCI estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
    importance = np.zeros((num_codes, num_factors))
    train_acc, test_acc = [], []
    codes = None
    if estimator == "exact" and num_factors > 0:
        # Sorted once for every factor's classifier; a sample's label is its whole factor vector.
        factor_ids = np.unique(np.asarray(train_factors), axis=0, return_inverse=True)[1].reshape(-1)
        codes = boosting.Codes.of(train_codes, factor_ids)
    for j in range(num_factors):
        y = train_factors[:, j]
        if np.unique(y).size < 2:
            # sklearn refuses a single class; such a classifier is always right and uses no code.
            train_acc.append(1.0)
            test_acc.append(float(np.mean(test_factors[:, j] == y[0])))
            continue
        if estimator == "sklearn":
            model = gradient_boosting(random_state).fit(train_codes, y)
            importances = model.feature_importances_
            train_prediction, test_prediction = model.predict(train_codes), model.predict(test_codes)
        else:
            importances, train_prediction, test_prediction = boosting.fit_predict(
                train_codes, y, test_codes, random_state, n_threads=n_threads, codes=codes)
        importance[:, j] = np.abs(importances)
        train_acc.append(float(np.mean(train_prediction == y)))
        test_acc.append(float(np.mean(test_prediction == test_factors[:, j])))
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def dci_from_codes(train_codes, train_factors, test_codes, test_factors, random_state: int = 0, *,
                   estimator: str = "exact", n_threads: int | None = None) -> dict[str, float]:
    importance, train_acc, test_acc = importance_gbt(train_codes, train_factors, test_codes, test_factors,
                                                     random_state, estimator=estimator, n_threads=n_threads)
    return {"disentanglement": disentanglement(importance), "completeness": completeness(importance),
            "informativeness_train": train_acc, "informativeness_test": test_acc}


draw = draw_train_test


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int, *, threads: int) -> dict[str, float]:
    train, test = draws["train"], draws["test"]
    # ``threads``: the evaluator's (the run's CPU share); the boosting's numbers do not depend on it.
    return dci_from_codes(view.codes(train), dataset.factors_of(train), view.codes(test),
                          dataset.factors_of(test), random_state, n_threads=threads)
