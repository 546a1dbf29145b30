"""UDR (disent_bench.metrics.udr): the spec's vectors (spec/evaluation-more.md section 3), the cases of
disentanglement_lib's ``udr_test.py`` replayed on our own noise images, Decision 4, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from sklearn.preprocessing import StandardScaler

from disent_bench.metrics import udr


def _noise_codes(num_points: int = 1000, dim: int = 10, seed: int = 0) -> np.ndarray:
    """The reference test's representation: the first ``dim`` pixels of uniform-noise 64 x 64 images."""
    images = np.random.RandomState(seed).random_sample((num_points, 64, 64, 1))
    return images.reshape(num_points, -1)[:, :dim]


# -- S (relative strength) ---------------------------------------------------------------------------------

def test_pair_score_reference_cases():
    # udr_test.py's test_relative_strength_disentanglement, with the exact values.
    assert udr.pair_score(np.eye(3)) == 1.0
    assert udr.pair_score([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) == pytest.approx(2 / 3, abs=1e-15)
    assert udr.pair_score(np.ones((3, 3))) == pytest.approx(1 / 3, abs=1e-15)
    assert udr.pair_score(np.zeros((3, 3))) == 0.0


def test_pair_score_spec_vectors_and_hand_values():
    # Non-square: columns 0.81/1.1 and 0.64/0.9, rows 0.81/1, 0.04/0.2, 0.64/0.8.
    by_hand = 0.5 * (np.mean([0.81 / 1.1, 0.64 / 0.9]) + np.mean([0.81, 0.2, 0.8]))
    assert udr.pair_score([[0.9, 0.1], [0.2, 0.0], [0.0, 0.8]]) == pytest.approx(by_hand, abs=1e-15)
    assert by_hand == pytest.approx(0.663535, abs=1e-6)
    # A zero row is 0/0 and counts as 0: columns 0.5 and 0.5, rows 0.25 and 0 -> 0.3125.
    assert udr.pair_score([[0.5, 0.5], [0.0, 0.0]]) == pytest.approx(0.3125, abs=1e-15)
    # S scales with R: a permutation matrix times c scores c. Permutation invariant.
    permutation = np.eye(4)[[2, 0, 3, 1]]
    assert udr.pair_score(0.9 * permutation) == pytest.approx(0.9, abs=1e-15)
    # Equals the paper's joint sum over d_a + d_b on a square matrix.
    r = np.abs(np.random.default_rng(0).normal(size=(5, 5)))
    joint = (np.sum(r.max(axis=0) ** 2 / r.sum(axis=0)) + np.sum(r.max(axis=1) ** 2 / r.sum(axis=1))) / 10
    assert udr.pair_score(r) == pytest.approx(joint, abs=1e-14)
    # Empty after filtering: nothing to match.
    assert udr.pair_score(np.zeros((0, 3))) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        udr.pair_score([[-1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="2-D"):
        udr.pair_score([1.0, 2.0])


def test_model_scores_are_medians_over_the_target_column():
    pairwise = np.array([[0.0, 0.9, 0.5], [0.8, 0.0, 0.4], [0.6, 0.7, 0.0]])
    np.testing.assert_allclose(udr.model_scores(pairwise), [0.7, 0.8, 0.45], atol=1e-15)
    np.testing.assert_allclose(udr.model_scores([[0.0, 0.3], [0.6, 0.0]]), [0.6, 0.3], atol=1e-15)
    with pytest.raises(ValueError, match="M >= 2"):
        udr.model_scores(np.zeros((1, 1)))


# -- correlation matrices ----------------------------------------------------------------------------------

def test_lasso_on_a_permuted_sign_flipped_copy():
    # The spec's vector: an exact standardised copy shrinks to 1 - alpha = 0.9 under Lasso(alpha=0.1).
    x = StandardScaler().fit_transform(np.random.RandomState(0).randn(1000, 3))
    target = x[:, [2, 0, 1]].copy()
    target[:, 1] *= -1
    r = udr.correlation_matrix(x, target, "lasso")
    expected = np.zeros((3, 3))
    expected[2, 0] = expected[0, 1] = expected[1, 2] = 0.9
    np.testing.assert_allclose(r, expected, atol=1e-6)
    # S of 0.9 times a permutation is 0.9. (The spec's "S = 1" for this vector is a slip: S is not scale
    # invariant, and the reference's relative_strength_disentanglement gives 0.9 as well.)
    assert udr.pair_score(r) == pytest.approx(0.9, abs=1e-6)


def test_correlation_matrices_reference_cases():
    # udr_test.py's test_spearman_correlation and test_lasso_correlation (same inputs, same tolerances).
    random_state = np.random.RandomState(0)
    vec1 = random_state.random_sample((1000, 3))
    np.testing.assert_allclose(udr.correlation_matrix(vec1, vec1.copy(), "spearman"), np.eye(3), atol=0.1)
    vec1 = random_state.random_sample((1000, 3))
    vec2 = vec1.copy()
    vec2[:, 1] = vec2[:, 0]
    np.testing.assert_allclose(udr.correlation_matrix(vec1, vec2, "spearman"),
                               [[1, 1, 0], [0, 0, 0], [0, 0, 1]], atol=0.1)
    random_state = np.random.RandomState(0)
    vec1 = random_state.random_sample((1000, 3)) * 10.0
    np.testing.assert_allclose(udr.correlation_matrix(vec1, vec1.copy(), "lasso"), np.eye(3), atol=0.2)
    vec1 = random_state.random_sample((1000, 3)) * 10.0
    vec2 = vec1.copy()
    vec2[:, 1] = vec2[:, 0]
    np.testing.assert_allclose(udr.correlation_matrix(vec1, vec2, "lasso"),
                               [[1, 1, 0], [0, 0, 0], [0, 0, 1]], atol=0.2)


def test_spearman_matrix_equals_scipy_pair_by_pair():
    rng = np.random.default_rng(1)
    a = np.round(rng.normal(size=(200, 4)), 1)  # rounding makes ties, ranked by their average
    b = np.column_stack([a[:, 2] ** 3, -a[:, 0], rng.normal(size=200), np.full(200, 2.0)])
    r = udr.correlation_matrix(a, b, "spearman")
    for i in range(4):
        for j in range(3):
            assert r[i, j] == pytest.approx(abs(scipy.stats.spearmanr(a[:, i], b[:, j]).statistic), abs=1e-12)
    # A constant latent: scipy's NaN counts as 0 (Decision 4).
    np.testing.assert_array_equal(r[:, 3], 0.0)
    assert r[2, 0] == pytest.approx(1.0, abs=1e-12) and r[0, 1] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="unknown correlation"):
        udr.correlation_matrix(a, b, "pearson")
    with pytest.raises(ValueError, match="same n"):
        udr.correlation_matrix(a, b[:10], "lasso")


# -- the KL per dimension ----------------------------------------------------------------------------------

def test_kl_per_dimension_by_hand():
    mean = np.array([[0.0, 1.0, 2.0], [0.0, -1.0, 0.0]])
    logvar = np.array([[0.0, 0.0, np.log(2.0)], [0.0, 0.0, np.log(2.0)]])
    # 0.5 (mu^2 + var - log var - 1): dim 0 -> 0; dim 1 -> 0.5; dim 2 -> mean of 0.5 (4 + 1 - ln2) and
    # 0.5 (1 - ln2).
    expected = [0.0, 0.5, np.mean([0.5 * (5 - np.log(2)), 0.5 * (1 - np.log(2))])]
    np.testing.assert_allclose(udr.kl_per_dimension(mean, logvar), expected, atol=1e-15)
    with pytest.raises(ValueError, match="same shape"):
        udr.kl_per_dimension(mean, logvar[:, :2])


# -- udr_scores: the reference's test cases on our noise images ---------------------------------------------

@pytest.mark.parametrize("correlation", ["lasso", "spearman"])
def test_permuted_sign_flipped_copy_scores_high(correlation):
    codes = _noise_codes()
    rng = np.random.RandomState(1)
    permutation = rng.permutation(10)
    flipped = rng.choice(10, 5)
    copy = codes[:, permutation].copy()
    copy[:, flipped] *= -1.0
    result = udr.udr_scores([codes, copy], [np.ones(10), np.ones(10)], correlation=correlation)
    assert np.all((result.model_scores >= 0.8) & (result.model_scores <= 1.0))
    # Each latent matches its copy with |rho| = 1 or a Lasso coefficient of 1 - alpha = 0.9 (the Lasso's L1
    # penalty zeroes the rest; Spearman keeps the small sample correlations of unrelated pixels).
    raw = result.raw_correlations[0, 1]
    np.testing.assert_allclose(raw[permutation, np.arange(10)], 1.0 if correlation == "spearman" else 0.9,
                               atol=1e-6)
    if correlation == "lasso":
        np.testing.assert_allclose(result.model_scores, 0.9, atol=1e-6)
    np.testing.assert_allclose(result.pairwise[0, 1], udr.pair_score(raw), atol=0)
    np.testing.assert_array_equal(np.diag(result.pairwise), 0.0)
    assert result.raw_correlations.shape == (2, 2, 10, 10)


def test_kl_filter_reference_case():
    # udr_test.py's test_metric_kl: latent 0 is a pixel, latents 1..9 fresh noise per model, KL [1, 0 x 9].
    pixel = _noise_codes(dim=1)
    noise = np.random.RandomState(2)
    models = [np.column_stack([pixel, noise.random_sample((1000, 9))]) for _ in range(2)]
    kl = [np.r_[1.0, np.zeros(9)]] * 2
    unfiltered = udr.udr_scores(models, kl, filter_low_kl=False)
    assert np.all((unfiltered.model_scores >= 0.0) & (unfiltered.model_scores <= 0.2))
    # By hand: R is 0.9 at (0, 0) and 0 elsewhere: one column and one row score 0.81/0.9, nine 0/0 -> 0.
    np.testing.assert_allclose(unfiltered.model_scores, 0.09, atol=1e-6)
    filtered = udr.udr_scores(models, kl, filter_low_kl=True)
    assert np.all((filtered.model_scores >= 0.8) & (filtered.model_scores <= 1.0))
    np.testing.assert_allclose(filtered.model_scores, 0.9, atol=1e-6)
    # Raw correlations are kept unfiltered.
    np.testing.assert_allclose(filtered.raw_correlations[0, 1], unfiltered.raw_correlations[0, 1])


def test_threshold_zeroes_and_filters_alike():
    # Decision 4: kl_threshold decides both which latents are zeroed and which are kept.
    codes = _noise_codes(dim=3)
    kl = [np.array([1.0, 0.3, 1.0])] * 2
    low = udr.udr_scores([codes, codes], kl, correlation="spearman", kl_threshold=0.01)
    high = udr.udr_scores([codes, codes], kl, correlation="spearman", kl_threshold=0.5, filter_low_kl=False)
    np.testing.assert_allclose(low.raw_correlations[0, 1], np.eye(3), atol=0.1)
    raw = high.raw_correlations[0, 1]
    np.testing.assert_array_equal(raw[1], 0.0)  # latent 1 of both models zeroed: its NaN rho counts as 0
    np.testing.assert_array_equal(raw[:, 1], 0.0)
    # Unfiltered, the dead latent only loses its own row and column (scipy's NaN would have zeroed every
    # column ratio): the other correlations are unchanged, and the zero row and column count as 0 in
    # means over 3, so S is 2/3 of S on the live 2 x 2 block.
    live = [0, 2]
    np.testing.assert_allclose(raw[np.ix_(live, live)], low.raw_correlations[0, 1][np.ix_(live, live)], atol=1e-15)
    assert high.pairwise[0, 1] == pytest.approx(udr.pair_score(raw), abs=1e-15)
    assert high.pairwise[0, 1] == pytest.approx(2 / 3 * udr.pair_score(raw[np.ix_(live, live)]), abs=1e-15)
    # Filtered, the dead latent is simply left out.
    filtered = udr.udr_scores([codes, codes], kl, correlation="spearman", kl_threshold=0.5)
    assert filtered.pairwise[0, 1] == pytest.approx(udr.pair_score(raw[np.ix_(live, live)]), abs=1e-15)


def test_three_models_and_median():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(300, 4))
    models = [base, base[:, ::-1] * 2.0 + 1.0, rng.normal(size=(300, 4))]
    result = udr.udr_scores(models, [np.ones(4)] * 3, correlation="spearman")
    np.testing.assert_allclose(result.model_scores, udr.model_scores(result.pairwise), atol=0)
    np.testing.assert_allclose(result.raw_correlations[0, 1][np.arange(4), np.arange(4)[::-1]], 1.0, atol=1e-12)
    assert result.pairwise[0, 1] > 0.85 and result.pairwise[0, 2] < 0.6
    # The two matching models rank above the unrelated one.
    assert result.model_scores[2] < min(result.model_scores[:2])
    again = udr.udr_scores(models, [np.ones(4)] * 3, correlation="spearman")
    np.testing.assert_array_equal(again.model_scores, result.model_scores)


def test_model_without_informative_latents_scores_zero():
    codes = _noise_codes(dim=3)
    result = udr.udr_scores([codes, codes], [np.ones(3), np.zeros(3)])
    np.testing.assert_array_equal(result.model_scores, 0.0)


def test_refusals():
    codes = _noise_codes(num_points=20, dim=3)
    with pytest.raises(ValueError, match="at least 2 models"):
        udr.udr_scores([codes], [np.ones(3)])
    with pytest.raises(ValueError, match="same latent size"):
        udr.udr_scores([codes, codes[:, :2]], [np.ones(3), np.ones(2)])
    with pytest.raises(ValueError, match="same images"):
        udr.udr_scores([codes, codes[:10]], [np.ones(3), np.ones(3)])
    with pytest.raises(ValueError, match="one KL vector per model"):
        udr.udr_scores([codes, codes], [np.ones(3)])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        udr.udr_scores([codes, codes], [np.ones(3), np.ones(4)])
    with pytest.raises(ValueError, match="unknown correlation"):
        udr.udr_scores([codes, codes], [np.ones(3)] * 2, correlation="kendall")
    with pytest.raises(ValueError, match="finite"):
        udr.udr_scores([codes, np.full_like(codes, np.nan)], [np.ones(3)] * 2)
