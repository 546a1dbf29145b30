"""Ground-truth-factor datasets: official files and faithful synthetic renderers.

``get_dataset(name, source="auto", data_dir=None)`` returns a :class:`GroundTruthData`.

* ``source="official"``: the official file(s) from the data home (verified once: by the published
  checksum, or by format where none is published, with our sha256 recorded).
* ``source="synthetic"``: the offline renderer's version, cached in the data home. SmallNORB, Cars3D and
  MPI3D have no synthetic look-alike: asking for one is an error that names ``data fetch NAME``.
* ``source="auto"``: the official file when present, otherwise synthetic with one warning.

Datasets: dSprites and its color, noisy and scream variants, 3D Shapes, SmallNORB, Cars3D, MPI3D (toy,
realistic, real, complex) and the tiny dSprites smoke-test grid. Large official stores are converted once
into memory-mapped cache files (``<data home>/cache``, :mod:`disent_bench.data.store`).

The data home is ``--data-dir``, else ``$DISENT_BENCH_DATA``, else ``./datasets``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from disent_bench._io import atomic_path, atomic_write_json, file_digest
from disent_bench.data.base import GroundTruthData
from disent_bench.data.spec import DatasetSpec, LoadContext, OfficialFile
from disent_bench.data.store import advise
from disent_bench.errors import UserError

__all__ = ["GroundTruthData", "DatasetSpec", "get_dataset", "available", "get_spec", "data_home",
           "official_path", "official_paths", "synthetic_path", "verify_official", "verify_file",
           "generate_synthetic", "dataset_status", "fetchable", "get_file", "release_checksum"]

SOURCES = ("auto", "official", "synthetic")


class SyntheticDataWarning(UserWarning):
    """Emitted when ``source="auto"`` falls back to synthetic data."""


def _specs() -> dict[str, DatasetSpec]:
    # Local: the dataset modules use this package's face (get_spec, data_home) for derived datasets, so
    # importing them at the top would be an import cycle.
    from disent_bench.data import cars3d, dsprites, dsprites_variants, mpi3d, shapes3d, smallnorb

    return {spec.name: spec for spec in (dsprites.SPEC, *dsprites_variants.specs(), smallnorb.SPEC, cars3d.SPEC,
                                         shapes3d.SPEC, *mpi3d.SPECS, dsprites.TINY_SPEC)}


def _files() -> dict[str, OfficialFile]:
    """Single files ``data fetch`` also knows by a short name (not datasets themselves)."""
    # Local, as in _specs: an import cycle otherwise.
    from disent_bench.data import scream

    return {"scream": scream.OFFICIAL}


def fetchable() -> list[str]:
    """Names ``data fetch`` accepts: every dataset with official files, and single files such as ``scream``."""
    return [name for name, spec in _specs().items() if spec.files] + list(_files())


def get_file(name: str) -> OfficialFile | None:
    """The single official file ``data fetch NAME`` means by a short name (``scream``), else None."""
    return _files().get(name)


def available() -> list[str]:
    """Names of the datasets the suite knows."""
    return list(_specs())


def get_spec(name: str) -> DatasetSpec:
    specs = _specs()
    if name not in specs:
        raise UserError(f"unknown dataset {name!r}; valid names: {', '.join(specs)}")
    return specs[name]


def data_home(data_dir: str | os.PathLike | None = None) -> Path:
    """The data home: ``data_dir``, else ``$DISENT_BENCH_DATA``, else ``./datasets``."""
    if data_dir is None:
        data_dir = os.environ.get("DISENT_BENCH_DATA") or "datasets"
    return Path(data_dir)


def official_path(name: str, data_dir=None) -> Path | None:
    """Where the (first) official file is looked for (a file copied there by hand is picked up); None if none."""
    files = get_spec(name).files
    return data_home(data_dir) / files[0].filename if files else None


def official_paths(name: str, data_dir=None) -> dict[str, Path]:
    """Every official file of ``name`` (file name -> where it is looked for)."""
    return {f.filename: data_home(data_dir) / f.filename for f in get_spec(name).files}


def synthetic_path(name: str, data_dir=None) -> Path:
    spec = get_spec(name)
    return data_home(data_dir) / "synthetic" / f"{spec.name}-v{spec.renderer_version}.npy"


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _stamped_sha256(path: Path) -> str | None:
    """The sha256 in a current stamp beside ``path`` (same size and mtime), else None."""
    stamp = _stamp_path(path)
    if not stamp.is_file():
        return None
    try:
        info = json.loads(stamp.read_text())
        stat = path.stat()
        if info.get("size") == stat.st_size and info.get("mtime_ns") == stat.st_mtime_ns:
            return info["sha256"]
    except (ValueError, KeyError, OSError):
        pass  # a damaged stamp just means verifying again
    return None


def verify_file(file: OfficialFile, data_dir=None, *, force: bool = False, dataset: str | None = None) -> str:
    """Verify one official file in the data home (once: the result is stamped beside it); return its sha256.

    With a published checksum the file must match it; without one, ``file.check_format`` must accept it
    and our sha256 is recorded. Raises :class:`UserError` when the file is missing or wrong.
    """
    label = dataset or file.filename
    fetch_name = dataset or file.filename
    path = data_home(data_dir) / file.filename
    if not path.is_file():
        raise UserError(f"{label}: official file not found at {path}; run `disent-bench data fetch {fetch_name}`"
                        f"{f', copy it there from {file.url}' if file.url else ''}, or use source='synthetic'"
                        if dataset is None or get_spec(dataset).has_synthetic else
                        f"{label}: official file not found at {path}; run `disent-bench data fetch {fetch_name}` "
                        f"or copy it there from {file.url} ({label} has no synthetic version)")
    if not force:
        known = _stamped_sha256(path)
        if known is not None:
            return known
    stat = path.stat()
    if file.size is not None and stat.st_size != file.size:
        raise UserError(f"{label}: {path} has {stat.st_size} bytes, the official file has {file.size}; "
                        f"it is incomplete or not the official file (delete it and run `disent-bench data fetch {fetch_name}`)")
    sha256 = file_digest(path, "sha256")
    if file.sha256 is not None or file.md5 is not None:
        if file.sha256 is not None:
            ok, expected = sha256 == file.sha256, f"sha256 {file.sha256}"
        else:
            ok, expected = file_digest(path, "md5") == file.md5, f"md5 {file.md5}"
        if not ok:
            raise UserError(f"{label}: {path} does not match the official checksum ({expected}); "
                            f"delete it and run `disent-bench data fetch {fetch_name}`")
        how = "published checksum"
    else:
        if file.check_format is not None:
            file.check_format(path)
        how = "format (no published checksum); sha256 recorded"
    atomic_write_json(_stamp_path(path), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256,
                                          "verified_by": how, "url": file.url,
                                          "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return sha256


def verify_official(name: str, data_dir=None, *, force: bool = False) -> str:
    """Check every official file of ``name`` (once each: results are stamped beside them).

    Returns the release's checksum: the file's sha256, or for several files a sha256 of theirs. Raises
    :class:`UserError` when a file is missing or corrupt.
    """
    spec = get_spec(name)
    if not spec.files:
        raise UserError(f"{name} has no official file: it exists only as a synthetic rendering")
    return release_checksum({f.filename: verify_file(f, data_dir, force=force, dataset=name) for f in spec.files})


def release_checksum(digests: dict[str, str]) -> str:
    """The checksum of a release from its files' sha256 (file name -> digest): one file's own, else a
    sha256 over ``sha256sum``-style lines in the release's file order."""
    if len(digests) == 1:
        return next(iter(digests.values()))
    return hashlib.sha256("\n".join(f"{d}  {name}" for name, d in digests.items()).encode()).hexdigest()


