"""SmallNORB (LeCun, Huang & Bottou, CVPR 2004, "Learning Methods for Generic Object Recognition with
Invariance to Pose and Lighting"), read as disentanglement_lib's ``norb.py`` reads it.

The release is six gzip'd files in NYU's binary matrix format: for the training and the test split, ``dat``
(uint8 stereo pairs 24300 x 2 x 96 x 96), ``cat`` (int32 category) and ``info`` (int32: instance,
elevation 0-8, azimuth 0, 2, ..., 34, lighting 0-5). A binary matrix is a header of little-endian int32
values (magic, ndim, then max(3, ndim) dimension sizes) followed by the data in C order.

Reading, as the reference: both splits (the training split has instances 4, 6, 7, 8, 9 of each category, the
test split 0, 1, 2, 3, 5: together the full factorial 5 x 10 x 9 x 18 x 6 = 48,600), the first image of
each pair, azimuth halved (classes 0-17), every image resized 96 -> 64 with Lanczos (PIL ``LANCZOS``,
formerly ``ANTIALIAS``), values / 255, one grey channel. The file row order is not trusted: images are
placed by their labels, sorted by (category, instance, elevation, azimuth, lighting).

Factors: **category 5, elevation 9, azimuth 18, lighting 6** are the ground truth; the **instance** (10)
is nuisance, drawn uniformly for every observation (:class:`SmallNorbData`), as in the reference.

Deviations: the reference reads the uint8 images as int8, which Pillow turns into a 32-bit mode ("I") that
keeps Lanczos overshoot beyond 0..255; here they are resized as uint8 (mode "L"), which clips the
overshoot to 0..255 (also between its two passes) and rounds in fixed point. Measured: smooth images
resize identically; on hard-edged test images up to 5 grey levels differ, on 0.27% of the pixels. Research use only (see the NYU page); cite the CVPR 2004 paper.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from disent_bench.data.base import NuisanceData, observation_rngs
from disent_bench.data.spec import DatasetSpec, LoadContext, OfficialFile
from disent_bench.data.store import cached_store
from disent_bench.errors import UserError
from disent_bench.progress import ProgressReporter

__all__ = ["SPEC", "FACTOR_NAMES", "CATEGORY_NAMES", "read_matrix", "resize", "load_files", "SmallNorbData",
           "MAGIC"]

FACTOR_NAMES = ("category", "elevation", "azimuth", "lighting")
NUISANCE_NAME = "instance"
CATEGORY_NAMES = ("animal", "human", "airplane", "truck", "car")
SOURCE_SIZE = 96
IMAGE_SIZE = 64
BASE_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
TRAIN_STEM = "smallnorb-5x46789x9x18x6x2x96x96-training"
TEST_STEM = "smallnorb-5x01235x9x18x6x2x96x96-testing"
# Magic numbers of the binary matrix format and the dtypes they stand for (packed 0x1E3D4C52 unsupported).
MAGIC = {0x1E3D4C51: np.dtype("<f4"), 0x1E3D4C53: np.dtype("<f8"), 0x1E3D4C54: np.dtype("<i4"),
         0x1E3D4C55: np.dtype("u1"), 0x1E3D4C56: np.dtype("<i2")}
# gz sizes and sha256 (TFDS url_checksums/smallnorb.txt).
_CHECKSUMS = {
    f"{TRAIN_STEM}-dat.mat.gz": (131_896_188, "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873"),
    f"{TRAIN_STEM}-cat.mat.gz": (348, "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa"),
    f"{TRAIN_STEM}-info.mat.gz": (71_052, "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32"),
    f"{TEST_STEM}-dat.mat.gz": (130_799_817, "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474"),
    f"{TEST_STEM}-cat.mat.gz": (347, "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff"),
    f"{TEST_STEM}-info.mat.gz": (10_428, "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2"),
}
OFFICIAL_FILES = tuple(OfficialFile(name, BASE_URL + name, size, sha256) for name, (size, sha256) in _CHECKSUMS.items())
_BLOCK_PAIRS = 1024


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _read_exact(stream, count: int, path: Path, what: str) -> bytes:
    try:
        data = stream.read(count)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: cannot read {what} ({exc}); the file is damaged") from None
    if len(data) != count:
        raise UserError(f"{path}: {what} ends early ({len(data)} of {count} bytes; truncated file)")
    return data


def read_header(stream, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """Read a binary matrix header: (dtype, shape). Raises UserError naming the file and the bad value."""
    magic, ndim = np.frombuffer(_read_exact(stream, 8, path, "the header"), dtype="<i4")
    magic = int(magic) & 0xFFFFFFFF
    if magic not in MAGIC:
        known = ", ".join(f"{m:#x} ({d})" for m, d in MAGIC.items())
        raise UserError(f"{path}: magic number {magic:#x} is not a binary matrix type this reader knows ({known})")
    if not 0 < ndim <= 16:
        raise UserError(f"{path}: the header gives {int(ndim)} dimensions; expected 1..16")
    dims = np.frombuffer(_read_exact(stream, 4 * max(3, int(ndim)), path, "the header"), dtype="<i4")
    shape = tuple(int(d) for d in dims[:ndim])
    if any(d < 0 for d in shape):
        raise UserError(f"{path}: negative dimension in the header {shape}")
    return MAGIC[magic], shape


def read_matrix(path: str | Path) -> np.ndarray:
    """A whole binary matrix file (``.mat`` or ``.mat.gz``) as a numpy array (for the small cat and info files)."""
    path = Path(path)
    with _open(path) as stream:
        dtype, shape = read_header(stream, path)
        data = _read_exact(stream, int(np.prod(shape)) * dtype.itemsize, path, "the data")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def resize(images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, 96, 96)`` -> uint8 ``(n, 64, 64)`` with PIL's Lanczos filter, as the reference."""
    out = np.empty((len(images), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for k, image in enumerate(images):
        out[k] = np.asarray(Image.fromarray(image).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS))
    return out


def _split_labels(stem: str, paths: dict[str, Path]) -> np.ndarray:
    """(n, 5) raw labels of one split: category, instance, elevation, azimuth, lighting."""
    cat_path, info_path = paths[f"{stem}-cat.mat.gz"], paths[f"{stem}-info.mat.gz"]
    category = read_matrix(cat_path)
    info = read_matrix(info_path)
    if category.ndim != 1 or not np.issubdtype(category.dtype, np.integer):
        raise UserError(f"{cat_path}: expected a 1-d int32 matrix of categories, got {category.dtype} {category.shape}")
    if info.ndim != 2 or info.shape[1] != 4 or info.shape[0] != category.shape[0]:
        raise UserError(f"{info_path}: expected an int32 matrix ({category.shape[0]}, 4) (instance, elevation, "
                        f"azimuth, lighting), got {info.dtype} {info.shape}")
    return np.concatenate([category[:, None].astype(np.int64), info.astype(np.int64)], axis=1)


def _classes(labels: np.ndarray, where: str) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Map raw label values to classes (position among the values present) and check the full factorial."""
    names = ("category", NUISANCE_NAME, "elevation", "azimuth", "lighting")
    present = tuple(np.unique(labels[:, k]) for k in range(5))
    azimuths = present[3]
    if np.any(azimuths % 2):
        raise UserError(f"{where}: azimuth values must be even (0, 2, ..., 34), found {azimuths[azimuths % 2 == 1][:5].tolist()}")
    classes = np.stack([np.searchsorted(p, labels[:, k]) for k, p in enumerate(present)], axis=1)
    sizes = np.array([len(p) for p in present])
    strides = np.array([int(np.prod(sizes[k + 1:])) for k in range(5)])
    index = classes @ strides
    counts = np.bincount(index, minlength=int(np.prod(sizes)))
    if np.any(counts != 1):
        missing, repeated = int((counts == 0).sum()), int((counts > 1).sum())
        grid = dict(zip(names, sizes.tolist()))
        raise UserError(f"{where}: the labels are not a full factorial {grid}: {missing} combinations missing, "
                        f"{repeated} repeated")
    return index, present


def load_files(paths: dict[str, Path], *, cache_dir: Path | None = None, checksum: str | None = None,
               progress: bool = True) -> SmallNorbData:
    """Load SmallNORB from the six release files (``paths``: file name -> path; ``.gz`` or not).

    A reduced grid written in the same format loads too (its factor sizes are the values present).
    """
    splits = (TRAIN_STEM, TEST_STEM)
    labels = [_split_labels(stem, paths) for stem in splits]
    where = f"{paths[f'{TRAIN_STEM}-info.mat.gz']} + test split"
    index, present = _classes(np.concatenate(labels), where)
    sizes = tuple(len(p) for p in present)  # category, instance, elevation, azimuth, lighting
    total = int(np.prod(sizes))

    def fill(out: np.ndarray) -> None:
        start = 0
        with ProgressReporter("read smallnorb", total, enabled=progress) as reporter:
            for stem, split_labels in zip(splits, labels):
                dat_path = paths[f"{stem}-dat.mat.gz"]
                rows = index[start:start + len(split_labels)]
                start += len(split_labels)
                with _open(dat_path) as stream:
                    dtype, shape = read_header(stream, dat_path)
                    expected = (len(split_labels), 2, SOURCE_SIZE, SOURCE_SIZE)
                    if dtype != np.uint8 or shape != expected:
                        raise UserError(f"{dat_path}: the images are {dtype} {shape}; expected uint8 {expected} "
                                        "(stereo pairs of 96x96, one per label row)")
                    pair_bytes = 2 * SOURCE_SIZE * SOURCE_SIZE
                    for first in range(0, len(split_labels), _BLOCK_PAIRS):
                        count = min(_BLOCK_PAIRS, len(split_labels) - first)
                        raw = _read_exact(stream, count * pair_bytes, dat_path, f"images {first}..{first + count - 1}")
                        pairs = np.frombuffer(raw, dtype=np.uint8).reshape(count, 2, SOURCE_SIZE, SOURCE_SIZE)
                        out[rows[first:first + count], :, :, 0] = resize(pairs[:, 0])  # the first image of a pair
                        reporter.update(count)

    shape = (total, IMAGE_SIZE, IMAGE_SIZE, 1)
    if cache_dir is not None:
        store = cached_store(cache_dir, "smallnorb", checksum or "nochecksum", shape, fill)
    else:
        store = np.empty(shape, dtype=np.uint8)
        fill(store)
    category, instance, elevation, azimuth, lighting = present
    values = (category.astype(np.float64), 30.0 + 5.0 * elevation, 10.0 * azimuth, lighting.astype(np.float64))
    dataset = SmallNorbData("smallnorb", "official", FACTOR_NAMES, (sizes[0], *sizes[2:]), store,
                            num_instances=sizes[1], checksum=checksum, path=str(paths[f"{TRAIN_STEM}-dat.mat.gz"]),
                            factor_values=values)
    dataset.value_names = {"category": tuple(CATEGORY_NAMES[int(c)] if 0 <= c < 5 else str(c) for c in category)}
    dataset.instance_values = instance
    return dataset


class SmallNorbData(NuisanceData):
    """SmallNORB with the instance as nuisance: each observation draws one of the instances uniformly.

    The store holds every (category, instance, elevation, azimuth, lighting) image; an image index is a
    (category, elevation, azimuth, lighting) row, and :meth:`observe` picks the instance from the key.
    """

    def __init__(self, *args, num_instances: int, **kwargs) -> None:
        self.num_instances = int(num_instances)
        super().__init__(*args, **kwargs)

    def _store_rows(self) -> int:
        return int(np.prod(self.factor_sizes)) * self.num_instances

    def instances(self, keys: np.ndarray) -> np.ndarray:
        """The instance class each observation key draws (uniform over the instances)."""
        return np.array([rng.integers(self.num_instances) for rng in observation_rngs(keys)], dtype=np.int64)

    def store_rows(self, indices: np.ndarray, instances: np.ndarray) -> np.ndarray:
        """Store rows of image indices seen as ``instances``: category slowest, then the instance."""
        indices = np.asarray(indices, dtype=np.int64)
        rest = int(np.prod(self.factor_sizes[1:]))  # elevation x azimuth x lighting
        category, within = np.divmod(indices, rest)
        return (category * self.num_instances + np.asarray(instances, dtype=np.int64)) * rest + within

    def observe(self, indices: np.ndarray, keys: np.ndarray) -> np.ndarray:
        rows = self.store_rows(indices, self.instances(keys))
        order = np.argsort(rows, kind="stable")  # read the map in file order
        out = np.empty((len(rows), *self.image_shape), dtype=np.float32)
        out[order] = self._store[rows[order]]
        return out / np.float32(255.0)


def open_official(context: LoadContext) -> SmallNorbData:
    return load_files(context.paths, cache_dir=context.cache_dir, checksum=context.checksum, progress=context.progress)


SPEC = DatasetSpec(
    name="smallnorb",
    factor_names=FACTOR_NAMES,
    factor_sizes=(5, 9, 18, 6),
    image_shape=(IMAGE_SIZE, IMAGE_SIZE, 1),
    packed_bits=False,
    renderer_version=0,
    official_filename=OFFICIAL_FILES[0].filename,
    official_files=OFFICIAL_FILES,
    open_official=open_official,
    description="SmallNORB (LeCun et al. 2004): 48,600 grey 64x64 toy photographs; instance drawn per observation",
    nuisance="instance (of 10)",
    citation=BASE_URL,
)
