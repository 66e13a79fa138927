"""The source task on which the CPU demo makes its stand-ins for pretrained weights.

The paper starts VGG16 from ImageNet weights (stages 1 and 2) and DeepLab-v2
from COCO-pretrained weights (stages 4 and 7); docs/method.md, stages 1 and 4.
Those files are large, need a download, and only fit the full-width networks.
The demo makes weights of its own instead, for its narrow networks, by training
them on this task, which is *not* the demo's target data:

* images of 1 to 4 objects of random form (star-shaped polygons, ellipses,
  boxes, rings) in any colour, with random textures, on muted textured
  backgrounds;
* every pixel labelled with its object's colour class: one of
  :data:`HUE_BINS` hue ranges of saturated colours, dark or light grey, or
  background (0).

So the stand-ins learn what ImageNet and COCO features give a real run: local
colour, texture and "object versus background" features. They learn nothing
of a target dataset's classes (none of its images, shapes or class
definitions is seen). :func:`train_dense` is the per-pixel training loop
both stand-ins use.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

LOG = logging.getLogger(__name__)

HUE_BINS = 12
"""Saturated colours are labelled by their hue, in this many equal ranges of the hue circle."""
ACHROMATIC = ("dark", "light")
"""Two more classes: dark and light grey objects."""
NUM_SOURCE_CLASSES = HUE_BINS + len(ACHROMATIC)
"""Object classes of the source task (background not counted)."""
MAX_SOURCE_OBJECTS = 4


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """RGB float32 of an OpenCV-range HSV colour (H 0..180, S and V 0..255)."""
    pixel = np.array([[[h % 180, np.clip(s, 0, 255), np.clip(v, 0, 255)]]], dtype=np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _pattern(rng: np.random.Generator, h: int, w: int, kind: int, period: float) -> np.ndarray:
    """A texture in [-1, 1]: 0 flat, 1 stripes, 2 smooth noise, 3 dots, 4 checker."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, np.pi)
    u, v = xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)
    if kind == 1:
        return np.sign(np.sin(2 * np.pi * u / period)).astype(np.float32)
    if kind == 2:
        cells = max(2, int(max(h, w) / period))
        return np.clip(cv2.resize(rng.normal(0, 0.6, (cells, cells)).astype(np.float32), (w, h)), -1, 1)
    if kind == 3:
        return np.where(np.hypot(u % period - period / 2, v % period - period / 2) < period / 4, 1.0, -0.3).astype(np.float32)
    if kind == 4:
        return np.sign(np.sin(np.pi * u / period) * np.sin(np.pi * v / period)).astype(np.float32)
    return np.zeros((h, w), np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Muted colours (saturation below 90 of 255) with a coarse and a fine texture."""
    image = _hsv(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(60, 200))
    cells = int(rng.integers(2, 9))
    coarse = rng.normal(0, rng.uniform(5, 35), size=(cells, cells, 3)).astype(np.float32)
    image = image + cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    kind = int(rng.integers(5))
    image = image + _pattern(rng, h, w, kind, rng.uniform(4, 24))[..., None] * rng.uniform(3, 25)
    return image + rng.normal(0, rng.uniform(2, 8), (h, w, 3)).astype(np.float32)


def _object_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """0/1 mask of one object of random form and size."""
    r = rng.uniform(0.07, 0.3) * min(h, w)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    mask = np.zeros((h, w), np.uint8)
    form = int(rng.integers(4))
    if form == 0:  # star-shaped polygon
        n = int(rng.integers(3, 11))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = r * rng.uniform(0.45, 1.0, n)
        pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    elif form == 1:
        axes = (max(1, int(r)), max(1, int(r * rng.uniform(0.3, 1.0))))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    elif form == 2:
        box = cv2.boxPoints(((cx, cy), (2 * r, 2 * r * rng.uniform(0.3, 1.0)), rng.uniform(0, 180)))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    else:
        cv2.circle(mask, (int(cx), int(cy)), max(2, int(r)), 1, -1)
        cv2.circle(mask, (int(cx), int(cy)), max(1, int(r * rng.uniform(0.3, 0.6))), 0, -1)
    return mask


def _object_colour(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A colour and its source class (1-based): a hue bin, or dark / light grey."""
    k = int(rng.integers(NUM_SOURCE_CLASSES))
    if k < HUE_BINS:
        hue = (k + rng.uniform(0.15, 0.85)) * 180 / HUE_BINS
        return _hsv(hue, rng.uniform(130, 255), rng.uniform(110, 255)), k + 1
    grey = rng.uniform(10, 45) if ACHROMATIC[k - HUE_BINS] == "dark" else rng.uniform(215, 250)
    return np.full(3, grey, np.float32) + rng.uniform(-6, 6, 3).astype(np.float32), k + 1


def source_sample(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One source image (``(H, W, 3)`` uint8 RGB) and its label (``(H, W)`` uint8, 0 background)."""
    image = _background(rng, height, width)
    label = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(1, MAX_SOURCE_OBJECTS + 1))):
        mask = _object_mask(rng, height, width)
        colour, cls = _object_colour(rng)
        texture = _pattern(rng, height, width, int(rng.integers(5)), rng.uniform(3, 12))
        fill = colour * (1 + rng.uniform(0.05, 0.25) * texture[..., None])
        image = np.where(mask[..., None] > 0, fill, image)
        label[mask > 0] = cls
    return np.clip(image, 0, 255).astype(np.uint8), label


def source_set(num_images: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``num_images`` square source samples: images ``(N, S, S, 3)`` uint8 and labels ``(N, S, S)``."""
    children = np.random.SeedSequence([seed, 0x50]).spawn(num_images)
    samples = [source_sample(np.random.default_rng(child), size, size) for child in children]
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def train_dense(
    model: nn.Module,
    to_input: Callable[[np.ndarray], torch.Tensor],
    images: np.ndarray,
    labels: np.ndarray,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    desc: str = "source task",
) -> list[float]:
    """Per-pixel cross-entropy training of ``model`` (logits at any stride) on the source task.

    Adam with a poly-decaying rate; each step a random batch, flipped left-right
    at random. ``to_input`` turns a ``(B, H, W, 3)`` uint8 RGB batch into the
    network's input. Logits are upsampled bilinearly to the label size. Returns
    the loss of every step; a non-finite loss raises ``FloatingPointError``.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    target_all = torch.from_numpy(labels.astype(np.int64))
    losses = []
    bar = tqdm(range(steps), desc=desc, dynamic_ncols=True, leave=False)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr * (1 - step / steps) ** 0.9
        index = torch.randint(len(images), (batch_size,), generator=generator)
        x, y = to_input(images[index.numpy()]), target_all[index]
        if bool(torch.rand((), generator=generator) < 0.5):
            x, y = x.flip(3), y.flip(2)
        logits = F.interpolate(model(x), size=y.shape[1:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"{desc}: loss {value} at step {step}")
        losses.append(value)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
    LOG.info("%s: %d steps, loss %.3f -> %.3f (mean of the last 20)", desc, steps, losses[0], float(np.mean(losses[-20:])))
    return losses


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, to_input: Callable[[np.ndarray], torch.Tensor],
                          images: np.ndarray, batch_size: int) -> None:
    """Set every BatchNorm's running mean/variance to their exact averages over ``images``.

    Training updates the running statistics slowly (and DeepLab's BN momentum is
    0.001), so after a short training they lag; the stand-ins are used with
    frozen BN (DeepLab) or with BN folded into the convs (VGG16), which need the
    statistics of the trained network.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for start in range(0, len(images), batch_size):
        model(to_input(images[start:start + batch_size]))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()
