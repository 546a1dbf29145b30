"""Encode every needed image once: the representation cache behind :func:`disent_bench.metrics.evaluate`.

The reference library encodes images inside each metric, batch by batch, so at paper settings on
dSprites it encodes ~3 million images, most of them many times. Here every metric first *draws* the image
indices it will need (a factor row of a full-factorial dataset is an image index), the union of those
indices is encoded once in large batches, and the metrics then look codes up by array indexing.

``representation="sampled"`` keeps the encoder's means and standard deviations and draws fresh noise on
every lookup (``mean + std * eps``), so a sampled code is never reused across uses, as in the reference.
"""

from __future__ import annotations

import numpy as np
import torch

from disent_bench.data.base import GroundTruthData
from disent_bench.errors import UserError
from disent_bench.progress import ProgressReporter


def is_model(encoder: object) -> bool:
    """True for a disent-bench style model: a torch module with ``encode`` (and usually ``decode``)."""
    return isinstance(encoder, torch.nn.Module) and callable(getattr(encoder, "encode", None))


def can_decode(encoder: object) -> bool:
    return is_model(encoder) and callable(getattr(encoder, "decode", None))


def model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


class Encoder:
    """One interface over a model (``encode(x) -> (mu, logvar)``) and a plain callable ``x -> codes``.

    A torch module is called with a float tensor ``(n, C, H, W)`` in [0, 1] on ``device``; any other
    callable with the same images as a float32 numpy array. Outputs are checked (shape, row count,
    finiteness) and returned as float64 numpy arrays.
    """

    def __init__(self, encoder: object, device: torch.device) -> None:
        if not callable(encoder) and not is_model(encoder):
            raise UserError(f"encoder must be a model with encode(x) or a callable x -> codes, got {type(encoder).__name__}")
        self.encoder = encoder
        self.device = device
        self.is_model = is_model(encoder)
        self.is_torch = isinstance(encoder, torch.nn.Module)
        self.has_variance: bool | None = None  # known after the first batch
        self.dim: int | None = None
        self.rows_encoded = 0

    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Codes of ``images``: ``(mean, std)``, std None for a deterministic encoder."""
        n = images.shape[0]
        with torch.inference_mode():  # codes leave as numpy arrays: no autograd bookkeeping at all
            if self.is_model:
                out = self.encoder.encode(images)
                if isinstance(out, (tuple, list)):
                    if len(out) != 2:
                        raise UserError(f"encoder.encode returned {len(out)} values; expected (mu, logvar)")
                    mu, logvar = out
                else:
                    mu, logvar = out, None
            elif self.is_torch:
                mu, logvar = self.encoder(images), None
            else:
                mu, logvar = self.encoder(images.cpu().numpy()), None
        mean = self._check(mu, n, "codes")
        std = None
        if logvar is not None:
            std = np.exp(0.5 * self._check(logvar, n, "log-variances"))
            if std.shape != mean.shape:
                raise UserError(f"encoder returned log-variances of shape {std.shape} for means of shape {mean.shape}")
        if self.has_variance is None:
            self.has_variance = std is not None
        self.rows_encoded += n
        return mean, std

    def _check(self, value, n: int, what: str) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            value = value.detach().to("cpu", torch.float64).numpy()
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(f"encoder returned {type(value).__name__} {what}; expected a numeric array (n, D)") from None
        if array.ndim != 2:
            raise UserError(f"encoder returned {what} of shape {array.shape}; expected (n, D) = ({n}, D), "
                            "one row of codes per image")
        if array.shape[0] != n:
            raise UserError(f"encoder returned {array.shape[0]} rows of {what} for {n} images; "
                            "expected one row per image")
        if array.shape[1] < 1:
            raise UserError(f"encoder returned {what} with 0 dimensions; expected at least one")
        if self.dim is None:
            self.dim = array.shape[1]
        elif array.shape[1] != self.dim:
            raise UserError(f"encoder returned {array.shape[1]}-dimensional {what} after {self.dim}-dimensional "
                            "ones; the code size must not change")
        bad = ~np.isfinite(array)
        if bad.any():
            rows = int(bad.any(axis=1).sum())
            raise UserError(f"encoder returned non-finite {what} (NaN or inf) for {rows} of {n} images")
        return array


class RepresentationCache:
    """Codes of a fixed set of distinct image indices, each image encoded exactly once.

    ``mean[slot[i]]`` is the code of image ``i``; ``std`` likewise (None for deterministic encoders).
    """

    def __init__(self, dataset: GroundTruthData, encoder: Encoder, indices: np.ndarray, *,
                 batch_size: int = 1024, progress: bool = True) -> None:
        self.dataset = dataset
        unique = np.unique(np.asarray(indices, dtype=np.int64))
        if unique.size and (unique[0] < 0 or unique[-1] >= len(dataset)):
            raise ValueError("image index out of range")
        self.indices = unique
        self.images_encoded = int(unique.size)
        # A dense slot table (4 bytes an image) makes every lookup one gather.
        self.slot = np.full(len(dataset), -1, dtype=np.int64 if len(dataset) >= 2**31 else np.int32)
        self.slot[unique] = np.arange(unique.size)
        means: list[np.ndarray] = []
        stds: list[np.ndarray] = []
        with ProgressReporter("encoding", unique.size, enabled=progress) as bar:
            for start in range(0, unique.size, batch_size):
                chunk = unique[start:start + batch_size]
                mean, std = encoder(dataset.batch(chunk, encoder.device))
                means.append(mean)
                if std is not None:
                    stds.append(std)
                bar.update(chunk.size)
        dim = encoder.dim or 0
        self.mean = np.concatenate(means) if means else np.zeros((0, dim))
        self.std = np.concatenate(stds) if stds else None

    @property
    def dim(self) -> int:
        return self.mean.shape[1]

    def slots(self, indices: np.ndarray) -> np.ndarray:
        slots = self.slot[np.asarray(indices, dtype=np.int64)]
        if np.any(slots < 0):
            raise RuntimeError("lookup of an image that was not encoded (a metric drew indices it did not declare)")
        return slots


class CodeView:
    """How one metric reads the cache: ``codes(indices)`` in the chosen representation.

    ``representation="mean"`` returns the cached means. ``"sampled"`` returns ``mean + std * eps`` with
    ``eps`` drawn from this view's generator on every call (fresh noise on every use).
    """

    def __init__(self, cache: RepresentationCache, representation: str, noise_rng: np.random.Generator) -> None:
        self.cache = cache
        self.representation = representation
        self.noise_rng = noise_rng

    def codes(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        slots = self.cache.slots(indices.reshape(-1))
        mean = self.cache.mean[slots]
        if self.representation == "sampled":
            mean = mean + self.cache.std[slots] * self.noise_rng.standard_normal(mean.shape)
        return mean.reshape(*indices.shape, mean.shape[-1])

    def mean(self, indices: np.ndarray) -> np.ndarray:
        return self.cache.mean[self.cache.slots(indices)]

    def std(self, indices: np.ndarray) -> np.ndarray | None:
        return None if self.cache.std is None else self.cache.std[self.cache.slots(indices)]



class ObservationSet:
    """Every drawn occurrence of an image index as an observation of its own, for datasets with nuisance.

    On a dataset whose observations draw randomness besides the factors (``dataset.has_nuisance``: the
    dSprites variants' colour, noise and crop, SmallNORB's instance), two draws of one factor row are two
    different images, so the encode-once cache must not reuse one encoding for every occurrence of an
    index. Each metric draws through its own :meth:`drawer`: every index it draws becomes a new
    observation id (0, 1, 2, ... over the whole evaluation) that remembers its image index and its
    observation key ``(metric nuisance key, number of the observation within the metric)``. The cache
    then encodes observation ids (each exactly once: ``images_encoded`` is the number of draws), the
    metrics read factors through them, and an observation's image is reproducible from the seed and
    independent of which other metrics run.
    """

    def __init__(self, dataset: GroundTruthData) -> None:
        self.dataset = dataset
        self._indices: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._count = 0
        self._index = np.zeros(0, dtype=np.int64)
        self._key = np.zeros((0, 2), dtype=np.uint64)

    def __len__(self) -> int:
        return self._count

    def drawer(self, nuisance_key: int) -> _ObservationDrawer:
        return _ObservationDrawer(self, int(nuisance_key))

    def _allocate(self, indices: np.ndarray, nuisance_key: int, first: int) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        keys = np.empty((indices.size, 2), dtype=np.uint64)
        keys[:, 0] = np.uint64(nuisance_key)
        keys[:, 1] = np.arange(first, first + indices.size, dtype=np.uint64)
        self._indices.append(indices.reshape(-1))
        self._keys.append(keys)
        ids = np.arange(self._count, self._count + indices.size, dtype=np.int64).reshape(indices.shape)
        self._count += indices.size
        return ids

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self._index) != self._count:
            self._index = np.concatenate(self._indices) if self._indices else np.zeros(0, np.int64)
            self._key = np.concatenate(self._keys) if self._keys else np.zeros((0, 2), np.uint64)
        return self._index, self._key

    def image_indices(self, ids: np.ndarray) -> np.ndarray:
        return self._tables()[0][np.asarray(ids, dtype=np.int64)]

    def factors_of(self, ids: np.ndarray) -> np.ndarray:
        return self.dataset.factors_of(self.image_indices(ids))

    def batch(self, ids, device=None, **_) -> torch.Tensor:
        index, key = self._tables()
        ids = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids, dtype=np.int64).reshape(-1)
        return self.dataset.batch(index[ids], device, keys=key[ids])


class _ObservationDrawer:
    """One metric's view of the dataset: draws return fresh observation ids, everything else is the dataset's."""

    def __init__(self, observations: ObservationSet, nuisance_key: int) -> None:
        self._observations = observations
        self._key = nuisance_key
        self._drawn = 0

    def _new(self, indices: np.ndarray) -> np.ndarray:
        ids = self._observations._allocate(indices, self._key, self._drawn)
        self._drawn += int(np.asarray(indices).size)
        return ids

    def index_of(self, factor_classes: np.ndarray) -> np.ndarray:
        return self._new(self._observations.dataset.index_of(factor_classes))

    def sample_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._new(self._observations.dataset.sample_indices(n, rng))

    def factors_of(self, ids: np.ndarray) -> np.ndarray:
        return self._observations.factors_of(ids)

    def images(self, ids: np.ndarray) -> np.ndarray:
        index, key = self._observations._tables()
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return self._observations.dataset.images(index[ids], keys=key[ids])

    def batch(self, ids, device=None, **_) -> torch.Tensor:
        return self._observations.batch(ids, device)

    def __getattr__(self, name: str):
        return getattr(self._observations.dataset, name)

    def __len__(self) -> int:
        return len(self._observations.dataset)
