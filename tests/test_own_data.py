"""A dataset of one's own: dataset.yaml settings, the list tool, and the pipeline without training masks."""

from __future__ import annotations

import numpy as np
import pytest

from nsrom.classes import write_class_names
from nsrom.data import DataLayout, read_cls_list, read_ids, write_cls_list
from nsrom.dataset_settings import load_settings
from nsrom.errors import DataError
from nsrom.images import read_grey, read_label, read_rgb, write_grey, write_label, write_rgb
from nsrom.synthetic import generate
from runner.context import RunContext
from runner.run import run_pipeline
from tools.make_lists import main as make_lists_main

TRAIN_OUTPUTS = ("cam", "oacam", "pseudo_label", "masked_label")
SEG_OUTPUTS = ("seg_round1", "seg_round1_crf", "seg_round2", "seg_round2_crf")


# --- DataLayout and ROOT/dataset.yaml -------------------------------------------------------


def test_defaults_are_voc_and_dataset_yaml_overrides_them(tmp_path):
    layout = DataLayout(tmp_path)
    assert (layout.image_path("a"), layout.mask_path("a")) == (
        tmp_path / "JPEGImages/a.jpg", tmp_path / "SegmentationClassAug/a.png")
    assert (layout.train_split, layout.val_split) == ("train_aug", "val")
    (tmp_path / "dataset.yaml").write_text("image_dir: imgs\nimage_ext: PNG\nmask_dir: gt\ntrain_split: train\n")
    layout = DataLayout(tmp_path, val_split="test")
    assert layout.image_path("a") == tmp_path / "imgs/a.png"
    assert layout.mask_dirs == [tmp_path / "gt"]
    assert (layout.train_split, layout.val_split) == ("train", "test")
    assert layout.settings.source("train_split") == "dataset.yaml"
    assert layout.settings.source("val_split") == "override"
    assert layout.settings.source("saliency_dir") == "default"
    # A flag given as None is "not set": the file's value stays.
    assert DataLayout(tmp_path, train_split=None).train_split == "train"


def test_image_extension_and_mask_folder_are_found_per_image(tmp_path):
    layout = DataLayout(tmp_path)
    write_rgb(tmp_path / "JPEGImages/a.png", np.zeros((2, 2, 3), np.uint8))
    write_rgb(tmp_path / "JPEGImages/b.jpg", np.zeros((2, 2, 3), np.uint8))
    write_label(tmp_path / "SegmentationClass/a.png", np.zeros((2, 2), np.uint8))  # VOC val's folder
    write_label(tmp_path / "SegmentationClassAug/b.png", np.zeros((2, 2), np.uint8))
    write_label(tmp_path / "SegmentationClass/b.png", np.ones((2, 2), np.uint8))
    assert layout.image_path("a").name == "a.png" and layout.image_path("b").name == "b.jpg"
    assert layout.mask_path("a") == tmp_path / "SegmentationClass/a.png"
    assert layout.mask_path("b") == tmp_path / "SegmentationClassAug/b.png"  # the first folder wins
    assert not layout.has_mask("c") and layout.mask_path("c") == tmp_path / "SegmentationClassAug/c.png"
    assert DataLayout(tmp_path, image_ext="jpg").image_path("a").name == "a.jpg"  # fixed extension: no search
    (tmp_path / "JPEGImages/b.jpg").rename(tmp_path / "JPEGImages/b.JPG")  # a camera's capitals
    write_rgb(tmp_path / "JPEGImages/d.PNG", np.zeros((2, 2, 3), np.uint8))
    assert layout.image_path("b").name == "b.JPG" and layout.image_path("d").name == "d.PNG"
    assert DataLayout(tmp_path, image_ext="jpg").image_path("b").name == "b.JPG"
    assert DataLayout(tmp_path, image_ext="png").image_path("b").name == "b.png"  # not found: the expected name


def test_other_folders_holding_a_splits_pngs_leave_out_the_layouts_own(tmp_path):
    layout = DataLayout(tmp_path)
    for folder, names in {"JPEGImages": ["a.png", "b.png"], "saliency": ["a.png"], "SegmentationClass": ["a.png"],
                          "SegmentationObject": ["a.png", "b.png"], "sal_maps": ["a.png", "b.png", "z.png"],
                          "gt": ["b.png", "a.jpg"], "empty": []}.items():
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / name).write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")  # a file, not a folder
    assert layout.other_folders_holding(["a", "b", "c"]) == [(tmp_path / "sal_maps", 2), (tmp_path / "gt", 1)]
    assert layout.other_folders_holding(["c"]) == []
    assert DataLayout(tmp_path / "nothing").other_folders_holding(["a"]) == []


