"""JEMMIG: Joint-Entropy-Minus-Mutual-Information Gap.

Do & Tran 2020, "Theory and Evaluation Metrics for Learning Disentangled Representations" (ICLR), as
implemented by ubisoft/ubisoft-laforge-disentanglement-metrics (``src/metrics/jemmig.py``,
``src/utils.py``; Zaidi et al. 2020): bin each code on its own into ``num_bins`` equal-width bins after
min-max scaling (:func:`~disent_bench.metrics.binned_information.minmax_bins`); with plug-in estimates
in bits, for each factor ``k`` let ``l*`` be the code with the largest ``I(f_k; c_l)``;
``JEMMI_k = H(f_k, c_l*) - I(f_k; c_l*) + (second largest I(f_k; c_l))``; JEMMIG = mean over factors
of ``1 - JEMMI_k / (H(f_k) + log2 num_bins)``. Range [0, 1], 1 best (unlike the paper's unnormalised
JEMMIG, where lower is better).

Settings and departures from the reference:

* Factors are classes, used as given (the reference's ``continuous_factors=False``; its default
  ``True`` would re-bin the class indices into 10 bins, merging classes of factors with more than 10).
* ``num_bins`` is 10, the reference implementation's own default and the value its review paper ran,
  not the 20 of the disentanglement_lib protocol: the bin count is part of the score's definition (it is
  in the normaliser ``log2 num_bins`` and bounds ``H(f_k, c_l*)``), so 20 would give different numbers
  under the same name.
* ``l*`` on exact ties (e.g. a factor twice in the code) is the last of the tied codes. The
  reference takes ``np.argsort(...)[-1]``, whose order among ties is numpy's implementation detail:
  numpy's default sort is not stable (numpy 2.4 on an AVX-512 CPU argsorts ``[0.5, 0.5, 0, 0, 0.5,
  ...]`` to ``[3, 2, ...]``); on the rows we tried it also put the last tied index last. The
  choice matters only when the tied codes have different entropies.
* With fewer than two codes the second-largest information is undefined: the score is NaN (as
  :func:`disent_bench.metrics.mig.mig_from_codes`); the reference raises an IndexError.
"""

from __future__ import annotations

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.binned_information import InformationTables, binned_information
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.sampling import draw_train as draw  # one sample, as MIG

NAME = "jemmig"
NEEDS: tuple[str, ...] = ()  # compute() reads codes and factors only


def jemmig_from_information(tables: InformationTables, num_bins: int) -> float:
    """JEMMIG of the information tables of factors and codes binned into ``num_bins`` bins."""
    information = np.asarray(tables.mutual_information, dtype=np.float64)  # (K, L)
    num_factors, num_codes = information.shape
    if num_factors == 0:
        raise ValueError("need at least one factor")
    if num_codes < 2:
        return float("nan")  # no second-best code
    # The best code of each factor, the LAST one on exact ties (the reference's argsort(...)[-1]).
    best = num_codes - 1 - np.argmax(information[:, ::-1], axis=1)  # (K,)
    rows = np.arange(num_factors)
    second = np.sort(information, axis=1)[:, -2]
    gap_entropy = tables.joint_entropy[rows, best] - information[rows, best] + second
    normaliser = tables.factor_entropy + np.log2(num_bins)
    return float(np.mean(1.0 - gap_entropy / normaliser))


def jemmig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 10) -> float:
    """JEMMIG of codes ``(n, L)`` against factor classes ``(n, K)``; ``num_bins`` >= 2."""
    if int(num_bins) < 2:
        raise ValueError(f"JEMMIG needs num_bins >= 2 (it normalises by H(f) + log2 num_bins), got {num_bins}")
    return jemmig_from_information(binned_information(factors, codes, num_bins), int(num_bins))


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    train = draws["train"]
    return {"score": jemmig_from_codes(view.codes(train), dataset.factors_of(train), int(settings["num_bins"]))}
