"""CAM normalisations and file names used across stages (docs/method.md, stages 1, 1b, 2, 3)."""

from __future__ import annotations

import cv2
import numpy as np

EPS = 1e-8
"""Added to denominators so that an all-zero map stays all zero."""


def class_map_name(image_id: str, cls: int) -> str:
    """File name of the map of one (image, 0-based class): ``<id>_<c>.png``, as CAMs, OA-CAMs and the
    accumulated maps of stage 1 are stored (docs/method.md, stages 1, 1b and 2)."""
    return f"{image_id}_{cls}.png"


def max_normalize(cam: np.ndarray) -> np.ndarray:
    """Negatives to 0, then divide by the max (+1e-8): values in [0, 1] (for a finite map).

    Stage 1 (OAA) and stage 1b/2 export apply this per (image, class) map;
    works on one map ``(h, w)`` or a stack ``(n, h, w)`` (each map separately).
    """
    cam = np.maximum(np.asarray(cam, dtype=np.float32), 0)
    peak = cam.reshape(cam.shape[0], -1).max(axis=1) if cam.ndim == 3 else cam.max()
    peak = np.asarray(peak, dtype=np.float32)
    if cam.ndim == 3:
        peak = peak[:, None, None]
    return cam / (peak + EPS)


def to_uint8(cam01: np.ndarray, round_nearest: bool = False) -> np.ndarray:
    """``[0, 1]`` map times 255 as uint8: truncated, or rounded to nearest with ``round_nearest``.

    CAM / OA-CAM export truncates (docs/method.md, stage 1b); the stored
    accumulated maps of stage 1 are rounded half to even (0.6 -> 1, 2.5 -> 2,
    254.6 -> 255), as the original's ``cv2.imwrite`` of a float map does.
    """
    scaled = np.clip(np.asarray(cam01, dtype=np.float32) * np.float32(255.0), 0, 255)
    if round_nearest:
        scaled = np.rint(scaled)  # numpy rounds halves to even, like OpenCV's saturate_cast
    return scaled.astype(np.uint8)


def minmax_normalize(cam: np.ndarray) -> np.ndarray:
    """``(x - min) / (max - min + 1e-8)``: stage 3 applies this to each OA-CAM and CAM."""
    cam = np.asarray(cam, dtype=np.float32)
    lo = cam.min()
    return (cam - lo) / (cam.max() - lo + EPS)


def resize_to_image(att: np.ndarray, height: int, width: int) -> np.ndarray:
    """An 8-bit map at CAM resolution resized to ``height x width`` with bicubic interpolation (stage 1b).

    The export of CAMs / OA-CAMs uses it; scoring the accumulated maps of stage
    1 (kept at CAM resolution) against the masks resizes them the same way.
    """
    return cv2.resize(np.asarray(att, dtype=np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
