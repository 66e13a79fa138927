"""Where outputs go wrong (nsrom.error_kinds): hand-built masks with known answers, then through evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nsrom.classes import write_class_names
from nsrom.data import DataLayout, write_ids
from nsrom.error_kinds import NEAR_PIXELS, describe, error_kinds, far_background
from nsrom.evaluation import evaluate_cams, evaluate_labels, report
from nsrom.images import write_grey, write_label

IGN = 255


def test_far_background_is_beyond_the_chessboard_distance_of_every_object_pixel():
    gt = np.zeros((21, 21), np.uint8)
    gt[10, 10] = 1
    gt[0, 0] = IGN
    far = far_background(gt, num_classes=3)
    assert NEAR_PIXELS == 5
    assert not far[10, 10]                       # the object itself
    assert not far[10, 15] and not far[15, 15]   # chessboard distance 5: near
    assert far[10, 16] and far[4, 10]            # distance 6: far
    assert not far[0, 0]                         # ignore is neither
    assert far.sum() == 21 * 21 - 11 * 11 - 1


def test_far_background_counts_only_real_classes_as_objects():
    gt = np.zeros((5, 30), np.uint8)
    gt[2, 0] = 7           # not a class of a 3-class dataset: not an object
    gt[2, 29] = 2
    far = far_background(gt, num_classes=3, near=2)
    assert not far[2, 0]                     # not background either
    assert far[2, 1] and far[2, 26] and not far[2, 27]


def test_error_kinds_of_a_known_confusion():
    # rows ground truth, columns output; class 0 background
    confusion = np.array([[50, 6, 4],
                          [3, 10, 2],
                          [1, 0, 4]])
    kinds = error_kinds(confusion, background_far=4, ignored=5)
    assert kinds["object_pixels"] == 20 + 5
    assert kinds["missed"] == pytest.approx(4 / 25)
    assert kinds["other_class"] == pytest.approx(2 / 25)
    assert kinds["background_near"] == pytest.approx(6 / 25)
    assert kinds["background_far"] == pytest.approx(4 / 25)
    assert kinds["ignored"] == pytest.approx(5 / 25)
    cams = error_kinds(confusion, background_far=4)
    assert "ignored" not in cams and cams["missed"] == pytest.approx(4 / 20)
    assert "missed 20.0" in describe(cams) and "20 object pixels" in describe(cams)


def test_error_kinds_without_objects_are_zero():
    kinds = error_kinds(np.array([[9, 1], [0, 0]]), background_far=1)
    assert kinds["object_pixels"] == 0 and kinds["background_far"] == 0.0


def _layout(root: Path) -> DataLayout:
    layout = DataLayout(root)
    write_class_names(layout.labels_path, ["background", "a", "b"])
    write_ids(layout.list_path("train_aug"), ["img"])
    gt = np.zeros((20, 20), np.uint8)
    gt[2:6, 2:6] = 1      # 16 pixels of a
    gt[12:16, 12:16] = 2  # 16 pixels of b
    write_label(layout.mask_path("img"), gt)
    return layout


def test_labels_are_sorted_by_where_they_go_wrong(tmp_path):
    layout = _layout(tmp_path / "root")
    label = np.zeros((20, 20), np.uint8)
    label[2:6, 2:6] = 1
    label[2, 2:6] = 0        # 4 pixels of a missed
    label[3, 2:6] = IGN      # 4 ignored
    label[12:16, 12:16] = 2
    label[12, 12:16] = 1     # 4 pixels of b labelled a
    label[6, 2:6] = 1        # 4 near pixels (distance 1 from a)
    label[19, 0] = 2         # 1 far pixel
    write_label(tmp_path / "labels" / "img.png", label)
    kinds = evaluate_labels(layout, "train_aug", tmp_path / "labels")["error_kinds"]
    assert kinds["object_pixels"] == 32
    assert kinds == pytest.approx({"object_pixels": 32, "missed": 4 / 32, "other_class": 4 / 32,
                                   "background_near": 4 / 32, "background_far": 1 / 32, "ignored": 4 / 32})


def test_cams_are_sorted_at_their_best_threshold(tmp_path):
    layout = _layout(tmp_path / "root")
    cam_a = np.zeros((20, 20), np.uint8)
    cam_a[2:7, 2:6] = 200    # object a, and one row of near background
    cam_a[19, 0] = 200       # one far pixel
    cam_a[0, 19] = 20        # a weak far pixel: labelled at 0.05 only, which makes 0.5 the best threshold
    cam_b = np.zeros((20, 20), np.uint8)
    cam_b[13:16, 12:16] = 200  # row 12 of b is missed at every threshold
    write_grey(tmp_path / "cams" / "img_0.png", cam_a)
    write_grey(tmp_path / "cams" / "img_1.png", cam_b)
    result = evaluate_cams(layout, "train_aug", tmp_path / "cams", thresholds=[0.05, 0.5])
    assert result["best_threshold"] == 0.5
    kinds = result["error_kinds"]
    assert kinds == pytest.approx({"object_pixels": 32, "missed": 4 / 32, "other_class": 0.0,
                                   "background_near": 4 / 32, "background_far": 1 / 32})
    assert "farther background labelled 3.1" in report(result)


def test_results_md_has_a_row_per_output_that_has_them():
    from runner.results import render_markdown

    cams = error_kinds(np.array([[50, 6, 4], [3, 10, 2], [1, 0, 4]]), background_far=4)
    labels = error_kinds(np.array([[50, 6, 4], [3, 10, 2], [1, 0, 4]]), background_far=4, ignored=5)
    results = {"cam": {"miou": 0.5, "class_iou": {}, "error_kinds": cams},
               "pseudo_label": {"miou": 0.6, "class_iou": {}, "error_kinds": labels},
               "seg_round1": {"miou": 0.7, "class_iou": {}}}
    md = render_markdown(results, {}, {})
    assert "Where the training-set outputs go wrong" in md
    assert "| CAM (stage 1b, at its best threshold) | 20.0 | 10.0 | - | 30.0 | 20.0 |" in md
    assert "| pseudo labels (stage 3, with POM) | 16.0 | 8.0 | 20.0 | 24.0 | 16.0 |" in md
    assert "go wrong" not in render_markdown({"seg_round1": {"miou": 0.7, "class_iou": {}}}, {}, {})
