"""Where a map or a label goes wrong, in shares of the objects' pixels.

An mIoU says how much is wrong, not where. :func:`error_kinds` sorts the errors
of one scored output (a CAM folder at its best background threshold, or a
label folder) into what a WSSS researcher asks of them:

* ``missed``: object pixels labelled background (the map does not reach them);
* ``other_class``: object pixels labelled another class;
* ``ignored``: object pixels a label ignores (labels only);
* ``background_near``: background pixels within :data:`NEAR_PIXELS` of an object
  labelled with a class (the map spills over the object's edge);
* ``background_far``: background pixels farther away labelled with a class
  (activations on the background itself).

Each is a fraction of the object pixels (ground truth 1..C, ignore excluded),
so that the five can be compared across outputs and datasets. "Near" is the
chessboard distance: a square of side ``2 * NEAR_PIXELS + 1`` around each object
pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

NEAR_PIXELS = 5
"""Background within this many pixels (chessboard distance) of an object pixel is "near"."""


def far_background(gt: np.ndarray, num_classes: int, near: int = NEAR_PIXELS) -> np.ndarray:
    """Bool mask of the background pixels (``gt == 0``) farther than ``near`` pixels from every object pixel.

    Object pixels are ``1 <= gt < num_classes`` (255 and other values are neither).
    """
    gt = np.asarray(gt)
    objects = ((gt >= 1) & (gt < num_classes)).astype(np.uint8)
    reach = cv2.dilate(objects, np.ones((2 * near + 1, 2 * near + 1), np.uint8)).astype(bool)
    return (gt == 0) & ~reach


def error_kinds(confusion: np.ndarray, background_far: int, ignored: int | None = None) -> dict:
    """The errors of one output as fractions of its object pixels (module docstring).

    ``confusion``: ``(n, n)`` counts, rows the ground truth, columns the output,
    class 0 the background, over the pixels the output labels (not ignored);
    ``background_far``: how many far background pixels the output labels with a
    class; ``ignored``: how many object pixels it ignores (None for CAMs, which
    ignore nothing). Returns ``object_pixels`` and the shares; all shares are 0
    when there is no object pixel.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    objects = confusion[1:, :]
    labelled_objects = int(objects.sum())
    total = labelled_objects + (ignored or 0)
    background_labelled = int(confusion[0, 1:].sum())
    counts = {
        "missed": int(objects[:, 0].sum()),
        "other_class": labelled_objects - int(objects[:, 0].sum()) - int(np.trace(confusion[1:, 1:])),
        "background_near": background_labelled - background_far,
        "background_far": background_far,
    }
    if ignored is not None:
        counts["ignored"] = ignored
    return {"object_pixels": total, **{k: v / total if total else 0.0 for k, v in counts.items()}}


def describe(kinds: dict) -> str:
    """One line: each share in % of the object pixels."""
    names = {"missed": "missed", "other_class": "other class", "ignored": "ignored",
             "background_near": f"background within {NEAR_PIXELS} px labelled",
             "background_far": "farther background labelled"}
    parts = ", ".join(f"{label} {100 * kinds[key]:.1f}" for key, label in names.items() if key in kinds)
    return f"errors, % of the {kinds['object_pixels']} object pixels: {parts}"
