"""The object record (SegmentationObject + objects.json) and where a label map puts the missed objects' pixels."""

from __future__ import annotations

import numpy as np
import pytest

from nsrom.data import DataLayout
from nsrom.errors import DataError
from nsrom.files import write_json
from nsrom.images import read_label, write_label
from nsrom.objects import (
    ObjectRecord, instance_mask_path, object_counts, object_shares, read_record, record_path, write_objects,
    write_record,
)

# Two images. img_a: object 1 (class 0, missing from saliency) covers the left
# 2x3 block, object 2 (class 1, salient) the right column; img_b: object 1
# (class 2, missing) is 4 pixels. 255 in the instance mask is a boundary.
INSTANCES = {
    "img_a": np.array([[1, 1, 255, 2],
                       [1, 1, 0, 2],
                       [1, 1, 0, 2]], np.uint8),
    "img_b": np.array([[0, 1, 1, 0],
                       [0, 1, 1, 0],
                       [0, 0, 0, 0]], np.uint8),
}
RECORD = {
    "img_a": [ObjectRecord(1, 0, "missing"), ObjectRecord(2, 1, "salient")],
    "img_b": [ObjectRecord(1, 2, "missing")],
}
LABELS = {  # 0 background, k+1 class k, 255 ignore
    "img_a": np.array([[1, 1, 0, 2],
                       [255, 0, 0, 2],
                       [255, 3, 0, 0]], np.uint8),
    "img_b": np.array([[0, 3, 255, 0],
                       [0, 0, 0, 0],
                       [0, 0, 0, 0]], np.uint8),
}


@pytest.fixture()
def recorded(tmp_path):
    root = tmp_path / "data"
    for image_id, instances in INSTANCES.items():
        write_objects(root, image_id, instances)
        write_label(tmp_path / "labels" / f"{image_id}.png", LABELS[image_id])
    write_record(root, RECORD)
    return DataLayout(root), tmp_path / "labels"


def test_counts_per_object_by_outcome():
    counts = object_counts(LABELS["img_a"], INSTANCES["img_a"], RECORD["img_a"])
    # object 1: pixels 1,1 (right) / 0 (bg) / 255, 255 (ignored) / 3 (other): 6 pixels, the 255 boundary excluded
    assert counts.tolist() == [[2, 2, 1, 1], [2, 0, 1, 0]]


def test_shares_over_the_missing_objects_of_every_image(recorded):
    layout, labels = recorded
    shares = object_shares(layout, ["img_a", "img_b"], labels)
    # img_a object 1: right 2, ignored 2, bg 1, other 1; img_b object 1: right 1, ignored 1, bg 2 -> 10 pixels
    assert shares["objects"] == 2 and shares["pixels"] == 10
    assert shares["right_class"] == pytest.approx(0.3)
    assert shares["ignored"] == pytest.approx(0.3)
    assert shares["background"] == pytest.approx(0.3)
    assert shares["other_class"] == pytest.approx(0.1)
    salient = object_shares(layout, ["img_a", "img_b"], labels, status="salient")
    assert salient["objects"] == 1 and salient["right_class"] == pytest.approx(2 / 3)


def test_record_round_trip_and_bad_entries(recorded, tmp_path):
    layout, _ = recorded
    assert read_record(layout.root) == RECORD
    assert read_label(instance_mask_path(layout.root, "img_a")).tolist() == INSTANCES["img_a"].tolist()
    write_json(record_path(layout.root), {"img_a": [{"instance": 1, "class": 0, "saliency": "hidden"}]})
    with pytest.raises(DataError, match="hidden"):
        read_record(layout.root)
    write_json(record_path(layout.root), {"img_a": [{"instance": 1}]})
    with pytest.raises(DataError, match="img_a"):
        read_record(layout.root)
    record_path(layout.root).write_text('{"img_a": [{instance: 1}]}')  # not JSON: the file is named
    with pytest.raises(DataError, match=f"{record_path(layout.root)} is not valid JSON"):
        read_record(layout.root)
    for text, kind in (("[]", "list"), ("null", "NoneType")):
        record_path(layout.root).write_text(text)
        with pytest.raises(DataError, match=f"objects.json must map image ids to lists of objects, not hold a {kind}"):
            read_record(layout.root)


def test_a_label_of_another_size_names_both_files(recorded):
    layout, labels = recorded
    write_label(labels / "img_a.png", np.zeros((2, 4), np.uint8))
    with pytest.raises(DataError, match=r"img_a\.png \(2, 4\) and instance mask .*img_a\.png \(3, 4\)"):
        object_shares(layout, ["img_a"], labels)


def test_missing_label_file_is_named(recorded, tmp_path):
    layout, _ = recorded
    with pytest.raises(DataError, match="img_a.png"):
        object_shares(layout, ["img_a"], tmp_path / "nowhere")
