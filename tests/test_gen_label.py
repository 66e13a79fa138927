"""docs/method.md, stage 3 (gen_label.py): each rule on hand-built arrays, then the CLI on synthetic data."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from classification import gen_label
from classification.labeling.foreground import apply_min_foreground, foreground_fraction
from classification.labeling.io import EXISTS, FAILED, MISSING, WRITTEN
from classification.labeling.pom import (
    assign_labels, cut_low_scores, ignore_uncertain_background, make_pseudo_label,
    mine_potential_objects, pom_threshold, score_volume,
)
from nsrom.cam import minmax_normalize
from nsrom.images import read_grey, read_label, write_grey

IGN = 255


# ---------------------------------------------------------------- step 1: score volume and T
def test_score_volume_channels_and_t_map():
    sal = np.array([[0, 10], [51, 204]], dtype=np.uint8)
    att = np.array([[0.9, 0.8], [0.81, 0.0]], dtype=np.float32)  # class 1 (channel 2)
    scores, t_map = score_volume(sal, {1: att}, num_classes=3)
    assert scores.shape == (4, 2, 2)
    np.testing.assert_allclose(scores[0], [[1.0, 1 - 10 / 255], [0.8, 0.2]], atol=1e-6)
    np.testing.assert_array_equal(scores[2], att)
    assert not scores[1].any() and not scores[3].any()  # absent classes score 0
    # T = max(S, 255 * [A > 0.8]): 0.8 itself is not above the threshold.
    np.testing.assert_array_equal(t_map, [[255, 10], [255, 204]])



def original_score_volume(sal: np.ndarray, att8: np.ndarray) -> np.ndarray:
    """The original gen_label.py's two channels: a float32 volume, ``1 - S/255`` in float32,
    the 8-bit map min-max normalised in float64 (+1e-8) and stored into the volume."""
    volume = np.zeros((2, *sal.shape), dtype=np.float32)
    volume[0] = 1 - sal.astype(np.float32) / 255
    volume[1] = (att8 - np.min(att8)) / (np.max(att8) - np.min(att8) + 1e-8)
    return volume


def test_score_volume_equals_the_originals_float32_volume_bit_for_bit():
    # Every 8-bit map range 0..d and every saliency value: the same float32 numbers, so
    # each comparison of steps 2-4 comes out as in the original, real-number ties included.
    sal = np.arange(256, dtype=np.uint8)
    for d in range(1, 256):
        att8 = np.resize(np.arange(d + 1, dtype=np.uint8), 256)
        scores, _ = score_volume(sal, {0: minmax_normalize(att8)}, num_classes=1)
        np.testing.assert_array_equal(scores, original_score_volume(sal, att8))
    # 1 - 65/255 and 190/255 are equal as real numbers; float32 rounding makes the map the
    # larger one, here and in the original, so that pixel is class 1, not a tie to background.
    sal, att8 = np.array([[65, 0, 0]], np.uint8), np.array([[190, 0, 255]], np.uint8)
    label = assign_labels(cut_low_scores(score_volume(sal, {0: minmax_normalize(att8)}, 1)[0]))
    assert label[0, 0] == 1
    assert original_score_volume(sal, att8)[1, 0, 0] > original_score_volume(sal, att8)[0, 0, 0]


# ---------------------------------------------------------------- step 2: low-score cut
def test_low_scores_are_cut_in_every_channel():
    scores = np.array([[[0.1, 0.2999, 0.3, 0.7]], [[0.29, 0.31, 0.0, 1.0]]], dtype=np.float32)
    out = cut_low_scores(scores)
    np.testing.assert_allclose(out, [[[0, 0, 0.3, 0.7]], [[0, 0.31, 0, 1.0]]], atol=1e-7)
    assert scores[0, 0, 0] == np.float32(0.1)  # input untouched


# ---------------------------------------------------------------- step 3: conflicts, argmax ties
def test_conflicting_pixels_are_ignored_and_ties_go_to_lowest_index():
    pixels = [
        [0.0, 0.0, 0.0],  # all zero -> background
        [0.95, 0.95, 0.0],  # two channels > 0.9 -> ignore
        [0.5, 0.7, 0.7],  # tie between 1 and 2 -> 1
        [0.95, 0.9, 0.2],  # 0.9 is not above 0.9: no conflict -> 0
        [0.2, 0.91, 0.95],  # conflict between foreground channels -> ignore
        [0.1, 0.2, 0.6],  # plain argmax -> 2
    ]
    scores = np.array(pixels, dtype=np.float32).T[:, None, :]  # (3, 1, 6)
    label = assign_labels(scores)
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(label, [[0, IGN, 1, 0, IGN, 2]])


# ---------------------------------------------------------------- step 4: uncertain background
def test_background_with_t_at_least_32_is_ignored():
    label = np.array([[0, 0, 0, 1, IGN]], dtype=np.uint8)
    t_map = np.array([[31, 32, 255, 255, 0]], dtype=np.float32)
    np.testing.assert_array_equal(ignore_uncertain_background(label, t_map), [[0, IGN, IGN, 1, IGN]])


# ---------------------------------------------------------------- step 5: POM, three branches
def test_pom_branch1_median_over_pixels_labelled_with_the_class():
    label = np.array([[1, 1, 0, 0, 0, IGN]], dtype=np.uint8)
    cam = np.array([[0.2, 0.6, 0.5, 0.7, 0.1, 0.9]], dtype=np.float32)
    assert pom_threshold(cam, label, 0) == pytest.approx(0.4)
    out = mine_potential_objects(label, {0: cam})
    np.testing.assert_array_equal(out, [[1, 1, IGN, IGN, 0, IGN]])


CAM_B2 = np.array([[0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0]], dtype=np.float32)


def test_pom_branch2_median_above_median_of_values_over_0_3():
    # values > 0.3: 0.4 0.5 0.6 0.8 1.0 -> median 0.6; values > 0.6: 0.8 1.0 -> thr 0.9
    label = np.zeros((1, 7), dtype=np.uint8)
    assert pom_threshold(CAM_B2, label, 0) == pytest.approx(0.9)
    np.testing.assert_array_equal(mine_potential_objects(label, {0: CAM_B2}), [[0, 0, 0, 0, 0, 0, IGN]])


def test_pom_branch2_also_when_labelled_pixels_have_zero_cam():
    label = np.array([[1, 0, 0, 0, 0, 0, 0]], dtype=np.uint8)  # labelled pixel has M_c = 0
    assert pom_threshold(CAM_B2, label, 0) == pytest.approx(0.9)


def test_pom_branch1_is_the_median_not_the_mean_of_skewed_values():
    # labelled pixels: 0.1 0.2 0.9 -> median 0.2 (the mean would be 0.4)
    label = np.array([[1, 1, 1, 0, 0]], dtype=np.uint8)
    cam = np.array([[0.1, 0.2, 0.9, 0.15, 0.3]], dtype=np.float32)
    assert pom_threshold(cam, label, 0) == pytest.approx(0.2)
    # 0.3 > 0.2 is a potential object, 0.15 is not
    np.testing.assert_array_equal(mine_potential_objects(label, {0: cam}), [[1, 1, 1, 0, IGN]])


def test_pom_branch2_takes_medians_not_means_of_skewed_values():
    # values > 0.3: 0.31 0.32 0.8 0.85 0.9 0.92 1.0 -> median 0.85 (mean 5.1 / 7 = 0.729);
    # values > 0.85: 0.9 0.92 1.0 -> median 0.92 (mean 0.94).
    # A mean in the first place would take 0.8 .. 1.0 (median 0.9), in the second 0.94.
    cam = np.array([[0.0, 0.2, 0.31, 0.32, 0.8, 0.85, 0.9, 0.92, 1.0]], dtype=np.float32)
    label = np.zeros(cam.shape, dtype=np.uint8)
    assert pom_threshold(cam, label, 0) == pytest.approx(0.92)
    np.testing.assert_array_equal(mine_potential_objects(label, {0: cam}), [[0, 0, 0, 0, 0, 0, 0, 0, IGN]])


def test_pom_branch2_counts_cam_values_strictly_above_0_3():
    # values > 0.3: 0.5 .. 0.9 -> median 0.7; above it 0.8 0.9 -> thr 0.85.
    # With the two 0.3 values counted the median would be 0.6 and thr 0.8.
    cam = np.array([[0.0, 0.3, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9]], dtype=np.float32)
    label = np.zeros(cam.shape, dtype=np.uint8)
    assert pom_threshold(cam, label, 0) == pytest.approx(0.85)
    np.testing.assert_array_equal(mine_potential_objects(label, {0: cam}), [[0, 0, 0, 0, 0, 0, 0, IGN]])


def test_pom_branch3_threshold_one_without_cam_above_0_3():
    label = np.zeros((1, 3), dtype=np.uint8)
    cam = np.array([[0.0, 0.1, 0.3]], dtype=np.float32)
    assert pom_threshold(cam, label, 0) == 1.0
    np.testing.assert_array_equal(mine_potential_objects(label, {0: cam}), label)
    # all values above 0.3 equal: {M_c > median} is empty -> thr 1 as well
    assert pom_threshold(np.array([[0.0, 0.5, 0.5]], dtype=np.float32), label, 0) == 1.0


def test_pom_only_turns_background_and_any_class_counts():
    label = np.array([[0, 0, 2, 1]], dtype=np.uint8)
    cam0 = np.array([[0.0, 0.95, 0.95, 0.5]], dtype=np.float32)  # thr 0.5 (its label-1 pixel)
    cam1 = np.array([[0.95, 0.0, 0.5, 0.0]], dtype=np.float32)  # thr 0.5 (its label-2 pixel)
    out = mine_potential_objects(label, {0: cam0, 1: cam1})
    # pixel 0: potential object of class 1; pixel 1: of class 0; pixel 2 is labelled 2 and stays
    np.testing.assert_array_equal(out, [[IGN, IGN, 2, 1]])
    np.testing.assert_array_equal(mine_potential_objects(label, {0: cam0}), [[0, IGN, 2, 1]])


# ---------------------------------------------------------------- step 6: the 1% rule
def test_one_percent_rule_is_strict_and_counts_every_pixel():
    label = np.full((10, 10), IGN, dtype=np.uint8)
    label[0, 0] = 3  # exactly 1% foreground (ignored pixels count in the denominator): kept
    np.testing.assert_array_equal(apply_min_foreground(label), label)
    assert foreground_fraction(label) == pytest.approx(0.01)
    small = np.zeros((20, 10), dtype=np.uint8)
    small[0, 0] = 1  # 0.5% -> all ignore
    assert (apply_min_foreground(small) == IGN).all()
    small[0, 1] = 2  # 1% -> kept
    np.testing.assert_array_equal(apply_min_foreground(small), small)
    assert (apply_min_foreground(np.zeros((5, 5), np.uint8)) == IGN).all()


# ---------------------------------------------------------------- steps 1-6 together
def _two_halves():
    sal = np.zeros((10, 10), dtype=np.uint8)
    sal[:, 5:] = 255
    oacam = np.zeros((10, 10), dtype=np.uint8)
    oacam[:, 5:] = 200  # min-max normalised to 1
    cam = np.zeros((10, 10), dtype=np.uint8)
    cam[:, 5:] = 100  # 0.39 after normalisation: the branch-1 threshold
    cam[0:2, 0] = 255  # a non-salient object: potential object of class 0
    return sal, oacam, cam


def test_make_pseudo_label_known_answer():
    sal, oacam, cam = _two_halves()
    expected = np.zeros((10, 10), dtype=np.uint8)
    expected[:, 5:] = 1
    expected[0:2, 0] = IGN
    # Maps of the absent class 2 that would change the label if used (a constant map would not:
    # min-max normalisation makes it 0). Column j of the ramp is j / 9 after normalisation.
    ramp = np.tile(np.arange(0, 250, 25, dtype=np.uint8), (10, 1))
    # As an OA-CAM, column 9 (1.0) ties class 0's 1.0 and both exceed 0.9: ignore.
    # As a CAM, mirrored (column j is (9 - j) / 9): POM branch 2, values > 0.3 are columns 0-6,
    # median 6/9; above it 1, 8/9, 7/9, median 8/9: all of column 0 would become ignore.
    label = make_pseudo_label(sal, [0], {0: oacam, 2: ramp}, {0: cam, 2: ramp[:, ::-1].copy()}, num_classes=3)
    np.testing.assert_array_equal(label, expected)


def test_missing_maps_leave_the_class_out_of_their_step():
    sal, oacam, cam = _two_halves()
    no_cam = make_pseudo_label(sal, [0], {0: oacam}, {}, num_classes=3)
    assert no_cam[0, 0] == 0 and no_cam[1, 0] == 0  # no POM without a CAM
    # without the OA-CAM, the salient half scores 0 everywhere -> background with T = 255 ->
    # ignore; no foreground is left, so the 1% rule ignores the whole image
    no_oacam = make_pseudo_label(sal, [0], {}, {0: cam}, num_classes=3)
    assert (no_oacam == IGN).all()


def test_make_pseudo_label_rejects_bad_class_and_size():
    sal, oacam, cam = _two_halves()
    with pytest.raises(ValueError, match="outside 0..2"):
        make_pseudo_label(sal, [3], {}, {}, num_classes=3)
    with pytest.raises(ValueError, match="size"):
        make_pseudo_label(sal, [0], {0: oacam[:5]}, {}, num_classes=3)


# ---------------------------------------------------------------- the CLI on synthetic images
def write_fake_cams(layout, ids, folder, erode: int) -> None:
    """Grey PNG maps ``<id>_<c>.png`` derived from the ground-truth masks (blurred object masks)."""
    labels = layout.image_labels("train_aug")
    for image_id in ids:
        mask = read_label(layout.mask_path(image_id))
        for c in labels[image_id]:
            obj = (mask == c + 1).astype(np.uint8) * 255
            if erode:
                obj = cv2.erode(obj, np.ones((erode, erode), np.uint8))
            write_grey(folder / f"{image_id}_{c}.png", cv2.GaussianBlur(obj, (5, 5), 0))


@pytest.fixture()
def stage3_inputs(synthetic_root, tmp_path):
    ids = synthetic_root.ids("train_aug")
    write_fake_cams(synthetic_root, ids, tmp_path / "oacam", erode=0)
    write_fake_cams(synthetic_root, ids, tmp_path / "cam", erode=3)
    shutil.copytree(synthetic_root.saliency_dir, tmp_path / "sal")
    return synthetic_root, ids, tmp_path


def _argv(root, tmp, *extra):
    return ["--data-root", str(root.root), "--sal-dir", str(tmp / "sal"), "--oacam-dir", str(tmp / "oacam"),
            "--cam-dir", str(tmp / "cam"), "--out-dir", str(tmp / "out"), *extra]


def test_cli_writes_palette_labels_and_reports_problems(stage3_inputs, capsys):
    layout, ids, tmp = stage3_inputs
    labels = layout.image_labels("train_aug")
    (tmp / "sal" / f"{ids[0]}.png").unlink()  # missing saliency map: skipped
    c1 = labels[ids[1]][0]
    (tmp / "cam" / f"{ids[1]}_{c1}.png").unlink()  # missing CAM: class out of POM, label written
    c2 = labels[ids[2]][0]
    (tmp / "oacam" / f"{ids[2]}_{c2}.png").write_bytes(b"not a png")  # corrupt: failed
    sal3 = read_grey(tmp / "sal" / f"{ids[3]}.png")
    write_grey(tmp / "sal" / f"{ids[3]}.png", sal3[:-2])  # size mismatch: failed

    assert gen_label.main(_argv(layout, tmp, "--workers", "2")) == 1
    out = tmp / "out"
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(ids[1:2] + ids[4:])
    assert [p.name for p in out.glob(".*")] == [".producer.json"]  # no temporary files left behind
    for image_id in ids[1:2] + ids[4:]:
        label = read_label(out / f"{image_id}.png")
        assert label.shape == read_label(layout.mask_path(image_id)).shape
        allowed = {0, IGN} | {c + 1 for c in labels[image_id]}
        assert set(np.unique(label)) <= allowed
    text = capsys.readouterr().err
    assert f"saliency map not found: {tmp / 'sal' / ids[0]}.png" in text
    assert f"{ids[1]}_{c1}.png" in text and "class left out" in text
    assert f"{ids[2]}_{c2}.png" in text
    assert f"{tmp / 'sal' / ids[3]}.png: saliency map is" in text  # the data check names it; not processed
    assert f"{ids[3]}: not written: its saliency map failed the data check" in text
    assert f"{len(ids)} images: {len(ids) - 3} written, 0 exists, 1 missing, 2 failed; 1 class maps missing" in text


def test_run_api_counts_and_skips_existing(stage3_inputs):
    layout, ids, tmp = stage3_inputs
    args = gen_label.build_parser().parse_args(_argv(layout, tmp, "--workers", "1"))
    image_labels, config = gen_label.config_from_args(args)
    first = gen_label.run(image_labels, config)
    assert first.counts[WRITTEN] == len(ids) and first.ok and first.missing_maps == 0
    again = gen_label.run(image_labels, config)
    assert again.counts[EXISTS] == len(ids) and again.counts[WRITTEN] == 0
    assert again.counts[MISSING] == again.counts[FAILED] == 0


def test_cli_wrong_class_index_names_the_list(stage3_inputs, capsys):
    layout, ids, tmp = stage3_inputs
    bad_list = tmp / "train_cls.txt"
    bad_list.write_text(f"{ids[0]} 0\n{ids[1]} 7\n")
    with pytest.raises(SystemExit) as exit_info:
        gen_label.main(_argv(layout, tmp, "--list", str(bad_list)))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(bad_list) in err and "class index 7" in err


def test_cli_missing_input_folder_is_a_clear_error(stage3_inputs, capsys):
    layout, ids, tmp = stage3_inputs
    with pytest.raises(SystemExit):
        gen_label.main(_argv(layout, tmp, "--cam-dir", str(tmp / "nowhere")))
    assert "CAM folder not found" in capsys.readouterr().err


def test_cli_without_arguments_uses_the_original_layout(synthetic_root, tmp_path, monkeypatch):
    """classification/: data/train_cls.txt, data/saliency_aug/, runs/exp{2,1}/attention/ -> pseudo_labels/."""
    cls_dir = tmp_path / "classification"
    ids = synthetic_root.ids("train_aug")
    write_fake_cams(synthetic_root, ids, cls_dir / "runs" / "exp2" / "attention", erode=0)
    write_fake_cams(synthetic_root, ids, cls_dir / "runs" / "exp1" / "attention", erode=3)
    shutil.copytree(synthetic_root.saliency_dir, cls_dir / "data" / "saliency_aug")
    shutil.copy(synthetic_root.cls_list_path, cls_dir / "data" / "train_cls.txt")
    monkeypatch.chdir(cls_dir)
    assert gen_label.main([]) == 0
    assert sorted(p.stem for p in (cls_dir / "pseudo_labels").glob("*.png")) == sorted(ids)


def test_every_saliency_map_missing_is_an_unsuccessful_run(stage3_inputs, capsys):
    layout, ids, tmp = stage3_inputs
    for path in (tmp / "sal").glob("*.png"):
        path.unlink()
    assert gen_label.main(_argv(layout, tmp, "--workers", "1")) == 1
    err = capsys.readouterr().err
    assert f"{len(ids)} images: 0 written, 0 exists, {len(ids)} missing, 0 failed" in err
    assert "no image had all its inputs" in err
