"""The draws shared by metrics: one sample (MIG, unsupervised), or a train and a test sample (DCI, SAP, modularity)."""

from __future__ import annotations

import numpy as np

from disent_bench.data.base import GroundTruthData


def draw_train_test(dataset: GroundTruthData, settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``num_train`` then ``num_test`` image indices, uniform with replacement (factor rows are image indices)."""
    return {"train": dataset.sample_indices(settings["num_train"], rng),
            "test": dataset.sample_indices(settings["num_test"], rng)}


def draw_train(dataset: GroundTruthData, settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``num_train`` image indices, uniform with replacement."""
    return {"train": dataset.sample_indices(settings["num_train"], rng)}
