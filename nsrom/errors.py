"""Errors that a user can act on, and the CLI wrapper that prints them.

Any problem with the user's files or settings (a missing weight file, a corrupt
PNG, a config typo, a full disk) is raised as :class:`NsromError` with a message that names
the file or key and says what to do. Entry points wrap ``main`` with
:func:`exit_on_error` so the user sees that message, not a traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
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


def user_message(exc: NsromError) -> str:
    """The message of ``exc``; for one raised in a DataLoader worker, the original message alone.

    PyTorch re-raises a worker's exception in the main process with the worker's
    traceback in its text (``Caught DataError in DataLoader worker process 0.
    Original Traceback ...``); the message the user needs is after its last
    ``<module>.<class>: `` line.
    """
    text = str(exc)
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return text
    cls = type(exc)
    for prefix in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
        start = text.rfind("\n" + prefix)
        if start >= 0:
            return text[start + 1 + len(prefix):].strip() + " (in a data-loader worker)"
    return text


INTERRUPTED = ("interrupted; the outputs written so far are kept (each file whole or not at all): the same "
               "command continues from them (a training script with --resume; pipeline.py resumes by itself)")
"""What a script says on Ctrl-C before it exits with status 130."""


def exit_on_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn``; on :class:`NsromError` print ``error: <message>`` (:func:`user_message`) and exit 2;
    on Ctrl-C print :data:`INTERRUPTED` and exit 130 (the shell's status for it), without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NsromError as exc:
            print(f"error: {user_message(exc)}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print(f"{Path(sys.argv[0]).name}: {INTERRUPTED}", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
