"""What produced an output folder, so that a re-run never mixes two producers in one folder.

Every stage that writes one file per image (CAM / OA-CAM export, ``gen_label.py``,
``gen_masked_label.py``, segmentation logits and CRF labels) keeps a record in
its output folder, ``<folder>/.producer.json``:

* ``stage``: the code that wrote the folder;
* ``checkpoint``: the model, identified by the SHA-256 of the file's content
  (path and size are kept for the reader, not compared: a moved or copied
  checkpoint is the same model; hashing a 500 MB file takes well under a
  second, little beside loading it);
* ``inputs``: each input folder by its own record when it has one (so that a
  new model upstream makes every folder below it stale), else by its path;
* ``settings``: the thresholds and options that change the outputs.

Policy, the same everywhere (docs/method.md, "Outputs and their producers"):
a run whose producer is that of the record continues the folder (files that
exist are kept: an interrupted run resumes). A run with another producer, or
a folder whose files have no record, stops with :class:`StaleOutputError`
naming the folder, what differs and the flag that redoes it; with
``--overwrite`` the folder's outputs are deleted first and redone, so the
folder only ever holds one producer's files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from .errors import DataError, NsromError, OutputError
from .files import ensure_writable_dir, write_json

LOG = logging.getLogger(__name__)

RECORD_NAME = ".producer.json"
"""The record's file name inside the output folder (hidden, outside every output pattern)."""

class StaleOutputError(NsromError):
    """An output folder holds files of another producer (or of an unknown one)."""


