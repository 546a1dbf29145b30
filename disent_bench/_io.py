"""Atomic file writes and checksums: a kill at any moment leaves either the old file or the new one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from disent_bench.errors import UserError, storage_error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is untouched; a write that fails because of
    the place (disk full, read-only, permission denied) raises :class:`~disent_bench.errors.StorageError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise storage_error(exc, path) or exc from exc
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (umask applies).
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # a full disk still lets us delete; nothing is left behind
            tmp.unlink()
        # A full disk, a read-only file system, no permission: one clear error naming the file, not a traceback.
        converted = storage_error(exc, path)
        if converted is not None and converted is not exc:
            raise converted from exc
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_output_path(path: str | os.PathLike, suffix: str) -> Path:
    """Check, before any work, that ``path`` ends in ``suffix`` and its folder exists (or can be made) and is writable."""
    out = Path(path)
    if out.suffix.lower() != suffix:
        raise UserError(f"output {out} must be a {suffix} file")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"output {out}: the folder {parent} is not writable")
    return out


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` (a log: a torn last line is the worst a kill leaves); StorageError as above."""
    try:
        with open(path, "a", newline="") as handle:
            handle.write(text)
    except OSError as exc:
        raise storage_error(exc, path) or exc from exc


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", block_size: int = 1 << 22) -> str:
    """Hex digest of a file, read in large blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(block_size):
            digest.update(chunk)
    return digest.hexdigest()
