"""MIG-sup, JEMMIG and DCIMIG (ubisoft-laforge's estimators) and the min-max binning they share."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch
from factor_images import factor_classes, factor_image_dataset
from sklearn.metrics import mutual_info_score
from sklearn.preprocessing import minmax_scale

from disent_bench.metrics import dcimig, jemmig, mig_sup
from disent_bench.metrics.binned_information import (
    binned_information,
    entropy_bits,
    information_tables,
    minmax_bins,
)
from disent_bench.metrics.cache import CodeView, Encoder, RepresentationCache
from disent_bench.metrics.discrete import mutual_info_matrix

ESTIMATORS = {"mig_sup": mig_sup.mig_sup_from_codes, "jemmig": jemmig.jemmig_from_codes,
              "dcimig": dcimig.dcimig_from_codes}
LOG2_10 = math.log2(10)


def grid_3x4() -> np.ndarray:
    """The spec's 3 x 4 grid: f0 slow (3 classes), f1 fast (4 classes), 12 rows."""
    return np.array(list(itertools.product(range(3), range(4))), dtype=np.int64)


def scores(codes, factors, num_bins=10) -> list[float]:
    codes = np.asarray(codes, dtype=np.float64)
    return [ESTIMATORS[name](codes, factors, num_bins) for name in ("mig_sup", "jemmig", "dcimig")]


# -- binning -------------------------------------------------------------------------------------

def test_minmax_binning_copies_the_floating_point_arithmetic():
    # The edge linspace(0, 1, 11)[6] is 6 * 0.1 = 0.6000000000000001. Column [0, 3, 5]: 3 scales to
    # 3 * (1/5) = 3 * 0.2 = 0.6000000000000001, on the edge, which goes up: bin 7.
    assert np.linspace(0, 1, 11)[6] == 3 * 0.2 and 3 / 5 < 3 * 0.2
    np.testing.assert_array_equal(minmax_bins(np.array([[0.0], [3.0], [5.0]]), 10)[:, 0], [1, 7, 10])
    # 3 / 5 = 0.6 itself (in a column already spanning [0, 1], so scaled by exactly 1) is below that edge: bin 6.
    np.testing.assert_array_equal(minmax_bins(np.array([[0.0], [3 / 5], [0.75], [1.0]]), 10)[:, 0], [1, 6, 8, 10])
    # The spec's grid bins.
    factors = grid_3x4()
    np.testing.assert_array_equal(minmax_bins(factors.astype(float), 10).T,
                                  [[1, 1, 1, 1, 6, 6, 6, 6, 10, 10, 10, 10], [1, 4, 7, 10] * 3])
    np.testing.assert_array_equal(minmax_bins((factors[:, :1] + factors[:, 1:]).astype(float), 10)[:, 0],
                                  [1, 3, 5, 7, 3, 5, 7, 9, 5, 7, 9, 10])


def test_minmax_binning_equals_sklearn_minmax_scale_then_digitize():
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.normal(size=500), rng.uniform(-3, 7, size=500) * 1e6, np.full(500, 2.5),
                              1.0 + rng.uniform(size=500) * 1e-15,  # near-constant: minmax_scale keeps scale 1
                              rng.integers(0, 40, size=500) / 7.0])
    for num_bins in (1, 7, 10, 20):
        expected = np.digitize(minmax_scale(values), np.linspace(0, 1, num_bins + 1)[:-1])
        np.testing.assert_array_equal(minmax_bins(values, num_bins), expected)
    binned = minmax_bins(values, 10)
    assert np.all(binned[:, 2] == 1) and np.all(binned[:, 3] == 1)  # constant columns: all in bin 1
    assert binned[:, 0].min() == 1 and binned[:, 0].max() == 10


def test_binning_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one point"):
        minmax_bins(np.zeros((0, 2)), 10)
    with pytest.raises(ValueError, match="finite"):
        minmax_bins(np.array([[0.0], [np.nan]]), 10)
    with pytest.raises(ValueError, match="num_bins"):
        minmax_bins(np.ones((3, 1)), 0)


# -- information in bits -------------------------------------------------------------------------

