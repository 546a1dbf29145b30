"""The downstream-task metric: the spec's vectors (evaluation-more.md, section 1, DT1 and DT2), hand-made and
degenerate cases, the logistic predictor's pinned settings and the boosting's agreement with scikit-learn."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import threadpoolctl
import torch
from sklearn.base import clone
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier

from disent_bench.metrics import downstream
from disent_bench.metrics.cache import CodeView, Encoder, RepresentationCache
from disent_bench.metrics.sklearn_utils import (LOGISTIC_REGRESSION_CV, gradient_boosting, logistic_regression_cv,
                                                quiet_fit)
from tests.factor_images import factor_classes, factor_image_dataset


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """The direct fits below run with one BLAS thread, as the metric runs them (speed on a loaded machine)."""
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def _reference_toy_sample(num_points: int, random_state: np.random.RandomState, batch_size: int = 16) -> np.ndarray:
    """Factor rows as the reference's generate_batch_factor_code draws them on the spec's toy data (factors of
    3 and 4 values): per batch of min(batch_size, remaining) points, randint(3) for all, then randint(4)."""
    batches = []
    while num_points > 0:
        b = min(batch_size, num_points)
        batches.append(np.column_stack([random_state.randint(3, size=b), random_state.randint(4, size=b)]))
        num_points -= b
    return np.vstack(batches)


@pytest.fixture(scope="module")
def dt1_samples():
    """DT1: RandomState(0), num_train [10, 100], num_test 200; each size's training then test sample."""
    random_state = np.random.RandomState(0)
    samples = []
    for n in (10, 100):
        train = _reference_toy_sample(n, random_state)
        samples.append((train, _reference_toy_sample(200, random_state)))
    return samples


def _encoded(samples, encode):
    return [(encode(train), train, encode(test), test) for train, test in samples]


def _one_hot(factors):
    return np.hstack([np.eye(3)[factors[:, 0]], np.eye(4)[factors[:, 1]]])


def test_dt1_reference_sampling(dt1_samples):
    train, test = dt1_samples[0]
    np.testing.assert_array_equal(train[:, 0], [0, 1, 0, 1, 1, 2, 0, 2, 0, 0])
    np.testing.assert_array_equal(train[:, 1], [0, 2, 1, 2, 3, 3, 2, 0, 1, 1])
    np.testing.assert_array_equal(test[:5, 0], [1, 1, 0, 1, 0])
    np.testing.assert_array_equal(test[:5, 1], [1, 1, 3, 0, 3])


def test_dt1_zero_codes_predict_the_majority_class(dt1_samples):
    scores = downstream.downstream_from_codes(_encoded(dt1_samples, lambda f: np.zeros((len(f), 2))), 0)
    for p in downstream.PREDICTORS:
        assert scores[f"{p}.10.train_accuracy_factor_0"] == 0.5  # class 0 holds 5 of the 10 points
        assert scores[f"{p}.10.test_accuracy_factor_0"] == pytest.approx(0.355, abs=1e-12)
        for n, (train, test) in zip((10, 100), dt1_samples):
            for j in range(2):
                majority = np.argmax(np.bincount(train[:, j]))  # the first of equally large classes
                assert scores[f"{p}.{n}.train_accuracy_factor_{j}"] == pytest.approx(np.mean(train[:, j] == majority))
                assert scores[f"{p}.{n}.test_accuracy_factor_{j}"] == pytest.approx(np.mean(test[:, j] == majority))


def test_dt1_one_hot_codes_are_read_perfectly(dt1_samples):
    scores = downstream.downstream_from_codes(_encoded(dt1_samples, _one_hot), 0)
    accuracies = {k: v for k, v in scores.items() if "accuracy" in k}
    assert len(accuracies) == 2 * 2 * (4 + 4)
    assert all(v == 1.0 for v in accuracies.values()), accuracies
    assert all(scores[f"{p}.{n}.num_single_class_factors"] == 0.0 for p in ("lr", "gbt") for n in (10, 100))


def test_dt1_factor_codes_logistic(dt1_samples):
    scores = downstream.downstream_from_codes(_encoded(dt1_samples, lambda f: f.astype(float)), 0,
                                              predictors=("lr",))
    assert scores["lr.10.mean_test_accuracy"] == pytest.approx(0.77, abs=1e-12)
    assert scores["lr.100.test_accuracy_factor_0"] == 1.0
    assert scores["lr.100.test_accuracy_factor_1"] == pytest.approx(0.735, abs=0.02)  # solver-sensitive
    assert not any(k.startswith("gbt.") for k in scores)
    # The aggregates are those of the per-factor accuracies.
    for n in (10, 100):
        for part in ("train", "test"):
            per_factor = [scores[f"lr.{n}.{part}_accuracy_factor_{j}"] for j in range(2)]
            assert scores[f"lr.{n}.mean_{part}_accuracy"] == pytest.approx(np.mean(per_factor))
            assert scores[f"lr.{n}.min_{part}_accuracy"] == min(per_factor)


