"""Cars3D (Reed, Zhang, Zhang & Lee, NIPS 2015, "Deep Visual Analogy-Making"): 183 car models rendered
from 24 azimuths and 4 elevations, read as disentanglement_lib's ``cars3d.py`` reads it, except the order
of the objects.

Official file: ``nips2015-analogy-data.tar.gz`` (http://www.scottreed.info/, md5 from disent). Its
``data/cars/`` folder holds 183 MATLAB v5 files ``car_XXX_mesh.mat`` and ``list.txt``; each ``.mat`` has
``im``, uint8 (128, 128, 3, 24, 4): height, width, RGB, azimuth, elevation.

Factors, row-major (the object fastest): **elevation 4 x azimuth 24 x object 183** = 17,568 images, all
latent; index = (elevation * 24 + azimuth) * 183 + object. Every image goes through PIL ``thumbnail`` to
64x64 with Lanczos (the reference's ``ANTIALIAS``), values / 255, RGB.

Object order: the position of the file in ``list.txt``. The reference numbers objects by their position
in an unsorted directory listing, which can differ between machines; disent uses list.txt, and so do we.
The archive is read once, sequentially, and the resized store is cached in the data home
(:mod:`disent_bench.data.store`). Licence: none stated by the authors.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from disent_bench.data.base import GroundTruthData
from disent_bench.data.spec import DatasetSpec, LoadContext
from disent_bench.data.store import cached_store, open_cached
from disent_bench.errors import UserError
from disent_bench.progress import ProgressReporter

__all__ = ["SPEC", "FACTOR_NAMES", "FACTOR_SIZES", "load_archive", "mesh_images", "OFFICIAL_FILENAME"]

FACTOR_NAMES = ("elevation", "azimuth", "object")
FACTOR_SIZES = (4, 24, 183)
IMAGE_SIZE = 64
OFFICIAL_FILENAME = "nips2015-analogy-data.tar.gz"
OFFICIAL_URL = "http://www.scottreed.info/files/" + OFFICIAL_FILENAME
OFFICIAL_MD5 = "4e866a7919c1beedf53964e6f7a23686"
CARS_DIR = "data/cars"


def mesh_images(im: np.ndarray, where: str) -> np.ndarray:
    """One object's 96 images, 64x64 RGB uint8, in the order (elevation, azimuth) with azimuth fastest.

    ``im`` is the ``.mat``'s (H, W, 3, azimuth, elevation) array.
    """
    if im.dtype != np.uint8 or im.ndim != 5 or im.shape[2] != 3 or im.shape[3:] != (FACTOR_SIZES[1], FACTOR_SIZES[0]):
        raise UserError(f"{where}: 'im' is {im.dtype} {im.shape}; expected uint8 (H, W, 3, 24, 4) "
                        "(height, width, RGB, azimuth, elevation)")
    out = np.empty((FACTOR_SIZES[0], FACTOR_SIZES[1], IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for elevation in range(FACTOR_SIZES[0]):
        for azimuth in range(FACTOR_SIZES[1]):
            image = Image.fromarray(np.ascontiguousarray(im[:, :, :, azimuth, elevation]))
            image.thumbnail((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
            if image.size != (IMAGE_SIZE, IMAGE_SIZE):
                raise UserError(f"{where}: images are {im.shape[1]}x{im.shape[0]}; a square image is needed "
                                f"to become {IMAGE_SIZE}x{IMAGE_SIZE}")
            out[elevation, azimuth] = np.asarray(image)
    return out


def _load_mat(data: bytes, where: str) -> np.ndarray:
    import scipy.io  # local: 0.38 s to import, needed only to read the official .mat files

    try:
        contents = scipy.io.loadmat(io.BytesIO(data), variable_names=["im"])
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:
        raise UserError(f"{where}: not a readable MATLAB v5 file ({exc})") from None
    if "im" not in contents:
        raise UserError(f"{where}: no 'im' variable (the Cars3D meshes hold 'im' and 'mask')")
    return contents["im"]


def _list_order(text: str, names: list[str], where: str) -> list[str]:
    """The .mat names in list.txt order (a line may name the file with or without ``.mat``)."""
    by_stem = {name.removesuffix(".mat"): name for name in names}
    order = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry:
            continue
        stem = posixpath.basename(entry).removesuffix(".mat")
        if stem not in by_stem:
            raise UserError(f"{where}: line {number} names {entry!r}, which is not a .mat file in {CARS_DIR}/")
        order.append(by_stem[stem])
    if len(set(order)) != len(order):
        raise UserError(f"{where}: list.txt names a file twice")
    missing = sorted(set(names) - set(order))
    if missing:
        raise UserError(f"{where}: {len(missing)} .mat files are not in list.txt (e.g. {missing[0]})")
    return order


def load_archive(path: str | Path, *, cache_dir: Path | None = None, checksum: str | None = None,
                 progress: bool = True) -> GroundTruthData:
    """Load Cars3D from the official ``.tar.gz`` (or a reduced one written the same way: fewer objects)."""
    path = Path(path)
    if cache_dir is not None and checksum is not None:
        cached = open_cached(cache_dir, "cars3d", checksum)
        if cached is not None and cached[1].get("object_files"):  # converted before: map it, skip the archive
            return _dataset(cached[0], tuple(cached[1]["object_files"]), path, checksum)
    resized: dict[str, np.ndarray] = {}
    list_text = None
    try:
        archive = tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise UserError(f"{path}: not a readable tar archive ({exc})") from None
    try:
        with archive, ProgressReporter("read cars3d", FACTOR_SIZES[2], enabled=progress) as reporter:
            for member in archive:
                directory, name = posixpath.split(member.name.removeprefix("./"))
                if directory != CARS_DIR or not member.isfile():
                    continue
                if name == "list.txt":
                    list_text = archive.extractfile(member).read().decode("utf-8", errors="replace")
                elif name.endswith(".mat"):
                    where = f"{path}:{member.name}"
                    resized[name] = mesh_images(_load_mat(archive.extractfile(member).read(), where), where)
                    reporter.update(1)
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise UserError(f"{path}: the archive cannot be read to the end ({exc}); the file is damaged") from None
    if not resized:
        raise UserError(f"{path}: no {CARS_DIR}/*.mat files; is this nips2015-analogy-data.tar.gz?")
    if list_text is None:
        raise UserError(f"{path}: no {CARS_DIR}/list.txt, which fixes the order of the objects")
    order = _list_order(list_text, sorted(resized), f"{path}:{CARS_DIR}/list.txt")
    sizes = (FACTOR_SIZES[0], FACTOR_SIZES[1], len(order))
    shape = (int(np.prod(sizes)), IMAGE_SIZE, IMAGE_SIZE, 3)

    def fill(out: np.ndarray) -> None:
        view = out.reshape(sizes[0], sizes[1], sizes[2], IMAGE_SIZE, IMAGE_SIZE, 3)
        for number, name in enumerate(order):
            view[:, :, number] = resized[name]

    if cache_dir is not None:
        store = cached_store(cache_dir, "cars3d", checksum or "nochecksum", shape, fill,
                             meta={"object_files": list(order)})
    else:
        store = np.empty(shape, dtype=np.uint8)
        fill(store)
    return _dataset(store, tuple(order), path, checksum)


def _dataset(store: np.ndarray, order: tuple[str, ...], path: Path, checksum: str | None) -> GroundTruthData:
    sizes = (FACTOR_SIZES[0], FACTOR_SIZES[1], len(order))
    values = (np.arange(sizes[0], dtype=np.float64), 15.0 * np.arange(sizes[1]), np.arange(sizes[2], dtype=np.float64))
    dataset = GroundTruthData("cars3d", "official", FACTOR_NAMES, sizes, store, path=str(path), checksum=checksum,
                              factor_values=values)
    dataset.object_files = order
    return dataset


def open_official(context: LoadContext) -> GroundTruthData:
    return load_archive(context.paths[OFFICIAL_FILENAME], cache_dir=context.cache_dir, checksum=context.checksum,
                        progress=context.progress)


SPEC = DatasetSpec(
    name="cars3d",
    factor_names=FACTOR_NAMES,
    factor_sizes=FACTOR_SIZES,
    image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
    packed_bits=False,
    renderer_version=0,
    official_filename=OFFICIAL_FILENAME,
    official_url=OFFICIAL_URL,
    official_md5=OFFICIAL_MD5,
    open_official=open_official,
    description="Cars3D (Reed et al. 2015): 17,568 RGB 64x64 renders of 183 cars (objects in list.txt order)",
    citation="http://www.scottreed.info/",
)
