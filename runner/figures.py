"""The report's image grids.

``W/figures/qualitative.png``: image, saliency, CAM, OA-CAM, pseudo label, masked
label, round-2 prediction and ground truth for a few train and val images.

``W/figures/missed_objects.png`` (datasets that record their objects,
nsrom/objects.py): a few training images with an object that the saliency map
misses, outlined on every tile, through the stages that decide whether it is
learnt as background: the pseudo labels without and with POM (stage 3), the
round-1 predictions (stage 5), the masked labels (stage 6) and the round-2
predictions. The picture of the table of missed objects in results.md.

Outputs that do not exist for an image (no CAMs for val images, say) are shown
as grey "n/a" tiles.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nsrom.cam import class_map_name
from nsrom.errors import NsromError
from nsrom.files import atomic_path
from nsrom.images import colorize, read_grey, read_label, read_rgb
from nsrom.objects import MISSED, ObjectRecord, has_record, instance_mask_path, read_record
from .context import CLASSIFIER_EXP, IAM_EXP, RunContext
from .seg_rounds import seg_config, seg_paths

if TYPE_CHECKING:
    from segmentation.libs.predictor import Predictor

LOG = logging.getLogger(__name__)
TILE_W, TILE_H, HEADER = 160, 120, 26
COLUMNS = ("image", "saliency", "CAM", "OA-CAM", "pseudo label", "masked label", "round-2 pred.", "ground truth")
MISSED_COLUMNS = ("image", "saliency", "pseudo, no POM", "pseudo label", "round-1 pred.", "masked label",
                  "round-2 pred.", "ground truth")
OUTLINE_RGB = (255, 255, 0)
"""Colour of the missed objects' outline: yellow, which no VOC class colour is."""
ROW_NAME_W = 110


