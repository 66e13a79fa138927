"""docs/method.md, stage 6 (gen_masked_label.py): each rule on hand-built arrays, then the CLI on synthetic data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from classification import gen_masked_label
from classification.labeling.nsrm import dilated_object_mask, fill_from_pseudo_label, make_masked_label
from nsrom.images import read_grey, read_label, write_grey, write_label
from nsrom.synthetic import generate

IGN = 255


def test_fill_takes_pseudo_foreground_where_prediction_is_background():
    pred = np.array([[0, 0, 1, 0, 0]], dtype=np.uint8)
    pseudo = np.array([[2, IGN, 2, 0, 3]], dtype=np.uint8)
    np.testing.assert_array_equal(fill_from_pseudo_label(pred, pseudo), [[2, 0, 1, 0, 3]])
    assert pred[0, 0] == 0  # input untouched


@pytest.mark.parametrize("source", ["pred", "saliency"])
def test_dilation_of_one_pixel_is_30x30_anchored_at_the_kernel_centre(source):
    one = np.zeros((64, 64), dtype=np.uint8)
    one[30, 30] = 7
    zero = np.zeros_like(one)
    mask = dilated_object_mask(one, zero) if source == "pred" else dilated_object_mask(zero, one)
    expected = np.zeros((64, 64), dtype=bool)
    expected[16:46, 16:46] = True  # rows/cols 30-14 .. 30+15 (even kernel: anchor at element 15)
    np.testing.assert_array_equal(mask, expected)


def test_dilation_is_clipped_at_the_border():
    one = np.zeros((40, 40), dtype=np.uint8)
    one[0, 39] = 1
    expected = np.zeros((40, 40), dtype=bool)
    expected[0:16, 25:40] = True  # rows 0..15, cols 25..39
    np.testing.assert_array_equal(dilated_object_mask(one, np.zeros_like(one)), expected)


def _block_scene():
    pred = np.zeros((64, 64), dtype=np.uint8)
    pred[20:30, 20:30] = 1  # 100 px = 2.4% of the image
    pseudo = np.zeros_like(pred)
    pseudo[30:33, 20:30] = 2  # a missed object right below P's: filled, inside the mask
    pseudo[60:64, 0:4] = 2  # far away and not salient: filled, then outside the mask
    pseudo[0:2, 0:2] = IGN
    sal = np.zeros_like(pred)
    sal[50, 50] = 1  # any non-zero saliency counts
    return pred, pseudo, sal


def test_masked_label_known_answer_for_two_classes():
    pred, pseudo, sal = _block_scene()
    expected = np.full((64, 64), IGN, dtype=np.uint8)
    expected[6:45, 6:45] = 0  # P's block dilated: rows/cols 20-14 .. 29+15
    expected[36:64, 36:64] = 0  # the saliency pixel dilated: 50-14 .. 50+15 (clipped at 63)
    expected[20:30, 20:30] = 1
    expected[30:33, 20:30] = 2
    np.testing.assert_array_equal(make_masked_label(pred, pseudo, sal, num_image_classes=2), expected)


def test_single_class_image_keeps_the_prediction():
    pred, pseudo, sal = _block_scene()
    np.testing.assert_array_equal(make_masked_label(pred, pseudo, sal, num_image_classes=1), pred)
    np.testing.assert_array_equal(make_masked_label(pred, None, None, num_image_classes=1), pred)


def test_one_percent_rule_applies_to_both_branches():
    pred = np.zeros((20, 20), dtype=np.uint8)  # 400 px: 4 px is exactly 1%
    pred[0, 0:3] = 1
    assert (make_masked_label(pred, None, None, 1) == IGN).all()
    pred[0, 3] = 1
    np.testing.assert_array_equal(make_masked_label(pred, None, None, 1), pred)
    pseudo = np.zeros_like(pred)
    pred[0, 3] = 0
    assert (make_masked_label(pred, pseudo, np.zeros_like(pred), 2) == IGN).all()
    pseudo[5, 5] = 2  # the fill adds the fourth foreground pixel
    out = make_masked_label(pred, pseudo, np.zeros_like(pred), 2)
    assert out[5, 5] == 2 and ((out != 0) & (out != IGN)).sum() == 4


def test_two_class_image_needs_pseudo_and_saliency():
    pred, pseudo, sal = _block_scene()
    with pytest.raises(ValueError, match="two or more classes"):
        make_masked_label(pred, None, sal, 2)
    with pytest.raises(ValueError, match="saliency map has size"):
        make_masked_label(pred, pseudo, sal[:10], 2)


# ---------------------------------------------------------------- the CLI on synthetic images
@pytest.fixture()
def stage6_inputs(tmp_path):
    """P = ground truth (255 -> 0), L = ground truth, S = the synthetic saliency maps.

    12 training images: enough for 4 with two or more classes and 3 with one.
    """
    layout = generate(tmp_path / "data", num_train=12, num_val=2, size=64, num_classes=3, seed=0)
    for image_id in layout.ids("train_aug"):
        mask = read_label(layout.mask_path(image_id))
        write_label(tmp_path / "pred" / f"{image_id}.png", np.where(mask == IGN, 0, mask))
        write_label(tmp_path / "pseudo" / f"{image_id}.png", mask)
    shutil.copytree(layout.saliency_dir, tmp_path / "sal")
    return layout, tmp_path


def _argv(layout, tmp, *extra):
    return ["--data-root", str(layout.root), "--pred-dir", str(tmp / "pred"), "--pseudo-dir", str(tmp / "pseudo"),
            "--sal-dir", str(tmp / "sal"), "--out-dir", str(tmp / "out"), *extra]


def test_cli_masks_multi_class_images_and_reports_problems(stage6_inputs, capsys):
    layout, tmp = stage6_inputs
    labels = layout.image_labels("train_aug")
    multi = [i for i, c in labels.items() if len(c) >= 2]
    single = [i for i, c in labels.items() if len(c) == 1]
    assert len(multi) >= 4 and len(single) >= 3
    # multi[0]: P misses one class, the fill restores it from L
    pred0 = read_label(tmp / "pred" / f"{multi[0]}.png")
    lost = labels[multi[0]][0] + 1
    write_label(tmp / "pred" / f"{multi[0]}.png", np.where(pred0 == lost, 0, pred0))
    (tmp / "pseudo" / f"{multi[1]}.png").unlink()  # needed input missing: skipped
    sal2 = read_grey(tmp / "sal" / f"{multi[2]}.png")
    write_grey(tmp / "sal" / f"{multi[2]}.png", sal2[:, :-1])  # size mismatch: failed
    pred3 = read_label(tmp / "pred" / f"{multi[3]}.png").copy()
    pred3[0, 0] = 9  # class value outside 0..3: failed
    write_label(tmp / "pred" / f"{multi[3]}.png", pred3)
    (tmp / "pseudo" / f"{single[0]}.png").unlink()  # not needed for a one-class image
    (tmp / "sal" / f"{single[0]}.png").unlink()
    (tmp / "pred" / f"{single[1]}.png").write_bytes(b"\x89PNG broken")  # corrupt: failed

    assert gen_masked_label.main(_argv(layout, tmp, "--workers", "2")) == 1
    err = capsys.readouterr().err
    written = sorted([multi[0], *multi[4:], single[0], *single[2:]])
    assert sorted(p.stem for p in (tmp / "out").glob("*.png")) == written
    assert f"pseudo label not found: {tmp / 'pseudo' / multi[1]}.png" in err
    assert f"{tmp / 'sal' / multi[2]}.png: saliency map is {sal2.shape[1] - 1}x{sal2.shape[0]} (WxH)" in err
    assert f"{multi[2]}: not written: its saliency map failed the data check" in err
    assert f"prediction {tmp / 'pred' / multi[3]}.png holds class values [9]" in err
    assert f"{tmp / 'pred' / single[1]}.png" in err
    assert f"{len(labels)} images: {len(written)} written, 0 exists, 1 missing, 3 failed" in err

    out0 = read_label(tmp / "out" / f"{multi[0]}.png")
    mask0 = read_label(layout.mask_path(multi[0]))
    assert ((out0 == lost) == (mask0 == lost)).all()  # restored from L by the fill
    for image_id in single[2:] + [single[0]]:
        pred = read_label(tmp / "pred" / f"{image_id}.png")
        np.testing.assert_array_equal(read_label(tmp / "out" / f"{image_id}.png"), pred)
    for image_id in [multi[0], *multi[4:]]:  # the fill and the dilated mask, as the function makes them
        expected = make_masked_label(
            read_label(tmp / "pred" / f"{image_id}.png"), read_label(tmp / "pseudo" / f"{image_id}.png"),
            read_grey(tmp / "sal" / f"{image_id}.png"), len(labels[image_id]),
        )
        np.testing.assert_array_equal(read_label(tmp / "out" / f"{image_id}.png"), expected)


def test_run_api_skips_existing_unless_overwrite(stage6_inputs):
    layout, tmp = stage6_inputs
    args = gen_masked_label.build_parser().parse_args(_argv(layout, tmp, "--workers", "1"))
    image_labels, config = gen_masked_label.config_from_args(args)
    assert gen_masked_label.run(image_labels, config).counts["written"] == len(image_labels)
    assert gen_masked_label.run(image_labels, config).counts["exists"] == len(image_labels)
    args = gen_masked_label.build_parser().parse_args(_argv(layout, tmp, "--workers", "1", "--overwrite"))
    image_labels, config = gen_masked_label.config_from_args(args)
    assert gen_masked_label.run(image_labels, config).counts["written"] == len(image_labels)


def test_labels_that_are_ignore_everywhere_are_counted_and_all_of_them_warned_of(stage6_inputs, capsys):
    """The 1% rule at 100% leaves no label with a class: counted in the summary, and said to leave the next
    round nothing to learn; with the paper's 1% the same images give no such line."""
    layout, tmp = stage6_inputs
    assert gen_masked_label.main(_argv(layout, tmp, "--workers", "1", "--min-foreground", "1.0")) == 0
    err = capsys.readouterr().err
    n = len(layout.ids("train_aug"))
    assert f"{n} images: {n} written, 0 exists, 0 missing, 0 failed; {n} of the labels written are ignore " \
           "everywhere" in err
    assert "every label written to" in err and "learns nothing" in err
    # a resumed run that writes one last all-ignore label, the others there already: counted, not warned of
    (tmp / "out" / f"{layout.ids('train_aug')[0]}.png").unlink()
    assert gen_masked_label.main(_argv(layout, tmp, "--workers", "1", "--min-foreground", "1.0")) == 0
    err = capsys.readouterr().err
    assert "1 written" in err and "1 of the labels written are ignore everywhere" in err
    assert "every label written" not in err
    assert gen_masked_label.main(_argv(layout, tmp, "--workers", "1", "--overwrite")) == 0
    err = capsys.readouterr().err
    assert f"{n} written, 0 exists, 0 missing, 0 failed\n" in err and "ignore everywhere" not in err


