"""What a ground-truth dataset is made of: its factor grid, its official files and its synthetic renderer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from disent_bench.data.base import GroundTruthData


@dataclass(frozen=True)
class OfficialFile:
    """One file of a dataset's official release, as it is downloaded.

    A file is verified by its published checksum (``sha256``, else ``md5``) when one exists; a file
    without one (MPI3D's current copies, the Scream painting) is verified by ``check_format(path)``,
    which raises :class:`~disent_bench.errors.UserError` naming what is wrong, and our own sha256 is
    recorded in the stamp beside it.
    """

    filename: str
    url: str | None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    check_format: Callable[[Path], None] | None = None

    @property
    def has_checksum(self) -> bool:
        return self.sha256 is not None or self.md5 is not None


@dataclass(frozen=True)
class LoadContext:
    """What an official loader gets: the verified files, their checksum and where to keep converted stores."""

    name: str
    paths: dict[str, Path]   # file name -> path, every file of the release, verified
    checksum: str            # the release's checksum (one file: its sha256; several: a sha256 of theirs)
    cache_dir: Path          # the data home's ``cache/``: converted, memory-mappable stores
    progress: bool = True


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the suite knows about one dataset.

    ``load_official(path)`` (when the dataset has one official file) reads the official file (already
    checksum-verified) into a :class:`GroundTruthData`; datasets whose loader needs the whole release or
    the cache directory give ``open_official(context: LoadContext)`` instead. ``render_synthetic(out_path,
    progress)`` writes the synthetic store as an ``.npy`` file to ``out_path`` (same layout the dataset
    keeps in memory, see ``packed_bits``); datasets without a synthetic look-alike leave it None.
    Derived datasets (the dSprites variants) give ``derive(source, data_dir, progress)``, which builds
    the dataset from another one and decides its sources itself.
    """

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    image_shape: tuple[int, int, int]
    packed_bits: bool
    renderer_version: int
    render_synthetic: Callable[[Path, bool], None] | None = None
    # The official file; None for datasets that exist only as a rendering (e.g. the tiny smoke-test set).
    official_filename: str | None = None
    official_url: str | None = None
    official_size: int | None = None
    official_sha256: str | None = None
    official_md5: str | None = None
    load_official: Callable[[Path], GroundTruthData] | None = None
    factor_values: tuple[np.ndarray, ...] | None = None
    description: str = ""
    # Releases of several files (SmallNORB), or one file verified by format: listed here instead.
    official_files: tuple[OfficialFile, ...] = ()
    open_official: Callable[[LoadContext], GroundTruthData] | None = None
    derive: Callable[..., GroundTruthData] | None = None
    # What each observation draws besides the factors (empty: an index is one fixed image).
    nuisance: str = ""
    # Official datasets without a synthetic look-alike: the page to cite when saying where to get them.
    citation: str = ""

    @property
    def num_images(self) -> int:
        """Distinct factor combinations (= images for datasets without nuisance)."""
        return int(np.prod(self.factor_sizes))

    @property
    def files(self) -> tuple[OfficialFile, ...]:
        """Every file of the official release (empty for rendering-only datasets)."""
        if self.official_files:
            return self.official_files
        if self.official_filename is None:
            return ()
        return (OfficialFile(self.official_filename, self.official_url, self.official_size,
                             self.official_sha256, self.official_md5),)

    @property
    def has_synthetic(self) -> bool:
        return self.render_synthetic is not None or self.derive is not None
