"""Class names, the VOC colour map and the ignore index.

Two index conventions (docs/method.md, "Data contract"):

* classification side: 0-based foreground indices ``0..C-1``
  (VOC: 0 = aeroplane ... 19 = tvmonitor);
* segmentation labels: 0 = background, foreground class ``k`` is ``k + 1``,
  :data:`IGNORE_INDEX` (255) = ignore.

The class list of a dataset comes from ``ROOT/labels.txt`` (``<index> <name>``
per line, background first); without that file it is the 21 VOC classes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import read_text

IGNORE_INDEX = 255
"""Label value of pixels that carry no supervision and are not scored."""


_DECIMAL = re.compile(r"[+-]?[0-9]+")


def parse_index(token: str) -> int | None:
    """The integer that a list token writes in ASCII decimal (``3``, ``03``, ``+3``, ``-1``), else None.

    Every reader of class indices in lists and CSVs goes through this: Python's ``int`` also
    takes ``1_0`` and other scripts' digits, and ``str.isdigit`` takes ``²``, which ``int`` refuses.
    """
    return int(token) if _DECIMAL.fullmatch(token) else None


def values_outside_classes(label: np.ndarray, num_classes: int) -> list[int]:
    """The values of a label map that are neither 0..``num_classes`` (background and the C classes)
    nor :data:`IGNORE_INDEX`, sorted: what makes a mask or label file wrong for the dataset."""
    return [int(v) for v in np.unique(label) if num_classes < v != IGNORE_INDEX]


VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
    "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: ``(n, 3)`` uint8, entry ``i`` is class ``i``'s colour.

    Colour bits are spread from the index bits (bit 0 -> red, 1 -> green,
    2 -> blue, from the most significant colour bit down), as in the VOC devkit.
    """
    palette = np.zeros((n, 3), dtype=np.uint8)
    for index in range(n):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def read_class_names(path: str | Path) -> list[str]:
    """Read ``labels.txt``: ``<index> <name>`` per line, background (index 0) first.

    Indices must be 0, 1, 2, ... in order; raises :class:`DataError` naming the
    file and line otherwise.
    """
    path = Path(path)
    names: list[str] = []
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2 or parse_index(parts[0]) is None:
            raise DataError(f"{path}:{line_no}: expected '<index> <name>', got {line!r}")
        if parse_index(parts[0]) != len(names):
            raise DataError(
                f"{path}:{line_no}: index {parts[0]} out of order (expected {len(names)}); "
                "labels.txt lists background as 0, then classes 1, 2, ..."
            )
        name = " ".join(parts[1:])
        if name in names:  # a CSV or mask naming it could only mean one of them
            raise DataError(f"{path}:{line_no}: class {name!r} is also index {names.index(name)}; class names must "
                            "differ")
        names.append(name)
    if len(names) < 2:
        raise DataError(f"{path}: needs background and at least one class, found {len(names)} lines")
    if len(names) > IGNORE_INDEX:
        raise DataError(f"{path}: {len(names)} classes do not fit below the ignore index {IGNORE_INDEX}")
    return names


def load_class_names(root: str | Path | None) -> list[str]:
    """Class names of the dataset at ``root`` (background first).

    ``ROOT/labels.txt`` when it exists, else the 21 PASCAL VOC classes.
    """
    if root is not None:
        path = Path(root) / "labels.txt"
        if path.is_file():
            return read_class_names(path)
    return list(VOC_CLASSES)


def class_names_text(names: list[str]) -> str:
    """``labels.txt``'s text in the format read by :func:`read_class_names`."""
    return "".join(f"{i} {name}\n" for i, name in enumerate(names))


def write_class_names(path: str | Path, names: list[str]) -> None:
    """Write ``labels.txt`` in the format read by :func:`read_class_names`."""
    from .files import atomic_write_text

    atomic_write_text(path, class_names_text(names))
