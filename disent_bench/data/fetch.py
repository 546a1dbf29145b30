"""Download official dataset files: resumable, checksum-verified, atomic.

``fetch(name)`` downloads the official file into ``<file>.part`` (resuming with an HTTP Range request
when a ``.part`` is already there), verifies its checksum and only then renames it into place. A
file the user already has is never replaced or deleted: it is only verified. Offline, it fails fast
with a message saying where a manually copied file is picked up and how to work with the synthetic
rendering instead.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

from filelock import FileLock, Timeout

from disent_bench import __version__
from disent_bench._io import _fsync_dir, file_digest
from disent_bench.data import _check_writable, get_spec, official_path, verify_official
from disent_bench.errors import UserError
from disent_bench.progress import ProgressReporter

__all__ = ["fetch"]

CHUNK_BYTES = 1 << 20
# Seconds to wait for a connection or for the next bytes of a stalled download.
DEFAULT_TIMEOUT_S = 20.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def fetch(name: str, data_dir=None, progress: bool = True, *, timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Make the official file of dataset ``name`` present and verified in the data home; return its path."""
    spec = get_spec(name)
    path = official_path(name, data_dir)
    if path is None or spec.official_url is None:
        raise UserError(f"{name} has no official file to download: it exists only as a synthetic rendering "
                        f"(`disent-bench data generate {name}`)")
    if path.is_file():
        # Already there (downloaded before or copied by hand): verify it, never touch it.
        verify_official(name, data_dir)
        return path
    _check_writable(path.parent)
    lock = FileLock(str(path.with_name(path.name + ".lock")))
    try:
        with lock.acquire(timeout=0):
            if not path.is_file():
                _download(spec, path, progress, timeout)
    except Timeout:
        raise UserError(f"{path} is being downloaded by another process (lock {lock.lock_file}); "
                        "wait for it to finish") from None
    verify_official(name, data_dir)
    return path


def _offline_error(spec, path: Path, reason: object) -> UserError:
    return UserError(
        f"cannot download {spec.name} from {spec.official_url} ({reason}). Offline, copy the official file "
        f"by hand to {path} (it is picked up and verified there), or work with the synthetic rendering: "
        f"source='synthetic' / `disent-bench data generate {spec.name}`")


def _open(spec, path: Path, start: int, timeout: float):
    headers = {"User-Agent": f"disent-bench/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(spec.official_url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:
            return None  # the .part already holds every byte: go on to verify it
        raise UserError(f"downloading {spec.name} from {spec.official_url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, OSError) as exc:
        raise _offline_error(spec, path, getattr(exc, "reason", exc)) from None


def _download(spec, path: Path, progress: bool, timeout: float) -> None:
    part = path.with_name(path.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    if spec.official_size is not None and start > spec.official_size:
        start = 0  # longer than the official file: it cannot be a prefix of it
    response = None if spec.official_size is not None and start == spec.official_size else _open(spec, path, start, timeout)
    if response is not None:
        with response:
            mode = "ab"
            if start and response.status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != start:
                    raise UserError(f"{spec.official_url}: the server answered a resume request from byte {start} "
                                    f"with Content-Range {response.headers.get('Content-Range')!r}; delete {part} "
                                    "and try again")
            elif start:
                start, mode = 0, "wb"  # the server ignored the Range request: start over
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None else spec.official_size
            with open(part, mode) as handle, ProgressReporter(
                    f"fetch {spec.name}", total, enabled=progress, completed=start) as reporter:
                try:
                    while chunk := response.read(CHUNK_BYTES):
                        handle.write(chunk)
                        reporter.update(len(chunk))
                except (socket.timeout, OSError) as exc:
                    handle.flush()
                    raise UserError(f"download of {spec.name} from {spec.official_url} broke off after "
                                    f"{handle.tell()} bytes ({exc}); run the same command again to resume") from None
                handle.flush()
                os.fsync(handle.fileno())
    _verify_part(spec, part)
    os.replace(part, path)
    _fsync_dir(path.parent)


def _verify_part(spec, part: Path) -> None:
    """Check the downloaded bytes; a bad download is removed (it is ours, never the user's file)."""
    size = part.stat().st_size
    problem = None
    if spec.official_size is not None and size != spec.official_size:
        problem = f"{size} bytes, expected {spec.official_size}"
    elif spec.official_sha256 is not None:
        digest = file_digest(part, "sha256")
        if digest != spec.official_sha256:
            problem = f"sha256 {digest}, expected {spec.official_sha256}"
    elif spec.official_md5 is not None:
        digest = file_digest(part, "md5")
        if digest != spec.official_md5:
            problem = f"md5 {digest}, expected {spec.official_md5}"
    if problem is not None:
        part.unlink()
        raise UserError(f"the download of {spec.name} from {spec.official_url} is corrupt ({problem}); "
                        "it was removed, run the same command again")
