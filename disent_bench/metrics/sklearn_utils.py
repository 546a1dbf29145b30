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
=====================  =====================================================================================

Every estimator gets an explicit ``random_state`` (the reference left it to numpy's global state).
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

__all__ = ["logistic_regression", "linear_svc", "gradient_boosting", "quiet_fit", "LOGISTIC_REGRESSION",
           "LINEAR_SVC", "GRADIENT_BOOSTING"]

# The settings, as scikit-learn parameter names (penalty: see _logistic_kwargs).
LOGISTIC_REGRESSION = {"solver": "liblinear", "C": 1.0, "dual": False, "tol": 1e-4, "max_iter": 100,
                       "fit_intercept": True, "intercept_scaling": 1, "class_weight": None}
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
