"""The Interventional Robustness Score: the spec's vectors, disentanglement_lib's irs_test.py cases, edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from factor_images import factor_classes, factor_image_dataset

from disent_bench.metrics import irs
from disent_bench.metrics.cache import CodeView, Encoder, RepresentationCache
from disent_bench.metrics.discrete import histogram_discretize


def grid(*sizes) -> np.ndarray:
    """Every combination of the factor classes, rows in lexicographic order (first factor slowest)."""
    return np.array(list(itertools.product(*[range(size) for size in sizes])), dtype=np.float64)


def test_grid_codes_equal_to_factors_give_identity_matrix():
    factors = grid(2, 3)
    result = irs.irs_from_discretised(factors, factors)
    np.testing.assert_allclose(result.irs_matrix, np.eye(2), atol=1e-12)
    assert result.score == pytest.approx(1.0, abs=1e-12)


def test_grid_mixed_code():
    factors = grid(2, 3)
    codes = np.column_stack([factors[:, 0], factors[:, 0] + factors[:, 1]])
    result = irs.irs_from_discretised(codes, factors)
    np.testing.assert_allclose(result.max_deviations, [0.5, 1.5], atol=1e-12)
    np.testing.assert_allclose(result.irs_matrix, [[1.0, 0.0], [1 / 3, 2 / 3]], atol=1e-12)
    np.testing.assert_allclose(result.dim_scores, [1.0, 2 / 3], atol=1e-12)
    assert result.score == pytest.approx(0.75, abs=1e-12)  # (0.5 * 1 + 1.5 * 2/3) / 2


@pytest.mark.parametrize("diff_quantile,expected_row", [(0.99, [0.304, 0.7]), (1.0, [0.3, 0.7])])
def test_grid_quadratic_code_and_the_quantile(diff_quantile, expected_row):
    factors = grid(3, 3)
    codes = (factors[:, 0] + factors[:, 1] ** 2)[:, None]  # maxdev 10/3 around the mean 8/3
    result = irs.irs_from_discretised(codes, factors, diff_quantile)
    np.testing.assert_allclose(result.irs_matrix, [expected_row], atol=1e-12)
    assert result.score == pytest.approx(0.7, abs=1e-12)


def test_full_path_drops_constant_dims_and_bins_factors():
    factors = grid(2, 3)
    np.testing.assert_array_equal(histogram_discretize(factors, 20).T, [[1, 1, 1, 20, 20, 20], [1, 11, 20, 1, 11, 20]])
    codes = np.column_stack([factors[:, 0], np.zeros(6), 2 * factors[:, 1]])
    scores = irs.irs_from_codes(codes, factors.astype(np.int64))
    assert scores == {"score": pytest.approx(1.0, abs=1e-12), "num_active_dims": 2.0}


def _identity_observations(n: int, seed: int = 0) -> np.ndarray:
    """disentanglement_lib's IdentityObservationsData: 10 factors uniform in 1..10 (our own generator)."""
    return np.random.default_rng(seed).integers(1, 11, size=(n, 10))


def test_reference_test_metric_codes_equal_factors():
    factors = _identity_observations(3000)
    # irs_test.py binds the identity discretiser: the factors themselves are the groups.
    assert 0.9 <= irs.irs_from_discretised(factors.astype(np.float64), factors).score <= 1.0
    assert irs.irs_from_discretised(factors.astype(np.float64), factors).score == pytest.approx(1.0, abs=1e-12)
    # Through the histogram discretiser (10 values into 20 bins stay apart), the same.
    assert irs.irs_from_codes(factors.astype(np.float64), factors) == {"score": pytest.approx(1.0, abs=1e-12),
                                                                       "num_active_dims": 10.0}


def test_reference_test_bad_metric_zero_codes():
    factors = _identity_observations(3000)
    assert irs.irs_from_codes(np.zeros((3000, 10)), factors) == {"score": 0.0, "num_active_dims": 0.0}


def test_reference_test_drop_constant_dims():
    codes = np.random.default_rng(0).normal(size=(100, 100))
    codes[:, 0] = 1.0
    codes[:, -1] = 0.0
    np.testing.assert_array_equal(irs.active_dimensions(codes), np.r_[False, np.ones(98, bool), False])


def test_num_active_dims_counts_kept_dims_not_code_values():
    rng = np.random.default_rng(1)
    factors = rng.integers(0, 4, size=(500, 3))
    codes = np.column_stack([factors + 0.1 * rng.normal(size=(500, 3)), np.full((500, 2), 7.5)])
    scores = irs.irs_from_codes(codes, factors)
    assert scores["num_active_dims"] == 3.0  # the reference would report the sum of the code values
    assert scores["score"] > 0.6


