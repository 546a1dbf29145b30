"""Download official dataset files: resumable, verified, atomic.

``fetch(name)`` downloads every official file of dataset ``name`` (or the single file a short name such
as ``scream`` stands for) into ``<file>.part`` (resuming with an HTTP Range request when a ``.part`` is
already there), verifies it (by the published checksum, or by format where none is published) and only
then renames it into place. A file the user already has is never replaced or deleted: it is only
verified. Offline, it fails fast with a message saying where a manually copied file is picked up and,
where the dataset has one, how to work with the synthetic rendering instead.
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
from disent_bench.data import _check_writable, data_home, fetchable, get_file, get_spec, verify_file
from disent_bench.data.spec import OfficialFile
from disent_bench.errors import UserError
from disent_bench.progress import ProgressReporter

__all__ = ["fetch"]

CHUNK_BYTES = 1 << 20
# Seconds to wait for a connection or for the next bytes of a stalled download.
DEFAULT_TIMEOUT_S = 20.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def fetch(name: str, data_dir=None, progress: bool = True, *, timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Make the official file(s) of ``name`` present and verified in the data home.

    Returns the file's path (for a release of several files, the data home that holds them).
    """
    single = get_file(name)
    if single is not None:
        return _fetch_file(name, single, None, data_dir, progress, timeout)
    spec = get_spec(name)
    if not spec.files:
        raise UserError(f"{name} has no official file to download: it exists only as a synthetic rendering "
                        f"(`disent-bench data generate {name}`); names with official files: {', '.join(fetchable())}")
    paths = [_fetch_file(name, file, name, data_dir, progress, timeout) for file in spec.files]
    return paths[0] if len(paths) == 1 else data_home(data_dir)


def _fetch_file(label: str, file: OfficialFile, dataset: str | None, data_dir, progress: bool, timeout: float) -> Path:
    path = data_home(data_dir) / file.filename
    if path.is_file():
        # Already there (downloaded before or copied by hand): verify it, never touch it.
        verify_file(file, data_dir, dataset=dataset)
        return path
    if file.url is None:
        raise UserError(f"{label}: {file.filename} has no download address; copy it by hand to {path}")
    _check_writable(path.parent)
    lock = FileLock(str(path.with_name(path.name + ".lock")))
    try:
        with lock.acquire(timeout=0):
            if not path.is_file():
                _download(label, file, path, progress, timeout, dataset)
    except Timeout:
        raise UserError(f"{path} is being downloaded by another process (lock {lock.lock_file}); "
                        "wait for it to finish") from None
    verify_file(file, data_dir, dataset=dataset)
    return path


def _offline_error(label: str, file: OfficialFile, path: Path, reason: object, dataset: str | None) -> UserError:
    synthetic = dataset is None or get_spec(dataset).has_synthetic
    rest = (f", or work with the synthetic rendering: source='synthetic' / `disent-bench data generate {dataset or label}`"
            if synthetic and dataset is not None else
            ", or use source='synthetic'" if synthetic else f" ({dataset} has no synthetic version)")
    return UserError(f"cannot download {label} from {file.url} ({reason}). Offline, copy the official file by hand "
                     f"to {path} (it is picked up and verified there){rest}")


def _open(label: str, file: OfficialFile, path: Path, start: int, timeout: float, dataset: str | None):
    headers = {"User-Agent": f"disent-bench/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(file.url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:
            return None  # the .part already holds every byte: go on to verify it
        raise UserError(f"downloading {label} from {file.url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, OSError) as exc:
        raise _offline_error(label, file, path, getattr(exc, "reason", exc), dataset) from None


def _download(label: str, file: OfficialFile, path: Path, progress: bool, timeout: float, dataset: str | None) -> None:
    part = path.with_name(path.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    if file.size is not None and start > file.size:
        start = 0  # longer than the official file: it cannot be a prefix of it
    response = None if file.size is not None and start == file.size else _open(label, file, path, start, timeout, dataset)
    if response is not None:
        with response:
            kind = response.headers.get("Content-Type", "")
            if kind.startswith("text/html") and not file.filename.endswith((".html", ".htm")):
                raise UserError(f"{file.url} answered with a web page, not {file.filename} (some hosts, e.g. Google "
                                f"Drive, ask for a confirmation first); download it in a browser and copy it to {path}")
            mode = "ab"
            if start and response.status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != start:
                    raise UserError(f"{file.url}: the server answered a resume request from byte {start} "
                                    f"with Content-Range {response.headers.get('Content-Range')!r}; delete {part} "
                                    "and try again")
            elif start:
                start, mode = 0, "wb"  # the server ignored the Range request: start over
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None else file.size
            with open(part, mode) as handle, ProgressReporter(
                    f"fetch {file.filename}", total, enabled=progress, completed=start) as reporter:
                try:
                    while chunk := response.read(CHUNK_BYTES):
                        handle.write(chunk)
                        reporter.update(len(chunk))
                except (socket.timeout, OSError) as exc:
                    handle.flush()
                    raise UserError(f"download of {label} from {file.url} broke off after "
                                    f"{handle.tell()} bytes ({exc}); run the same command again to resume") from None
                handle.flush()
                os.fsync(handle.fileno())
    _verify_part(label, file, part)
    os.replace(part, path)
    _fsync_dir(path.parent)


def _verify_part(label: str, file: OfficialFile, part: Path) -> None:
    """Check the downloaded bytes; a bad download is removed (it is ours, never the user's file)."""
    size = part.stat().st_size
    problem = None
    if file.size is not None and size != file.size:
        problem = f"{size} bytes, expected {file.size}"
    elif file.sha256 is not None:
        digest = file_digest(part, "sha256")
        if digest != file.sha256:
            problem = f"sha256 {digest}, expected {file.sha256}"
    elif file.md5 is not None:
        digest = file_digest(part, "md5")
        if digest != file.md5:
            problem = f"md5 {digest}, expected {file.md5}"
    elif file.check_format is not None:
        try:
            file.check_format(part)
        except UserError as exc:
            problem = f"not in the official format: {exc}"
    if problem is not None:
        part.unlink()
        raise UserError(f"the download of {label} from {file.url} is corrupt ({problem}); "
                        "it was removed, run the same command again")
