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

Every data file carries its sha256 in a stamp beside it; a load compares only size and mtime with the
stamp and hashes the file when they differ, or always with ``verify=True`` / ``DISENT_BENCH_VERIFY_DATA=1``
(:mod:`disent_bench.data.integrity`). A changed file is an error naming it, never used; the dataset's
``integrity`` (checksum, how it was checked, when it was last hashed) goes into ``metrics.json``.

The data home is ``--data-dir``, else ``$DISENT_BENCH_DATA``, else ``./datasets``.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from pathlib import Path

import numpy as np

from disent_bench._io import atomic_path, atomic_write_json, file_digest
from disent_bench.data import integrity
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


_stamp_path = integrity.stamp_path


def _stamped_sha256(path: Path) -> str | None:
    """The sha256 in a current stamp beside ``path`` (same size and mtime), else None."""
    stamp = integrity.read_stamp(path)
    try:
        if stamp is not None and integrity.unchanged(path, stamp) and isinstance(stamp.get("sha256"), str):
            return stamp["sha256"]
    except OSError:
        pass  # a file that cannot be stat'ed is verified (and reported) by the full path
    return None


def verify_file(file: OfficialFile, data_dir=None, *, force: bool = False, dataset: str | None = None) -> str:
    """Verify one official file in the data home (once: the result is stamped beside it); return its sha256.

    With a published checksum the file must match it; without one, ``file.check_format`` must accept it
    and our sha256 is recorded. Raises :class:`UserError` when the file is missing or wrong.
    """
    return _verify_file_check(file, data_dir, force=force, dataset=dataset).sha256


def _verify_file_check(file: OfficialFile, data_dir=None, *, force: bool = False,
                       dataset: str | None = None) -> integrity.Check:
    """:func:`verify_file`, returning how the file was checked (for provenance).

    Cheap (size and mtime against the stamp) unless ``force``, a full check was asked for, or the file
    changed; a changed file without a published checksum must still have the sha256 first recorded.
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
    stamp = integrity.read_stamp(path) or {}
    if not (force or integrity.full_check_requested()):
        known = _stamped_sha256(path)
        if known is not None:
            return integrity.Check(known, "size and mtime", stamp.get("verified_at"))
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
        recorded = stamp.get("sha256")
        if isinstance(recorded, str) and recorded != sha256:
            # Format checks pass on flipped bytes: the sha256 recorded at first verification is the reference.
            raise integrity.corrupt_error(
                label, path, f"sha256 {sha256}, expected {recorded} (recorded {stamp.get('verified_at') or 'earlier'})",
                f"delete it and run `disent-bench data fetch {fetch_name}` (if you replaced it on purpose, "
                f"delete {_stamp_path(path)} so it is verified afresh)")
    verified_at = integrity.now()
    try:
        atomic_write_json(_stamp_path(path), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256,
                                              "verified_by": how, "url": file.url, "verified_at": verified_at})
    except OSError:
        pass  # a read-only data home: verified all the same, only not remembered
    return integrity.Check(sha256, "sha256", verified_at)


def verify_official(name: str, data_dir=None, *, force: bool = False) -> str:
    """Check every official file of ``name`` (once each: results are stamped beside them).

    Returns the release's checksum: the file's sha256, or for several files a sha256 of theirs. Raises
    :class:`UserError` when a file is missing or corrupt.
    """
    return _verify_release(name, data_dir, force=force)[0]


def _verify_release(name: str, data_dir=None, *, force: bool = False) -> tuple[str, dict]:
    """:func:`verify_official`, with the integrity record of the release (for provenance)."""
    spec = get_spec(name)
    if not spec.files:
        raise UserError(f"{name} has no official file: it exists only as a synthetic rendering")
    checks = {f.filename: _verify_file_check(f, data_dir, force=force, dataset=name) for f in spec.files}
    checksum = release_checksum({filename: check.sha256 for filename, check in checks.items()})
    return checksum, _release_record(checksum, checks)


def _release_record(checksum: str, checks: dict[str, integrity.Check]) -> dict:
    """One integrity record for a release: hashed if any file was, verified as of its oldest file."""
    times = [c.verified_at for c in checks.values() if c.verified_at]
    record = {"sha256": checksum, "check": "sha256" if any(c.how == "sha256" for c in checks.values())
              else "size and mtime", "sha256_verified_at": min(times) if times else None,
              "checked_at": integrity.now()}
    if len(checks) > 1:
        record["files"] = {filename: c.sha256 for filename, c in checks.items()}
    return record


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
    stat = path.stat()
    created = integrity.now()
    atomic_write_json(_stamp_path(path), {
        "dataset": name, "renderer_version": spec.renderer_version, "sha256": sha256,
        "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "verified_at": created,
        "render_seconds": round(seconds, 2), "created": created})
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
    check = integrity.check_stamped(path, spec.name, f"render it again: `disent-bench data generate {spec.name} --force`")
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
    dataset = GroundTruthData(spec.name, "synthetic", spec.factor_names, spec.factor_sizes, store,
                              packed_bits=spec.packed_bits, checksum=check.sha256, path=str(path),
                              factor_values=spec.factor_values)
    dataset.integrity = check.record()
    return dataset


def _no_synthetic_error(spec: DatasetSpec, data_dir) -> UserError:
    return UserError(f"{spec.name} has no synthetic version: it needs its official file(s) "
                     f"({', '.join(f.filename for f in spec.files)}) in {data_home(data_dir)}; run "
                     f"`disent-bench data fetch {spec.name}`" + (f" (see {spec.citation})" if spec.citation else ""))


def get_dataset(name: str, source: str = "auto", data_dir=None, *, progress: bool = True,
                verify: bool = False) -> GroundTruthData:
    """Load a dataset by name. See the module docstring for ``source``, the data home and ``verify``
    (hash every file instead of comparing size and mtime with its stamp)."""
    with integrity.full_checks(verify):
        return _get_dataset(name, source, data_dir, progress)


def _get_dataset(name: str, source: str, data_dir, progress: bool) -> GroundTruthData:
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
        checksum, record = _verify_release(name, data_dir)
        if spec.open_official is not None:
            dataset = spec.open_official(LoadContext(name, paths, checksum, data_home(data_dir) / "cache", progress))
        else:
            dataset = spec.load_official(official_path(name, data_dir))
            dataset.checksum = checksum
        dataset.integrity = record
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
