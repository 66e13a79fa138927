"""Label / CAM evaluation (nsrom.evaluation, tools/eval_labels.py): known confusion matrices, then the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nsrom.classes import write_class_names
from nsrom.data import DataLayout, write_cls_list, write_ids
from nsrom.errors import DataError
from nsrom.evaluation import (
    cam_histogram, cam_top_scores, confusion_at_threshold, evaluate_cams, evaluate_labels,
)
from nsrom.images import read_grey, read_label, write_grey, write_label
from nsrom.metrics import confusion_matrix

IGN = 255
REPO = Path(__file__).resolve().parents[1]


def _tiny_layout(root: Path, masks: dict[str, list[list[int]]], cls: dict[str, list[int]] | None = None) -> DataLayout:
    layout = DataLayout(root)
    write_class_names(layout.labels_path, ["background", "a", "b"])
    write_ids(layout.list_path("train_aug"), list(masks))
    for image_id, mask in masks.items():
        write_label(layout.mask_path(image_id), np.array(mask, dtype=np.uint8))
    if cls is not None:
        write_cls_list(layout.cls_list_path, cls)
    return layout


def test_evaluate_labels_known_confusion(tmp_path):
    layout = _tiny_layout(tmp_path / "root", {
        "img1": [[0, 0, 1, 1], [0, IGN, 2, 2]],
        "img2": [[1, 1]],
        "img3": [[1, 0]],
    })
    labels = tmp_path / "labels"
    write_label(labels / "img1.png", np.array([[0, 1, 1, IGN], [0, 0, 2, 1]], np.uint8))
    write_label(labels / "img3.png", np.array([[IGN, IGN]], np.uint8))  # img2 has no label file
    result = evaluate_labels(layout, "train_aug", labels)
    # scored pairs (gt, label): (0,0) x2, (0,1), (1,1), (2,2), (2,1)
    np.testing.assert_array_equal(
        confusion_matrix(np.array([0, 0, 0, 1, 2, 2]), np.array([0, 0, 1, 1, 2, 1]), 3), [[2, 1, 0], [0, 1, 0], [0, 1, 1]]
    )
    assert result["class_iou"] == pytest.approx({"background": 2 / 3, "a": 1 / 3, "b": 1 / 2})
    assert result["miou"] == pytest.approx(0.5)
    assert result["ignored_fraction"] == pytest.approx(3 / 9)  # 1 of img1's 7 valid pixels + both of img3
    assert result["missing"] == ["img2"] and result["num_images"] == 2


def test_evaluate_labels_rejects_bad_values_and_sizes(tmp_path):
    layout = _tiny_layout(tmp_path / "root", {"img1": [[0, 1, 2]]})
    write_label(tmp_path / "bad" / "img1.png", np.array([[0, 3, 2]], np.uint8))
    with pytest.raises(DataError, match=r"img1.png holds values \[3\]"):
        evaluate_labels(layout, "train_aug", tmp_path / "bad")
    write_label(tmp_path / "small" / "img1.png", np.array([[0, 1]], np.uint8))
    with pytest.raises(DataError, match="sizes differ"):
        evaluate_labels(layout, "train_aug", tmp_path / "small")
    with pytest.raises(DataError, match="no label of train_aug"):
        evaluate_labels(layout, "train_aug", tmp_path)


def test_evaluate_cams_sweep_uses_image_labels_only(tmp_path):
    # the mask holds class "b" (0-based 1), but the image-level label lists only "a" (0)
    layout = _tiny_layout(tmp_path / "root", {"img1": [[0, 1, 1, 2]]}, cls={"img1": [0]})
    cams = tmp_path / "cams"
    write_grey(cams / "img1_0.png", np.array([[51, 204, 102, 230]], np.uint8))  # 0.2 0.8 0.4 0.9
    write_grey(cams / "img1_1.png", np.array([[0, 0, 0, 255]], np.uint8))  # not used: not in the labels
    result = evaluate_cams(layout, "train_aug", cams, thresholds=[0.1, 0.3, 0.5, 0.8])
    # thr 0.1: [1 1 1 1]; 0.3: [0 1 1 1]; 0.5: [0 1 0 1]; 0.8: [0 0 0 1] (0.8 == thr is background)
    assert result["curve"] == pytest.approx({"0.1": 1 / 6, "0.3": 5 / 9, "0.5": 5 / 18, "0.8": 1 / 9})
    assert result["best_threshold"] == 0.3 and result["miou"] == pytest.approx(5 / 9)
    assert result["class_iou"] == pytest.approx({"background": 1.0, "a": 2 / 3, "b": 0.0})
    assert result["missing_maps"] == 0


def test_a_map_folder_numbered_from_1_is_named_not_scored_as_missing_maps(tmp_path):
    """Names <id>_<c+1>.png had scored with most maps 'missing' and the last class's files ignored."""
    layout = _tiny_layout(tmp_path / "root", {"img1": [[0, 1, 1, 2]]}, cls={"img1": [0, 1]})
    cams = tmp_path / "cams"
    for c in (1, 2):
        write_grey(cams / f"img1_{c}.png", np.zeros((1, 4), np.uint8))
    with pytest.raises(DataError, match=r"img1_2.png names class 2, but the classes are 0..1 \(0-based: <id>_0.png "
                                        r"is 'a'\); maps numbered from 1 need renaming"):
        evaluate_cams(layout, "train_aug", cams)