def generate_synthetic(name: str, data_dir=None, *, force: bool = False, progress: bool = True) -> Path:
    """Render the synthetic dataset into the data home's cache (atomically) unless a current one exists."""
    spec = get_spec(name)
    if spec.render_synthetic is None:
        if spec.derive is not None:  # the dSprites variants: their synthetic images are synthetic dSprites
            return generate_synthetic("dsprites", data_dir, force=force, progress=progress)
        raise _no_synthetic_error(spec, data_dir)
    path = synthetic_path(name, data_dir)
    if path.is_file() and _stamp_path(path).is_file() and not force:
        return path
    _check_writable(path.parent)
    start = time.perf_counter()
    with atomic_path(path) as tmp:
        spec.render_synthetic(tmp, progress)
        seconds = time.perf_counter() - start
        sha256 = file_digest(tmp, "sha256")
    atomic_write_json(_stamp_path(path), {
        "dataset": name, "renderer_version": spec.renderer_version, "sha256": sha256,
        "render_seconds": round(seconds, 2), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return path


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"data home {directory} is not writable ({exc.strerror}); "
                        "choose another with --data-dir or DISENT_BENCH_DATA") from None


def _load_synthetic(spec: DatasetSpec, data_dir, progress: bool) -> GroundTruthData:
    path = generate_synthetic(spec.name, data_dir, progress=progress)
    stamp = json.loads(_stamp_path(path).read_text())
    try:
        store = np.load(path, mmap_mode="c", allow_pickle=False)  # mapped: only touched pages are resident
        advise(store, "random")
    except (ValueError, OSError) as exc:
        raise UserError(f"{spec.name}: synthetic cache {path} is unreadable ({exc}); delete it to re-render") from None
    expected = (spec.num_images, *((spec.image_shape[0], spec.image_shape[1] // 8) if spec.packed_bits
                                   else spec.image_shape))
    if store.shape != expected or store.dtype != np.uint8:
        raise UserError(f"{spec.name}: synthetic cache {path} has shape {store.shape} {store.dtype}, "
                        f"expected {expected} uint8; delete it to re-render")
    return GroundTruthData(spec.name, "synthetic", spec.factor_names, spec.factor_sizes, store,
                           packed_bits=spec.packed_bits, checksum=stamp.get("sha256"), path=str(path),
                           factor_values=spec.factor_values)


def _no_synthetic_error(spec: DatasetSpec, data_dir) -> UserError:
    return UserError(f"{spec.name} has no synthetic version: it needs its official file(s) "
                     f"({', '.join(f.filename for f in spec.files)}) in {data_home(data_dir)}; run "
                     f"`disent-bench data fetch {spec.name}`" + (f" (see {spec.citation})" if spec.citation else ""))


def get_dataset(name: str, source: str = "auto", data_dir=None, *, progress: bool = True) -> GroundTruthData:
    """Load a dataset by name. See the module docstring for ``source`` and the data home."""
    spec = get_spec(name)
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")
    if spec.derive is not None:
        return spec.derive(source, data_dir, progress)
    paths = official_paths(name, data_dir)
    present = bool(paths) and all(p.is_file() for p in paths.values())
    if source == "official" or (source == "auto" and present) or (source == "auto" and not spec.has_synthetic):
        if source != "official" and not present and not spec.has_synthetic:
            raise _no_synthetic_error(spec, data_dir)
        checksum = verify_official(name, data_dir)
        if spec.open_official is not None:
            return spec.open_official(LoadContext(name, paths, checksum, data_home(data_dir) / "cache", progress))
        dataset = spec.load_official(official_path(name, data_dir))
        dataset.checksum = checksum
        return dataset
    if not spec.has_synthetic:
        raise _no_synthetic_error(spec, data_dir)
    if source == "auto" and paths:
        warnings.warn(f"{name}: no official file at {official_path(name, data_dir)}; using the SYNTHETIC "
                      f"rendering (results will be labelled synthetic). Run `disent-bench data fetch {name}` "
                      "for the official data.", SyntheticDataWarning, stacklevel=2)
    return _load_synthetic(spec, data_dir, progress)


def dataset_status(name: str, data_dir=None) -> dict:
    """What the data home holds for ``name`` (for ``disent-bench data list``); reads no images."""
    spec = get_spec(name)
    files = {}
    for filename, path in official_paths(name, data_dir).items():
        files[filename] = {"path": str(path), "present": path.is_file(),
                           "verified": path.is_file() and _stamped_sha256(path) is not None}
    synthetic = synthetic_path(name, data_dir)
    return {
        "name": name,
        "factors": dict(zip(spec.factor_names, spec.factor_sizes)),
        "num_images": spec.num_images,
        "nuisance": spec.nuisance,
        "official_path": str(official_path(name, data_dir)) if spec.files else None,
        "official_files": files,
        "official_present": bool(files) and all(f["present"] for f in files.values()),
        "official_verified": bool(files) and all(f["verified"] for f in files.values()),
        "has_synthetic": spec.has_synthetic,
        "synthetic_path": str(synthetic),
        "synthetic_present": (synthetic.is_file() and _stamp_path(synthetic).is_file()) if spec.render_synthetic else None,
    }
