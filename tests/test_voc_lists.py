"""The VOC list tool on a tiny fake VOC + SBD tree."""

from __future__ import annotations

import numpy as np
import pytest

from nsrom.data import DataLayout, read_cls_list, read_ids, write_ids
from nsrom.errors import DataError
from nsrom.images import write_grey, write_label, write_rgb
from nsrom.voc_lists import build_voc_lists
from tools.make_voc_lists import main as voc_lists_main


@pytest.fixture
def fake_voc(tmp_path):
    """VOC train {a,b}, val {c,d}; SBD train {b,e,c}, val {f}; some files missing."""
    voc = DataLayout(tmp_path / "VOC2012")
    sbd = tmp_path / "sbd"
    write_ids(voc.list_dir / "train.txt", ["a", "b"])
    write_ids(voc.list_path("val"), ["c", "d"])
    write_ids(sbd / "train.txt", ["b", "e", "c"])
    write_ids(sbd / "val.txt", ["f"])
    img = np.zeros((4, 5, 3), np.uint8)
    mask = np.zeros((4, 5), np.uint8)
    for i, image_id in enumerate("abcdef"):
        if image_id != "e":
            write_rgb(voc.image_path(image_id), img)
        if image_id != "f":
            m = mask.copy()
            m[0, 0] = i + 1  # class i (0-based) present
            m[1, 1] = 255
            write_label(voc.mask_path(image_id), m)
        if image_id not in "acd":
            write_grey(voc.saliency_path(image_id), mask)
    return voc, sbd


def test_lists_from_sbd_lists_and_missing_report(fake_voc):
    voc, sbd = fake_voc
    report = build_voc_lists(voc.root, sbd_dir=sbd)
    assert report.splits["train_aug"] == ["a", "b", "e", "f"]  # union minus VOC val ("c")
    assert report.splits["val"] == ["c", "d"]
    assert report.missing["images"] == [voc.image_path("e")]
    assert report.missing["masks"] == [voc.mask_path("f")]
    assert report.missing["saliency maps"] == [voc.saliency_path("a")]
    assert read_ids(voc.list_path("train_aug")) == ["a", "b", "e", "f"]
    # train_cls.txt derived from the masks; "f" has no mask and is left out.
    assert read_cls_list(voc.cls_list_path) == {"a": [0], "b": [1], "e": [4]}
    missing = (voc.list_dir / "missing_files.txt").read_text().split()
    assert len(missing) == 3
    summary = report.summary()
    assert "train_aug: 4 ids" in summary and "missing masks: 1" in summary
    assert "SegmentationClassAug.zip" in summary  # where the missing masks come from
    assert "no train_aug image has a saliency map" not in summary  # three of four have one
    import shutil

    shutil.rmtree(voc.saliency_dir)
    summary = build_voc_lists(voc.root, sbd_dir=sbd, write=False).summary()
    assert f"no train_aug image has a saliency map in {voc.saliency_dir}" in summary and "saliency_aug.tar.gz" in summary


def test_a_saliency_folder_given_is_checked_and_recorded_for_the_stages(fake_voc, capsys):
    voc, sbd = fake_voc
    voc.saliency_dir.rename(voc.root / "sal")
    for image_id in "aef":
        write_grey(voc.root / "sal" / f"{image_id}.png", np.zeros((4, 5), np.uint8))
    voc_lists_main(["--voc-root", str(voc.root), "--sbd-dir", str(sbd), "--saliency-dir", "sal"])
    out = capsys.readouterr().out
    assert "missing saliency maps: none" in out and f"saliency_dir recorded in {voc.root / 'dataset.yaml'}" in out
    assert DataLayout(voc.root).saliency_path("a") == voc.root / "sal" / "a.png"  # what every stage reads now
    voc_lists_main(["--voc-root", str(voc.root), "--sbd-dir", str(sbd), "--saliency-dir", "sal2", "--dry-run"])
    assert "missing saliency maps: 4" in capsys.readouterr().out
    assert DataLayout(voc.root).settings.saliency_dir == "sal"  # a dry run records nothing
    voc_lists_main(["--voc-root", str(voc.root), "--sbd-dir", str(sbd), "--saliency-dir", "sal2"])
    assert "--saliency-dir sal2 not recorded in ROOT/dataset.yaml: it holds no map" in capsys.readouterr().out
    assert DataLayout(voc.root).settings.saliency_dir == "sal"  # a folder without maps is not recorded


