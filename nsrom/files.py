"""Atomic, durable file writes, and clear errors when an output cannot be written.

Every output of the project goes through these helpers: the content is written
to a temporary file in the destination folder, flushed to the disk, then
renamed over the final name, so a run killed at any moment (even by a power
loss) leaves either the old file or the complete new one, never a partial file
under the final name. A full disk or a folder that is not writable raises
:class:`~nsrom.errors.OutputError` naming the path, and the temporary file is
removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import OutputError

TEMP_MARKER = ".partial-"
"""Part of every temporary name (``.<name>.partial-XXXX<suffix>``): a run killed while writing leaves these."""

WRITE_FAILURES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for the file system",
}
"""``errno`` values that mean the output location cannot take the file (as opposed to a bug)."""


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """The user-facing error for an ``OSError`` raised while writing ``path``."""
    reason = WRITE_FAILURES.get(exc.errno, exc.strerror or str(exc))
    remedy = "free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "fix the permissions"
    return OutputError(
        f"cannot write {path}: {reason}; {remedy} or choose another output folder "
        "(no partial file was left under that name; re-run the same command to continue)"
    )


def is_write_failure(exc: BaseException) -> bool:
    """True for an ``OSError`` that says the output location cannot take the file."""
    return isinstance(exc, OSError) and exc.errno in WRITE_FAILURES


def ensure_writable_dir(path: str | Path) -> Path:
    """Create folder ``path`` if needed and check that a file can be created in it.

    Raises :class:`OutputError` naming the folder (not writable, read-only,
    disk full) before a stage starts work whose results it could not keep.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".write-test{TEMP_MARKER}", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(path, exc) from None
    return path


def _flush_to_disk(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; flush it to the disk and rename it to ``path`` on success.

    The temporary file keeps ``path``'s suffix so that writers that pick a
    format from the extension (PIL, OpenCV, numpy) behave as for ``path``.
    On an exception the temporary file is removed and ``path`` is untouched;
    a write failure (disk full, no permission) becomes :class:`OutputError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}{TEMP_MARKER}", suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(path, exc) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        _flush_to_disk(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if is_write_failure(exc):
            raise output_error(path, exc) from None
        raise


def write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    with open(path) as f:
        return json.load(f)


def leftover_temporaries(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Temporary files that a killed run left in ``folder`` (and below, with ``recursive``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".*{TEMP_MARKER}*"
    return sorted(p for p in (folder.rglob(pattern) if recursive else folder.glob(pattern)) if p.is_file())


def remove_leftover_temporaries(folder: str | Path, recursive: bool = False) -> int:
    """Delete the temporary files a killed run left in ``folder`` (and below); returns how many.

    Only for folders that nothing else writes at the time (a trainer's folders
    on rank 0, the pipeline's work dir before its first stage): a temporary of a
    running writer would go too.
    """
    found = leftover_temporaries(folder, recursive)
    for path in found:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return len(found)
