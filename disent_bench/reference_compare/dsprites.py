"""dSprites against the official reference frames: how close the synthetic renderer comes to the real images.

The reference is ``dsprites.gif`` from the official repository (google-deepmind/dsprites-dataset; the
team keeps a copy in ``shared/reference/``): 320 real 64x64 frames of the official set. Each frame is
matched with the synthetic image (:func:`disent_bench.data.dsprites.render`) that overlaps it best, and
the agreement is the intersection over union (IoU) of their sprite pixels. This comparison is what the
renderer's geometry in :mod:`disent_bench.data.dsprites` was fitted to: mean IoU 0.977 over the 320
frames, 0.933 at worst. :func:`compare_reference` behind ``disent-bench data compare dsprites`` also
draws real | synthetic | difference for every frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from disent_bench._io import atomic_path, check_output_path
from disent_bench.data.dsprites import FACTOR_SIZES, FACTOR_VALUES, IMAGE_SIZE, render, render_block
from disent_bench.errors import UserError
from disent_bench.progress import ProgressReporter

__all__ = ["compare_reference", "reference_frames"]


def reference_frames(gif_path: str | os.PathLike) -> np.ndarray:
    """The frames of a dSprites reference gif as a bool array ``(n, 64, 64)`` (True: sprite)."""
    gif_path = Path(gif_path)
    try:
        with Image.open(gif_path) as image:
            frames = []
            for number in range(getattr(image, "n_frames", 1)):
                image.seek(number)
                frames.append(np.asarray(image.convert("L")) > 127)
    except (OSError, UnidentifiedImageError) as exc:
        raise UserError(f"{gif_path}: cannot read the reference gif ({exc})") from None
    frames = np.stack(frames)
    if frames.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise UserError(f"{gif_path}: frames are {frames.shape[2]}x{frames.shape[1]}, dSprites frames are 64x64")
    return frames


def _sprite_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (shape, scale, orientation): pixel count and centroid offset from the sprite centre."""
    keys, areas, offsets = [], [], []
    middle = np.array([15])
    centre = 16 + 32 * 15 / 31
    coords = np.arange(IMAGE_SIZE) + 0.5
    for shape in range(3):
        for scale in range(FACTOR_SIZES[1]):
            for orientation in range(FACTOR_SIZES[2]):
                image = np.unpackbits(render_block(shape, FACTOR_VALUES[1][scale], FACTOR_VALUES[2][orientation],
                                                   middle, middle)[0, 0], axis=-1)
                area = image.sum()
                keys.append((shape, scale, orientation))
                areas.append(area)
                offsets.append(((image.sum(0) @ coords) / area - centre, (image.sum(1) @ coords) / area - centre))
    return np.array(keys), np.array(areas, dtype=float), np.array(offsets)


def _best_match(frame: np.ndarray, table) -> tuple[float, np.ndarray]:
    """The synthetic image closest to ``frame`` by IoU, searched near the factors its moments suggest."""
    keys, areas, offsets = table
    area = frame.sum()
    if area == 0:
        return 0.0, np.zeros(5, dtype=np.int64)
    coords = np.arange(IMAGE_SIZE) + 0.5
    cx = (frame.sum(0) @ coords) / area
    cy = (frame.sum(1) @ coords) / area
    best_iou, best = -1.0, None
    candidates = np.flatnonzero(np.abs(areas - area) <= 0.25 * areas)
    for number in candidates:
        shape, scale, orientation = keys[number]
        # Position classes that put the sprite's centroid where the frame's is, and their neighbours.
        kx = int(round((cx - offsets[number, 0] - 16) * 31 / 32))
        ky = int(round((cy - offsets[number, 1] - 16) * 31 / 32))
        pos_x = np.arange(max(kx - 1, 0), min(kx + 2, 32))
        pos_y = np.arange(max(ky - 1, 0), min(ky + 2, 32))
        if not len(pos_x) or not len(pos_y):
            continue
        block = render_block(int(shape), FACTOR_VALUES[1][scale], FACTOR_VALUES[2][orientation], pos_x, pos_y)
        images = np.unpackbits(block, axis=-1).astype(bool)  # (nx, ny, 64, 64)
        inter = (images & frame).sum(axis=(2, 3))
        union = (images | frame).sum(axis=(2, 3))
        iou = inter / union
        at = np.unravel_index(np.argmax(iou), iou.shape)
        if iou[at] > best_iou:
            best_iou = float(iou[at])
            best = np.array([shape, scale, orientation, pos_x[at[0]], pos_y[at[1]]], dtype=np.int64)
    if best is None:  # no sprite of a similar size at all
        return 0.0, np.zeros(5, dtype=np.int64)
    return best_iou, best


