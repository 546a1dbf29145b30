#!/usr/bin/env python3
"""Agreement of disent_bench.metrics.infomec with the reference InfoMEC of kylehkhsu/latent_quantization.

    python scripts/agreement/infomec.py --latent-quantization PATH/latent_quantization

PATH is a checkout of https://github.com/kylehkhsu/latent_quantization; its
``disentangle/metrics/infomec.py`` is loaded by file path (its package ``__init__`` imports JAX, which
the metric does not use) and its own ``compute_infomec`` computes every reference number. Nothing of it
is copied here. Shims let it run on scikit-learn 1.9 and NumPy 2, none changing what it computes:

* ``mutual_info_classif`` is called with ``random_state=SEED`` (the reference leaves it unset, which
  draws the estimator's tie-breaking noise from numpy's global generator); ours gets the same seed, so
  the kNN estimates are computed from the same inputs and the same noise. Its one-element result is
  handed back as that element: the reference writes the array into a scalar slot of ``ret[i, j]``,
  which NumPy 2.4 refuses ("setting an array element with a sequence"; older NumPy converted it).
* ``LogisticRegression(multi_class="multinomial", ...)`` is built without ``multi_class`` (removed in
  scikit-learn 1.7; lbfgs always fits the multinomial loss there); ``penalty=None`` is kept while
  scikit-learn accepts it and becomes the equivalent ``C=inf`` after.

Both sides run on the same codes and factors in the same process. One table row per (case, quantity);
exit 1 if any difference exceeds its tolerance, 2 if the checkout or a package is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import sys
import types
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REFERENCE_FILE = os.path.join("disentangle", "metrics", "infomec.py")
SEED = 0

# What "the same" means per quantity, and the tolerance it is checked at.
TOLERANCES = {
    # The same kNN / plug-in MI calls on the same inputs; only the source entropy's arithmetic differs
    # (ours sums p log p, the reference calls mutual_info_score(s, s)): rounding.
    "nmi": (1e-12, "max |NMI diff|: same estimator, same inputs"),
    "m": (1e-12, "InfoM from the same NMI"),
    "c": (1e-12, "InfoC from the same NMI"),
    # The same lbfgs fit on the same inputs; h0 is ln(#classes) for ours and a fit on zeros (which stops
    # at its start, the uniform distribution) for the reference: rounding of the log loss.
    "e": (1e-9, "InfoE: same lbfgs fit; h0 = ln C vs fit on zeros"),
    "num_active_latents": (0.0, "same active latents"),
}


def load_reference(checkout: str):
    """The reference's infomec module, imported from the checkout by path, with the two shims."""
    import numpy as np
    from sklearn import feature_selection, linear_model

    spec = importlib.util.spec_from_file_location("latent_quantization_infomec", os.path.join(checkout,
                                                                                           REFERENCE_FILE))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def seeded_mutual_info_classif(*args, **kwargs):
        assert "random_state" not in kwargs  # the reference leaves it unset
        (estimate,) = feature_selection.mutual_info_classif(*args, random_state=SEED, **kwargs)
        return estimate  # the reference stores it in a scalar slot (NumPy 2.4 refuses a (1,) array there)

    takes_penalty = "penalty" in inspect.signature(linear_model.LogisticRegression).parameters
    takes_multi_class = "multi_class" in inspect.signature(linear_model.LogisticRegression).parameters

    def logistic_regression(**kwargs):
        if not takes_multi_class:
            assert kwargs.pop("multi_class") == "multinomial"
        if not takes_penalty and kwargs.get("penalty", "absent") is None:
            del kwargs["penalty"]
            kwargs["C"] = np.inf
        return linear_model.LogisticRegression(**kwargs)

    module.feature_selection = types.SimpleNamespace(mutual_info_classif=seeded_mutual_info_classif)
    module.linear_model = types.SimpleNamespace(LogisticRegression=logistic_regression)
    return module


