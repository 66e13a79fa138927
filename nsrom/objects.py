"""The record of a generated dataset's objects, and where each stage puts their pixels.

A generator that knows its objects writes, besides the layout of :mod:`nsrom.data`::

    ROOT/SegmentationObject/<id>.png   instance index per pixel: 0 background, i for the
                                       i-th object of the image's record, 255 boundary
                                       (the convention of VOC's own SegmentationObject)
    ROOT/objects.json                  {"<id>": [{"instance": i, "class": c, "saliency": s}, ...]}

with ``c`` the 0-based class and ``s`` one of ``salient``, ``faint`` (weak in the
saliency map) and ``missing`` (absent from it). Real VOC has no such record.

NSROM's claim is about the ``missing`` objects: the saliency map calls them
background, and POM (docs/method.md, stage 3) and NSRM (stage 6) are meant to
keep them from being learnt as background. :func:`object_shares` counts, over
the pixels of the objects of one saliency status, the share a label map gives
the object's own class, ignore (255), background (0) or another class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .classes import IGNORE_INDEX
from .data import INSTANCE_MASK_DIR, DataLayout
from .errors import DataError
from .files import read_json, write_json
from .images import read_label, write_label

OBJECT_DIR = INSTANCE_MASK_DIR
RECORD_FILE = "objects.json"
SALIENCY_STATUSES = ("salient", "faint", "missing")
MISSED = "missing"
"""The status of objects that the saliency map misses."""
OUTCOMES = ("right_class", "ignored", "background", "other_class")
"""Where a label map puts an object pixel, in the order of :func:`object_counts`."""


@dataclass(frozen=True)
class ObjectRecord:
    """One object of an image: its instance index in ``SegmentationObject``, class and saliency status."""

    instance: int
    cls: int
    saliency: str

    def to_json(self) -> dict:
        return {"instance": self.instance, "class": self.cls, "saliency": self.saliency}


def instance_mask_path(root: str | Path, image_id: str) -> Path:
    return Path(root) / OBJECT_DIR / f"{image_id}.png"


def record_path(root: str | Path) -> Path:
    return Path(root) / RECORD_FILE


def has_record(root: str | Path) -> bool:
    """True when the dataset at ``root`` records its objects (``objects.json``)."""
    return record_path(root).is_file()


def write_objects(root: str | Path, image_id: str, instances: np.ndarray) -> None:
    """Write one image's instance mask (``uint8``: 0, 1..N, 255)."""
    write_label(instance_mask_path(root, image_id), instances)


def write_record(root: str | Path, objects: Mapping[str, Iterable[ObjectRecord]]) -> None:
    write_json(record_path(root), {i: [o.to_json() for o in objs] for i, objs in objects.items()})


def read_record(root: str | Path) -> dict[str, list[ObjectRecord]]:
    """``objects.json`` as records; a malformed entry is a :class:`DataError` naming it."""
    path = record_path(root)
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path} must map image ids to lists of objects, not hold a {type(raw).__name__}")
    out: dict[str, list[ObjectRecord]] = {}
    for image_id, objs in raw.items():
        try:
            out[image_id] = [ObjectRecord(int(o["instance"]), int(o["class"]), str(o["saliency"])) for o in objs]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: entry of {image_id} needs instance, class and saliency ({exc})") from None
        bad = [o.saliency for o in out[image_id] if o.saliency not in SALIENCY_STATUSES]
        if bad:
            raise DataError(f"{path}: {image_id} has saliency {bad[0]!r}; use one of {', '.join(SALIENCY_STATUSES)}")
    return out


def object_counts(label: np.ndarray, instances: np.ndarray, objects: Iterable[ObjectRecord]) -> np.ndarray:
    """Pixels of each object by outcome: ``(len(objects), 4)`` counts in the order of :data:`OUTCOMES`.

    An object's pixels are those whose instance index is its ``instance``;
    ``label`` holds 0 background, ``k + 1`` class k, 255 ignore.
    """
    label = np.asarray(label)
    if label.shape != instances.shape:
        raise DataError(f"label {label.shape} and instance mask {instances.shape} differ in size")
    rows = []
    for obj in objects:
        values = label[instances == obj.instance]
        right = int(np.count_nonzero(values == obj.cls + 1))
        ignored = int(np.count_nonzero(values == IGNORE_INDEX))
        background = int(np.count_nonzero(values == 0))
        rows.append((right, ignored, background, values.size - right - ignored - background))
    return np.asarray(rows, dtype=np.int64).reshape(-1, len(OUTCOMES))


def object_shares(
    layout: DataLayout,
    ids: Iterable[str],
    label_dir: str | Path,
    status: str = MISSED,
    record: Mapping[str, list[ObjectRecord]] | None = None,
) -> dict:
    """Shares of the pixels of the ``status`` objects of ``ids`` that ``label_dir``'s PNGs
    give their class, ignore, background or another class.

    Returns ``{"objects": n, "pixels": p, "right_class": ..., "ignored": ...,
    "background": ..., "other_class": ...}`` (shares of ``p``; all 0 when ``p`` is 0).
    A missing label PNG is a :class:`DataError`.
    """
    record = read_record(layout.root) if record is None else record
    total = np.zeros(len(OUTCOMES), dtype=np.int64)
    count = 0
    for image_id in ids:
        objs = [o for o in record.get(image_id, []) if o.saliency == status]
        if not objs:
            continue
        instance_path, label_path = instance_mask_path(layout.root, image_id), Path(label_dir) / f"{image_id}.png"
        instances, label = read_label(instance_path, "instance mask"), read_label(label_path)
        if label.shape != instances.shape:
            raise DataError(f"label {label_path} {label.shape} and instance mask {instance_path} "
                            f"{instances.shape} differ in size")
        counts = object_counts(label, instances, objs)
        total += counts.sum(axis=0)
        count += int((counts.sum(axis=1) > 0).sum())
    pixels = int(total.sum())
    shares = {name: (float(v) / pixels if pixels else 0.0) for name, v in zip(OUTCOMES, total)}
    return {"status": status, "objects": count, "pixels": pixels, **shares}
