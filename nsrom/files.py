"""Atomic, durable file writes, and clear errors when an output cannot be written.

Every output of the project goes through these helpers: the content is written
to a temporary file in the destination folder, flushed to the disk, then
renamed over the final name, so a run killed at any moment (even by a power
loss) leaves either the old file or the complete new one, never a partial file
under the final name. The file gets the permissions a plain ``open(path, "w")``
would give (0o666 less the umask). A full disk or a folder that is not writable
raises :class:`~nsrom.errors.OutputError` naming the path, and the temporary
file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import DataError, OutputError

TEMP_MARKER = ".partial-"
"""Part of every temporary name (``.<name>.partial-XXXX<suffix>``): a run killed while writing leaves these."""

NAME_MAX = 255
"""Longest file name (bytes) of the usual file systems (ext4, XFS, APFS, NTFS in characters)."""

WRITE_FAILURES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for the file system",
    errno.ENAMETOOLONG: "file name too long",
}
"""``errno`` values that mean the output location cannot take the file (as opposed to a bug)."""


def file_in_the_way(folder: str | Path) -> Path | None:
    """The first part of ``folder`` (from the root down, ``folder`` included) that exists and is not a folder."""
    folder = Path(folder)
    for part in [*reversed(folder.parents), folder]:
        if os.path.lexists(part) and not os.path.isdir(part):
            return part
    return None


def output_error(path: str | Path, exc: OSError, folder: str | Path | None = None) -> OutputError:
    """The user-facing error for an ``OSError`` raised while writing ``path``.

    ``folder`` is the folder that was being created for ``path``; when a file
    stands where that folder (or one above it) should be, the error names it.
    """
    if folder is not None and exc.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = file_in_the_way(folder)
        if blocker is not None:
            return OutputError(
                f"cannot write {path}: {blocker} is a file, not a folder; "
                "move that file away or choose another output folder"
            )
    if exc.errno == errno.EISDIR and Path(path).is_dir():
        return OutputError(f"cannot write {path}: it is a folder; give a file name or choose another output")
    reason = WRITE_FAILURES.get(exc.errno, exc.strerror or str(exc))
    if exc.errno == errno.ENAMETOOLONG:
        remedy = f"shorten the name (at most {NAME_MAX} bytes) or its folder's path"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        remedy = "free some space"
    else:
        remedy = "fix the permissions"
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
        raise output_error(path, exc, folder=path) from None
    return path


def _flush_to_disk(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temporary(path: Path) -> Path:
    """Create an empty temporary file beside ``path`` with the mode ``open(path, "w")`` would give.

    Unlike :func:`tempfile.mkstemp` (always 0o600) the file is created with
    0o666 and the process's umask applies, so results stay readable by the
    group and others exactly as a plain write would leave them.
    """
    tail_bytes = len(f"{TEMP_MARKER}{secrets.token_hex(4)}{path.suffix}".encode()) + 1
    stem = path.stem
    while stem and len(stem.encode()) + tail_bytes > NAME_MAX:  # a name that fits leaves room for the tag
        stem = stem[:-1]
    for _ in range(100):
        tmp = path.parent / f".{stem}{TEMP_MARKER}{secrets.token_hex(4)}{path.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; flush it to the disk and rename it to ``path`` on success.

    The temporary file keeps ``path``'s suffix so that writers that pick a
    format from the extension (PIL, OpenCV, numpy) behave as for ``path``,
    and is created with the mode of a plain write (0o666 less the umask).
    On an exception the temporary file is removed and ``path`` is untouched;
    a write failure (disk full, no permission, a folder under that name or a
    file where a folder should be) becomes :class:`OutputError`, and so does a path that names no file
    (an empty ``--out ''``, ``.``, ``..``).
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise OutputError(f"cannot write {str(path)!r}: not a file name; give the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temporary(path)
    except OSError as exc:
        raise output_error(path, exc, folder=path.parent) from None
    try:
        yield tmp
        _flush_to_disk(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if is_write_failure(exc) or (isinstance(exc, IsADirectoryError) and path.is_dir()):
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
        tmp.write_text(text, encoding="utf-8")


def atomic_write_texts(texts: Mapping[Path, str]) -> None:
    """Write several text files as one: every file goes to a temporary name first (:func:`atomic_path`),
    and only once all are written are they renamed into place. A failure on any (a full disk, a
    read-only file) leaves every one of them as it was: files that belong together (lists, their class
    list, the dataset's settings) are never left half from one run and half from another."""
    for path in map(Path, texts):  # the one failure a rename could still meet, checked before anything is written
        if path.is_dir():
            raise OutputError(f"cannot write {path}: it is a folder; move it away (nothing of this set was written)")
    with contextlib.ExitStack() as stack:  # a failed write unwinds the temporaries written before it
        for path, text in texts.items():
            stack.enter_context(atomic_path(path)).write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically; a NaN or infinite float is written as
    null (JSON has no NaN)."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (in dicts, lists and tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def read_json(path: str | Path) -> Any:
    """Read a JSON file; one that is not valid JSON (UTF-8) is a :class:`DataError` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); fix or delete it") from None


def read_text(path: str | Path) -> str:
    """The text of a file the user wrote (an image list, labels.txt, a CSV, a YAML file): UTF-8,
    a leading byte-order mark (as spreadsheet programs save) dropped. A file that does not exist,
    a folder, or a file that is not UTF-8 is a :class:`DataError` naming it."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a file") from None


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
