"""The reference's unsupervised scores: how far the codes are from independent, without any labels.

Locatello et al. 2019, "Challenging Common Assumptions in the Unsupervised Learning of Disentangled
Representations" (ICML), section 5, as computed by google-research/disentanglement_lib
(``evaluation/metrics/unsupervised_metrics.py``, configured by
``config/unsupervised_study_v1/metric_configs/unsupervised.gin``: 10,000 points, 20 histogram bins).
Every result file of that study holds these four numbers; lower means "closer to independent codes":

* ``gaussian_total_correlation``: the total correlation of the Gaussian with the codes' sample
  covariance ``C`` (``np.cov``, ddof 1), i.e. the KL divergence from it to the product of its marginals,
  ``0.5 * (sum_i log C_ii - log det C)`` (nats).
* ``gaussian_wasserstein_correlation``: the squared 2-Wasserstein distance between that Gaussian and the
  product of its marginals, ``2 tr C - 2 tr sqrtm(diag(C) C)``.
* ``gaussian_wasserstein_correlation_norm``: the same divided by ``tr C`` (scale-free).
* ``mutual_info_score``: each code dimension binned on its own (20 equal-width bins, as for MIG), the
  plug-in mutual information (nats) of every ordered pair of different dimensions, averaged over the
  ``D^2 - D`` pairs.

No factor labels are used: only ``num_train`` random images are encoded.

Degenerate codes: what the reference does, what we do, and why. Only the first and the last case give
a number where the reference gives none (NaN, an arbitrary number or an exception):

* A **constant code dimension** (all ``num_train`` values equal; e.g. a dead unit) has zero variance, so
  the reference's ``log C_ii`` is ``log 0`` and its total correlation is ``-inf - (-inf)`` = NaN (or,
  when ``np.cov`` leaves a rounding-sized variance, an arbitrary number). A constant is independent of
  everything, so its exact contribution to both the total correlation and the Wasserstein distance is 0:
  we drop constant dimensions from those two (and from ``tr C``). The mutual-information score keeps
  them, as the reference does and is well defined there: their pairs have mutual information exactly 0
  and count in the average.
* **Every** dimension constant: total correlation 0 and Wasserstein 0 (nothing is dependent), and the
  normalised Wasserstein NaN (0 / 0), as in the reference.
* A **singular** covariance among the non-constant dimensions (a dimension repeated, or a linear
  combination of others): the true Gaussian total correlation is +inf. As in the reference we read the
  log-magnitude of the determinant: +inf when it is exactly 0 (``[z, z]``), and otherwise a large but
  finite value set by rounding (about ``0.5 log(1 / eps)``, 15-20 nats), whether rounding left the
  determinant slightly positive or slightly negative. Such values mean "as dependent as the arithmetic
  can tell"; they are the reference's numbers, not a measurement.
* The square root: ``diag(C) C`` is similar to the symmetric ``S = s C s`` with ``s = diag(sqrt C_ii)``,
  so ``tr sqrtm(diag(C) C)`` is the sum of the square roots of ``S``'s eigenvalues. We take those from
  ``np.linalg.eigvalsh`` and clip the rounding-sized negative ones to 0, where the reference's
  ``scipy.linalg.sqrtm`` of the non-symmetric product can return tiny imaginary parts (and warns on a
  singular matrix). The two agree to about 1e-11 (relative) on non-singular covariances (tested
  against ``sqrtm``); on a singular one both carry the square root of a rounding-sized eigenvalue, an
  error of about 1e-8.
* **One** code dimension: total correlation and Wasserstein 0 (a 1-D Gaussian is its own marginal; the
  reference's ``np.cov`` returns a 0-d array there and it raises an IndexError), and the mutual-information
  score NaN (there is no pair: 0 / 0, as in the reference; MIG also returns NaN for one code).
"""

from __future__ import annotations

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.discrete import histogram_discretize, mutual_info_matrix
from disent_bench.metrics.sampling import draw_train as draw

NAME = "unsupervised"
NEEDS: tuple[str, ...] = ()  # compute() reads codes only


def _non_degenerate(cov: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """The block of ``cov`` over the kept dimensions (default: those with a positive variance)."""
    cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"need a square covariance matrix, got shape {cov.shape}")
    if keep is None:
        keep = np.diag(cov) > 0
    return cov[np.ix_(keep, keep)]


def gaussian_total_correlation(cov: np.ndarray, keep: np.ndarray | None = None) -> float:
    """Total correlation (nats) of a zero-mean Gaussian with covariance ``cov``: KL to its marginals' product.

    ``keep`` (bool per dimension) selects the non-constant dimensions; by default those with a positive
    variance. Returns ``+inf`` for an exactly singular covariance (see the module docstring).
    """
    block = _non_degenerate(cov, keep)
    if block.shape[0] == 0:
        return 0.0
    # The log of |det|, whatever its sign: a negative determinant is rounding of a singular one.
    log_abs_det = np.linalg.slogdet(block)[1]
    return float(0.5 * (np.sum(np.log(np.diag(block))) - log_abs_det))


def _wasserstein_and_trace(block: np.ndarray) -> tuple[float, float]:
    trace = float(np.trace(block))
    if block.shape[0] == 0:
        return 0.0, trace
    scale = np.sqrt(np.diag(block))
    symmetric = block * scale[:, None] * scale[None, :]  # similar to diag(C) @ C: same eigenvalues
    eigenvalues = np.clip(np.linalg.eigvalsh(symmetric), 0.0, None)  # PSD: negatives are rounding
    return float(2.0 * trace - 2.0 * np.sum(np.sqrt(eigenvalues))), trace


def gaussian_wasserstein_correlation(cov: np.ndarray, keep: np.ndarray | None = None) -> float:
    """Squared 2-Wasserstein distance between N(0, cov) and N(0, diag(cov)): ``2 tr C - 2 tr sqrtm(diag(C) C)``."""
    return _wasserstein_and_trace(_non_degenerate(cov, keep))[0]


def unsupervised_scores(codes: np.ndarray, num_bins: int = 20) -> dict[str, float]:
    """The four scores of codes ``(n, D)`` (n >= 2), under the reference's result names."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] < 2:
        raise ValueError(f"need codes of shape (n, D) with n >= 2, got {codes.shape}")
    num_codes = codes.shape[1]
    # Constant means bit-for-bit equal values: np.cov may still leave a rounding-sized variance for them.
    keep = ~np.all(codes == codes[:1], axis=0)
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    block = _non_degenerate(cov, keep)
    wasserstein, trace = _wasserstein_and_trace(block)
    binned = histogram_discretize(codes, num_bins)
    mutual_info = mutual_info_matrix(binned, binned)  # (D, D): every ordered pair at once
    np.fill_diagonal(mutual_info, 0.0)
    pairs = num_codes * num_codes - num_codes
    return {
        "gaussian_total_correlation": gaussian_total_correlation(block, np.ones(block.shape[0], dtype=bool)),
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein / trace if trace > 0 else float("nan"),
        "mutual_info_score": float(mutual_info.sum() / pairs) if pairs else float("nan"),
    }


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    return unsupervised_scores(view.codes(draws["train"]), settings["num_bins"])
