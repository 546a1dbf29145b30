"""Helpers of the training tests: a 16-image dataset, a tiny config, weight comparison and the log reader."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from disent_bench.data.base import GroundTruthData
from disent_bench.train import TrainConfig


def squares(channels: int = 1) -> GroundTruthData:
    """16 images: a 16x16 white square at 4 x 4 positions (factors x, y)."""
    store = np.zeros((4, 4, 64, 64, channels), dtype=np.uint8)
    for x in range(4):
        for y in range(4):
            store[x, y, 16 * y:16 * y + 16, 16 * x:16 * x + 16, :] = 255
    return GroundTruthData("squares", "synthetic", ["x", "y"], [4, 4], store.reshape(16, 64, 64, channels))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Autouse in every test module that imports it."""
    # These tests check behaviour, not speed: one thread keeps them quick on a loaded shared machine,
    # where OpenMP's thread barriers slow multi-threaded small convolutions down many times over.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_config(**overrides) -> TrainConfig:
    settings = dict(steps=6, batch_size=8, seed=3, device="cpu", log_every=2, checkpoint_every=100)
    settings.update(overrides)
    return TrainConfig(**settings)


def weights(model) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def assert_same_weights(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def read_log(path) -> list[dict[str, float]]:
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
