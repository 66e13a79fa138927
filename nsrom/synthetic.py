"""A small synthetic dataset in the VOC layout that exercises NSROM end to end.

Real PASCAL VOC, saliency maps and pretrained weights cannot be fetched in CI,
so every stage is also run on this data, through the same code paths.

Each image has a textured background and 1 to 3 objects of ``num_classes``
classes; a class is a (shape, colour, texture) combination, so a classifier
can tell classes apart. The saliency map is a blurred, noisy copy of the
object masks in which "non-salient" objects are faint or missing: these are the
objects NSROM's potential object mining and non-salient region masking are
meant to recover. As a real detector, the simulated one misses small and
low-contrast objects more often than others, and it misses some classes far
more often than the rest (the first ``rarely_salient`` classes): on VOC, chairs,
tables, bottles and potted plants are seldom the salient object of a photo.
Whether an object is salient is drawn from a random stream of its own, so the
images of a seed do not depend on the saliency settings. Ground-truth masks
carry a 1-pixel ignore (255) border between regions, as VOC's do.

Output is deterministic for a seed (:func:`generate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from tqdm import tqdm

from .classes import IGNORE_INDEX, write_class_names
from .errors import ConfigError
from .data import DataLayout, TRAIN_SPLIT, VAL_SPLIT, classes_in_mask, write_cls_list, write_ids
from .files import write_json
from .images import write_grey, write_label, write_rgb
from .objects import ObjectRecord, write_objects, write_record

MAX_SIDE = 2048
"""The largest image side the generators make (tools/make_synthetic_voc.py, tools/blob_voc.py): a dataset of
this kind at more would take minutes per image and gigabytes, and a typo such as 60000 would end in
an allocation error half way through writing."""

SHAPES = ("disc", "square", "triangle", "diamond", "cross", "ring", "star")
TEXTURES = ("solid", "stripes", "dots", "checker")
MAX_OBJECTS = 3
SMALL_RADIUS = 0.14
"""Objects whose radius is below this fraction of the short side count as small."""
LOW_CONTRAST_PROB = 0.2
"""Chance that an object is drawn blended into the background (low contrast)."""
NON_SALIENT_PROB = {"small": 0.6, "low_contrast": 0.4, "other": 0.1}
"""Chance that the saliency map misses an object (faint or missing), by kind. A detector misses
small and low-contrast objects more often, and any object now and then; every kind is also
salient in other images, so what the saliency map misses can be learnt from what it finds."""
RARELY_SALIENT_PROB = 0.75
"""Chance that the saliency map misses (leaves out) an object of a rarely salient class, whatever its kind."""
RARELY_SALIENT_CLASSES = 1
"""Default number of rarely salient classes (the first ones)."""
SALIENCY_FLOOR = 4.0
"""Below this (0..255) the saliency map is 0: a detector's map is empty away from what it found."""
MISSING_PROB = 0.5
"""Chance that a non-salient object is absent from the saliency map (else faint)."""


@dataclass(frozen=True)
class ClassStyle:
    """How objects of one class look."""

    name: str
    shape: str
    texture: str
    colour: tuple[int, int, int]


