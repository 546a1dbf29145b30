#!/usr/bin/env python3
"""Agreement of disent-bench's downstream metric with google-research/disentanglement_lib's own code.

    python scripts/agreement/downstream.py --dlib PATH [--sklearn020-python PY] [--seed 0] [--quick]

PATH is a checkout of https://github.com/google-research/disentanglement_lib (the folder holding setup.py).
Its ``evaluation/metrics/downstream_task.py`` and ``utils.py`` are imported from there (nothing is copied),
with ``import gin.tf`` answered by plain gin (``pip install absl-py six gin-config``). The reference's
``compute_downstream_task`` runs on a toy ground-truth data set (factor classes drawn per batch with the
metric's ``numpy.random.RandomState(seed)``, one ``randint`` per factor, observation = the factors) and a
representation function per case; every training and test sample it draws (codes and factors) is recorded
and handed to :func:`disent_bench.metrics.downstream.downstream_from_codes`, so both see the SAME inputs.

What "the same" means, per comparison (one table row per case, training size, predictor and reference run;
"ours" and "reference" are the mean test accuracy, "abs diff" the largest difference over every accuracy of
that size: per factor, mean and min, train and test):

- ``gbt`` vs run ``dlib`` (the reference's ``gradient_boosting_classifier()`` under the installed
  scikit-learn, ``random_state = seed`` set afterwards: Decision 1; the reference leaves it to numpy's global
  state): exact (tolerance 0), since :mod:`disent_bench.metrics.dci.boosting` reproduces scikit-learn's trees.
- ``lr`` vs run ``emul`` (the reference's ``_compute_loss`` driving the spec's one-vs-rest emulation,
  ``sklearn_utils.logistic_regression_cv(seed)``, installed scikit-learn, one BLAS thread as ours): exact
  (tolerance 0). This checks everything around the estimator (samples, per-factor fits, keys, aggregates).
- ``lr`` vs run ``dlib`` (the reference's own ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))`` under the
  installed scikit-learn): informational. On scikit-learn >= 0.22 that call is multinomial, a different
  estimator from the one-vs-rest model it meant in 0.20 (the spec's DT2).
- With ``--sklearn020-python PY`` (a Python with scikit-learn 0.20.x, numpy, gin-config, absl-py and six,
  e.g. Python 3.7 with scikit-learn 0.20.4, numpy 1.16.6, scipy 1.2.3), run ``0.20 dlib``: the reference's
  ``_compute_loss`` with its own predictors (gbt with random_state = seed) runs there on the recorded
  samples. Informational, as the spec's Decision 1 makes the 1.x emulation the reference: ``lr`` is the true
  0.20 one-vs-rest estimator, whose lbfgs minimised the summed loss (1.x: the mean) with ``pgtol = 1e-4``
  and scipy's default ``factr`` (1.x: ``gtol = 1e-4`` on the mean's gradient, ``ftol = 64 eps``), so it
  stops elsewhere; on near-separable folds at n = 10 that moves the chosen C and the accuracies (DT1:
  mean test accuracy 0.67 under 0.20 against 0.77). ``gbt``: 0.20's trees (friedman_mse, presorting)
  round differently, and exactly tied classes (equal priors, zero codes) may go the other way.
- A case with a single-class factor: 0.20 (and 1.x) raise ValueError; ours predicts that class (Decision 2).
  Informational.

Exit status: 0 if every checked row is within its tolerance, 1 if not, 2 (one line on stderr) if the
checkout or a needed package is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import types
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The reference runs: "dlib" = the reference's own predictor constructors (gbt with random_state = seed),
# under the installed scikit-learn or under 0.20; "emul" = the reference's _compute_loss driving the spec's
# one-vs-rest emulation (disent_bench.metrics.sklearn_utils.logistic_regression_cv), installed scikit-learn.
# Tolerances of the checked comparisons (max abs difference of any accuracy at one training size); rows
# without one are informational.
TOLERANCE = {("gbt", "dlib"): 0.0, ("lr", "emul"): 0.0}
MEANING = {("gbt", "dlib"): "exact: same trees as sklearn's GBC (random_state=seed)",
           ("lr", "emul"): "exact: ref harness + the spec's OvR emulation (Decision 1)",
           ("lr", "dlib"): "info: ref's LRCV is multinomial on sklearn>=0.22 (DT2)",
           ("gbt", "0.20 dlib"): "info: 0.20's own GBC (friedman_mse, presort): rounding/ties",
           ("lr", "0.20 dlib"): "info: 0.20's own OvR LRCV; 1.x lbfgs stops elsewhere"}


# ---------------------------------------------------------------------------------------------------------
# The cases: factor sizes, the study's training sizes (cut down), test size, and the representation.
# ---------------------------------------------------------------------------------------------------------
def _one_hot_codes(sizes):
    def encode(factors):
        return np.hstack([np.eye(size)[factors[:, k]] for k, size in enumerate(sizes)])
    return encode


def _noisy_mixture(sizes, dim=10, noise=0.1):
    mixing = np.random.RandomState(7).normal(size=(len(sizes), dim))
    noise_state = np.random.RandomState(8)  # codes are recorded, so both sides see the same noise

    def encode(factors):
        scaled = factors / np.maximum(np.asarray(sizes) - 1, 1)
        return scaled @ mixing + noise * noise_state.normal(size=(len(factors), dim))
    return encode


def cases(quick):
    toy = (3, 4)
    dsprites = (3, 6, 40, 32, 32)
    yield "toy_zeros", toy, [10, 100], 200, lambda f: np.zeros((len(f), 2))
    yield "toy_one_hot", toy, [10, 100], 200, _one_hot_codes(toy)
    yield "toy_factors", toy, [10, 100], 200, lambda f: f.astype(np.float64)
    yield "toy_noisy_mixture", toy, [10, 100, 1000], 500, _noisy_mixture(toy, dim=4, noise=0.5)
    if not quick:
        yield "dsprites_like_noisy_mixture", dsprites, [10, 100, 1000], 1000, _noisy_mixture(dsprites)
    yield "single_class_factor", (1, 4), [10], 50, lambda f: f.astype(np.float64)


class ToyGroundTruth:
    """The reference's GroundTruthData interface over independent uniform factors; observation = factors."""

    def __init__(self, sizes):
        self.factors_num_values = list(sizes)
        self.num_factors = len(sizes)
        self.observation_shape = [len(sizes)]

    def sample_factors(self, num, random_state):
        return np.column_stack([random_state.randint(size, size=num) for size in self.factors_num_values])

    def sample_observations_from_factors(self, factors, random_state):
        return factors

    def sample(self, num, random_state):
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)


