"""The toy dataset of the reference's sanity tests: images that ARE their factor classes.

Image ``i`` is 1 x K pixels holding its K factor classes as uint8 values, so ``factor_classes`` (the
encoder "the factor classes themselves") reads them back exactly from ``dataset.batch`` (values / 255).
"""

from __future__ import annotations

import numpy as np

from disent_bench.data.base import GroundTruthData


def factor_image_dataset(sizes) -> GroundTruthData:
    """A full-factorial dataset whose image ``i`` (1 x K pixels) holds its factor classes."""
    n, num = int(np.prod(sizes)), len(sizes)
    strides = np.array([int(np.prod(sizes[k + 1:])) for k in range(num)])
    classes = (np.arange(n)[:, None] // strides) % np.array(sizes)
    return GroundTruthData("factor_images", "synthetic", [f"f{k}" for k in range(num)], sizes,
                           classes.astype(np.uint8).reshape(n, 1, num, 1))


def factor_classes(x) -> np.ndarray:
    """The representation 'factor classes themselves', read back from the pixels."""
    x = np.asarray(x)
    return np.rint(x.reshape(x.shape[0], -1) * 255.0)
