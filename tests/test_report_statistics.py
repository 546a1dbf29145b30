"""The report's statistics layer (disent_bench.report.statistics) against hand-computed values, SciPy,
textbook examples (SciPy's Friedman example, Demšar 2006) and a coverage simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from disent_bench.report.statistics import (
    average_probability_of_improvement,
    interval,
    min_p_value,
    not_worse_than_best,
    probability_of_improvement,
    rank_analysis,
    variance_shares,
    variance_shares_by,
)

# ----------------------------------------------------------------------------------------------------
# interval
# ----------------------------------------------------------------------------------------------------


@pytest.mark.slow  # ~3-5 s: 2,000 intervals of 10,000 resamples
def test_interval_coverage_of_the_mean_at_five_normal_draws():
    """2,000 simulated experiments of 5 N(0, 1) draws: the 95% interval holds the true mean 0 in 93-97%."""
    rng = np.random.default_rng(20240611)
    draws = rng.normal(0.0, 1.0, size=(2000, 5))
    hits = 0
    for i, x in enumerate(draws):
        low, high = interval(x, "mean", seed=i)
        hits += low <= 0.0 <= high
    coverage = hits / len(draws)
    assert 0.93 <= coverage <= 0.97, coverage


def test_interval_small_and_constant_inputs():
    assert interval([1.0, 2.0], seed=0) is None
    assert interval([1.0, float("nan"), 2.0], seed=0) is None  # NaN left out: 2 values
    assert interval([], "median", seed=0) is None
    for statistic in ("mean", "median"):
        assert interval([0.3, 0.3, 0.3, 0.3], statistic, seed=0) == (0.3, 0.3)
    with pytest.raises(ValueError):
        interval([1.0, 2.0, math.inf], seed=0)


def test_interval_brackets_the_estimate_and_is_deterministic():
    x = [0.61, 0.55, 0.72, 0.58, 0.66]
    for statistic, centre in (("mean", np.mean(x)), ("median", np.median(x))):
        low, high = interval(x, statistic, seed=7)
        assert low < centre < high
        assert interval(x, statistic, seed=7) == (low, high)
        assert interval(x, statistic, seed=np.random.default_rng(7)) == (low, high)
    # The seed is what makes it reproducible (at n = 5 the 2.5% and 97.5% quantiles of the bootstrap t
    # often sit on the same atoms of its 126 distinct resamples whatever the seed; at n = 12 they do not).
    y = np.linspace(0.0, 1.0, 12) ** 2
    assert interval(y, "mean", seed=1) != interval(y, "mean", seed=2)
    assert interval(y, "mean", seed=1) == interval(y, "mean", seed=1)


def test_interval_of_the_mean_ignores_resamples_of_one_repeated_value():
    """Regression: a resample of three 0.1s has a rounding-error standard deviation (1.7e-17), not 0;
    taken as a t value it blew the interval up to +-1e15."""
    for x in ([0.1, 0.7, 0.3], [0.1, 0.2, 0.3], [0.7, 0.1, 0.3, 0.9, 0.3]):
        low, high = interval(x, seed=0)
        spread = max(x) - min(x)
        assert min(x) - 3 * spread < low < np.mean(x) < high < max(x) + 3 * spread


def test_interval_of_the_mean_is_near_students_t_for_normal_looking_data():
    """The bootstrap-t interval of a mean should be of the width of the exact t interval (it is not
    the far narrower percentile interval)."""
    x = np.array([-1.2, -0.4, 0.1, 0.5, 1.3, 0.2, -0.6, 0.9, -0.1, 0.3])
    low, high = interval(x, seed=0)
    t_low, t_high = stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    assert (high - low) == pytest.approx(t_high - t_low, rel=0.25)


# ----------------------------------------------------------------------------------------------------
# not_worse_than_best
# ----------------------------------------------------------------------------------------------------


def test_bold_keeps_statistical_ties_and_drops_the_clearly_worse():
    groups = {
        "a": [0.70, 0.74, 0.78, 0.82, 0.86],
        "b": [0.71, 0.75, 0.79, 0.83, 0.87],   # best mean; interleaved with a: no evidence a is worse
        "c": [0.40, 0.42, 0.44, 0.46, 0.48],   # below every run of b
    }
    bold = not_worse_than_best(groups, higher_is_better=True)
    assert bold.labels == {"a", "b"}
    assert bold.best == ("b",)
    assert bold.p_values["c"] == pytest.approx(1 / 252)   # exact: the one split of 10 values of 252
    assert bold.p_values["a"] == pytest.approx(
        stats.mannwhitneyu(groups["a"], groups["b"], alternative="less", method="exact").pvalue)
    assert bold.can_exclude and bold.note is None

    # The same with lower-is-better values (negated): the same groups.
    negated = {k: [-v for v in vs] for k, vs in groups.items()}
    assert not_worse_than_best(negated, higher_is_better=False).labels == {"a", "b"}


def test_bold_is_not_possible_below_three_values():
    bold = not_worse_than_best({"a": [0.1, 0.2, 0.3], "b": [0.5, 0.6]}, higher_is_better=True)
    assert bold.labels is None
    assert "fewer than 3" in bold.note and "b" in bold.note


def test_min_p_value_and_three_against_three():
    assert min_p_value(3, 3) == pytest.approx(0.05)
    assert min_p_value(5, 5) == pytest.approx(1 / 252)
    # 3 vs 3 fully separated: the exact one-sided p is 0.05, never below: nothing can be excluded.
    bold = not_worse_than_best({"a": [0.9, 0.91, 0.92], "b": [0.1, 0.11, 0.12]}, higher_is_better=True)
    assert bold.p_values["b"] == pytest.approx(0.05)
    assert bold.labels == {"a", "b"}
    assert not bold.can_exclude
    assert "cannot go below 0.05" in bold.note


def test_bold_with_tied_values_uses_the_exact_permutation_test():
    groups = {"best": [3.0, 3.0, 4.0, 4.0, 5.0], "worse": [1.0, 1.0, 2.0, 2.0, 3.0]}
    bold = not_worse_than_best(groups, higher_is_better=True)
    expected = stats.mannwhitneyu(groups["worse"], groups["best"], alternative="less",
                                  method=stats.PermutationMethod(n_resamples=np.inf)).pvalue
    assert bold.p_values["worse"] == pytest.approx(expected)
    assert "permutation" in bold.method


# ----------------------------------------------------------------------------------------------------
# probability of improvement
# ----------------------------------------------------------------------------------------------------


def test_probability_of_improvement_by_hand_and_against_scipy():
    a = [1.0, 2.0, 3.0, 4.0, 5.0]
    b = [2.0, 2.0, 3.0, 1.0, 0.0]
    # Pairs a > b, ties half: a=1: 1 + 0.5; a=2: 2 + 1; a=3: 4 + 0.5; a=4: 5; a=5: 5  -> 19 / 25.
    res = probability_of_improvement(a, b, seed=0)
    assert res.p == pytest.approx(19 / 25)
    assert res.p == pytest.approx(stats.mannwhitneyu(a, b).statistic / 25)
    assert res.low <= res.p <= res.high
    reverse = probability_of_improvement(b, a, seed=0)
    assert res.p + reverse.p == pytest.approx(1.0)
    # Lower is better: P(A better) is P(A < B), = P(B > A) on the raw values.
    assert probability_of_improvement(a, b, higher_is_better=False, seed=0).p == pytest.approx(reverse.p)
    assert probability_of_improvement(a, b, seed=0) == res   # deterministic


def test_probability_of_improvement_edges():
    assert probability_of_improvement([1.0, 2.0], [0.0, 1.0, 2.0], seed=0)[1:] == (None, None)
    assert probability_of_improvement([1.0, 2.0], [0.0, 1.0, 2.0], seed=0).p == pytest.approx(4 / 6)
    # Fully separated groups: P = 1 and the percentile interval collapses to (1, 1) (documented).
    assert tuple(probability_of_improvement([5.0, 6.0, 7.0], [1.0, 2.0, 3.0], seed=0)) == (1.0, 1.0, 1.0)


def test_average_probability_of_improvement_weights_datasets_equally():
    rng = np.random.default_rng(3)
    small = (rng.normal(1, 1, 4), rng.normal(0, 1, 4))
    large = (rng.normal(0, 1, 40), rng.normal(0.5, 1, 40))
    p_small = probability_of_improvement(*small, seed=0).p
    p_large = probability_of_improvement(*large, seed=0).p
    res = average_probability_of_improvement([small, large], seed=0)
    assert res.p == pytest.approx((p_small + p_large) / 2)
    assert res.low <= res.p <= res.high
    # One dataset: exactly the single-dataset function.
    assert average_probability_of_improvement([small], seed=5) == probability_of_improvement(*small, seed=5)
    assert average_probability_of_improvement([small, ([1.0, 2.0], [0.0, 1.0, 3.0])], seed=0)[1:] == (None, None)


# ----------------------------------------------------------------------------------------------------
# ranks across datasets
# ----------------------------------------------------------------------------------------------------


def test_friedman_on_scipys_pulse_rate_example():
    """SciPy's tutorial example (Sprent & Smeeton): 7 students (blocks: our datasets), 3 occasions."""
    medians = pd.DataFrame({
        "before": [72, 96, 88, 92, 74, 76, 82],
        "immediately_after": [120, 120, 132, 120, 101, 96, 112],
        "five_min_after": [76, 95, 104, 96, 84, 72, 76],
    })
    res = rank_analysis(medians, higher_is_better=True)
    assert res.test == "Friedman"
    assert res.statistic == pytest.approx(10.57142857142857)
    assert res.p_value == pytest.approx(0.005063414171757498)
    # Ranks by hand (1 = highest): immediately_after 1 on every row; before 3,2,3,3,3,2,2 (sum 18);
    # five_min_after 2,3,2,2,2,3,3 (sum 17).
    assert res.average_ranks.to_dict() == pytest.approx(
        {"before": 18 / 7, "immediately_after": 1.0, "five_min_after": 17 / 7})


