"""The project's two exception types that end a command with one line instead of a traceback.

Library code raises :class:`UserError` with a message that names the file, key or value and what
would be right; the CLI prints that message on one line and exits with code 2, without a traceback.

:class:`StorageError` is a file that could not be written because of where it goes: the disk is full, the
file system is read-only, or permission is denied. The CLI prints it on one line and exits with code 1
(the command had started). Writes go through :mod:`disent_bench._io`, which turns such ``OSError`` into it.
"""

from __future__ import annotations

import errno
import os

#: The causes of a failed write that are about the place, not the program, in words a user acts on.
STORAGE_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


class UserError(ValueError):
    """Bad input from a user (a file, a config value, an argument): shown as one line, exit code 2."""


class StorageError(RuntimeError):
    """A file could not be written where it goes (disk full, read-only, permission denied): one line, exit 1."""


def storage_error(exc: BaseException, path: str | os.PathLike) -> StorageError | None:
    """``exc`` as a :class:`StorageError` naming ``path`` and the cause, or None when it is another error."""
    if isinstance(exc, StorageError):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in STORAGE_CAUSES:
        return None
    return StorageError(f"cannot write {path}: {STORAGE_CAUSES[exc.errno]} ({os.strerror(exc.errno)})")
