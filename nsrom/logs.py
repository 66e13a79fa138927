"""Logging to the console and, optionally, a file (stdout is never replaced)."""

from __future__ import annotations

import logging
from pathlib import Path

from .files import ensure_writable_dir, output_error

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Configure the root logger: console always, ``log_file`` when given."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        ensure_writable_dir(Path(log_file).parent)
        try:
            handlers.append(logging.FileHandler(log_file))
        except OSError as exc:
            raise output_error(log_file, exc) from None
    logging.basicConfig(level=level, format=_FORMAT, datefmt="%H:%M:%S", handlers=handlers, force=True)