def test_information_tables_equal_sklearn_and_scipy_in_bits():
    rng = np.random.default_rng(1)
    factors = rng.integers(0, np.array([3, 6, 40, 1]), size=(2000, 4)) * 3 + 5  # any label values
    bins = rng.integers(1, 11, size=(2000, 5))
    bins[:, 1] = factors[:, 0] % 4 + 1  # dependent
    bins[:, 2] = 4  # constant
    tables = information_tables(factors, bins)
    expected = np.array([[mutual_info_score(factors[:, k], code) for code in bins.T] for k in range(4)])
    np.testing.assert_allclose(tables.mutual_information, expected / math.log(2), rtol=0, atol=1e-12)
    np.testing.assert_allclose(tables.mutual_information, mutual_info_matrix(factors, bins) / math.log(2), atol=1e-12)
    np.testing.assert_allclose(tables.factor_entropy,
                               [scipy.stats.entropy(np.unique(f, return_counts=True)[1], base=2) for f in factors.T],
                               atol=1e-12)
    np.testing.assert_allclose(tables.code_entropy, entropy_bits(bins), atol=1e-12)
    joint = [[scipy.stats.entropy(np.unique(np.column_stack([f, c]), axis=0, return_counts=True)[1], base=2)
              for c in bins.T] for f in factors.T]
    np.testing.assert_allclose(tables.joint_entropy, joint, atol=1e-12)
    assert np.all(tables.mutual_information[:, 2] == 0.0) and np.all(tables.mutual_information[3] == 0.0)
    assert tables.factor_entropy[3] == 0.0 and tables.code_entropy[2] == 0.0


def test_spec_information_of_the_mixed_code():
    factors = grid_3x4()
    codes = np.column_stack([factors[:, 0] + factors[:, 1], factors[:, 1]]).astype(float)
    tables = binned_information(factors, codes, 10)
    np.testing.assert_allclose(tables.mutual_information, [[0.45915, 0.0], [0.87419, 2.0]], atol=1e-5)
    np.testing.assert_allclose(tables.factor_entropy, [math.log2(3), 2.0], atol=1e-12)


# -- the spec's vectors ------------------------------------------------------------------------

@pytest.mark.parametrize("columns,expected", [
    ([0, 1], [1.0, 1.0, 1.0]),
    ([0, 0, 1], [1.0, 0.838496, 1.0]),
    ("mixed", [0.584386, 0.599357, 0.557886]),
    ([0, 1, None], [2 / 3, 1.0, 1.0]),  # MIG-sup: Decision 5 (the reference gives NaN)
])
def test_spec_vectors_on_the_3x4_grid(columns, expected):
    factors = grid_3x4()
    if columns == "mixed":
        codes = np.column_stack([factors[:, 0] + factors[:, 1], factors[:, 1]])
    else:
        codes = np.column_stack([factors[:, c] if c is not None else np.zeros(12, np.int64) for c in columns])
    np.testing.assert_allclose(scores(codes, factors), expected, atol=1e-6)


def test_jemmig_hand_computed_on_a_duplicated_factor():
    # [f0, f0, f1]: f0's best and second codes both hold f0 (I = log2 3); f1's best holds f1 (I = 2).
    h0 = math.log2(3)
    expected = np.mean([1 - (h0 - h0 + h0) / (h0 + LOG2_10), 1 - (2.0 - 2.0 + 0.0) / (2.0 + LOG2_10)])
    factors = grid_3x4()
    assert jemmig.jemmig_from_codes(factors[:, [0, 0, 1]].astype(float), factors) == pytest.approx(expected, abs=1e-12)


# -- perfect, random and degenerate codes --------------------------------------------------------

def test_perfect_codes_score_high_and_random_codes_low():
    rng = np.random.default_rng(2)
    factors = rng.integers(0, np.array([2, 3, 5, 10]), size=(2000, 4))  # at most 10 classes: binning keeps them
    assert min(scores(factors, factors)) > 0.95
    uniform = rng.uniform(size=(2000, 6))
    mig_sup_score, jemmig_score, dcimig_score = scores(uniform, factors)
    assert mig_sup_score < 0.05 and dcimig_score < 0.05 and jemmig_score < 0.05


def test_constant_codes():
    factors = grid_3x4()
    zeros = np.zeros((12, 4))
    # No information anywhere: every gap is 0. JEMMIG is not 0: with I = 0 its best code's joint
    # entropy is H(f), so each factor scores 1 - H(f) / (H(f) + log2 10).
    expected_jemmig = np.mean([1 - h / (h + LOG2_10) for h in (math.log2(3), 2.0)])
    np.testing.assert_allclose(scores(zeros, factors), [0.0, expected_jemmig, 0.0], atol=1e-12)