def test_maps_at_cam_resolution_are_scored_after_a_bicubic_resize(tmp_path):
    # the accumulated maps of stage 1 are kept at CAM resolution: 2x2 here, the mask is 4x4
    layout = _tiny_layout(tmp_path / "root", {"img1": [[0, 0, 1, 1]] * 4})
    write_grey(tmp_path / "accu" / "img1_0.png", np.array([[0, 255], [0, 255]], np.uint8))
    with pytest.raises(DataError, match="sizes differ.*scored with --resize-maps"):  # the error names the way
        evaluate_cams(layout, "train_aug", tmp_path / "accu")
    # bicubic, as the export: each row becomes [0, 58, 197, 255]
    result = evaluate_cams(layout, "train_aug", tmp_path / "accu", thresholds=[0.2, 0.5], resize=True)
    # thr 0.2 (51): [0 1 1 1], background IoU 1/2 and class IoU 2/3; thr 0.5: [0 0 1 1], exact
    assert result["curve"] == pytest.approx({"0.2": 7 / 12, "0.5": 1.0})
    assert result["best_threshold"] == 0.5


def test_cam_histogram_matches_per_pixel_argmax():
    rng = np.random.default_rng(0)
    n, shape = 4, (9, 11)
    gt = rng.integers(0, n, shape)
    gt[0, :3] = IGN
    cams = {0: rng.integers(0, 256, shape), 2: rng.integers(0, 256, shape)}
    cams[2][1, :4] = cams[0][1, :4]  # ties go to the lower class
    hist = cam_histogram(gt, *cam_top_scores(cams, shape), n)
    for thr in (0.0, 0.25, 0.5, 0.9):
        volume = np.stack([np.full(shape, thr), cams[0] / 255.0, cams[2] / 255.0])
        pred = np.array([0, 1, 3])[volume.argmax(axis=0)]
        np.testing.assert_array_equal(confusion_at_threshold(hist, thr), confusion_matrix(gt, pred, n))


def _fake_cams(layout: DataLayout, folder: Path) -> None:
    labels = layout.image_labels("train_aug")
    for image_id, classes in labels.items():
        mask = read_label(layout.mask_path(image_id))
        for c in classes:
            obj = (mask == c + 1).astype(np.uint8) * 255
            write_grey(folder / f"{image_id}_{c}.png", cv2.GaussianBlur(obj, (7, 7), 0))


def test_cli_on_synthetic_data(synthetic_root, tmp_path):
    _fake_cams(synthetic_root, tmp_path / "cams")
    out = tmp_path / "scores.json"
    cmd = [sys.executable, str(REPO / "tools" / "eval_labels.py"), "--data-root", str(synthetic_root.root),
           "--cams", str(tmp_path / "cams"), "--labels", str(synthetic_root.mask_dir),
           "--thresholds", "0.2", "0.5", "--out", str(out), "--workers", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    masks = results[str(synthetic_root.mask_dir)]
    assert masks["miou"] == 1.0 and masks["ignored_fraction"] == 0.0  # the ground truth scores itself perfectly
    cam = results[str(tmp_path / "cams")]
    assert set(cam["curve"]) == {"0.2", "0.5"} and 0.5 < cam["miou"] < 1.0
    assert set(cam["class_iou"]) == set(synthetic_root.class_names())
    assert "best background threshold" in proc.stdout and "Ignored pixels (%)" in proc.stdout


def test_cli_needs_something_to_evaluate(synthetic_root):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "eval_labels.py"), "--data-root",
                           str(synthetic_root.root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "give at least one --cams DIR or --labels DIR" in proc.stderr


def test_cli_names_its_own_split_flag_for_a_list_that_does_not_exist(synthetic_root):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "eval_labels.py"), "--data-root",
                           str(synthetic_root.root), "--labels", str(synthetic_root.mask_dir), "--split", "nosuch"],
                          capture_output=True, text=True, timeout=120)
    lists = synthetic_root.list_dir
    assert proc.returncode == 2 and proc.stderr == (
        f"error: image list not found: {lists / 'nosuch.txt'}; {lists} holds train_aug, val: "
        "name the one to use with --split\n")


