"""The statistics layer of the report: interval estimates, significance-based bolding, probabilities of
improvement, ranks across datasets and the sources of variance.

Pure functions on numbers (numpy arrays, pandas frames): no file I/O, no plotting, no text formatting.
Every resampling takes an explicit ``seed`` (an int or a :class:`numpy.random.Generator`), so the same
inputs and seed give the same numbers (with one NumPy/SciPy version). Values that are NaN (a run without
that metric) are left out, as pandas' ``mean``/``count`` leave them out of the tables; an infinite value
is an error.

Why: Locatello et al. (2019) found that random seeds and hyper-parameters move disentanglement scores
more than the choice of model does, so a table of point estimates alone misleads. The methods follow

* Agarwal, Schwarzer, Castro, Courville & Bellemare (2021), "Deep Reinforcement Learning at the Edge of
  the Statistical Precipice", NeurIPS: report interval estimates, not point estimates
  (:func:`interval`), and the probability of improvement P(A > B) with a bootstrap interval, averaged
  over tasks (:func:`probability_of_improvement`, :func:`average_probability_of_improvement`);
* Demšar (2006), "Statistical Comparisons of Classifiers over Multiple Data Sets", JMLR 7: average
  ranks over datasets, the Friedman test (and the Iman-Davenport F it recommends), the Nemenyi
  critical difference, and Wilcoxon's signed-rank test for two methods (:func:`rank_analysis`);
* Bouthillier et al. (2021), "Accounting for Variance in Machine Learning Benchmarks", MLSys: how much
  of a score's variance comes from each source; here model family, hyper-parameter value within the
  family, and seed (:func:`variance_shares`).

What each function gives up on, and why, it says in its result (a ``None`` and a ``note``) rather than
by raising: a report of an unfinished sweep must still render.

The public functions:

* :func:`interval`: bootstrap confidence interval of a mean (bootstrap-t) or median (percentile);
  ``None`` below 3 values;
* :func:`not_worse_than_best`: the groups not significantly worse than the best (one-sided exact
  Mann-Whitney U), for bolding; :func:`min_p_value`: the smallest p such a test can reach;
* :func:`probability_of_improvement` / :func:`average_probability_of_improvement`: P(A > B) with a
  percentile bootstrap interval, on one dataset or averaged over datasets;
* :func:`rank_analysis`: average ranks, Friedman / Iman-Davenport (or Wilcoxon for two families),
  Nemenyi critical difference;
* :func:`variance_shares` / :func:`variance_shares_by`: nested sum-of-squares shares of family, setting
  and seed.
"""

from __future__ import annotations

import inspect
import math
import zlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "cell_seed",
    "MIN_VALUES",
    "MEAN_RESAMPLES",
    "MEDIAN_RESAMPLES",
    "IMPROVEMENT_RESAMPLES",
    "interval",
    "Bold",
    "min_p_value",
    "not_worse_than_best",
    "Improvement",
    "probability_of_improvement",
    "average_probability_of_improvement",
    "RankAnalysis",
    "rank_analysis",
    "VarianceShares",
    "variance_shares",
    "variance_shares_by",
]

Seed = int | np.random.Generator

#: Fewest values an interval or a test is computed from (the report prints "n < 3" below it).
MIN_VALUES = 3

#: Default bootstrap resamples. A mean's bootstrap-t interval at n = 5 moves by ~3% of its width from
#: one seed to another with 10,000 resamples (~6% with 2,000), at ~0.7 ms a call for n = 5, ~3.5 ms for
#: n = 30 and ~40 ms for n = 300 (a mean is over seeds: the paper grid has 5; pass fewer resamples for
#: hundreds). A median's percentile interval is limited by the discreteness of the bootstrap median more
#: than by the resample count (its upper end moves by ~3% of the width with 2,000 or 10,000 resamples
#: at n = 30): 2,000 resamples, ~0.6 ms at n = 5, ~2 ms at n = 30, ~12 ms at n = 300. Timings: one
#: core of a loaded 2-core Xeon.
MEAN_RESAMPLES = 10_000
MEDIAN_RESAMPLES = 2_000
#: P(A > B): ~1.3 ms a call for 5 vs 5 runs, ~7 ms for 30 vs 30 (~13 ms averaged over 7 datasets of
#: 5 vs 5).
IMPROVEMENT_RESAMPLES = 2_000

