"""InfoMEC (disent_bench.metrics.infomec): the spec's vectors (spec/evaluation-more.md section 5), perfect and
random codes, degenerate inputs (NaN cases of Decision 7, one-class factors) and compute() end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from factor_images import factor_classes, factor_image_dataset

from disent_bench.metrics import infomec
from disent_bench.metrics.cache import CodeView, Encoder, RepresentationCache


def _grid_sources() -> np.ndarray:
    """The spec's sources: the 3 x 4 grid (f0 slow, f1 fast) repeated 5 times, 60 rows."""
    f0, f1 = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    return np.tile(np.column_stack([f0.ravel(), f1.ravel()]), (5, 1))


def _scores(result: dict) -> dict:
    return {key: result[key] for key in ("m", "c", "e", "num_active_latents")}


def test_spec_vector_discrete_factors_as_latents():
    s = _grid_sources()
    result = infomec.infomec_from_codes(s.astype(float), s, discrete_latents=True)
    np.testing.assert_allclose(result["nmi"], np.eye(2), atol=1e-12)
    assert result["m"] == pytest.approx(1.0, abs=1e-12)
    assert result["c"] == pytest.approx(1.0, abs=1e-12)
    assert 0.999 <= result["e"] <= 1.0
    assert result["e"] == pytest.approx(0.99976, abs=2e-5)  # where 100 lbfgs iterations stop
    assert result["num_active_latents"] == 2.0


def test_spec_vector_discrete_repeated_latent():
    s = _grid_sources()
    result = infomec.infomec_from_codes(np.column_stack([s[:, 0], s[:, 0], s[:, 1]]).astype(float), s, True)
    assert result["m"] == pytest.approx(1.0, abs=1e-12)
    # Source 0 is spread over two latents: its max/sum is 1/2, so (3/4 - 1/3) / (2/3) = 0.625.
    assert result["c"] == pytest.approx(0.625, abs=1e-12)


def test_spec_vector_discrete_mixed_latent():
    s = _grid_sources()
    result = infomec.infomec_from_codes(np.column_stack([s[:, 0] + s[:, 1], s[:, 1]]).astype(float), s, True)
    np.testing.assert_allclose(result["nmi"], [[0.2897, 0.0], [0.4371, 1.0]], atol=1e-4)
    assert result["m"] == pytest.approx(0.601408, abs=1e-6)
    assert result["c"] == pytest.approx(0.695849, abs=1e-6)
    # By hand from the NMI: InfoM = (mean(0.4371 / 0.7268, 1) - 1/2) / (1/2); InfoC likewise over rows.
    nmi = result["nmi"]
    by_hand_m = (np.mean([nmi[1, 0] / nmi[:, 0].sum(), 1.0]) - 0.5) / 0.5
    by_hand_c = (np.mean([1.0, 1.0 / (1.0 + nmi[1, 0])]) - 0.5) / 0.5
    assert result["m"] == pytest.approx(by_hand_m, abs=1e-12)
    assert result["c"] == pytest.approx(by_hand_c, abs=1e-12)


def test_spec_vector_continuous_with_pruned_latent():
    s = _grid_sources()
    noise = np.random.RandomState(0)
    e1, e2, e3 = noise.randn(60), noise.randn(60), noise.randn(60)
    codes = np.column_stack([s[:, 0] + 0.1 * e1, s[:, 1] + 0.1 * e2, 0.01 * e3])
    result = infomec.infomec_from_codes(codes, s, discrete_latents=False, random_state=0)
    assert result["num_active_latents"] == 2.0  # latent 2's range is below 1/20 of the largest
    np.testing.assert_array_equal(infomec.active_latents(codes), [True, True, False])
    assert result["nmi"][0, 0] == pytest.approx(0.9865, abs=1e-4)
    assert result["nmi"][1, 1] == pytest.approx(0.9798, abs=1e-4)
    assert result["m"] == pytest.approx(1.0, abs=1e-12)
    assert result["c"] == pytest.approx(1.0, abs=1e-12)
    # Deterministic given the seed.
    again = infomec.infomec_from_codes(codes, s, discrete_latents=False, random_state=0)
    np.testing.assert_array_equal(again["nmi"], result["nmi"])
    assert again["e"] == result["e"]


def test_nmi_is_the_estimator_the_reference_calls():
    # Continuous: scikit-learn's kNN estimator on each latent standardised on its own, with our seed,
    # divided by the source's plug-in entropy (sklearn's mutual_info_score of the source with itself).
    from sklearn.feature_selection import mutual_info_classif
    from sklearn.metrics import mutual_info_score
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(4)
    sources = rng.integers(0, [3, 5], size=(150, 2))
    codes = np.column_stack([sources[:, 0] + 0.3 * rng.normal(size=150), rng.normal(size=150) * 7 + 2])
    nmi = infomec.normalized_mutual_information(codes, sources, random_state=11)
    for k in range(2):
        for l in range(2):
            column = StandardScaler().fit_transform(codes[:, l:l + 1])
            expected = mutual_info_classif(column, sources[:, k], discrete_features=False, n_neighbors=10,
                                           random_state=11)[0] / mutual_info_score(sources[:, k], sources[:, k])
            assert nmi[k, l] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # Discrete: plug-in MI; labels need not be 0..n-1.
    discrete = infomec.normalized_mutual_information(np.column_stack([sources[:, 1] * 10.0 - 3, codes[:, 1]]),
                                                     sources * 2 + 7, discrete_latents=True)
    assert discrete[1, 0] == pytest.approx(1.0, abs=1e-12)


