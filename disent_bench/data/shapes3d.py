"""3D Shapes (Burgess & Kim, 2018): the official HDF5 loader, a synthetic look-alike and a comparison.

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
    the official order. :func:`compare_reference` matches the real frames of ``3dshapes.gif`` with
    their closest synthetic images and draws them side by side.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from disent_bench._io import check_output_path
from disent_bench.data import shapes3d_render as render
from disent_bench.data.base import GroundTruthData
from disent_bench.data.spec import DatasetSpec, LoadContext
from disent_bench.data.store import cached_store
from disent_bench.errors import UserError
from disent_bench.progress import ProgressReporter

__all__ = ["SPEC", "FACTOR_NAMES", "FACTOR_SIZES", "FACTOR_VALUES", "SHAPE_NAMES", "load_official",
           "labels_to_classes", "render_synthetic", "render_indices", "reference_frames", "compare_reference"]

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


# -- comparison with the real frames ----------------------------------------------------------------
def reference_frames(gif_path: str | os.PathLike) -> np.ndarray:
    """The frames of the official ``3dshapes.gif`` as uint8 (n, 64, 64, 3).

    The GIF's frames are ~227x226 upscales with a 2-pixel white/grey border; the border is cropped and
    the rest box-filtered down to 64x64.
    """
    from PIL import Image, ImageSequence

    path = Path(gif_path)
    try:
        with Image.open(path) as gif:
            frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable GIF ({exc})") from None
    out = []
    for frame in frames:
        height, width = frame.shape[:2]
        if min(height, width) < 64:
            raise UserError(f"{path}: frames are {width}x{height}; expected 3D Shapes frames of at least 64x64")
        crop = 2 if min(height, width) > 128 else 0  # the upscaled official GIF has a 2-pixel border
        inner = frame[crop:height - crop, crop:width - crop]
        side = min(inner.shape[:2])
        inner = inner[:side, :side]
        out.append(np.asarray(Image.fromarray(inner).resize((64, 64), Image.BOX)))
    return np.stack(out)


def _hue_votes(pixels: np.ndarray) -> np.ndarray:
    """Votes of saturated, not-too-dark pixels ``(n, 3)`` for each of the 10 hue classes."""
    from matplotlib.colors import rgb_to_hsv

    hsv = rgb_to_hsv(pixels.reshape(-1, 3).astype(np.float64) / 255.0)
    keep = (hsv[:, 1] > 0.6) & (hsv[:, 2] > 0.3)
    hue = hsv[keep, 0]
    distance = np.abs(((hue[:, None] - render.HUES[None, :]) + 0.5) % 1.0 - 0.5)
    return np.bincount(distance.argmin(axis=1), minlength=len(render.HUES)).astype(np.float64)


def _candidate_hues(frame: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Likely floor, wall and object hue classes of a 64x64 frame, most likely first.

    Floor: the bottom rows at both sides; walls: the band between sky and floor at both sides;
    object: the centre of the frame, with the floor and wall colours voted out.
    """
    floor = _hue_votes(np.concatenate([frame[58:, :14], frame[58:, 50:]]))
    wall = _hue_votes(np.concatenate([frame[20:36, :8], frame[20:36, 56:]]))
    centre = _hue_votes(frame[20:56, 22:42])
    f_order = list(np.argsort(-floor, kind="stable")[:2])
    w_order = list(np.argsort(-wall, kind="stable")[:2])
    centre[f_order[0]] *= 0.2  # the floor and wall show around the object too
    centre[w_order[0]] *= 0.2
    o_order = list(np.argsort(-centre, kind="stable")[:3])
    return [int(h) for h in f_order], [int(h) for h in w_order], [int(h) for h in o_order]


