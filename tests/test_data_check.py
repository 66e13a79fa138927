"""The data check (nsrom.data_check, tools/check_data.py): every problem at once, with names, before work starts."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from PIL import Image

from classification import train as cls_train
from nsrom.data import DataLayout
from nsrom.data_check import (ERROR, IMAGES, MAX_LISTED_ERRORS, SALIENCY, WARNING, DataReport, FileJob, Problem,
                              check_dataset, check_files)
from nsrom.errors import DataError
from runner import run as runner, stages as stage_module
from runner.context import RunContext
from runner.presets import get_preset
from runner.run import run_pipeline
from runner.state import StageState
from segmentation import main as seg_main
from segmentation.libs.utils.config import CONFIG_DIR
from tools import check_data

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture()
def broken(synthetic_root, tmp_path) -> tuple[DataLayout, dict[str, str]]:
    """A copy of the synthetic set with one problem of each kind; returns it and the expected error per file."""
    layout = DataLayout(tmp_path / "data")
    shutil.copytree(synthetic_root.root, layout.root)
    train, val = layout.ids("train_aug"), layout.ids("val")
    jpeg = layout.image_path(train[0])
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    mask = layout.mask_path(train[1])
    mask.write_bytes(mask.read_bytes()[: mask.stat().st_size // 2])
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(layout.saliency_path(train[2]))
    Image.fromarray(np.zeros((64, 64), np.uint16)).save(layout.saliency_path(train[3]))  # 16-bit
    values = np.asarray(Image.open(layout.mask_path(val[0]))).copy()
    values[0, 0] = 9
    Image.fromarray(values).save(layout.mask_path(val[0]))
    lines = layout.cls_list_path.read_text().splitlines()
    lines[4] = f"{lines[4].split()[0]} 7"
    layout.cls_list_path.write_text("\n".join(lines) + "\n")
    layout.saliency_path(train[5]).unlink()
    expected = {
        str(jpeg): "cannot decode the image",
        str(mask): "cannot decode the mask",
        str(layout.saliency_path(train[2])): "saliency map is 7x5 (WxH) but its image",
        str(layout.saliency_path(train[3])): "mode I;16",
        str(layout.mask_path(val[0])): "values [9] outside 0..3 and 255",
        f"{layout.cls_list_path}:5": "class index 7 outside 0..2",
    }
    return layout, expected


def test_every_problem_is_reported_at_once_with_its_file(broken):
    layout, expected = broken
    report = check_dataset(layout, workers=2)
    errors = {p.path: p.message for p in report.errors}
    assert set(errors) == set(expected)
    for path, text in expected.items():
        assert text in errors[path], path
    missing = layout.saliency_path(layout.ids("train_aug")[5])
    assert [(p.path, p.part) for p in report.warnings] == [(str(missing), SALIENCY)]
    assert report.checked["images"] == 12 and report.checked["saliency"] == 7
    with pytest.raises(DataError) as exc:
        report.raise_for([(SALIENCY, "train_aug")], "stage 3")
    assert str(exc.value).count("\n") == 2  # the two saliency errors, nothing else
    report.raise_for([(SALIENCY, "val")], "nothing")  # no saliency error concerns val


def test_cli_prints_every_problem_and_exits_1(broken, capsys, tmp_path):
    layout, expected = broken
    assert check_data.main([str(layout.root), "-j", "1", "--json", str(tmp_path / "report.json")]) == 1
    out = capsys.readouterr().out
    assert all(path in out for path in expected) and "6 error(s)" in out and "images/s" in out
    assert (tmp_path / "report.json").is_file()


def test_a_missing_root_prints_no_rate(tmp_path, capsys):
    assert check_data.main([str(tmp_path / "nowhere"), "-j", "1"]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'nowhere'}: dataset root not found" in out
    assert "images/s" not in out and "inf" not in out


def test_a_bad_labels_txt_or_missing_list_is_named_once(tmp_path, capsys):
    (tmp_path / "labels.txt").write_text("0 background\nx cat\n")
    assert check_data.main([str(tmp_path), "-j", "1"]) == 1
    out = capsys.readouterr().out
    assert f"\n  {tmp_path / 'labels.txt'}:2: expected '<index> <name>', got 'x cat'\n" in out
    assert out.count(str(tmp_path / "labels.txt")) == 1 and "images/s" not in out
    (tmp_path / "labels.txt").unlink()
    assert check_data.main([str(tmp_path), "-j", "1", "--splits", "val"]) == 1
    out = capsys.readouterr().out
    assert out.count(str(tmp_path / "ImageSets" / "Segmentation" / "val.txt")) == 1


def test_a_list_that_is_not_utf8_or_a_class_list_that_contradicts_itself_is_an_error(synthetic_root, tmp_path,
                                                                                        capsys):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synthetic_root.root, root)
    lists = root / "ImageSets" / "Segmentation"
    val = (lists / "val.txt").read_bytes()
    (lists / "val.txt").write_bytes(val + b"caf\xe9\n")
    cls_lines = (lists / "train_cls.txt").read_text().splitlines()
    first_id = cls_lines[0].split()[0]
    other = "0" if cls_lines[0].split()[1:] != ["0"] else "1"
    (lists / "train_cls.txt").write_text("\n".join([*cls_lines, f"{first_id} {other}"]) + "\n")
    assert check_data.main([str(root), "-j", "1"]) == 1
    out = capsys.readouterr().out
    assert f"{lists / 'val.txt'} is not UTF-8 text" in out and "Traceback" not in out
    assert f"{lists / 'train_cls.txt'}:{len(cls_lines) + 1}: image '{first_id}' listed again with other classes " \
           "(first on line 1)" in out


def test_saliency_coverage_and_empty_or_full_maps(tmp_path):
    image = tmp_path / "x.jpg"
    Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(image)
    found = {}
    for name, values in (("empty", np.zeros((4, 4))), ("full", np.full((4, 4), 255)),
                         ("half", np.array([[127, 128, 0, 255]] * 4))):
        Image.fromarray(values.astype(np.uint8)).save(tmp_path / f"{name}.png")
        result = check_files(FileJob(name, "train_aug", image, saliency=tmp_path / f"{name}.png"))
        assert result.problems == []
        found[name] = result.coverage
    assert found == {"empty": 0.0, "full": 1.0, "half": 0.5}
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    result = check_files(FileJob("rgb", "train_aug", image, saliency=tmp_path / "rgb.png"))
    assert [p.severity for p in result.problems] == [WARNING]  # read as luminance, said so


def test_a_dataset_without_labels_txt_whose_masks_use_few_classes_is_warned(synthetic_root, tmp_path):
    """Without labels.txt the 21 VOC classes are assumed; masks holding only 0..3 say the dataset has 3."""
    layout = DataLayout(tmp_path / "data")
    shutil.copytree(synthetic_root.root, layout.root)
    assert check_dataset(layout, workers=1).warnings == []  # labels.txt present: no warning
    layout.labels_path.unlink()
    report = check_dataset(layout, workers=1)
    assert report.errors == [] and report.mask_classes == {0, 1, 2, 3}
    [warning] = report.warnings
    assert warning.path == str(layout.labels_path)
    assert "21 PASCAL VOC classes" in warning.message and "[0, 1, 2, 3]" in warning.message
    assert "has 3 classes besides background" in warning.message
    layout.saliency_path(layout.ids("train_aug")[0]).unlink()  # a missing file is listed after it
    assert [w.general for w in check_dataset(layout, workers=1).warnings] == [True, False]
    mask = layout.mask_path(layout.ids("val")[0])
    values = np.asarray(Image.open(mask)).copy()
    values[0, 0] = 20  # the last VOC class is used: the VOC classes may well be meant
    Image.fromarray(values).save(mask)
    assert [w.general for w in check_dataset(layout, workers=1).warnings] == [False]


def test_classifier_stops_before_training_on_a_corrupt_image(broken, tmp_path, capsys):
    layout, expected = broken
    with pytest.raises(SystemExit) as exc:
        cls_train.main(["--data-root", str(layout.root), "--runs-dir", str(tmp_path / "runs"), "--no-pretrained",
                        "--device", "cpu", "--num-workers", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert str(layout.image_path(layout.ids("train_aug")[0])) in err and f"{layout.cls_list_path}:5" in err
    assert not list((tmp_path / "runs").rglob("*.pth"))


def test_deeplab_stops_before_training_on_a_bad_label(synthetic_root, tmp_path, capsys):
    labels = tmp_path / "labels"
    shutil.copytree(synthetic_root.mask_dir, labels)
    bad = labels / f"{synthetic_root.ids('train_aug')[2]}.png"
    values = np.asarray(Image.open(bad)).copy()
    values[0, 0] = 40
    Image.fromarray(values).save(bad)
    with pytest.raises(SystemExit) as exc:
        seg_main.main(["train", "-c", str(CONFIG_DIR / "demo.yaml"), "--cpu", "--set",
                       f"DATASET.ROOT={synthetic_root.root}", "--set", f"DATASET.LABEL_DIR={labels}",
                       "--set", f"EXP.OUTPUT_DIR={tmp_path / 'out'}"])
    assert exc.value.code == 2
    assert f"{bad}: training label holds values [40]" in capsys.readouterr().err
    assert not list((tmp_path / "out").rglob("*.pth"))


def test_pipeline_checks_before_stage_1_and_only_what_the_remaining_stages_read(broken, tmp_path, monkeypatch):
    layout, _ = broken
    called = []
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda c, n=s.name: called.append(n))
                                           for s in stage_module.STAGES])
    ctx = RunContext(layout.root, tmp_path / "w", get_preset("tiny"), device="cpu")
    with pytest.raises(DataError, match="saliency map is 7x5"):
        run_pipeline(ctx)
    assert called == [] and (tmp_path / "w" / "data_check.json").is_file()
    # the image and the train mask are broken too; stages that read only val data still stop on the val mask
    state = StageState(ctx.work_dir)
    for name in stage_module.STAGE_NAMES[:stage_module.STAGE_NAMES.index("seg2_test")]:
        state.mark_done(name, 0.0)  # --from needs the earlier stages done
    with pytest.raises(DataError) as exc:
        run_pipeline(ctx, from_stage="seg2_test")
    assert "val_" in str(exc.value) and "saliency" not in str(exc.value) and called == []


def test_training_masks_are_needed_only_where_train_cls_does_not_list_the_image(synthetic_root, tmp_path):
    layout = DataLayout(tmp_path / "data")
    shutil.copytree(synthetic_root.root, layout.root)
    train = layout.ids("train_aug")
    for image_id in train:
        layout.mask_path(image_id).unlink()  # no training masks at all: fine while train_cls.txt lists every image
    assert check_dataset(layout, workers=1).problems == []
    lines = layout.cls_list_path.read_text().splitlines()
    layout.cls_list_path.write_text("\n".join(lines[1:]) + "\n")  # the first image loses its labels
    report = check_dataset(layout, workers=1)
    assert [(p.severity, p.path) for p in report.problems] == [
        (WARNING, str(layout.cls_list_path)), ("error", str(layout.mask_path(train[0])))]
    assert "labels come from the masks" in report.errors[0].message


def test_saliency_maps_kept_in_another_folder_are_pointed_at(synthetic_root, tmp_path, capsys):
    layout = DataLayout(tmp_path / "data")
    shutil.copytree(synthetic_root.root, layout.root)
    train = layout.ids("train_aug")
    layout.saliency_path(train[0]).unlink()
    report = check_dataset(layout, workers=1)
    assert not [p for p in report.warnings if "Other folders" in p.message]  # one file missing: no hint
    layout.saliency_dir.rename(layout.root / "sal")
    report = check_dataset(layout, workers=1)
    hints = [p for p in report.warnings if "Other folders" in p.message]
    assert [(p.part, p.split) for p in hints] == [(SALIENCY, "train_aug")]
    assert report.warnings[0] == hints[0]  # before the list of missing files, which can be long
    assert (f"hold <id>.png files of these images: sal ({len(train) - 1} of {len(train)}); if the saliency maps "
            "are in sal, set saliency_dir: sal in ROOT/dataset.yaml") in hints[0].message
    assert check_data.main([str(layout.root), "-j", "1"]) == 0  # warnings only
    assert "set saliency_dir: sal in ROOT/dataset.yaml" in capsys.readouterr().out
    (layout.root / "dataset.yaml").write_text("saliency_dir: sal\n")
    report = check_dataset(DataLayout(layout.root), workers=1)
    assert len(report.warnings) == 1 and "saliency map not found" in report.warnings[0].message


def test_saliency_maps_saved_as_jpeg_are_named(synthetic_root, tmp_path):
    layout = DataLayout(tmp_path / "data")
    shutil.copytree(synthetic_root.root, layout.root)
    train = layout.ids("train_aug")
    for image_id in train:
        path = layout.saliency_path(image_id)
        Image.open(path).save(path.with_suffix(".jpg"))
        path.unlink()
    hints = [p.message for p in check_dataset(layout, workers=1).warnings if p.path == str(layout.root)]
    assert hints == [f"{layout.saliency_dir} holds {len(train)} of these images' files as <id>.jpg; the stages "
                     "read <id>.png (8-bit PNG): if they are the saliency maps, convert them"]


def test_a_stage_lists_the_first_errors_and_counts_the_rest():
    problems = [Problem(ERROR, IMAGES, "train_aug", f"/d/JPEGImages/{i:03d}.jpg", "cannot decode the image")
                for i in range(MAX_LISTED_ERRORS + 5)]
    with pytest.raises(DataError) as info:
        DataReport("/d", problems).raise_for(None, "stage 1")
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{MAX_LISTED_ERRORS + 5} problem(s) in the data under /d; stage 1 needs")
    assert lines[1:-1] == [f"  /d/JPEGImages/{i:03d}.jpg: cannot decode the image" for i in range(MAX_LISTED_ERRORS)]
    assert lines[-1] == "  ... and 5 more"


def test_the_printed_report_shows_five_files_of_a_repeated_problem_and_counts_the_rest():
    missing = [Problem(WARNING, SALIENCY, "train_aug", f"/d/saliency/{i}.png", "saliency map not found")
               for i in range(8)]
    other = Problem(WARNING, SALIENCY, "train_aug", "/d/saliency/x.png", "saliency map is 16-bit")
    report = DataReport("/d", [*missing[:3], other, *missing[3:]])
    lines = report.format().splitlines()
    start = lines.index("9 warning(s):") + 1
    assert lines[start:start + 7] == [
        "  /d/saliency/0.png: saliency map not found", "  /d/saliency/1.png: saliency map not found",
        "  /d/saliency/2.png: saliency map not found", "  /d/saliency/x.png: saliency map is 16-bit",
        "  /d/saliency/3.png: saliency map not found", "  /d/saliency/4.png: saliency map not found",
        "  ... and 3 more (train_aug): saliency map not found"]
    assert len(report.to_dict()["warnings"]) == 9  # the JSON report keeps every one
    val = [Problem(WARNING, SALIENCY, "val", f"/d/val/{i}.png", "saliency map not found") for i in range(2)]
    lines = DataReport("/d", [*missing, *val]).format().splitlines()  # another split: its own kind, shown
    assert "  /d/val/0.png: saliency map not found" in lines and "  /d/val/1.png: saliency map not found" in lines


def test_the_hint_leaves_out_the_layouts_own_folders_under_a_relative_root(synthetic_root, tmp_path, monkeypatch):
    shutil.copytree(synthetic_root.root, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    layout = DataLayout("data")
    layout.saliency_dir.rename(layout.root / "sal")
    [hint] = [p.message for p in check_dataset(layout, workers=1).warnings if p.general]
    assert "these images: sal (" in hint and "SegmentationClassAug" not in hint and "JPEGImages" not in hint


def test_the_hint_for_masks_names_the_flag_when_a_flag_chose_the_folder(synthetic_root, tmp_path):
    layout = DataLayout(tmp_path / "data", mask_dir="SegmentationClassAug")
    shutil.copytree(synthetic_root.root, layout.root)
    (layout.root / "gt").mkdir()
    for image_id in layout.ids("val"):
        layout.mask_path(image_id).rename(layout.root / "gt" / f"{image_id}.png")
    [hint] = [p.message for p in check_dataset(layout, workers=1).warnings if p.general]
    assert hint.endswith("set --mask-dir gt (this run's --mask-dir overrides ROOT/dataset.yaml)")


def test_training_masks_needed_and_kept_elsewhere_are_pointed_at_in_the_stop(synthetic_root, tmp_path):
    layout = DataLayout(tmp_path / "data")
    shutil.copytree(synthetic_root.root, layout.root)
    layout.cls_list_path.unlink()  # the image-level labels must come from the masks
    (layout.root / "gt").mkdir()
    for image_id in layout.ids("train_aug"):
        layout.mask_path(image_id).rename(layout.root / "gt" / f"{image_id}.png")
    report = check_dataset(layout, workers=1)
    with pytest.raises(DataError) as info:
        report.raise_for(None, "stage 1")
    last = str(info.value).splitlines()[-1]
    assert last.startswith("  note: Other folders of") and "gt (" in last and "mask_dir: [gt, " in last


def test_maps_saved_with_a_capital_extension_are_to_be_renamed(synthetic_root, tmp_path):
    layout = DataLayout(tmp_path / "data")
    shutil.copytree(synthetic_root.root, layout.root)
    for image_id in layout.ids("train_aug"):
        layout.saliency_path(image_id).rename(layout.saliency_dir / f"{image_id}.PNG")
    [hint] = [p.message for p in check_dataset(layout, workers=1).warnings if p.general]
    assert hint.endswith("as <id>.PNG; the stages read <id>.png (8-bit PNG): if they are the saliency maps, "
                         "rename them to <id>.png")


def test_sizes_are_compared_as_displayed_by_the_images_exif_orientation(synthetic_root, tmp_path):
    """A photo stored on its side with EXIF orientation 6 and a mask and saliency map drawn on the
    picture as displayed: no size error (the readers turn the photo the same way)."""
    layout = DataLayout(tmp_path / "data")
    shutil.copytree(synthetic_root.root, layout.root)
    image_id = layout.ids("val")[0]
    shown = np.asarray(Image.open(layout.image_path(image_id)))[:, :40]  # 40 wide, 64 high as displayed
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed = stored turned 90 degrees clockwise
    Image.fromarray(np.ascontiguousarray(np.rot90(shown))).save(layout.image_path(image_id), exif=exif, quality=95)
    for path in (layout.mask_path(image_id), layout.saliency_path(image_id)):
        with Image.open(path) as img:
            img.crop((0, 0, 40, 64)).save(path)
    assert check_dataset(layout, workers=1).errors == []
    from nsrom.images import read_rgb
    assert read_rgb(layout.image_path(image_id)).shape == (64, 40, 3)


def test_a_saliency_split_that_is_not_checked_is_refused(synthetic_root, capsys):
    """A typo ('train-aug') had checked no saliency map at all and passed."""
    with pytest.raises(SystemExit):
        check_data.main([str(synthetic_root.root), "--saliency-splits", "train-aug"])
    assert "--saliency-splits train-aug: not among the splits checked (train_aug, val" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        check_data.main([str(synthetic_root.root), "-j", "0"])
    assert "expected a whole number >= 1, got '0'" in capsys.readouterr().err