def test_one_class_factors():
    rng = np.random.default_rng(3)
    factors = np.column_stack([rng.integers(0, 4, size=300), np.zeros(300, np.int64)])
    codes = np.column_stack([factors[:, 0], rng.uniform(size=300)]).astype(float)
    tables = binned_information(factors, codes, 10)
    assert np.all(tables.mutual_information[1] == 0.0)
    # DCIMIG: the one-class factor adds nothing above or below the fraction.
    gaps = tables.mutual_information[0] - tables.mutual_information[1]
    assert dcimig.dcimig_from_codes(codes, factors) == pytest.approx(gaps.max() / tables.factor_entropy[0], abs=1e-12)
    # JEMMIG: the one-class factor's best code is the last (all I tie at 0), scoring 1 - H(c) / log2 10.
    jemmig_score = jemmig.jemmig_from_codes(codes, factors)
    first = 1 - (tables.joint_entropy[0, 0] - tables.mutual_information[0, 0] + tables.mutual_information[0, 1]) / (
        tables.factor_entropy[0] + LOG2_10)
    assert jemmig_score == pytest.approx(np.mean([first, 1 - tables.code_entropy[1] / LOG2_10]), abs=1e-12)
    # Every factor one-class: nothing to capture; DCIMIG's 0/0 is 0.
    assert dcimig.dcimig_from_codes(codes, np.zeros((300, 2), np.int64)) == 0.0
    assert mig_sup.mig_sup_from_codes(codes, np.zeros((300, 2), np.int64)) == 0.0


def test_tiny_samples_and_too_few_columns():
    factors = grid_3x4()
    one = scores(np.array([[0.3, 1.0]]), factors[:1])
    assert one == [0.0, 1.0, 0.0]  # one point: no entropy anywhere, JEMMI = 0
    two = scores(np.array([[0.0, 5.0], [1.0, 5.0]]), np.array([[0, 1], [1, 1]]))
    # Code 0 = factor 0 (I = 1 bit), code 1 and factor 1 constant: MIG-sup gaps [1, 0]; JEMMIG: factor 0
    # JEMMI = 1 - 1 + 0, factor 1's best code (the last of the tied zeros) is the constant one, JEMMI 0.
    assert two == pytest.approx([0.5, 1.0, 1.0], abs=1e-12)
    # Fewer than two factors (MIG-sup, DCIMIG) or codes (JEMMIG): the gap is undefined.
    assert math.isnan(mig_sup.mig_sup_from_codes(factors[:, :1].astype(float), factors[:, :1]))
    assert math.isnan(dcimig.dcimig_from_codes(factors[:, :1].astype(float), factors[:, :1]))
    assert math.isnan(jemmig.jemmig_from_codes(factors[:, :1].astype(float), factors))
    for estimator in ESTIMATORS.values():
        with pytest.raises(ValueError, match="at least one point"):
            estimator(np.zeros((0, 2)), np.zeros((0, 2), np.int64))
        with pytest.raises(ValueError, match="same number of points"):
            estimator(np.zeros((3, 2)), np.zeros((4, 2), np.int64))
    with pytest.raises(ValueError, match="num_bins >= 2"):
        jemmig.jemmig_from_codes(factors.astype(float), factors, num_bins=1)


# -- the Metric interface ----------------------------------------------------------------------

@pytest.mark.parametrize("module", [mig_sup, jemmig, dcimig])
def test_compute_end_to_end_on_factor_images(module):
    dataset = factor_image_dataset((3, 4, 5))
    settings = {"num_train": 400, "num_bins": 10}
    draws = module.draw(dataset, settings, np.random.default_rng(6))
    cache = RepresentationCache(dataset, Encoder(factor_classes, torch.device("cpu")), draws["train"], progress=False)
    result = module.compute(dataset, draws, CodeView(cache, "mean", np.random.default_rng(0)), settings, 0)
    assert set(result) == {"score"}
    codes = dataset.factors_of(draws["train"])
    assert result["score"] == pytest.approx(ESTIMATORS[module.NAME](codes.astype(float), codes, 10), abs=1e-12)
    assert result["score"] > 0.9