def test_cli_missing_prediction_folder_is_a_clear_error(stage6_inputs, capsys):
    layout, tmp = stage6_inputs
    with pytest.raises(SystemExit) as exit_info:
        gen_masked_label.main(_argv(layout, tmp, "--pred-dir", str(tmp / "nowhere")))
    assert exit_info.value.code == 2
    assert f"prediction folder not found: {tmp / 'nowhere'}" in capsys.readouterr().err


def test_cli_without_arguments_uses_the_original_layout(stage6_inputs, monkeypatch):
    """From classification/: data/train_cls.txt, data/saliency_aug/, pseudo_labels/ and the
    segmentation package's stage-5 label_crf folder -> masked_labels/."""
    layout, tmp = stage6_inputs
    cls_dir = tmp / "repo" / "classification"
    shutil.copytree(tmp / "sal", cls_dir / "data" / "saliency_aug")
    shutil.copy(layout.cls_list_path, cls_dir / "data" / "train_cls.txt")
    shutil.copytree(tmp / "pseudo", cls_dir / "pseudo_labels")
    pred_dir = cls_dir / gen_masked_label.DEFAULT_PRED_DIR
    assert pred_dir.resolve().is_relative_to(tmp / "repo" / "segmentation")
    shutil.copytree(tmp / "pred", pred_dir)
    monkeypatch.chdir(cls_dir)
    assert gen_masked_label.main([]) == 0
    assert sorted(p.stem for p in (cls_dir / "masked_labels").glob("*.png")) == sorted(layout.ids("train_aug"))


