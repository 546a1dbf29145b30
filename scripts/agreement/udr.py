#!/usr/bin/env python3
"""Agreement of disent_bench.metrics.udr with disentanglement_lib's UDR (``evaluation/udr/metrics/udr.py``).

    python scripts/agreement/udr.py --dlib PATH/disentanglement_lib

PATH is a checkout of https://github.com/google-research/disentanglement_lib; its module is imported
from there (nothing of it is copied here) and needs ``pip install absl-py six gin-config``; its
``import gin.tf`` (TensorFlow) is answered with plain gin, which is all it uses. The reference's own
``compute_udr_sklearn`` runs on "models" whose representation functions return fixed arrays: a stub
ground-truth dataset hands out consecutive row numbers as observations (one batch after another), and
each model's function returns its codes of those rows and its fixed KL vector. Ours gets the same codes
and KL vectors. The helpers (``relative_strength_disentanglement``, ``spearman_correlation_conv``,
``lasso_correlation_matrix``) are compared on their own too.

One table row per (case, quantity). Exit 1 if any compared difference exceeds its tolerance, 2 if the
checkout or a needed package is missing. One row is a documented departure (Decision 4: scipy's NaN
Spearman correlation of a constant latent counts as 0) and is shown, not compared.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import types
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BATCH_SIZE = 10  # the reference's config (config/tests/methods/udr/udr.gin)
NUM_POINTS = 1000

# Lasso: the same scikit-learn fit on the same inputs (bit-identical expected). Spearman: ours ranks all
# latents at once and correlates the ranks, scipy does it pair by pair: rounding only.
TOLERANCE = {"lasso": 1e-12, "spearman": 1e-12, "S": 1e-15}


def load_reference(dlib: str):
    """disentanglement_lib's udr module, with ``gin.tf`` answered by plain gin (as scripts/reference-eval-time)."""
    import gin

    sys.modules["gin.tf"] = types.ModuleType("gin.tf")
    gin.tf = sys.modules["gin.tf"]
    configurable = gin.configurable

    def configurable_with_old_names(*args, blacklist=None, whitelist=None, **kwargs):
        # gin-config renamed these after the reference was written
        if blacklist is not None:
            kwargs["denylist"] = blacklist
        if whitelist is not None:
            kwargs["allowlist"] = whitelist
        return configurable(*args, **kwargs)

    gin.configurable = configurable_with_old_names
    sys.path.insert(0, os.path.abspath(dlib))
    try:
        return importlib.import_module("disentanglement_lib.evaluation.udr.metrics.udr")
    finally:
        gin.configurable = configurable


class RowNumbers:
    """A stand-in for the reference's GroundTruthData: observations are consecutive row numbers."""

    def __init__(self) -> None:
        self.next = 0

    def sample_observations(self, num, random_state):
        rows = self.next + __import__("numpy").arange(num)
        self.next += num
        return rows


def reference_udr(module, codes, kls, **settings):
    """The reference's compute_udr_sklearn on fixed codes ``(n, D)`` per model and fixed KL vectors."""
    import numpy as np

    functions = [lambda rows, c=c, k=k: (c[rows], k) for c, k in zip(codes, kls)]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # scipy's constant-input warnings, Lasso's convergence warnings
        return module.compute_udr_sklearn(RowNumbers(), functions, np.random.RandomState(0), BATCH_SIZE,
                                          NUM_POINTS, **settings)


