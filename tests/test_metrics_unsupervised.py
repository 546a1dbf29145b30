"""The unsupervised scores (Gaussian total correlation, Wasserstein correlation, mutual information score).

Hand-computed cases, agreement with the reference's own formulas (``slogdet`` and ``scipy.linalg.sqrtm``
on the covariance, ``sklearn.metrics.mutual_info_score`` per pair), the degenerate codes the reference
cannot score, and ``evaluate`` end to end on the toy factor-image data.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
from sklearn.metrics import mutual_info_score

from disent_bench.metrics import available, evaluate, unsupervised
from disent_bench.metrics.discrete import histogram_discretize
from disent_bench.metrics.unsupervised import (gaussian_total_correlation, gaussian_wasserstein_correlation,
                                               unsupervised_scores)
from factor_images import factor_classes, factor_image_dataset
from test_metrics_evaluate import TINY

# A 2-D covariance with variances 4 and 1 and correlation 0.6, and its scores by hand:
# TC = -0.5 log(1 - 0.6^2) = -0.5 log 0.64.
# Wasserstein: diag(C) C is similar to S = [[4*4, 2*1.2*1], [1.2*2*1, 1*1]] = [[16, 2.4], [2.4, 1]];
# for a 2x2 PSD matrix, tr sqrt(S) = sqrt(tr S + 2 sqrt(det S)) = sqrt(17 + 2 * 3.2) = sqrt(23.4),
# so W = 2 tr C - 2 sqrt(23.4) = 10 - 2 sqrt(23.4) = 0.32529..., and W / tr C = W / 5.
COV_2D = np.array([[4.0, 1.2], [1.2, 1.0]])
TC_2D = -0.5 * math.log(0.64)
W_2D = 10.0 - 2.0 * math.sqrt(23.4)


def with_covariance(cov: np.ndarray, n: int = 500, seed: int = 0) -> np.ndarray:
    """Codes ``(n, D)`` whose sample covariance (np.cov, ddof 1) is exactly ``cov`` up to rounding."""
    z = np.random.default_rng(seed).normal(size=(n, cov.shape[0]))
    z -= z.mean(axis=0)
    white = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return white @ np.linalg.cholesky(cov).T + 3.0  # an offset: the scores ignore the mean


def reference_formulas(codes: np.ndarray, num_bins: int = 20) -> dict[str, float]:
    """The reference's computation spelled out: np.cov, slogdet, scipy sqrtm, sklearn per pair."""
    cov = np.cov(codes, rowvar=False)
    with warnings.catch_warnings():  # sqrtm warns on the singular covariances tested here
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])
    wasserstein = 2 * np.trace(cov) - 2 * np.trace(root).real
    binned = histogram_discretize(codes, num_bins)
    d = codes.shape[1]
    pairs = [mutual_info_score(binned[:, j], binned[:, i]) for i in range(d) for j in range(d) if i != j]
    return {"gaussian_total_correlation": 0.5 * (np.log(np.diag(cov)).sum() - np.linalg.slogdet(cov)[1]),
            "gaussian_wasserstein_correlation": wasserstein,
            "gaussian_wasserstein_correlation_norm": wasserstein / np.trace(cov),
            "mutual_info_score": sum(pairs) / (d * d - d)}


def test_diagonal_covariance_is_independent():
    cov = np.diag([1.0, 4.0, 0.25, 9.0])
    assert gaussian_total_correlation(cov) == pytest.approx(0.0, abs=1e-12)
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("rho", [0.0, 0.3, -0.6, 0.9, 0.999])
@pytest.mark.parametrize("scales", [(1.0, 1.0), (2.0, 0.1)])
def test_total_correlation_of_a_correlated_pair(rho, scales):
    s = np.array(scales)
    cov = np.array([[1.0, rho], [rho, 1.0]]) * s[:, None] * s[None, :]
    assert gaussian_total_correlation(cov) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=1e-12)


def test_wasserstein_of_a_2d_gaussian_by_hand():
    assert gaussian_total_correlation(COV_2D) == pytest.approx(TC_2D, rel=1e-12)
    assert gaussian_wasserstein_correlation(COV_2D) == pytest.approx(W_2D, rel=1e-12)
    # The reference's own test vector: unit variances, correlation 0.9 -> S = C, det 0.19.
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(4 - 2 * math.sqrt(2 + 2 * math.sqrt(0.19)))


def test_scores_of_codes_with_a_known_covariance():
    scores = unsupervised_scores(with_covariance(COV_2D))
    assert scores["gaussian_total_correlation"] == pytest.approx(TC_2D, rel=1e-9)
    assert scores["gaussian_wasserstein_correlation"] == pytest.approx(W_2D, rel=1e-9)
    assert scores["gaussian_wasserstein_correlation_norm"] == pytest.approx(W_2D / 5.0, rel=1e-9)


@pytest.mark.parametrize("dim", [2, 5, 10])
def test_agrees_with_the_reference_formulas(dim):
    rng = np.random.default_rng(dim)
    mixing = rng.normal(size=(dim, dim)) * rng.uniform(0.01, 10.0, size=dim)  # scales over three decades
    codes = rng.normal(size=(3000, dim)) @ mixing + rng.uniform(-0.2, 0.2, size=(3000, dim)) ** 3
    ours, theirs = unsupervised_scores(codes), reference_formulas(codes)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key] == pytest.approx(theirs[key], rel=1e-9, abs=1e-12), key