#: Mann-Whitney with tied values: the exact permutation (conditional on the ties) while the number of
#: ways to split the pooled values is at most this (7 vs 7: 3,432 splits, ~20 ms; 8 vs 8 would be 12,870
#: splits, ~70 ms), else the normal approximation with the tie correction.
_EXACT_PERMUTATION_LIMIT = 5_000
#: Mann-Whitney without ties: SciPy's exact null distribution while n_a * n_b is at most this (100 vs 100:
#: ~17 ms; 300 vs 300 would take ~11 s), else the normal approximation (accurate at such sizes).
_EXACT_PRODUCT_LIMIT = 10_000


def _values(values) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    if np.isinf(x).any():
        raise ValueError("infinite value: a statistic of it is not defined")
    return x


def cell_seed(*parts: object) -> int:
    """A resampling seed fixed by what a number is (its section, group, metric...), so the same results
    give the same report: the CRC-32 of the parts' texts joined by "|"."""
    return zlib.crc32("|".join(map(str, parts)).encode())


def _rng(seed: Seed) -> np.random.Generator:
    if seed is None:
        raise ValueError("pass an explicit seed (an int or a numpy Generator) so the numbers are reproducible")
    return np.random.default_rng(seed)


# scipy >= 1.15 names the generator `rng`; earlier versions `random_state`.
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


# ---------------------------------------------------------------------------------------------------
# 1. Interval estimates
# ---------------------------------------------------------------------------------------------------

# Measured coverage of nominal 95% intervals (fraction of simulated experiments whose interval holds the
# true value; 4,000 experiments per cell for the mean (+-0.7% at 95%), 3,000 for the median, 2,000
# resamples each, SciPy 1.17). Percentile and BCa are scipy.stats.bootstrap's; bootstrap-t as below.
#
#   mean                n   percentile   BCa     bootstrap-t   (Student t, not a bootstrap)
#   normal              3   0.752        0.728   0.812         0.955
#   normal              5   0.837        0.834   0.948         0.950
#   normal             10   0.895        0.892   0.946         0.951
#   exponential         3   0.703        0.685   0.792         0.887
#   exponential         5   0.781        0.797   0.932         0.883
#   exponential        10   0.865        0.881   0.941         0.906
#   lognormal(0, 1)     3   0.643        0.625   0.758         0.846
#   lognormal(0, 1)     5   0.719        0.735   0.891         0.825
#   lognormal(0, 1)    10   0.815        0.834   0.907         0.850
#
# So the mean uses the bootstrap-t (studentized) interval, the only one of the three that reaches 95% at
# n = 5 (Hall 1988; Efron & Tibshirani 1993, ch. 12): percentile and BCa are too narrow at small n
# because the bootstrap distribution of a mean of n values has the plug-in variance (n-1)/n s^2/n and
# no t-like tails. On skewed data it also beats Student's t from n = 5. Its known small-n behaviour: it
# is wide (median width at n = 5 about 1.3 times the Student t interval's), and at n = 3 it
# under-covers (~0.80): three values have only 10 distinct resamples, so the t quantiles are coarse.
# From n = 4 it is fine (0.949 normal, 0.924 exponential).
#
#   median              n   percentile   BCa     basic
#   normal              5   0.946        0.946   0.782
#   normal              6   0.940        0.940   0.829
#   normal             10   0.938        0.932   0.807
#   normal             20   0.931        0.932   0.829
#   exponential         6   0.937        0.936   0.773
#   exponential        10   0.939        0.937   0.771
#   lognormal(0, 1)     8   0.918        0.917   0.787
#   lognormal(0, 1)    20   0.939        0.940   0.821
#
# So the median uses the percentile interval: at least as good as BCa everywhere (BCa's acceleration
# buys nothing for a median, whose bootstrap distribution sits on a few order statistics), ~93-94%
# from n = 5 to 20 (92% at worst). A bootstrap-t for the median would need a nested bootstrap for each
# resample's standard error (the median has no simple one), at ~50 times the cost.
#
# Re-measured through interval() itself with its defaults (10,000 resamples for the mean, 2,000 for
# the median; 4,000 experiments per cell, one seed per experiment):
#
#   mean     normal       n = 3: 0.804   n = 4: 0.949   n = 5: 0.950   n = 10: 0.950
#   mean     exponential  n = 3: 0.780   n = 4: 0.924   n = 5: 0.934   n = 10: 0.942
#   median   normal       n = 6: 0.930   n = 10: 0.937  n = 30: 0.943
#   median   exponential  n = 6: 0.930   n = 10: 0.938  n = 30: 0.943
#
# tests/test_report_statistics.py re-checks mean, normal, n = 5 on 2,000 experiments (93-97%).


