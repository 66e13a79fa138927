"""Errors that a user can act on, and the CLI wrapper that prints them.

Any problem with the user's files or settings (a missing weight file, a corrupt
PNG, a config typo, a full disk) is raised as :class:`NsromError` with a message that names
the file or key and says what to do. Entry points wrap ``main`` with
:func:`exit_on_error` so the user sees that message, not a traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

T = TypeVar("T")


class NsromError(Exception):
    """A problem with user input: message names the file/key and the remedy."""


class DataError(NsromError):
    """A data file is missing, unreadable or inconsistent."""


class ConfigError(NsromError):
    """A configuration key or value is wrong."""


class OutputError(NsromError):
    """An output file or folder cannot be written (disk full, no permission, read-only file system)."""


def exit_on_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn``; on :class:`NsromError` print ``error: <message>`` and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NsromError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