def test_dt2_one_vs_rest_is_not_multinomial():
    codes = np.tile(np.arange(4.0), 10)[:, None]
    labels = np.tile(np.arange(4), 10)
    model = quiet_fit(logistic_regression_cv(0), codes, labels)
    np.testing.assert_array_equal(model.predict(np.arange(4.0)[:, None]), [0, 0, 3, 3])
    result = downstream.factor_accuracies(codes, labels[:, None], codes, labels[:, None], "lr", 0)
    assert result.train[0] == 0.5 and result.test[0] == 0.5
    # Today's plain LogisticRegressionCV (multinomial) is a different estimator: it separates the classes.
    multinomial = quiet_fit(clone(logistic_regression_cv(0).estimator), codes, labels)
    assert np.mean(multinomial.predict(codes) == labels) == 1.0


def test_logistic_regression_cv_settings():
    model = logistic_regression_cv(7)
    assert isinstance(model, OneVsRestClassifier)
    params = model.estimator.get_params()
    assert params["Cs"] == 10 and params["solver"] == "lbfgs" and params["scoring"] == "accuracy"
    assert params["max_iter"] == 100 and params["tol"] == 1e-4 and params["refit"] is True
    assert params["fit_intercept"] is True and params["class_weight"] is None and params["random_state"] == 7
    assert isinstance(params["cv"], KFold) and params["cv"].n_splits == 5 and params["cv"].shuffle is False
    assert params.get("l1_ratios") == (0.0,) or params.get("penalty") == "l2"  # an L2 penalty either way
    for key, value in LOGISTIC_REGRESSION_CV.items():
        assert params[key] is value or params[key] == value
    # Neither building nor fitting it trips a deprecation (the 1.9 defaults of scoring and l1_ratios are).
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(60, 3))
    labels = (codes[:, 0] > 0).astype(int) + (codes[:, 1] > 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        fitted = quiet_fit(logistic_regression_cv(7), codes, labels)
    # Each class-vs-rest problem has its own C from logspace(-4, 4, 10).
    grid = np.logspace(-4, 4, 10)
    chosen = [float(np.ravel(e.C_)[0]) for e in fitted.estimators_]
    assert len(chosen) == 3 and all(np.isclose(grid, c).any() for c in chosen)
    # On uninformative codes every C scores the same: the first (smallest) wins the tie.
    flat = quiet_fit(logistic_regression_cv(0), np.zeros((20, 1)), np.arange(20) % 2)
    assert float(np.ravel(flat.estimators_[0].C_)[0]) == pytest.approx(1e-4)


def test_boosting_predictor_matches_sklearn():
    rng = np.random.default_rng(4)
    factors = np.column_stack([rng.integers(0, 3, 160), rng.integers(0, 2, 160)])
    codes = np.column_stack([factors[:, 0] + rng.normal(0, 0.7, 160), factors[:, 1] + rng.normal(0, 0.7, 160),
                             rng.normal(size=160)])
    train, test = slice(0, 100), slice(100, 160)
    ours = downstream.factor_accuracies(codes[train], factors[train], codes[test], factors[test], "gbt", 11,
                                        n_threads=1)
    for j in range(2):
        model = gradient_boosting(11).fit(codes[train], factors[train, j])
        assert ours.train[j] == np.mean(model.predict(codes[train]) == factors[train, j])
        assert ours.test[j] == np.mean(model.predict(codes[test]) == factors[test, j])
    assert 0.5 < ours.test[0] < 1.0  # noisy enough that the trees matter


def test_single_class_factors_are_predicted_not_fitted():
    rng = np.random.default_rng(1)
    train_factors = np.column_stack([np.full(12, 2), rng.integers(0, 3, 12)])
    train_factors[:3, 1] = [0, 1, 2]
    test_factors = np.column_stack([np.array([2, 0, 2, 1] * 5), rng.integers(0, 3, 20)])
    codes = rng.normal(size=(32, 2))
    for p in downstream.PREDICTORS:
        result = downstream.factor_accuracies(codes[:12], train_factors, codes[12:], test_factors, p, 0)
        assert result.num_single_class == 1
        assert result.train[0] == 1.0 and result.test[0] == 0.5
        assert np.all(np.isfinite(result.train)) and np.all(np.isfinite(result.test))
    scores = downstream.downstream_from_codes([(codes[:12], train_factors, codes[12:], test_factors)], 0)
    assert scores["lr.12.num_single_class_factors"] == 1.0 and scores["gbt.12.num_single_class_factors"] == 1.0
    # A sample too small for 5-fold cross-validation is fine when nothing has to be fitted ...
    one_point = downstream.factor_accuracies(codes[:1], train_factors[:1], codes[12:], test_factors, "lr", 0)
    assert one_point.num_single_class == 2 and one_point.train.tolist() == [1.0, 1.0]
    assert one_point.test[0] == 0.5
    # ... and a clear error otherwise.
    with pytest.raises(ValueError, match="at least 5 training points"):
        downstream.factor_accuracies(codes[:3], train_factors[:3], codes[12:], test_factors, "lr", 0)


def test_class_missing_from_folds_and_from_the_training_sample():
    # Ten points, class 3 once (its binary problem has no positives in four of the five folds' training
    # parts) and class 4 only in the test sample: no crash, and class 4 is never predicted.
    train_labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 3, 2])
    test_labels = np.array([4, 4, 0, 1, 2, 3])
    train_codes, test_codes = train_labels[:, None] * 1.0, test_labels[:, None] * 1.0
    for p in downstream.PREDICTORS:
        result = downstream.factor_accuracies(train_codes, train_labels[:, None], test_codes, test_labels[:, None],
                                              p, 0)
        assert 0.0 <= result.train[0] <= 1.0 and result.test[0] <= 4 / 6
    model = quiet_fit(logistic_regression_cv(0), train_codes, train_labels)
    assert 4 not in model.predict(np.linspace(-5, 10, 50)[:, None])


