"""Data integrity: every data file's checksum in a stamp beside it, a cheap check per load, a full one on demand.

Each file the suite reads images from (an official file, a synthetic cache, a converted store) has a
stamp ``<file>.json`` beside it, written atomically, that records its sha256 and the size and
modification time (ns) it had when that sha256 was computed. Loading a dataset (what every run does)
compares only size and mtime with the stamp: two ``stat`` fields, no read. When they differ (the file was
written to since), or when a full check is asked for (``DISENT_BENCH_VERIFY_DATA=1``, or
``get_dataset(..., verify=True)``), the file is hashed again: the same sha256 re-stamps it (a copy that
lost its mtime stays cheap afterwards), another one is an error naming the file. ``disent-bench data
verify`` hashes every file (:func:`verify_data`).

What the cheap check cannot see: a write that keeps both size and mtime (a tool that restores the
mtime). A full check sees it.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from disent_bench._io import atomic_write_json
from disent_bench.errors import UserError

__all__ = [
    "VERIFY_ENV",
    "Check",
    "Verdict",
    "check_stamped",
    "digests",
    "full_check_requested",
    "full_checks",
    "read_stamp",
    "restamp",
    "stamp_path",
    "verify_data",
]

# Set to 1 (or true/yes) to hash every data file a run loads instead of comparing size and mtime.
VERIFY_ENV = "DISENT_BENCH_VERIFY_DATA"
BLOCK_BYTES = 1 << 22

_FULL_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("disent_bench_full_data_checks", default=False)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def stamp_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".json")


def read_stamp(path: Path) -> dict | None:
    """The stamp beside ``path`` as a dict, or None when there is none or it is unreadable."""
    try:
        info = json.loads(stamp_path(path).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def full_check_requested() -> bool:
    """True when loads must hash their files (``DISENT_BENCH_VERIFY_DATA`` or inside :func:`full_checks`)."""
    return _FULL_CHECKS.get() or os.environ.get(VERIFY_ENV, "").strip().lower() in ("1", "true", "yes")


@contextlib.contextmanager
def full_checks(enabled: bool = True) -> Iterator[None]:
    """Within this block every load hashes its files (``get_dataset(..., verify=True)``)."""
    token = _FULL_CHECKS.set(enabled or _FULL_CHECKS.get())
    try:
        yield
    finally:
        _FULL_CHECKS.reset(token)


def digests(path: Path, algorithms: tuple[str, ...] = ("sha256",),
            progress_update: Callable[[int], None] | None = None) -> dict[str, str]:
    """Hex digests of ``path`` in one read of it (several algorithms at once), reporting bytes read."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as handle:
        while chunk := handle.read(BLOCK_BYTES):
            for digest in hashes.values():
                digest.update(chunk)
            if progress_update is not None:
                progress_update(len(chunk))
    return {name: digest.hexdigest() for name, digest in hashes.items()}


@dataclass(frozen=True)
class Check:
    """How a data file was found intact on a load: what ``metrics.json`` records under provenance."""

    sha256: str
    how: str                 # "size and mtime" (stamp unchanged) or "sha256" (hashed on this load)
    verified_at: str | None  # when the file's sha256 was last computed and matched
    checked_at: str = field(default_factory=now)

    def record(self) -> dict:
        return {"sha256": self.sha256, "check": self.how, "sha256_verified_at": self.verified_at,
                "checked_at": self.checked_at}


def unchanged(path: Path, stamp: dict) -> bool:
    """True when ``path`` has the size and mtime its stamp recorded (no read of the file)."""
    stat = path.stat()
    return stamp.get("size") == stat.st_size and stamp.get("mtime_ns") == stat.st_mtime_ns


