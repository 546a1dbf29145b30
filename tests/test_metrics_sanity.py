"""The sanity cases of the reference protocol (disentanglement_lib's own metric tests), end to end.

The reference tests use a toy dataset whose observations ARE the factor classes (10 factors of 10
values). A full-factorial GroundTruthData of that size would hold 10^10 images, so we use a smaller
full-factorial one, 8 factors of 2-5 classes (8,640 "images"): image ``i`` is a 1 x 8 single-channel
picture whose pixel ``j`` holds the class of factor ``j``. The representations below are computed from
those pixels only (no access to the indices), so they pass through the same encode-once path, the same
uint8 store and the same ``dataset.batch`` as a real model would. Eight factors keep chance-level
BetaVAE accuracy (1/8) clearly below the 0.2 that a useless representation must stay under.
"""

from __future__ import annotations


import numpy as np
import pytest

from disent_bench.metrics import evaluate
from factor_images import factor_classes, factor_image_dataset

SIZES = (2, 2, 3, 3, 3, 4, 4, 5)
# Small samples: the sanity margins are wide, and the suite must stay fast.
SETTINGS = {
    "beta_vae": {"num_train": 300, "num_eval": 200},
    "factor_vae": {"num_train": 300, "num_eval": 200, "num_variance_estimate": 2000},
    "mig": {"num_train": 3000},
    "dci": {"num_train": 400, "num_test": 200},
    "sap": {"num_train": 1000, "num_test": 500},
    "modularity": {"num_train": 2000, "num_test": 1000},
}
METRICS = ("beta_vae", "factor_vae", "mig", "dci", "sap", "modularity")


@pytest.fixture(scope="module")
def dataset():
    return factor_image_dataset(SIZES)


def run(dataset, encoder, sap_continuous=0, metrics=METRICS):
    settings = {**SETTINGS, "sap": {**SETTINGS["sap"], "continuous_factors": sap_continuous}}
    return evaluate(dataset, encoder, metrics=metrics, preset="quick", seed=0, settings=settings, progress=False)


@pytest.fixture(scope="module")
def identity_scores(dataset):
    return run(dataset, factor_classes)


def test_factor_classes_score_above_0_9_on_every_metric(dataset, identity_scores):
    r = identity_scores
    for key in ("beta_vae.eval_accuracy", "beta_vae.train_accuracy", "factor_vae.eval_accuracy",
                "factor_vae.train_accuracy", "mig.score", "dci.disentanglement", "dci.completeness",
                "dci.informativeness_test", "modularity.score", "modularity.explicitness"):
        assert r[key] > 0.9, key
    assert r["factor_vae.num_active_dims"] == len(SIZES)
    # SAP: the reference's own sanity test uses its continuous-factor (R^2) variant, which passes here;
    # the classification variant (paper setting) cannot reach 0.9 with many-class factors, because a 1-D
    # LinearSVC(C=0.01) separates few ordered classes, but it still clearly prefers the aligned code.
    assert run(dataset, factor_classes, sap_continuous=1, metrics=["sap"])["sap.score"] > 0.9
    assert r["sap.score"] > 0.3


def test_zero_representation_scores_below_0_2(dataset):
    r = run(dataset, lambda x: np.zeros((np.asarray(x).shape[0], len(SIZES))))
    for key in ("beta_vae.eval_accuracy", "factor_vae.eval_accuracy", "mig.score", "dci.disentanglement",
                "dci.completeness", "sap.score", "modularity.score"):
        assert r[key] < 0.2, key
    assert r["factor_vae.num_active_dims"] == 0
    # Accuracies and AUCs of a constant code stay at chance: AUC 0.5; per factor, at most the share of
    # its most frequent class.
    assert r["modularity.explicitness"] == pytest.approx(0.5)
    assert r["dci.informativeness_test"] < np.mean([1 / s for s in SIZES]) + 0.1


def test_duplicated_factors(dataset):
    def twice(x):
        f = factor_classes(x)
        return np.hstack([f, f])

    r = run(dataset, twice)
    assert r["mig.score"] < 0.1
    assert r["sap.score"] < 0.2
    assert run(dataset, twice, sap_continuous=1, metrics=["sap"])["sap.score"] < 0.2
    assert r["dci.disentanglement"] > 0.9


def test_mixed_representation_scores_lower_than_aligned(dataset, identity_scores):
    """A rotation of the (scaled) factor codes holds the same information but entangles it."""
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(len(SIZES), len(SIZES))))
    scale = np.array(SIZES, dtype=np.float64)

    def mixed(x):
        return (factor_classes(x) / scale) @ rotation

    good, bad = identity_scores, run(dataset, mixed)
    for key in ("beta_vae.eval_accuracy", "factor_vae.eval_accuracy", "mig.score", "dci.disentanglement",
                "dci.completeness", "sap.score", "modularity.score"):
        assert bad[key] < good[key], key
