"""Min-max binning and plug-in entropies in bits: what MIG-sup, JEMMIG and DCIMIG share.

These follow ubisoft/ubisoft-laforge-disentanglement-metrics (Zaidi et al. 2020, "Measuring
Disentanglement: A Review of Metrics"), ``src/utils.py`` and the top of ``src/metrics/mig_sup.py``,
``jemmig.py`` and ``dcimig.py``:

* :func:`minmax_bins`: each column scaled to [0, 1] with the arithmetic of scikit-learn's
  ``minmax_scale`` (``x * s + m`` with ``s = 1 / (max - min)`` and ``m = -min * s``; a range below
  ``10 * eps`` counts as 1, so a constant column becomes 0), then ``np.digitize`` on
  ``linspace(0, 1, num_bins + 1)[:-1]``: labels 1..num_bins, 1.0 in the last bin, a value on an edge in
  the bin above it. The arithmetic is copied on purpose: ``3 * 0.2`` (0.6000000000000001) lands in bin
  7 of 10 where 0.6 would land in bin 6, so a faithful copy is what makes the scores agree exactly.
* :func:`information_tables`: the plug-in (maximum-likelihood, frequency-table) entropies of every
  factor and every code, the joint entropy and the mutual information of every (factor, code) pair,
  in **bits**, the values the reference gets from ``pyitlib.discrete_random_variable`` (``entropy``,
  ``entropy_joint``, ``information_mutual``), computed here from one ``np.bincount`` per factor.

Departures from the reference, both on degenerate inputs only:

* The mutual information of a pair in which either variable takes a single value is exactly 0 (the
  true value). pyitlib computes it as ``H(X) - (H(X, Y) - H(Y))``, which can leave a rounding residue
  of order 1e-16; the residue is not information, and it would make which of several empty codes counts
  as a factor's "best" code (JEMMIG) depend on rounding.
* Codes are binned in float64 whatever their input type (``minmax_scale`` keeps float32 input in
  float32 arithmetic); the representation cache hands out float64 codes anyway.

:func:`disent_bench.metrics.discrete.mutual_info_matrix` (nats, scikit-learn's summation) gives the
same mutual information divided by ``ln 2`` to ~1e-15; it is not reused because the JEMMIG needs the
joint entropies from the same contingency tables, and the entropies themselves are needed in bits.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def minmax_bins(values: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin labels ``(n, D)`` (int64, 1..num_bins) of ``values`` ``(n, D)``, each column min-max scaled on its own."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"need an (n, D) array of codes, got shape {values.shape}")
    if values.shape[0] == 0:
        raise ValueError("need at least one point to bin")
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be at least 1, got {num_bins}")
    if not np.all(np.isfinite(values)):
        raise ValueError("codes must be finite to be binned")
    low = values.min(axis=0)
    span = values.max(axis=0) - low
    # minmax_scale's guard: a (near-)constant column keeps scale 1, i.e. becomes x - min = 0.
    span = np.where(span < 10 * np.finfo(np.float64).eps, 1.0, span)
    scale = 1.0 / span
    offset = -low * scale  # minmax_scale's min_ (feature_range[0] = 0 adds an exact 0)
    scaled = values * scale + offset  # in this order: x * s, then + m, as scikit-learn transforms
    edges = np.linspace(0.0, 1.0, int(num_bins) + 1)[:-1]
    return np.digitize(scaled, edges).astype(np.int64)


def label_encode(labels: np.ndarray) -> np.ndarray:
    """Each column of ``labels`` ``(n, K)`` (any values) as integers 0..(distinct - 1), in sorted order."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"need an (n, K) array of labels, got shape {labels.shape}")
    encoded = np.empty(labels.shape, dtype=np.int64)
    for k in range(labels.shape[1]):  # K is small; np.unique is the vectorised work
        encoded[:, k] = np.unique(labels[:, k], return_inverse=True)[1].reshape(-1)
    return encoded