def interval(values, statistic: Literal["mean", "median"] = "mean", *, confidence: float = 0.95,
             resamples: int | None = None, seed: Seed) -> tuple[float, float] | None:
    """Bootstrap confidence interval ``(low, high)`` of the mean or median of ``values``.

    * ``"mean"``: the bootstrap-t (studentized bootstrap) interval: resample the values with
      replacement, compute t* = (mean* - mean) / se* per resample (se = sample standard deviation /
      sqrt(n)), and return (mean - t*_{1-a/2} se, mean - t*_{a/2} se). Resamples whose values are all
      one value have no t* and are left out (3 in 27 resamples of 3 values, 1 in 625 of 5). Measured
      coverage of the 95% interval for normal data: 0.95 at n = 4, 5 and 10 but only 0.80 at n = 3
      (see the table above this function): a report should flag intervals of 3 values. Vectorised in NumPy (SciPy's bootstrap has no studentized method).
    * ``"median"``: the percentile interval of ``scipy.stats.bootstrap`` (vectorised); measured
      coverage 0.92-0.95 for n = 5 to 20.

    NaN values are left out. Fewer than 3 values: ``None`` (the report prints "n < 3"). Values all
    equal: the degenerate interval ``(x, x)``. ``resamples`` defaults to :data:`MEAN_RESAMPLES` or
    :data:`MEDIAN_RESAMPLES`.
    """
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', not {statistic!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    rng = _rng(seed)
    x = _values(values)
    if x.size < MIN_VALUES:
        return None
    if x.min() == x.max():
        return float(x[0]), float(x[0])
    alpha = 1 - confidence
    if statistic == "mean":
        b = MEAN_RESAMPLES if resamples is None else int(resamples)
        return _bootstrap_t_mean(x, alpha, b, rng)
    b = MEDIAN_RESAMPLES if resamples is None else int(resamples)
    res = stats.bootstrap((x,), np.median, n_resamples=b, vectorized=True, axis=-1, method="percentile",
                          confidence_level=confidence, **{_RNG_KEYWORD: rng})
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _bootstrap_t_mean(x: np.ndarray, alpha: float, resamples: int, rng: np.random.Generator):
    n = x.size
    mean, se = x.mean(), x.std(ddof=1) / math.sqrt(n)
    draws = x[rng.integers(0, n, size=(n, resamples))]  # one resample a column (faster reductions)
    means, ses = draws.mean(axis=0), draws.std(axis=0, ddof=1) / math.sqrt(n)
    # A resample of one value repeated has no t. Tell it by its values, not by se > 0: the mean of
    # three 0.1s is 0.10000000000000002, so its se is 1.7e-17, not 0, and its t would be ~1e16.
    ok = (draws != draws[:1]).any(axis=0)
    t = (means[ok] - mean) / ses[ok]
    t_low, t_high = np.quantile(t, [alpha / 2, 1 - alpha / 2])
    return float(mean - t_high * se), float(mean - t_low * se)


# ---------------------------------------------------------------------------------------------------
# 2. Bolding: which groups are not significantly worse than the best
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bold:
    """Which groups to embolden, and why.

    ``labels``: the groups not significantly worse than the best (the best included); ``None`` when
    bolding is not possible (``note`` says why: a group with fewer than 3 values). ``best``: the
    label(s) with the best centre. ``p_values``: per other label, the one-sided p-value of "worse than
    the best" (the smallest over tied bests). ``min_p``: per other label, the smallest p-value that
    test could reach with these group sizes (:func:`min_p_value`). ``can_exclude``: whether any
    comparison could reach ``alpha`` at all; when not, every group is bold and ``note`` says so.
    """

    labels: frozenset | None
    best: tuple
    p_values: dict
    min_p: dict
    alpha: float
    can_exclude: bool
    method: str
    note: str | None = None


def min_p_value(n_a: int, n_b: int) -> float:
    """Smallest one-sided p-value the exact Mann-Whitney U test can give for groups of ``n_a`` and
    ``n_b`` values: 1 / C(n_a + n_b, n_a), reached when the groups do not overlap at all (tied values
    can only raise it). 3 vs 3: 1/20 = 0.05, so at alpha = 0.05 no group of 3 can be shown worse than
    another of 3; 3 vs 4: 0.029; 4 vs 4: 0.014; 5 vs 5: 0.004."""
    if n_a < 1 or n_b < 1:
        raise ValueError("group sizes must be positive")
    return 1.0 / math.comb(n_a + n_b, n_a)


