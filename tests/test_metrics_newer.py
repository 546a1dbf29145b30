"""The study's downstream task and the newer metrics through evaluate(): extremes, and no number of the others moved.

Perfect codes (the factor classes themselves, read back from the pixels of ``factor_images``) and useless
ones (noise that ignores the image) pass through the same encode-once path as a model's codes would.
"""

from __future__ import annotations

import numpy as np
import pytest

from disent_bench.metrics import available, evaluate
from factor_images import factor_classes, factor_image_dataset

SIZES = (2, 3, 4, 5, 6)
NEWER = ["downstream", "irs", "mig_sup", "jemmig", "dcimig", "infomec"]
SETTINGS = {
    "downstream": {"train_sizes": [100, 1000], "num_test": 300},
    "irs": {"num_train": 1500},
    "mig_sup": {"num_train": 1500},
    "jemmig": {"num_train": 1500},
    "dcimig": {"num_train": 1500},
    "infomec": {"num_train": 1500},
    "beta_vae": {"num_train": 60, "num_eval": 30, "batch_size": 16},
    "factor_vae": {"num_train": 60, "num_eval": 30, "batch_size": 16, "num_variance_estimate": 500},
    "mig": {"num_train": 500},
    "dci": {"num_train": 150, "num_test": 100},
    "sap": {"num_train": 300, "num_test": 150},
    "modularity": {"num_train": 300, "num_test": 150},
    "unsupervised": {"num_train": 300},
}


@pytest.fixture(scope="module")
def dataset():
    return factor_image_dataset(SIZES)


def noise(x):
    """Codes that ignore the image: a fixed random projection of the image index's hash."""
    rng = np.random.default_rng(abs(hash(x.tobytes())) % 2**32)
    return rng.normal(size=(len(x), len(SIZES)))


def run(dataset, encoder, metrics=NEWER, seed=0):
    return evaluate(dataset, encoder, metrics=list(metrics), preset="quick", seed=seed, settings=SETTINGS,
                    progress=False)


def test_registered_after_the_study_metrics():
    # A metric's random stream is fixed by its position: the new ones come last, so no older number moves.
    assert available() == ["beta_vae", "factor_vae", "mig", "dci", "sap", "modularity", "reconstruction",
                           "unsupervised", *NEWER]


@pytest.fixture(scope="module")
def perfect(dataset):
    return run(dataset, factor_classes)


def test_perfect_codes_score_at_the_top(perfect):
    assert perfect["irs.score"] == pytest.approx(1.0)
    assert perfect["irs.num_active_dims"] == len(SIZES)
    assert perfect["mig_sup.score"] > 0.9 and perfect["dcimig.score"] > 0.9
    assert perfect["jemmig.score"] > 0.8
    assert perfect["infomec.m"] > 0.9 and perfect["infomec.c"] > 0.9 and perfect["infomec.e"] > 0.99
    assert perfect["downstream.gbt.1000.mean_test_accuracy"] > 0.95
    assert perfect["downstream.gbt.1000.min_test_accuracy"] == 1.0
    # One-vs-rest linear classifiers cannot single out a middle class of an ordinal code (the spec's DT2:
    # 0.5 on 4 classes), so the reference's logistic predictor stays well below 1 even on perfect codes.
    assert 0.6 < perfect["downstream.lr.1000.mean_test_accuracy"] < 0.9
    assert perfect["downstream.lr.1000.test_accuracy_factor_0"] == 1.0  # two classes: no middle one
    assert perfect["downstream.gbt.100.num_single_class_factors"] == 0.0
    # No 10,000-point size here: the study's sample efficiency (100 over 10,000) is undefined, not guessed.
    assert np.isnan(perfect["downstream.lr.sample_efficiency"])
    assert all(f"{m}.seconds" in perfect for m in NEWER)


def test_useless_codes_score_low(perfect):
    # Codes are a function of the image, so on a small dataset noise would still name each image and a
    # classifier could look test images up: a large one (80,640 images) keeps train and test apart.
    useless = run(factor_image_dataset((6, 8, 10, 12, 14)), noise)
    assert useless["irs.score"] < 0.5 < perfect["irs.score"]
    assert useless["mig_sup.score"] < 0.1 and useless["dcimig.score"] < 0.1
    assert useless["jemmig.score"] < perfect["jemmig.score"] - 0.2
    assert useless["infomec.e"] < 0.1
    for predictor in ("lr", "gbt"):
        # chance: each factor's majority class, 1/6 .. 1/14 here
        assert useless[f"downstream.{predictor}.1000.mean_test_accuracy"] < 0.2, predictor


def test_same_seed_same_numbers(dataset, perfect):
    again = run(dataset, factor_classes)
    for key, value in perfect.items():
        if not key.endswith("seconds"):
            assert again[key] == value or (np.isnan(value) and np.isnan(again[key])), key


def test_adding_them_changes_no_other_metric(dataset):
    older = ["beta_vae", "factor_vae", "mig", "dci", "sap", "modularity", "unsupervised"]
    before = run(dataset, factor_classes, metrics=older)
    after = run(dataset, factor_classes, metrics=older + NEWER)
    for key, value in before.items():
        if not key.endswith("seconds") and key != "images_encoded":
            assert after[key] == value, key
