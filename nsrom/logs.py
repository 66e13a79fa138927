"""Logging to the console and, optionally, a file (stdout is never replaced).

Each script configures logging when it starts (:func:`setup_logging`). The pipeline runs the
stage scripts in its own process, and each would replace the handlers of the one before: a
file opened with :func:`kept_log_file` (``W/pipeline.log``) stays attached through them, so it
holds the whole run.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

from .files import ensure_writable_dir, output_error

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_DATE_FORMAT = "%H:%M:%S"
_kept: list[logging.Handler] = []


def _file_handler(log_file: str | Path) -> logging.FileHandler:
    ensure_writable_dir(Path(log_file).parent)
    try:
        return logging.FileHandler(log_file)
    except OSError as exc:
        raise output_error(log_file, exc) from None


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Configure the root logger: console always, ``log_file`` when given, and the files of
    :func:`kept_log_file` (which no later call removes)."""
    root = logging.getLogger()
    for handler in _kept:  # out of basicConfig's reach, which closes the handlers it replaces
        root.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        handlers.append(_file_handler(log_file))
    logging.basicConfig(level=level, format=_FORMAT, datefmt=_DATE_FORMAT, handlers=handlers, force=True)
    for handler in _kept:
        root.addHandler(handler)


@contextlib.contextmanager
def kept_log_file(log_file: str | Path) -> Iterator[None]:
    """Log to ``log_file`` until the block ends, through every :func:`setup_logging` of the scripts
    run inside it (the pipeline's ``W/pipeline.log``)."""
    handler = _file_handler(log_file)
    handler.setFormatter(logging.Formatter(_FORMAT, _DATE_FORMAT))
    _kept.append(handler)
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        _kept.remove(handler)
        logging.getLogger().removeHandler(handler)
        handler.close()
