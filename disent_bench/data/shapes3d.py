"""3D Shapes (Burgess & Kim, 2018): the official HDF5 loader and a synthetic look-alike.

3D Shapes holds 480,000 RGB 64x64 images of an object in a room, one per combination of six
ground-truth factors, in row-major order (orientation fastest)::

    floor_hue 10 x wall_hue 10 x object_hue 10 x scale 8 x shape 4 x orientation 15

Official file (``3dshapes.h5``, https://github.com/deepmind/3d-shapes)
    ``images`` uint8 (480000, 64, 64, 3) and ``labels`` float64 (480000, 6). The labels are factor
    VALUES (hues 0.0..0.9, scales 0.75..1.25, shapes 0..3, orientations -30..30 degrees), so
    :func:`load_official` maps each to its class on the known value grid (with a tolerance), infers
    the grid the file holds, and checks that it is a complete factorial in row-major order.
    ``images`` is gzip-compressed in large chunks: random access through h5py decompresses a whole
    chunk per image (~1000x slower), so it is read once, sequentially, in chunk-aligned blocks straight
    into one preallocated uint8 array (5.5 GiB for the real file; never float). ``get_dataset`` converts
    it once into a memory-mapped cache file in the data home (:mod:`disent_bench.data.store`), so training
    and scoring keep only the pages they touch resident.

Synthetic renderer
    :mod:`disent_bench.data.shapes3d_render` ray-casts the same kind of scene (room, sky, shaded
    object with a hard shadow, camera orbit); :func:`render_synthetic` writes all 480,000 images in
    the official order. :mod:`disent_bench.reference_compare.shapes3d` matches the real frames of the
    official ``3dshapes.gif`` with their closest synthetic images and draws them side by side
    (``disent-bench data compare shapes3d``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from disent_bench.data import shapes3d_render as render
from disent_bench.data.base import GroundTruthData
from disent_bench.data.spec import DatasetSpec, LoadContext
from disent_bench.data.store import cached_store
from disent_bench.errors import UserError
from disent_bench.progress import ProgressReporter

__all__ = ["SPEC", "FACTOR_NAMES", "FACTOR_SIZES", "FACTOR_VALUES", "SHAPE_NAMES", "load_official",
           "labels_to_classes", "render_synthetic", "render_indices"]

FACTOR_NAMES = render.FACTOR_NAMES
FACTOR_SIZES = render.FACTOR_SIZES
FACTOR_VALUES = render.FACTOR_VALUES
SHAPE_NAMES = render.SHAPE_NAMES
IMAGE_SHAPE = (render.IMAGE_SIZE, render.IMAGE_SIZE, 3)
NUM_IMAGES = int(np.prod(FACTOR_SIZES))
STRIDES = np.array([int(np.prod(FACTOR_SIZES[k + 1:])) for k in range(len(FACTOR_SIZES))], dtype=np.int64)

OFFICIAL_FILENAME = "3dshapes.h5"
OFFICIAL_URL = "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
OFFICIAL_SIZE = 267_573_662
OFFICIAL_SHA256 = "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785"
OFFICIAL_MD5 = "099a2078d58cec4daad0702c55d06868"

# A label may differ from its grid value by this fraction of the grid step (the official values are
# float64 from linspace; a file that went through float32 is still well inside it).
VALUE_TOLERANCE = 0.01
# Read ``images`` in blocks of about this many bytes (rounded to whole HDF5 chunks).
READ_BLOCK_BYTES = 64 << 20

render_indices = render.render_indices


# -- official file ----------------------------------------------------------------------------------
def labels_to_classes(labels: np.ndarray, path: str | os.PathLike = "labels") -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Map label VALUES ``(N, 6)`` to official class indices ``(N, 6)`` on the known value grid.

    Returns the official classes and, per factor, the official class indices the file uses (its grid,
    sorted). Raises :class:`UserError` naming the column and value when a label is off the grid.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != len(FACTOR_NAMES):
        raise UserError(f"{path}: 'labels' has shape {labels.shape}; expected (N, 6) with columns "
                        f"{', '.join(FACTOR_NAMES)}")
    if not np.issubdtype(labels.dtype, np.number) or np.issubdtype(labels.dtype, np.complexfloating):
        raise UserError(f"{path}: 'labels' has dtype {labels.dtype}; expected floating-point factor values")
    classes = np.empty(labels.shape, dtype=np.int64)
    present = []
    for column, (name, grid) in enumerate(zip(FACTOR_NAMES, FACTOR_VALUES)):
        values = labels[:, column].astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise UserError(f"{path}: 'labels' column {column} ({name}) holds NaN or infinite values")
        step = float(np.min(np.diff(grid)))
        nearest = np.abs(values[:, None] - grid[None, :]).argmin(axis=1)
        off = np.abs(values - grid[nearest]) > VALUE_TOLERANCE * step
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise UserError(f"{path}: 'labels' column {column} ({name}) has value {float(values[row]):g} at row {row}, "
                            f"which is not on the official grid {np.round(grid, 4).tolist()} "
                            f"({int(off.sum())} rows are off the grid); labels must be factor values, not classes")
        classes[:, column] = nearest
        present.append(np.unique(nearest))
    return classes, tuple(present)


def _describe(classes_row, values) -> str:
    """A factor combination as label values, e.g. ``floor_hue=0.1, ..., orientation=-25.71``."""
    return ", ".join(f"{n}={float(v[int(c)]):.4g}" for n, c, v in zip(FACTOR_NAMES, classes_row, values))


def _check_factorial(classes: np.ndarray, values: tuple[np.ndarray, ...], path) -> None:
    """Check that the (file-grid) classes are a complete factorial in row-major order; explain if not.

    ``values[k]`` are the label values of factor ``k``'s classes (used to name combinations).
    """
    sizes = classes.max(axis=0) + 1 if len(classes) else np.ones(len(FACTOR_NAMES), np.int64)
    needed = int(np.prod(sizes))
    grid = dict(zip(FACTOR_NAMES, (int(s) for s in sizes)))
    strides = np.array([int(np.prod(sizes[k + 1:])) for k in range(len(sizes))], dtype=np.int64)
    index = classes @ strides
    counts = np.bincount(index, minlength=needed)
    missing = np.flatnonzero(counts == 0)
    duplicated = np.flatnonzero(counts > 1)
    if missing.size or duplicated.size:
        parts = []
        if missing.size:
            example = (missing[0] // strides) % sizes
            parts.append(f"{missing.size} factor combinations are missing (e.g. {_describe(example, values)})")
        if duplicated.size:
            example = (duplicated[0] // strides) % sizes
            parts.append(f"{int((counts[duplicated] - 1).sum())} images repeat a combination "
                         f"(e.g. {_describe(example, values)})")
        raise UserError(f"{path}: not a full factorial grid {grid} ({needed} images needed, the file has "
                        f"{len(classes)}): " + "; ".join(parts))
    wrong = np.flatnonzero(index != np.arange(needed))
    if wrong.size:
        row = int(wrong[0])
        expected = (row // strides) % sizes
        raise UserError(f"{path}: images are not in row-major order (orientation fastest): image {row} has "
                        f"{_describe(classes[row], values)} but should have {_describe(expected, values)} "
                        f"({wrong.size} of {needed} images are out of place; every combination is present, "
                        "so the file looks shuffled)")


def load_official(path: str | os.PathLike, *, progress: bool = True, cache_dir: Path | None = None,
                  checksum: str | None = None) -> GroundTruthData:
    """Load an official-format 3D Shapes HDF5 file (the full file, or a reduced grid written the same way).

    The factor grid is inferred from ``labels`` (a subset of the official values per factor); the file's
    ``factor_values`` are those values. With ``cache_dir`` the images are converted once into a
    memory-mapped cache file there (keyed by ``checksum``) instead of being read into the heap: the full
    set is 5.5 GiB of uint8.
    """
    # Local: h5py takes ~0.3 s to import (-X importtime, after the registry's other imports), which every
    # dataset look-up would pay, since the registry imports this module; only this official file needs it.
    import h5py

    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 file ({exc})") from None
    with handle:
        for key in ("images", "labels"):
            if key not in handle or not isinstance(handle[key], h5py.Dataset):
                raise UserError(f"{path}: dataset '{key}' not found (the file has {sorted(handle.keys())}); "
                                "the official 3dshapes.h5 holds 'images' and 'labels'")
        images, labels_ds = handle["images"], handle["labels"]
        if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
            raise UserError(f"{path}: 'images' is {images.dtype} with shape {images.shape}; "
                            f"expected uint8 (N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}, {IMAGE_SHAPE[2]})")
        if labels_ds.ndim != 2 or labels_ds.shape[0] != images.shape[0]:
            raise UserError(f"{path}: 'labels' has shape {labels_ds.shape} but 'images' has {images.shape[0]} "
                            "rows; expected labels of shape (N, 6)")
        official_classes, present = labels_to_classes(labels_ds[()], path)
        # Classes on the file's own grid: position of each official class among those present.
        classes = np.stack([np.searchsorted(p, official_classes[:, k]) for k, p in enumerate(present)], axis=1)
        del official_classes
        values = tuple(grid[p] for grid, p in zip(FACTOR_VALUES, present))
        _check_factorial(classes, values, path)
        del classes
        if cache_dir is not None:
            store = cached_store(cache_dir, "shapes3d", checksum or "nochecksum", tuple(images.shape),
                                 lambda out: _read_images(images, path, progress, out))
        else:
            store = _read_images(images, path, progress)
    sizes = tuple(len(p) for p in present)
    return GroundTruthData("shapes3d", "official", FACTOR_NAMES, sizes, store, path=str(path), factor_values=values,
                           checksum=checksum)


def open_official(context: LoadContext) -> GroundTruthData:
    """The verified official file, converted once into a memory-mapped store in the data home's cache."""
    return load_official(context.paths[OFFICIAL_FILENAME], progress=context.progress, cache_dir=context.cache_dir,
                         checksum=context.checksum)