def compare_reference(gif_path: str | os.PathLike, out_png: str | os.PathLike | None = None, *,
                      progress: bool = True) -> dict:
    """Match every official frame of ``gif_path`` with its best synthetic image and report the IoU.

    For each frame the search starts from its pixel count (which shapes and scales fit) and centroid
    (which positions fit each orientation), then tries the 3x3 neighbouring positions of every
    candidate: a few hundred renders per frame instead of all 737,280 images.

    Returns ``frames``, ``mean_iou``, ``min_iou``, ``median_iou``, ``frames_below_0.9``,
    ``worst_frame`` plus per-frame lists ``iou`` and ``factors`` (the matched classes).
    ``out_png``: a picture of real | synthetic | difference for every frame.
    """
    frames = reference_frames(gif_path)
    if out_png is not None:
        check_output_path(out_png, ".png")
    table = _sprite_table()
    ious, matches = [], []
    with ProgressReporter("match frames", len(frames), enabled=progress) as reporter:
        for frame in frames:
            iou, factors = _best_match(frame, table)
            ious.append(iou)
            matches.append(factors)
            reporter.update(1)
    ious = np.array(ious)
    result = {
        "frames": int(len(frames)),
        "mean_iou": float(ious.mean()),
        "min_iou": float(ious.min()),
        "median_iou": float(np.median(ious)),
        "frames_below_0.9": int((ious < 0.9).sum()),
        "worst_frame": int(np.argmin(ious)),
        "iou": [round(float(v), 4) for v in ious],
        "factors": [m.tolist() for m in matches],
    }
    if out_png is not None:
        synthetic = render(np.stack(matches)).astype(bool)
        _write_comparison_png(frames, synthetic, ious, out_png, result)
    return result


def _write_comparison_png(real: np.ndarray, synthetic: np.ndarray, ious: np.ndarray, out_png, result) -> None:
    """Tiles of [real | synthetic | difference] (difference: white both, red real only, cyan synthetic only)."""
    # Local: matplotlib.pyplot takes ~1.2 s to import (-X importtime, after this module's imports, 2-core
    # machine), which a comparison without --out never needs.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(real)
    columns = 8
    rows = -(-count // columns)
    gap = 2
    tile_w = 3 * IMAGE_SIZE + 2 * gap
    canvas = np.full((rows * (IMAGE_SIZE + 12), columns * (tile_w + 8), 3), 40, dtype=np.uint8)
    for number in range(count):
        r, c = divmod(number, columns)
        y = r * (IMAGE_SIZE + 12) + 10
        x = c * (tile_w + 8) + 4
        for panel, image in enumerate((real[number], synthetic[number])):
            px = x + panel * (IMAGE_SIZE + gap)
            canvas[y:y + IMAGE_SIZE, px:px + IMAGE_SIZE] = np.where(image[..., None], 255, 0)
        diff = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        diff[real[number] & synthetic[number]] = (255, 255, 255)
        diff[real[number] & ~synthetic[number]] = (255, 60, 60)
        diff[~real[number] & synthetic[number]] = (60, 220, 255)
        px = x + 2 * (IMAGE_SIZE + gap)
        canvas[y:y + IMAGE_SIZE, px:px + IMAGE_SIZE] = diff
    dpi = 100
    fig = plt.figure(figsize=(canvas.shape[1] / dpi, canvas.shape[0] / dpi + 0.5), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, canvas.shape[0] / (canvas.shape[0] + 0.5 * dpi)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for number in range(count):
        r, c = divmod(number, columns)
        ax.text(c * (tile_w + 8) + 4, r * (IMAGE_SIZE + 12) + 8, f"#{number} IoU {ious[number]:.3f}",
                color="yellow" if ious[number] < 0.9 else "white", fontsize=6)
    fig.suptitle(f"dSprites: real | synthetic | difference (red: real only, cyan: synthetic only)   "
                 f"mean IoU {result['mean_iou']:.4f}, min {result['min_iou']:.4f}", fontsize=10, y=0.998)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
