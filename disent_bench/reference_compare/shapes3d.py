"""3D Shapes against the official reference frames: how close the synthetic look-alike comes to the real images.

The reference is ``3dshapes.gif`` from the official repository (https://github.com/deepmind/3d-shapes;
the team keeps a copy in ``shared/reference/``): 53 real frames, upscaled to ~227x226 with a 2-pixel
border, which :func:`reference_frames` crops and box-filters back to 64x64. :func:`compare_reference`
(behind ``disent-bench data compare shapes3d``) reads each frame's likely floor, wall and object hues off
its colours, composes every geometry of :mod:`disent_bench.data.shapes3d_render` with them, and keeps
the synthetic image with the smallest mean absolute pixel error; it reports that error overall and per
surface (sky, wall, floor, object) and draws real | synthetic | difference for every frame. The
lighting of :class:`disent_bench.data.shapes3d_render.Scene` was tuned so that these frames match closely.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.colors import rgb_to_hsv
from PIL import Image, ImageSequence

from disent_bench._io import atomic_path, check_output_path
from disent_bench.data import shapes3d_render as render
from disent_bench.data.shapes3d import FACTOR_NAMES, FACTOR_SIZES, IMAGE_SHAPE, SHAPE_NAMES, STRIDES
from disent_bench.errors import UserError
from disent_bench.progress import ProgressReporter

__all__ = ["compare_reference", "reference_frames"]


def reference_frames(gif_path: str | os.PathLike) -> np.ndarray:
    """The frames of the official ``3dshapes.gif`` as uint8 (n, 64, 64, 3).

    The GIF's frames are ~227x226 upscales with a 2-pixel white/grey border; the border is cropped and
    the rest box-filtered down to 64x64.
    """
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
    # Local: matplotlib.pyplot takes ~0.75 s to import (-X importtime, after this module's imports, which
    # include matplotlib.colors; 2-core machine), which a comparison without --out never needs.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