def test_random_codes_score_low_and_factor_codes_high():
    rng = np.random.default_rng(2)
    factors = rng.integers(0, np.array([3, 6, 40, 32, 32]), size=(2000, 5))
    random_codes = irs.irs_from_codes(rng.normal(size=(2000, 10)), factors)["score"]
    perfect = irs.irs_from_codes(factors.astype(np.float64), factors)["score"]
    assert perfect > 0.9
    assert random_codes < 0.4  # the 99% quantile of the noise is most of its largest deviation
    assert random_codes < perfect - 0.5


def test_scale_and_shift_of_a_code_change_nothing():
    rng = np.random.default_rng(3)
    factors = rng.integers(0, 5, size=(400, 2))
    codes = np.column_stack([factors[:, 0] + 0.3 * rng.normal(size=400), rng.normal(size=400)])
    # One common scale (the dims are weighted by their largest deviation) and any shifts.
    moved = codes * -3.0 + np.array([10.0, -2.0])
    assert irs.irs_from_codes(moved, factors)["score"] == pytest.approx(irs.irs_from_codes(codes, factors)["score"],
                                                                        abs=1e-12)
    # Per-dim scales move only the weights: each dim's own score stays.
    labels = histogram_discretize(factors, 20)
    stretched = irs.irs_from_discretised(codes * np.array([-3.0, 0.5]), labels)
    np.testing.assert_allclose(stretched.dim_scores, irs.irs_from_discretised(codes, labels).dim_scores, atol=1e-12)


def test_one_class_factor_and_negative_scores():
    rng = np.random.default_rng(4)
    codes = rng.normal(size=(300, 2))
    one_class = np.zeros((300, 1), dtype=np.int64)
    # One group holding every point: with the full quantile cum = maxdev, so M = 0.
    result = irs.irs_from_discretised(codes, one_class, diff_quantile=1.0)
    np.testing.assert_allclose(result.irs_matrix, 0.0, atol=1e-12)
    assert irs.irs_from_codes(codes, one_class, diff_quantile=1.0)["score"] == pytest.approx(0.0, abs=1e-12)
    # Groups whose spread is wider than half the range: the mean of per-group maxima exceeds maxdev.
    codes = np.array([[0.0], [10.0], [4.0], [6.0]])
    labels = np.array([[0], [0], [1], [1]])
    result = irs.irs_from_discretised(codes, labels, diff_quantile=1.0)
    # maxdev 5; group deviations 5 and 1 -> cum 3 -> M = 1 - 3/5
    assert result.score == pytest.approx(0.4, abs=1e-12)
    codes = np.array([[0.0], [1.0], [0.9], [0.1]])
    result = irs.irs_from_discretised(codes, labels, diff_quantile=1.0)
    assert result.score == pytest.approx(1 - 0.45 / 0.5, abs=1e-12)  # group deviations 0.5, 0.4 -> cum 0.45


def test_tiny_and_degenerate_inputs():
    factors = np.array([[0, 1], [1, 0]])
    assert irs.irs_from_codes(np.array([[0.5, 2.0]]), factors[:1]) == {"score": 0.0, "num_active_dims": 0.0}
    two = irs.irs_from_codes(np.array([[0.0], [1.0]]), factors)
    assert two == {"score": pytest.approx(1.0), "num_active_dims": 1.0}  # each group is one point
    with pytest.raises(ValueError, match="at least one point"):
        irs.irs_from_codes(np.zeros((0, 3)), np.zeros((0, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="diff_quantile"):
        irs.irs_from_codes(np.ones((3, 1)), np.ones((3, 1), dtype=np.int64), diff_quantile=1.5)
    with pytest.raises(ValueError, match="constant"):
        irs.irs_from_discretised(np.column_stack([np.arange(4.0), np.ones(4)]), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="same n"):
        irs.irs_from_codes(np.ones((3, 1)), np.ones((4, 1), dtype=np.int64))


def _view(dataset, encoder, indices) -> CodeView:
    cache = RepresentationCache(dataset, Encoder(encoder, torch.device("cpu")), indices, progress=False)
    return CodeView(cache, "mean", np.random.default_rng(0))


def test_compute_end_to_end_on_factor_images():
    dataset = factor_image_dataset((3, 4, 5))
    settings = {"num_train": 300, "num_bins": 20, "diff_quantile": 0.99}
    draws = irs.draw(dataset, settings, np.random.default_rng(5))
    assert draws["train"].shape == (300,)
    scores = irs.compute(dataset, draws, _view(dataset, factor_classes, draws["train"]), settings, 0)
    assert scores == {"score": pytest.approx(1.0, abs=1e-12), "num_active_dims": 3.0}
    zeros = irs.compute(dataset, draws, _view(dataset, lambda x: np.zeros((x.shape[0], 4)), draws["train"]),
                        settings, 0)
    assert zeros == {"score": 0.0, "num_active_dims": 0.0}
    again = irs.compute(dataset, irs.draw(dataset, settings, np.random.default_rng(5)),
                        _view(dataset, factor_classes, draws["train"]), settings, 0)
    assert again == scores
