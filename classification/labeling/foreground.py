"""The minimum-foreground rule shared by docs/method.md, stage 3 (step 6) and stage 6."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from nsrom.classes import IGNORE_INDEX

MIN_FOREGROUND_FRACTION = 0.01
"""Stage 3 step 6 / stage 6: a label whose foreground covers fewer than this share
of the image's pixels is discarded (all ignore)."""


def foreground_pixels(label: np.ndarray) -> int:
    """Number of pixels whose label is a foreground class (not 0, not 255)."""
    label = np.asarray(label)
    return int(((label != 0) & (label != IGNORE_INDEX)).sum())


def foreground_fraction(label: np.ndarray) -> float:
    """Share of the image's pixels whose label is a foreground class (not 0, not 255)."""
    label = np.asarray(label)
    return foreground_pixels(label) / label.size if label.size else 0.0


def apply_min_foreground(label: np.ndarray, min_fraction: float = MIN_FOREGROUND_FRACTION) -> np.ndarray:
    """docs/method.md, stage 3 step 6 (and stage 6): all-ignore if foreground < 1% of the pixels.

    "Fewer than 1%" is a strict comparison: exactly 1% keeps the label. The
    denominator is every pixel of the image (ignored pixels included).
    Returns a new array; ``label`` is not modified.
    """
    label = np.array(label, copy=True)
    # Exact rational comparison of the pixel count, so that exactly 1% is never lost to float rounding.
    if foreground_pixels(label) < Fraction(min_fraction).limit_denominator(10**6) * label.size:
        label[...] = IGNORE_INDEX
    return label