@dataclass(frozen=True)
class Producer:
    """What makes the files of one output folder."""

    stage: str
    """The code that writes the folder, e.g. ``gen_label``."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Values that change the outputs (JSON-able; paths become strings)."""
    checkpoint: Path | None = None
    """The model the outputs come from, if any."""
    inputs: Mapping[str, Path] = field(default_factory=dict)
    """Input folders by role (``"oacam"``, ``"saliency"`` ...)."""

    def record(self) -> dict:
        """The JSON record of this producer, as written to ``.producer.json``."""
        raw = {
            "stage": self.stage,
            "checkpoint": checkpoint_identity(self.checkpoint) if self.checkpoint is not None else None,
            "inputs": {name: input_identity(path) for name, path in sorted(self.inputs.items())},
            "settings": dict(self.settings),
            "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return json.loads(json.dumps(raw, default=str))  # tuples -> lists, paths -> strings: as read back


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_identity(path: Path) -> dict:
    """``{"sha256", "path", "size"}`` of a checkpoint; only ``sha256`` is compared."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    return {"sha256": file_sha256(path), "path": str(path.resolve()), "size": path.stat().st_size}


def input_identity(folder: Path) -> dict:
    """``{"path", "producer"}`` of an input folder; ``producer`` is its record or ``None``."""
    return {"path": str(Path(folder).resolve()), "producer": read_record(folder)}


def files_digest(paths: list[Path]) -> str:
    """A short SHA-256 of the names and byte sizes of ``paths`` (stat only): input files made again in
    place under the same names (a dataset generated anew) almost always change it."""
    digest = hashlib.sha256()
    for path in map(Path, paths):
        digest.update(f"{path.name}:{path.stat().st_size if path.is_file() else -1}\n".encode())
    return digest.hexdigest()[:16]


def folder_digest(folder: Path, pattern: str) -> str:
    """A short SHA-256 of the names and contents of the files of ``folder`` that match ``pattern``, in name
    order: any map added, removed or changed in the folder changes it (about 30 ms per thousand small PNGs
    in the page cache)."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob(pattern)):
        if path.is_file():
            digest.update(f"{path.name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()[:16]


def read_record(folder: Path) -> dict | None:
    """The record of ``folder``, or ``None`` when it has none (or an unreadable one)."""
    try:
        record = json.loads((Path(folder) / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _input_key(inp: Mapping | None) -> dict:
    """An input's compared part: its producer's identity, or its path when it has no record."""
    inp = inp or {}
    producer = inp.get("producer")
    return {"producer": identity(producer)} if producer else {"path": inp.get("path")}


def identity(record: Mapping | None) -> dict | None:
    """The compared part of a record: stage, checkpoint hash, settings, and each
    input's own identity (its path only when it has no record)."""
    if record is None:
        return None
    checkpoint = record.get("checkpoint")
    return {
        "stage": record.get("stage"),
        "checkpoint": checkpoint.get("sha256") if isinstance(checkpoint, Mapping) else checkpoint,
        "inputs": {name: _input_key(inp) for name, inp in (record.get("inputs") or {}).items()},
        "settings": record.get("settings"),
    }


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe_input(inp: Mapping) -> str:
    return f"{inp.get('path')} ({'with' if inp.get('producer') else 'without'} a record)"


def differences(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    """Lines saying how two records' identities differ, recursing into inputs (empty: same producer)."""
    lines: list[str] = []
    if old.get("stage") != new.get("stage"):
        lines.append(f"{prefix}stage: {old.get('stage')} -> {new.get('stage')}")
    old_ck, new_ck = old.get("checkpoint") or {}, new.get("checkpoint") or {}
    if old_ck.get("sha256") != new_ck.get("sha256"):
        lines.append(f"{prefix}checkpoint: {old_ck.get('path')} (sha256 {str(old_ck.get('sha256'))[:12]}) -> "
                     f"{new_ck.get('path')} (sha256 {str(new_ck.get('sha256'))[:12]})")
    old_set, new_set = old.get("settings") or {}, new.get("settings") or {}
    for key in sorted(set(old_set) | set(new_set)):
        if old_set.get(key) != new_set.get(key):
            lines.append(f"{prefix}setting {key}: {_short(old_set.get(key))} -> {_short(new_set.get(key))}")
    old_in, new_in = old.get("inputs") or {}, new.get("inputs") or {}
    for name in sorted(set(old_in) | set(new_in)):
        a, b = old_in.get(name) or {}, new_in.get(name) or {}
        if _input_key(a) == _input_key(b):
            continue
        where = f"{prefix}input {name}"
        if a.get("producer") and b.get("producer"):
            where = f"{where} ({b.get('path')})"
            lines += differences(a["producer"], b["producer"], f"{where}: ") or [f"{where}: another producer"]
        else:
            lines.append(f"{where}: {_describe_input(a)} -> {_describe_input(b)}")
    return lines


def prepare_output_dir(
    folder: str | Path, producer: Producer, overwrite: bool, pattern: str, flag: str = "--overwrite"
) -> bool:
    """Make ``folder`` ready for ``producer``'s outputs (files matching ``pattern``); returns ``overwrite``.

    * existing outputs, same producer: kept (resume; the caller skips them);
    * existing outputs of another producer, or without a record:
      :class:`StaleOutputError` naming the folder, what differs and ``flag``;
    * ``overwrite``: every existing output is deleted first, so all are redone.

    Then the record is written (after any deletion, before any new output).
    """
    folder = Path(folder)
    record = producer.record()
    existing = sorted(folder.glob(pattern)) if folder.is_dir() else []
    in_the_way = [path for path in existing if path.is_dir()]
    if in_the_way:
        raise OutputError(f"{in_the_way[0]} is a folder where an output file goes ({len(in_the_way)} such); move "
                          "it away, or write to another folder")
    if existing and not overwrite:
        previous = read_record(folder)
        redo = f"Re-run with {flag} to delete them and redo the folder, or write to another folder."
        if previous is None:
            raise StaleOutputError(
                f"{folder} holds {len(existing)} outputs but no record of what produced them ({RECORD_NAME}: "
                f"made by an older version of this code or by hand), so this run cannot add to them. {redo}"
            )
        changed = differences(previous, record)
        if changed:
            raise StaleOutputError(
                f"{folder} holds {len(existing)} outputs of another producer than this run ({producer.stage}):\n"
                + "".join(f"  - {line}\n" for line in changed)
                + f"Mixing them is refused. {redo}"
            )
    if existing and overwrite:
        LOG.info("%s: deleting %d earlier outputs (%s)", folder, len(existing), flag)
        for path in existing:
            path.unlink(missing_ok=True)
    ensure_writable_dir(folder)
    write_json(folder / RECORD_NAME, record)
    return overwrite
