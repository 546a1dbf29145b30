"""Agreement of disent-bench's MIG-sup, JEMMIG and DCIMIG with ubisoft-laforge's own code on the same codes.

    python scripts/agreement/ubisoft.py --laforge PATH/ubisoft-laforge-disentanglement-metrics

PATH is a checkout of https://github.com/ubisoft/ubisoft-laforge-disentanglement-metrics; its
``src/metrics/mig_sup.py``, ``jemmig.py`` and ``dcimig.py`` (and the ``src/utils.py`` they import) are
imported from there at run time, nothing of them is copied. They need ``pip install pyitlib
scikit-learn matplotlib python-dateutil`` (``utils.py`` imports the last two).

Each case runs the reference's function with ``continuous_factors=False`` and ``nb_bins=10`` (the spec's
Decision 6) and ours (``*_from_codes(codes, factors, num_bins=10)``) on the same float64 codes and
integer factor classes. "The same" means equal to 1e-12: the binning is the same arithmetic, and the
plug-in entropies differ only in the order of floating-point summation.

By design (Decision 5) MIG-sup differs on a constant code: the reference's 0/0 makes the score NaN,
ours counts that code's gap as 0. That row is shown, not compared; the row after it checks the
equivalent: our score equals the reference's score without the constant code, times (L - 1) / L.

Exit status: 0 all agree, 1 a disagreement beyond tolerance, 2 the checkout or a package is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # disent_bench from this checkout

TOLERANCE = 1e-12
METRICS = ("mig_sup", "jemmig", "dcimig")


def load_reference(checkout: str):
    """{metric: the reference's function}, or an error string."""
    src = os.path.join(checkout, "src")
    paths = {name: os.path.join(src, "metrics", f"{name}.py") for name in METRICS}
    if not all(os.path.isfile(path) for path in paths.values()) or not os.path.isfile(os.path.join(src, "utils.py")):
        return f"{checkout} is not a ubisoft-laforge-disentanglement-metrics checkout (no src/metrics/mig_sup.py ...)"
    needed = {"pyitlib": "pyitlib", "sklearn": "scikit-learn", "matplotlib": "matplotlib",
              "dateutil": "python-dateutil"}
    missing = [package for module, package in needed.items() if importlib.util.find_spec(module) is None]
    if missing:
        return f"missing package(s); the reference needs: pip install {' '.join(missing)}"
    sys.path.insert(0, src)  # the metric files do `from utils import ...`
    functions = {}
    for name, path in paths.items():
        spec = importlib.util.spec_from_file_location(f"laforge_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        functions[name] = getattr(module, name)
    return functions


def cases():
    """(name, codes float64 (n, L), factor classes int (n, K))."""
    g34 = np.array(list(itertools.product(range(3), range(4))), dtype=np.int64)
    f0, f1 = g34[:, 0], g34[:, 1]
    yield "grid 3x4 [f0, f1]", np.column_stack([f0, f1]).astype(float), g34
    yield "grid 3x4 [f0, f0, f1]", np.column_stack([f0, f0, f1]).astype(float), g34
    yield "grid 3x4 [f0+f1, f1]", np.column_stack([f0 + f1, f1]).astype(float), g34
    yield "grid 3x4 [f0, f1, 0]", np.column_stack([f0, f1, np.zeros(12)]), g34
    sizes = np.array([3, 6, 40, 32, 32])  # dSprites-like
    for seed in (0, 1, 2):
        rng = np.random.RandomState(seed)
        factors = rng.randint(0, sizes, size=(2000, 5))
        yield f"seed {seed}: 5 factors, 10 normal codes", rng.normal(size=(2000, 10)), factors
        noisy = np.column_stack([factors / sizes + 0.1 * rng.normal(size=(2000, 5)), rng.uniform(size=(2000, 5))])
        yield f"seed {seed}: 5 noisy factor codes + 5 uniform", noisy, factors
        mixed = (factors / sizes) @ rng.normal(size=(5, 10)) + 0.05 * rng.normal(size=(2000, 10))
        yield f"seed {seed}: 10 linear mixtures of the factors", mixed, factors
    rng = np.random.RandomState(3)
    factors = rng.randint(0, [2, 3, 5, 10], size=(2000, 4))
    yield "4 factors <= 10 classes, codes = factors", factors.astype(float), factors
    yield "... codes = [factors, factors] (ties)", np.column_stack([factors, factors]).astype(float), factors
    yield "... codes = exp(factors) + noise", np.exp(factors) + 0.01 * rng.normal(size=factors.shape), factors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--laforge", required=True, help="a ubisoft-laforge-disentanglement-metrics checkout")
    args = parser.parse_args(argv)
    reference = load_reference(args.laforge)
    if isinstance(reference, str):
        print(f"error: {reference}", file=sys.stderr)
        return 2
    from disent_bench.metrics import dcimig, jemmig, mig_sup

    ours = {"mig_sup": mig_sup.mig_sup_from_codes, "jemmig": jemmig.jemmig_from_codes,
            "dcimig": dcimig.dcimig_from_codes}
    rows, failures = [], 0

    def theirs(metric, codes, factors):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the reference's 0/0 on a constant code
            return float(reference[metric](factors, codes, continuous_factors=False, nb_bins=10))

    for name, codes, factors in cases():
        for metric in METRICS:
            mine, ref = ours[metric](codes, factors, 10), theirs(metric, codes, factors)
            constant = np.ptp(codes, axis=0) == 0
            if metric == "mig_sup" and constant.any():
                rows.append((metric, name, f"{mine:.15g}", f"{ref:.15g}", "", "n/a",
                             "not compared: constant code, 0/0 = 0 vs NaN (Decision 5)"))
                kept = codes[:, ~constant]
                ref = theirs(metric, kept, factors) * kept.shape[1] / codes.shape[1]
                name_here, meaning = f"{name} (Decision 5 check)", "equal to 1e-12: ref without it * (L-1)/L"
            else:
                name_here, meaning = name, "equal to 1e-12"
            diff = abs(mine - ref)
            bad = not diff <= TOLERANCE
            failures += bad
            rows.append((metric, name_here, f"{mine:.15g}", f"{ref:.15g}", f"{diff:.2e}", f"{TOLERANCE:g}",
                         meaning + ("  <-- DISAGREES" if bad else "")))

    header = ("metric", "case", "ours", "reference", "abs diff", "tolerance", "the same means")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"{len(rows)} rows, {failures} disagreement(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
