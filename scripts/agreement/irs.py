"""Agreement of disent-bench's IRS with google-research/disentanglement_lib's own code on the same codes.

    python scripts/agreement/irs.py --dlib PATH/disentanglement_lib

PATH is a checkout of https://github.com/google-research/disentanglement_lib (the folder holding
setup.py); its ``evaluation/metrics/irs.py`` is imported from there at run time, nothing of it is copied.
It needs ``pip install absl-py six gin-config``; its ``import gin.tf`` (TensorFlow) is answered with plain
gin, which is all the module uses.

Two entry points of the reference are run on fixed codes and factors:

* ``scalable_disentanglement_score`` (the IRS core) against :func:`disent_bench.metrics.irs.irs_from_discretised`
  on the same discrete factor labels;
* ``compute_irs`` (discretising the factors with its 20-bin histogram discretiser, dropping constant
  dims) against :func:`disent_bench.metrics.irs.irs_from_codes`, fed through stubs: a ground-truth-data
  object whose ``sample`` hands out the fixed factors in order (as ``observations``, the codes) and the
  identity as representation function, so the reference's batching sees exactly our points.

"The same" means equal to 1e-12 (only the order of floating-point summation may differ). The
reference's ``num_active_dims`` is the sum of the kept code values (a bug); ours is the number of kept
dims (the spec's Decision 3), so that row is shown, not compared.

Exit status: 0 all agree, 1 a disagreement beyond tolerance, 2 the checkout or a package is missing.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # disent_bench from this checkout

TOLERANCE = 1e-12


def load_reference(dlib: str):
    """The reference's irs module, or an error string."""
    if not os.path.isfile(os.path.join(dlib, "disentanglement_lib", "evaluation", "metrics", "irs.py")):
        return f"{dlib} is not a disentanglement_lib checkout (no disentanglement_lib/evaluation/metrics/irs.py)"
    missing = [name for name in ("gin", "absl", "six", "sklearn") if importlib.util.find_spec(name) is None]
    if missing:
        return (f"missing package(s) {', '.join(missing)}; the reference's irs.py needs: "
                "pip install absl-py six gin-config scikit-learn")
    import gin

    sys.modules["gin.tf"] = types.ModuleType("gin.tf")  # the reference only uses gin.configurable
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
    reference = importlib.import_module("disentanglement_lib.evaluation.metrics.irs")
    importlib.import_module("disentanglement_lib.evaluation.metrics.utils")
    return reference


class FixedPoints:
    """The reference's ground-truth-data interface over fixed (factors, codes), handed out in order."""

    def __init__(self, factors: np.ndarray, codes: np.ndarray) -> None:
        self.factors, self.codes, self.next = factors, codes, 0

    def sample(self, num: int, random_state):
        start, self.next = self.next, self.next + num
        return self.factors[start:self.next], self.codes[start:self.next]


def grid(*sizes) -> np.ndarray:
    return np.array(list(itertools.product(*[range(size) for size in sizes])), dtype=np.float64)


def core_cases():
    """(name, codes, factor labels, diff_quantile) for the core."""
    g23, g33 = grid(2, 3), grid(3, 3)
    rng = np.random.RandomState(0)
    factors = rng.randint(0, 7, size=(2000, 4))
    mixed = factors @ rng.normal(size=(4, 6)) + 0.3 * rng.normal(size=(2000, 6))
    yield "grid 2x3 codes=factors", g23, g23, 0.99
    yield "grid 2x3 [f0, f0+f1]", np.column_stack([g23[:, 0], g23[:, 0] + g23[:, 1]]), g23, 0.99
    yield "grid 3x3 f0+f1^2 q=0.99", (g33[:, 0] + g33[:, 1] ** 2)[:, None], g33, 0.99
    yield "grid 3x3 f0+f1^2 q=1.0", (g33[:, 0] + g33[:, 1] ** 2)[:, None], g33, 1.0
    yield "random 4 factors x 6 mixed codes", mixed, factors, 0.99
    yield "random 4 factors x 6 mixed codes q=0.5", mixed, factors, 0.5


def full_cases():
    """(name, codes, factor classes, num_bins, diff_quantile) for compute_irs."""
    g23 = grid(2, 3)
    codes = np.column_stack([g23[:, 0], np.zeros(6), 2 * g23[:, 1]])
    yield "grid 2x3 [f0, 0, 2 f1]", codes, g23.astype(np.int64), 20, 0.99
    rng = np.random.RandomState(1)
    sizes = np.array([3, 6, 40, 32, 32])  # dSprites-like
    factors = rng.randint(0, sizes, size=(2000, 5))
    yield "dsprites-like 5 factors, 10 random codes", rng.normal(size=(2000, 10)), factors, 20, 0.99
    codes = np.column_stack([factors / sizes + 0.05 * rng.normal(size=(2000, 5)), rng.normal(size=(2000, 5))])
    yield "dsprites-like, 5 noisy factor codes + 5 noise", codes, factors, 20, 0.99
    codes[:, 7] = 0.25
    yield "... with a constant code dim", codes, factors, 20, 0.99
    yield "... 10 bins, q=1.0", codes, factors, 10, 1.0
    identity = rng.randint(1, 11, size=(3000, 10))
    yield "irs_test: 10 factors in 1..10, codes=factors", identity.astype(np.float64), identity, 20, 0.99
    yield "irs_test: zero codes", np.zeros((3000, 10)), identity, 20, 0.99


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dlib", required=True, help="a disentanglement_lib checkout (the folder holding setup.py)")
    args = parser.parse_args(argv)
    reference = load_reference(args.dlib)
    if isinstance(reference, str):
        print(f"error: {reference}", file=sys.stderr)
        return 2
    import gin

    from disent_bench.metrics import irs

    rows, failures = [], 0

    def row(case, ours, theirs, compared=True, meaning="equal to 1e-12"):
        nonlocal failures
        diff = abs(ours - theirs)
        bad = compared and not diff <= TOLERANCE
        failures += bad
        rows.append(("irs", case, f"{ours:.15g}", f"{theirs:.15g}", f"{diff:.2e}",
                     f"{TOLERANCE:g}" if compared else "n/a", meaning + ("  <-- DISAGREES" if bad else "")))

    for name, codes, labels, quantile in core_cases():
        ours = irs.irs_from_discretised(codes, labels, quantile)
        theirs = reference.scalable_disentanglement_score(labels, codes, quantile)
        row(f"core: {name}", ours.score, float(theirs["avg_score"]))
        row(f"core: {name} (IRS matrix, max |diff|)", 0.0,
            float(np.max(np.abs(ours.irs_matrix - theirs["IRS_matrix"]))), meaning="every M[l, k] equal to 1e-12")

    for name, codes, factors, num_bins, quantile in full_cases():
        gin.clear_config()
        gin.parse_config(["discretizer.discretizer_fn = @histogram_discretizer", f"discretizer.num_bins = {num_bins}"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = reference.compute_irs(FixedPoints(factors, codes), lambda x: np.asarray(x, dtype=np.float64),
                                           np.random.RandomState(0), None, quantile, codes.shape[0], 16)
        ours = irs.irs_from_codes(codes, factors, num_bins, quantile)
        row(f"compute_irs: {name}", ours["score"], float(theirs["IRS"]))
        row(f"compute_irs: {name} (num_active_dims)", ours["num_active_dims"], float(theirs["num_active_dims"]),
            compared=False, meaning="not compared: kept dims vs the reference's sum of code values (Decision 3)")

    header = ("metric", "case", "ours", "reference", "abs diff", "tolerance", "the same means")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"{len(rows)} rows, {failures} disagreement(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