def _read_images(images, path: Path, progress: bool, store: np.ndarray | None = None) -> np.ndarray:
    """Read an h5py uint8 dataset sequentially, in chunk-aligned blocks, into one preallocated array."""
    count = images.shape[0]
    if store is None:
        try:
            store = np.empty(images.shape, dtype=np.uint8)
        except MemoryError:
            raise UserError(f"{path}: not enough memory for {images.shape[0]} images "
                            f"({np.prod(images.shape) / 2**30:.1f} GiB as uint8)") from None
    chunk_rows = images.chunks[0] if images.chunks else 1
    per_image = int(np.prod(images.shape[1:]))
    block = max(chunk_rows, (READ_BLOCK_BYTES // per_image) // chunk_rows * chunk_rows)
    with ProgressReporter("read 3dshapes", count, enabled=progress) as reporter:
        for start in range(0, count, block):
            stop = min(start + block, count)
            try:
                images.read_direct(store, np.s_[start:stop], np.s_[start:stop])
            except OSError as exc:  # a damaged compressed chunk
                raise UserError(f"{path}: cannot read images {start}..{stop - 1} ({exc}); the file is damaged") from None
            reporter.update(stop - start)
    return store


# -- synthetic --------------------------------------------------------------------------------------
def render_synthetic(out_path: Path, progress: bool = True) -> None:
    """Write all 480,000 synthetic images as an ``.npy`` uint8 (480000, 64, 64, 3) in the official order.

    Geometry and shading are ray-cast once per (scale, shape, orientation); the 1000 hue combinations
    are composed with numpy and written block by block through a memory map (peak memory stays small:
    one floor hue, 48,000 images, is mapped at a time).
    """
    out_path = Path(out_path)
    configs = int(np.prod(FACTOR_SIZES[3:]))  # 480 geometry configurations, in index order
    with ProgressReporter("render 3dshapes geometry", configs, enabled=progress) as reporter:
        maps = render.render_all_maps(progress=reporter.update).reshape(configs, *IMAGE_SHAPE[:2], render.NUM_MAPS)
    # Fold the 0..255 scaling and the rounding offset into the maps once (see render.compose).
    maps = maps * np.float32(255.0)
    k_floor, k_wall, k_object = (maps[..., k, None] for k in (render.K_FLOOR, render.K_WALL, render.K_OBJECT))
    fixed = maps[..., render.K_SKY, None] * render.SKY_RGB + maps[..., render.K_WHITE, None] + np.float32(0.5)
    hues = render.hue_rgb(render.HUES)  # (10, 3)
    mm = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.uint8, shape=(NUM_IMAGES, *IMAGE_SHAPE))
    offset = mm.offset
    del mm  # header written and file sized; blocks are mapped one floor hue at a time below
    per_floor = int(STRIDES[0])
    base = np.empty((configs, *IMAGE_SHAPE), np.float32)
    work = np.empty_like(base)
    with ProgressReporter("render 3dshapes", NUM_IMAGES, enabled=progress) as reporter:
        for f in range(FACTOR_SIZES[0]):
            block = np.memmap(out_path, mode="r+", dtype=np.uint8, offset=offset + f * per_floor * base[0].size,
                              shape=(per_floor, *IMAGE_SHAPE))
            for w in range(FACTOR_SIZES[1]):
                np.multiply(k_floor, hues[f], out=base)
                base += k_wall * hues[w]
                base += fixed
                for o in range(FACTOR_SIZES[2]):
                    np.multiply(k_object, hues[o], out=work)
                    work += base
                    np.clip(work, 0.0, 255.0, out=work)
                    start = w * int(STRIDES[1]) + o * int(STRIDES[2])
                    block[start:start + configs] = work  # float -> uint8 truncates: rounding via the +0.5
                    reporter.update(configs)
            block.flush()
            del block


SPEC = DatasetSpec(
    name="shapes3d",
    factor_names=FACTOR_NAMES,
    factor_sizes=FACTOR_SIZES,
    image_shape=IMAGE_SHAPE,
    packed_bits=False,
    renderer_version=1,
    render_synthetic=render_synthetic,
    official_filename=OFFICIAL_FILENAME,
    official_url=OFFICIAL_URL,
    official_size=OFFICIAL_SIZE,
    official_sha256=OFFICIAL_SHA256,
    official_md5=OFFICIAL_MD5,
    load_official=load_official,
    open_official=open_official,
    factor_values=FACTOR_VALUES,
    description="3D Shapes (Burgess & Kim 2018): 480,000 RGB 64x64 images of an object in a room",
)
