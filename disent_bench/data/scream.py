"""The Scream painting behind ``scream_dsprites``: the official file, its checks, and an offline stand-in.

Official: Edvard Munch's *The Scream* (1893, public domain) from Wikimedia Commons, the file
disentanglement_lib's ``bin/dlib_download_data`` fetches. No checksum is published, so ``data fetch
scream`` checks that it decodes as an RGB image large enough to fill the reference's 350 x 274 box (its
exact size is not documented anywhere we could read) and records its sha256 in the stamp beside it.

As the reference: the painting is shrunk once with PIL ``thumbnail`` to fit within 350 wide by 274 high
(aspect kept, Pillow's default filter), then / 255.

Synthetic: :func:`synthetic_painting` paints a deterministic, painting-like texture of swirling
orange-red sky bands over a blue-green fjord and a dark diagonal bridge (no randomness: it is a
function of its version). Datasets built on it are labelled synthetic everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from disent_bench.data.spec import OfficialFile
from disent_bench.errors import UserError

__all__ = ["OFFICIAL", "check_painting", "load_painting", "synthetic_painting", "THUMBNAIL_BOX", "SYNTHETIC_VERSION"]

OFFICIAL_FILENAME = "The_Scream.jpg"
OFFICIAL_URL = "https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg"
THUMBNAIL_BOX = (350, 274)  # width, height, as the reference's thumbnail((350, 274, 3))
CROP = 64
SYNTHETIC_VERSION = 1
# The shrunk painting must leave room for 64x64 crops; the original must be at least this big on each side.
_MIN_SIDE = 128


def _open(path: Path):
    try:
        image = Image.open(path)
        image.load()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise UserError(f"{path}: does not decode as an image ({exc}); delete it and run "
                        "`disent-bench data fetch scream`") from None
    return image


def check_painting(path: Path) -> None:
    """Verify the painting by format: it decodes, is RGB, and is large enough on both sides."""
    image = _open(Path(path))
    with image:
        if image.mode != "RGB":
            raise UserError(f"{path}: the painting is a {image.mode} image; expected an RGB JPEG")
        width, height = image.size
    if min(width, height) < _MIN_SIDE:
        raise UserError(f"{path}: the painting is {width}x{height}; expected at least {_MIN_SIDE} pixels on each "
                        f"side (the reference shrinks it to fit {THUMBNAIL_BOX[0]}x{THUMBNAIL_BOX[1]})")


def load_painting(path: Path) -> np.ndarray:
    """The painting as the reference uses it: thumbnail within 350 x 274, float32 (H, W, 3) in [0, 1]."""
    check_painting(path)
    image = _open(Path(path))
    with image:
        image.thumbnail(THUMBNAIL_BOX)
        painting = np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    if min(painting.shape[:2]) <= CROP:
        raise UserError(f"{path}: shrunk to {painting.shape[1]}x{painting.shape[0]}, too small for {CROP}x{CROP} crops")
    return painting


def synthetic_painting(height: int = 274, width: int = 219) -> np.ndarray:
    """A painting-like texture float32 (height, width, 3) in [0, 1] (deterministic)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    v, u = y / height, x / width
    # Sky: wavy bands, warm colours.
    swirl = np.sin(18.0 * v + 2.5 * np.sin(6.0 * u + 3.0 * v) + 1.5 * np.sin(11.0 * u * v))
    sky = np.stack([0.85 + 0.15 * swirl, 0.45 + 0.25 * swirl, 0.15 + 0.1 * np.cos(9.0 * u)], -1)
    # Fjord and hills: cooler swirls lower down.
    eddy = np.sin(14.0 * np.hypot(u - 0.7, v - 0.55) * 6.0 + 4.0 * u)
    fjord = np.stack([0.15 + 0.1 * eddy, 0.3 + 0.2 * eddy, 0.55 + 0.25 * eddy], -1)
    horizon = 0.42 + 0.06 * np.sin(7.0 * u)
    blend = 1.0 / (1.0 + np.exp(-(v - horizon) * 40.0))
    image = (1 - blend)[..., None] * sky + blend[..., None] * fjord
    # The bridge: a dark diagonal band with railings, bottom left to the right edge.
    bridge = np.abs((v - 0.62) - 0.55 * (0.9 - u)) < 0.07
    rails = bridge & (np.sin(90.0 * (u + v)) > 0.6)
    image[bridge] = image[bridge] * 0.35 + np.array([0.35, 0.22, 0.12]) * 0.65
    image[rails] = np.array([0.1, 0.07, 0.05])
    return np.clip(image, 0.0, 1.0).astype(np.float32)


OFFICIAL = OfficialFile(OFFICIAL_FILENAME, OFFICIAL_URL, check_format=check_painting)
