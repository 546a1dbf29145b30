"""The scikit-learn estimators of the metrics, pinned to the reference's settings, and helpers around them.

The reference study (Locatello et al. 2019, google-research/disentanglement_lib) constructed its estimators
with scikit-learn's defaults of the time, scikit-learn 0.20/0.21 (2018-19). Several defaults have changed
since (``LogisticRegression``: liblinear one-vs-rest became lbfgs multinomial in 0.22; ``LinearSVC``:
``dual=True`` became ``"auto"`` in 1.5; the boosting's ``criterion`` became a no-op in 1.9), so a metric
that relied on today's defaults would score the same model differently on two installs. Every estimator
here is built with explicit settings equal to the reference's effective behaviour under 0.20/0.21:

=====================  =====================================================================================
``logistic_regression``  (BetaVAE score; explicitness) ``LogisticRegression(solver="liblinear", C=1.0,
                         penalty l2, dual=False, tol=1e-4, max_iter=100, fit_intercept=True,
                         intercept_scaling=1, class_weight=None)``, one-vs-rest over classes (0.20's
                         ``multi_class="ovr"``; today through ``OneVsRestClassifier``, which fits the same
                         binary problems and normalises the same sigmoid scores in ``predict_proba``)
``linear_svc``           (SAP) ``LinearSVC(C=0.01, class_weight="balanced", penalty="l2",
                         loss="squared_hinge", dual=True, tol=1e-4, fit_intercept=True,
                         intercept_scaling=1, max_iter=1000)``, one-vs-rest
``gradient_boosting``    (DCI; the reference for :mod:`disent_bench.metrics.dci.boosting`)
                         ``GradientBoostingClassifier(loss="log_loss", learning_rate=0.1, n_estimators=100,
                         subsample=1.0, min_samples_split=2, min_samples_leaf=1, min_weight_fraction_leaf=0,
                         max_depth=3, min_impurity_decrease=0, init=None, max_features=None,
                         max_leaf_nodes=None, n_iter_no_change=None, ccp_alpha=0)``; 0.20's
                         ``criterion="friedman_mse"`` ranks splits exactly as today's squared error at unit
                         sample weights (only rounding differs), and 0.20's ``loss="deviance"`` is today's
                         ``"log_loss"``
``logistic_regression_cv``  (downstream task) 0.20's ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))``,
                         whose ``multi_class="warn"`` meant one-vs-rest: ``OneVsRestClassifier(
                         LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5), solver="lbfgs", penalty l2,
                         scoring="accuracy", tol=1e-4, max_iter=100, refit=True, fit_intercept=True,
                         intercept_scaling=1, class_weight=None))``: per class a binary class-vs-rest
                         problem with its own C (the first of ``logspace(-4, 4, 10)`` with the best summed
                         fold accuracy), refitted on all points; prediction = argmax of the decision
                         functions. Not bit-identical to 0.20 (1.x scales the loss by 1/n, so lbfgs stops
                         elsewhere); ``scoring`` is explicit because its default changes in 1.11
=====================  =====================================================================================

Every estimator gets an explicit ``random_state`` (the reference left it to numpy's global state).
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

__all__ = ["logistic_regression", "logistic_regression_cv", "linear_svc", "gradient_boosting", "quiet_fit",
           "LOGISTIC_REGRESSION", "LOGISTIC_REGRESSION_CV", "LINEAR_SVC", "GRADIENT_BOOSTING"]

# The settings, as scikit-learn parameter names (penalty: see _logistic_kwargs).
LOGISTIC_REGRESSION = {"solver": "liblinear", "C": 1.0, "dual": False, "tol": 1e-4, "max_iter": 100,
                       "fit_intercept": True, "intercept_scaling": 1, "class_weight": None}
# cv: 5 unshuffled, unstratified folds in sample order (KFold holds no state, so one instance serves all).
LOGISTIC_REGRESSION_CV = {"Cs": 10, "cv": KFold(n_splits=5), "solver": "lbfgs", "scoring": "accuracy", "tol": 1e-4,
                          "max_iter": 100, "refit": True, "fit_intercept": True, "intercept_scaling": 1.0,
                          "class_weight": None, "dual": False}
LINEAR_SVC = {"C": 0.01, "class_weight": "balanced", "penalty": "l2", "loss": "squared_hinge", "dual": True,
              "tol": 1e-4, "fit_intercept": True, "intercept_scaling": 1, "max_iter": 1000}
GRADIENT_BOOSTING = {"loss": "log_loss", "learning_rate": 0.1, "n_estimators": 100, "subsample": 1.0,
                     "min_samples_split": 2, "min_samples_leaf": 1, "min_weight_fraction_leaf": 0.0,
                     "max_depth": 3, "min_impurity_decrease": 0.0, "init": None, "max_features": None,
                     "max_leaf_nodes": None, "n_iter_no_change": None, "ccp_alpha": 0.0}


def _logistic_kwargs() -> dict:
    # An L2 penalty: scikit-learn >= 1.8 says so with l1_ratio=0 (``penalty`` is deprecated there),
    # older versions with penalty="l2".
    if inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated":
        return {**LOGISTIC_REGRESSION, "l1_ratio": 0.0}
    return {**LOGISTIC_REGRESSION, "penalty": "l2"}


def logistic_regression(random_state: int) -> OneVsRestClassifier:
    """One-vs-rest liblinear logistic regression, as ``LogisticRegression()`` meant in scikit-learn 0.20."""
    return OneVsRestClassifier(LogisticRegression(random_state=random_state, **_logistic_kwargs()))


def _logistic_cv_kwargs() -> dict:
    parameters = inspect.signature(LogisticRegressionCV).parameters
    kwargs = dict(LOGISTIC_REGRESSION_CV)
    # An L2 penalty: scikit-learn >= 1.8 says so with l1_ratios=(0,) (``penalty`` is deprecated there).
    if parameters["penalty"].default == "deprecated":
        kwargs["l1_ratios"] = (0.0,)
    else:
        kwargs["penalty"] = "l2"
    # scikit-learn >= 1.8 warns unless told to store its CV results in the new layout (numbers unchanged).
    if "use_legacy_attributes" in parameters:
        kwargs["use_legacy_attributes"] = False
    return kwargs


def logistic_regression_cv(random_state: int, n_jobs: int | None = None) -> OneVsRestClassifier:
    """The downstream task's ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))`` as scikit-learn 0.20 ran it:
    one-vs-rest, each class its own cross-validated C.

    ``n_jobs``: the binary problems fitted in parallel (joblib); each is fitted alone either way, so it changes
    the speed only. ``random_state`` is unused by lbfgs; it is passed so that nothing reads a global generator.
    """
    return OneVsRestClassifier(LogisticRegressionCV(random_state=random_state, **_logistic_cv_kwargs()),
                               n_jobs=n_jobs)


def linear_svc(random_state: int) -> LinearSVC:
    """SAP's ``LinearSVC(C=0.01, class_weight="balanced")`` with scikit-learn 0.20's other defaults."""
    return LinearSVC(random_state=random_state, **LINEAR_SVC)


def gradient_boosting(random_state: int) -> GradientBoostingClassifier:
    """DCI's ``GradientBoostingClassifier()`` with the reference's settings written out."""
    return GradientBoostingClassifier(random_state=random_state, **GRADIENT_BOOSTING)


def quiet_fit(model, x: np.ndarray, y: np.ndarray):
    """``model.fit(x, y)`` without ConvergenceWarnings.

    The reference protocol uses estimator defaults (e.g. ``max_iter``), under which the fits on
    poorly-scaled codes often stop at the iteration limit; that is part of the estimator, and a warning per
    (code, factor) pair would only bury the output.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)
