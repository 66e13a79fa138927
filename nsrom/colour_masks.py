"""Colour-coded masks (an RGB PNG per image, one colour per class) turned into the class-index masks of the layout.

The layout's masks are palette or grey PNGs whose values are class indices
(docs/method.md, "Data contract"). Annotation tools often export the same masks
as RGB images instead: in the PASCAL VOC colours, or in colours of their own
listed in a CVAT-style ``labelmap.txt`` (``name:r,g,b::`` per line, background
first). :class:`ColourMap` says which colour is which index and
:func:`colours_to_indices` converts one mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classes import IGNORE_INDEX, VOC_CLASSES, voc_palette
from .errors import DataError
from .files import read_text

VOID_COLOUR = tuple(int(v) for v in voc_palette()[IGNORE_INDEX])
"""The colour of VOC's 'void' pixels (object borders), index 255."""


def _key(rgb: np.ndarray) -> np.ndarray:
    """One integer per colour: ``r << 16 | g << 8 | b``."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@dataclass(frozen=True)
class ColourMap:
    """Colours and the class index each stands for (``colours[i]`` is index ``indices[i]``)."""

    colours: tuple[tuple[int, int, int], ...]
    indices: tuple[int, ...]
    names: tuple[str, ...] = ()
    """Class names in index order (background first), when the source lists them."""

    @property
    def num_classes(self) -> int:
        """The classes besides background: the highest index other than the ignore index."""
        return max(i for i in self.indices if i != IGNORE_INDEX)

    @classmethod
    def voc(cls, num_classes: int = len(VOC_CLASSES) - 1) -> ColourMap:
        """The PASCAL VOC colours of background and ``num_classes`` classes (entry ``i`` of the palette is
        index ``i``), and void (255). Other palette colours are no class: a blurred edge is not a class."""
        if not 1 <= num_classes < IGNORE_INDEX:
            raise DataError(f"the number of classes must be 1..{IGNORE_INDEX - 1}, got {num_classes}")
        palette = voc_palette()
        indices = (*range(num_classes + 1), IGNORE_INDEX)
        return cls(tuple(tuple(int(v) for v in palette[i]) for i in indices), indices)

    @classmethod
    def from_labelmap(cls, path: str | Path) -> ColourMap:
        """A CVAT-style ``labelmap.txt``: ``name:r,g,b[:...]`` per line in index order ('#' starts a comment);
        VOC's void colour, unless a class uses it, is 255."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"colour map not found: {path}")
        try:
            text = read_text(path)
        except OSError as exc:
            raise DataError(f"cannot read the colour map {path}: {exc}") from None
        names, colours = [], []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split(":")
            try:
                rgb = tuple(int(v) for v in parts[1].split(","))
            except (IndexError, ValueError):
                rgb = ()
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb) or not parts[0].strip():
                raise DataError(f"{path}:{line_no}: expected 'name:r,g,b::', got {line!r}")
            if rgb in colours:
                raise DataError(f"{path}:{line_no}: colour {rgb} is also class {names[colours.index(rgb)]!r}")
            if parts[0].strip() in names:  # labels.txt would then give one name two indices
                raise DataError(f"{path}:{line_no}: class {parts[0].strip()!r} is also line "
                                f"{names.index(parts[0].strip()) + 1}'s; give each class one colour")
            names.append(parts[0].strip())
            colours.append(rgb)
        if len(names) < 2:
            raise DataError(f"{path}: needs background and at least one class, found {len(names)} lines")
        if len(names) > IGNORE_INDEX:
            raise DataError(f"{path}: {len(names)} classes do not fit below the ignore index {IGNORE_INDEX}")
        indices = list(range(len(colours)))
        if VOID_COLOUR not in colours:
            colours.append(VOID_COLOUR)
            indices.append(IGNORE_INDEX)
        return cls(tuple(colours), tuple(indices), tuple(names))


def colours_to_indices(rgb: np.ndarray, colour_map: ColourMap, what: str = "mask") -> np.ndarray:
    """The ``(H, W)`` uint8 class indices of an ``(H, W, 3)`` colour mask.

    A colour that is not in ``colour_map`` is a :class:`DataError` naming the
    colours and their pixel counts (the mask is not guessed at).
    """
    keys = _key(np.asarray(rgb)[..., :3])
    table = dict(zip(_key(np.array(colour_map.colours, dtype=np.uint8)).tolist(), colour_map.indices))
    found, inverse = np.unique(keys.ravel(), return_inverse=True)
    unknown = [(int(k), int(n)) for k, n in zip(found, np.bincount(inverse)) if int(k) not in table]
    if unknown:
        listed = ", ".join(f"({k >> 16}, {(k >> 8) & 255}, {k & 255}) in {n} pixels" for k, n in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise DataError(f"{what} has colours that no class has: {listed}{more} (a blurred or JPEG-compressed "
                        "mask, or another colour map: --colours labelmap.txt)")
    lookup = np.array([table[int(k)] for k in found], dtype=np.uint8)
    return lookup[inverse].reshape(keys.shape)