def test_perfect_codes_score_near_one():
    rng = np.random.default_rng(0)
    sources = rng.integers(0, [3, 4, 5], size=(600, 3))
    result = infomec.infomec_from_codes(sources + 0.05 * rng.normal(size=sources.shape), sources, random_state=0)
    assert result["m"] > 0.95 and result["c"] > 0.95 and result["e"] > 0.999
    assert result["num_active_latents"] == 3.0


def test_random_codes_have_no_explicitness():
    # InfoE sees that random codes predict nothing. (InfoM/InfoC do not: the kNN estimates of unrelated
    # pairs are small and often clipped to 0, so the few non-zero entries make NMI look sparse. This is a
    # property of the reference's estimator, so it is not asserted either way here.)
    rng = np.random.default_rng(0)
    sources = rng.integers(0, [3, 4, 5], size=(600, 3))
    result = infomec.infomec_from_codes(rng.normal(size=(600, 4)), sources, random_state=0)
    assert 0.0 <= result["e"] < 0.05
    assert np.nanmax(result["nmi"]) < 0.05


def test_constant_latent_is_inactive_and_changes_nothing():
    rng = np.random.default_rng(1)
    sources = rng.integers(0, [3, 4], size=(300, 2))
    codes = sources + 0.1 * rng.normal(size=sources.shape)
    with_constant = infomec.infomec_from_codes(np.column_stack([codes, np.full(300, 4.2)]), sources)
    without = infomec.infomec_from_codes(codes, sources)
    assert with_constant["num_active_latents"] == 2.0
    assert with_constant["m"] == pytest.approx(without["m"], abs=1e-12)
    assert with_constant["c"] == pytest.approx(without["c"], abs=1e-12)
    assert with_constant["e"] == pytest.approx(without["e"], abs=1e-3)  # a zero input column: same optimum


def test_one_active_latent_gives_nan_compactness():
    # Decision 7: L_a = 1 gives 0/0 in InfoC; reported as NaN, not raised. InfoM is defined.
    rng = np.random.default_rng(2)
    sources = rng.integers(0, [3, 4], size=(300, 2))
    codes = np.column_stack([sources[:, 0] + 0.1 * rng.normal(size=300), 1e-3 * rng.normal(size=300)])
    result = infomec.infomec_from_codes(codes, sources)
    assert result["num_active_latents"] == 1.0
    assert math.isnan(result["c"])
    assert result["m"] > 0.9
    assert 0.0 < result["e"] < 1.0


