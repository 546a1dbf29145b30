"""The one exception type for bad user input.

Library code raises :class:`UserError` with a message that names the file, key or value and what
would be right; the CLI prints that message on one line and exits with code 2, without a traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from a user (a file, a config value, an argument): shown as one line, exit code 2."""