def class_styles(num_classes: int) -> list[ClassStyle]:
    """Distinct (shape, texture, colour) per class; colours spread over the hue circle."""
    if not 1 <= num_classes <= len(SHAPES) * len(TEXTURES):
        raise ConfigError(f"num_classes must be in 1..{len(SHAPES) * len(TEXTURES)}, got {num_classes}")
    styles = []
    for k in range(num_classes):
        shape = SHAPES[k % len(SHAPES)]
        texture = TEXTURES[(k // len(SHAPES) + k) % len(TEXTURES)]
        hue = int(180 * ((k * 0.618034) % 1.0))  # OpenCV hue range 0..179
        hsv = np.array([[[hue, 220, 230]]], dtype=np.uint8)
        colour = tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
        styles.append(ClassStyle(f"{texture}_{shape}", shape, texture, colour))
    return styles


def _shape_mask(shape: str, h: int, w: int, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    """Binary mask (uint8 0/1) of one object outline filled."""
    mask = np.zeros((h, w), dtype=np.uint8)
    centre = (int(round(cx)), int(round(cy)))

    def polygon(n: int, radii: list[float], offset: float) -> np.ndarray:
        pts = []
        for i in range(n * len(radii)):
            a = offset + 2 * np.pi * i / (n * len(radii))
            rr = r * radii[i % len(radii)]
            pts.append((cx + rr * np.cos(a), cy + rr * np.sin(a)))
        return np.round(np.array(pts)).astype(np.int32)

    if shape == "disc":
        cv2.circle(mask, centre, int(round(r)), 1, -1)
    elif shape == "ring":
        cv2.circle(mask, centre, int(round(r)), 1, -1)
        cv2.circle(mask, centre, int(round(r * 0.5)), 0, -1)
    elif shape == "square":
        cv2.fillPoly(mask, [polygon(4, [1.0], angle + np.pi / 4)], 1)
    elif shape == "diamond":
        cv2.fillPoly(mask, [polygon(4, [1.0], 0.0)], 1)
    elif shape == "triangle":
        cv2.fillPoly(mask, [polygon(3, [1.0], angle - np.pi / 2)], 1)
    elif shape == "star":
        cv2.fillPoly(mask, [polygon(5, [1.0, 0.45], angle - np.pi / 2)], 1)
    elif shape == "cross":
        t = max(1, int(round(r * 0.35)))
        x0, y0, ri = centre[0], centre[1], int(round(r))
        cv2.rectangle(mask, (x0 - ri, y0 - t), (x0 + ri, y0 + t), 1, -1)
        cv2.rectangle(mask, (x0 - t, y0 - ri), (x0 + t, y0 + ri), 1, -1)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return mask


def _texture(texture: str, h: int, w: int, period: float, angle: float) -> np.ndarray:
    """Brightness modulation in [-1, 1] for a texture name."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    if texture == "solid":
        return np.zeros((h, w), np.float32)
    if texture == "stripes":
        return np.sign(np.sin(2 * np.pi * u / period)).astype(np.float32)
    if texture == "checker":
        return np.sign(np.sin(np.pi * u / period) * np.sin(np.pi * v / period)).astype(np.float32)
    if texture == "dots":
        d = np.hypot((u % period) - period / 2, (v % period) - period / 2)
        return np.where(d < period / 4, -1.0, 0.3).astype(np.float32)
    raise ValueError(f"unknown texture {texture!r}")


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth low-chroma noise plus a gradient and fine grain, float32 RGB 0..255.

    The background is nearly grey (a faint tint), so that objects are told apart
    by their saturated colours, shapes and textures, not by the scene.
    """
    base = rng.uniform(70, 170) + rng.uniform(-12, 12, size=3)
    coarse = (rng.normal(0, 22, size=(4, 4, 1)) + rng.normal(0, 6, size=(4, 4, 3))).astype(np.float32)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    direction = rng.uniform(-1, 1, size=2)
    gradient = (direction[0] * gx / w + direction[1] * gy / h)[..., None] * 30
    grain = rng.normal(0, 6, size=(h, w, 3)).astype(np.float32)
    return np.clip(base + smooth + gradient + grain, 0, 255).astype(np.float32)


@dataclass
class SyntheticSample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) uint8, 0 bg, k+1 class k, 255 border
    saliency: np.ndarray  # (H, W) uint8
    objects: list[dict]  # instance, class, radius, salient/faint/missing
    instances: np.ndarray  # (H, W) uint8, 0 bg, i for objects[i - 1], 255 border


def saliency_status(rng: np.random.Generator, kind: str, rarely_salient: bool) -> str:
    """``salient``, ``faint`` or ``missing``: how the simulated detector sees one object.

    An object of a rarely salient class is missing with :data:`RARELY_SALIENT_PROB`;
    otherwise (and for the other classes) the object is non-salient with the
    chance of its kind (:data:`NON_SALIENT_PROB`), and a non-salient object is
    missing with :data:`MISSING_PROB`, else faint.
    """
    if rarely_salient and rng.random() < RARELY_SALIENT_PROB:
        return "missing"
    if rng.random() < NON_SALIENT_PROB[kind]:
        return "missing" if rng.random() < MISSING_PROB else "faint"
    return "salient"


def render_sample(rng: np.random.Generator, size: int, styles: list[ClassStyle],
                  saliency_rng: np.random.Generator | None = None,
                  rarely_salient: int = RARELY_SALIENT_CLASSES) -> SyntheticSample:
    """One image with its mask and saliency map (see the module docstring).

    ``saliency_rng`` draws the saliency map (``rng`` when None); the first
    ``rarely_salient`` classes of ``styles`` are the ones the detector seldom finds.
    """
    saliency_rng = rng if saliency_rng is None else saliency_rng
    long_side, short_side = size, int(rng.integers(int(0.7 * size), size + 1))
    h, w = (short_side, long_side) if rng.random() < 0.7 else (long_side, short_side)
    image = _background(rng, h, w)
    label = np.zeros((h, w), dtype=np.uint8)
    instances = np.zeros((h, w), dtype=np.uint8)
    saliency = np.zeros((h, w), dtype=np.float32)
    objects = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        k = int(rng.integers(len(styles)))
        style = styles[k]
        r = float(rng.uniform(0.10, 0.26)) * min(h, w)
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        obj = _shape_mask(style.shape, h, w, cy, cx, r, float(rng.uniform(0, np.pi)))
        if obj.sum() == 0:
            continue
        colour = np.array(style.colour, np.float32)
        low_contrast = rng.random() < LOW_CONTRAST_PROB
        if low_contrast:
            colour = 0.45 * colour + 0.55 * image[obj > 0].mean(axis=0)
        mod = _texture(style.texture, h, w, max(3.0, r / 2.5), float(rng.uniform(0, np.pi)))
        fill = colour[None, None, :] * (1 + 0.25 * mod[..., None]) + rng.normal(0, 5, (h, w, 3))
        image = np.where(obj[..., None] > 0, fill, image)
        label[obj > 0] = k + 1
        instances[obj > 0] = len(objects) + 1
        kind = "small" if r < SMALL_RADIUS * min(h, w) else "low_contrast" if low_contrast else "other"
        status = saliency_status(saliency_rng, kind, k < rarely_salient)
        strength = (saliency_rng.uniform(200, 255) if status == "salient"
                    else saliency_rng.uniform(40, 90) if status == "faint" else 0.0)
        saliency = np.where(obj > 0, strength, saliency)
        objects.append({"instance": len(objects) + 1, "class": k, "radius": round(r, 1), "saliency": status})
    sigma = max(1.0, min(h, w) / 40)
    saliency = cv2.GaussianBlur(saliency, (0, 0), sigma)
    # Detector noise where the map responds; elsewhere 0, as a detector's 8-bit output is.
    saliency = np.where(saliency > SALIENCY_FLOOR, saliency + saliency_rng.normal(0, 8, (h, w)), 0.0)
    border = np.zeros((h, w), dtype=bool)
    border[:, 1:] |= label[:, 1:] != label[:, :-1]
    border[1:, :] |= label[1:, :] != label[:-1, :]
    label[border] = IGNORE_INDEX
    instances[border] = IGNORE_INDEX
    return SyntheticSample(
        image=np.clip(image, 0, 255).astype(np.uint8),
        mask=label,
        saliency=np.clip(saliency, 0, 255).astype(np.uint8),
        objects=objects,
        instances=instances,
    )


GeneratedImage = tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[ObjectRecord]]
"""Image id, RGB image, ground truth, saliency map, instance mask and object record of one generated image."""


GENERATOR_FILES = {"synthetic.json": "tools/make_synthetic_voc.py", "blob_voc.json": "tools/blob_voc.py"}
"""Each generator's parameter file (the first file it writes) and the generator: the file says who made a folder."""


def start_generated_dataset(layout: DataLayout, parameter_file: str, parameters: dict) -> None:
    """Claim ``layout.root`` for a generated dataset: refuse a folder that holds other data.

    A generator writes images, masks and split lists under VOC's names, so in a
    folder that already holds a dataset it would overwrite that dataset's files,
    or mix two datasets in one folder. The folder must be missing, empty, or
    written by the same generator before (it holds ``parameter_file`` and no
    other generator's file of :data:`GENERATOR_FILES`); anything else is a
    :class:`ConfigError` naming the folder and what it holds. The parameter file
    is written first, so that a run interrupted half-way may be run again into
    the same folder.
    """
    root = layout.root
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir()) if root.is_dir() else []
    others = [name for name in GENERATOR_FILES if name != parameter_file and (root / name).is_file()]
    if others:
        held = f"a dataset made by {GENERATOR_FILES[others[0]]} ({others[0]})"
    elif found and not (root / parameter_file).is_file():
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        held = f"files that no generator wrote ({shown}; no {' / '.join(GENERATOR_FILES)})"
    else:
        write_json(root / parameter_file, parameters)
        return
    raise ConfigError(f"{root} already holds {held}: writing a dataset there would overwrite or mix its images, "
                      "masks and lists; give --out a new or empty folder")