def test_average_ranks_with_ties_and_direction():
    medians = pd.DataFrame({"x": [0.9, 0.5], "y": [0.7, 0.5], "z": [0.1, 0.2]}, index=["d1", "d2"])
    up = rank_analysis(medians, higher_is_better=True)
    # d1: x 1, y 2, z 3; d2: x and y tie for 1-2 -> 1.5 each, z 3.
    assert up.average_ranks.to_dict() == pytest.approx({"x": 1.25, "y": 1.75, "z": 3.0})
    down = rank_analysis(medians, higher_is_better=False)
    assert down.average_ranks.to_dict() == pytest.approx({"x": 2.75, "y": 2.25, "z": 1.0})


# A 14 datasets x 4 methods rank table with Demšar's (2006, section 3.2.2) average ranks 3.143, 2.000,
# 2.893, 1.964 (rank sums 44, 28, 40.5, 27.5; the last row holds a tie). Values are ranks, lower is better.
DEMSAR_RANKS = [[4, 1, 2, 3], [2, 3, 4, 1], [4, 2, 3, 1], [2, 3, 1, 4], [4, 1, 3, 2], [3, 2, 4, 1],
                [4, 1, 2, 3], [3, 2, 4, 1], [4, 3, 1, 2], [3, 2, 4, 1], [3, 2, 4, 1], [3, 1, 4, 2],
                [2, 1, 3, 4], [3, 4, 1.5, 1.5]]