# ---------------------------------------------------------------------------------------------------------
# Importing the reference.
# ---------------------------------------------------------------------------------------------------------
def import_reference(dlib):
    """The reference's downstream_task and utils modules, imported from the checkout ``dlib``."""
    import importlib

    import gin

    sys.modules["gin.tf"] = types.ModuleType("gin.tf")  # the metric modules only use gin.configurable
    gin.tf = sys.modules["gin.tf"]
    configurable = gin.configurable

    def configurable_with_old_names(*args, **kwargs):
        # gin-config renamed these after the reference was written
        if "blacklist" in kwargs:
            kwargs["denylist"] = kwargs.pop("blacklist")
        if "whitelist" in kwargs:
            kwargs["allowlist"] = kwargs.pop("whitelist")
        return configurable(*args, **kwargs)

    gin.configurable = configurable_with_old_names
    sys.path.insert(0, os.path.abspath(dlib))
    downstream_task = importlib.import_module("disentanglement_lib.evaluation.metrics.downstream_task")
    utils = importlib.import_module("disentanglement_lib.evaluation.metrics.utils")
    return gin, downstream_task, utils


def reference_predictor(utils, predictor, seed, emulation=False):
    if predictor == "lr" and emulation:
        from disent_bench.metrics.sklearn_utils import logistic_regression_cv

        return lambda: logistic_regression_cv(seed)
    if predictor == "lr":
        return utils.logistic_regression_cv
    return lambda: utils.gradient_boosting_classifier().set_params(random_state=seed)  # Decision 1


def reference_losses(downstream_task, utils, samples, predictor, seed, emulation=False):
    """The reference's ``_compute_loss`` per recorded size: ``{n: (train accuracies, test accuracies)}`` or
    ``{n: "ValueError: ..."}``."""
    out = {}
    for train_codes, train_factors, test_codes, test_factors in samples:
        n = len(train_codes)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the deprecation and convergence warnings of old defaults
                # As compute_downstream_task calls it: codes (n, L), factors (K, n).
                train, test = downstream_task._compute_loss(
                    train_codes, train_factors.T, test_codes, test_factors.T,
                    reference_predictor(utils, predictor, seed, emulation))
            out[n] = ([float(v) for v in train], [float(v) for v in test])
        except ValueError as error:
            out[n] = "ValueError: " + str(error).split("\n")[0][:60]
    return out