def test_zero_information_latent_gives_nan_modularity():
    # Decision 7: an active latent whose NMI column is all zero makes InfoM 0/0: NaN. (Discrete latents make
    # it exact: a latent independent of both sources in the sample has plug-in MI exactly 0.)
    s = _grid_sources()
    # The parity of the repetition index: every (f0, f1) cell holds it 3 times 0 and 2 times 1.
    independent = (np.arange(60) // 12) % 2 * 1.0
    result = infomec.infomec_from_codes(np.column_stack([s.astype(float), independent]), s, True)
    np.testing.assert_allclose(result["nmi"][:, 2], 0.0, atol=1e-12)
    assert math.isnan(result["m"])
    assert result["c"] == pytest.approx(1.0, abs=1e-12)  # rows are unaffected by a zero column
    assert result["num_active_latents"] == 3.0


def test_no_active_latent():
    rng = np.random.default_rng(3)
    sources = rng.integers(0, [3, 4], size=(200, 2))
    result = infomec.infomec_from_codes(np.zeros((200, 3)), sources)
    assert result["num_active_latents"] == 0.0
    assert math.isnan(result["m"]) and math.isnan(result["c"])
    assert result["e"] == pytest.approx(0.0, abs=1e-9)  # zero inputs predict as well as the prior


def test_one_class_factor_is_left_out():
    rng = np.random.default_rng(5)
    sources = rng.integers(0, [3, 4], size=(300, 2))
    codes = sources + 0.1 * rng.normal(size=sources.shape)
    with_constant = np.column_stack([sources, np.full(300, 2)])
    result = infomec.infomec_from_codes(codes, with_constant)
    reference = infomec.infomec_from_codes(codes, sources)
    assert np.all(np.isnan(result["nmi"][2]))
    np.testing.assert_array_equal(result["nmi"][:2], reference["nmi"])
    for key in ("m", "c", "e", "num_active_latents"):
        assert result[key] == pytest.approx(reference[key], abs=1e-12)
    # Only one source varying: InfoM's 1 - 1/K is 0, so it is NaN; InfoC and InfoE stay numbers.
    single = infomec.infomec_from_codes(codes, np.column_stack([sources[:, 0], np.zeros(300, dtype=int)]))
    assert math.isnan(single["m"]) and not math.isnan(single["c"]) and not math.isnan(single["e"])
    # Nothing varies: nothing to score.
    nothing = infomec.infomec_from_codes(codes, np.zeros((300, 2), dtype=int))
    assert all(math.isnan(nothing[key]) for key in ("m", "c", "e"))


def test_tiny_and_invalid_samples_raise_clear_errors():
    with pytest.raises(ValueError, match="at least two points"):
        infomec.infomec_from_codes(np.arange(6.0).reshape(3, 2), np.array([[0], [1], [2]]))
    with pytest.raises(ValueError, match="same n"):
        infomec.infomec_from_codes(np.ones((3, 1)), np.ones((4, 1), dtype=int))
    with pytest.raises(ValueError, match="at least 2 points"):
        infomec.infomec_from_codes(np.ones((1, 1)), np.ones((1, 1), dtype=int))
    with pytest.raises(ValueError, match="finite"):
        infomec.infomec_from_codes(np.array([[np.nan], [1.0]]), np.array([[0], [1]]))
    # A tiny sample that the estimator can handle gives numbers.
    result = infomec.infomec_from_codes(np.array([[0.0], [0.1], [1.0], [1.2]]), np.array([[0], [0], [1], [1]]))
    assert not math.isnan(result["e"]) and result["num_active_latents"] == 1.0


def test_logistic_regression_settings_are_pinned():
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(**infomec.LOGISTIC_REGRESSION)
    params = model.get_params()
    assert params["C"] == np.inf and params["solver"] == "lbfgs" and params["max_iter"] == 100
    assert params["tol"] == 1e-4 and params["class_weight"] == "balanced" and params["fit_intercept"]


def factor_classes_of(dataset, indices) -> np.ndarray:
    return dataset.factors_of(indices).astype(np.float64)


def _view(dataset, encoder, indices) -> CodeView:
    cache = RepresentationCache(dataset, Encoder(encoder, torch.device("cpu")), indices, progress=False)
    return CodeView(cache, "mean", np.random.default_rng(0))


def test_compute_end_to_end_on_factor_images():
    assert infomec.NAME == "infomec" and infomec.NEEDS == ()
    dataset = factor_image_dataset((3, 4, 5))
    settings = {"num_train": 240, "discrete_latents": 1}
    draws = infomec.draw(dataset, settings, np.random.default_rng(5))
    assert draws["train"].shape == (240,)
    scores = infomec.compute(dataset, draws, _view(dataset, factor_classes, draws["train"]), settings, 0)
    assert set(scores) == {"m", "c", "e", "num_active_latents"}
    # Codes = factor classes; the factors of a random sample are not exactly independent, so the plug-in
    # NMI off the diagonal is small but not 0.
    nmi = infomec.normalized_mutual_information(view_codes := factor_classes_of(dataset, draws["train"]),
                                                dataset.factors_of(draws["train"]), discrete_latents=True)
    np.testing.assert_allclose(np.diag(nmi), 1.0, atol=1e-12)
    assert scores["m"] > 0.9 and scores["c"] > 0.9 and scores["e"] > 0.99
    assert scores["num_active_latents"] == 3.0 and view_codes.shape == (240, 3)
    continuous = {"num_train": 240, "discrete_latents": 0}
    first = infomec.compute(dataset, draws, _view(dataset, factor_classes, draws["train"]), continuous, 7)
    second = infomec.compute(dataset, infomec.draw(dataset, continuous, np.random.default_rng(5)),
                             _view(dataset, factor_classes, draws["train"]), continuous, 7)
    assert first == second
    assert all(isinstance(value, float) for value in first.values())
    assert first["m"] > 0.9 and first["c"] > 0.9 and first["e"] > 0.99


def test_uncaptured_source_gives_nan_compactness():
    # A varying source with zero NMI to every active latent: its max/sum is 0/0, so InfoC is NaN (as in the
    # reference); InfoM is unaffected (its columns still have their other sources).
    s = _grid_sources()
    parity = (np.arange(60) // 12) % 2  # a third source, independent of f0 and f1 in the grid
    sources = np.column_stack([s, parity])
    result = infomec.infomec_from_codes(s.astype(float), sources, discrete_latents=True)
    np.testing.assert_allclose(result["nmi"][2], 0.0, atol=1e-12)
    assert math.isnan(result["c"])
    # Both latents are pure (max/sum 1) against K = 3 sources: InfoM = (1 - 1/3) / (1 - 1/3) = 1.
    assert result["m"] == pytest.approx(1.0, abs=1e-12)