def test_sample_efficiency():
    assert downstream.sample_efficiency({100: 0.6, 10000: 0.8}) == pytest.approx(0.75)
    assert math.isnan(downstream.sample_efficiency({10: 0.5, 100: 0.6}))
    assert math.isnan(downstream.sample_efficiency({100: 0.6, 10000: 0.0}))
    # End to end: a binary factor read off a perfect code; 10000 points are cheap in one dimension.
    rng = np.random.default_rng(2)
    samples = []
    for n in (100, 10000):
        train, test = rng.integers(0, 2, (n, 1)), rng.integers(0, 2, (50, 1))
        samples.append((train * 1.0, train, test * 1.0, test))
    scores = downstream.downstream_from_codes(samples, 0, predictors=("gbt",))
    assert scores["gbt.sample_efficiency"] == 1.0
    small = downstream.downstream_from_codes(samples[:1], 0, predictors=("gbt",))
    assert math.isnan(small["gbt.sample_efficiency"])


def test_input_errors():
    codes, factors = np.zeros((10, 2)), np.zeros((10, 1), dtype=np.int64)
    with pytest.raises(ValueError, match="same training size"):
        downstream.downstream_from_codes([(codes, factors, codes, factors)] * 2)
    with pytest.raises(ValueError, match="unknown downstream predictor"):
        downstream.downstream_from_codes([(codes, factors, codes, factors)], predictors=("svm",))
    with pytest.raises(ValueError, match="number of points"):
        downstream.factor_accuracies(codes, factors[:5], codes, factors, "gbt")
    with pytest.raises(ValueError, match="at least one point"):
        downstream.factor_accuracies(codes, factors, codes[:0], factors[:0], "gbt")


def _view(dataset, encoder, draws) -> CodeView:
    indices = np.concatenate(list(draws.values()))
    cache = RepresentationCache(dataset, Encoder(encoder, torch.device("cpu")), indices, progress=False)
    return CodeView(cache, "mean", np.random.default_rng(0))


def test_draw_and_compute_end_to_end():
    dataset = factor_image_dataset((2, 3, 4))
    settings = {"train_sizes": (10, 60), "num_test": 40}
    draws = downstream.draw(dataset, settings, np.random.default_rng(3))
    assert list(draws) == ["train_10", "test_10", "train_60", "test_60"]  # in this order from one generator
    rng = np.random.default_rng(3)
    for key, n in (("train_10", 10), ("test_10", 40), ("train_60", 60), ("test_60", 40)):
        np.testing.assert_array_equal(draws[key], dataset.sample_indices(n, rng))
    scores = downstream.compute(dataset, draws, _view(dataset, factor_classes, draws), settings, 5, threads=1)
    expected = {f"{p}.{n}.{s}" for p in ("lr", "gbt") for n in (10, 60)
                for s in ["mean_train_accuracy", "mean_test_accuracy", "min_train_accuracy", "min_test_accuracy",
                          "num_single_class_factors"]
                + [f"{part}_accuracy_factor_{j}" for part in ("train", "test") for j in range(3)]}
    assert set(scores) == expected | {"lr.sample_efficiency", "gbt.sample_efficiency"}
    assert scores["gbt.60.mean_test_accuracy"] == 1.0  # the codes are the factor classes
    assert scores["lr.60.test_accuracy_factor_0"] == 1.0  # a binary factor is linearly separable
    assert math.isnan(scores["lr.sample_efficiency"])
    assert all(isinstance(v, float) for v in scores.values())
    # Deterministic, and the thread count changes nothing.
    again = downstream.compute(dataset, draws, _view(dataset, factor_classes, draws), settings, 5, threads=2)
    assert again.keys() == scores.keys()
    assert all(again[k] == scores[k] or (math.isnan(again[k]) and math.isnan(scores[k])) for k in scores)
    zeros = downstream.compute(dataset, draws, _view(dataset, lambda x: np.zeros((x.shape[0], 3)), draws),
                               settings, 5, threads=1)
    for n in (10, 60):
        train_factors = dataset.factors_of(draws[f"train_{n}"])
        for j in range(3):
            majority = np.argmax(np.bincount(train_factors[:, j]))
            share = np.mean(dataset.factors_of(draws[f"test_{n}"])[:, j] == majority)
            assert zeros[f"lr.{n}.test_accuracy_factor_{j}"] == zeros[f"gbt.{n}.test_accuracy_factor_{j}"] == share