def write_generated_dataset(layout: DataLayout, splits: dict[str, list[str]], num_classes: int,
                            images: Iterable[GeneratedImage], jpeg_quality: int = 95) -> None:
    """Write generated images into ``layout`` with the lists, ``train_cls.txt`` and the object record.

    ``images`` gives every id of ``splits`` once; each image is written as it
    comes (image, palette mask, saliency map, instance mask), then the split
    lists, the training images' class list (from their masks) and ``objects.json``.
    Both synthetic generators (this module and tools/blob_voc.py) write through it.
    """
    records: dict[str, list[ObjectRecord]] = {}
    classes: dict[str, list[int]] = {}
    total = sum(len(ids) for ids in splits.values())
    for image_id, image, mask, saliency, instances, objects in tqdm(images, total=total, desc="write images",
                                                                   dynamic_ncols=True, leave=False):
        write_rgb(layout.image_path(image_id), image, quality=jpeg_quality)
        write_label(layout.mask_path(image_id), mask)
        write_grey(layout.saliency_path(image_id), saliency)
        write_objects(layout.root, image_id, instances)
        records[image_id] = objects
        classes[image_id] = classes_in_mask(mask, num_classes)
    for split, ids in splits.items():
        if ids:
            write_ids(layout.list_path(split), ids)
        else:  # an empty list is no split (the data check calls one an error), nor is an earlier run's
            layout.list_path(split).unlink(missing_ok=True)
    write_cls_list(layout.cls_list_path, {i: classes[i] for i in splits[TRAIN_SPLIT]})
    write_record(layout.root, records)


