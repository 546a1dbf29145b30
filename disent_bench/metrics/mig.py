"""The Mutual Information Gap (MIG), in the form of Locatello et al. 2019.

Chen et al. 2018, "Isolating Sources of Disentanglement in Variational Autoencoders" (NeurIPS), as
estimated by google-research/disentanglement_lib (``evaluation/metrics/mig.py``): encode ``num_train``
random images; bin each code dimension on its own into ``num_bins`` equal-width bins; ``m[i, j]`` is the
plug-in mutual information (nats) between binned code ``i`` and the classes of factor ``j``; ``H[j]`` the
empirical entropy of factor ``j``; MIG = mean over factors of ``(largest m[:, j] - second largest) / H[j]``.

This is not Chen et al.'s own estimator (full-dataset density estimate on sampled codes), which would
need a different name.
"""

from __future__ import annotations

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.discrete import discrete_entropy, histogram_discretize, mutual_info_matrix
from disent_bench.metrics.sampling import draw_train as draw

NAME = "mig"
NEEDS: tuple[str, ...] = ()  # compute() reads codes and factors only


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> float:
    """MIG of codes ``(n, D)`` against integer factor classes ``(n, K)``."""
    m = mutual_info_matrix(histogram_discretize(codes, num_bins), factors)  # (D, K)
    entropy = discrete_entropy(factors)
    if m.shape[0] < 2:
        return float("nan")  # the gap to the second-best code is undefined with one code (as in the reference)
    ordered = np.sort(m, axis=0)
    return float(np.mean((ordered[-1] - ordered[-2]) / entropy))


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    train = draws["train"]
    return {"score": mig_from_codes(view.codes(train), dataset.factors_of(train), settings["num_bins"])}