def test_a_plain_id_list_takes_its_classes_from_the_dataset(synthetic_root, tmp_path):
    """--list with ids alone (stages 3 and 6): the classes come from the dataset, as for the classifiers; with
    no dataset it is an error. Before, every image got no class and stage 6 kept every prediction unmasked."""
    from pathlib import Path

    from classification.labeling.io import resolve_image_labels
    from nsrom.data import write_cls_list, write_ids
    from nsrom.errors import ConfigError, DataError

    ids = synthetic_root.ids("train_aug")[:4]
    expected = synthetic_root.labels_for(ids)
    assert list(expected) == ids and all(expected.values())
    plain, own = tmp_path / "ids.txt", tmp_path / "cls.txt"
    write_ids(plain, ids)
    n = synthetic_root.num_classes
    assert resolve_image_labels(plain, synthetic_root, Path("absent.txt"), n) == expected
    with pytest.raises(ConfigError, match="no class indices.*--data-root"):
        resolve_image_labels(plain, None, Path("absent.txt"), n)
    with pytest.raises(DataError, match="class list not found: .*nowhere.txt"):  # a message, not a traceback
        resolve_image_labels(tmp_path / "nowhere.txt", synthetic_root, Path("absent.txt"), n)
    write_cls_list(own, {ids[0]: [0], ids[1]: [1, 2]})  # a list with classes keeps its own
    assert resolve_image_labels(own, synthetic_root, Path("absent.txt"), n) == {ids[0]: [0], ids[1]: [1, 2]}