@pytest.mark.parametrize("text, message", [
    ("image_extt: png\n", "unknown setting 'image_extt' .*did you mean image_ext"),
    ("image_ext: gif\n", "image_ext must be one of"),
    ("mask_dir: []\n", "mask_dir must be a folder name"),
    ("train_split: 3\n", "train_split must be a non-empty text"),
    ("- a\n", "must hold a mapping"),
])
def test_bad_dataset_yaml_names_file_and_key(tmp_path, text, message):
    (tmp_path / "dataset.yaml").write_text(text)
    with pytest.raises(DataError, match=message) as exc:
        load_settings(tmp_path)
    assert "dataset.yaml" in str(exc.value)


def test_labels_from_cls_list_then_masks_and_a_clear_error_without_either(tmp_path):
    layout = DataLayout(tmp_path)
    write_class_names(layout.labels_path, ["background", "a", "b", "c"])
    write_cls_list(layout.cls_list_path, {"x": [2]})
    write_label(layout.mask_path("y"), np.array([[0, 2, 255]], np.uint8))
    assert layout.labels_for(["x", "y"]) == {"x": [2], "y": [1]}
    with pytest.raises(DataError, match=r"1 images have no image-level labels \(e.g. z\).*train_cls.txt"):
        layout.labels_for(["x", "z"])


# --- tools/make_lists.py --------------------------------------------------------------------


def _images(root, ids, ext=".png"):
    for image_id in ids:
        write_rgb(root / "JPEGImages" / f"{image_id}{ext}", np.zeros((3, 4, 3), np.uint8))


def test_list_tool_from_a_csv_with_names_indices_and_separators(tmp_path, capsys):
    root = tmp_path / "root"
    _images(root, ["a", "b", "c", "d", "e"])
    for image_id, value in (("d", 1), ("e", 3)):
        write_label(root / "SegmentationClass" / f"{image_id}.png", np.array([[0, value]], np.uint8))
    csv = tmp_path / "labels.csv"
    csv.write_text("Image ID,Classes\na.png,dog;cat\nb,\"bird cat\"\nc,bird,dog\n# a comment\n\n")  # a header
    make_lists_main(["--root", str(root), "--labels-csv", str(csv), "--val-fraction", "1"])
    layout = DataLayout(root)
    assert layout.class_names() == ["background", "bird", "cat", "dog"]  # the CSV's names, sorted
    assert read_ids(layout.list_path("train_aug")) == ["a", "b", "c"]
    assert read_ids(layout.list_path("val")) == ["d", "e"]  # every image with a mask
    expected = {"a": [1, 2], "b": [0, 1], "c": [0, 2]}
    assert read_cls_list(layout.cls_list_path) == expected
    out = capsys.readouterr().out
    assert "train_aug: 3 ids" in out and "bird 2, cat 2, dog 2" in out
    assert "missing saliency maps (training images): 3" in out
    assert f"no training image has a saliency map in {root / 'saliency'}" in out
    # the class order was guessed (CSV names, sorted) while masks exist: said, with the way out
    assert "class indices from the CSV's names, sorted" in out and "1 bird, 2 cat, 3 dog" in out and "--classes" in out
    assert not (root / "dataset.yaml").exists()  # no layout flag given
    # The same labels as 0-based indices, read against labels.txt.
    csv.write_text("a,2 1\nb,0;1\nc,0|2\n")
    layout.cls_list_path.unlink()
    make_lists_main(["--root", str(root), "--labels-csv", str(csv), "--val-fraction", "1"])
    assert read_cls_list(layout.cls_list_path) == expected
    assert "class indices from the CSV" not in capsys.readouterr().out  # labels.txt gives them now
    # --classes in another order rewrites labels.txt, and says so
    make_lists_main(["--root", str(root), "--labels-csv", str(csv), "--classes", "dog,cat,bird",
                     "--val-fraction", "1", "--dry-run"])
    assert f"{layout.labels_path} would be rewritten: bird, cat, dog -> dog, cat, bird" in capsys.readouterr().out
    assert layout.class_names() == ["background", "bird", "cat", "dog"]  # a dry run writes nothing
    # Without the CSV every labelled image is a val image: refused, and the lists of before are kept.
    before = {p.name: p.read_bytes() for p in layout.list_dir.iterdir()}
    with pytest.raises(SystemExit):
        make_lists_main(["--root", str(root), "--classes", "bird,cat,dog", "--val-fraction", "1"])
    err = capsys.readouterr().err
    assert "no training image is left" in err and "--val-fraction 1.0 took all 2 images with a mask" in err
    assert "nothing was written" in err
    assert {p.name: p.read_bytes() for p in layout.list_dir.iterdir()} == before


