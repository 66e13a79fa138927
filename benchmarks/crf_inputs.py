"""CRF benchmark inputs: synthetic images with model-like or noisy softmax maps (not a test; nothing runs at import).

The image and its ground truth come from :mod:`nsrom.synthetic` (textured
objects on a grainy background), resized to the requested size. The softmax map
imitates DeepLab's: a one-hot of the ground truth averaged down to stride 8,
times a confidence, plus low-resolution noise, bilinearly upsampled (as
``main.py crf`` upsamples the saved logits); ``noisy`` adds per-pixel noise
on top, a hard case with many near-ties for the CRF.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from nsrom.classes import IGNORE_INDEX
from nsrom.synthetic import class_styles, render_sample
from segmentation.libs.evaluate import upsample_logits

CONFIDENCE = 6.0
"""Logit of the ground-truth class at stride 8 (before noise)."""
LOW_RES_NOISE, PIXEL_NOISE = 2.5, 2.0
"""Std of the stride-8 logit noise (about 91% of pixels right, as DeepLab on VOC) and of the extra per-pixel
noise of ``noisy`` maps."""


def synthetic_inputs(
    seed: int, height: int = 375, width: int = 500, n_classes: int = 21, noisy: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (H, W, 3) uint8, softmax (C, H, W) float32, ground truth (H, W) uint8 with 255 = ignore)."""
    rng = np.random.default_rng(seed)
    sample = render_sample(rng, max(height, width), class_styles(n_classes - 1))
    image = cv2.resize(sample.image, (width, height), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(sample.mask, (width, height), interpolation=cv2.INTER_NEAREST)
    onehot = torch.from_numpy(np.eye(n_classes, dtype=np.float32)[np.where(mask == IGNORE_INDEX, 0, mask)])
    small = F.adaptive_avg_pool2d(onehot.permute(2, 0, 1), (max(1, height // 8), max(1, width // 8)))
    noise = torch.from_numpy(rng.normal(0, LOW_RES_NOISE, tuple(small.shape)).astype(np.float32))
    logits = upsample_logits(CONFIDENCE * small + noise, (height, width))
    if noisy:
        logits += torch.from_numpy(rng.normal(0, PIXEL_NOISE, tuple(logits.shape)).astype(np.float32))
    return image, F.softmax(logits, dim=0).numpy(), mask