def generate(
    out_dir: str | Path,
    num_train: int = 200,
    num_val: int = 100,
    size: int = 160,
    num_classes: int = 5,
    seed: int = 0,
    rarely_salient: int = RARELY_SALIENT_CLASSES,
) -> DataLayout:
    """Write a synthetic dataset in the VOC layout under ``out_dir``; return its layout.

    Writes JPEGImages, SegmentationClassAug (palette PNGs), saliency (every
    image), ImageSets/Segmentation/{train_aug,val,train_cls}.txt, labels.txt,
    the record of the objects (``SegmentationObject/`` and ``objects.json``, see
    :mod:`nsrom.objects`) and synthetic.json (the parameters, written first: see
    :func:`start_generated_dataset`). The first
    ``rarely_salient`` classes are seldom in the saliency maps. The train
    images of a seed do not depend on ``num_val`` or on the saliency settings.
    """
    if num_train < 1 or num_val < 0 or size < 32:
        raise ConfigError("need num_train >= 1, num_val >= 0 and size >= 32")
    if not 0 <= rarely_salient <= num_classes:
        raise ConfigError(f"rarely_salient must be in 0..{num_classes} (the class count), got {rarely_salient}")
    styles = class_styles(num_classes)  # a bad class count stops here, before anything is written
    layout = DataLayout(out_dir)
    start_generated_dataset(layout, "synthetic.json", {
        "num_train": num_train, "num_val": num_val, "size": size, "num_classes": num_classes, "seed": seed,
        "rarely_salient": rarely_salient,
    })
    write_class_names(layout.labels_path, ["background", *(s.name for s in styles)])
    children = np.random.SeedSequence(seed).spawn(num_train + num_val)
    splits = {TRAIN_SPLIT: [f"train_{i:05d}" for i in range(num_train)],
              VAL_SPLIT: [f"val_{i:05d}" for i in range(num_val)]}

    def draw(child: np.random.SeedSequence) -> SyntheticSample:
        scene, detector = (np.random.default_rng(c) for c in child.spawn(2))
        sample = render_sample(scene, size, styles, detector, rarely_salient)
        while not classes_in_mask(sample.mask, num_classes):
            sample = render_sample(scene, size, styles, detector, rarely_salient)
        return sample

    samples = (draw(child) for child in children)
    write_generated_dataset(layout, splits, num_classes, (
        (image_id, s.image, s.mask, s.saliency, s.instances,
         [ObjectRecord(o["instance"], o["class"], o["saliency"]) for o in s.objects])
        for image_id, s in zip(splits[TRAIN_SPLIT] + splits[VAL_SPLIT], samples)))
    return layout
