"""MIG-sup: the Mutual Information Gap taken per code (supervised modularity).

Li, Murkute, Gyawali & Wang 2020, "Progressive Learning and Disentanglement of Hierarchical
Representations" (ICLR), as implemented by ubisoft/ubisoft-laforge-disentanglement-metrics
(``src/metrics/mig_sup.py``, ``src/utils.py``; Zaidi et al. 2020): bin each code on its own into
``num_bins`` equal-width bins after min-max scaling (:func:`~disent_bench.metrics.binned_information.minmax_bins`);
``N[k, l] = I(f_k; c_l) / H(c_l)``, plug-in estimates in bits; MIG-sup = mean over codes of
(largest - second largest ``N[:, l]``). Range [0, 1], 1 = each code informs about one factor only.

Settings and departures from the reference:

* Factors are classes, used as given (the reference's ``continuous_factors=False``; its default
  ``True`` would re-bin the class indices into 10 bins, merging classes of factors with more than 10).
* ``num_bins`` is 10, the reference implementation's own default and the value its review paper ran,
  not the 20 of the disentanglement_lib protocol (MIG, modularity): the score is defined with that
  binning, and more bins inflate ``H(c_l)`` for the same information, so 20 would give different numbers
  under the same name.
* A constant code (``H(c_l) = 0``, hence also ``I = 0``) has normalised information 0/0; we define it
  as 0, so such a code scores gap 0 and pulls the mean down. The reference returns NaN for the whole
  score (numpy's 0/0), which would make one dead latent erase the metric.
* With fewer than two factors the gap to the second-best factor is undefined: the score is NaN (as
  :func:`disent_bench.metrics.mig.mig_from_codes` with fewer than two codes); the reference raises an
  IndexError.
"""

from __future__ import annotations

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.binned_information import binned_information
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.sampling import draw_train as draw  # one sample, as MIG

NAME = "mig_sup"
NEEDS: tuple[str, ...] = ()  # compute() reads codes and factors only


def mig_sup_from_information(mutual_information: np.ndarray, code_entropy: np.ndarray) -> float:
    """MIG-sup of a mutual-information matrix ``(K, L)`` (factors x codes) and the codes' entropies ``(L,)``."""
    mutual_information = np.asarray(mutual_information, dtype=np.float64)
    code_entropy = np.asarray(code_entropy, dtype=np.float64)
    if mutual_information.ndim != 2 or code_entropy.shape != (mutual_information.shape[1],):
        raise ValueError(f"need I (K, L) and H(c) (L,), got {mutual_information.shape} and {code_entropy.shape}")
    if mutual_information.shape[1] == 0:
        raise ValueError("need at least one code")
    if mutual_information.shape[0] < 2:
        return float("nan")  # no second-best factor to take the gap to
    constant = code_entropy == 0.0
    # Decision 5: a constant code's 0/0 is 0 (the reference's NaN would void the whole score).
    normalised = np.where(constant, 0.0, mutual_information / np.where(constant, 1.0, code_entropy))
    ordered = np.sort(normalised, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def mig_sup_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 10) -> float:
    """MIG-sup of codes ``(n, L)`` against factor classes ``(n, K)``."""
    tables = binned_information(factors, codes, num_bins)
    return mig_sup_from_information(tables.mutual_information, tables.code_entropy)


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    train = draws["train"]
    return {"score": mig_sup_from_codes(view.codes(train), dataset.factors_of(train), int(settings["num_bins"]))}