def model_cases():
    """(name, codes per model, KL per model): the reference's test cases, then VAE-like model families."""
    import numpy as np

    images = np.random.RandomState(0).random_sample((NUM_POINTS, 64, 64, 1)).reshape(NUM_POINTS, -1)
    pixels = images[:, :10]
    rng = np.random.RandomState(1)
    permutation = rng.permutation(10)
    flipped = rng.choice(10, 5)
    copy = pixels[:, permutation].copy()
    copy[:, flipped] *= -1.0
    yield "udr_test: permuted, sign-flipped", [pixels, copy], [np.ones(10), np.ones(10)]
    noise = np.random.RandomState(2)
    kl_models = [np.column_stack([pixels[:, :1], noise.random_sample((NUM_POINTS, 9))]) for _ in range(2)]
    yield "udr_test: KL [1, 0 x 9]", kl_models, [np.r_[1.0, np.zeros(9)]] * 2
    # Four "seeds": the same 6 ground-truth signals, rotated a little differently, plus collapsed latents
    # (KL below the threshold) in different places.
    signals = rng.randn(NUM_POINTS, 6)
    codes, kls = [], []
    for m in range(4):
        rotation = np.linalg.qr(np.eye(6) + 0.15 * m * rng.randn(6, 6))[0]
        live = signals @ rotation[:, rng.permutation(6)] * rng.uniform(0.5, 2.0, size=6)
        dead = 0.01 * rng.randn(NUM_POINTS, 4)
        order = rng.permutation(10)
        codes.append(np.column_stack([live, dead])[:, order])
        kls.append(np.r_[rng.uniform(0.5, 3.0, size=6), rng.uniform(0.0, 0.009, size=4)][order])
    yield "4 VAE-like models, 4 dead latents", codes, kls


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.6g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dlib", required=True, help="a disentanglement_lib checkout (the folder holding setup.py)")
    args = parser.parse_args(argv)
    reference_file = os.path.join(args.dlib, "disentanglement_lib", "evaluation", "udr", "metrics", "udr.py")
    if not os.path.isfile(reference_file):
        print(f"error: {args.dlib} is not a disentanglement_lib checkout (no {reference_file})", file=sys.stderr)
        return 2
    missing = [name for name in ("gin", "absl", "six", "numpy", "scipy", "sklearn")
               if importlib.util.find_spec(name) is None]
    if missing:
        print(f"error: {', '.join(missing)} not installed; the reference's UDR module needs: "
              "pip install absl-py six gin-config numpy scipy scikit-learn", file=sys.stderr)
        return 2
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import numpy as np
    import sklearn

    from disent_bench.metrics import udr

    reference = load_reference(args.dlib)
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}; {NUM_POINTS} points in batches of "
          f"{BATCH_SIZE}")
    header = (f"{'metric':5} {'case':49} {'quantity':24} {'ours':>10} {'reference':>10} {'abs diff':>9} "
              f"{'tol':>6}  same means")
    print(header)
    print("-" * len(header))
    failures = 0

    def row(case, quantity, ours, theirs, diff, tolerance, meaning, compared=True):
        nonlocal failures
        ok = (not compared) or diff <= tolerance
        failures += not ok
        tol = f"{tolerance:>6.0e}" if compared else f"{'n/a':>6}"
        print(f"{'udr':5} {case:49} {quantity:24} {_fmt(ours):>10} {_fmt(theirs):>10} {diff:>9.2e} {tol}  "
              f"{meaning}{'' if ok else '   <-- DISAGREES'}")

    # The helpers on their own.
    matrices = {"identity": np.eye(3), "[[1,1,0],[1,1,0],[0,0,1]]": [[1, 1, 0], [1, 1, 0], [0, 0, 1.0]],
                "ones": np.ones((3, 3)), "zeros": np.zeros((3, 3)),
                "[[.9,.1],[.2,0],[0,.8]]": [[0.9, 0.1], [0.2, 0.0], [0.0, 0.8]],
                "[[.5,.5],[0,0]]": [[0.5, 0.5], [0.0, 0.0]],
                "random 10 x 10": np.abs(np.random.RandomState(3).randn(10, 10))}
    for name, matrix in matrices.items():
        matrix = np.asarray(matrix, dtype=float)
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")
            theirs = float(reference.relative_strength_disentanglement(matrix))
        ours = udr.pair_score(matrix)
        row(f"S {name}", "relative strength S", ours, theirs, abs(ours - theirs), TOLERANCE["S"], "same S")
    sample = np.random.RandomState(4)
    a = np.round(sample.randn(NUM_POINTS, 5), 1)  # ties
    b = np.column_stack([a[:, 3] ** 3, -a[:, 0], sample.randn(NUM_POINTS, 3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_s = reference.spearman_correlation_conv(a, b)
        theirs_l = reference.lasso_correlation_matrix(a, b, random_state=np.random.RandomState(0))
    diff = float(np.max(np.abs(udr.correlation_matrix(a, b, "spearman") - theirs_s)))
    row("R of tied 1000 x 5 codes", "spearman R (max diff)", None, None, diff, TOLERANCE["spearman"], "same |rho|")
    diff = float(np.max(np.abs(udr.correlation_matrix(a, b, "lasso") - theirs_l)))
    row("R of tied 1000 x 5 codes", "lasso R (max diff)", None, None, diff, TOLERANCE["lasso"], "same |coef|")

    # compute_udr_sklearn against udr_scores.
    for name, codes, kls in model_cases():
        for correlation in ("lasso", "spearman"):
            for filter_low_kl in (True, False):
                theirs = reference_udr(reference, codes, kls, correlation_matrix=correlation,
                                       filter_low_kl=filter_low_kl)
                ours = udr.udr_scores(codes, kls, correlation=correlation, filter_low_kl=filter_low_kl)
                their_scores = np.asarray(theirs["model_scores"], dtype=float)
                their_pairwise = np.asarray(theirs["pairwise_disentanglement_scores"], dtype=float)[..., 0]
                their_raw = np.asarray(theirs["raw_correlations"], dtype=float)
                case = f"{name} {correlation[:5]} {'filt' if filter_low_kl else 'unfilt'}"
                dead = any(np.any(k <= udr.KL_THRESHOLD) for k in kls)
                departure = correlation == "spearman" and not filter_low_kl and dead
                tolerance = TOLERANCE[correlation]
                raw = np.where(np.isnan(their_raw), 0.0, their_raw)  # Decision 4, for the raw matrices
                row(case, "raw R (max diff)", None, None, float(np.max(np.abs(ours.raw_correlations - raw))),
                    tolerance, "same R (reference NaN as 0)")
                meaning = ("departure (Decision 4): NaN rho -> 0 instead of zeroing whole ratios" if departure
                           else "same model scores")
                for m, (mine, their) in enumerate(zip(ours.model_scores, their_scores)):
                    row(case, f"model_scores[{m}]", mine, their, abs(mine - their), tolerance, meaning,
                        compared=not departure)
                if departure:
                    # What Decision 4 means, computed with the reference's own S on its R with NaN -> 0.
                    their_pairwise = np.zeros_like(ours.pairwise)
                    for i in range(len(codes)):
                        for j in range(len(codes)):
                            if i != j:
                                with np.errstate(divide="ignore", invalid="ignore"):  # its 0/0 ratios
                                    their_pairwise[i, j] = reference.relative_strength_disentanglement(raw[i, j])
                    their_scores = [np.median(np.delete(their_pairwise[:, i], i)) for i in range(len(codes))]
                    for m, (mine, their) in enumerate(zip(ours.model_scores, their_scores)):
                        row(case, f"model_scores[{m}] NaN->0", mine, their, abs(mine - their), tolerance,
                            "reference's S and median on its R, NaN -> 0")
                row(case, "pairwise (max diff)", None, None, float(np.max(np.abs(ours.pairwise - their_pairwise))),
                    tolerance, "same pairwise S")
    print(f"\n{failures} disagreement(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
