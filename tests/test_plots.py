"""The report's background-threshold curves (runner/plots.py) on hand-built results."""

from __future__ import annotations

import numpy as np
from PIL import Image

from runner.plots import SERIES, Axes, curve_points, draw_threshold_curves


def results_with_curves() -> dict:
    cam = {"0.1": 0.05, "0.5": 0.20, "0.9": 0.35}
    oacam = {"0.1": 0.10, "0.5": 0.40, "0.9": 0.30}
    accumulated = {"0.1": 0.15, "0.5": 0.30, "0.9": 0.25}
    return {"cam": {"curve": cam, "best_threshold": 0.9, "miou": 0.35},
            "accumulated": {"curve": accumulated, "best_threshold": 0.5, "miou": 0.30},
            "oacam": {"curve": oacam, "best_threshold": 0.5, "miou": 0.40}, "pseudo_label": {"miou": 0.5}}


def test_curves_are_drawn_at_their_values(tmp_path):
    results = results_with_curves()
    out = draw_threshold_curves(results, tmp_path / "figures" / "cam_thresholds.png")
    image = np.asarray(Image.open(out).convert("RGB"))
    axes = Axes.for_curves([curve_points(results["cam"]), curve_points(results["oacam"])])
    assert axes.y_max == 50  # highest mIoU 40 %: the axis goes to the next multiple of 10 above
    assert curve_points(results["cam"]) == [(0.1, 0.05), (0.5, 0.20), (0.9, 0.35)]
    for key, _, colour in SERIES:
        for threshold, miou in curve_points(results[key]):
            x, y = axes.pixel(threshold, 100 * miou)
            assert tuple(image[y, x]) == colour, (key, threshold)
    x, y = axes.pixel(0.3, 30)  # far from both curves and the legend: background or grid
    assert tuple(image[y, x]) in {(255, 255, 255), (225, 225, 225)}


def test_a_run_without_accumulated_maps_draws_the_other_curves(tmp_path):
    results = results_with_curves()
    del results["accumulated"]
    image = np.asarray(Image.open(draw_threshold_curves(results, tmp_path / "c.png")).convert("RGB"))
    axes = Axes.for_curves([curve_points(results["cam"]), curve_points(results["oacam"])])
    colours = {key: colour for key, _, colour in SERIES}
    x, y = axes.pixel(0.5, 40)
    assert tuple(image[y, x]) == colours["oacam"]
    assert colours["accumulated"] not in {tuple(p) for p in image.reshape(-1, 3)}


def test_no_curve_no_figure(tmp_path):
    assert draw_threshold_curves({"pseudo_label": {"miou": 0.5}}, tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()