def test_friedman_and_nemenyi_against_demsar_2006():
    medians = pd.DataFrame(DEMSAR_RANKS, columns=["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"], dtype=float)
    res = rank_analysis(medians, higher_is_better=False)
    ranks = res.average_ranks.to_numpy()
    assert np.round(ranks, 3).tolist() == [3.143, 2.000, 2.893, 1.964]
    n, k = 14, 4
    # Demšar's chi2_F (no tie correction) = 9.28 and F_F = 3.69.
    chi2_demsar = 12 * n / (k * (k + 1)) * (np.sum(ranks ** 2) - k * (k + 1) ** 2 / 4)
    assert round(chi2_demsar, 2) == 9.28
    assert round((n - 1) * chi2_demsar / (n * (k - 1) - chi2_demsar), 2) == 3.69
    # SciPy's statistic is the same with the tie correction (one tie of two values).
    assert res.statistic == pytest.approx(chi2_demsar / (1 - (2 ** 3 - 2) / (n * k * (k ** 2 - 1))))
    assert res.iman_davenport == pytest.approx((n - 1) * res.statistic / (n * (k - 1) - res.statistic))
    # Nemenyi: q_0.05 = 2.569 for k = 4 (Demšar's Table 5a), CD = 2.569 sqrt(4 * 5 / (6 * 14)) = 1.25.
    assert round(res.q_alpha, 3) == 2.569
    assert res.critical_difference == pytest.approx(res.q_alpha * math.sqrt(20 / 84))
    assert round(res.critical_difference, 2) == 1.25


