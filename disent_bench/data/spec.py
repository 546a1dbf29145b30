"""What a ground-truth dataset is made of: its factor grid, its official file and its synthetic renderer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from disent_bench.data.base import GroundTruthData


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the suite knows about one dataset.

    ``load_official(path)`` (when the dataset has an official file) reads the official file (already checksum-verified) into a
    :class:`GroundTruthData`; ``render_synthetic(out_path, progress)`` writes the synthetic store as an
    ``.npy`` file to ``out_path`` (same layout the dataset keeps in memory, see ``packed_bits``).
    """

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    image_shape: tuple[int, int, int]
    packed_bits: bool
    renderer_version: int
    render_synthetic: Callable[[Path, bool], None]
    # The official file; None for datasets that exist only as a rendering (e.g. the tiny smoke-test set).
    official_filename: str | None = None
    official_url: str | None = None
    official_size: int | None = None
    official_sha256: str | None = None
    official_md5: str | None = None
    load_official: Callable[[Path], GroundTruthData] | None = None
    factor_values: tuple[np.ndarray, ...] | None = None
    description: str = ""

    @property
    def num_images(self) -> int:
        return int(np.prod(self.factor_sizes))
