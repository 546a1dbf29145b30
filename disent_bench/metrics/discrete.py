"""Discretisation and plug-in mutual information shared by MIG and modularity.

These follow ``disentanglement_lib/evaluation/metrics/utils.py`` (Locatello et al. 2019):

* :func:`histogram_discretize`: each code dimension on its own, ``num_bins`` equal-width bins between
  its min and max (``np.histogram`` edges), then ``np.digitize`` on the edges without the last one, so
  the minimum lands in bin 1 and the maximum in bin ``num_bins``.
* :func:`mutual_info_matrix`: ``m[i, j]`` is the plug-in (contingency-table) mutual information in nats
  between binned code ``i`` and factor ``j`` -- the value ``sklearn.metrics.mutual_info_score`` gives --
  computed for every pair at once from one ``np.bincount``.
* :func:`discrete_entropy`: the empirical entropy (nats) of each factor's classes.
"""

from __future__ import annotations

import numpy as np


def histogram_discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin ids ``(n, D)`` (int64, values 1..num_bins) of codes ``(n, D)``, each dimension binned on its own."""
    codes = np.asarray(codes, dtype=np.float64)
    binned = np.empty(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):  # D is ~10: the per-dimension work is vectorised
        edges = np.histogram_bin_edges(codes[:, d], bins=num_bins)
        binned[:, d] = np.digitize(codes[:, d], edges[:-1])
    return binned


def _entropy_of_counts(counts: np.ndarray, total: int, axis) -> np.ndarray:
    p = counts / total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, p * np.log(np.where(counts > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=axis)


def mutual_info_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Plug-in mutual information (nats) between every column of ``a`` ``(n, I)`` and of ``b`` ``(n, J)``.

    Both hold non-negative integer labels. Returns ``(I, J)``; ``m[i, j]`` equals
    ``sklearn.metrics.mutual_info_score(b[:, j], a[:, i])``: the same sum over non-empty contingency
    cells, the same zeroing of terms below machine epsilon, and exactly 0 when either variable takes a
    single value (modularity tests ``max m == 0``, so rounding noise there would change the score).
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"need (n, I) and (n, J) label arrays with the same n, got {a.shape} and {b.shape}")
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError("labels must be non-negative integers")
    n, num_a = a.shape
    num_b = b.shape[1]
    if n == 0:
        return np.zeros((num_a, num_b))
    size_a = int(a.max()) + 1
    size_b = int(b.max()) + 1
    # One joint histogram for all (i, j) pairs: cell = ((i * J + j) * size_a + a_i) * size_b + b_j.
    pair = (np.arange(num_a)[:, None] * num_b + np.arange(num_b)[None, :])  # (I, J)
    cells = (pair[None, :, :] * size_a + a[:, :, None]) * size_b + b[:, None, :]  # (n, I, J)
    joint = np.bincount(cells.ravel(), minlength=num_a * num_b * size_a * size_b)
    joint = joint.reshape(num_a, num_b, size_a, size_b).astype(np.float64)
    count_a = joint.sum(axis=3, keepdims=True)  # (I, J, A, 1)
    count_b = joint.sum(axis=2, keepdims=True)  # (I, J, 1, B)
    nonzero = joint > 0
    safe = np.where(nonzero, joint, 1.0)
    p = joint / n
    log_n = np.log(n)
    outer = np.where(nonzero, count_a * count_b, 1.0)
    # sklearn's arrangement of the same sum: p * (log c - log n) + p * (log n + log n - log(c_a * c_b)).
    terms = p * (np.log(safe) - log_n) + p * (-np.log(outer) + log_n + log_n)
    terms = np.where(nonzero & (np.abs(terms) >= np.finfo(np.float64).eps), terms, 0.0)
    mi = np.clip(terms.sum(axis=(2, 3)), 0.0, None)
    single = ((count_a[..., 0] > 0).sum(axis=2) == 1) | ((count_b[..., 0, :] > 0).sum(axis=2) == 1)
    mi[single] = 0.0
    return mi


def discrete_entropy(labels: np.ndarray) -> np.ndarray:
    """Empirical entropy (nats) of each column of integer labels ``(n, J)``."""
    labels = np.asarray(labels, dtype=np.int64)
    n, num = labels.shape
    out = np.empty(num)
    for j in range(num):
        out[j] = _entropy_of_counts(np.bincount(labels[:, j]).astype(np.float64), n, axis=0)
    return out
