"""docs/method.md, stage 6: masked pseudo labels with non-salient region masking (NSRM).

Pure functions on arrays. Labels use 0 = background, ``c + 1`` for class ``c``,
255 = ignore. ``pred`` is the stage-5 prediction P, ``pseudo`` the stage-3 pseudo
label L, ``saliency`` the 8-bit saliency map S, all at image size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from nsrom.classes import IGNORE_INDEX

from .foreground import MIN_FOREGROUND_FRACTION, apply_min_foreground
from .settings import check_fraction, rule_error

DILATION_KERNEL_SIZE = 30
"""Stage 6: side of the square kernel that dilates the object mask (P != 0) | (S != 0);
pixels outside the dilated mask become ignore."""
MIN_CLASSES_FOR_MASKING = 2
"""Stage 6: images with at least this many classes are filled and masked; others keep P."""


@dataclass(frozen=True)
class NsrmRules:
    """The settings of stage 6 (docs/method.md, stage 6); the defaults are the paper's.

    Each field is a flag of ``gen_masked_label.py`` (``--`` + the name with
    dashes, :mod:`.settings`) and a value of the
    pipeline presets; the values are recorded with the output folder.
    """

    dilation: int = field(default=DILATION_KERNEL_SIZE, metadata={
        "help": "side of the square kernel that dilates (P != 0) | (S != 0); pixels outside "
                "the dilated mask become ignore (1: no dilation)"})
    min_foreground: float = field(default=MIN_FOREGROUND_FRACTION, metadata={
        "help": "a label with a smaller foreground share of its pixels is all ignore"})

    def __post_init__(self) -> None:
        if int(self.dilation) != self.dilation or self.dilation < 1:
            raise rule_error("dilation", f"must be a whole number of pixels, at least 1, got {self.dilation}")
        check_fraction("min_foreground", self.min_foreground)


def fill_from_pseudo_label(pred: np.ndarray, pseudo: np.ndarray) -> np.ndarray:
    """Stage 6, first rule: where P is background and L a foreground class, take L's class.

    These are pixels round 1 left as background but stage 3 labelled, so salient
    ones (a stage-3 label is foreground only where the saliency map is not 0); the
    objects the saliency map misses are kept by the mask of
    :func:`dilated_object_mask`, not by this fill. Returns a new uint8 array; every
    other pixel keeps P's value.
    """
    label = np.array(pred, dtype=np.uint8, copy=True)
    pseudo = np.asarray(pseudo)
    take = (label == 0) & (pseudo != 0) & (pseudo != IGNORE_INDEX)
    label[take] = pseudo[take]
    return label


def dilated_object_mask(
    pred: np.ndarray, saliency: np.ndarray, kernel_size: int = DILATION_KERNEL_SIZE
) -> np.ndarray:
    """Stage 6, mask: ``(P != 0) | (S != 0)`` dilated with a ``k x k`` square of ones.

    ``cv2.dilate`` with ``np.ones((k, k))`` and its default anchor, the kernel
    centre ``(k // 2, k // 2)``. For the even k = 30 the anchor is element 15,
    so the kernel covers offsets -15..+14 from the output pixel and a single
    mask pixel at ``(y, x)`` grows to rows ``y - 14 .. y + 15`` and columns
    ``x - 14 .. x + 15`` (30 x 30, one more pixel below/right than above/left).
    Pixels beyond the image border do not add to the mask. Returns bool.
    """
    mask = ((np.asarray(pred) != 0) | (np.asarray(saliency) != 0)).astype(np.uint8)
    kernel = np.ones((kernel_size, kernel_size), dtype=np.uint8)
    return cv2.dilate(mask, kernel).astype(bool)


def make_masked_label(
    pred: np.ndarray,
    pseudo: np.ndarray | None,
    saliency: np.ndarray | None,
    num_image_classes: int,
    rules: NsrmRules = NsrmRules(),
) -> np.ndarray:
    """Stage 6 (docs/method.md): the masked pseudo label of one image (uint8, ``H x W``).

    With two or more image-level classes: fill P's background from L's
    foreground (:func:`fill_from_pseudo_label`), then ignore every pixel outside
    :func:`dilated_object_mask` of P and S. With fewer classes (one, or none)
    the label is P unchanged, and ``pseudo`` / ``saliency`` are not needed.
    Both branches end with the 1% foreground rule. ``rules`` holds the
    dilation and the foreground share (the paper's by default).
    """
    pred = np.asarray(pred)
    if num_image_classes < MIN_CLASSES_FOR_MASKING:
        return apply_min_foreground(pred.astype(np.uint8), rules.min_foreground)
    if pseudo is None or saliency is None:
        raise ValueError("an image with two or more classes needs its pseudo label and saliency map")
    for name, arr in (("pseudo label", pseudo), ("saliency map", saliency)):
        if np.shape(arr) != pred.shape:
            raise ValueError(f"{name} has size {np.shape(arr)}, prediction {pred.shape}")
    label = fill_from_pseudo_label(pred, pseudo)
    label[~dilated_object_mask(pred, saliency, int(rules.dilation))] = IGNORE_INDEX
    return apply_min_foreground(label, rules.min_foreground)
