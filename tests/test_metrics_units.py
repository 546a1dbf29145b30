"""Unit tests of the metric estimators on hand-made inputs (values from the reference tests and by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score, roc_auc_score

from disent_bench.metrics import dci, factor_vae, mig, modularity, sap
from disent_bench.metrics.discrete import discrete_entropy, histogram_discretize, mutual_info_matrix


@pytest.mark.parametrize("n,num_a,num_b", [(2000, 4, 3), (37, 5, 2), (1, 2, 2)])
def test_plugin_mutual_information_equals_sklearn(n, num_a, num_b):
    rng = np.random.default_rng(n)
    a = rng.integers(0, 21, size=(n, num_a))
    b = rng.integers(0, 7, size=(n, num_b))
    a[:, 0] = 3  # a constant code: exactly zero information
    if n > 1:
        b[:, 1] = a[:, 1] % 5  # a dependent pair: large information
    m = mutual_info_matrix(a, b)
    expected = np.array([[mutual_info_score(b[:, j], a[:, i]) for j in range(num_b)] for i in range(num_a)])
    np.testing.assert_allclose(m, expected, rtol=0, atol=1e-12)
    assert np.all(m[0] == 0.0)
    if n > 1:
        assert m[1, 1] > 0.5
    np.testing.assert_allclose(discrete_entropy(b), [mutual_info_score(b[:, j], b[:, j]) for j in range(num_b)],
                               atol=1e-12)


def test_histogram_discretize_matches_numpy_and_puts_max_in_last_bin():
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.normal(size=500), rng.uniform(-3, 7, size=500), np.full(500, 2.5)])
    binned = histogram_discretize(codes, 20)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], 20)[1]
        np.testing.assert_array_equal(binned[:, d], np.digitize(codes[:, d], edges[:-1]))
    assert binned[np.argmax(codes[:, 0]), 0] == 20 and binned[np.argmin(codes[:, 0]), 0] == 1
    assert binned[:, :2].min() == 1 and binned[:, :2].max() == 20
    assert np.unique(binned[:, 2]).size == 1  # a constant code falls in one bin


def test_dci_on_importance_matrices():
    diagonal = np.diag(5.0 * np.ones(5))
    assert dci.disentanglement(diagonal) == pytest.approx(1.0)
    assert dci.completeness(diagonal) == pytest.approx(1.0)
    # One code for two factors (5 codes x 10 factors): D = 1 - ln2/ln10.
    side_by_side = np.hstack([diagonal, diagonal])
    assert dci.disentanglement(side_by_side) == pytest.approx(1 - math.log(2) / math.log(10), abs=1e-8)
    assert dci.completeness(side_by_side) == pytest.approx(1.0)
    # Two codes per factor (10 codes x 5 factors): D = 1, C = 1 - ln2/ln10.
    stacked = np.vstack([diagonal, diagonal])
    assert dci.disentanglement(stacked) == pytest.approx(1.0)
    assert dci.completeness(stacked) == pytest.approx(1 - math.log(2) / math.log(10), abs=1e-8)
    # Unused codes weigh nothing; all-zero importance scores 0, not NaN.
    assert dci.disentanglement(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx(1.0)
    assert dci.disentanglement(np.zeros((10, 10))) == pytest.approx(0.0, abs=1e-6)
    assert dci.completeness(np.zeros((10, 10))) == pytest.approx(0.0, abs=1e-6)
    # Uniform importance: nothing disentangled.
    assert dci.disentanglement(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-9)


def test_modularity_of_mutual_information_matrices():
    assert modularity.modularity(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx(2 / 3)
    assert modularity.modularity(np.eye(3)) == pytest.approx(1.0)
    # A code with equal information on two of three factors: delta = 1/2, score 1/2.
    assert modularity.modularity(np.array([[1.0, 1.0, 0.0]])) == pytest.approx(0.5)
    assert modularity.modularity(np.zeros((4, 3))) == 0.0


def test_one_vs_rest_auc_equals_sklearn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=400)
    probabilities = np.round(rng.random((400, 5)), 2)  # rounding makes ties, which must be averaged
    probabilities[:, 2] += (labels == 2)  # one informative column
    expected = np.mean([roc_auc_score(labels == c, probabilities[:, c]) for c in range(5)])
    assert modularity.ovr_auc(np.arange(5), probabilities, labels) == pytest.approx(expected, abs=1e-12)
    # A class missing from the labels is left out rather than breaking the average.
    labels[labels == 4] = 0
    expected = np.mean([roc_auc_score(labels == c, probabilities[:, c]) for c in range(4)])
    assert modularity.ovr_auc(np.arange(5), probabilities, labels) == pytest.approx(expected, abs=1e-12)


def test_factor_vae_majority_vote_classifier():
    train = np.array([[3, 0, 2], [3, 5, 0], [0, 1, 2]])  # dim 0: tie 0/1 -> 0; dim 2: tie 0/2 -> 0
    evals = np.array([[1, 0, 1], [1, 2, 0], [0, 0, 1]])
    scores = factor_vae.score_votes(train, evals)
    assert scores["train_accuracy"] == pytest.approx((3 + 5 + 2) / train.sum())
    assert scores["eval_accuracy"] == pytest.approx((1 + 2 + 1) / evals.sum())
    votes = factor_vae.vote_matrix(np.array([0, 0, 2, 1]), np.array([1, 1, 0, 1]), 3, 2)
    np.testing.assert_array_equal(votes, [[0, 2], [0, 1], [1, 0]])


def test_sap_and_mig_gaps():
    scores = np.array([[0.9, 0.2], [0.5, 0.7], [0.1, 0.6]])
    assert sap.sap_from_scores(scores) == pytest.approx(((0.9 - 0.5) + (0.7 - 0.6)) / 2)
    assert math.isnan(sap.sap_from_scores(scores[:1]))
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 10, size=(3000, 2))
    # Code 0 = factor 0, code 1 = noise, code 2 = factor 1 + a little noise.
    codes = np.column_stack([factors[:, 0], rng.normal(size=3000), factors[:, 1] + 0.01 * rng.normal(size=3000)])
    assert mig.mig_from_codes(codes, factors) > 0.9
    assert mig.mig_from_codes(codes[:, [0, 0, 2]], factors) < 0.55  # factor 0 twice: its gap is 0
