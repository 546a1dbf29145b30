"""The dSprites variants of Locatello et al. (2019): ``color_dsprites``, ``noisy_dsprites`` and
``scream_dsprites``, as disentanglement_lib's ``dsprites.py`` makes them.

Each is dSprites (its five factors shape, scale, orientation, posX, posY; the same official or synthetic
images) seen as a 64x64 RGB image with randomness that is drawn afresh for every observation and is not a
factor, so equal factors give different images:

* **color**: the white sprite times one colour per image, each channel uniform in [0.5, 1); black background.
* **noisy**: uniform [0, 1) noise on every pixel and channel, plus the sprite, clipped at 1 (a white sprite
  on noise).
* **scream**: a random 64x64 crop of *The Scream* (shrunk to fit 350 x 274, :mod:`~disent_bench.data.scream`),
  top in [0, H - 64) and left in [0, W - 64), plus one random RGB colour uniform in [0, 1)^3, halved; pixels
  of the sprite become 1 - background.

The randomness of an observation comes from its 128-bit observation key
(:class:`~disent_bench.data.base.NuisanceData`), so it is reproducible from the seed that drew it.
Images are computed in float32 in [0, 1] (the reference uses float64; the values agree to float32
precision), never stored.

Source: the dSprites source (official or synthetic) and, for scream, the painting's: ``official`` needs the
official dSprites file (and the painting), ``synthetic`` uses the synthetic dSprites (and the synthetic
painting), ``auto`` takes official when every official file is present, else synthetic with one warning.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

from disent_bench.data import dsprites, scream
from disent_bench.data.base import GroundTruthData, NuisanceData, observation_rngs
from disent_bench.data.spec import DatasetSpec, OfficialFile

__all__ = ["VariantData", "ColorDSprites", "NoisyDSprites", "ScreamDSprites", "specs", "VARIANTS"]

IMAGE_SHAPE = (dsprites.IMAGE_SIZE, dsprites.IMAGE_SIZE, 3)


class VariantData(NuisanceData):
    """dSprites (a bit-packed :class:`GroundTruthData`) seen through per-observation randomness."""

    variant = ""

    def __init__(self, base: GroundTruthData, *, name: str | None = None, checksum: str | None = None) -> None:
        if not base.packed_bits or base.num_channels != 1:
            raise ValueError("a dSprites variant is built on the bit-packed, single-channel dSprites store")
        super().__init__(name or f"{self.variant}_dsprites", base.source, base.factor_names, base.factor_sizes,
                         base._store, packed_bits=True, checksum=checksum or base.checksum, path=base.path,
                         factor_values=base.factor_values)
        self.image_shape = IMAGE_SHAPE
        self.base = base
        self.integrity = base.integrity  # the images are the base's file: its check is theirs
        if hasattr(base, "shape_names"):
            self.shape_names = base.shape_names

    def sprites(self, indices: np.ndarray) -> np.ndarray:
        """The binary sprites of ``indices`` as float32 ``(n, 64, 64)`` 0/1."""
        return np.unpackbits(self._store[np.asarray(indices, dtype=np.int64)], axis=-1).astype(np.float32)


class ColorDSprites(VariantData):
    variant = "color"

    def colours(self, keys: np.ndarray) -> np.ndarray:
        return np.array([rng.uniform(0.5, 1.0, 3) for rng in observation_rngs(keys)], dtype=np.float32).reshape(-1, 3)

    def observe(self, indices: np.ndarray, keys: np.ndarray) -> np.ndarray:
        return self.sprites(indices)[..., None] * self.colours(keys)[:, None, None, :]


class NoisyDSprites(VariantData):
    variant = "noisy"

    def observe(self, indices: np.ndarray, keys: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *IMAGE_SHAPE), dtype=np.float32)
        for k, rng in enumerate(observation_rngs(keys)):
            rng.random(IMAGE_SHAPE, dtype=np.float32, out=out[k])
        out += self.sprites(indices)[..., None]
        return np.minimum(out, np.float32(1.0), out=out)


class ScreamDSprites(VariantData):
    variant = "scream"

    def __init__(self, base: GroundTruthData, painting: np.ndarray, *, checksum: str | None = None) -> None:
        super().__init__(base, checksum=checksum)
        painting = np.asarray(painting, dtype=np.float32)
        if painting.ndim != 3 or painting.shape[2] != 3 or min(painting.shape[:2]) <= scream.CROP:
            raise ValueError(f"the painting must be (H, W, 3) with H, W > {scream.CROP}, got {painting.shape}")
        self.painting = painting

    def crops(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per observation: (top, left) of the crop and the colour added to it."""
        height, width = self.painting.shape[:2]
        corners, colours = [], []
        for rng in observation_rngs(keys):
            corners.append((rng.integers(0, height - scream.CROP), rng.integers(0, width - scream.CROP)))
            colours.append(rng.uniform(0.0, 1.0, 3))
        return np.array(corners, dtype=np.int64).reshape(-1, 2), np.array(colours, dtype=np.float32).reshape(-1, 3)

    def observe(self, indices: np.ndarray, keys: np.ndarray) -> np.ndarray:
        corners, colours = self.crops(keys)
        size = scream.CROP
        out = np.empty((len(indices), *IMAGE_SHAPE), dtype=np.float32)
        for k, (top, left) in enumerate(corners):
            out[k] = self.painting[top:top + size, left:left + size]
        out += colours[:, None, None, :]
        out *= np.float32(0.5)
        sprite = self.sprites(indices)[..., None] > 0
        return np.where(sprite, np.float32(1.0) - out, out)


