"""Input pipeline of DeepLab-v2 training and testing (docs/method.md, stage 4, "Data").

Images are BGR float32 on the 0..255 scale; the mean is subtracted after the
augmentation, so padding with the mean gives zeros in the network input.
Labels are resized with nearest neighbour exactly as PIL's ``Image.resize(...,
NEAREST)`` does it (the original code's per-sample path): output pixel ``i`` takes
input pixel ``int(x_i)`` with ``x_0 = 0.5 * in / out`` and ``x_{i+1} = x_i + in / out``
accumulated in double precision (so not always ``floor((i + 0.5) * in / out)``).
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np
import torch

from nsrom.classes import IGNORE_INDEX

FLIP_PROB = 0.5
"""Chance of a horizontal flip in training."""


@lru_cache(maxsize=1024)
def _pil_nearest_indices(n_in: int, n_out: int) -> tuple[int, ...]:
    scale = n_in / n_out
    pos, out = 0.5 * scale, []
    for _ in range(n_out):  # sequential double additions, as PIL's ImagingScaleAffine
        out.append(min(int(pos), n_in - 1))
        pos += scale
    return tuple(out)


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each of ``n_out`` output pixels for nearest resizing from ``n_in`` (PIL's rule)."""
    return np.asarray(_pil_nearest_indices(int(n_in), int(n_out)), dtype=np.int64)


def resize_label(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an ``(H, W)`` label map to ``(height, width)``."""
    rows = nearest_indices(label.shape[0], height)
    cols = nearest_indices(label.shape[1], width)
    return label[rows[:, None], cols[None, :]]


def resize_labels(labels: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Nearest resize of a batch ``(N, H, W)`` of labels to ``size = (h, w)``."""
    return resize_labels_multi(labels, [size])[0]


@lru_cache(maxsize=64)
def _flat_gather_index(height: int, width: int, sizes: tuple[tuple[int, int], ...], device: str) -> torch.Tensor:
    parts = []
    for h, w in sizes:
        rows = torch.tensor(_pil_nearest_indices(height, h), dtype=torch.int64)
        cols = torch.tensor(_pil_nearest_indices(width, w), dtype=torch.int64)
        parts.append((rows[:, None] * width + cols[None, :]).flatten())
    return torch.cat(parts).to(device)


def resize_labels_multi(labels: torch.Tensor, sizes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Nearest resize of a batch ``(N, H, W)`` of labels to every ``(h, w)`` of ``sizes`` in one gather.

    Stage 4 loss rule: each MSC output is compared with the label resized to
    that output's size. The index table is computed once per shape on the host
    (PIL's rule, cached) and the gather runs on the labels' device, so a step
    needs no host round trip; the result equals PIL's per-sample resize.
    """
    sizes = tuple((int(h), int(w)) for h, w in sizes)
    n, height, width = labels.shape
    index = _flat_gather_index(int(height), int(width), sizes, str(labels.device))
    flat = labels.reshape(n, height * width).index_select(1, index)
    chunks = flat.split([h * w for h, w in sizes], dim=1)
    return [c.reshape(n, h, w) for c, (h, w) in zip(chunks, sizes)]


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
