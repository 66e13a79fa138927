"""The background-threshold curves of CAMs and OA-CAMs: ``W/figures/cam_thresholds.png``.

``evaluate_cams`` (nsrom/evaluation.py) scores a CAM folder at every background
threshold of a sweep and keeps the whole curve in results.json (``cam`` and
``oacam``, key ``curve``: threshold -> mIoU; also ``accumulated``, stage 1's accumulated maps). This draws
mIoU (%) against the threshold for each, with each curve's best threshold marked: how
sensitive the scores of stages 1b and 2 are to that one free parameter. Drawn with Pillow.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from nsrom.files import atomic_path

LOG = logging.getLogger(__name__)
SERIES = (("cam", "CAM (stage 1b)", (31, 119, 180)), ("accumulated", "accumulated maps (stage 1)", (44, 160, 44)),
          ("oacam", "OA-CAM (stage 2)", (214, 39, 40)))
"""results.json key, legend, RGB colour of each curve."""
WIDTH, HEIGHT = 640, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 40, 56
"""Plot area margins in pixels (axis labels and ticks go there)."""


@dataclass(frozen=True)
class Axes:
    """Data -> pixel mapping of the plot: x = threshold in [0, 1], y = mIoU (%) in [0, y_max]."""

    y_max: float

    @classmethod
    def for_curves(cls, curves: list[list[tuple[float, float]]]) -> "Axes":
        """y up to the first multiple of 10 strictly above the highest mIoU (room for its marker)."""
        top = max((100 * m for points in curves for _, m in points), default=0.0)
        return cls(10.0 * (math.floor(top / 10.0) + 1))

    def pixel(self, threshold: float, miou_pct: float) -> tuple[int, int]:
        x = LEFT + threshold * (WIDTH - LEFT - RIGHT)
        y = HEIGHT - BOTTOM - miou_pct / self.y_max * (HEIGHT - TOP - BOTTOM)
        return round(x), round(y)


def curve_points(entry: dict) -> list[tuple[float, float]]:
    """``(threshold, mIoU fraction)`` of an evaluate_cams result's curve, by threshold."""
    return sorted((float(t), float(m)) for t, m in entry["curve"].items())


def draw_threshold_curves(results: dict, out: Path) -> Path | None:
    """Draw the curves of ``results`` (results.json) that exist into ``out``; None when there is none."""
    series = [(key, name, colour, curve_points(results[key])) for key, name, colour in SERIES
              if key in results and results[key].get("curve")]
    if not series:
        LOG.info("no CAM threshold curve in the results; %s not drawn", out.name)
        return None
    axes = Axes.for_curves([points for *_, points in series])
    canvas = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    _draw_axes(draw, axes, font)
    for i, (key, name, colour, points) in enumerate(series):
        pixels = [axes.pixel(t, 100 * m) for t, m in points]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for x, y in pixels:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        best = results[key]["best_threshold"]
        bx, by = axes.pixel(best, 100 * results[key]["miou"])
        draw.ellipse((bx - 6, by - 6, bx + 6, by + 6), outline=colour, width=2)
        legend_y = TOP + 8 + 18 * i
        draw.line([(LEFT + 12, legend_y), (LEFT + 36, legend_y)], fill=colour, width=2)
        draw.text((LEFT + 42, legend_y), f"{name}: best {100 * results[key]['miou']:.1f} at {best:g}",
                  fill="black", font=font, anchor="lm")
    draw.text((WIDTH / 2, TOP / 2), "mIoU against the background threshold (train_aug)", fill="black",
              font=ImageFont.load_default(size=14), anchor="mm")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
    LOG.info("threshold curves written to %s", out)
    return out


def _draw_axes(draw: ImageDraw.ImageDraw, axes: Axes, font: ImageFont.ImageFont) -> None:
    """Frame, grid, ticks every 0.1 (threshold) and 5 or 10 % (mIoU), axis titles."""
    grid = (225, 225, 225)
    step = 5 if axes.y_max <= 30 else 10
    for i in range(11):
        x, y0 = axes.pixel(i / 10, 0)
        _, y1 = axes.pixel(i / 10, axes.y_max)
        draw.line([(x, y0), (x, y1)], fill=grid)
        draw.text((x, y0 + 6), f"{i / 10:.1f}", fill="black", font=font, anchor="mt")
    for value in range(0, int(axes.y_max) + 1, step):
        x0, y = axes.pixel(0, value)
        x1, _ = axes.pixel(1, value)
        draw.line([(x0, y), (x1, y)], fill=grid)
        draw.text((x0 - 6, y), str(value), fill="black", font=font, anchor="rm")
    draw.rectangle((*axes.pixel(0, axes.y_max), *axes.pixel(1, 0)), outline="black")
    draw.text((WIDTH / 2, HEIGHT - 14), "background threshold", fill="black", font=font, anchor="mm")
    draw.text((8, TOP - 4), "mIoU (%)", fill="black", font=font, anchor="ls")