VARIANTS = {"color": ColorDSprites, "noisy": NoisyDSprites, "scream": ScreamDSprites}


def _combined_checksum(*parts: str | None) -> str | None:
    if any(p is None for p in parts):
        return None
    return hashlib.sha256("+".join(parts).encode()).hexdigest()


def _derive(variant: str):
    def derive(source: str, data_dir=None, progress: bool = True) -> VariantData:
        from disent_bench import data  # local: the package's face imports this module (a cycle otherwise)

        name = f"{variant}_dsprites"
        spec = data.get_spec(name)
        if source == "auto":
            missing = [f.filename for f in spec.files if not (data.data_home(data_dir) / f.filename).is_file()]
            source = "official" if not missing else "synthetic"
            if missing:
                warnings.warn(f"{name}: no official {', '.join(missing)} in {data.data_home(data_dir)}; using the "
                              f"SYNTHETIC dSprites{' and painting' if variant == 'scream' else ''} (results will be "
                              f"labelled synthetic). Run `disent-bench data fetch {name}` for the official data.",
                              data.SyntheticDataWarning, stacklevel=3)
        if source == "official":
            data.verify_official(name, data_dir)  # every file, named after the variant when one is missing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", data.SyntheticDataWarning)
            base = data.get_dataset("dsprites", source, data_dir, progress=progress)
        if variant != "scream":
            return VARIANTS[variant](base)
        if source == "official":
            painting_sha = data.verify_file(scream.OFFICIAL, data_dir)
            painting = scream.load_painting(data.data_home(data_dir) / scream.OFFICIAL.filename)
        else:
            painting_sha = f"synthetic-painting-v{scream.SYNTHETIC_VERSION}"
            painting = scream.synthetic_painting()
        return ScreamDSprites(base, painting, checksum=_combined_checksum(base.checksum, painting_sha))
    return derive


def _spec(variant: str) -> DatasetSpec:
    files: tuple[OfficialFile, ...] = dsprites.SPEC.files + ((scream.OFFICIAL,) if variant == "scream" else ())
    what = {"color": "a random colour per image", "noisy": "a uniform noise background",
            "scream": "a random crop of The Scream, colour-shifted, sprite inverted over it"}[variant]
    return DatasetSpec(
        name=f"{variant}_dsprites",
        factor_names=dsprites.FACTOR_NAMES,
        factor_sizes=dsprites.FACTOR_SIZES,
        image_shape=IMAGE_SHAPE,
        packed_bits=False,
        renderer_version=dsprites.SPEC.renderer_version,
        official_filename=dsprites.OFFICIAL_FILENAME,
        official_files=files,
        factor_values=dsprites.FACTOR_VALUES,
        derive=_derive(variant),
        description=f"{variant} dSprites (Locatello et al. 2019): dSprites in RGB with {what}",
        nuisance={"color": "colour", "noisy": "noise background", "scream": "painting crop, colour"}[variant],
    )


def specs() -> tuple[DatasetSpec, ...]:
    """The three variants' specs, built from dSprites' current spec (its file, checksum and URL)."""
    return tuple(_spec(variant) for variant in VARIANTS)

