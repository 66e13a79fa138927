"""The synthetic generator writes the layout contract that every stage reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nsrom.classes import IGNORE_INDEX
from nsrom.data import DataLayout, classes_in_mask, derive_image_labels, read_cls_list
from nsrom.errors import ConfigError
from nsrom.objects import read_record
from nsrom.images import read_grey, read_label, read_rgb
from nsrom.synthetic import generate
from tools import make_synthetic_voc
from tools.blob_voc import generate_blobs

REPO = Path(__file__).resolve().parents[1]


def test_layout_sizes_and_value_ranges(synthetic_root: DataLayout):
    layout = synthetic_root
    names = layout.class_names()
    assert names[0] == "background" and len(names) == 4 and layout.num_classes == 3
    train, val = layout.ids("train_aug"), layout.ids("val")
    assert len(train) == 8 and len(val) == 4 and not set(train) & set(val)
    for image_id in train + val:
        image = read_rgb(layout.image_path(image_id))
        mask = read_label(layout.mask_path(image_id))
        sal = read_grey(layout.saliency_path(image_id))
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert mask.shape == sal.shape == image.shape[:2]
        assert max(image.shape[:2]) == 64 and min(image.shape[:2]) >= 44
        values = set(np.unique(mask).tolist())
        assert values <= {0, 1, 2, 3, IGNORE_INDEX}
        assert values & {1, 2, 3}, f"{image_id} has no object"


def test_image_labels_equal_classes_in_masks(synthetic_root: DataLayout):
    layout = synthetic_root
    listed = read_cls_list(layout.cls_list_path, layout.num_classes)
    assert list(listed) == layout.ids("train_aug")
    for image_id, classes in listed.items():
        mask = read_label(layout.mask_path(image_id))
        assert classes == sorted({int(v) - 1 for v in np.unique(mask) if 0 < v < IGNORE_INDEX})


def test_saliency_misses_non_salient_objects(tmp_path):
    layout = generate(tmp_path, num_train=24, num_val=0, size=96, num_classes=4, seed=3)
    objects = read_record(layout.root)
    statuses = [o.saliency for objs in objects.values() for o in objs]
    assert "salient" in statuses and "missing" in statuses
    # Saliency inside salient-only objects is high, inside missing-only objects low.
    high, low = [], []
    for image_id, objs in objects.items():
        mask, sal = read_label(layout.mask_path(image_id)), read_grey(layout.saliency_path(image_id))
        by_class = {}
        for o in objs:
            by_class.setdefault(o.cls, set()).add(o.saliency)
        for k, st in by_class.items():
            region = sal[mask == k + 1]
            if region.size and st == {"salient"}:
                high.append(region.mean())
            elif region.size and st == {"missing"}:
                low.append(region.mean())
    assert min(high) > 120 and max(low) < 60


def test_rarely_salient_classes_are_missed_far_more_often(tmp_path):
    layout = generate(tmp_path, num_train=60, num_val=0, size=48, num_classes=3, seed=5, rarely_salient=1)
    statuses: dict[bool, list[str]] = {False: [], True: []}
    for objs in read_record(layout.root).values():
        for o in objs:
            statuses[o.cls == 0].append(o.saliency)
    missed = {rare: sum(s == "missing" for s in st) / len(st) for rare, st in statuses.items()}
    assert len(statuses[True]) >= 20 and len(statuses[False]) >= 40
    assert missed[True] > 0.6 and missed[False] < 0.35, missed


def test_images_do_not_depend_on_saliency_settings_or_val_count(tmp_path):
    a = generate(tmp_path / "a", num_train=4, num_val=1, size=48, num_classes=3, seed=2, rarely_salient=0)
    b = generate(tmp_path / "b", num_train=4, num_val=3, size=48, num_classes=3, seed=2, rarely_salient=2)
    for image_id in a.ids("train_aug") + a.ids("val"):
        assert a.image_path(image_id).read_bytes() == b.image_path(image_id).read_bytes(), image_id
        assert a.mask_path(image_id).read_bytes() == b.mask_path(image_id).read_bytes(), image_id
    assert any(a.saliency_path(i).read_bytes() != b.saliency_path(i).read_bytes() for i in a.ids("train_aug"))
    with pytest.raises(Exception, match="rarely_salient"):
        generate(tmp_path / "c", num_train=1, num_val=0, size=48, num_classes=3, rarely_salient=4)


def test_deterministic_for_a_seed(tmp_path):
    a = generate(tmp_path / "a", num_train=3, num_val=1, size=48, num_classes=3, seed=7)
    b = generate(tmp_path / "b", num_train=3, num_val=1, size=48, num_classes=3, seed=7)
    c = generate(tmp_path / "c", num_train=3, num_val=1, size=48, num_classes=3, seed=8)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    for rel in files:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    assert (a.root / "JPEGImages/train_00000.jpg").read_bytes() != (c.root / "JPEGImages/train_00000.jpg").read_bytes()


def test_refuses_a_folder_holding_other_data_and_writes_nothing(tmp_path):
    own = tmp_path / "ImageSets" / "Segmentation" / "train_aug.txt"
    own.parent.mkdir(parents=True)
    own.write_text("my_image\n")
    with pytest.raises(ConfigError, match="no generator wrote"):
        generate(tmp_path, num_train=2, num_val=1, size=48, num_classes=3, seed=7)
    assert own.read_text() == "my_image\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ImageSets", "Segmentation", "train_aug.txt"]


def test_refuses_a_folder_made_by_the_other_generator(tmp_path, capsys):
    """A blob_voc.py folder is a dataset too: writing the synthetic one into it would mix two datasets."""
    blobs = generate_blobs(tmp_path / "blobs", num_train=2, num_val=1, num_classes=2, min_size=48, max_size=48)
    before = {p: p.read_bytes() for p in blobs.root.rglob("*") if p.is_file()}
    capsys.readouterr()  # the generator's progress bar
    with pytest.raises(SystemExit) as exc:
        make_synthetic_voc.main(["--out", str(blobs.root), "--num-train", "2", "--num-val", "1", "--size", "48",
                                 "--classes", "2"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {blobs.root} already holds a dataset made by tools/blob_voc.py (blob_voc.json)")
    assert {p: p.read_bytes() for p in blobs.root.rglob("*") if p.is_file()} == before
    # and the other way round; a folder with foreign files says what it found
    ours = generate(tmp_path / "ours", num_train=2, num_val=1, size=48, num_classes=2, seed=1)
    with pytest.raises(ConfigError, match="made by tools/make_synthetic_voc.py"):
        generate_blobs(ours.root, num_train=2, num_val=1, num_classes=2, min_size=48, max_size=48)
    (tmp_path / "mine" / "JPEGImages").mkdir(parents=True)
    (tmp_path / "mine" / "JPEGImages" / "a.jpg").write_bytes(b"mine")
    with pytest.raises(ConfigError, match=r"mine already holds files that no generator wrote \(JPEGImages/;"):
        generate(tmp_path / "mine", num_train=2, num_val=1, size=48, num_classes=2, seed=1)


def test_writes_again_over_its_own_and_an_interrupted_output(tmp_path):
    first = generate(tmp_path / "a", num_train=3, num_val=1, size=48, num_classes=3, seed=7)
    before = {p: p.read_bytes() for p in first.root.rglob("*") if p.is_file()}
    generate(tmp_path / "a", num_train=3, num_val=1, size=48, num_classes=3, seed=7)
    assert {p: p.read_bytes() for p in first.root.rglob("*") if p.is_file()} == before
    # A run killed after its first file: the parameter file alone marks the folder as the generator's.
    interrupted = tmp_path / "b"
    interrupted.mkdir()
    (interrupted / "synthetic.json").write_text("{}")
    (interrupted / "labels.txt").write_text("0 background\n")
    layout = generate(interrupted, num_train=3, num_val=1, size=48, num_classes=3, seed=7)
    assert layout.ids("train_aug") == ["train_00000", "train_00001", "train_00002"]
    assert (interrupted / "objects.json").is_file()


def test_derived_labels_match_written_train_cls(synthetic_root: DataLayout):
    derived = derive_image_labels(synthetic_root, synthetic_root.ids("train_aug"))
    assert derived == read_cls_list(synthetic_root.cls_list_path)
    assert synthetic_root.image_labels("val") == derive_image_labels(synthetic_root, synthetic_root.ids("val"))


def test_classes_in_mask_rejects_unknown_values():
    mask = np.array([[0, 1], [255, 3]], dtype=np.uint8)
    assert classes_in_mask(mask, 3) == [0, 2]
    with pytest.raises(Exception, match="outside 0..2"):
        classes_in_mask(mask, 2, "m.png")


def test_cli_writes_layout_and_rejects_bad_class_count(tmp_path):
    tool = REPO / "tools" / "make_synthetic_voc.py"
    ok = subprocess.run([sys.executable, str(tool), "--out", str(tmp_path / "d"), "--num-train", "2",
                         "--num-val", "1", "--size", "40", "--classes", "2"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "2 train_aug + 1 val" in ok.stdout
    assert len(list((tmp_path / "d" / "JPEGImages").glob("*.jpg"))) == 3
    bad = subprocess.run([sys.executable, str(tool), "--out", str(tmp_path / "e"), "--classes", "99"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr == "error: --classes must be 1..28, got 99\n"
    assert not (tmp_path / "e").exists()  # checked before anything is written
    for flags, message in ((["--num-val", "0"], "--num-val must be at least 1, got 0"),
                           (["--classes", "3", "--rarely-salient", "4"], "--rarely-salient must be 0..3, got 4")):
        bad = subprocess.run([sys.executable, str(tool), "--out", str(tmp_path / "e"), *flags],
                             capture_output=True, text=True)
        assert bad.returncode == 2 and bad.stderr == f"error: {message}\n"
    assert not (tmp_path / "e").exists()
    with pytest.raises(ConfigError, match="num_classes must be in 1..28"):  # the library checks it first too
        generate(tmp_path / "f", num_train=1, num_val=1, size=40, num_classes=40)
    assert not (tmp_path / "f").exists()


def test_a_split_without_images_has_no_list_not_even_an_earlier_runs(tmp_path):
    layout = generate(tmp_path / "d", num_train=2, num_val=1, size=40, num_classes=2)
    assert layout.list_path("val").is_file()
    generate(tmp_path / "d", num_train=2, num_val=0, size=40, num_classes=2)  # the tool's own folder, made again
    assert not layout.list_path("val").exists() and layout.ids("train_aug") == ["train_00000", "train_00001"]
