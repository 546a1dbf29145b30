"""The Interventional Robustness Score (IRS).

Suter, Miladinović, Schölkopf & Bauer 2019, "Robustly Disentangled Causal Mechanisms: Validating Deep
Representations for Interventional Robustness" (ICML), as estimated by
google-research/disentanglement_lib (``evaluation/metrics/irs.py``, ``compute_irs`` and
``scalable_disentanglement_score``; its ``config/sample/irs/irs.gin``: 10,000 points, histogram
discretiser with 20 bins, ``diff_quantile`` 0.99):

1. Encode ``num_train`` random images. Discretise each *factor* (not the codes) into ``num_bins``
   equal-width bins between its sample min and max
   (:func:`disent_bench.metrics.discrete.histogram_discretize`): classes 0, 1, 2 become bins 1, 11, 20,
   and a factor with more than ``num_bins`` classes has neighbouring classes merged.
2. Drop the code dimensions with zero variance; if none is left the IRS is 0.
3. For code dim ``l``: ``maxdev_l`` = max over points of ``|z_l - mean z_l|``. For factor ``k`` and each
   of its distinct (binned) values ``v``: ``e`` = mean code over the points with that value, ``q_l`` =
   the ``diff_quantile`` quantile (numpy's linear interpolation) of ``|z_l - e_l|`` over them;
   ``cum[l, k]`` = mean of ``q_l`` over the values (each value counts once, whatever its group size).
4. ``M[l, k] = 1 - cum[l, k] / maxdev_l``; ``score_l = max_k M[l, k]``;
   IRS = ``sum_l maxdev_l score_l / sum_l maxdev_l``. At most 1; it can be negative.

Departures from the reference:

* ``num_active_dims`` is the number of code dimensions kept in step 2. The reference reports the sum of
  all entries of the kept code matrix instead (``np.sum(active_mus)``), a number with no meaning.
* Sampling is the project's (uniform image indices from the metric's own generator), not the
  reference's batches of 16 from a ``RandomState``; the estimator on a given sample is the same.
* :func:`irs_from_discretised` refuses code dimensions without spread (the reference's core would divide
  0 by 0 and return NaN); :func:`irs_from_codes` drops them first, as the reference's wrapper does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.discrete import histogram_discretize
from disent_bench.metrics.sampling import draw_train as draw  # one sample, as MIG

NAME = "irs"
NEEDS: tuple[str, ...] = ()  # compute() reads codes and factors only


class IrsResult(NamedTuple):
    """The IRS of active code dims against discretised factors, with its parts."""

    score: float  # the IRS: maxdev-weighted mean of dim_scores
    irs_matrix: np.ndarray  # (L, K) M[l, k] = 1 - cum[l, k] / maxdev_l
    dim_scores: np.ndarray  # (L,) max_k M[l, k]
    max_deviations: np.ndarray  # (L,) max |z_l - mean z_l|


def _check_quantile(diff_quantile: float) -> float:
    diff_quantile = float(diff_quantile)
    if not 0.0 <= diff_quantile <= 1.0:
        raise ValueError(f"diff_quantile must lie in [0, 1], got {diff_quantile}")
    return diff_quantile


def irs_from_discretised(codes: np.ndarray, factor_labels: np.ndarray, diff_quantile: float = 0.99) -> IrsResult:
    """IRS of codes ``(n, L)`` (every dim with some spread) against discrete factor labels ``(n, K)``.

    This is the reference's ``scalable_disentanglement_score`` (steps 3 and 4 of the module docstring);
    the labels may be any values (each distinct value of a factor is one group).
    """
    codes = np.asarray(codes, dtype=np.float64)
    factor_labels = np.asarray(factor_labels)
    diff_quantile = _check_quantile(diff_quantile)
    if codes.ndim != 2 or factor_labels.ndim != 2 or codes.shape[0] != factor_labels.shape[0]:
        raise ValueError(f"need codes (n, L) and factor labels (n, K) with the same n, got {codes.shape} "
                         f"and {factor_labels.shape}")
    if codes.shape[0] == 0 or codes.shape[1] == 0 or factor_labels.shape[1] == 0:
        raise ValueError(f"need at least one point, code dim and factor, got codes {codes.shape} and "
                         f"factor labels {factor_labels.shape}")
    max_deviations = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)  # (L,)
    if np.any(max_deviations == 0.0):
        raise ValueError(f"code dims {np.flatnonzero(max_deviations == 0.0).tolist()} are constant; drop them "
                         "first (irs_from_codes does)")
    num_factors = factor_labels.shape[1]
    cum_deviations = np.zeros((codes.shape[1], num_factors))
    for k in range(num_factors):
        values, groups = np.unique(factor_labels[:, k], return_inverse=True)
        groups = groups.reshape(-1)
        # One group per distinct value (at most num_bins after discretisation); each step is vectorised
        # over the group's points and all code dims. np.mean and np.percentile (linear) as the reference
        # calls them, so the numbers agree up to the order of summation.
        for v in range(values.size):
            members = codes[groups == v]
            spread = np.abs(members - np.mean(members, axis=0))
            cum_deviations[:, k] += np.percentile(spread, q=diff_quantile * 100, axis=0)
        cum_deviations[:, k] /= values.size
    irs_matrix = 1.0 - cum_deviations / max_deviations[:, None]
    dim_scores = irs_matrix.max(axis=1)
    score = float(np.sum(max_deviations * dim_scores) / np.sum(max_deviations))
    return IrsResult(score, irs_matrix, dim_scores, max_deviations)


def active_dimensions(codes: np.ndarray) -> np.ndarray:
    """Boolean mask ``(L,)`` of the code dims with non-zero variance over the points ``(n, L)``."""
    return np.asarray(codes, dtype=np.float64).var(axis=0) > 0.0


def irs_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20,
                   diff_quantile: float = 0.99) -> dict[str, float]:
    """``{"score": IRS, "num_active_dims": kept dims}`` of codes ``(n, L)`` against factor classes ``(n, K)``.

    The factors are discretised into ``num_bins`` histogram bins (even though they are classes: the
    reference's protocol), constant code dims are dropped, and an IRS with none left is 0.
    """
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors)
    diff_quantile = _check_quantile(diff_quantile)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"need codes (n, L) and factors (n, K) with the same n, got {codes.shape} and {factors.shape}")
    if codes.shape[0] == 0:
        raise ValueError("need at least one point")
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be at least 1, got {num_bins}")
    active = active_dimensions(codes)
    num_active = int(active.sum())
    if num_active == 0:
        return {"score": 0.0, "num_active_dims": 0.0}
    factor_bins = histogram_discretize(factors, int(num_bins))
    result = irs_from_discretised(codes[:, active], factor_bins, diff_quantile)
    return {"score": result.score, "num_active_dims": float(num_active)}


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    train = draws["train"]
    return irs_from_codes(view.codes(train), dataset.factors_of(train), int(settings["num_bins"]),
                          float(settings["diff_quantile"]))
