"""The VOC-format data layout contract, image lists and image-level labels.

Every stage, the synthetic generator and real PASCAL VOC use this layout::

    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClassAug/<id>.png      ground truth (0 bg, 1..C, 255 ignore)
    ROOT/saliency/<id>.png                  8-bit grey saliency at image size
    ROOT/ImageSets/Segmentation/<split>.txt one id per line (train_aug, val, ...)
    ROOT/ImageSets/Segmentation/train_cls.txt  optional: "<id> <c> <c> ..." (0-based)
    ROOT/labels.txt                         optional: "<index> <name>", background first

For the train split the masks serve only to derive image-level labels (when
``train_cls.txt`` is missing) and to evaluate intermediate outputs; no stage
trains on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .classes import IGNORE_INDEX, load_class_names
from .errors import DataError
from .files import atomic_write_text
from .images import read_label

TRAIN_SPLIT = "train_aug"
VAL_SPLIT = "val"


@dataclass(frozen=True)
class DataLayout:
    """Paths of one dataset root that follows the layout contract."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def image_dir(self) -> Path:
        return self.root / "JPEGImages"

    @property
    def mask_dir(self) -> Path:
        return self.root / "SegmentationClassAug"

    @property
    def saliency_dir(self) -> Path:
        return self.root / "saliency"

    @property
    def list_dir(self) -> Path:
        return self.root / "ImageSets" / "Segmentation"

    @property
    def cls_list_path(self) -> Path:
        return self.list_dir / "train_cls.txt"

    @property
    def labels_path(self) -> Path:
        return self.root / "labels.txt"

    def list_path(self, split: str) -> Path:
        return self.list_dir / f"{split}.txt"

    def image_path(self, image_id: str) -> Path:
        return self.image_dir / f"{image_id}.jpg"

    def mask_path(self, image_id: str) -> Path:
        return self.mask_dir / f"{image_id}.png"

    def saliency_path(self, image_id: str) -> Path:
        return self.saliency_dir / f"{image_id}.png"

    def class_names(self) -> list[str]:
        """Class names, background first (``labels.txt`` or the VOC classes)."""
        return load_class_names(self.root)

    @property
    def num_classes(self) -> int:
        """Number of foreground classes C."""
        return len(self.class_names()) - 1

    def ids(self, split: str) -> list[str]:
        """Image ids of ``split`` (``ImageSets/Segmentation/<split>.txt``)."""
        return read_ids(self.list_path(split))

    def image_labels(self, split: str) -> dict[str, list[int]]:
        """Image-level labels (0-based foreground classes) for the ids of ``split``.

        Read from ``train_cls.txt`` when it exists and lists every id of the
        split, otherwise derived from the masks.
        """
        ids = self.ids(split)
        if self.cls_list_path.is_file():
            labels = read_cls_list(self.cls_list_path, self.num_classes)
            if all(i in labels for i in ids):
                return {i: labels[i] for i in ids}
        return derive_image_labels(self, ids)


def _id_from_token(token: str) -> str:
    # Accept deeplab-pytorch style lines ("/JPEGImages/x.jpg /Seg.../x.png") too.
    return Path(token).stem if ("/" in token or "." in token) else token


def read_ids(path: str | Path) -> list[str]:
    """Image ids, one per line (the first token of each non-empty line)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image list not found: {path}")
    ids = [_id_from_token(line.split()[0]) for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"image list {path} is empty")
    return ids


def write_ids(path: str | Path, ids: Iterable[str]) -> None:
    """Write an id list, one per line, atomically."""
    atomic_write_text(path, "".join(f"{i}\n" for i in ids))


def read_cls_list(path: str | Path, num_classes: int | None = None) -> dict[str, list[int]]:
    """Read a ``train_cls.txt`` file: ``<id> <c> <c> ...`` with 0-based classes.

    Raises :class:`DataError` naming the file and line for a non-integer or an
    index outside ``0..num_classes-1``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"class list not found: {path}")
    labels: dict[str, list[int]] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            classes = [int(p) for p in parts[1:]]
        except ValueError:
            raise DataError(f"{path}:{line_no}: class indices must be integers, got {line!r}") from None
        for c in classes:
            if c < 0 or (num_classes is not None and c >= num_classes):
                raise DataError(
                    f"{path}:{line_no}: class index {c} outside 0..{(num_classes or 1) - 1} "
                    "(train_cls.txt uses 0-based foreground classes)"
                )
        labels[_id_from_token(parts[0])] = sorted(set(classes))
    return labels


def write_cls_list(path: str | Path, labels: Mapping[str, Iterable[int]]) -> None:
    """Write image-level labels in the ``train_cls.txt`` format, atomically."""
    lines = [" ".join([image_id, *(str(c) for c in sorted(cls))]) + "\n" for image_id, cls in labels.items()]
    atomic_write_text(path, "".join(lines))


def classes_in_mask(mask: np.ndarray, num_classes: int, where: str = "mask") -> list[int]:
    """0-based foreground classes present in a segmentation mask.

    Mask values 0 (background) and 255 (ignore) are not classes; any other
    value outside ``1..num_classes`` raises :class:`DataError`.
    """
    values = np.unique(mask)
    bad = [int(v) for v in values if v != IGNORE_INDEX and v > num_classes]
    if bad:
        raise DataError(f"{where}: values {bad} outside 0..{num_classes} and {IGNORE_INDEX}")
    return [int(v) - 1 for v in values if 0 < v <= num_classes]


def derive_image_labels(layout: DataLayout, ids: Iterable[str]) -> dict[str, list[int]]:
    """Image-level labels of ``ids`` derived from their masks."""
    num_classes = layout.num_classes
    labels = {}
    for image_id in ids:
        path = layout.mask_path(image_id)
        labels[image_id] = classes_in_mask(read_label(path, "mask"), num_classes, str(path))
    return labels


def label_vector(classes: Iterable[int], num_classes: int) -> np.ndarray:
    """Multi-hot float32 vector of length ``num_classes`` for 0-based ``classes``."""
    vec = np.zeros(num_classes, dtype=np.float32)
    for c in classes:
        vec[c] = 1.0
    return vec