def _u_statistic(x, y, axis=-1):
    """Mann-Whitney U of ``x``: the pairs with x > y plus half the pairs with x = y (vectorised over the
    leading axes). Small groups compare every pair; larger ones use the mid-ranks of the pooled values,
    U = (sum of x's ranks) - n_x (n_x + 1) / 2 (the same number)."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    n_x, n_y = x.shape[-1], y.shape[-1]
    if n_x * n_y <= 1024:
        d = x[..., :, None] - y[..., None, :]
        return (d > 0).sum(axis=(-2, -1)) + 0.5 * (d == 0).sum(axis=(-2, -1))
    ranks = stats.rankdata(np.concatenate([x, y], axis=-1), axis=-1)
    return ranks[..., :n_x].sum(axis=-1) - n_x * (n_x + 1) / 2


def _worse_p(candidate: np.ndarray, best: np.ndarray, higher_is_better: bool) -> tuple[float, str]:
    """One-sided Mann-Whitney p-value of "candidate is stochastically worse than best", and the method."""
    alternative = "less" if higher_is_better else "greater"
    pooled = np.concatenate([candidate, best])
    n_a, n_b = candidate.size, best.size
    if np.unique(pooled).size == pooled.size:
        if n_a * n_b <= _EXACT_PRODUCT_LIMIT:
            return float(stats.mannwhitneyu(candidate, best, alternative=alternative,
                                            method="exact").pvalue), "exact"
        return float(stats.mannwhitneyu(candidate, best, alternative=alternative,
                                        method="asymptotic").pvalue), "normal approximation"
    if math.comb(n_a + n_b, n_a) <= _EXACT_PERMUTATION_LIMIT:
        # Exact permutation distribution of U given the tied values (n_resamples=inf: every split).
        res = stats.permutation_test((candidate, best), _u_statistic, permutation_type="independent",
                                     vectorized=True, n_resamples=np.inf, alternative=alternative)
        return float(res.pvalue), "exact permutation (ties)"
    return float(stats.mannwhitneyu(candidate, best, alternative=alternative,
                                    method="asymptotic").pvalue), "normal approximation (ties)"


def not_worse_than_best(groups: Mapping[Hashable, Sequence[float]], higher_is_better: bool, *,
                        alpha: float = 0.05, centre: Literal["mean", "median"] = "mean") -> Bold:
    """The groups whose values are not significantly worse than the best group's.

    The best group is the one with the best ``centre`` (mean by default; higher or lower as
    ``higher_is_better`` says); groups tied for the best centre are all best. Every other group is
    tested with the one-sided Mann-Whitney U test of "this group is stochastically worse than the best"
    (``scipy.stats.mannwhitneyu(group, best, alternative="less")`` where higher is better, ``"greater"``
    where lower is): exact when no values tie (SciPy's exact null distribution; the normal
    approximation beyond 100 x 100 values), the exact permutation distribution of U given the ties when
    some tie (the normal approximation with the tie correction beyond 5,000 splits, e.g. 8 vs 8). A group is
    excluded iff p < ``alpha`` against some best group. Each comparison is at level ``alpha``, with no
    correction for the number of groups (a correction would only keep more groups bold).

    With small groups the test cannot reach ``alpha`` (:func:`min_p_value`: 3 vs 3 values never give
    p < 0.05): then every group is bold, ``can_exclude`` is False and ``note`` says so. If any group has
    fewer than 3 values, ``labels`` is ``None``: bold nothing (``note`` names the groups). NaN values
    are left out.
    """
    if not groups:
        raise ValueError("no groups")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    data = {label: _values(v) for label, v in groups.items()}
    small = [label for label, x in data.items() if x.size < MIN_VALUES]
    method = "one-sided Mann-Whitney U test against the best group"
    if small:
        names = ", ".join(str(label) for label in small)
        return Bold(None, (), {}, {}, alpha, False, method,
                    f"not bolded: fewer than {MIN_VALUES} values in {names}")
    if centre not in ("mean", "median"):
        raise ValueError(f"centre must be 'mean' or 'median', not {centre!r}")
    reduce = np.mean if centre == "mean" else np.median
    centres = {label: float(reduce(x)) for label, x in data.items()}
    target = max(centres.values()) if higher_is_better else min(centres.values())
    best = tuple(label for label, c in centres.items() if c == target)
    p_values, min_ps, methods = {}, {}, set()
    for label, x in data.items():
        if label in best:
            continue
        ps = []
        for b in best:
            p, how = _worse_p(x, data[b], higher_is_better)
            ps.append(p)
            methods.add(how)
        p_values[label] = min(ps)
        min_ps[label] = min(min_p_value(x.size, data[b].size) for b in best)
    labels = frozenset(best) | {label for label, p in p_values.items() if p >= alpha}
    can_exclude = any(m < alpha for m in min_ps.values())
    note = None
    if min_ps and not can_exclude:
        sizes = sorted({(data[label].size, data[best[0]].size) for label in min_ps})
        shown = ", ".join(f"{a} vs {b}" for a, b in sizes)
        note = (f"with {shown} values the one-sided Mann-Whitney p-value cannot go below "
                f"{max(min_ps.values()):.3g}, so no group can be shown worse than the best at "
                f"alpha = {alpha:g}")
    if methods:
        method += f" ({', '.join(sorted(methods))}; alpha = {alpha:g})"
    return Bold(frozenset(labels), best, p_values, min_ps, alpha, can_exclude, method, note)


# ---------------------------------------------------------------------------------------------------
# 3. Probability of improvement
# ---------------------------------------------------------------------------------------------------

class Improvement(NamedTuple):
    """P(A > B) and its bootstrap interval (``low``/``high`` ``None`` below 3 values a side)."""

    p: float
    low: float | None
    high: float | None


# Measured coverage of the 95% percentile interval of P(A > B) (1,500 experiments per cell, A ~ N(d, 1),
# B ~ N(0, 1), n values each, 2,000 resamples; BCa for comparison):
#
#   n   d = 0 (P = 0.50)   d = 0.5 (P = 0.64)   d = 1 (P = 0.76)   d = 2 (P = 0.92)
#   3   0.80 / BCa 0.89     0.85 / 0.86           0.73 / 0.75         0.38 / 0.38
#   5   0.90 / 0.96         0.91 / 0.96           0.87 / 0.92         0.63 / 0.63
#   10  0.95 / 0.98         0.92 / 0.97           0.92 / 0.96         0.85 / 0.90
#
# The percentile interval (Agarwal et al.'s choice) is kept: BCa is undefined (NaN) whenever the
# bootstrap distribution sits on one side of the estimate, which happens in 8-36% of the 5 vs 5 cases
# above, and is no better where the percentile interval fails. Both fail the same way: when every run
# of A beats every run of B (P = 1), every resample gives 1 and the interval collapses to (1, 1) (likewise
# (0, 0)); the true P may be well below 1 (d = 2 has P = 0.92 yet 5 vs 5 runs separate fully a third of
# the time). A report should print such a cell as "every run of A beats every run of B", not as a
# certain interval, and should expect ~85-90% coverage at 5 vs 5 runs. Averaged over datasets it does
# better: over 5 datasets of 5 vs 5 runs (600 experiments a cell) the stratified interval of
# average_probability_of_improvement covered 0.935 / 0.953 / 0.932 at d = 0 / 0.5 / 1, and
# 0.952 / 0.947 / 0.945 with 10 vs 10 runs.


def _improvement_distribution(a: np.ndarray, b: np.ndarray, resamples: int,
                              rng: np.random.Generator) -> np.ndarray:
    """Bootstrap distribution of P(A > B), resampling A and B independently."""
    def p_greater(x, y, axis=-1):
        return _u_statistic(x, y, axis=axis) / (x.shape[axis] * y.shape[axis])

    res = stats.bootstrap((a, b), p_greater, n_resamples=resamples, vectorized=True, paired=False, axis=-1,
                          method="percentile", **{_RNG_KEYWORD: rng})
    return np.asarray(res.bootstrap_distribution, dtype=float)


def _oriented(a, b, higher_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = _values(a), _values(b)
    if x.size == 0 or y.size == 0:
        raise ValueError("P(A > B) needs at least one value on each side")
    return (x, y) if higher_is_better else (-x, -y)


def _point_improvement(x: np.ndarray, y: np.ndarray) -> float:
    # U of the first sample, = #(x > y) + #(x = y) / 2.
    return float(stats.mannwhitneyu(x, y).statistic) / (x.size * y.size)


def probability_of_improvement(a, b, *, higher_is_better: bool = True, confidence: float = 0.95,
                               resamples: int = IMPROVEMENT_RESAMPLES, seed: Seed) -> Improvement:
    """P(A > B): the probability that a run of A scores better than a run of B, ties counting half.

    The Mann-Whitney probability U_A / (n_a n_b) (Agarwal et al. 2021's probability of improvement),
    with a percentile bootstrap interval: A and B are resampled independently (``scipy.stats.bootstrap``
    with ``paired=False``). With ``higher_is_better=False`` "better" means lower: the values are negated,
    so P is the probability that A's run scores lower. ``low``/``high`` are ``None`` when either side
    has fewer than 3 values. Properties: P(A > B) + P(B > A) = 1; the interval collapses to (1, 1) or
    (0, 0) when the groups do not overlap (see the coverage note above this function).
    """
    return average_probability_of_improvement([(a, b)], higher_is_better=higher_is_better,
                                              confidence=confidence, resamples=resamples, seed=seed)


def average_probability_of_improvement(per_dataset: Sequence[tuple[Sequence[float], Sequence[float]]], *,
                                       higher_is_better: bool = True, confidence: float = 0.95,
                                       resamples: int = IMPROVEMENT_RESAMPLES, seed: Seed) -> Improvement:
    """P(A > B) averaged over datasets, each dataset weighted equally, with a percentile interval.

    ``per_dataset`` holds one ``(a, b)`` pair of run values per dataset. The point estimate is the mean
    of the datasets' P(A > B) (:func:`probability_of_improvement`). The interval is a stratified
    bootstrap (Agarwal et al. 2021): each replicate resamples A and B independently within every
    dataset, and averages the datasets' P; the interval is the percentiles of those averages. It is
    ``None`` when any dataset has fewer than 3 values on a side.
    """
    if not per_dataset:
        raise ValueError("no datasets")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    rng = _rng(seed)
    pairs = [_oriented(a, b, higher_is_better) for a, b in per_dataset]
    p = float(np.mean([_point_improvement(x, y) for x, y in pairs]))
    if any(x.size < MIN_VALUES or y.size < MIN_VALUES for x, y in pairs):
        return Improvement(p, None, None)
    replicates = np.mean([_improvement_distribution(x, y, int(resamples), rng) for x, y in pairs], axis=0)
    alpha = 1 - confidence
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return Improvement(p, float(low), float(high))


# ---------------------------------------------------------------------------------------------------
# 4. Ranks across datasets
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RankAnalysis:
    """Average ranks of families over datasets and the test of whether they differ.

    ``average_ranks``: per family (the frame's column order), its rank averaged over datasets (1 = best,
    ties share the average rank); ``None`` only when ranks cannot be formed (a missing value, fewer than
    two families). ``test``: the omnibus test's name; ``statistic`` / ``p_value``: its result
    (Friedman's chi-square, tie-corrected, with its chi-square p-value; or Wilcoxon's signed-rank
    statistic and two-sided p-value for two families). ``iman_davenport`` / ``iman_davenport_p``:
    Demšar's recommended F form of Friedman's statistic. ``critical_difference``: the Nemenyi CD
    (three or more families): two families whose average ranks differ by more are significantly
    different at ``alpha``. ``method``: a sentence for captions. ``note``: why something is ``None``,
    or a caveat.
    """

    average_ranks: pd.Series | None
    n_datasets: int
    n_families: int
    alpha: float
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    iman_davenport: float | None = None
    iman_davenport_p: float | None = None
    q_alpha: float | None = None
    critical_difference: float | None = None
    method: str = ""
    note: str | None = None


def rank_analysis(medians: pd.DataFrame, higher_is_better: bool, *, alpha: float = 0.05) -> RankAnalysis:
    """Demšar's (2006) comparison of families over datasets.

    ``medians``: rows = datasets, columns = families, values = each family's centre (median) on the
    dataset. Each dataset ranks the families (1 = best; ties get the average of their ranks,
    ``scipy.stats.rankdata``); a family's average rank is the mean over datasets.

    * Three or more families: the Friedman test (``scipy.stats.friedmanchisquare``, tie-corrected
      chi-square; its chi-square p-value is rough for fewer than ~10 datasets), its Iman-Davenport F
      form F = (N-1) chi2 / (N(k-1) - chi2) on (k-1, (k-1)(N-1)) degrees of freedom, and the Nemenyi
      critical difference CD = q_alpha sqrt(k(k+1) / (6N)), q_alpha = studentized range quantile
      ``scipy.stats.studentized_range.ppf(1 - alpha, k, inf) / sqrt(2)`` (2.569 for k = 4, alpha = 0.05,
      as Demšar's Table 5).
    * Two families: the Friedman test is not defined (SciPy needs three); Wilcoxon's signed-rank test
      of the paired differences (``scipy.stats.wilcoxon``, two-sided, exact where SciPy can) is used
      instead, as Demšar recommends for two classifiers; no critical difference.
    * Fewer than two datasets: average ranks only (they are the one dataset's ranks), no test, ``note``
      "needs more than one dataset".

    AutoRank (Herbold 2020) is not used: it refuses fewer than five datasets, and this benchmark has
    two to seven.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    table = medians.astype(float)
    n, k = table.shape
    if k < 2:
        return RankAnalysis(None, n, k, alpha, note="needs at least two families")
    if table.isna().to_numpy().any():
        missing = [f"{c} on {r}" for r in table.index for c in table.columns if pd.isna(table.at[r, c])]
        return RankAnalysis(None, n, k, alpha,
                            note="ranks need every family on every dataset; missing: " + ", ".join(missing))
    if n == 0:
        return RankAnalysis(None, n, k, alpha, note="needs more than one dataset")
    values = table.to_numpy()
    ranks = stats.rankdata(-values if higher_is_better else values, axis=1)
    average = pd.Series(ranks.mean(axis=0), index=table.columns, name="average_rank")
    if n < 2:
        return RankAnalysis(average, n, k, alpha, method="ranks on one dataset",
                            note="needs more than one dataset: no test of the differences")
    if k == 2:
        return _two_families(average, values, n, alpha)
    tied_everywhere = bool((values.max(axis=1) == values.min(axis=1)).all())
    if tied_everywhere:
        return RankAnalysis(average, n, k, alpha, note="all families tie on every dataset: nothing to test")
    friedman = stats.friedmanchisquare(*values.T)
    chi2 = float(friedman.statistic)
    notes = []
    denominator = n * (k - 1) - chi2
    if denominator > 1e-9 * n * (k - 1):
        f = (n - 1) * chi2 / denominator
        f_p = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    else:  # every dataset ranks the families alike: F = chi2 / 0. Not "p = 0": with few datasets that
        # happens by chance (probability (1/k!)^(N-1) when no family differs).
        f = f_p = None
        notes.append("every dataset ranks the families alike: the Iman-Davenport F is undefined")
    q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))
    cd = q * math.sqrt(k * (k + 1) / (6 * n))
    method = (f"average ranks over {n} datasets; Friedman test (chi-square, tie-corrected) and "
              f"Iman-Davenport F; Nemenyi critical difference at alpha = {alpha:g} (Demšar 2006)")
    if n < 10:
        notes.append(f"Friedman's chi-square p-value is approximate with {n} datasets (reliable from ~10)")
    return RankAnalysis(average, n, k, alpha, "Friedman", chi2, float(friedman.pvalue), f, f_p, q, cd,
                        method, "; ".join(notes) or None)


def _two_families(average: pd.Series, values: np.ndarray, n: int, alpha: float) -> RankAnalysis:
    differences = values[:, 0] - values[:, 1]
    if not differences.any():
        return RankAnalysis(average, n, 2, alpha, "Wilcoxon signed-rank",
                            note="the two families tie on every dataset: nothing to test")
    res = stats.wilcoxon(values[:, 0], values[:, 1])
    method = (f"average ranks over {n} datasets; two families: Wilcoxon signed-rank test, two-sided "
              f"(Demšar 2006); no critical difference")
    note = None
    smallest = 2.0 / 2 ** int(np.count_nonzero(differences))
    if smallest >= alpha:
        note = (f"with {np.count_nonzero(differences)} datasets that differ, the two-sided exact Wilcoxon "
                f"p-value cannot go below {smallest:.3g}")
    return RankAnalysis(average, n, 2, alpha, "Wilcoxon signed-rank", float(res.statistic), float(res.pvalue),
                        method=method, note=note)


# ---------------------------------------------------------------------------------------------------
# 5. Sources of variance
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VarianceShares:
    """Shares of a metric's variance (sum of squares) explained by family, setting and seed.

    ``family`` + ``setting`` + ``seed`` = 1 when all three are given; a share is ``None`` where it
    cannot be estimated and ``notes`` say why. ``ss_*``: the sums of squares (``ss_seed`` is the
    residual within settings), ``df_*`` their degrees of freedom.
    """

    family: float | None
    setting: float | None
    seed: float | None
    ss_total: float
    ss_family: float
    ss_setting: float
    ss_seed: float
    df_family: int
    df_setting: int
    df_seed: int
    n_runs: int
    n_families: int
    n_settings: int
    notes: tuple[str, ...] = ()


_SHARE_COLUMNS = ("family", "setting", "seed", "value")


def variance_shares(frame: pd.DataFrame) -> VarianceShares:
    """Nested (hierarchical) decomposition of one metric's values on one dataset.

    ``frame`` has one row per run, with columns ``family``, ``setting`` (the hyper-parameter value;
    settings are nested in families, so beta = 4 of two families are two settings), ``seed`` and
    ``value``. With grand mean m, family means m_f and setting means m_fs::

        SS_total            = sum (y - m)^2
        SS_family           = sum_f n_f (m_f - m)^2                       df = F - 1
        SS_setting|family   = sum_{f,s} n_fs (m_fs - m_f)^2               df = S - F
        SS_seed (residual)  = sum (y - m_fs)^2                            df = N - S

    SS_total = SS_family + SS_setting|family + SS_seed exactly, and the shares are SS / SS_total
    (eta-squared). Unbalanced designs (families with different numbers of settings or runs) use this
    sequential (type I) decomposition, family first: a family's weight is its number of runs.

    These are shares of the observed sum of squares, not estimated variance components: seed noise
    also moves the family and setting means, so with few seeds the family and setting shares include
    some of it (the expected SS of a level with L groups holds (L - 1) sigma^2_seed).

    Signals (share ``None`` and a note): one family (no family share); one setting per family (no
    setting share); one seed per setting (no seed share: 0 by construction, and the setting
    differences include the seed variance, so no setting share either); values all equal (SS_total =
    0: no shares). NaN values are dropped. ``seed`` only identifies the run: two rows for one
    (family, setting, seed) are an error.
    """
    missing = [c for c in _SHARE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"variance_shares needs columns {', '.join(missing)}")
    data = frame.loc[frame["value"].notna(), list(_SHARE_COLUMNS)].copy()
    data["value"] = data["value"].astype(float)
    if np.isinf(data["value"].to_numpy()).any():
        raise ValueError("infinite value: variance shares are not defined")
    if data.duplicated(["family", "setting", "seed"]).any():
        raise ValueError("more than one value for a (family, setting, seed): pass one value per run")
    y = data["value"].to_numpy()
    n = y.size
    if n == 0:
        return VarianceShares(None, None, None, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0, 0, ("no values",))
    family_mean = data.groupby("family", dropna=False, sort=False)["value"].transform("mean").to_numpy()
    setting_mean = data.groupby(["family", "setting"], dropna=False, sort=False)["value"] \
        .transform("mean").to_numpy()
    grand = y.mean()
    ss_family = float(((family_mean - grand) ** 2).sum())
    ss_setting = float(((setting_mean - family_mean) ** 2).sum())
    ss_seed = float(((y - setting_mean) ** 2).sum())
    ss_total = ss_family + ss_setting + ss_seed  # = sum (y - grand)^2, up to rounding
    n_families = data["family"].nunique(dropna=False)
    n_settings = len(data.groupby(["family", "setting"], dropna=False, sort=False))
    df = (n_families - 1, n_settings - n_families, n - n_settings)
    shares = {"family": None, "setting": None, "seed": None}
    notes = []
    if y.min() == y.max():
        notes.append("values all equal: no variance to share")
        return VarianceShares(None, None, None, 0.0, 0.0, 0.0, 0.0, *df, n, n_families, n_settings, tuple(notes))
    if n_families > 1:
        shares["family"] = ss_family / ss_total
    else:
        notes.append("one family: no family share")
    one_seed = n_settings == n
    if one_seed:
        notes.append("one seed per setting: the seed share is 0 by construction and the setting share "
                     "would include the seed variance: neither is estimated")
    else:
        shares["seed"] = ss_seed / ss_total
    if n_settings == n_families:
        notes.append("one setting per family: no setting share")
    elif not one_seed:
        shares["setting"] = ss_setting / ss_total
    return VarianceShares(shares["family"], shares["setting"], shares["seed"], ss_total, ss_family, ss_setting,
                          ss_seed, *df, n, n_families, n_settings, tuple(notes))


def variance_shares_by(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """:func:`variance_shares` per group of ``by`` (e.g. ``["dataset", "metric"]`` of a long frame),
    one row per group: the ``by`` columns, ``n_runs``, ``family``, ``setting``, ``seed`` (shares or NaN)
    and ``note`` (the notes joined by "; ", "" when none)."""
    rows = []
    for key, part in frame.groupby(list(by), dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        shares = variance_shares(part)
        rows.append({**dict(zip(by, key)), "n_runs": shares.n_runs,
                     "family": np.nan if shares.family is None else shares.family,
                     "setting": np.nan if shares.setting is None else shares.setting,
                     "seed": np.nan if shares.seed is None else shares.seed,
                     "note": "; ".join(shares.notes)})
    return pd.DataFrame(rows, columns=[*by, "n_runs", "family", "setting", "seed", "note"])
