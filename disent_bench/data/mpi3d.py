"""MPI3D (Gondal et al., NeurIPS 2019, "On the Transfer of Inductive Bias from Simulation to the Real World:
a New Disentanglement Dataset"): a robot arm moving an object, in four renderings.

``mpi3d_toy`` (simple rendering), ``mpi3d_realistic`` (realistic rendering) and ``mpi3d_real`` (camera
photographs) hold 1,036,800 RGB 64x64 images each; ``mpi3d_complex`` (photographs of real everyday
objects) holds 460,800. Row-major, the last factor fastest::

    object_color 6 x object_shape 6 x object_size 2 x camera_height 3 x background_color 3
        x horizontal_axis 40 x vertical_axis 40          (complex: colour 4 and shape 4)

Official files (https://github.com/rr-learning/disentanglement_dataset, CC BY 4.0): ``mpi3d_<kind>.npz``
with one uint8 array ``images`` (N, 64, 64, 3). The factor sizes are inferred from N (1,036,800: 6 x 6;
460,800: 4 x 4); any other N is refused. disentanglement_lib's ``mpi3d.py`` uses 4 x 4 for toy and
realistic, which fitted the 2019 challenge files with held-out values; on today's 6 x 6 files those
sizes index the wrong images, so they are never used. The current copies have no published checksum:
``data fetch`` verifies them by format (npz, key, dtype, shape, image count) and records our sha256.

Memory: 12.7 GB of uint8 (complex 5.7 GB). A stored (uncompressed) npz is memory-mapped where it lies;
a compressed one is streamed once into a memory-mapped cache file (:mod:`disent_bench.data.store`).
As in the reference, images are used as they are (no resize), all seven factors are latent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.data.spec import DatasetSpec, LoadContext, OfficialFile
from disent_bench.data.store import cached_store, map_npz_member, npz_member_info, stream_npz_member
from disent_bench.errors import UserError
from disent_bench.progress import ProgressReporter

__all__ = ["SPECS", "FACTOR_NAMES", "factor_sizes_for", "load_npz", "check_npz", "VALUE_NAMES"]

FACTOR_NAMES = ("object_color", "object_shape", "object_size", "camera_height", "background_color",
                "horizontal_axis", "vertical_axis")
SIZES_6X6 = (6, 6, 2, 3, 3, 40, 40)
SIZES_4X4 = (4, 4, 2, 3, 3, 40, 40)
IMAGE_SHAPE = (64, 64, 3)
# Image count -> factor sizes: the only two layouts the current files have.
SIZES_BY_COUNT = {int(np.prod(SIZES_6X6)): SIZES_6X6, int(np.prod(SIZES_4X4)): SIZES_4X4}

_COMMON_NAMES = {
    "object_size": ("small", "large"),
    "camera_height": ("top", "center", "bottom"),
    "background_color": ("purple", "sea green", "salmon"),
}
VALUE_NAMES = {
    "6x6": {"object_color": ("white", "green", "red", "blue", "brown", "olive"),
            "object_shape": ("cone", "cube", "cylinder", "hexagonal", "pyramid", "sphere"), **_COMMON_NAMES},
    "4x4": {"object_color": ("yellow", "green", "olive", "red"),
            "object_shape": ("coffee-cup", "tennis-ball", "croissant", "beer-cup"), **_COMMON_NAMES},
}

_HF = "https://huggingface.co/datasets/waleedgondal/mpi3d/resolve/main/"
KINDS = {
    # name: (file name, URL, factor sizes, description)
    "mpi3d_toy": ("mpi3d_toy.npz", _HF + "mpi3d_toy.npz", SIZES_6X6, "simple OpenGL rendering"),
    "mpi3d_realistic": ("mpi3d_realistic.npz", _HF + "mpi3d_realistic.npz", SIZES_6X6, "realistic rendering"),
    "mpi3d_real": ("mpi3d_real.npz", _HF + "mpi3d_real.npz", SIZES_6X6, "camera photographs"),
    "mpi3d_complex": ("mpi3d_complex.npz",
                      "https://drive.google.com/uc?export=download&id=1Tp8eTdHxgUMtsZv5uAoYAbJR1BOa_OQm",
                      SIZES_4X4, "photographs of everyday objects"),
}
# Decompress a compressed npz into the cache in blocks of this many images (48 MiB).
_BLOCK_IMAGES = 4096


def factor_sizes_for(count: int, path: Path | str = "images") -> tuple[int, ...]:
    """The factor sizes of an MPI3D file with ``count`` images (never the reference's stale sizes)."""
    if count not in SIZES_BY_COUNT:
        layouts = ", ".join(f"{n:,} ({'x'.join(map(str, s))})" for n, s in SIZES_BY_COUNT.items())
        raise UserError(f"{path}: 'images' holds {count:,} images; MPI3D files hold {layouts}")
    return SIZES_BY_COUNT[count]


def _check_member(path: Path, member) -> None:
    if member.dtype != np.uint8 or len(member.shape) != 4 or member.shape[1:] != IMAGE_SHAPE or member.fortran:
        raise UserError(f"{path}: 'images' is {member.dtype} {member.shape}"
                        f"{' (Fortran order)' if member.fortran else ''}; expected uint8 (N, 64, 64, 3) in C order")


def check_npz(path: Path, expected_count: int) -> None:
    """Verify an MPI3D npz by format (for ``data fetch``): key ``images``, uint8 (N, 64, 64, 3), N images."""
    member = npz_member_info(Path(path), "images")
    _check_member(Path(path), member)
    if member.shape[0] != expected_count:
        raise UserError(f"{path}: 'images' holds {member.shape[0]:,} images, this MPI3D file has {expected_count:,}")


def load_npz(path: str | Path, name: str = "mpi3d_toy", *, factor_sizes: tuple[int, ...] | None = None,
             cache_dir: Path | None = None, checksum: str | None = None, progress: bool = True) -> GroundTruthData:
    """Load an MPI3D npz as a memory-mapped :class:`GroundTruthData`.

    ``factor_sizes`` defaults to the sizes inferred from the image count; a reduced grid written the
    same way (tests) passes its own. A stored npz is mapped in place; a compressed one is converted once
    into ``cache_dir`` (keyed by ``checksum``), and held in memory when no ``cache_dir`` is given.
    """
    path = Path(path)
    member = npz_member_info(path, "images")
    _check_member(path, member)
    count = member.shape[0]
    sizes = tuple(factor_sizes) if factor_sizes is not None else factor_sizes_for(count, path)
    if int(np.prod(sizes)) != count:
        raise UserError(f"{path}: 'images' holds {count:,} images, the grid {sizes} needs {int(np.prod(sizes)):,}")
    if not member.compressed:
        store = map_npz_member(path, member)
    else:
        def fill(out: np.ndarray) -> None:
            with ProgressReporter(f"convert {name}", count, enabled=progress) as reporter:
                stream_npz_member(path, "images", out, block_rows=_BLOCK_IMAGES, progress_update=reporter.update)

        if cache_dir is None:
            store = np.empty(member.shape, dtype=np.uint8)
            fill(store)
        else:
            store = cached_store(cache_dir, name, checksum or "nochecksum", member.shape, fill)
    layout = "6x6" if sizes[0] == 6 else "4x4"
    dataset = GroundTruthData(name, "official", FACTOR_NAMES, sizes, store, path=str(path), checksum=checksum,
                              factor_values=tuple(np.arange(n, dtype=np.float64) for n in sizes))
    dataset.value_names = {k: v for k, v in VALUE_NAMES[layout].items()
                           if len(v) == sizes[FACTOR_NAMES.index(k)]}
    return dataset


def _opener(name: str, filename: str):
    def open_official(context: LoadContext) -> GroundTruthData:
        return load_npz(context.paths[filename], name, cache_dir=context.cache_dir, checksum=context.checksum,
                        progress=context.progress)
    return open_official


def _spec(name: str) -> DatasetSpec:
    filename, url, sizes, what = KINDS[name]
    count = int(np.prod(sizes))
    return DatasetSpec(
        name=name,
        factor_names=FACTOR_NAMES,
        factor_sizes=sizes,
        image_shape=IMAGE_SHAPE,
        packed_bits=False,
        renderer_version=0,
        official_filename=filename,
        official_files=(OfficialFile(filename, url, check_format=lambda p, n=count: check_npz(p, n)),),
        open_official=_opener(name, filename),
        factor_values=tuple(np.arange(n, dtype=np.float64) for n in sizes),
        description=f"MPI3D {name.removeprefix('mpi3d_')} (Gondal et al. 2019): {count:,} RGB 64x64 images, {what}",
        citation="https://github.com/rr-learning/disentanglement_dataset",
    )


SPECS = tuple(_spec(name) for name in KINDS)