def entropy_of_counts(counts: np.ndarray, axis=-1) -> np.ndarray:
    """Plug-in entropy (bits) of frequency tables: ``-sum p log2 p`` over the non-empty cells along ``axis``."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=axis, keepdims=True)
    p = counts / np.where(total > 0, total, 1.0)
    terms = np.where(counts > 0, p * np.log2(np.where(counts > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=axis)


def entropy_bits(labels: np.ndarray) -> np.ndarray:
    """Plug-in entropy (bits) of each column of ``labels`` ``(n, K)`` (any values)."""
    encoded = label_encode(labels)
    return np.array([entropy_of_counts(np.bincount(encoded[:, k])) for k in range(encoded.shape[1])])


class InformationTables(NamedTuple):
    """Plug-in information (bits) between factors ``(n, K)`` and binned codes ``(n, L)``."""

    factor_entropy: np.ndarray  # (K,) H(f_k)
    code_entropy: np.ndarray  # (L,) H(c_l)
    joint_entropy: np.ndarray  # (K, L) H(f_k, c_l)
    mutual_information: np.ndarray  # (K, L) I(f_k; c_l) = H(f_k) - (H(f_k, c_l) - H(c_l))


def information_tables(factors: np.ndarray, code_bins: np.ndarray) -> InformationTables:
    """Entropies and mutual information (bits) of every factor ``(n, K)`` and binned code ``(n, L)``.

    Both hold discrete labels of any values (they are label-encoded per column first). The mutual
    information is ``H(f) - (H(f, c) - H(c))``, the arrangement pyitlib uses, and exactly 0 where either
    variable takes a single value.
    """
    factors = label_encode(factors)
    codes = label_encode(code_bins)
    if factors.shape[0] != codes.shape[0]:
        raise ValueError(f"factors and codes need the same number of points, got {factors.shape[0]} "
                         f"and {codes.shape[0]}")
    if factors.shape[0] == 0:
        raise ValueError("need at least one point")
    num_factors, num_codes = factors.shape[1], codes.shape[1]
    code_size = int(codes.max()) + 1
    code_entropy = np.array([entropy_of_counts(np.bincount(column, minlength=code_size))
                             for column in codes.T])
    factor_entropy = np.empty(num_factors)
    joint_entropy = np.empty((num_factors, num_codes))
    code_column = np.arange(num_codes) * code_size  # (L,)
    for k in range(num_factors):  # one contingency table per (factor k, code l), all codes at once
        factor_size = int(factors[:, k].max()) + 1
        factor_entropy[k] = entropy_of_counts(np.bincount(factors[:, k], minlength=factor_size))
        cells = (code_column[None, :] + codes) * factor_size + factors[:, k][:, None]  # (n, L)
        joint = np.bincount(cells.ravel(), minlength=num_codes * code_size * factor_size)
        joint_entropy[k] = entropy_of_counts(joint.reshape(num_codes, code_size * factor_size), axis=1)
    mutual_information = factor_entropy[:, None] - (joint_entropy - code_entropy[None, :])
    # A single-valued variable shares no information: exactly 0, not a rounding residue.
    single = (factor_entropy[:, None] == 0.0) | (code_entropy[None, :] == 0.0)
    mutual_information = np.where(single, 0.0, mutual_information)
    return InformationTables(factor_entropy, code_entropy, joint_entropy, mutual_information)


def binned_information(factors: np.ndarray, codes: np.ndarray, num_bins: int) -> InformationTables:
    """:func:`information_tables` of factor classes ``(n, K)`` and min-max binned codes ``(n, L)``.

    The factors are used as given (the reference's ``continuous_factors=False``): they are classes.
    """
    codes = np.asarray(codes)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2:
        raise ValueError(f"need codes (n, L) and factors (n, K), got shapes {codes.shape} and {factors.shape}")
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes and factors need the same number of points, got {codes.shape[0]} "
                         f"and {factors.shape[0]}")
    return information_tables(factors, minmax_bins(codes, num_bins))