def _resize(rgb: np.ndarray, nearest: bool) -> np.ndarray:
    return cv2.resize(rgb, (TILE_W, TILE_H), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def _blank() -> np.ndarray:
    tile = np.full((TILE_H, TILE_W, 3), 200, np.uint8)
    cv2.putText(tile, "n/a", (TILE_W // 2 - 18, TILE_H // 2 + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (90, 90, 90), 1)
    return tile


def _label_colours(path: Path) -> np.ndarray | None:
    """The VOC colours of a label PNG at image size, None when the file does not exist (an "n/a" tile)."""
    return colorize(read_label(path)) if path.is_file() else None


def cam_overlay(image: np.ndarray, cam_dir: Path, image_id: str, classes: list[int]) -> np.ndarray | None:
    """Max over the image's classes of ``<id>_<c>.png``, as a jet heat map over the image."""
    maps = [read_grey(p) for c in classes if (p := cam_dir / class_map_name(image_id, c)).is_file()]
    if not maps:
        return None
    heat = cv2.applyColorMap(np.max(maps, axis=0), cv2.COLORMAP_JET)[:, :, ::-1]
    return (0.5 * image + 0.5 * heat).astype(np.uint8)


def _round2_predictor(ctx: RunContext) -> "Predictor":
    """The round-2 DeepLab-v2 on single images (segmentation.libs.predictor)."""
    from segmentation.libs.predictor import Predictor

    return Predictor(seg_config(ctx, "round2"), seg_paths(ctx, "round2").final_checkpoint)


def _row(ctx: RunContext, image_id: str, classes: list[int], predictor: "Predictor | None") -> np.ndarray:
    layout = ctx.layout
    image = read_rgb(layout.image_path(image_id))
    sal = layout.saliency_path(image_id)
    tiles = [
        image,
        np.repeat(read_grey(sal)[..., None], 3, axis=2) if sal.is_file() else None,
        cam_overlay(image, ctx.attention_dir(CLASSIFIER_EXP), image_id, classes),
        cam_overlay(image, ctx.attention_dir(IAM_EXP), image_id, classes),
        _label_colours(ctx.pseudo_dir / f"{image_id}.png"),
        _label_colours(ctx.masked_dir / f"{image_id}.png"),
        colorize(predictor.label(image)) if predictor is not None else None,
        _label_colours(layout.mask_path(image_id)),
    ]
    nearest = [False, False, False, False, True, True, True, True]
    return np.concatenate(
        [_resize(t, n) if t is not None else _blank() for t, n in zip(tiles, nearest)], axis=1
    )


def _canvas(rows: list[np.ndarray], columns: tuple[str, ...], row_names: list[str]) -> Image.Image:
    """The rows of tiles under a header of column names, each row named on its left."""
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    canvas = Image.new("RGB", (grid.width + ROW_NAME_W, grid.height + HEADER), "white")
    canvas.paste(grid, (ROW_NAME_W, HEADER))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    for i, name in enumerate(columns):
        draw.text((ROW_NAME_W + i * TILE_W + TILE_W / 2, HEADER / 2), name, fill="black", font=font, anchor="mm")
    for j, name in enumerate(row_names):
        draw.text((4, HEADER + j * TILE_H + TILE_H / 2), name, fill="black", font=font, anchor="lm")
    return canvas


def _save(canvas: Image.Image, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
    LOG.info("figure written to %s", out)
    return out


def draw_figures(ctx: RunContext) -> Path:
    """Write the grid for the first few training and val images; returns its path."""
    n = ctx.preset.figure_images
    layout = ctx.layout
    items = list(layout.labels_for(layout.ids(ctx.train_split)[:n]).items())
    if layout.list_path(ctx.val_split).is_file():
        items += [(image_id, []) for image_id in layout.ids(ctx.val_split)[:n]]  # val images have no CAMs
    try:
        predictor = _round2_predictor(ctx)
    except NsromError as exc:
        LOG.warning("no round-2 predictions in the figure: %s", exc)
        predictor = None
    rows = [_row(ctx, image_id, classes, predictor) for image_id, classes in items]
    return _save(_canvas(rows, COLUMNS, [image_id for image_id, _ in items]), ctx.figure_path("qualitative"))


def outline(tile: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int] = OUTLINE_RGB) -> np.ndarray:
    """``tile`` with the border pixels of ``mask`` (same height and width) painted ``rgb``.

    A border pixel is a pixel of the mask with a 4-neighbour outside it or on
    the tile's edge; the rest of the tile is unchanged.
    """
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    out = np.array(tile, copy=True)
    out[mask & ~inner] = rgb
    return out


def images_with_missed_objects(record: dict[str, list[ObjectRecord]], ids: list[str], n: int) -> list[str]:
    """The first ``n`` of ``ids``, in list order, with at least one object the saliency map misses."""
    return [i for i in ids if any(o.saliency == MISSED for o in record.get(i, []))][:n]


def _missed_row(ctx: RunContext, image_id: str, objects: list[ObjectRecord]) -> np.ndarray:
    layout = ctx.layout
    instances = read_label(instance_mask_path(layout.root, image_id), "instance mask")
    missed = np.isin(instances, [o.instance for o in objects if o.saliency == MISSED])
    tile_mask = _resize(missed.astype(np.uint8), nearest=True).astype(bool)

    def label_tile(path: Path) -> np.ndarray | None:
        colours = _label_colours(path)
        return _resize(colours, nearest=True) if colours is not None else None

    sal = layout.saliency_path(image_id)
    tiles = [
        _resize(read_rgb(layout.image_path(image_id)), nearest=False),
        _resize(np.repeat(read_grey(sal)[..., None], 3, axis=2), nearest=False) if sal.is_file() else None,
        label_tile(ctx.pseudo_no_pom_dir / f"{image_id}.png"),
        label_tile(ctx.pseudo_dir / f"{image_id}.png"),
        label_tile(seg_paths(ctx, "round1").label_crf_dir(ctx.train_split) / f"{image_id}.png"),
        label_tile(ctx.masked_dir / f"{image_id}.png"),
        label_tile(seg_paths(ctx, "round2").label_crf_dir(ctx.train_split) / f"{image_id}.png"),
        label_tile(layout.mask_path(image_id)),
    ]
    return np.concatenate([outline(t, tile_mask) if t is not None else _blank() for t in tiles], axis=1)


def draw_missed_objects(ctx: RunContext) -> Path | None:
    """Write the grid of missed objects (module docstring); ``None`` without an object record or such objects."""
    if not has_record(ctx.data_root):
        return None
    record = read_record(ctx.data_root)
    ids = images_with_missed_objects(record, ctx.layout.ids(ctx.train_split), ctx.preset.figure_images)
    if not ids:
        LOG.info("no training image has an object that the saliency map misses: no %s figure", "missed_objects")
        return None
    rows = [_missed_row(ctx, image_id, record[image_id]) for image_id in ids]
    return _save(_canvas(rows, MISSED_COLUMNS, ids), ctx.figure_path("missed_objects"))
