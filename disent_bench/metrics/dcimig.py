"""DCIMIG: the MIG gaps of each code, credited to its factor and normalised by the factors' entropy.

Sepliarskaia, Kiseleva & de Rijke 2019, "Evaluating Disentangled Representations" (arXiv:1910.05587),
as implemented by ubisoft/ubisoft-laforge-disentanglement-metrics (``src/metrics/dcimig.py``,
``src/utils.py``; Zaidi et al. 2020): bin each code on its own into ``num_bins`` equal-width bins after
min-max scaling (:func:`~disent_bench.metrics.binned_information.minmax_bins`); with plug-in mutual
information ``I[k, l]`` in bits, each code's gap (largest - second largest ``I[:, l]``) is credited to
its best factor (the first on exact ties); ``D_k`` = the largest gap credited to factor ``k`` (0 if
none); DCIMIG = ``sum_k D_k / sum_k H(f_k)``. Range [0, 1].

Settings and departures from the reference:

* Factors are classes, used as given (the reference's ``continuous_factors=False``; its default
  ``True`` would re-bin the class indices into 10 bins, merging classes of factors with more than 10).
* ``num_bins`` is 10, the reference implementation's own default and the value its review paper ran,
  not the 20 of the disentanglement_lib protocol: more bins change the estimated information of the
  same code, so 20 would give different numbers under the same name.
* If every factor takes a single value in the sample (``sum_k H(f_k) = 0``) there is nothing to
  capture and every gap is 0: we return 0 where the reference's 0/0 gives NaN.
* With fewer than two factors the gap to the second-best factor is undefined: the score is NaN (as
  :func:`disent_bench.metrics.mig.mig_from_codes`); the reference raises an IndexError.
"""

from __future__ import annotations

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.binned_information import binned_information
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.sampling import draw_train as draw  # one sample, as MIG

NAME = "dcimig"
NEEDS: tuple[str, ...] = ()  # compute() reads codes and factors only


def dcimig_from_information(mutual_information: np.ndarray, factor_entropy: np.ndarray) -> float:
    """DCIMIG of a mutual-information matrix ``(K, L)`` (factors x codes) and the factors' entropies ``(K,)``."""
    information = np.asarray(mutual_information, dtype=np.float64)
    factor_entropy = np.asarray(factor_entropy, dtype=np.float64)
    if information.ndim != 2 or factor_entropy.shape != (information.shape[0],):
        raise ValueError(f"need I (K, L) and H(f) (K,), got {information.shape} and {factor_entropy.shape}")
    num_factors, num_codes = information.shape
    if num_codes == 0:
        raise ValueError("need at least one code")
    if num_factors < 2:
        return float("nan")  # no second-best factor to take a code's gap to
    ordered = np.sort(information, axis=0)
    gaps = ordered[-1] - ordered[-2]  # (L,)
    credited = np.zeros_like(information)
    credited[np.argmax(information, axis=0), np.arange(num_codes)] = gaps  # argmax: first factor on ties
    total_entropy = float(factor_entropy.sum())
    if total_entropy == 0.0:
        return 0.0  # no factor varies: nothing to capture (the reference: 0/0 = NaN)
    return float(credited.max(axis=1).sum() / total_entropy)


def dcimig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 10) -> float:
    """DCIMIG of codes ``(n, L)`` against factor classes ``(n, K)``."""
    tables = binned_information(factors, codes, num_bins)
    return dcimig_from_information(tables.mutual_information, tables.factor_entropy)


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    train = draws["train"]
    return {"score": dcimig_from_codes(view.codes(train), dataset.factors_of(train), int(settings["num_bins"]))}