def cases():
    """(name, codes, factors, discrete_latents): the spec's vectors, then dSprites-like samples."""
    import numpy as np

    f0, f1 = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    grid = np.tile(np.column_stack([f0.ravel(), f1.ravel()]), (5, 1))
    noise = np.random.RandomState(0)
    e1, e2, e3 = noise.randn(60), noise.randn(60), noise.randn(60)
    yield "spec: discrete [f0, f1]", grid.astype(float), grid, True
    yield "spec: discrete [f0, f0, f1]", np.column_stack([grid[:, 0], grid[:, 0], grid[:, 1]]).astype(float), grid, True
    yield "spec: discrete [f0+f1, f1]", np.column_stack([grid.sum(axis=1), grid[:, 1]]).astype(float), grid, True
    yield ("spec: continuous, pruned latent", np.column_stack([grid[:, 0] + 0.1 * e1, grid[:, 1] + 0.1 * e2,
                                                               0.01 * e3]), grid, False)
    # Decision 7's NaN cases: an active latent with an all-zero NMI column (InfoM 0/0), one active latent
    # (InfoC 0/0).
    parity = (np.arange(60) // 12) % 2 * 1.0  # independent of both sources in the grid
    yield "NaN: zero NMI column (discrete)", np.column_stack([grid, parity]).astype(float), grid, True
    yield "NaN: one active latent", np.column_stack([grid[:, 0] + 0.1 * e1, 1e-3 * e2]), grid, False
    rng = np.random.RandomState(1)
    factors = np.column_stack([rng.randint(0, n, size=2000) for n in (3, 6, 40, 32, 32)])
    scaled = factors / np.array([3.0, 6.0, 40.0, 32.0, 32.0])
    mixing = rng.randn(5, 10) * (rng.rand(5, 10) < 0.3)
    mixing[np.arange(5), np.arange(5)] = 1.0
    codes = scaled @ mixing + 0.05 * rng.randn(2000, 10)
    yield "dSprites-like, mixed codes (2000 x 10)", codes, factors, False
    yield "dSprites-like, random codes (2000 x 10)", rng.randn(2000, 10), factors, False
    weak = codes.copy()
    weak[:, 7] *= 1e-3  # inactive: range below 1/20 of the largest
    yield "dSprites-like, one inactive latent", weak, factors, False
    yield "dSprites-like, quantised codes", np.round(codes * 4.0), factors, True


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.6g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latent-quantization", required=True,
                        help="a kylehkhsu/latent_quantization checkout (the folder holding disentangle/)")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.latent_quantization, REFERENCE_FILE)):
        print(f"error: {args.latent_quantization} is not a latent_quantization checkout (no {REFERENCE_FILE})",
              file=sys.stderr)
        return 2
    missing = [name for name in ("numpy", "sklearn") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"error: {', '.join(missing)} not installed (pip install numpy scikit-learn)", file=sys.stderr)
        return 2
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import numpy as np
    import sklearn

    from disent_bench.metrics import infomec

    reference = load_reference(args.latent_quantization)
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, mutual_info_classif random_state={SEED}")
    header = (f"{'metric':8} {'case':40} {'quantity':18} {'ours':>12} {'reference':>12} {'abs diff':>10} "
              f"{'tol':>7}  same means")
    print(header)
    print("-" * len(header))
    failures = 0
    for name, codes, factors, discrete in cases():
        ours = infomec.infomec_from_codes(codes, factors, discrete_latents=discrete, random_state=SEED)
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")  # the reference's ConvergenceWarnings and 1.9's deprecations
            theirs = reference.compute_infomec(factors, codes, discrete)
        rows = [("nmi", None, None, float(np.max(np.abs(ours["nmi"] - theirs["nmi"])))),
                ("m", ours["m"], float(theirs["infom"]), None),
                ("c", ours["c"], float(theirs["infoc"]), None),
                ("e", ours["e"], float(theirs["infoe"]), None),
                ("num_active_latents", ours["num_active_latents"], float(np.sum(theirs["active_latents"])), None)]
        for quantity, mine, their, diff in rows:
            tolerance, meaning = TOLERANCES[quantity]
            if diff is None:
                both_nan = np.isnan(mine) and np.isnan(their)
                diff = 0.0 if both_nan else abs(mine - their)
            ok = diff <= tolerance  # NaN on one side only gives NaN: not ok
            failures += not ok
            print(f"{'infomec':8} {name:40} {quantity:18} {_fmt(mine):>12} {_fmt(their):>12} {diff:>10.2e} "
                  f"{tolerance:>7.0e}  {meaning}{'' if ok else '   <-- DISAGREES'}")
    print(f"\n{failures} disagreement(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
