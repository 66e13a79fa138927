"""A second synthetic VOC-format dataset, made differently from nsrom/synthetic.py.

    python tools/blob_voc.py --out data/blob_voc [--classes 5] [--num-train 200] [--num-val 40] [--seed 0]

It exists to check that the demo preset works on data of the same kind that the
project's own generator did not make (benchmarks/demo_generators.py runs both).
What differs from nsrom/synthetic.py:

* classes: a colour (hues evenly spaced from a random offset, saturation and
  value drawn per class), a shape family (smooth blob, ellipse, rounded box,
  crescent, hexagon, capsule) and a texture (smooth noise, rings, grid, speckle,
  shading); objects of a class vary in size, elongation and rotation;
* images: each side drawn between ``--min-size`` and ``--max-size`` (not a fixed
  long side); backgrounds are plaid, Voronoi cells, coloured multi-scale noise
  or wood rings, all in muted colours;
* saliency: a soft mask from the distance to the object edge (not a blurred
  copy), with uneven strength, a stray blob on the background now and then,
  and each object independently absent with probability ``--missing`` (0.25),
  whatever its size or contrast;
* ground truth: a 2-pixel ignore band on every boundary; ids ``blob_000123``.

It writes the same layout, labels.txt, train_cls.txt and the object record of
:mod:`nsrom.objects` (``SegmentationObject/``, ``objects.json``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nsrom.classes import IGNORE_INDEX, write_class_names
from nsrom.data import TRAIN_SPLIT, VAL_SPLIT, DataLayout, classes_in_mask
from nsrom.arg_types import whole_number
from nsrom.errors import ConfigError, exit_on_error
from nsrom.objects import ObjectRecord, read_record
from nsrom.synthetic import MAX_SIDE, start_generated_dataset, write_generated_dataset

SHAPES = ("blob", "ellipse", "rounded_box", "crescent", "hexagon", "capsule")
TEXTURES = ("noise", "rings", "grid", "speckle", "shading")
BACKGROUNDS = ("plaid", "cells", "noise", "wood")
MAX_OBJECTS = 3
MISSING_SHARE = 0.25
"""Default chance that an object is absent from the saliency map."""
STRAY_PROB = 0.15
"""Chance of a false saliency blob on the background."""


@dataclass(frozen=True)
class BlobClass:
    name: str
    shape: str
    texture: str
    hsv: tuple[float, float, float]  # OpenCV ranges: H 0..180, S and V 0..255


def blob_classes(num_classes: int, rng: np.random.Generator) -> list[BlobClass]:
    """Colour-distinct classes: evenly spaced hues from a random offset, shuffled shapes and textures."""
    if not 2 <= num_classes <= len(SHAPES) * len(TEXTURES):
        raise ConfigError(f"--classes must be in 2..{len(SHAPES) * len(TEXTURES)}, got {num_classes}")
    offset = rng.uniform(0, 180)
    shapes = rng.permutation(len(SHAPES))
    textures = rng.permutation(len(TEXTURES))
    out = []
    for k in range(num_classes):
        hue = (offset + 180 * k / num_classes) % 180
        shape, texture = SHAPES[shapes[k % len(SHAPES)]], TEXTURES[textures[k % len(TEXTURES)]]
        hsv = (hue, rng.uniform(150, 240), rng.uniform(150, 245))
        out.append(BlobClass(f"{shape}_{k}", shape, texture, hsv))
    return out


def hsv_colour(h: float, s: float, v: float) -> np.ndarray:
    """RGB (0..255 float) of an OpenCV-range HSV colour."""
    pixel = np.array([[[h % 180, np.clip(s, 0, 255), np.clip(v, 0, 255)]]], dtype=np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    grid = rng.normal(0, 1, size=(cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A muted textured background, float32 RGB."""
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    c1 = hsv_colour(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(70, 200))
    c2 = hsv_colour(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(70, 200))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "plaid":
        a = rng.uniform(0, np.pi)
        p1, p2 = rng.uniform(6, 30, size=2)
        t = 0.5 + 0.25 * (np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / p1)
                          + np.sin(2 * np.pi * (-xx * np.sin(a) + yy * np.cos(a)) / p2))
    elif kind == "cells":
        n = int(rng.integers(6, 25))
        pts = np.stack([rng.uniform(0, w, n), rng.uniform(0, h, n)], 1)
        dist = (xx[..., None] - pts[:, 0]) ** 2 + (yy[..., None] - pts[:, 1]) ** 2
        t = rng.uniform(0, 1, n)[dist.argmin(axis=2)].astype(np.float32)
    elif kind == "noise":
        t = 0.5 + 0.25 * (_smooth_noise(rng, h, w, 4)[..., 0] + 0.5 * _smooth_noise(rng, h, w, 16)[..., 0])
    else:  # wood
        cy, cx = rng.uniform(-h, 2 * h), rng.uniform(-w, 2 * w)
        r = np.hypot(yy - cy, xx - cx) + 6 * _smooth_noise(rng, h, w, 6)[..., 0]
        t = 0.5 + 0.5 * np.sin(2 * np.pi * r / rng.uniform(5, 18))
    t = np.clip(t, 0, 1)[..., None]
    image = c1 * (1 - t) + c2 * t + 10 * _smooth_noise(rng, h, w, 3, 3)
    return image + rng.normal(0, rng.uniform(2, 7), size=(h, w, 3)).astype(np.float32)


