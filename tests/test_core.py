"""The shared core: palette, label/grey PNG I/O, atomic writes, CAM normalisation, metrics."""

from __future__ import annotations

import os
import re
import stat

import numpy as np
import pytest
import torch.utils.data
from PIL import Image

from nsrom.cam import max_normalize, minmax_normalize, to_uint8
from nsrom.classes import (
    VOC_CLASSES, load_class_names, parse_index, read_class_names, values_outside_classes, voc_palette, write_class_names,
)
from nsrom.data import read_cls_list, read_ids
from nsrom.errors import DataError, exit_on_error
from nsrom.files import atomic_path, atomic_write_text, read_json, write_json
from nsrom.images import read_grey, read_label, read_rgb, write_label
from nsrom.metrics import ConfusionAccumulator, confusion_matrix, format_table, scores


def test_voc_palette_known_colours():
    pal = voc_palette()
    assert pal[0].tolist() == [0, 0, 0]
    assert pal[1].tolist() == [128, 0, 0]  # aeroplane
    assert pal[15].tolist() == [192, 128, 128]  # person
    assert pal[20].tolist() == [0, 64, 128]  # tvmonitor
    assert pal[255].tolist() == [224, 224, 192]  # ignore


def test_values_outside_the_classes_are_all_but_0_to_c_and_255():
    label = np.array([[0, 1, 3, 4], [255, 254, 7, 3]], np.uint8)
    assert values_outside_classes(label, 3) == [4, 7, 254]
    assert values_outside_classes(label, 254) == []
    assert values_outside_classes(np.zeros((2, 2), np.uint8), 1) == []


def test_class_names_from_labels_txt(tmp_path):
    assert load_class_names(tmp_path) == list(VOC_CLASSES)
    write_class_names(tmp_path / "labels.txt", ["background", "cat", "dog"])
    assert load_class_names(tmp_path) == ["background", "cat", "dog"]
    (tmp_path / "labels.txt").write_text("0 background\n2 cat\n")
    with pytest.raises(DataError, match="labels.txt:2"):
        read_class_names(tmp_path / "labels.txt")


def test_label_png_round_trip_is_palette(tmp_path):
    label = np.array([[0, 1, 255], [20, 3, 0]], dtype=np.uint8)
    write_label(tmp_path / "x.png", label)
    img = Image.open(tmp_path / "x.png")
    assert img.mode == "P" and img.getpalette()[3:6] == [128, 0, 0]
    np.testing.assert_array_equal(read_label(tmp_path / "x.png"), label)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temporary left


def test_corrupt_and_missing_files_name_the_path(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="bad.png"):
        read_grey(bad, "saliency map")
    with pytest.raises(DataError, match="saliency map not found: .*nope.png"):
        read_grey(tmp_path / "nope.png", "saliency map")
    Image.new("RGB", (2, 2)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="mode RGB"):
        read_label(tmp_path / "rgb.png")


def test_an_output_name_that_fits_is_written_and_one_too_long_is_named(tmp_path):
    """The temporary name adds ~20 characters: a 250-byte name must still be writable through it."""
    from nsrom.errors import OutputError

    name = "a" * 246 + ".png"
    atomic_write_text(tmp_path / name, "x")
    assert (tmp_path / name).read_text() == "x" and [p.name for p in tmp_path.iterdir()] == [name]
    with pytest.raises(OutputError, match=r"file name too long; shorten the name \(at most 255 bytes\)"):
        atomic_write_text(tmp_path / ("b" * 256 + ".txt"), "x")
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_an_output_path_that_names_no_file_is_refused(tmp_path, monkeypatch):
    """--out '' had ended in 'Device or resource busy' renaming a temporary file onto the current folder."""
    from nsrom.errors import OutputError

    monkeypatch.chdir(tmp_path)
    for name in ("", ".", ".."):
        with pytest.raises(OutputError, match="not a file name"):
            write_json(name, {})
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "scores.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert read_json(target) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
                         ids=["umask022", "umask077", "umask002"])
