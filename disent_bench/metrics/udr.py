"""UDR: Unsupervised Disentanglement Ranking of models trained alike.

Duan, Matthey, Saraiva, Watters, Burgess, Lerchner & Higgins 2020, "Unsupervised Model Selection for
Variational Disentangled Representation Learning" (ICLR), as implemented in
google-research/disentanglement_lib (``evaluation/udr/metrics/udr.py``, ``compute_udr_sklearn``; the
per-model inputs are built by ``evaluation/udr/evaluate.py``).

UDR scores each of ``M >= 2`` models (in the paper: one hyperparameter setting, several seeds) by how well
its latents agree, one to one, with those of the other models. It needs no labels, and it needs several
models, so it is not a metric of the evaluator (which scores one model); the report calls
:func:`udr_scores` on the encoder means of the same images under every model, with each model's
:func:`kl_per_dimension` on those images.

1. Per model: standardise each latent (population std; a constant latent becomes 0), zero the latents whose
   KL is at most the threshold, and mark the latents whose KL exceeds it as informative.
2. For every ordered pair ``(i, j)``, ``i != j``: a ``D x D`` matrix ``R`` (rows: latents of ``i``, columns:
   latents of ``j``), either the absolute coefficients of a Lasso (``alpha=0.1``) predicting each latent of
   ``j`` from all latents of ``i``, or the absolute Spearman correlations. With the filter, keep the rows
   and columns of informative latents.
3. ``S(R)`` (:func:`pair_score`) = ``0.5 [mean_b (max_a R)^2 / sum_a R + mean_a (max_b R)^2 / sum_b R]``,
   a ``0/0`` ratio counting as 0. The paper divides one joint sum by ``d_a + d_b``; that is the same number
   when ``R`` is square.
4. The score of model ``i`` is the median over ``j != i`` of ``S`` of the pair ``(j, i)`` (``i`` is the
   regression target).

Where we depart from the reference, and why (Decision 4 of ``spec/evaluation-more.md``):

* The reference zeroes the latents whose KL is at most 0.01 (hard-coded) and filters with
  ``kl_filter_threshold``; we use the threshold for both (the same at the default 0.01).
* A Spearman correlation with a constant latent is NaN in scipy; we count it as 0. The reference lets the
  NaN spread to the whole row/column maximum and sum, so without the filter one dead latent of model ``i``
  zeroes every column ratio of the pair.
* Spearman's rho is computed for all pairs of latents at once (Pearson correlation of average ranks, which
  is what ``scipy.stats.spearmanr`` computes pair by pair); equal to rounding.
* Models of different latent sizes or sample counts are refused (the reference assumes equal sizes).
* After filtering, a pair with no informative latent on one side scores 0 (there is nothing to match);
  the reference raises on the empty maximum. So a model whose every latent has KL at most the threshold
  (collapsed, or barely trained) scores 0, and so does every model it is compared with in that pair.

The Lasso is scikit-learn's with the reference's settings written out (:data:`LASSO`): cyclic coordinate
descent is deterministic, so the reference's ``random_state`` (used only by ``selection="random"``) does not
change a number and is not taken.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso
from sklearn.preprocessing import StandardScaler

__all__ = [
    "CORRELATIONS",
    "KL_THRESHOLD",
    "LASSO",
    "UDRResult",
    "correlation_matrix",
    "kl_per_dimension",
    "model_scores",
    "pair_score",
    "udr_scores",
]

CORRELATIONS = ("lasso", "spearman")
# The reference's Lasso(alpha=0.1), with the defaults of its time (unchanged since) written out.
LASSO = {"alpha": 0.1, "fit_intercept": True, "precompute": False, "copy_X": True, "max_iter": 1000,
         "tol": 1e-4, "warm_start": False, "positive": False, "selection": "cyclic"}
# The reference's kl_filter_threshold (and its hard-coded zeroing threshold).
KL_THRESHOLD = 0.01


@dataclass(frozen=True)
class UDRResult:
    """What :func:`udr_scores` returns.

    ``model_scores`` ``(M,)``: each model's UDR. ``pairwise`` ``(M, M)``: ``S`` of the pair ``(i, j)`` (the
    latents of ``i`` predict those of ``j``), zero diagonal. ``raw_correlations`` ``(M, M, D, D)``: the
    unfiltered ``R`` of every pair (zeros on the diagonal blocks).
    """

    model_scores: np.ndarray
    pairwise: np.ndarray
    raw_correlations: np.ndarray


def kl_per_dimension(mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """``(D,)``: the mean over the rows of ``KL(N(mean, exp(logvar)) || N(0, 1))`` per latent dimension.

    ``0.5 (mu^2 + exp(lv) - lv - 1)`` averaged over the batch, as the reference's ``compute_gaussian_kl``
    (which averages per batch of equal size, then over batches: the same mean).
    """
    mean = np.asarray(mean, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    if mean.ndim != 2 or mean.shape != logvar.shape or mean.shape[0] < 1:
        raise ValueError(f"need mean and logvar of the same shape (n >= 1, D), got {mean.shape} and {logvar.shape}")
    return np.mean(0.5 * (np.square(mean) + np.exp(logvar) - logvar - 1.0), axis=0)


def pair_score(r: np.ndarray) -> float:
    """``S(R)``: how one-to-one the non-negative matrix ``R`` (rows: latents of one model, columns: of the other) is.

    1 for a (permuted) diagonal, ``1/d`` for a constant ``d x d`` matrix, 0 for zeros; a ``0/0`` ratio of a
    row or column counts as 0, an empty matrix scores 0.
    """
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"need a 2-D matrix, got shape {r.shape}")
    if r.size == 0:
        return 0.0
    if np.any(r < 0) or not np.all(np.isfinite(r)):
        raise ValueError("R must be finite and non-negative (absolute coefficients or correlations)")

    def mean_ratio(axis: int) -> float:
        peak = r.max(axis=axis)
        total = r.sum(axis=axis)
        ratio = np.divide(peak * peak, total, out=np.zeros_like(total), where=total > 0)  # 0/0 -> 0
        return float(np.mean(ratio))

    return 0.5 * (mean_ratio(0) + mean_ratio(1))


def _spearman_matrix(codes_i: np.ndarray, codes_j: np.ndarray) -> np.ndarray:
    """``|rho|`` of every latent of ``codes_i`` with every latent of ``codes_j``; 0 where either is constant."""
    ranks_i = scipy.stats.rankdata(codes_i, axis=0)
    ranks_j = scipy.stats.rankdata(codes_j, axis=0)
    ranks_i -= ranks_i.mean(axis=0)
    ranks_j -= ranks_j.mean(axis=0)
    norm_i = np.sqrt(np.sum(ranks_i * ranks_i, axis=0))
    norm_j = np.sqrt(np.sum(ranks_j * ranks_j, axis=0))
    covariance = ranks_i.T @ ranks_j
    scale = np.outer(norm_i, norm_j)
    rho = np.divide(covariance, scale, out=np.zeros_like(covariance), where=scale > 0)
    return np.minimum(np.abs(rho), 1.0)  # rounding can exceed 1 by an ulp, as in scipy's clip


def _lasso_matrix(codes_i: np.ndarray, codes_j: np.ndarray) -> np.ndarray:
    """``|coefficient|`` of latent ``a`` of ``codes_i`` in the Lasso fit of latent ``b`` of ``codes_j``."""
    with warnings.catch_warnings():
        # The reference's max_iter is part of the estimator; a fit stopping there is not an error.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Lasso(**LASSO).fit(codes_i, codes_j)
    return np.abs(np.asarray(model.coef_).reshape(codes_j.shape[1], codes_i.shape[1])).T


def correlation_matrix(codes_i: np.ndarray, codes_j: np.ndarray, kind: str = "lasso") -> np.ndarray:
    """``R`` ``(D_i, D_j)`` between two models' codes ``(n, D_i)`` and ``(n, D_j)`` of the same ``n`` images.

    ``kind="lasso"``: absolute Lasso coefficients (:data:`LASSO`) predicting each latent of ``j`` from all of
    ``i``. ``kind="spearman"``: absolute Spearman correlations (0 where a latent is constant).
    The codes are used as given (:func:`udr_scores` standardises them first).
    """
    if kind not in CORRELATIONS:
        raise ValueError(f"unknown correlation {kind!r}; valid: {', '.join(CORRELATIONS)}")
    codes_i = np.asarray(codes_i, dtype=np.float64)
    codes_j = np.asarray(codes_j, dtype=np.float64)
    if codes_i.ndim != 2 or codes_j.ndim != 2 or codes_i.shape[0] != codes_j.shape[0] or codes_i.shape[0] < 2:
        raise ValueError(f"need codes (n, D_i) and (n, D_j) of the same n >= 2, got {codes_i.shape} and "
                         f"{codes_j.shape}")
    if kind == "lasso":
        return _lasso_matrix(codes_i, codes_j)
    return _spearman_matrix(codes_i, codes_j)


def udr_scores(mean_codes: Sequence[np.ndarray], kl_per_dim: Sequence[np.ndarray], correlation: str = "lasso",
               kl_threshold: float = KL_THRESHOLD, filter_low_kl: bool = True) -> UDRResult:
    """UDR of ``M >= 2`` models from their encoder means ``(n, D)`` on the same ``n`` images, in the same order.

    ``kl_per_dim``: each model's ``(D,)`` mean KL per latent on those images (:func:`kl_per_dimension`).
    Latents with KL at most ``kl_threshold`` are zeroed, and, with ``filter_low_kl``, left out of ``S``.
    """
    if correlation not in CORRELATIONS:
        raise ValueError(f"unknown correlation {correlation!r}; valid: {', '.join(CORRELATIONS)}")
    num_models = len(mean_codes)
    if num_models < 2:
        raise ValueError(f"UDR compares models with each other: need at least 2 models, got {num_models}")
    if len(kl_per_dim) != num_models:
        raise ValueError(f"need one KL vector per model: {num_models} models, {len(kl_per_dim)} KL vectors")
    codes = [np.asarray(c, dtype=np.float64) for c in mean_codes]
    kls = [np.asarray(k, dtype=np.float64) for k in kl_per_dim]
    if any(c.ndim != 2 for c in codes):
        raise ValueError(f"every model's codes must be (n, D), got shapes {[c.shape for c in codes]}")
    sizes = sorted({c.shape[1] for c in codes})
    if len(sizes) > 1:
        raise ValueError(f"UDR needs models of the same latent size, got sizes {sizes}")
    counts = sorted({c.shape[0] for c in codes})
    if len(counts) > 1:
        raise ValueError(f"every model must encode the same images: got sample counts {counts}")
    num_points, dim = counts[0], sizes[0]
    if num_points < 2:
        raise ValueError(f"need at least 2 encoded images, got {num_points}")
    if any(k.shape != (dim,) for k in kls):
        raise ValueError(f"every KL vector must have shape ({dim},), got {[k.shape for k in kls]}")
    if not all(np.all(np.isfinite(c)) for c in codes) or not all(np.all(np.isfinite(k)) for k in kls):
        raise ValueError("codes and KL values must be finite")

    informative = [k > kl_threshold for k in kls]
    # StandardScaler as the reference uses it: population std, and a constant latent becomes 0.
    prepared = [StandardScaler().fit_transform(c) * mask for c, mask in zip(codes, informative)]
    raw = np.zeros((num_models, num_models, dim, dim))
    pairwise = np.zeros((num_models, num_models))
    for i in range(num_models):
        for j in range(num_models):
            if i == j:
                continue
            r = correlation_matrix(prepared[i], prepared[j], correlation)
            raw[i, j] = r
            if filter_low_kl:
                r = r[informative[i]][:, informative[j]]
            pairwise[i, j] = pair_score(r)
    return UDRResult(model_scores=model_scores(pairwise), pairwise=pairwise, raw_correlations=raw)


def model_scores(pairwise: np.ndarray) -> np.ndarray:
    """``(M,)``: each model's median ``S`` over the pairs where it is the target, from the pairwise ``(M, M)``.

    Model ``i`` is the regression target in the pairs ``(j, i)``: column ``i``, without the diagonal.
    """
    pairwise = np.asarray(pairwise, dtype=np.float64)
    if pairwise.ndim != 2 or pairwise.shape[0] != pairwise.shape[1] or pairwise.shape[0] < 2:
        raise ValueError(f"need a square (M, M) pairwise matrix with M >= 2, got shape {pairwise.shape}")
    off_diagonal = ~np.eye(pairwise.shape[0], dtype=bool)
    return np.median(pairwise.T[off_diagonal].reshape(pairwise.shape[0], -1), axis=1)