def test_list_tool_on_ids_with_dots_a_spreadsheet_csv_and_bad_names(tmp_path, capsys):
    """Ids keep their dots; a CSV saved with a byte-order mark keeps its header; an id with a space and a
    --classes file that does not exist are errors that write nothing."""
    root = tmp_path / "root"
    _images(root, ["a.1", "b", "v.2"])
    write_label(root / "SegmentationClass" / "v.2.png", np.array([[0, 1]], np.uint8))
    csv = tmp_path / "labels.csv"
    csv.write_bytes("\ufeffimage_id,classes\na.1.png,cat\nb,dog\n".encode())
    make_lists_main(["--root", str(root), "--labels-csv", str(csv), "--classes", "cat,dog", "--val-fraction", "1"])
    layout = DataLayout(root)
    assert read_ids(layout.list_path("train_aug")) == ["a.1", "b"] and read_ids(layout.list_path("val")) == ["v.2"]
    assert read_cls_list(layout.cls_list_path) == {"a.1": [0], "b": [1]}
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in layout.list_dir.iterdir()}
    labels_before = layout.labels_path.read_bytes()
    with pytest.raises(SystemExit):
        make_lists_main(["--root", str(root), "--labels-csv", str(csv), "--classes", str(tmp_path / "clases.txt"),
                         "--val-fraction", "1"])
    assert f"--classes '{tmp_path / 'clases.txt'}': no such file" in capsys.readouterr().err
    assert layout.labels_path.read_bytes() == labels_before
    _images(root, ["x.png"], ext=".jpg")  # x.png.jpg: the lists would read its id as x
    with pytest.raises(SystemExit):
        make_lists_main(["--root", str(root), "--labels-csv", str(csv), "--val-fraction", "1"])
    assert "x.png.jpg: a file name with two image extensions" in capsys.readouterr().err
    (root / "JPEGImages" / "x.png.jpg").unlink()
    _images(root, ["c d"])
    with pytest.raises(SystemExit):
        make_lists_main(["--root", str(root), "--labels-csv", str(csv), "--val-fraction", "1"])
    assert f"{root / 'JPEGImages' / 'c d.png'}: an image id may not hold a space" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in layout.list_dir.iterdir()} == before
    (root / "ImageSets" / "val_ids.txt").write_text("v.2\nv.2\n")
    (root / "JPEGImages" / "c d.png").unlink()
    with pytest.raises(SystemExit):
        make_lists_main(["--root", str(root), "--labels-csv", str(csv),
                         "--val-ids", str(root / "ImageSets" / "val_ids.txt")])
    assert "val_ids.txt names an id more than once (e.g. v.2)" in capsys.readouterr().err


def test_list_tool_finds_saliency_maps_in_another_folder(tmp_path, capsys):
    root = tmp_path / "root"
    _images(root, ["a", "b", "c"])
    write_label(root / "SegmentationClass" / "c.png", np.array([[0, 1]], np.uint8))  # the val image
    for image_id in ("a", "b"):
        write_grey(root / "sal_maps" / f"{image_id}.png", np.zeros((3, 4), np.uint8))
    (tmp_path / "labels.csv").write_text("a,x\nb,x\n")
    make_lists_main(["--root", str(root), "--labels-csv", str(tmp_path / "labels.csv"), "--val-fraction", "1"])
    out = capsys.readouterr().out
    assert "no training image has a saliency map" in out and "saliency_dir: sal_maps in ROOT/dataset.yaml" in out


