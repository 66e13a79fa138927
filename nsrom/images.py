"""Reading images, saliency maps and label PNGs; writing label and grey PNGs.

One implementation for every stage. Readers raise :class:`DataError` naming
the file when it is missing or cannot be decoded; writers are atomic.

Label PNGs are palette ('P') PNGs with the VOC colour map whose pixel values
are class indices (0 background, k+1 for class k, 255 ignore). Grey PNGs
(saliency maps, CAMs) are 8-bit single-channel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .classes import voc_palette
from .errors import DataError
from .files import atomic_path

_PALETTE_BYTES = voc_palette(256).tobytes()
_VOC_INDEX = {tuple(rgb): index for index, rgb in enumerate(voc_palette(256).tolist())}


COLOUR_MASK_HINT = " (colour-coded masks: tools/convert_masks.py converts them)"
"""Added to the error about an RGB mask."""

_ORIENTATION = 0x0112
"""The EXIF tag of the orientation: 1 upright, 2-8 mirrored and/or turned."""
_SIDEWAYS = (5, 6, 7, 8)
"""EXIF orientations that turn the stored image by 90 degrees."""


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """``(W, H)`` of ``img`` as it is displayed: its EXIF orientation applied, as the readers do."""
    width, height = img.size
    return (height, width) if img.getexif().get(_ORIENTATION) in _SIDEWAYS else (width, height)


def image_size(path: str | Path, what: str = "image") -> tuple[int, int]:
    """``(W, H)`` of an image file as displayed (:func:`oriented_size`), from its header alone."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        with Image.open(path) as img:
            return oriented_size(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read {what} {path}: {exc}") from None


def _open(path: str | Path, what: str) -> Image.Image:
    """The file decoded, turned as its EXIF orientation says (a phone photo, and a mask an annotation
    tool drew on it, are both the picture as displayed: cv2.imread turns it too)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        img = Image.open(path)
        img.load()
        if img.getexif().get(_ORIENTATION, 1) != 1:  # exif_transpose would copy even an upright image
            img = ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read {what} {path}: {exc}") from None
    return img


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB. A 16-bit grey image keeps its 8 high bits (PIL's own
    conversion would clip it to white); a 32-bit or floating-point one with values outside 0..255 is a
    :class:`DataError`."""
    img = _open(path, "image")
    if img.mode.startswith("I;16"):  # 16-bit grey (I;16, I;16B, I;16L): the high byte of each value
        grey = (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode in ("I", "F"):  # 32-bit integers or floats: their range is the file's own, not guessed at
        values = np.asarray(img)
        if img.mode == "F" or values.min(initial=0) < 0 or values.max(initial=0) > 255:
            raise DataError(f"image {path} has {'floating-point' if img.mode == 'F' else '32-bit integer'} pixels "
                            f"(mode {img.mode}) outside 0..255; save it as an 8-bit image")
        return np.repeat(values.astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def read_grey(path: str | Path, what: str = "grey map") -> np.ndarray:
    """Read an 8-bit grey PNG (saliency map, CAM) as ``(H, W)`` uint8.

    Colour files are converted to luminance; 16-bit files are rejected.
    """
    img = _open(path, what)
    if img.mode in ("I", "I;16", "I;16B", "F"):
        raise DataError(f"{what} {path} has mode {img.mode}; expected an 8-bit grey PNG")
    return np.asarray(img.convert("L"))


def reassigned_palette(img: Image.Image, values: np.ndarray) -> str | None:
    """Why a palette PNG's indices are not its classes, or None.

    A colour-coded VOC mask that an image tool saved as a palette PNG (quantising, optimising)
    keeps VOC's colours but numbers them in its own order: every index it uses has a VOC colour,
    and some index has the colour of another class. Its indices would be read as wrong classes.
    VOC's own palette, and palettes of other colours (index masks drawn in a tool's colours,
    or a grey ramp), are indices as they are: None.
    """
    if img.mode != "P":
        return None
    colours = np.asarray(img.getpalette() or [], np.uint8).reshape(-1, 3)
    used = [v for v in np.flatnonzero(np.bincount(values.ravel(), minlength=256)).tolist() if v < len(colours)]
    owners = {v: _VOC_INDEX.get(tuple(colours[v].tolist())) for v in used}
    if any(owner is None for owner in owners.values()):
        return None
    moved = [(v, owner) for v, owner in owners.items() if owner != v]
    if not moved:
        return None
    index, owner = moved[0]
    return (f"is a palette PNG whose palette gives index {index} the VOC colour of index {owner} "
            f"{tuple(colours[index].tolist())}: a colour-coded mask re-saved with its own palette, whose "
            "indices are not its classes")


def read_label(path: str | Path, what: str = "label") -> np.ndarray:
    """Read a label PNG (palette or grey) as ``(H, W)`` uint8 class indices.

    A palette PNG whose indices are not its classes (:func:`reassigned_palette`) is a
    :class:`DataError` naming the file.
    """
    img = _open(path, what)
    if img.mode not in ("P", "L"):
        hint = COLOUR_MASK_HINT if img.mode in ("RGB", "RGBA") else ""
        raise DataError(f"{what} {path} has mode {img.mode}; expected a palette or grey PNG of class indices{hint}")
    values = np.asarray(img)
    if reason := reassigned_palette(img, values):
        raise DataError(f"{what} {path} {reason}{COLOUR_MASK_HINT}")
    return values


def write_label(path: str | Path, label: np.ndarray) -> None:
    """Write ``label`` (``(H, W)`` class indices) as a VOC-palette PNG, atomically."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be 2-D, got shape {label.shape}")
    if label.min(initial=0) < 0 or label.max(initial=0) > 255:
        raise ValueError(f"label values must lie in 0..255, got {label.min()}..{label.max()}")
    img = Image.fromarray(label.astype(np.uint8), mode="P")
    img.putpalette(_PALETTE_BYTES)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def write_grey(path: str | Path, grey: np.ndarray) -> None:
    """Write ``(H, W)`` uint8 as a grey PNG, atomically."""
    grey = np.asarray(grey)
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise ValueError(f"grey map must be 2-D uint8, got {grey.dtype} {grey.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(grey, mode="L").save(tmp, format="PNG")


def write_rgb(path: str | Path, rgb: np.ndarray, quality: int = 95) -> None:
    """Write ``(H, W, 3)`` uint8 RGB (JPEG or PNG by suffix), atomically."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}")
    fmt = "JPEG" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "PNG"
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, mode="RGB").save(tmp, format=fmt, quality=quality)


def colorize(label: np.ndarray) -> np.ndarray:
    """VOC colours of a label map: ``(H, W)`` indices -> ``(H, W, 3)`` uint8."""
    return voc_palette(256)[np.asarray(label, dtype=np.uint8)]


OVERLAY_ALPHA = 0.5
"""Weight of the label colour in :func:`overlay` (the image keeps the rest)."""


def overlay(rgb: np.ndarray, label: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The image with its labels' VOC colours blended in: ``(1 - alpha) * image + alpha * colour``.

    Background pixels (label 0, black in the palette) keep the image unchanged,
    so only the objects are tinted. Returns ``(H, W, 3)`` uint8, rounded.
    """
    rgb, label = np.asarray(rgb), np.asarray(label)
    if rgb.shape[:2] != label.shape or rgb.ndim != 3:
        raise ValueError(f"image {rgb.shape} and label {label.shape} sizes differ")
    blend = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colorize(label).astype(np.float32)
    out = np.where((label == 0)[..., None], rgb.astype(np.float32), blend)
    return np.rint(out).astype(np.uint8)
