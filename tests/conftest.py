"""Shared test fixtures: a private data home per test, and tiny dSprites files in the official format."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """An empty data home for one test (what --data-dir / DISENT_BENCH_DATA would point at)."""
    home = tmp_path / "data-home"
    home.mkdir()
    monkeypatch.setenv("DISENT_BENCH_DATA", str(home))
    return home


@pytest.fixture
def write_dsprites_npz():
    """Write a reduced-grid dSprites file exactly in the official npz layout.

    ``grid``: official class indices per factor (shape, scale, orientation, posX, posY). The file holds
    ``imgs`` (0/1 uint8), ``latents_classes`` (colour column first, classes renumbered 0..K-1),
    ``latents_values`` and a pickled ``metadata`` object array, like the real one.
    Returns ``(images, classes)`` of what was written (classes without the colour column).
    """
    from disent_bench.data import dsprites

    def write(path, grid=((0, 1, 2), (5,), (0, 10), (0, 31), (0, 15, 31)), *, compressed=True):
        grid = tuple(np.asarray(g) for g in grid)
        sizes = tuple(len(g) for g in grid)
        local = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1).reshape(-1, 5)
        official = np.stack([grid[k][local[:, k]] for k in range(5)], 1)
        images = dsprites.render(official)
        classes = np.concatenate([np.zeros((len(local), 1), np.int64), local], 1)
        values = np.concatenate([np.ones((len(local), 1)),
                                 np.stack([dsprites.FACTOR_VALUES[k][official[:, k]] for k in range(5)], 1)], 1)
        metadata = np.array({"date": "April 2017", "description": "test copy"}, dtype=object)
        save = np.savez_compressed if compressed else np.savez
        save(path, imgs=images, latents_classes=classes, latents_values=values, metadata=metadata)
        return images, local

    return write