def test_rank_analysis_signals():
    one = rank_analysis(pd.DataFrame({"a": [0.5], "b": [0.4], "c": [0.3]}), higher_is_better=True)
    assert one.statistic is None and one.critical_difference is None
    assert "more than one dataset" in one.note
    two = rank_analysis(pd.DataFrame({"a": [0.5, 0.6, 0.7, 0.8, 0.9, 0.7], "b": [0.4, 0.5, 0.6, 0.7, 0.8, 0.2]}),
                        higher_is_better=True)
    assert two.test == "Wilcoxon signed-rank" and two.critical_difference is None
    assert two.p_value == pytest.approx(2 / 2 ** 6)   # every difference positive: the exact two-sided minimum
    agree = rank_analysis(pd.DataFrame({"a": [0.5, 0.6], "b": [0.4, 0.5], "c": [0.3, 0.4]}), True)
    assert agree.statistic == pytest.approx(4.0)      # chi2 = N (k - 1) when all datasets agree
    assert agree.iman_davenport is None and agree.iman_davenport_p is None   # F = chi2 / 0: not p = 0
    assert "Iman-Davenport F is undefined" in agree.note
    missing = rank_analysis(pd.DataFrame({"a": [0.5, np.nan], "b": [0.4, 0.3], "c": [0.1, 0.2]}), True)
    assert missing.average_ranks is None and "a on 1" in missing.note


# ----------------------------------------------------------------------------------------------------
# variance shares
# ----------------------------------------------------------------------------------------------------


def _design(effect):
    rows = []
    for f in (-1, 1):
        for s in (-1, 1):
            for e in (-1, 1):
                rows.append({"family": f"fam{f}", "setting": s, "seed": e, "value": effect(f, s, e)})
    return pd.DataFrame(rows)


def test_variance_shares_of_a_balanced_design_by_hand():
    # y = 10 + 3 f + 1 s + 0.5 e, f, s, e = +-1, 2 x 2 x 2 runs: SS_family = 8 * 9 = 72,
    # SS_setting|family = 8 * 1 = 8, SS_seed = 8 * 0.25 = 2, total 82.
    res = variance_shares(_design(lambda f, s, e: 10 + 3 * f + s + 0.5 * e))
    assert (res.ss_family, res.ss_setting, res.ss_seed) == pytest.approx((72, 8, 2))
    assert (res.family, res.setting, res.seed) == pytest.approx((72 / 82, 8 / 82, 2 / 82))
    assert (res.df_family, res.df_setting, res.df_seed) == (1, 2, 4)
    assert res.notes == ()


def test_variance_shares_family_effect_only():
    res = variance_shares(_design(lambda f, s, e: 5.0 * f))
    assert (res.family, res.setting, res.seed) == pytest.approx((1.0, 0.0, 0.0))


def test_variance_shares_unbalanced_sums_to_one_and_matches_the_total():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "family": ["a"] * 7 + ["b"] * 4 + ["c"] * 3,
        "setting": [1, 1, 1, 2, 2, 3, 3, 1, 1, 1, 1, np.nan, np.nan, np.nan],
        "seed": [0, 1, 2, 0, 1, 0, 1, 0, 1, 2, 3, 0, 1, 2],
        "value": rng.normal(size=14),
    })
    res = variance_shares(frame)
    assert res.family + res.setting + res.seed == pytest.approx(1.0)
    y = frame["value"].to_numpy()
    assert res.ss_total == pytest.approx(np.sum((y - y.mean()) ** 2))
    # Family "b" and "c" have one setting each; "a" has three; NaN (a family with no parameter) is a setting.
    assert (res.n_families, res.n_settings) == (3, 5)


def test_variance_shares_signals():
    one_seed = _design(lambda f, s, e: f + s + e).query("seed == 1")
    res = variance_shares(one_seed)
    assert res.seed is None and res.setting is None and res.family is not None
    assert any("one seed per setting" in n for n in res.notes)

    one_family = _design(lambda f, s, e: f + s + e).query("family == 'fam1'")
    res = variance_shares(one_family)
    assert res.family is None and res.setting + res.seed == pytest.approx(1.0)
    assert any("one family" in n for n in res.notes)

    constant = variance_shares(_design(lambda f, s, e: 0.1))
    assert (constant.family, constant.setting, constant.seed) == (None, None, None)
    assert constant.ss_total == 0.0 and "values all equal" in constant.notes[0]

    with pytest.raises(ValueError):
        variance_shares(pd.concat([_design(lambda f, s, e: f), _design(lambda f, s, e: f)]))


def test_variance_shares_by_group():
    a = _design(lambda f, s, e: 10 + 3 * f + s + 0.5 * e).assign(dataset="d1")
    b = _design(lambda f, s, e: 5.0 * f).assign(dataset="d2")
    table = variance_shares_by(pd.concat([a, b]), ["dataset"])
    assert table["dataset"].tolist() == ["d1", "d2"]
    assert table["family"].tolist() == pytest.approx([72 / 82, 1.0])
    assert table["note"].tolist() == ["", ""]
