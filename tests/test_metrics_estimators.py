"""The metrics' scikit-learn estimators are pinned to the reference's (scikit-learn 0.20) settings.

A test per estimator pins every parameter that decides its numbers, so that a new scikit-learn default
can never change a score silently.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

from disent_bench.metrics import beta_vae, modularity, sap
from disent_bench.metrics.sklearn_utils import gradient_boosting, linear_svc, logistic_regression


def test_logistic_regression_is_liblinear_one_vs_rest_l2():
    model = logistic_regression(3)
    assert isinstance(model, OneVsRestClassifier)
    inner = model.estimator
    assert isinstance(inner, LogisticRegression)
    params = inner.get_params()
    expected = {"solver": "liblinear", "C": 1.0, "dual": False, "tol": 1e-4, "max_iter": 100,
                "fit_intercept": True, "intercept_scaling": 1, "class_weight": None, "random_state": 3}
    assert {key: params[key] for key in expected} == expected
    # an L2 penalty, however this scikit-learn spells it
    assert params.get("penalty") == "l2" or (params.get("penalty") == "deprecated" and params["l1_ratio"] == 0.0)


def test_linear_svc_is_dual_squared_hinge():
    params = linear_svc(4).get_params()
    expected = {"C": 0.01, "class_weight": "balanced", "penalty": "l2", "loss": "squared_hinge", "dual": True,
                "tol": 1e-4, "fit_intercept": True, "intercept_scaling": 1, "max_iter": 1000,
                "multi_class": "ovr", "random_state": 4}
    assert isinstance(linear_svc(4), LinearSVC)
    assert {key: params[key] for key in expected} == expected


def test_gradient_boosting_has_the_reference_defaults():
    model = gradient_boosting(5)
    assert isinstance(model, GradientBoostingClassifier)
    params = model.get_params()
    expected = {"loss": "log_loss", "learning_rate": 0.1, "n_estimators": 100, "subsample": 1.0,
                "min_samples_split": 2, "min_samples_leaf": 1, "min_weight_fraction_leaf": 0.0, "max_depth": 3,
                "min_impurity_decrease": 0.0, "init": None, "max_features": None, "max_leaf_nodes": None,
                "n_iter_no_change": None, "ccp_alpha": 0.0, "random_state": 5, "warm_start": False}
    assert {key: params[key] for key in expected} == expected


def test_one_vs_rest_probabilities_are_normalised_sigmoids():
    # scikit-learn 0.20's LogisticRegression(multi_class="ovr").predict_proba: sigmoid of each class's
    # decision value, divided by their sum over classes.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    y = np.argmax(x + rng.normal(0, 0.5, size=x.shape), axis=1)
    model = logistic_regression(0).fit(x, y)
    scores = 1.0 / (1.0 + np.exp(-np.column_stack([e.decision_function(x) for e in model.estimators_])))
    np.testing.assert_allclose(model.predict_proba(x), scores / scores.sum(axis=1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("module", [beta_vae, modularity, sap])
def test_metric_modules_construct_no_estimator_of_their_own(module):
    # They take their estimators from sklearn_utils, so the pinned settings are the ones used.
    for name in ("LogisticRegression", "LinearSVC", "GradientBoostingClassifier"):
        assert not hasattr(module, name), f"{module.__name__} imports {name}; use sklearn_utils"
