"""Input pipeline of stages 1, 1b and 2 (docs/method.md, stage 1, "Input"), without torchvision.

Training: resize to ``size x size`` (both sides), colour jitter (brightness,
contrast, saturation 0.3, hue 0.1, in random order), ImageNet mean/std. Export:
the same without jitter. No crop, no flip.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageEnhance

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = 256
BRIGHTNESS = CONTRAST = SATURATION = 0.3
"""Jitter strengths: each factor is drawn uniformly from [1 - s, 1 + s]."""
HUE = 0.1
"""Hue shift drawn uniformly from [-0.1, 0.1] of the hue circle."""


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def hue_offset(shift: float) -> int:
    """Hue-channel offset of a ``shift`` (fraction of the circle): ``shift * 255`` truncated toward zero.

    docs/method.md, stage 1 input: the original's copy of torchvision's
    ``adjust_hue`` adds ``np.uint8(hue_factor * 255)``, whose float-to-integer
    cast truncates (0.09 * 255 = 22.95 -> 22; -0.09 * 255 -> -22, i.e. 234 mod 256).
    """
    return int(shift * 255)


def adjust_hue(img: Image.Image, shift: float) -> Image.Image:
    """Rotate the hue of an RGB image by ``shift`` (fraction of the circle, in [-0.5, 0.5])."""
    h, s, v = img.convert("HSV").split()
    hue = np.asarray(h, dtype=np.uint8)
    hue = (hue.astype(np.int16) + hue_offset(shift)) % 256  # wraps around the circle
    h = Image.fromarray(hue.astype(np.uint8), mode="L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


class ColorJitter:
    """Random brightness, contrast, saturation and hue changes, applied in random order.

    Draws from torch's random state (or ``generator``), so DataLoader workers
    get different draws.
    """

    def __init__(
        self,
        brightness: float = BRIGHTNESS,
        contrast: float = CONTRAST,
        saturation: float = SATURATION,
        hue: float = HUE,
        generator: torch.Generator | None = None,
    ):
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
        self.generator = generator

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> Image.Image:
        """Jitter ``img``; draws from ``generator`` if given, else from the one of the constructor."""
        g = generator if generator is not None else self.generator
        ops = []
        if self.brightness > 0:
            f = _uniform(max(0.0, 1 - self.brightness), 1 + self.brightness, g)
            ops.append(lambda im, f=f: ImageEnhance.Brightness(im).enhance(f))
        if self.contrast > 0:
            f = _uniform(max(0.0, 1 - self.contrast), 1 + self.contrast, g)
            ops.append(lambda im, f=f: ImageEnhance.Contrast(im).enhance(f))
        if self.saturation > 0:
            f = _uniform(max(0.0, 1 - self.saturation), 1 + self.saturation, g)
            ops.append(lambda im, f=f: ImageEnhance.Color(im).enhance(f))
        if self.hue > 0:
            f = _uniform(-self.hue, self.hue, g)
            ops.append(lambda im, f=f: adjust_hue(im, f))
        for i in torch.randperm(len(ops), generator=g).tolist():
            img = ops[i](img)
        return img


def to_normalized_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> ``(3, H, W)`` float tensor, ImageNet mean/std normalised."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    arr = (arr - np.asarray(IMAGENET_MEAN, dtype=np.float32)) / np.asarray(IMAGENET_STD, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class InputTransform:
    """Resize to ``size x size`` (bilinear), optional colour jitter, normalise."""

    def __init__(self, size: int = DEFAULT_INPUT_SIZE, jitter: ColorJitter | None = None):
        self.size = size
        self.jitter = jitter

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        img = img.resize((self.size, self.size), Image.BILINEAR)
        if self.jitter is not None:
            img = self.jitter(img, generator)
        return to_normalized_tensor(img)


def train_transform(size: int = DEFAULT_INPUT_SIZE, hue: float = HUE) -> InputTransform:
    """Stage 1/2 training input: resize, colour jitter (hue shifts up to ``hue`` of the circle), normalise."""
    return InputTransform(size, ColorJitter(hue=hue))


def export_transform(size: int = DEFAULT_INPUT_SIZE) -> InputTransform:
    """Stage 1b/2 export input: resize, normalise (no augmentation)."""
    return InputTransform(size, None)