def test_images_without_a_mask_are_not_scored(tmp_path):
    layout = _tiny_layout(tmp_path / "root", {"img1": [[0, 1]], "img2": [[1, 1]]}, cls={"img3": [0]})
    write_ids(layout.list_path("train_aug"), ["img1", "img2", "img3"])  # img3: labels, no mask
    write_label(tmp_path / "labels" / "img1.png", np.array([[0, 1]], np.uint8))
    write_label(tmp_path / "labels" / "img3.png", np.array([[1, 1]], np.uint8))
    result = evaluate_labels(layout, "train_aug", tmp_path / "labels")
    assert (result["num_images"], result["num_without_mask"], result["missing"]) == (1, 1, ["img2"])
    assert result["miou"] == 1.0
    write_grey(tmp_path / "cams" / "img1_0.png", np.array([[0, 255]], np.uint8))
    assert evaluate_cams(layout, "train_aug", tmp_path / "cams")["num_without_mask"] == 1
    write_ids(layout.list_path("nomasks"), ["img3"])
    with pytest.raises(DataError, match="no image of split nomasks has a ground-truth mask"):
        evaluate_labels(layout, "nomasks", tmp_path / "labels")


def test_cli_takes_several_folders_per_flag(synthetic_root, tmp_path, capsys):
    from tools.eval_labels import main

    _fake_cams(synthetic_root, tmp_path / "cams")
    out = tmp_path / "scores.json"
    mask_dir, copy = str(synthetic_root.mask_dir), tmp_path / "copy"
    shutil.copytree(mask_dir, copy)
    assert main(["--data-root", str(synthetic_root.root), "--cams", str(tmp_path / "cams"), str(tmp_path / "cams"),
                 "--labels", mask_dir, str(copy), "--labels", mask_dir, "--thresholds", "0.5",
                 "--out", str(out), "--workers", "1"]) == 0
    results = json.loads(out.read_text())
    assert set(results) == {str(tmp_path / "cams"), mask_dir, str(copy)}
    assert results[mask_dir]["miou"] == results[str(copy)]["miou"] == 1.0
    printed = capsys.readouterr().out
    assert printed.count("Mean IoU") == 3 and printed.count("best background threshold") == 1  # each folder once


def test_cli_resize_maps_scores_half_size_maps(synthetic_root, tmp_path, capsys):
    from tools.eval_labels import main

    _fake_cams(synthetic_root, tmp_path / "cams")
    small = tmp_path / "small"
    small.mkdir()
    for path in (tmp_path / "cams").glob("*.png"):  # half-size copies, as maps kept at a lower resolution
        cam = read_grey(path)
        write_grey(small / path.name, cv2.resize(cam, (cam.shape[1] // 2, cam.shape[0] // 2),
                                                 interpolation=cv2.INTER_AREA))
    args = ["--data-root", str(synthetic_root.root), "--cams", str(small), "--thresholds", "0.3", "0.5",
            "--workers", "1", "--out", str(tmp_path / "scores.json")]
    with pytest.raises(SystemExit) as exc:  # sizes differ: a clear error, not a score
        main(args)
    assert exc.value.code == 2 and "sizes differ" in capsys.readouterr().err
    assert main(args + ["--resize-maps", "--cams", str(tmp_path / "cams")]) == 0
    results = json.loads((tmp_path / "scores.json").read_text())
    full, half = results[str(tmp_path / "cams")]["miou"], results[str(small)]["miou"]
    assert 0.5 < half < 1.0 and abs(half - full) < 0.05