def compare_reference(gif_path: str | os.PathLike, out_png: str | os.PathLike | None = None, *,
                      progress: bool = True) -> dict:
    """Match every real frame of ``gif_path`` (``3dshapes.gif``) with its closest synthetic image.

    For each frame the likely floor, wall and object hues are read off its colours (a few candidates
    each), and every geometry (scale x shape x orientation, 480) is composed with those hues; the
    synthetic image with the smallest mean absolute pixel error wins.

    Returns ``frames``, ``mean_abs_error`` (0..255 per channel, over all frames), ``median_abs_error``,
    ``max_abs_error``, ``worst_frame``, the per-frame ``abs_error`` and matched ``factors`` (classes),
    and ``region_abs_error`` (mean error on sky / wall / floor / object pixels of the synthetic match).
    ``out_png``: real | synthetic | difference for every frame, labelled with the matched factors.
    """
    frames = reference_frames(gif_path)
    if out_png is not None:
        check_output_path(out_png, ".png")
    configs = int(np.prod(FACTOR_SIZES[3:]))
    with ProgressReporter("render 3dshapes geometry", configs, enabled=progress) as reporter:
        maps = render.render_all_maps(progress=reporter.update).reshape(configs, *IMAGE_SHAPE[:2], render.NUM_MAPS)
    hues = render.hue_rgb(render.HUES)
    errors, matches, synthetic = [], [], []
    with ProgressReporter("match frames", len(frames), enabled=progress) as reporter:
        for frame in frames:
            target = frame.astype(np.float32)
            best = (np.inf, None, None)
            floors, walls, objects = _candidate_hues(frame)
            for f in floors:
                for w in walls:
                    for o in objects:
                        images = render.compose(maps, hues[f], hues[w], hues[o])
                        err = np.abs(images.astype(np.float32) - target).mean(axis=(1, 2, 3))
                        k = int(err.argmin())
                        if err[k] < best[0]:
                            best = (float(err[k]), (f, w, o, *np.unravel_index(k, FACTOR_SIZES[3:])), images[k])
            errors.append(best[0])
            matches.append([int(c) for c in best[1]])
            synthetic.append(best[2])
            reporter.update(1, error=best[0])
    errors_arr = np.array(errors)
    synthetic_arr = np.stack(synthetic)
    regions = _region_errors(frames, synthetic_arr, maps, matches)
    result = {
        "frames": int(len(frames)),
        "mean_abs_error": float(errors_arr.mean()),
        "median_abs_error": float(np.median(errors_arr)),
        "max_abs_error": float(errors_arr.max()),
        "worst_frame": int(errors_arr.argmax()),
        "region_abs_error": regions,
        "abs_error": [round(float(e), 2) for e in errors_arr],
        "factors": matches,
        "factor_names": list(FACTOR_NAMES),
    }
    if out_png is not None:
        _write_comparison_png(frames, synthetic_arr, errors_arr, matches, out_png, result)
    return result


def _region_errors(frames, synthetic, maps, matches) -> dict:
    """Mean absolute error on the pixels the synthetic match shows as mostly sky, wall, floor or object."""
    totals = {name: [0.0, 0] for name in ("sky", "wall", "floor", "object")}
    channel = {"sky": render.K_SKY, "wall": render.K_WALL, "floor": render.K_FLOOR, "object": render.K_OBJECT}
    for frame, image, factors in zip(frames, synthetic, matches):
        config = int(np.dot(factors[3:], STRIDES[3:]))
        coverage = maps[config]
        # The dominant surface of a pixel: the coefficient map with the largest share (sky is 0/1).
        dominant = np.argmax(np.stack([coverage[..., channel[n]] for n in totals], -1), -1)
        diff = np.abs(frame.astype(np.float32) - image.astype(np.float32)).mean(-1)
        for number, name in enumerate(totals):
            mask = dominant == number
            totals[name][0] += float(diff[mask].sum())
            totals[name][1] += int(mask.sum())
    return {name: round(total / count, 2) if count else None for name, (total, count) in totals.items()}


def _write_comparison_png(real, synthetic, errors, matches, out_png, result) -> None:
    """Tiles of [real | synthetic | |difference| x 2], each labelled with the frame and matched factors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from disent_bench._io import atomic_path

    size = render.IMAGE_SIZE
    count = len(real)
    columns = 6
    rows = -(-count // columns)
    gap, label_h = 2, 14
    tile_w = 3 * size + 2 * gap
    canvas = np.full((rows * (size + label_h), columns * (tile_w + 8), 3), 30, dtype=np.uint8)
    for number in range(count):
        r, c = divmod(number, columns)
        y = r * (size + label_h) + label_h - 2
        x = c * (tile_w + 8) + 4
        diff = np.clip(np.abs(real[number].astype(np.int16) - synthetic[number].astype(np.int16)) * 2, 0, 255)
        for panel, image in enumerate((real[number], synthetic[number], diff.astype(np.uint8))):
            px = x + panel * (size + gap)
            canvas[y:y + size, px:px + size] = image
    scale = 3  # draw each pixel as 3x3 so the 64x64 images are readable
    dpi = 100
    height, width = canvas.shape[0] * scale, canvas.shape[1] * scale
    fig = plt.figure(figsize=(width / dpi, height / dpi + 0.4), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, height / (height + 0.4 * dpi)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for number in range(count):
        r, c = divmod(number, columns)
        f, w, o, sc, sh, ori = matches[number]
        label = (f"#{number} err {errors[number]:.1f}  hues {render.HUES[f]:.1f}/{render.HUES[w]:.1f}/"
                 f"{render.HUES[o]:.1f} {SHAPE_NAMES[sh]} s{render.SCALES[sc]:.2f} {render.ORIENTATIONS[ori]:+.0f}deg")
        ax.text(c * (tile_w + 8) + 4, r * (size + label_h) + label_h - 4, label, color="white", fontsize=7)
    fig.suptitle("3D Shapes: real (3dshapes.gif) | closest synthetic | |difference| x2     "
                 f"mean abs error {result['mean_abs_error']:.2f} / 255 over {result['frames']} frames",
                 fontsize=11, y=0.998)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


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
