"""The in-memory ground-truth dataset every model and metric works from.

A :class:`GroundTruthData` holds every image of a full-factorial dataset once, as uint8, in the
official row-major order (last factor fastest), so a row of factor classes *is* an image index:
``index = classes . strides``. Binary datasets (dSprites) are stored bit-packed along the width
(8 pixels a byte, 512 bytes per 64x64 image), which keeps all 737,280 dSprites images in 360 MiB.
Large stores (3D Shapes, MPI3D) are ``np.memmap`` arrays over a cache file in the data home: a batch is
still one vectorised gather, and only the pages it touches are read (into the page cache, not the heap).

Datasets with per-observation randomness (:class:`NuisanceData`: the dSprites variants' colour, noise
and crop, SmallNORB's instance) render each observation from its image index *and* a 128-bit
observation key: the same key gives the same image, every other key fresh nuisance.
"""

from __future__ import annotations

from collections.abc import Sequence

import hashlib

import numpy as np
import torch

from disent_bench.data.store import advise
from disent_bench.errors import UserError


class GroundTruthData:
    """A full-factorial image dataset with its ground-truth factors.

    Parameters
    ----------
    name, source:
        Dataset name and where its images came from: ``"official"`` or ``"synthetic"``.
    factor_names, factor_sizes:
        The ground-truth factors in row-major order (the last one varies fastest).
    store:
        uint8 images in index order: ``(N, H, W, C)`` with values 0..255, or, with
        ``packed_bits=True``, ``(N, H, W // 8)`` bits from ``np.packbits(..., axis=-1)`` of a
        binary single-channel image (a set bit is a 255 pixel).
    checksum:
        The checksum of the file the images came from (official file or synthetic cache).
    """

    def __init__(self, name: str, source: str, factor_names: Sequence[str], factor_sizes: Sequence[int],
                 store: np.ndarray, *, packed_bits: bool = False, checksum: str | None = None,
                 path: str | None = None, factor_values: Sequence[np.ndarray] | None = None) -> None:
        if source not in ("official", "synthetic"):
            raise ValueError(f"source must be 'official' or 'synthetic', got {source!r}")
        self.name = name
        self.source = source
        self.factor_names = tuple(factor_names)
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        if len(self.factor_names) != len(self.factor_sizes):
            raise ValueError("factor_names and factor_sizes differ in length")
        self.checksum = checksum
        # How the file was found intact on this load (data.integrity.Check.record()); recorded in metrics.json.
        self.integrity: dict | None = None
        self.path = path
        self.factor_values = tuple(np.asarray(v) for v in factor_values) if factor_values is not None else None
        self.packed_bits = packed_bits
        if store.dtype != np.uint8:
            raise ValueError(f"image store must be uint8, got {store.dtype}")
        num = self._store_rows()
        if store.shape[0] != num:
            raise UserError(f"{name}: {store.shape[0]} images but the factor grid "
                            f"{dict(zip(self.factor_names, self.factor_sizes))} needs {num}")
        if packed_bits:
            if store.ndim != 3:
                raise ValueError("a bit-packed store has shape (N, H, W // 8)")
            self.image_shape = (store.shape[1], store.shape[2] * 8, 1)
        else:
            if store.ndim != 4:
                raise ValueError("an image store has shape (N, H, W, C)")
            self.image_shape = tuple(store.shape[1:])
        self._store = store
        # Row-major strides of the factor grid: index = classes @ strides.
        self.factor_strides = np.array(
            [int(np.prod(self.factor_sizes[k + 1:])) for k in range(len(self.factor_sizes))], dtype=np.int64)
        self._device_stores: dict[str, torch.Tensor] = {}

    has_nuisance = False

    def _store_rows(self) -> int:
        """Rows the store must have: one per factor combination (more with stored nuisance, e.g. SmallNORB)."""
        return int(np.prod(self.factor_sizes))

    # -- sizes and factors ----------------------------------------------------------------------
    def __len__(self) -> int:
        """Distinct factor combinations (= image indices)."""
        return int(np.prod(self.factor_sizes))

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def num_channels(self) -> int:
        return self.image_shape[2]

    def __repr__(self) -> str:
        factors = ", ".join(f"{n}={s}" for n, s in zip(self.factor_names, self.factor_sizes))
        return f"GroundTruthData({self.name!r}, source={self.source!r}, {len(self)} images {self.image_shape}, {factors})"

    def index_of(self, factor_classes: np.ndarray) -> np.ndarray:
        """Image indices of rows of factor classes ``(n, num_factors)`` (or one row)."""
        classes = np.asarray(factor_classes, dtype=np.int64)
        if classes.shape[-1] != self.num_factors:
            raise UserError(f"{self.name}: factor rows need {self.num_factors} columns "
                            f"({', '.join(self.factor_names)}), got shape {classes.shape}")
        sizes = np.asarray(self.factor_sizes)
        if np.any(classes < 0) or np.any(classes >= sizes):
            raise UserError(f"{self.name}: factor classes out of range; sizes are {self.factor_sizes}")
        return classes @ self.factor_strides

    def factors_of(self, indices: np.ndarray) -> np.ndarray:
        """Factor classes ``(n, num_factors)`` of image indices."""
        indices = self._check_indices(indices)
        return (indices[..., None] // self.factor_strides) % np.asarray(self.factor_sizes, dtype=np.int64)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows of factor classes, each factor independent and uniform over its classes."""
        return rng.integers(0, np.asarray(self.factor_sizes), size=(n, self.num_factors), dtype=np.int64)

    def sample_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` image indices, uniform with replacement (equivalent to uniform factor rows)."""
        return rng.integers(0, len(self), size=n, dtype=np.int64)

    # -- images ---------------------------------------------------------------------------------
    def images(self, indices: np.ndarray, *, keys=None) -> np.ndarray:
        """uint8 images ``(n, H, W, C)`` with values 0..255 (``keys``: see :class:`NuisanceData`; unused here)."""
        indices = self._check_indices(indices)
        rows = self._store[indices]
        if self.packed_bits:
            return (np.unpackbits(rows, axis=-1)[..., None] * np.uint8(255))
        return np.asarray(rows)

    def batch(self, indices, device: str | torch.device | None = None, *, keys=None) -> torch.Tensor:
        """Float images ``(n, C, H, W)`` in [0, 1] on ``device``, gathered from the in-memory store.

        One tensor gather and one conversion per call: no per-image Python. The result is laid out
        channels-last in memory (a free view of the HWC store), which is what conv nets on CPU like.
        """
        device = torch.device(device) if device is not None else torch.device("cpu")
        store = self.device_store(device)
        if isinstance(indices, torch.Tensor):
            index = indices.to(device=device, dtype=torch.long)
        else:
            index = torch.from_numpy(np.asarray(indices, dtype=np.int64)).to(device)
        rows = store.index_select(0, index)
        if self.packed_bits:
            shifts = torch.arange(7, -1, -1, device=device, dtype=torch.uint8)
            bits = (rows.unsqueeze(-1) >> shifts) & 1  # (n, H, W/8, 8), most significant bit first
            return bits.reshape(rows.shape[0], 1, self.image_shape[0], self.image_shape[1]).float()
        return rows.permute(0, 3, 1, 2).float().div_(255.0)

    def device_store(self, device: str | torch.device) -> torch.Tensor:
        """The uint8 store as a tensor on ``device`` (cached: on CUDA the whole set lives on the GPU)."""
        device = torch.device(device)
        key = str(device)
        if key not in self._device_stores:
            # A memory-mapped store (mode "c": copy-on-write, so torch sees a writable buffer) is wrapped
            # without a copy; moving it to a GPU reads it once.
            host = torch.from_numpy(np.ascontiguousarray(self._store))
            if device.type == "cpu":
                self._device_stores[key] = host
            else:
                advise(self._store, "sequential")  # one pass over the whole file
                self._device_stores[key] = host.to(device)
                advise(self._store, "random")
        return self._device_stores[key]

    def _check_indices(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise UserError(f"{self.name}: image index out of range 0..{len(self) - 1}")
        return indices

    @property
    def nbytes(self) -> int:
        return int(self._store.nbytes)

    @property
    def memory_mapped(self) -> bool:
        return isinstance(self._store, np.memmap)


def batch_keys(indices: np.ndarray) -> np.ndarray:
    """Observation keys ``(n, 2)`` uint64 for a batch drawn without explicit keys (training, pictures).

    Key ``(h, j)``: ``h`` a 64-bit hash of the whole batch of indices, ``j`` the position in it. So a batch
    is reproducible from the indices alone (which training draws from its seed, and draws again the
    same way after a resume), while two draws of one index (in one batch or in two different batches)
    get different nuisance, unless the whole batch repeats.
    """
    indices = np.ascontiguousarray(np.asarray(indices, dtype="<i8"))
    digest = hashlib.blake2b(indices.tobytes(), digest_size=8, person=b"disent-obs").digest()
    keys = np.empty((indices.size, 2), dtype=np.uint64)
    keys[:, 0] = np.frombuffer(digest, dtype="<u8")[0]
    keys[:, 1] = np.arange(indices.size, dtype=np.uint64)
    return keys


def observation_rngs(keys: np.ndarray) -> list[np.random.Generator]:
    """One independent numpy generator per observation key (Philox, keyed by the 128-bit key)."""
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1, 2)
    return [np.random.Generator(np.random.Philox(key=key)) for key in keys]


class NuisanceData(GroundTruthData):
    """Ground-truth data whose observations also draw randomness that is not a factor.

    Subclasses implement :meth:`observe`: float32 images ``(n, H, W, C)`` in [0, 1] for image indices
    and one observation key each. :meth:`batch` and :meth:`images` take the keys as ``keys=``; without
    them, keys come from :func:`batch_keys` (reproducible from the indices, fresh per draw).
    """

    has_nuisance = True

    def observe(self, indices: np.ndarray, keys: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _keys(self, indices: np.ndarray, keys) -> np.ndarray:
        if keys is None:
            return batch_keys(indices)
        keys = np.asarray(keys, dtype=np.uint64).reshape(-1, 2)
        if len(keys) != indices.size:
            raise ValueError(f"{len(keys)} observation keys for {indices.size} indices")
        return keys

    def images(self, indices: np.ndarray, *, keys=None) -> np.ndarray:
        indices = self._check_indices(indices).reshape(-1)
        observed = self.observe(indices, self._keys(indices, keys))
        return np.rint(observed * np.float32(255.0)).astype(np.uint8)

    def batch(self, indices, device: str | torch.device | None = None, *, keys=None) -> torch.Tensor:
        device = torch.device(device) if device is not None else torch.device("cpu")
        if isinstance(indices, torch.Tensor):
            indices = indices.detach().to("cpu").numpy()
        indices = self._check_indices(indices).reshape(-1)
        observed = self.observe(indices, self._keys(indices, keys))
        # Channels-last in memory like GroundTruthData.batch (a view of the HWC array).
        return torch.from_numpy(observed).permute(0, 3, 1, 2).to(device)
