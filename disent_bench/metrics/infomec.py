"""InfoMEC: InfoM (modularity), InfoC (compactness) and InfoE (explicitness) of a representation.

Hsu, Dorrell, Whittington, Wu & Finn 2023, "Disentanglement via Latent Quantization" (NeurIPS), as
implemented in kylehkhsu/latent_quantization (``disentangle/metrics/infomec.py``). On ``num_train``
random images, with factor classes as the sources ``s`` (``(n, K)``) and the codes as the latents ``z``
(``(n, L)``):

* ``NMI[k, l] = I(s_k; z_l) / H(s_k)`` in nats (sources label-encoded, plug-in entropy). Continuous latents:
  each latent is standardised on its own (``StandardScaler``), then ``I`` is scikit-learn's
  ``mutual_info_classif(z_l, s_k, discrete_features=False, n_neighbors=10)``, Ross's (2014) kNN estimator
  (it adds noise of scale 1e-10 and clips negative estimates at 0). Discrete latents: plug-in ``I``.
* Active latents (InfoM and InfoC only): raw range ``max - min`` above 1/20 of the largest range
  (continuous), above 0 (discrete).
* ``InfoM = (mean over active l of max_k NMI / sum_k NMI - 1/K) / (1 - 1/K)``.
* ``InfoC = (mean over k of max_l NMI / sum_l NMI - 1/L_a) / (1 - 1/L_a)``, over the ``L_a`` active latents.
* ``InfoE``: per source, an unpenalised multinomial logistic regression on all latents (standardised, or
  one-hot when discrete) with balanced class weights; ``h`` = its unweighted log loss on its own training
  points (there is no held-out set), ``h0`` = the same for all-zero inputs. ``InfoE = mean_k (h0 - h) / h0``.

The kNN estimate is sensitive to its inputs' last bits and to the seed of its tie-breaking noise: it counts
neighbours within a distance shrunk by one ulp, so on small samples the seed moves an NMI by ~0.01 (0.971
to 0.987 for NMI[0, 0] over seeds 0-4 on the spec's 60-point vector). Compare models at one seed.

Where we depart from the reference, and why:

* ``mutual_info_classif`` gets ``random_state`` (the evaluation's; Decision 7 of
  ``spec/evaluation-more.md``); the reference leaves it unset, so its numbers change from run to run.
  Given the same seed both compute the same numbers to the last bit.
* The reference fixes no sample size; we draw ``num_train`` points (10,000 in the paper preset, as the
  other metrics of the suite; Decision 7).
* ``h0`` is computed as ``ln(#classes)`` instead of fitting a regression on zeros: on constant inputs the
  balanced class weights make the uniform distribution the optimum, and lbfgs starts exactly there (zero
  gradient), so the reference's fit returns ``ln(#classes)`` up to rounding.
* The reference's logistic regression is spelled for scikit-learn < 1.7 (``penalty=None``,
  ``multi_class="multinomial"``); :data:`LOGISTIC_REGRESSION` is the same estimator in 1.9's spelling.
* A source that takes one value in the sample (zero entropy) makes the reference divide by zero (NMI row
  ``nan``/``inf``) and its logistic regression raise. We leave such sources out of all three scores (they
  have nothing to be captured or predicted; ``K`` counts the varying sources) and report their NMI row as
  NaN.

NaN results (documented, never raised; the reference gives NaN, or crashes, in the same cases):

* ``m`` is NaN when an active latent has an all-zero NMI column (``0/0``: it carries no estimated
  information about any source; Decision 7), when no latent is active, or when fewer than two sources vary
  (``1 - 1/K = 0``: modularity is undefined with one source).
* ``c`` is NaN when fewer than two latents are active (``L_a = 1`` gives ``0/0``; Decision 7), or when a
  varying source has zero NMI with every active latent (``0/0`` for that source).
* ``m``, ``c`` and ``e`` are NaN when no source varies in the sample.

A sample too small for the kNN estimator (a varying source whose every class holds a single point) raises
ValueError.
"""

from __future__ import annotations

import numpy as np
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.discrete import discrete_entropy, mutual_info_matrix
from disent_bench.metrics.sampling import draw_train as draw
from disent_bench.metrics.sklearn_utils import quiet_fit

__all__ = [
    "ACTIVE_RANGE_FRACTION",
    "KNN_NEIGHBORS",
    "LOGISTIC_REGRESSION",
    "NAME",
    "NEEDS",
    "active_latents",
    "compute",
    "draw",
    "info_c",
    "info_e",
    "info_m",
    "infomec_from_codes",
    "normalized_mutual_information",
]

NAME = "infomec"
NEEDS: tuple[str, ...] = ()  # compute() reads codes and factors only