# ---------------------------------------------------------------------------------------------------------
# Worker mode: run under scikit-learn 0.20 (another Python), on samples passed in a .npz file.
# ---------------------------------------------------------------------------------------------------------
def worker(dlib, samples_path, out_path, seed):
    import sklearn

    _, downstream_task, utils = import_reference(dlib)
    data = np.load(samples_path)
    names = json.loads(str(data["index"]))
    result = {"sklearn": sklearn.__version__, "cases": {}}
    for case, sizes in names.items():
        samples = [tuple(data["%s/%d/%s" % (case, n, part)] for part in ("xtr", "ytr", "xte", "yte"))
                   for n in sizes]
        result["cases"][case] = {p: {str(n): v for n, v in reference_losses(downstream_task, utils, samples, p,
                                                                           seed).items()}
                                 for p in ("lr", "gbt")}
    with open(out_path, "w") as handle:
        json.dump(result, handle)
    return 0


# ---------------------------------------------------------------------------------------------------------
# The comparison.
# ---------------------------------------------------------------------------------------------------------
def record_reference_samples(gin, downstream_task, utils, case, seed):
    """Run the reference's compute_downstream_task (with the installed scikit-learn's gbt, a cheap predictor
    for this pass) and record every sample it draws, in order: [(train_codes, train_factors, test_codes,
    test_factors)] per training size."""
    _, sizes, train_sizes, num_test, encode = case
    drawn = []
    original = utils.generate_batch_factor_code

    def recording(*args, **kwargs):
        codes, factors = original(*args, **kwargs)
        drawn.append((codes.T.copy(), factors.T.copy()))
        return codes, factors

    utils.generate_batch_factor_code = recording
    gin.bind_parameter("predictor.predictor_fn", lambda: _Majority())
    try:
        downstream_task.compute_downstream_task(ToyGroundTruth(sizes), encode, np.random.RandomState(seed),
                                                num_train=train_sizes, num_test=num_test, batch_size=16)
    finally:
        utils.generate_batch_factor_code = original
    return [drawn[2 * i] + drawn[2 * i + 1] for i in range(len(train_sizes))]


class _Majority:
    """A stand-in predictor for the recording pass (its scores are discarded)."""

    def fit(self, x, y):
        self.label = y[0]
        return self

    def predict(self, x):
        return np.full(len(x), self.label)