def test_a_saliency_folder_given_from_the_current_folder_is_recorded_by_its_path(fake_voc, capsys, monkeypatch):
    voc, sbd = fake_voc
    elsewhere = voc.root.parent / "maps"
    voc.saliency_dir.rename(elsewhere)
    monkeypatch.chdir(voc.root.parent)
    voc_lists_main(["--voc-root", str(voc.root), "--sbd-dir", str(sbd), "--saliency-dir", "maps"])
    assert "missing saliency maps: 1" in capsys.readouterr().out  # "a" has none, as before
    assert DataLayout(voc.root).saliency_dir == elsewhere.resolve()


def test_lists_from_masks_without_sbd_lists(fake_voc):
    voc, _ = fake_voc
    report = build_voc_lists(voc.root, write=False)
    # SBD ids from SegmentationClassAug masks: a..e ("f" has none), minus val.
    assert report.splits["train_aug"] == ["a", "b", "e"]
    assert not voc.list_path("train_aug").exists()


def test_cli_reports_missing_voc_lists(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        voc_lists_main(["--voc-root", str(tmp_path)])
    assert exc.value.code == 2
    assert "train.txt" in capsys.readouterr().err


def test_a_missing_voc_or_sbd_list_names_the_flags_the_tool_has(fake_voc, capsys):
    """Not --train-split (make_voc_lists.py has no such flag): the list and --voc-root / --sbd-dir."""
    voc, sbd = fake_voc
    (sbd / "train.txt").unlink()
    with pytest.raises(SystemExit) as exc:
        voc_lists_main(["--voc-root", str(voc.root), "--sbd-dir", str(sbd), "--dry-run"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"error: image list not found: {sbd / 'train.txt'} (--sbd-dir must")
    assert "--train-split" not in err
    (voc.list_dir / "train.txt").rename(voc.list_dir / "trainval.txt")
    with pytest.raises(SystemExit) as exc:
        voc_lists_main(["--voc-root", str(voc.root), "--dry-run"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith(f"error: image list not found: {voc.list_dir / 'train.txt'} (--voc-root must be")
    assert "--train-split" not in err


def test_missing_sbd_masks_dir_is_explained(tmp_path):
    voc = DataLayout(tmp_path)
    write_ids(voc.list_dir / "train.txt", ["a"])
    write_ids(voc.list_path("val"), ["b"])
    with pytest.raises(DataError, match="SegmentationClassAug"):
        build_voc_lists(tmp_path, write=False)


def test_lists_whose_train_ids_are_all_in_val_leave_the_old_lists(fake_voc):
    """Every train and SBD id also in val: train_aug would be empty; nothing is written over the old lists."""
    voc, sbd = fake_voc
    write_ids(voc.list_path("val"), list("abcdef"))
    write_ids(voc.list_path("train_aug"), ["x"])
    with pytest.raises(DataError, match=r"train_aug would be empty: every id of .*train.txt and of SBD is in "
                                        r".*val.txt; nothing was written"):
        build_voc_lists(voc.root, sbd_dir=sbd)
    assert read_ids(voc.list_path("train_aug")) == ["x"] and not voc.cls_list_path.exists()


def test_the_lists_and_their_settings_are_written_together_or_not_at_all(fake_voc, tmp_path):
    """A file that cannot be written (here a folder in its place) leaves every file of the set as it was."""
    from nsrom.errors import OutputError
    from nsrom.files import atomic_write_texts

    voc, sbd = fake_voc
    write_ids(voc.list_path("train_aug"), ["x"])
    voc.cls_list_path.mkdir(parents=True)  # train_cls.txt cannot be written
    with pytest.raises(OutputError, match="train_cls.txt"):
        build_voc_lists(voc.root, sbd_dir=sbd)
    assert read_ids(voc.list_path("train_aug")) == ["x"] and not (voc.list_dir / "missing_files.txt").exists()
    good, blocked = tmp_path / "a.txt", tmp_path / "b.txt"
    good.write_text("old")
    blocked.mkdir()
    with pytest.raises(OutputError):
        atomic_write_texts({good: "new", blocked: "new"})
    assert good.read_text() == "old" and not list(tmp_path.glob(".*partial*"))
