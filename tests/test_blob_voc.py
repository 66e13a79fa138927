"""The second synthetic generator (tools/blob_voc.py): a valid VOC-format dataset with an object record."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nsrom.classes import IGNORE_INDEX
from nsrom.data import TRAIN_SPLIT, VAL_SPLIT, read_cls_list
from nsrom.data_check import check_dataset
from nsrom.errors import ConfigError
from nsrom.images import read_grey, read_label, read_rgb
from nsrom.objects import MISSED, instance_mask_path, read_record
from tools.blob_voc import generate_blobs

NUM_CLASSES = 4


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    root = tmp_path_factory.mktemp("blob") / "data"
    return generate_blobs(root, num_train=16, num_val=4, num_classes=NUM_CLASSES, min_size=112, max_size=160,
                          missing=0.5, seed=3)


def test_layout_passes_the_data_check(blobs):
    report = check_dataset(blobs, [TRAIN_SPLIT, VAL_SPLIT], workers=1)
    assert report.errors == [] and report.warnings == []
    assert len(blobs.ids(TRAIN_SPLIT)) == 16 and len(blobs.ids(VAL_SPLIT)) == 4


def test_images_masks_and_record_agree(blobs):
    labels = read_cls_list(blobs.cls_list_path, NUM_CLASSES)
    record = read_record(blobs.root)
    statuses = []
    for image_id in blobs.ids(TRAIN_SPLIT):
        image = read_rgb(blobs.image_path(image_id))
        mask = read_label(blobs.mask_path(image_id))
        instances = read_label(instance_mask_path(blobs.root, image_id), "instance mask")
        h, w = mask.shape
        assert image.shape == (h, w, 3) and instances.shape == (h, w)
        assert read_grey(blobs.saliency_path(image_id)).shape == (h, w)
        assert 112 <= min(h, w) and max(h, w) <= 160
        present = sorted({int(v) - 1 for v in np.unique(mask) if v not in (0, IGNORE_INDEX)})
        assert present == sorted(labels[image_id])
        for obj in record[image_id]:
            pixels = instances == obj.instance
            if not pixels.any():  # wholly covered by a later object: recorded, nothing to count
                continue
            # an object's pixels carry its class, or the ignore band of a boundary
            assert set(np.unique(mask[pixels])) <= {obj.cls + 1, IGNORE_INDEX}
            statuses.append(obj.saliency)
    assert 1 <= statuses.count(MISSED) < len(statuses)  # --missing 0.5: some, not all


def test_missing_objects_are_absent_from_the_saliency_map(blobs):
    record = read_record(blobs.root)
    for image_id in blobs.ids(TRAIN_SPLIT):
        saliency = read_grey(blobs.saliency_path(image_id)).astype(int)
        instances = read_label(instance_mask_path(blobs.root, image_id), "instance mask")
        for obj in record[image_id]:
            inside = saliency[instances == obj.instance]
            if inside.size == 0:
                continue
            if obj.saliency == MISSED:
                assert np.median(inside) < 64
            else:
                assert np.median(inside) >= 64


def test_same_seed_same_bytes(blobs, tmp_path):
    again = generate_blobs(tmp_path / "again", num_train=16, num_val=4, num_classes=NUM_CLASSES, min_size=112,
                           max_size=160, missing=0.5, seed=3)
    digest = lambda layout: {p.relative_to(layout.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
                             for p in sorted(layout.root.rglob("*")) if p.is_file()}
    assert digest(again) == digest(blobs)


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="min-size"):
        generate_blobs(tmp_path / "x", num_train=2, num_val=1, min_size=200, max_size=100)


def test_refuses_a_folder_holding_other_data(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "JPEGImages" / "mine.jpg").write_bytes(b"not a generator's")
    with pytest.raises(ConfigError, match="no generator wrote"):
        generate_blobs(tmp_path, num_train=2, num_val=1, min_size=112, max_size=120)
    assert [p.name for p in tmp_path.rglob("*")] == ["JPEGImages", "mine.jpg"]

