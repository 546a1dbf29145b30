"""The SAP score (Separated Attribute Predictability).

Kumar et al. 2018, "Variational Inference of Disentangled Latent Concepts from Unlabeled Observations"
(ICLR), as estimated by google-research/disentanglement_lib (``evaluation/metrics/sap_score.py``,
Locatello et al. 2019, discrete factors): for each (code ``i``, factor ``j``) a
``sklearn.svm.LinearSVC(C=0.01, class_weight="balanced")`` (the other settings pinned to the reference's
scikit-learn 0.20 defaults: penalty l2, squared hinge loss, dual=True, tol=1e-4, fit_intercept=True,
intercept_scaling=1, max_iter=1000, one-vs-rest; today's ``dual="auto"`` picks the primal solver and other
numbers; see :func:`~disent_bench.metrics.sklearn_utils.linear_svc`) is fitted on the single feature ``z_i`` of
``num_train`` random images and scored (accuracy) on ``num_test`` fresh ones; SAP = mean over factors of
the best minus the second-best code's accuracy.

Setting ``continuous_factors`` (0 = no, the paper setting) switches to the reference's regression variant:
the squared correlation of each code with each factor on the training sample. The reference's own
sanity tests ("identity representation scores above 0.9") use that variant: the classification variant
cannot reach 0.9 on factors with many classes, since a 1-D linear SVM with C=0.01 separates few of them.

The reference leaves LinearSVC's ``random_state`` to the global numpy state; we pass a seed derived from
the evaluation seed so that results are reproducible.
"""

from __future__ import annotations

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.sampling import draw_train_test
from disent_bench.metrics.sklearn_utils import linear_svc, quiet_fit

NAME = "sap"
NEEDS: tuple[str, ...] = ()  # compute() reads codes and factors only


def score_matrix(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                 test_factors: np.ndarray, random_state: int) -> np.ndarray:
    """Test accuracy ``(D, K)`` of a linear SVM predicting factor ``j`` from code ``i`` alone."""
    num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
    scores = np.zeros((num_codes, num_factors))
    for j in range(num_factors):
        y = train_factors[:, j]
        single_class = np.unique(y).size < 2
        for i in range(num_codes):
            if single_class:
                prediction = np.full(test_codes.shape[0], y[0])  # LinearSVC needs two classes
            else:
                model = linear_svc(random_state)
                quiet_fit(model, train_codes[:, i:i + 1], y)
                prediction = model.predict(test_codes[:, i:i + 1])
            scores[i, j] = np.mean(prediction == test_factors[:, j])
    return scores


def score_matrix_continuous(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``(D, K)`` squared correlation (R^2 of a 1-D linear fit) of code ``i`` and factor ``j`` on one sample.

    The reference's ``continuous_factors=True`` variant, used by its own sanity tests; codes with
    variance <= 1e-12 score 0.
    """
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.float64)
    n = codes.shape[0]
    dc = codes - codes.mean(axis=0)
    df = factors - factors.mean(axis=0)
    cov = dc.T @ df / (n - 1)  # (D, K)
    var_code = (dc * dc).sum(axis=0) / (n - 1)
    var_factor = (df * df).sum(axis=0) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = cov**2 / (var_code[:, None] * var_factor[None, :])
    scores[var_code <= 1e-12, :] = 0.0
    return scores


def sap_from_scores(scores: np.ndarray) -> float:
    """Mean over factors of the gap between the two best codes' accuracies (NaN: undefined with one code)."""
    if scores.shape[0] < 2:
        return float("nan")
    ordered = np.sort(scores, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def sap_from_codes(train_codes, train_factors, test_codes, test_factors, random_state: int = 0, *,
                   continuous_factors: bool = False) -> float:
    """SAP of codes ``(n, D)`` against integer factor classes ``(n, K)``.

    ``continuous_factors=True`` is the reference's regression variant (R^2 on the training sample only);
    the paper preset uses the classification variant.
    """
    if continuous_factors:
        return sap_from_scores(score_matrix_continuous(train_codes, train_factors))
    return sap_from_scores(score_matrix(train_codes, train_factors, test_codes, test_factors, random_state))


draw = draw_train_test


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    train, test = draws["train"], draws["test"]
    return {"score": sap_from_codes(view.codes(train), dataset.factors_of(train), view.codes(test),
                                    dataset.factors_of(test), random_state,
                                    continuous_factors=bool(settings["continuous_factors"]))}