# The kNN estimator's neighbour count, as the reference passes it to mutual_info_classif.
KNN_NEIGHBORS = 10
# A continuous latent is active when its range exceeds this fraction of the largest latent range.
ACTIVE_RANGE_FRACTION = 1.0 / 20.0
# InfoE's classifier. The reference writes LogisticRegression(penalty=None, dual=False, tol=1e-4,
# fit_intercept=True, class_weight="balanced", solver="lbfgs", max_iter=100, multi_class="multinomial",
# n_jobs=-1) for scikit-learn < 1.7. In 1.9 ``multi_class`` is gone (lbfgs always fits the multinomial
# loss on more than two classes) and ``penalty`` is deprecated: no penalty is C=inf (l1_ratio is then
# irrelevant; 0 keeps 1.9's l2 spelling and silences its deprecation). n_jobs has no effect on a single
# multinomial fit and is left out.
LOGISTIC_REGRESSION = {"C": np.inf, "l1_ratio": 0.0, "dual": False, "tol": 1e-4, "fit_intercept": True,
                       "class_weight": "balanced", "solver": "lbfgs", "max_iter": 100}


def _check_inputs(codes: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"need codes (n, L) and factors (n, K) with the same n, got {codes.shape} and "
                         f"{factors.shape}")
    if codes.shape[0] < 2 or codes.shape[1] < 1 or factors.shape[1] < 1:
        raise ValueError(f"InfoMEC needs at least 2 points, 1 latent and 1 factor, got codes {codes.shape} "
                         f"and factors {factors.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError("codes must be finite")
    return codes, factors


def _label_encode(columns: np.ndarray) -> np.ndarray:
    """Each column's values as consecutive integer labels 0..(distinct - 1), in sorted order (LabelEncoder)."""
    return np.stack([np.unique(column, return_inverse=True)[1].reshape(-1) for column in columns.T], axis=1)


def _varying(labels: np.ndarray) -> np.ndarray:
    """Which columns of integer labels take more than one value."""
    return labels.max(axis=0) > 0


def normalized_mutual_information(codes: np.ndarray, factors: np.ndarray, discrete_latents: bool = False,
                                  random_state: int = 0) -> np.ndarray:
    """``NMI[k, l] = I(s_k; z_l) / H(s_k)`` ``(K, L)`` of codes ``(n, L)`` and factor classes ``(n, K)``.

    Continuous latents: the kNN estimate of ``mutual_info_classif`` on the standardised latent, with
    ``random_state`` seeding its tie-breaking noise (one fresh generator per call, as an int seed gives);
    discrete latents: the plug-in estimate. A factor with one value in the sample has an NaN row.
    """
    codes, factors = _check_inputs(codes, factors)
    sources = _label_encode(factors)
    entropy = discrete_entropy(sources)
    num_latents = codes.shape[1]
    if discrete_latents:
        information = mutual_info_matrix(sources, _label_encode(codes))
    else:
        # StandardScaler itself, fitted on one column at a time as the reference does: the kNN estimate
        # counts neighbours within a distance shrunk by one ulp, so a last-bit difference in the inputs
        # moves it (scaling all columns in one call rounds differently and changed an NMI of the spec's
        # test vector from 0.9865 to 0.9880).
        standardised = np.concatenate([StandardScaler().fit_transform(codes[:, l:l + 1])
                                       for l in range(num_latents)], axis=1)
        # One thread for scikit-learn's neighbour searches: each call searches a few hundred points per
        # class, where OpenMP's start-up and barriers cost more than the search (on a busy 2-core machine
        # 40x more at 60 points, 1.4x at 10,000). The neighbours, hence the numbers, are the same.
        with threadpool_limits(limits=1):
            information = _knn_information(standardised, sources, entropy, random_state)
    with np.errstate(divide="ignore", invalid="ignore"):
        nmi = information / entropy[:, None]
    nmi[entropy == 0.0] = np.nan
    return nmi


def _knn_information(standardised: np.ndarray, sources: np.ndarray, entropy: np.ndarray,
                     random_state: int) -> np.ndarray:
    """``I(s_k; z_l)`` ``(K, L)`` by ``mutual_info_classif``, one call per pair as the reference makes them."""
    num_sources, num_latents = sources.shape[1], standardised.shape[1]
    information = np.zeros((num_sources, num_latents))
    for k in range(num_sources):
        if entropy[k] == 0.0:
            continue  # nothing to estimate; the caller makes the row NaN
        if np.bincount(sources[:, k]).max() < 2:
            # The estimator ignores points alone in their class; with every point alone it has no
            # data at all (scikit-learn fails inside on an empty tree).
            raise ValueError(f"factor {k} has {sources[:, k].max() + 1} classes with one point each in a "
                             f"sample of {len(sources)}: the kNN estimator needs a class with at least two "
                             "points; use a larger sample")
        for l in range(num_latents):
            information[k, l] = mutual_info_classif(standardised[:, l:l + 1], sources[:, k],
                                                    discrete_features=False, n_neighbors=KNN_NEIGHBORS,
                                                    random_state=random_state)[0]
    return information


def active_latents(codes: np.ndarray, discrete_latents: bool = False) -> np.ndarray:
    """Boolean mask ``(L,)`` of the latents InfoM and InfoC look at (by raw range)."""
    codes = np.asarray(codes, dtype=np.float64)
    ranges = codes.max(axis=0) - codes.min(axis=0)
    if discrete_latents:
        return ranges > 0
    return ranges > np.max(ranges) * ACTIVE_RANGE_FRACTION


def _normalised_concentration(nmi: np.ndarray, axis: int) -> float:
    """``(mean of max / sum along axis - 1/size) / (1 - 1/size)``; NaN for 0/0 (see the module docstring)."""
    size = nmi.shape[axis]
    if nmi.size == 0 or size < 2:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        concentration = np.mean(nmi.max(axis=axis) / nmi.sum(axis=axis))
        return float((concentration - 1.0 / size) / (1.0 - 1.0 / size))


def info_m(nmi: np.ndarray, active: np.ndarray) -> float:
    """InfoM of an NMI matrix ``(K, L)`` over the active latents; rows of NaN (constant sources) left out."""
    nmi = np.asarray(nmi, dtype=np.float64)
    varying = ~np.isnan(nmi).all(axis=1)
    return _normalised_concentration(nmi[varying][:, np.asarray(active, dtype=bool)], axis=0)


def info_c(nmi: np.ndarray, active: np.ndarray) -> float:
    """InfoC of an NMI matrix ``(K, L)`` over the active latents; rows of NaN (constant sources) left out."""
    nmi = np.asarray(nmi, dtype=np.float64)
    varying = ~np.isnan(nmi).all(axis=1)
    return _normalised_concentration(nmi[varying][:, np.asarray(active, dtype=bool)], axis=1)


def info_e(codes: np.ndarray, factors: np.ndarray, discrete_latents: bool = False) -> float:
    """InfoE: mean over varying sources of the normalised log-loss gain of a logistic regression on all latents."""
    codes, factors = _check_inputs(codes, factors)
    sources = _label_encode(factors)
    if discrete_latents:
        inputs = OneHotEncoder().fit_transform(codes)  # sparse, as in the reference
    else:
        inputs = StandardScaler().fit_transform(codes)
    gains = []
    # One thread (OpenMP and BLAS) for the fits: the gradients' sums, hence where lbfgs stops, are then the
    # same on every machine, and on small samples the threads cost more than they save (7x at 300 points).
    with threadpool_limits(limits=1):
        for k in np.flatnonzero(_varying(sources)):
            gains.append(_explicitness_of_source(inputs, sources[:, k]))
    return float(np.mean(gains)) if gains else float("nan")


def _explicitness_of_source(inputs, y: np.ndarray) -> float:
    """``(h0 - h) / h0`` of one source's logistic regression on ``inputs``."""
    model = quiet_fit(LogisticRegression(**LOGISTIC_REGRESSION), inputs, y)
    conditional = log_loss(y, model.predict_proba(inputs))
    marginal = np.log(y.max() + 1)  # the fit on all-zero inputs: see the module docstring
    return float((marginal - conditional) / marginal)


def infomec_from_codes(codes: np.ndarray, factors: np.ndarray, discrete_latents: bool = False,
                       random_state: int = 0) -> dict:
    """InfoM, InfoC, InfoE of codes ``(n, L)`` against factor classes ``(n, K)``.

    Returns ``{"m", "c", "e", "num_active_latents"}`` (floats; NaN in the cases of the module docstring)
    and ``"nmi"``, the ``(K, L)`` matrix. ``random_state`` seeds the kNN estimator's noise.
    """
    codes, factors = _check_inputs(codes, factors)
    nmi = normalized_mutual_information(codes, factors, discrete_latents, random_state)
    active = active_latents(codes, discrete_latents)
    return {"m": info_m(nmi, active), "c": info_c(nmi, active), "e": info_e(codes, factors, discrete_latents),
            "num_active_latents": float(active.sum()), "nmi": nmi}


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    train = draws["train"]
    scores = infomec_from_codes(view.codes(train), dataset.factors_of(train),
                                bool(settings["discrete_latents"]), random_state)
    return {key: scores[key] for key in ("m", "c", "e", "num_active_latents")}