def restamp(path: Path, stamp: dict, sha256: str) -> dict:
    """Record that ``path`` hashed to ``sha256`` now, at its current size and mtime (atomically).

    A data home that cannot be written to keeps its old stamp: the check passed, only its caching is lost.
    """
    stat = path.stat()
    fresh = {**stamp, "sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "verified_at": now()}
    with contextlib.suppress(OSError):
        atomic_write_json(stamp_path(path), fresh)
    return fresh


def check_stamped(path: Path, label: str, repair: str, *, full: bool | None = None) -> Check:
    """Check ``path`` against the sha256 its stamp recorded: cheaply when size and mtime are unchanged.

    ``repair`` says how to make the file anew (e.g. the ``data generate --force`` command). Raises
    :class:`UserError` naming the file when it changed, or when it has no stamp with a sha256.
    """
    stamp = read_stamp(path)
    recorded = stamp.get("sha256") if stamp else None
    if not isinstance(recorded, str):
        raise UserError(f"{label}: {path} has no recorded checksum ({stamp_path(path)} is missing or damaged); "
                        f"{repair}")
    full = full_check_requested() if full is None else full
    verified_at = stamp.get("verified_at") or stamp.get("created")
    if not full and unchanged(path, stamp):
        return Check(recorded, "size and mtime", verified_at)
    size = path.stat().st_size
    if isinstance(stamp.get("size"), int) and size != stamp["size"]:
        raise corrupt_error(label, path, f"{size} bytes, {stamp['size']} when its checksum was recorded", repair)
    actual = digests(path)["sha256"]
    if actual != recorded:
        raise corrupt_error(label, path, f"sha256 {actual}, expected {recorded} (recorded "
                                         f"{verified_at or 'when it was written'})", repair)
    fresh = restamp(path, stamp, actual) if not unchanged(path, stamp) or full else stamp
    return Check(actual, "sha256", fresh.get("verified_at") or verified_at)


def corrupt_error(label: str, path: Path, what: str, repair: str) -> UserError:
    return UserError(f"{label}: {path} is corrupt ({what}); run `disent-bench data verify` to check every data "
                     f"file, and {repair}")


# -- disent-bench data verify ----------------------------------------------------------------------
@dataclass
class Verdict:
    """One file's result in ``data verify``: OK, CORRUPT (expected vs actual) or missing."""

    dataset: str
    kind: str       # "official", "synthetic" or "converted"
    path: Path
    status: str     # "OK", "CORRUPT", "missing", "unrecorded"
    detail: str = ""


@dataclass
class _Item:
    dataset: str
    kind: str
    path: Path
    official: object = None   # the OfficialFile, for official files
    repair: str = ""


def _items(name: str | None, data_dir) -> list[_Item]:
    # Local: this package's face imports this module (a cycle at import time otherwise).
    from disent_bench.data import available, data_home, get_spec, synthetic_path

    home = data_home(data_dir)
    names = [name] if name is not None else available()
    items: list[_Item] = []
    seen: set[Path] = set()
    for dataset in names:
        spec = get_spec(dataset)
        for file in spec.files:
            path = home / file.filename
            if path not in seen:
                seen.add(path)
                items.append(_Item(dataset, "official", path, file,
                                   f"delete it and run `disent-bench data fetch {dataset}`"))
        if spec.render_synthetic is not None:
            path = synthetic_path(dataset, data_dir)
            items.append(_Item(dataset, "synthetic", path,
                               repair=f"render it again: `disent-bench data generate {dataset} --force`"))
    for path in sorted((home / "cache").glob("*.npy")):
        stamp = read_stamp(path) or {}
        owner = str(stamp.get("dataset") or path.name.split("-")[0])
        if name is None or owner == name:
            items.append(_Item(owner, "converted", path, repair="delete it (the next load converts it again)"))
    return items


def verify_data(name: str | None = None, data_dir=None, *, progress: bool = True) -> list[Verdict]:
    """Hash every data file of ``name`` (every dataset when None) and compare it with what it should be.

    Official files are compared with their published checksum (else the sha256 stamped when they were
    first verified by format), synthetic caches and converted stores with the sha256 stamped when they
    were written. Without ``name``, files that were never downloaded or rendered are left out; a stamp
    whose file is gone is reported missing. A file found intact is re-stamped at its current size and
    mtime. Nothing is deleted.
    """
    from disent_bench.progress import (
        ProgressReporter,  # local: rich's console, only for this command
    )

    items = []
    for item in _items(name, data_dir):
        if item.path.is_file() or name is not None or stamp_path(item.path).is_file():
            items.append(item)
    total = sum(item.path.stat().st_size for item in items if item.path.is_file())
    verdicts = []
    with ProgressReporter("verify", total, enabled=progress) as reporter:
        for item in items:
            verdicts.append(_verify_item(item, reporter.update))
    return verdicts


def _verify_item(item: _Item, update: Callable[[int], None]) -> Verdict:
    def verdict(status: str, detail: str = "") -> Verdict:
        return Verdict(item.dataset, item.kind, item.path, status, detail)

    if not item.path.is_file():
        return verdict("missing", item.repair if item.kind != "official" else
                       f"run `disent-bench data fetch {item.dataset}`")
    stamp = read_stamp(item.path) or {}
    file = item.official
    published = ("sha256", file.sha256) if file is not None and file.sha256 else \
                ("md5", file.md5) if file is not None and file.md5 else None
    recorded = stamp.get("sha256") if isinstance(stamp.get("sha256"), str) else None
    if published is None and recorded is None:
        if item.kind == "converted" and stamp and unchanged(item.path, stamp):
            # Converted before stores kept a checksum, and untouched since: record it now.
            restamp(item.path, stamp, digests(item.path, progress_update=update)["sha256"])
            return verdict("OK", "sha256 recorded now (size and mtime as when converted)")
        if item.kind == "official" and file.check_format is not None:
            # Never verified: the format check and the stamp are data fetch's (verify_file).
            from disent_bench.data import verify_file

            try:
                verify_file(file, item.path.parent, force=True, dataset=item.dataset)
            except UserError as exc:
                return verdict("CORRUPT", str(exc))
            update(item.path.stat().st_size)
            return verdict("OK", "format checked, sha256 recorded now (no published checksum)")
        update(item.path.stat().st_size)
        return verdict("unrecorded", f"no checksum recorded beside it; {item.repair}")
    algorithms = ("sha256",) + ((published[0],) if published and published[0] != "sha256" else ())
    actual = digests(item.path, algorithms, update)
    if published is not None and actual[published[0]] != published[1]:
        return verdict("CORRUPT", f"expected {published[0]} {published[1]} (published), actual "
                                  f"{actual[published[0]]}; {item.repair}")
    if published is None and actual["sha256"] != recorded:
        return verdict("CORRUPT", f"expected sha256 {recorded} (recorded "
                                  f"{stamp.get('verified_at') or stamp.get('created') or 'when written'}), "
                                  f"actual {actual['sha256']}; {item.repair}")
    restamp(item.path, stamp, actual["sha256"])
    return verdict("OK", f"sha256 {actual['sha256'][:16]}…")