def test_list_tool_from_masks_with_layout_flags_and_a_seeded_fraction(tmp_path):
    root = tmp_path / "root"
    for i in range(10):
        write_rgb(root / "pics" / f"im{i}.png", np.zeros((3, 4, 3), np.uint8))
        write_label(root / "gt" / f"im{i}.png", np.array([[0, 1 + i % 2]], np.uint8))
    args = ["--root", str(root), "--classes", "x,y", "--val-fraction", "0.3", "--seed", "4",
            "--image-dir", "pics", "--mask-dir", "gt", "--train-split", "train", "--val-split", "test"]
    make_lists_main(args)
    layout = DataLayout(root)  # dataset.yaml now says where everything is
    assert (layout.image_dir, layout.mask_dirs, layout.train_split) == (root / "pics", [root / "gt"], "train")
    val = read_ids(layout.list_path("test"))
    assert len(val) == 3 and sorted(val + read_ids(layout.list_path("train"))) == sorted(f"im{i}" for i in range(10))
    assert read_cls_list(layout.cls_list_path)["im0"] == [0]
    make_lists_main(args)  # same seed, same draw
    assert read_ids(layout.list_path("test")) == val


@pytest.mark.parametrize("csv_text, message", [
    ("a,cat\nb,horse\n", "labels.csv:2: unknown class 'horse'; classes are cat, dog"),
    ("a,cat\nb,2\n", "labels.csv:2: class index 2 outside 0..1"),
    ("a,cat\na,dog\n", "labels.csv:2: image 'a' already listed on line 1"),
    ("a,cat\nzz,dog\n", "labels.csv:2: no image 'zz'"),
    ("a,background\n", "labels.csv:1: 'background' is the background"),
])
def test_list_tool_names_file_and_line_of_a_bad_csv_row(tmp_path, capsys, csv_text, message):
    root = tmp_path / "root"
    _images(root, ["a", "b"])
    (tmp_path / "labels.csv").write_text(csv_text)
    with pytest.raises(SystemExit) as exc:
        make_lists_main(["--root", str(root), "--labels-csv", str(tmp_path / "labels.csv"), "--classes", "cat,dog",
                         "--val-ids", str(tmp_path / "labels.csv")])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_list_tool_needs_a_split_rule_and_indices_need_names(tmp_path, capsys):
    root = tmp_path / "root"
    _images(root, ["a"])
    (tmp_path / "l.csv").write_text("a,0\n")
    for extra, message in (([], "class index 0 needs a class list"),
                           (["--classes", "cat"], "choose the validation images")):
        with pytest.raises(SystemExit):
            make_lists_main(["--root", str(root), "--labels-csv", str(tmp_path / "l.csv"), *extra])
        assert message in capsys.readouterr().err


# --- the pipeline on a 5-class PNG dataset without training masks --------------------------


@pytest.fixture(scope="module")
def own_dataset(tmp_path_factory) -> DataLayout:
    """5 classes, PNG images in images/, masks only for val in masks/, splits train/val,
    image-level labels from a CSV of class names; made with tools/make_lists.py."""
    tmp = tmp_path_factory.mktemp("own")
    src = generate(tmp / "src", num_train=6, num_val=3, size=48, num_classes=5, seed=1)
    root = tmp / "own"
    names = src.class_names()
    rows = []
    for image_id, classes in src.image_labels("train_aug").items():
        write_rgb(root / "images" / f"{image_id}.png", read_rgb(src.image_path(image_id)))
        write_grey(root / "saliency" / f"{image_id}.png", read_grey(src.saliency_path(image_id)))
        rows.append(f"{image_id}," + ";".join(names[c + 1] for c in classes))
    for image_id in src.ids("val"):
        write_rgb(root / "images" / f"{image_id}.png", read_rgb(src.image_path(image_id)))
        write_label(root / "masks" / f"{image_id}.png", read_label(src.mask_path(image_id)))
    (tmp / "labels.csv").write_text("image_id,classes\n" + "\n".join(rows) + "\n")
    make_lists_main(["--root", str(root), "--labels-csv", str(tmp / "labels.csv"), "--classes", str(src.labels_path),
                     "--val-fraction", "1", "--image-dir", "images", "--image-ext", "png", "--mask-dir", "masks",
                     "--train-split", "train", "--val-split", "val"])
    return DataLayout(root)


