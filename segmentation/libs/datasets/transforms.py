"""Input pipeline of DeepLab-v2 training and testing (NSROM.md stage 4, "Data").

Images are BGR float32 on the 0..255 scale; the mean is subtracted after the
augmentation, so padding with the mean gives zeros in the network input.
Labels are resized with nearest neighbour using PIL's pixel-centre convention
(output pixel ``i`` takes input pixel ``floor((i + 0.5) * in / out)``).
"""

from __future__ import annotations

import random
from typing import Sequence

import cv2
import numpy as np
import torch

from nsrom.classes import IGNORE_INDEX

TRAIN_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)
"""Random rescaling factors of training (DATASET.SCALES)."""
FLIP_PROB = 0.5
"""Chance of a horizontal flip in training."""


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each of ``n_out`` output pixels for nearest resizing from ``n_in``."""
    idx = np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64)
    return np.minimum(idx, n_in - 1)


def resize_label(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an ``(H, W)`` label map to ``(height, width)``."""
    rows = nearest_indices(label.shape[0], height)
    cols = nearest_indices(label.shape[1], width)
    return label[rows[:, None], cols[None, :]]


def resize_labels(labels: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Nearest resize of a batch ``(N, H, W)`` of labels to ``size = (h, w)``.

    Stage 4 loss rule: each MSC output is compared with the label resized to
    that output's size.
    """
    height, width = int(size[0]), int(size[1])
    rows = torch.from_numpy(nearest_indices(labels.shape[1], height)).to(labels.device)
    cols = torch.from_numpy(nearest_indices(labels.shape[2], width)).to(labels.device)
    return labels.index_select(1, rows).index_select(2, cols)


def rescale(
    image: np.ndarray, label: np.ndarray, factor: float, base_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Resize image (bilinear) and label (nearest) by ``factor``.

    With ``base_size`` the long side is first brought to ``base_size``
    (IMAGE.SIZE.BASE); sizes are truncated to integers as in deeplab-pytorch.
    """
    h, w = label.shape
    if base_size:
        h, w = (base_size, int(base_size * w / h)) if h > w else (int(base_size * h / w), base_size)
    h, w = max(int(h * factor), 1), max(int(w * factor), 1)
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    return image, resize_label(label, h, w)


def pad_to(
    image: np.ndarray, label: np.ndarray, size: int, mean_bgr: Sequence[float], ignore: int = IGNORE_INDEX
) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right up to ``size``: the image with the mean colour, the label with ``ignore``."""
    h, w = label.shape
    pad_h, pad_w = max(size - h, 0), max(size - w, 0)
    if pad_h == 0 and pad_w == 0:
        return image, label
    image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=[float(v) for v in mean_bgr])
    label = np.pad(label, ((0, pad_h), (0, pad_w)), mode="constant", constant_values=ignore)
    return image, label


def random_crop(
    image: np.ndarray, label: np.ndarray, size: int, rng: random.Random
) -> tuple[np.ndarray, np.ndarray]:
    """The same random ``size x size`` window of image and label (both at least ``size``)."""
    h, w = label.shape
    top, left = rng.randint(0, h - size), rng.randint(0, w - size)
    return image[top:top + size, left:left + size], label[top:top + size, left:left + size]


def random_hflip(
    image: np.ndarray, label: np.ndarray, rng: random.Random, prob: float = FLIP_PROB
) -> tuple[np.ndarray, np.ndarray]:
    """Flip image and label left-right together with probability ``prob``."""
    if rng.random() < prob:
        return image[:, ::-1].copy(), label[:, ::-1].copy()
    return image, label


def augment(
    image: np.ndarray,
    label: np.ndarray,
    *,
    scales: Sequence[float],
    crop_size: int,
    mean_bgr: Sequence[float],
    rng: random.Random,
    base_size: int | None = None,
    ignore: int = IGNORE_INDEX,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage 4 training augmentation: random scale, pad to the crop, random crop, random h-flip."""
    image, label = rescale(image, label, rng.choice(list(scales)), base_size)
    image, label = pad_to(image, label, crop_size, mean_bgr, ignore)
    image, label = random_crop(image, label, crop_size, rng)
    return random_hflip(image, label, rng)


def to_network_input(image_bgr: np.ndarray, mean_bgr: Sequence[float]) -> np.ndarray:
    """``(H, W, 3)`` BGR 0..255 -> ``(3, H, W)`` float32 minus the mean (no std division)."""
    image = np.asarray(image_bgr, dtype=np.float32) - np.asarray(mean_bgr, dtype=np.float32)
    return np.ascontiguousarray(image.transpose(2, 0, 1))