def test_a_one_class_prediction_of_another_size_fails_and_its_bad_map_is_no_matter(stage6_inputs, capsys):
    """A one-class image keeps P as it is, so only the image can tell that P is not its size; its saliency
    map is not needed, so a bad one does not fail it (a many-class image with a bad map does fail)."""
    layout, tmp = stage6_inputs
    labels = layout.image_labels("train_aug")
    single = [i for i, c in labels.items() if len(c) == 1]
    pred = read_label(tmp / "pred" / f"{single[0]}.png")
    write_label(tmp / "pred" / f"{single[0]}.png", pred[:30, :20])
    sal = read_grey(tmp / "sal" / f"{single[1]}.png")
    write_grey(tmp / "sal" / f"{single[1]}.png", sal[:, :-3])
    assert gen_masked_label.main(_argv(layout, tmp, "--workers", "1")) == 1
    err = capsys.readouterr().err
    assert f"sizes differ: prediction {tmp / 'pred' / single[0]}.png is 20x30 (WxH), image " \
           f"{layout.image_path(single[0])} is" in err
    assert not (tmp / "out" / f"{single[0]}.png").exists()
    np.testing.assert_array_equal(read_label(tmp / "out" / f"{single[1]}.png"),
                                  read_label(tmp / "pred" / f"{single[1]}.png"))