def test_own_dataset_is_as_described(own_dataset):
    assert own_dataset.num_classes == 5 and own_dataset.train_split == "train"
    assert not list(own_dataset.root.glob("JPEGImages")) and not list(own_dataset.root.rglob("*.jpg"))
    assert own_dataset.ids_with_masks("train") == [] and len(own_dataset.ids_with_masks("val")) == 3


def test_pipeline_runs_to_the_end_without_training_masks(own_dataset, tmp_path, tiny_preset):
    ctx = RunContext(own_dataset.root, tmp_path / "work", tiny_preset, device="cpu")
    results = run_pipeline(ctx)
    names = own_dataset.class_names()
    for key in SEG_OUTPUTS:  # val is scored, with the 6 classes of labels.txt
        assert 0.0 <= results[key]["miou"] <= 1.0 and list(results[key]["class_iou"]) == names, key
    for key in TRAIN_OUTPUTS:  # training outputs exist but cannot be scored
        assert key not in results
        assert results["notes"][key] == "not scored: no train image has a ground-truth mask"
    train_ids = own_dataset.ids("train")
    assert sorted(p.stem for p in ctx.masked_dir.glob("*.png")) == sorted(train_ids)
    assert sorted(p.stem for p in ctx.pseudo_dir.glob("*.png")) == sorted(train_ids)
    md = (ctx.work_dir / "results.md").read_text()
    assert "- CAM (stage 1b, train, best bg threshold): not scored" in md and "| DeepLab-v2 round 2 + CRF (val)" in md
    assert "- pseudo labels without POM (ablation): not scored" in md  # every note by its readable name
    assert "train_aug" not in md  # the run's split names, not VOC's
    assert results["splits"] == {"train": "train", "val": "val"}
    assert (ctx.figures_dir / "qualitative.png").is_file()
    assert not (ctx.figures_dir / "missed_objects.png").exists() and "missed_objects.png" not in md  # no object record


def test_pipeline_hands_its_layout_flags_and_config_to_every_stage(tmp_path, tiny_preset):
    from runner.cli import build_parser
    from runner.stage_argv import classification_args
    from nsrom.dataset_settings import layout_overrides

    (tmp_path / "dataset.yaml").write_text("train_split: train\n")
    args = build_parser().parse_args(["--data-root", str(tmp_path), "--work-dir", str(tmp_path / "w"),
                                      "--image-ext", "png", "--mask-dir", "gt", "--val-split", "dev",
                                      "--seg-config", "mine.yaml"])
    ctx = RunContext(tmp_path, tmp_path / "w", tiny_preset, layout_overrides=layout_overrides(args),
                     seg_config=args.seg_config)
    assert (ctx.train_split, ctx.val_split) == ("train", "dev")  # the file's, the flag's
    cls_args = classification_args(ctx, "exp1")
    assert cls_args[cls_args.index("--image-ext") + 1] == "png" and cls_args[cls_args.index("--mask-dir") + 1] == "gt"
    assert "--train-split" not in cls_args  # not given as a flag: the stage reads dataset.yaml itself
    seg = ctx.seg_args("round1", tmp_path / "labels")
    assert seg[:2] == ["-c", "mine.yaml"]
    for item in ("DATASET.SPLIT.TRAIN=train", "DATASET.SPLIT.VAL=dev", "DATASET.IMAGE_EXT=png", "DATASET.MASK_DIR=gt"):
        assert item in seg


def test_images_left_out_by_the_given_id_lists_are_named_for_that_reason(tmp_path, capsys):
    """An image with a CSV row that neither --train-ids nor --val-ids lists had been reported as having none."""
    root = tmp_path / "root"
    _images(root, ["a", "b", "c", "d"])
    csv = tmp_path / "labels.csv"
    csv.write_text("a,cat\nb,dog\nc,cat\n")
    (tmp_path / "train.txt").write_text("a\n")
    (tmp_path / "val.txt").write_text("b\n")
    write_label(root / "SegmentationClass" / "b.png", np.array([[0, 2]], np.uint8))
    make_lists_main(["--root", str(root), "--labels-csv", str(csv), "--train-ids", str(tmp_path / "train.txt"),
                     "--val-ids", str(tmp_path / "val.txt"), "--dry-run"])
    out = capsys.readouterr().out
    assert "left out (no CSV row, no mask): 1 images, e.g. d" in out
    assert "left out (in neither --train-ids nor --val-ids): 1 images, e.g. c" in out