def test_atomic_write_gives_the_mode_of_a_plain_write(tmp_path, umask, expected):
    """A result written atomically is readable as the umask allows, as after ``open(path, "w")``, not always 0o600."""
    old_umask = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "new.txt", "a\n")
        write_label(tmp_path / "label.png", np.zeros((2, 2), np.uint8))
        (tmp_path / "old.txt").write_text("before")
        os.chmod(tmp_path / "old.txt", 0o600)
        atomic_write_text(tmp_path / "old.txt", "after")
    finally:
        os.umask(old_umask)
    for name in ("new.txt", "label.png", "old.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_id_and_class_lists(tmp_path):
    from nsrom.data import has_class_tokens

    (tmp_path / "l.txt").write_text("/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\nb\n\n")
    assert read_ids(tmp_path / "l.txt") == ["2007_000032", "b"]
    assert not has_class_tokens(tmp_path / "l.txt")  # deeplab-pytorch's lines are ids, for --list too
    (tmp_path / "n.txt").write_text("3 3\n")
    assert has_class_tokens(tmp_path / "n.txt")  # image '3' of class 3
    (tmp_path / "c.txt").write_text("a 0 3\nb 2\n")
    assert read_cls_list(tmp_path / "c.txt", 4) == {"a": [0, 3], "b": [2]}
    with pytest.raises(DataError, match="c.txt:1: class index 3 outside 0..2"):
        read_cls_list(tmp_path / "c.txt", 3)


def test_class_indices_are_ascii_decimal_everywhere_and_one_parser_reads_train_cls(tmp_path):
    """``--1``, ``²`` or ``1_0`` are not class indices: a message naming the file and line, never
    int()'s traceback; ``+1`` and ``03`` are 1 and 3 for the reader and the data check alike."""
    from nsrom.data_check import check_class_list
    from nsrom.dataset_lists import read_label_csv, resolve_csv_labels

    assert [parse_index(t) for t in ("3", "03", "+3", "-1", "--1", "\u00b2", "1_0", "3.0", "")] == \
        [3, 3, 3, -1, None, None, None, None, None]
    (tmp_path / "c.txt").write_text("a +1\nb 03\nb 3\n")
    assert read_cls_list(tmp_path / "c.txt", 4) == {"a": [1], "b": [3]}
    assert check_class_list(tmp_path / "c.txt", 4) == []  # the same file is fine for the check too
    for bad in ("--1", "\u00b2", "1_0"):
        (tmp_path / "c.txt").write_text(f"a 0\nb {bad}\n", encoding="utf-8")
        with pytest.raises(DataError, match=f"c.txt:2: class index '{bad}' is not an integer"):
            read_cls_list(tmp_path / "c.txt", 4)
        problems = check_class_list(tmp_path / "c.txt", 4)
        assert [(p.path, p.message) for p in problems] == \
            [(f"{tmp_path / 'c.txt'}:2", f"class index '{bad}' is not an integer (line 'b {bad}')")]
    (tmp_path / "labels.txt").write_text("0 background\n\u00b9 cat\n", encoding="utf-8")
    with pytest.raises(DataError, match="labels.txt:2: expected '<index> <name>'"):
        read_class_names(tmp_path / "labels.txt")
    (tmp_path / "l.csv").write_text("a,1\nb,--1\n")
    with pytest.raises(DataError, match=r"l.csv:2: unknown class '--1'; classes are cat, dog"):
        resolve_csv_labels(read_label_csv(tmp_path / "l.csv"), ["background", "cat", "dog"], tmp_path / "l.csv")


def test_images_and_masks_are_read_as_displayed_by_their_exif_orientation(tmp_path):
    """A phone photo stored 6x4 with orientation 6 (turn 90 degrees clockwise) is displayed 4x6, and
    an annotation tool draws its mask 4x6: the reader turns the photo, the data check compares the
    displayed sizes."""
    from nsrom.images import oriented_size

    stored = np.zeros((4, 6, 3), np.uint8)
    stored[0, 0] = 255  # top-left when stored: top-right once turned clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif)
    rgb = read_rgb(tmp_path / "photo.png")
    assert rgb.shape == (6, 4, 3) and rgb[0, 3].tolist() == [255, 255, 255] and rgb[0, 0].tolist() == [0, 0, 0]
    with Image.open(tmp_path / "photo.png") as img:
        assert img.size == (6, 4) and oriented_size(img) == (4, 6)
    Image.fromarray(stored).save(tmp_path / "plain.png")
    assert read_rgb(tmp_path / "plain.png").shape == (4, 6, 3)


def test_a_16_bit_grey_image_is_read_by_its_high_bits_not_clipped_to_white(tmp_path):
    values = np.array([[0, 5000, 40000, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    rgb = read_rgb(tmp_path / "deep.png")
    assert rgb.shape == (1, 4, 3) and rgb[0, :, 0].tolist() == [0, 19, 156, 255] and (rgb[..., 1] == rgb[..., 0]).all()
    Image.fromarray(np.zeros((2, 2), np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(DataError, match="floating-point pixels"):
        read_rgb(tmp_path / "float.tif")
    Image.fromarray(np.array([[0, 100, 255]], np.int32), mode="I").save(tmp_path / "int.tif")  # 32-bit, 8-bit range
    assert read_rgb(tmp_path / "int.tif")[0, :, 0].tolist() == [0, 100, 255]
    Image.fromarray(np.array([[0, 300]], np.int32), mode="I").save(tmp_path / "wide.tif")  # no range guessed
    with pytest.raises(DataError, match=r"32-bit integer pixels \(mode I\) outside 0..255"):
        read_rgb(tmp_path / "wide.tif")


def test_list_ids_keep_their_own_dots_and_repeats_are_refused(tmp_path):
    """A dot belongs to the id unless an image extension follows it; a list naming an id twice
    (two lists joined) and a class list giving one image two label sets are errors naming the file."""
    (tmp_path / "l.txt").write_text("a.1\nb.v2.png\n/JPEGImages/c.d.jpg\nE.JPG\nJPEGImages/f.2\n")
    assert read_ids(tmp_path / "l.txt") == ["a.1", "b.v2", "c.d", "E", "f.2"]
    (tmp_path / "twice.txt").write_text("a\nb\na\n")
    with pytest.raises(DataError, match=r"twice.txt names an id more than once \(e.g. a\)"):
        read_ids(tmp_path / "twice.txt")
    (tmp_path / "c.txt").write_text("a 0\nb 1\na 0\n")  # the same line again: harmless
    assert read_cls_list(tmp_path / "c.txt", 3) == {"a": [0], "b": [1]}
    (tmp_path / "c.txt").write_text("a 0\nb 1\na 2\n")
    with pytest.raises(DataError, match=r"c.txt:3: image 'a' is listed again with other classes \(\[2\] against "
                                        r"\[0\] on line 1\)"):
        read_cls_list(tmp_path / "c.txt", 3)


def test_text_files_that_are_not_utf8_are_named_and_a_bom_is_dropped(tmp_path):
    (tmp_path / "l.txt").write_bytes(b"a\ncaf\xe9\n")
    with pytest.raises(DataError, match=r"l.txt is not UTF-8 text .*save it as UTF-8"):
        read_ids(tmp_path / "l.txt")
    (tmp_path / "labels.txt").write_bytes("\ufeff0 background\n1 cat\n".encode())
    assert read_class_names(tmp_path / "labels.txt") == ["background", "cat"]
    with pytest.raises(DataError, match=re.escape(f"file not found: {tmp_path / 'none.txt'}")):
        read_class_names(tmp_path / "none.txt")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path} is a folder, not a file")):
        read_class_names(tmp_path)


def test_json_written_without_nan_and_into_a_new_folder(tmp_path):
    write_json(tmp_path / "new" / "r.json", {"a": float("nan"), "b": [1.5, float("inf")], "c": (2, None)})
    assert (tmp_path / "new" / "r.json").read_text().split() == \
        ["{", '"a":', "null,", '"b":', "[", "1.5,", "null", "],", '"c":', "[", "2,", "null", "]", "}"]


def test_missing_list_names_the_lists_there(tmp_path):
    """A VOC-format folder with train.txt but no train_aug.txt: the error names both and the flag."""
    lists = tmp_path / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    for name in ("train", "val", "train_cls"):
        (lists / f"{name}.txt").write_text("a\n")
    with pytest.raises(DataError) as info:
        read_ids(lists / "train_aug.txt")
    message = str(info.value)
    assert "train_aug.txt" in message and "make_voc_lists.py" in message
    assert "holds train, val:" in message and "--train-split" in message  # train_cls is not a split
    assert message.endswith("(to train on train.txt: --train-split train, or train_split: train)")
    with pytest.raises(DataError) as info:
        read_ids(tmp_path / "elsewhere" / "test.txt")
    assert str(info.value) == f"image list not found: {tmp_path / 'elsewhere' / 'test.txt'}"


def test_cam_normalisations():
    cam = np.array([[-1.0, 0.0], [1.0, 4.0]])
    np.testing.assert_allclose(max_normalize(cam), [[0, 0], [0.25, 1]], atol=1e-6)
    stack = np.stack([cam, 2 * cam, np.zeros_like(cam)])
    out = max_normalize(stack)
    np.testing.assert_allclose(out[1], out[0], atol=1e-6)
    assert not out[2].any()
    assert to_uint8(np.array([0.0, 0.5, 1.0])).tolist() == [0, 127, 255]
    np.testing.assert_allclose(minmax_normalize(cam), [[0, 0.2], [0.4, 1]], atol=1e-6)


def test_metrics_on_known_confusion_matrix():
    gt = np.array([0, 0, 0, 1, 1, 2, 255, 0])
    pred = np.array([0, 0, 1, 1, 2, 2, 1, 255])  # last pixel: ignored prediction
    m = confusion_matrix(gt, pred, 4)
    assert m.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    s = scores(m, ["bg", "a", "b", "c"])
    assert s["Pixel Accuracy"] == pytest.approx(4 / 6)
    assert s["Class IoU"] == {"bg": pytest.approx(2 / 3), "a": pytest.approx(1 / 3), "b": pytest.approx(1 / 2), "c": None}
    assert s["Mean IoU"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)
    assert s["Mean Accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert s["Class Accuracy"] == {"bg": pytest.approx(2 / 3), "a": pytest.approx(1 / 2), "b": 1.0, "c": None}
    assert s["Frequency Weighted IoU"] == pytest.approx(3 / 6 * 2 / 3 + 2 / 6 * 1 / 3 + 1 / 6 * 1 / 2)
    acc = ConfusionAccumulator(4)
    acc.update(gt[:4], pred[:4])
    acc.update(gt[4:], pred[4:])
    assert (acc + ConfusionAccumulator(4)).matrix.tolist() == m.tolist()
    table = format_table(s, "val")
    assert "bg" in table and "66.67" in table and "Mean IoU" in table


def test_class_absent_from_gt_but_predicted_scores_zero_and_is_not_averaged():
    s = scores(confusion_matrix(np.array([0, 0]), np.array([0, 1]), 2))
    assert s["Class IoU"]["1"] == 0.0
    assert s["Mean IoU"] == pytest.approx(0.5)  # only class 0 is in the ground truth


class UnreadableImages(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise DataError(f"image /data/{index}.jpg is not a readable image")


def test_an_error_in_a_data_loader_worker_prints_its_message_without_the_traceback(capsys):
    @exit_on_error
    def load():
        for _ in torch.utils.data.DataLoader(UnreadableImages(), num_workers=1):
            pass

    with pytest.raises(SystemExit) as exc:
        load()
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err == "error: image /data/0.jpg is not a readable image (in a data-loader worker)\n"


def test_ctrl_c_in_any_script_says_how_to_continue_and_exits_130(synthetic_root, tmp_path, monkeypatch, capsys):
    """A classifier trainer (exit_on_error) and the segmentation CLI (click) stop alike: status 130, one
    line that says the outputs are kept and how to continue, no traceback."""
    from classification import train
    from nsrom.errors import INTERRUPTED
    from segmentation import main as seg_main

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "fit", interrupt)
    with pytest.raises(SystemExit) as exc:
        train.main(["--data-root", str(synthetic_root.root), "--runs-dir", str(tmp_path), "--no-pretrained",
                    "--device", "cpu", "--num-workers", "0", "--input-size", "32", "--width-div", "16"])
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert err.endswith(f": {INTERRUPTED}\n") and "Traceback" not in err and "--resume" in INTERRUPTED
    monkeypatch.setattr(seg_main, "load_cli_config", interrupt)
    with pytest.raises(SystemExit) as exc:
        seg_main.main(["train", "-c", "configs/demo.yaml", "--cpu"])
    assert exc.value.code == 130 and capsys.readouterr().err.endswith(f"main.py: {INTERRUPTED}\n")


def test_a_file_that_is_not_a_tensor_file_is_named_with_what_it_is(tmp_path):
    import argparse
    import pickle

    from nsrom.errors import NsromError
    from nsrom.training_state import load_torch_file

    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(NsromError, match=r"cannot read checkpoint .*text.pth: not a PyTorch file, or a damaged one"):
        load_torch_file(tmp_path / "text.pth", "checkpoint")
    with open(tmp_path / "objects.pth", "wb") as f:  # a checkpoint holding an object (argparse's), as some do
        pickle.dump({"model": {}, "args": argparse.Namespace(lr=0.1)}, f, protocol=2)
    with pytest.raises(NsromError, match=r"holds Python objects besides tensors \(argparse.Namespace\).*"
                                         r"torch.save\(model.state_dict"):
        load_torch_file(tmp_path / "objects.pth", "checkpoint")
    (tmp_path / "damaged.pth").write_bytes(b"\x80\x02" + bytes(64))  # a pickle header, then nothing sensible
    with pytest.raises(NsromError, match=r"damaged.pth: not a PyTorch file, or a damaged one"):
        load_torch_file(tmp_path / "damaged.pth", "checkpoint")
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pth")
    assert load_torch_file(tmp_path / "ok.pth", "checkpoint")["w"].tolist() == [1.0, 1.0]
