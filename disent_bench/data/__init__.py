"""Ground-truth-factor datasets: official files and faithful synthetic renderers.

``get_dataset(name, source="auto", data_dir=None)`` returns a :class:`GroundTruthData`.

* ``source="official"``: the official file from the data home (verified by checksum once).
* ``source="synthetic"``: the offline renderer's version, cached in the data home.
* ``source="auto"``: the official file when present, otherwise synthetic with one warning.

The data home is ``--data-dir``, else ``$DISENT_BENCH_DATA``, else ``./datasets``.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from disent_bench._io import atomic_path, atomic_write_json, file_digest
from disent_bench.data.base import GroundTruthData
from disent_bench.data.spec import DatasetSpec
from disent_bench.errors import UserError

__all__ = ["GroundTruthData", "DatasetSpec", "get_dataset", "available", "get_spec", "data_home",
           "official_path", "synthetic_path", "verify_official", "generate_synthetic", "dataset_status"]

SOURCES = ("auto", "official", "synthetic")


class SyntheticDataWarning(UserWarning):
    """Emitted when ``source="auto"`` falls back to synthetic data."""


def _specs() -> dict[str, DatasetSpec]:
    from disent_bench.data import dsprites, shapes3d

    return {spec.name: spec for spec in (dsprites.SPEC, shapes3d.SPEC, dsprites.TINY_SPEC)}


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
    """Where the official file is looked for (a file copied there by hand is picked up); None if none exists."""
    spec = get_spec(name)
    if spec.official_filename is None:
        return None
    return data_home(data_dir) / spec.official_filename


def synthetic_path(name: str, data_dir=None) -> Path:
    spec = get_spec(name)
    return data_home(data_dir) / "synthetic" / f"{spec.name}-v{spec.renderer_version}.npy"


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def verify_official(name: str, data_dir=None, *, force: bool = False) -> str:
    """Check the official file's size and checksum (once: the result is stamped beside it).

    Returns the file's sha256. Raises :class:`UserError` when the file is missing or corrupt.
    """
    spec = get_spec(name)
    path = official_path(name, data_dir)
    if path is None:
        raise UserError(f"{name} has no official file: it exists only as a synthetic rendering")
    if not path.is_file():
        raise UserError(f"{name}: official file not found at {path}; run `disent-bench data fetch {name}`, "
                        f"copy it there from {spec.official_url}, or use source='synthetic'")
    stat = path.stat()
    stamp = _stamp_path(path)
    if not force and stamp.is_file():
        try:
            info = json.loads(stamp.read_text())
            if info.get("size") == stat.st_size and info.get("mtime_ns") == stat.st_mtime_ns:
                return info["sha256"]
        except (ValueError, KeyError):
            pass  # a damaged stamp just means verifying again
    if spec.official_size is not None and stat.st_size != spec.official_size:
        raise UserError(f"{name}: {path} has {stat.st_size} bytes, the official file has {spec.official_size}; "
                        f"it is incomplete or not the official file (delete it and run `disent-bench data fetch {name}`)")
    sha256 = file_digest(path, "sha256")
    if spec.official_sha256 is not None:
        ok = sha256 == spec.official_sha256
        expected = f"sha256 {spec.official_sha256}"
    else:
        ok = file_digest(path, "md5") == spec.official_md5
        expected = f"md5 {spec.official_md5}"
    if not ok:
        raise UserError(f"{name}: {path} does not match the official checksum ({expected}); "
                        f"delete it and run `disent-bench data fetch {name}`")
    atomic_write_json(stamp, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256,
                              "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return sha256


def generate_synthetic(name: str, data_dir=None, *, force: bool = False, progress: bool = True) -> Path:
    """Render the synthetic dataset into the data home's cache (atomically) unless a current one exists."""
    spec = get_spec(name)
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
        store = np.load(path, allow_pickle=False)
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


def get_dataset(name: str, source: str = "auto", data_dir=None, *, progress: bool = True) -> GroundTruthData:
    """Load a dataset by name. See the module docstring for ``source`` and the data home."""
    spec = get_spec(name)
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")
    official = official_path(name, data_dir)
    if source == "official" or (source == "auto" and official is not None and official.is_file()):
        sha256 = verify_official(name, data_dir)
        dataset = spec.load_official(official_path(name, data_dir))
        dataset.checksum = sha256
        return dataset
    if source == "auto" and official is not None:
        warnings.warn(f"{name}: no official file at {official_path(name, data_dir)}; using the SYNTHETIC "
                      f"rendering (results will be labelled synthetic). Run `disent-bench data fetch {name}` "
                      "for the official data.", SyntheticDataWarning, stacklevel=2)
    return _load_synthetic(spec, data_dir, progress)


def dataset_status(name: str, data_dir=None) -> dict:
    """What the data home holds for ``name`` (for ``disent-bench data list``); reads no images."""
    spec = get_spec(name)
    official = official_path(name, data_dir)
    verified = False
    if official is not None and official.is_file() and _stamp_path(official).is_file():
        stamp = _stamp_path(official)
        try:
            info = json.loads(stamp.read_text())
            stat = official.stat()
            verified = info.get("size") == stat.st_size and info.get("mtime_ns") == stat.st_mtime_ns
        except (ValueError, OSError):
            verified = False
    synthetic = synthetic_path(name, data_dir)
    return {
        "name": name,
        "factors": dict(zip(spec.factor_names, spec.factor_sizes)),
        "num_images": spec.num_images,
        "official_path": str(official) if official is not None else None,
        "official_present": official is not None and official.is_file(),
        "official_verified": verified,
        "synthetic_path": str(synthetic),
        "synthetic_present": synthetic.is_file() and _stamp_path(synthetic).is_file(),
    }
