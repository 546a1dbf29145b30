"""Downstream task: how well, and from how few points, simple classifiers read the factors off the codes.

Locatello et al. 2019, "Challenging Common Assumptions in the Unsupervised Learning of Disentangled
Representations" (ICML), section 6 ("downstream task performance" and "statistical efficiency"), as
estimated by google-research/disentanglement_lib (``evaluation/metrics/downstream_task.py``,
``compute_downstream_task`` and ``_compute_loss``; the predictors ``logistic_regression_cv`` and
``gradient_boosting_classifier`` of ``evaluation/metrics/utils.py``; the study's
``config/unsupervised_study_v1/metric_configs/downstream_task_{logistic_regression,boosted_trees}.gin``).

For each training size ``n`` of ``train_sizes`` (the study's 10, 100, 1000, 10000), in list order, ``n``
training images then ``num_test`` (5000) test images are drawn (each size has its own test sample). For
each factor ``j`` a fresh classifier is fitted on the training codes and the classes of ``j``; its accuracy
is measured on both samples. Per predictor ``p`` (``lr``, ``gbt``) and size ``n`` the keys are
``p.<n>.{mean,min}_{train,test}_accuracy`` (mean and min over factors), ``p.<n>.{train,test}_accuracy_factor_<j>``
and ``p.<n>.num_single_class_factors``; and ``p.sample_efficiency``, the statistical efficiency of the
paper: mean test accuracy at ``n = 100`` divided by mean test accuracy at ``n = 10000``.

The predictors:

- ``lr``: :func:`~disent_bench.metrics.sklearn_utils.logistic_regression_cv`, the reference's
  ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))`` as scikit-learn 0.20/0.21 ran it (its
  ``multi_class="warn"`` meant one-vs-rest): per class a binary class-vs-rest problem, its own C chosen by
  5-fold (unshuffled) cross-validated accuracy, refitted on all training points; the prediction is the
  class with the largest decision function.
- ``gbt``: the reference's ``GradientBoostingClassifier()`` (scikit-learn defaults), computed by
  :mod:`disent_bench.metrics.dci.boosting` (the same trees and predictions as scikit-learn's, faster; the
  training codes are prepared once for every factor's classifier).

Where this departs from the reference, and why:

- The logistic predictor is the one-vs-rest emulation above (spec Decision 1): scikit-learn 1.9 no longer
  has ``multi_class``, and its plain ``LogisticRegressionCV`` is the multinomial model, a different
  estimator (on a 1-D code equal to the class of 4 classes one-vs-rest scores 0.5, multinomial 1.0). The
  emulation is not bit-identical to 0.20: 1.x minimises the mean loss (0.20 the sum) with other lbfgs
  stopping rules, so it stops at other points. Against a real scikit-learn 0.20.4
  (``scripts/agreement/downstream.py``) that matters where the folds are nearly separable at large C and
  where lbfgs stops decides the chosen C: at ``n = 10`` per-factor accuracies differed by up to 0.2 (the
  spec's DT1, codes = factors: mean test accuracy 0.77 here, 0.67 under 0.20), at ``n = 100`` by up to
  0.06, at ``n = 1000`` by 0.001 on the cases tried. The scikit-learn version is recorded with every
  result by the evaluator.
- ``lr`` fits run with one BLAS thread (speed, and numbers that do not depend on the machine's cores).
- ``random_state``: the reference left the boosting's to numpy's global state; it gets the metric's
  ``random_state`` here (Decision 1). lbfgs uses no randomness.
- A factor with a single class in a training sample (e.g. a binary factor at ``n = 10``, probability
  ``2^-9``): scikit-learn 0.20's ``LogisticRegressionCV`` and gradient boosting raised ``ValueError`` and the
  whole evaluation failed. Here (Decision 2) nothing is fitted, that class is predicted for every point
  (train accuracy 1, test accuracy = the share of that class in the test sample) and the factor is counted
  in ``num_single_class_factors``.
- ``sample_efficiency`` is not computed by the reference (the paper derives it from the reported
  accuracies); it is NaN when 100 or 10000 is not among ``train_sizes``.

Behaviour kept from the reference, on purpose: a class absent from a training sample is never predicted
(both predictors only know the classes they saw). With few points (``n = 10``: folds of 8 training and 2
validation points) a class may be absent from a fold's training part, leaving its binary problem there
without positives (or, for the other classes, a fold may hold one class only): scikit-learn 1.9's
``LogisticRegressionCV`` passes the whole sample's classes to every fold, fits the one-sided problem
(the intercept runs towards the absent side, the weights towards 0) and scores it; 0.20 did the same
(it encoded each fold's labels against the global positive class and fitted without error). Nothing
is skipped or raised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import threadpoolctl

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.dci import boosting
from disent_bench.metrics.sklearn_utils import logistic_regression_cv, quiet_fit

__all__ = ["NAME", "NEEDS", "PREDICTORS", "MIN_TRAIN_SIZE", "EFFICIENCY_SIZES", "FactorAccuracies",
           "factor_accuracies", "downstream_from_codes", "sample_efficiency", "draw", "compute"]

NAME = "downstream"
NEEDS: tuple[str, ...] = ("threads",)  # the boosting's threads: its speed, never its numbers
PREDICTORS = ("lr", "gbt")
# The logistic predictor's 5-fold cross-validation needs at least 5 training points.
MIN_TRAIN_SIZE = 5
# The sizes whose ratio of mean test accuracies is the statistical efficiency (Locatello et al. 2019).
EFFICIENCY_SIZES = (100, 10000)


@dataclass(frozen=True)
class FactorAccuracies:
    """One predictor's accuracies at one training size: per factor ``(K,)`` on the training and test sample,
    and how many factors had a single class in the training sample (predicted as that class, not fitted)."""

    train: np.ndarray
    test: np.ndarray
    num_single_class: int


def factor_accuracies(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                      test_factors: np.ndarray, predictor: str, random_state: int = 0, *,
                      n_threads: int | None = None) -> FactorAccuracies:
    """Accuracy of one fresh ``predictor`` (``"lr"`` or ``"gbt"``) per factor, fitted on the training codes
    ``(n, L)`` and factor classes ``(n, K)``, on both samples (the reference's ``_compute_loss``).

    ``n_threads`` (``gbt`` only; default: the usable cores) changes the speed only.
    """
    if predictor not in PREDICTORS:
        raise ValueError(f"unknown downstream predictor {predictor!r}; valid: {', '.join(PREDICTORS)}")
    # float64 as 0.20's LogisticRegressionCV converted its input (1.9 would keep float32 codes in float32);
    # the boosting rounds to float32 as scikit-learn's trees do.
    train_codes, test_codes = np.asarray(train_codes, dtype=np.float64), np.asarray(test_codes, dtype=np.float64)
    train_factors, test_factors = np.asarray(train_factors), np.asarray(test_factors)
    if train_codes.ndim != 2 or test_codes.ndim != 2 or train_factors.ndim != 2 or test_factors.ndim != 2:
        raise ValueError("codes must be (n, L) and factors (n, K) arrays")
    if train_codes.shape[0] != train_factors.shape[0] or test_codes.shape[0] != test_factors.shape[0]:
        raise ValueError(f"codes and factors disagree on the number of points: train {train_codes.shape[0]} vs "
                         f"{train_factors.shape[0]}, test {test_codes.shape[0]} vs {test_factors.shape[0]}")
    if train_codes.shape[1] != test_codes.shape[1] or train_factors.shape[1] != test_factors.shape[1]:
        raise ValueError("training and test sample disagree on the number of codes or factors")
    if train_codes.shape[0] == 0 or test_codes.shape[0] == 0:
        raise ValueError("the training and the test sample each need at least one point")
    num_factors = train_factors.shape[1]
    single_class = [np.unique(train_factors[:, j]).size < 2 for j in range(num_factors)]
    if predictor == "lr" and not all(single_class) and train_codes.shape[0] < MIN_TRAIN_SIZE:
        raise ValueError(f"the logistic predictor's 5-fold cross-validation needs at least {MIN_TRAIN_SIZE} "
                         f"training points, got {train_codes.shape[0]}")
    codes = None
    if predictor == "gbt" and not all(single_class):
        # Sorted once for every factor's classifier; a point's label is its whole factor vector (it must
        # separate every two points that any factor's classifier tells apart).
        factor_ids = np.unique(train_factors, axis=0, return_inverse=True)[1].reshape(-1)
        codes = boosting.Codes.of(train_codes, factor_ids)
    train_accuracy, test_accuracy = np.empty(num_factors), np.empty(num_factors)
    for j in range(num_factors):
        y_train, y_test = train_factors[:, j], test_factors[:, j]
        if single_class[j]:
            # Decision 2: no classifier can be fitted on one class; it would predict that class.
            train_prediction, test_prediction = y_train, np.full_like(y_test, y_train[0])
        elif predictor == "lr":
            # One BLAS thread: a BLAS product split over threads sums in another order, and lbfgs's path
            # follows the last bits, so the numbers would depend on the machine's core count; and lbfgs's
            # tiny BLAS calls pay a thread wake-up each (7x slower on the 2-core test machine).
            with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
                model = quiet_fit(logistic_regression_cv(random_state), train_codes, y_train)
                train_prediction, test_prediction = model.predict(train_codes), model.predict(test_codes)
        else:
            model = boosting.fit(train_codes, y_train, random_state, n_threads=n_threads, codes=codes)
            train_prediction, test_prediction = model.decision(model.train_raw), model.predict(test_codes)
        train_accuracy[j] = np.mean(train_prediction == y_train)
        test_accuracy[j] = np.mean(test_prediction == y_test)
    return FactorAccuracies(train_accuracy, test_accuracy, int(sum(single_class)))


def sample_efficiency(mean_test_accuracy: dict[int, float]) -> float:
    """Statistical efficiency: mean test accuracy with 100 training points / with 10000.

    NaN (undefined, not an error) when either size was not evaluated; the denominator cannot be 0 in
    practice (10000 points of a factor whose classes are all unseen in the test sample), and would give NaN
    too rather than infinity.
    """
    small, large = EFFICIENCY_SIZES
    if small not in mean_test_accuracy or large not in mean_test_accuracy or mean_test_accuracy[large] == 0:
        return math.nan
    return float(mean_test_accuracy[small] / mean_test_accuracy[large])


def downstream_from_codes(samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                          random_state: int = 0, *, predictors: Sequence[str] = PREDICTORS,
                          n_threads: int | None = None) -> dict[str, float]:
    """The downstream scores of the samples of each training size.

    ``samples``: one ``(train_codes, train_factors, test_codes, test_factors)`` per training size (codes
    ``(n, L)`` float, factor classes ``(n, K)`` int), in the order of ``train_sizes``; the size ``n`` that
    names the keys is ``len(train_codes)``, so no two samples may have the same. Returns the keys of the
    module docstring for each predictor in ``predictors`` (a fresh classifier per factor, size and
    predictor, all with ``random_state``).
    """
    sizes = [int(np.shape(sample[0])[0]) for sample in samples]
    if not sizes:
        raise ValueError("no training sizes given")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"two samples have the same training size: {sizes}")
    unknown = [p for p in predictors if p not in PREDICTORS]
    if unknown:
        raise ValueError(f"unknown downstream predictor(s) {', '.join(map(repr, unknown))}; valid: "
                         f"{', '.join(PREDICTORS)}")
    scores: dict[str, float] = {}
    for predictor in predictors:
        mean_test: dict[int, float] = {}
        for n, (train_codes, train_factors, test_codes, test_factors) in zip(sizes, samples):
            result = factor_accuracies(train_codes, train_factors, test_codes, test_factors, predictor,
                                       random_state, n_threads=n_threads)
            prefix = f"{predictor}.{n}."
            scores[prefix + "mean_train_accuracy"] = float(np.mean(result.train))
            scores[prefix + "mean_test_accuracy"] = mean_test[n] = float(np.mean(result.test))
            scores[prefix + "min_train_accuracy"] = float(np.min(result.train))
            scores[prefix + "min_test_accuracy"] = float(np.min(result.test))
            for j in range(result.train.shape[0]):
                scores[prefix + f"train_accuracy_factor_{j}"] = float(result.train[j])
                scores[prefix + f"test_accuracy_factor_{j}"] = float(result.test[j])
            scores[prefix + "num_single_class_factors"] = float(result.num_single_class)
        scores[f"{predictor}.sample_efficiency"] = sample_efficiency(mean_test)
    return scores


def draw(dataset: GroundTruthData, settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per training size ``n``, in list order: ``n`` training indices (``train_<n>``), then ``num_test`` test
    indices (``test_<n>``), uniform with replacement (as the reference: each size has its own test sample)."""
    draws = {}
    for n in settings["train_sizes"]:
        draws[f"train_{int(n)}"] = dataset.sample_indices(int(n), rng)
        draws[f"test_{int(n)}"] = dataset.sample_indices(int(settings["num_test"]), rng)
    return draws


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int, *, threads: int) -> dict[str, float]:
    samples = []
    for n in settings["train_sizes"]:
        train, test = draws[f"train_{int(n)}"], draws[f"test_{int(n)}"]
        samples.append((view.codes(train), dataset.factors_of(train), view.codes(test), dataset.factors_of(test)))
    # ``threads``: the evaluator's (the run's CPU share); the boosting's numbers do not depend on it.
    return downstream_from_codes(samples, random_state, n_threads=threads)