def shape_mask(rng: np.random.Generator, shape: str, h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    """0/1 mask of one object of a shape family with random proportions and rotation."""
    mask = np.zeros((h, w), np.uint8)
    angle = rng.uniform(0, 180)
    centre = (int(round(cx)), int(round(cy)))
    if shape == "blob":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        radius = np.ones_like(t)
        for f in (2, 3, 4):
            radius += rng.uniform(0, 0.18) * np.cos(f * t + rng.uniform(0, 2 * np.pi))
        pts = np.stack([cx + r * radius * np.cos(t), cy + r * radius * np.sin(t)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    elif shape == "ellipse":
        axes = (max(1, int(r)), max(1, int(r * rng.uniform(0.45, 0.8))))
        cv2.ellipse(mask, centre, axes, angle, 0, 360, 1, -1)
    elif shape == "rounded_box":
        side = r * rng.uniform(0.7, 1.0)
        box = cv2.boxPoints(((cx, cy), (2 * side, 2 * side * rng.uniform(0.6, 1.0)), angle))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
        mask = cv2.dilate(cv2.erode(mask, np.ones((5, 5), np.uint8)), np.ones((5, 5), np.uint8))
    elif shape == "crescent":
        cv2.circle(mask, centre, max(2, int(r)), 1, -1)
        a = np.deg2rad(angle)
        off = (int(round(cx + 0.45 * r * np.cos(a))), int(round(cy + 0.45 * r * np.sin(a))))
        cv2.circle(mask, off, max(1, int(0.8 * r)), 0, -1)
    elif shape == "hexagon":
        t = np.deg2rad(angle) + np.arange(6) * np.pi / 3
        pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    elif shape == "capsule":
        a = np.deg2rad(angle)
        dx, dy = 0.6 * r * np.cos(a), 0.6 * r * np.sin(a)
        p, q = (int(round(cx - dx)), int(round(cy - dy))), (int(round(cx + dx)), int(round(cy + dy)))
        cv2.line(mask, p, q, 1, thickness=max(2, int(0.8 * r)))
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return mask


def texture(rng: np.random.Generator, kind: str, h: int, w: int, r: float) -> np.ndarray:
    """Multiplicative brightness modulation around 1 for an object texture."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "noise":
        return 1 + 0.2 * _smooth_noise(rng, h, w, 8)[..., 0]
    if kind == "rings":
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        return 1 + 0.2 * np.sin(np.hypot(yy - cy, xx - cx) / max(1.5, r / 5))
    if kind == "grid":
        p = max(4.0, r / 3)
        return 1 - 0.3 * (((xx % p) < 1.5) | ((yy % p) < 1.5))
    if kind == "speckle":
        return 1 + 0.25 * (rng.random((h, w)) < 0.12) - 0.1
    return 1 + 0.25 * ((xx / w) - 0.5) * rng.choice([-1, 1]) + 0.25 * ((yy / h) - 0.5)


def soft_saliency(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Saliency of one salient object: a ramp over the distance to its edge, uneven in strength."""
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3)
    width = rng.uniform(1.5, 5.0)
    shift = rng.uniform(-1.5, 2.5)  # the map runs a little outside or inside the object
    ramp = np.clip(0.5 + (inside - outside + shift) / (2 * width), 0, 1)
    h, w = mask.shape
    strength = rng.uniform(170, 255) * (1 + 0.15 * _smooth_noise(rng, h, w, 3)[..., 0])
    return ramp * strength


def render(rng: np.random.Generator, classes: list[BlobClass], min_size: int, max_size: int, missing: float):
    """One image: RGB, ground truth, saliency, instance mask and the object record."""
    h, w = int(rng.integers(min_size, max_size + 1)), int(rng.integers(min_size, max_size + 1))
    image = background(rng, h, w)
    label = np.zeros((h, w), np.uint8)
    instances = np.zeros((h, w), np.uint8)
    saliency = np.zeros((h, w), np.float32)
    record: list[ObjectRecord] = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        k = int(rng.integers(len(classes)))
        cls = classes[k]
        r = rng.uniform(0.09, 0.28) * min(h, w)
        cy, cx = rng.uniform(0.6 * r, h - 0.6 * r), rng.uniform(0.6 * r, w - 0.6 * r)
        mask = shape_mask(rng, cls.shape, h, w, cy, cx, r)
        if mask.sum() < 16:
            continue
        hue, sat, val = cls.hsv
        colour = hsv_colour(hue + rng.uniform(-4, 4), sat * rng.uniform(0.85, 1.05), val * rng.uniform(0.75, 1.05))
        fill = colour * texture(rng, cls.texture, h, w, r)[..., None] + rng.normal(0, 4, (h, w, 3))
        image = np.where(mask[..., None] > 0, fill, image)
        status = "missing" if rng.random() < missing else "salient"
        label[mask > 0] = k + 1
        instances[mask > 0] = len(record) + 1
        saliency = np.where(mask > 0, 0.0, saliency)  # an occluder hides what is behind it
        if status == "salient":
            saliency = np.maximum(saliency, soft_saliency(mask, rng))
        record.append(ObjectRecord(len(record) + 1, k, status))
    if rng.random() < STRAY_PROB:
        stray = np.zeros((h, w), np.uint8)
        cv2.circle(stray, (int(rng.integers(w)), int(rng.integers(h))), int(0.1 * min(h, w)), 1, -1)
        saliency = np.maximum(saliency, cv2.GaussianBlur(stray.astype(np.float32), (0, 0), 3) * rng.uniform(60, 140))
    saliency += rng.normal(0, 5, (h, w))
    band = cv2.dilate((cv2.Laplacian(label.astype(np.float32), cv2.CV_32F) != 0).astype(np.uint8), np.ones((2, 2), np.uint8))
    label[band > 0] = IGNORE_INDEX
    instances[band > 0] = IGNORE_INDEX
    return (np.clip(image, 0, 255).astype(np.uint8), label, np.clip(saliency, 0, 255).astype(np.uint8),
            instances, record)


def generate_blobs(
    out_dir: str | Path,
    num_train: int = 200,
    num_val: int = 40,
    num_classes: int = 5,
    min_size: int = 112,
    max_size: int = 200,
    missing: float = MISSING_SHARE,
    seed: int = 0,
) -> DataLayout:
    """Write the dataset under ``out_dir`` (see the module docstring); returns its layout."""
    if num_train < 1 or num_val < 0 or not 48 <= min_size <= max_size or not 0 <= missing <= 1:
        raise ConfigError("need --num-train >= 1, --num-val >= 0, 48 <= --min-size <= --max-size and "
                          "0 <= --missing <= 1")
    layout = DataLayout(out_dir)
    root_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    classes = blob_classes(num_classes, root_rng)
    start_generated_dataset(layout, "blob_voc.json", {
        "generator": "tools/blob_voc.py", "num_train": num_train, "num_val": num_val, "num_classes": num_classes,
        "min_size": min_size, "max_size": max_size, "missing": missing, "seed": seed,
        "classes": [c.__dict__ for c in classes],
    })
    write_class_names(layout.labels_path, ["background", *(c.name for c in classes)])
    splits = {TRAIN_SPLIT: [f"blob_{i:06d}" for i in range(num_train)],
              VAL_SPLIT: [f"blob_{num_train + i:06d}" for i in range(num_val)]}
    seeds = np.random.SeedSequence([seed, 2]).spawn(num_train + num_val)

    def draw(image_id: str, child: np.random.SeedSequence):
        rng = np.random.default_rng(child)
        while True:
            image, label, saliency, instances, record = render(rng, classes, min_size, max_size, missing)
            if classes_in_mask(label, num_classes):
                return image_id, image, label, saliency, instances, record

    write_generated_dataset(layout, splits, num_classes,
                            (draw(i, child) for i, child in zip(splits[TRAIN_SPLIT] + splits[VAL_SPLIT], seeds)),
                            jpeg_quality=90)
    return layout


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="dataset root to write")
    p.add_argument("--num-train", type=int, default=200)
    p.add_argument("--num-val", type=int, default=40)
    p.add_argument("--classes", type=int, default=5, help="foreground classes (default 5)")
    p.add_argument("--min-size", type=whole_number(48, MAX_SIDE), default=112, help="smallest image side (default 112)")
    p.add_argument("--max-size", type=whole_number(48, MAX_SIDE), default=200, help="largest image side (default 200)")
    p.add_argument("--missing", type=float, default=MISSING_SHARE, help="chance an object is absent from saliency")
    p.add_argument("--seed", type=whole_number(0), default=0)
    return p


@exit_on_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.num_val < 1:
        raise ConfigError(f"--num-val must be at least 1, got {args.num_val} (the demo scores on val)")
    layout = generate_blobs(args.out, args.num_train, args.num_val, args.classes, args.min_size, args.max_size,
                            args.missing, args.seed)
    status = Counter(o.saliency for objs in read_record(layout.root).values() for o in objs)
    print(f"wrote {args.num_train} train_aug + {args.num_val} val images, {args.classes} classes, to {layout.root}; "
          f"objects: {status['salient']} salient, {status['missing']} missing from the saliency map")


if __name__ == "__main__":
    main()