def test_identical_codes_share_all_their_information():
    # 20 values, 5 points each: every bin holds 1/20 of the points, so H(bins) = log 20.
    x = np.repeat(np.arange(20.0), 5)[:, None]
    scores = unsupervised_scores(np.hstack([x, x]))
    assert scores["mutual_info_score"] == pytest.approx(math.log(20))
    assert scores["gaussian_total_correlation"] == math.inf  # a singular Gaussian: infinite TC
    assert scores["gaussian_wasserstein_correlation"] > 0
    # Unequal bins: 2 bins holding 3/4 and 1/4 of the points.
    y = np.array([0.0, 0.0, 0.0, 1.0])[:, None]
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert unsupervised_scores(np.hstack([y, y]), num_bins=2)["mutual_info_score"] == pytest.approx(entropy)
    # A linear combination of other codes: singular up to rounding, so log|det| (as in the reference) gives
    # a large finite TC set by rounding, whichever sign rounding left on the determinant.
    rng = np.random.default_rng(1)
    base = rng.normal(size=(100, 3))
    for _ in range(20):
        codes = np.column_stack([base, base @ rng.normal(size=3)])
        tc = unsupervised_scores(codes)["gaussian_total_correlation"]
        assert tc == reference_formulas(codes)["gaussian_total_correlation"] and tc > 10


@pytest.mark.parametrize("constant", [0.0, 0.1, -7.3])
def test_a_constant_code_counts_as_independent(constant):
    """The reference gives log(0) -> NaN here; a constant adds nothing to TC or Wasserstein."""
    pair = with_covariance(COV_2D, n=400)
    codes = np.column_stack([pair[:, 0], np.full(400, constant), pair[:, 1]])
    scores, without = unsupervised_scores(codes), unsupervised_scores(pair)
    for key in ("gaussian_total_correlation", "gaussian_wasserstein_correlation",
                "gaussian_wasserstein_correlation_norm"):
        assert scores[key] == pytest.approx(without[key], rel=1e-12), key
    # The constant's pairs have zero mutual information and count in the mean: 2 of the 6 ordered pairs.
    assert scores["mutual_info_score"] == pytest.approx(without["mutual_info_score"] * 2 / 6, rel=1e-12)
    assert gaussian_total_correlation(np.diag([2.0, 0.0, 3.0])) == 0.0


def test_degenerate_representations():
    zeros = unsupervised_scores(np.zeros((50, 4)))
    assert zeros["gaussian_total_correlation"] == 0.0
    assert zeros["gaussian_wasserstein_correlation"] == 0.0
    assert math.isnan(zeros["gaussian_wasserstein_correlation_norm"])  # 0 / 0
    assert zeros["mutual_info_score"] == 0.0
    one = unsupervised_scores(np.random.default_rng(0).normal(size=(50, 1)))
    assert one["gaussian_total_correlation"] == pytest.approx(0.0, abs=1e-12)
    assert one["gaussian_wasserstein_correlation"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(one["mutual_info_score"])  # no pair of codes
    with pytest.raises(ValueError, match="n >= 2"):
        unsupervised_scores(np.zeros((1, 3)))


SIZES = (2, 3, 4, 5, 6)
SETTINGS = {**TINY, "unsupervised": {"num_train": 3000}}  # small samples: these tests are about the plumbing


@pytest.fixture(scope="module")
def dataset():
    return factor_image_dataset(SIZES)


def run(dataset, encoder, metrics=("unsupervised",), seed=0):
    return evaluate(dataset, encoder, metrics=list(metrics), preset="quick", seed=seed, settings=SETTINGS,
                    progress=False)


def test_evaluate_end_to_end(dataset):
    result = run(dataset, factor_classes)
    assert {k for k in result if k.startswith("unsupervised.")} == {
        "unsupervised.gaussian_total_correlation", "unsupervised.gaussian_wasserstein_correlation",
        "unsupervised.gaussian_wasserstein_correlation_norm", "unsupervised.mutual_info_score",
        "unsupervised.seconds"}
    # The same numbers as the scores of the drawn codes (the metric's own random stream, see evaluate).
    stream = np.random.SeedSequence(0, spawn_key=(available().index("unsupervised"),)).spawn(3)[0]
    drawn = unsupervised.draw(dataset, SETTINGS["unsupervised"], np.random.default_rng(stream))["train"]
    direct = unsupervised_scores(dataset.factors_of(drawn).astype(np.float64))
    for key, value in direct.items():
        assert result[f"unsupervised.{key}"] == value, key
    # Independent factors: near-independent codes (sampling noise only), and 20 bins of <= 6 classes.
    assert 0 <= result["unsupervised.gaussian_total_correlation"] < 0.01
    assert abs(result["unsupervised.gaussian_wasserstein_correlation_norm"]) < 0.01
    assert 0 <= result["unsupervised.mutual_info_score"] < 0.01
    # Mixing the factors makes the codes dependent on every score.
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(len(SIZES), len(SIZES))))
    mixed = run(dataset, lambda x: factor_classes(x) @ rotation)
    for key in direct:
        assert mixed[f"unsupervised.{key}"] > result[f"unsupervised.{key}"] + 0.05, key
    again = run(dataset, factor_classes)
    assert all(again[k] == v for k, v in result.items() if not k.endswith("seconds"))


def test_adding_it_changes_no_other_metric(dataset):
    # Each metric's random stream is fixed by its position: the metrics before it keep theirs.
    assert available()[:7] == ["beta_vae", "factor_vae", "mig", "dci", "sap", "modularity", "reconstruction"]
    assert available()[7] == "unsupervised"  # appended after them; the newer metrics after it
    others = ["beta_vae", "factor_vae", "mig", "dci", "sap", "modularity"]
    before = run(dataset, factor_classes, metrics=others)
    after = run(dataset, factor_classes, metrics=others + ["unsupervised"])
    for key, value in before.items():
        if not key.endswith("seconds") and key != "images_encoded":
            assert after[key] == value, key