def compare(ours, reference, predictor, n, num_factors):
    """(our mean test accuracy, the reference's, max abs diff over every accuracy) at size ``n``."""
    train, test = reference
    pairs = []
    for j in range(num_factors):
        pairs.append((ours["%s.%d.train_accuracy_factor_%d" % (predictor, n, j)], train[j]))
        pairs.append((ours["%s.%d.test_accuracy_factor_%d" % (predictor, n, j)], test[j]))
    for part, values in (("train", train), ("test", test)):
        pairs.append((ours["%s.%d.mean_%s_accuracy" % (predictor, n, part)], float(np.mean(values))))
        pairs.append((ours["%s.%d.min_%s_accuracy" % (predictor, n, part)], float(np.min(values))))
    diff = max(abs(a - b) for a, b in pairs)
    return ours["%s.%d.mean_test_accuracy" % (predictor, n)], float(np.mean(test)), diff


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dlib", required=True, help="a disentanglement_lib checkout (the folder holding setup.py)")
    parser.add_argument("--sklearn020-python", default=None,
                        help="a Python with scikit-learn 0.20 (+ numpy, gin-config, absl-py, six) to also run the "
                             "reference under the scikit-learn it was written for")
    parser.add_argument("--seed", type=int, default=0, help="the metric's RandomState / random_state")
    parser.add_argument("--quick", action="store_true", help="leave out the dSprites-like case (slow boosting)")
    parser.add_argument("--worker", nargs=2, metavar=("SAMPLES_NPZ", "OUT_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.dlib, "disentanglement_lib", "evaluation", "metrics")):
        print("error: %s is not a disentanglement_lib checkout (no disentanglement_lib/evaluation/metrics)" % args.dlib,
              file=sys.stderr)
        return 2
    import importlib.util

    missing = [name for name in ("gin", "absl", "six", "sklearn") if importlib.util.find_spec(name) is None]
    if missing:
        print("error: %s not installed; the reference's metric modules need: pip install absl-py six gin-config "
              "scikit-learn" % ", ".join(missing), file=sys.stderr)
        return 2
    if args.worker:
        return worker(args.dlib, args.worker[0], args.worker[1], args.seed)

    sys.path.insert(0, ROOT)
    import sklearn

    from disent_bench.metrics.downstream import downstream_from_codes

    gin, downstream_task, utils = import_reference(args.dlib)
    all_cases = list(cases(args.quick))
    recorded = {case[0]: record_reference_samples(gin, downstream_task, utils, case, args.seed) for case in all_cases}

    import threadpoolctl

    runs = {"emul": {}, "dlib": {}}
    # One BLAS thread, as ours runs its logistic fits (the last bits of a threaded BLAS sum depend on threads).
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        for case in all_cases:
            name = case[0]
            runs["emul"][name] = {"lr": reference_losses(downstream_task, utils, recorded[name], "lr", args.seed,
                                                         emulation=True)}
            runs["dlib"][name] = {p: reference_losses(downstream_task, utils, recorded[name], p, args.seed)
                                  for p in ("lr", "gbt")}
    old_version = None
    if args.sklearn020_python:
        with tempfile.TemporaryDirectory(prefix="downstream-agreement-") as tmp:
            arrays = {"index": json.dumps({name: [len(s[0]) for s in samples] for name, samples in recorded.items()})}
            for name, samples in recorded.items():
                for sample in samples:
                    for part, array in zip(("xtr", "ytr", "xte", "yte"), sample):
                        arrays["%s/%d/%s" % (name, len(sample[0]), part)] = array
            np.savez(os.path.join(tmp, "samples.npz"), **arrays)
            out = os.path.join(tmp, "reference.json")
            try:
                done = subprocess.run([args.sklearn020_python, os.path.abspath(__file__), "--dlib", args.dlib,
                                       "--seed", str(args.seed), "--worker", os.path.join(tmp, "samples.npz"), out],
                                      capture_output=True, text=True, check=False)
            except OSError as error:
                print("error: cannot run %s: %s" % (args.sklearn020_python, error), file=sys.stderr)
                return 2
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
                print("error: the scikit-learn 0.20 run failed (exit %d): %s" % (done.returncode, last),
                      file=sys.stderr)
                return 2 if done.returncode == 2 else 1
            with open(out) as handle:
                old = json.load(handle)
        old_version = old["sklearn"]
        runs["0.20 dlib"] = {name: {p: {int(n): v for n, v in per.items()} for p, per in by_p.items()}
                        for name, by_p in old["cases"].items()}

    print("downstream agreement: ours on scikit-learn %s; ref runs 'emul', 'dlib' on scikit-learn %s%s; seed %d"
          % (sklearn.__version__, sklearn.__version__,
             ", '0.20 dlib' on scikit-learn %s" % old_version if old_version
             else " (no --sklearn020-python: 0.20 not run)", args.seed))
    header = "%-18s %-34s %-9s %8s %9s %9s %6s  %s" % ("metric", "case", "ref run", "ours", "reference",
                                                      "abs diff", "tol", "what 'the same' means")
    print(header)
    print("-" * len(header))
    failures = 0
    largest = {}
    for case in all_cases:
        name = case[0]
        num_factors = len(case[1])
        ours = downstream_from_codes(recorded[name], args.seed, n_threads=None)
        for run, by_case in runs.items():
            for predictor in ("lr", "gbt"):
                for n, reference in by_case[name].get(predictor, {}).items():
                    label = "%s n=%d" % (name, n)
                    metric = "downstream.%s" % predictor
                    if isinstance(reference, str):
                        print("%-18s %-34s %-9s %8.4f %9s %9s %6s  %s" % (
                            metric, label, run, ours["%s.%d.mean_test_accuracy" % (predictor, n)], "raises", "-",
                            "-", "info: ref %s; ours: Decision 2" % reference))
                        continue
                    mine, theirs, diff = compare(ours, reference, predictor, n, num_factors)
                    key = (predictor, run, "n=10" if n == 10 else "n>=100")
                    largest[key] = max(largest.get(key, 0.0), diff)
                    tolerance = TOLERANCE.get((predictor, run))
                    bad = tolerance is not None and not diff <= tolerance + 1e-12
                    failures += bad
                    print("%-18s %-34s %-9s %8.4f %9.4f %9.4f %6s  %s%s" % (
                        metric, label, run, mine, theirs, diff, "-" if tolerance is None else "%g" % tolerance,
                        MEANING[(predictor, run)], "  <-- DISAGREES" if bad else ""))
    print("largest abs diff per predictor, ref run and size: " + ", ".join(
        "%s/%s/%s %.4f" % (key + (value,)) for key, value in sorted(largest.items())))
    print("%d checked row(s) beyond tolerance" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
