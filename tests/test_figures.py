"""The report's grid of missed objects (runner/figures.py): the outline and the choice of images."""

from __future__ import annotations

import numpy as np

from nsrom.objects import ObjectRecord
from runner.figures import OUTLINE_RGB, images_with_missed_objects, outline


def test_outline_paints_the_border_of_the_mask_and_nothing_else():
    tile = np.zeros((5, 6, 3), np.uint8)
    tile[..., 2] = 7  # a tile colour that must survive off the border
    mask = np.zeros((5, 6), bool)
    mask[1:4, 1:5] = True  # a 3x4 block: its 2 inner pixels keep the tile colour
    mask[4, 5] = True  # a pixel on the tile's edge, alone: all border
    out = outline(tile, mask)
    painted = (out == OUTLINE_RGB).all(axis=2)
    expected = np.array([[0, 0, 0, 0, 0, 0],
                         [0, 1, 1, 1, 1, 0],
                         [0, 1, 0, 0, 1, 0],
                         [0, 1, 1, 1, 1, 0],
                         [0, 0, 0, 0, 0, 1]], bool)
    assert (painted == expected).all()
    assert (out[~expected] == tile[~expected]).all()
    assert (tile[..., :2] == 0).all()  # the input is not changed


def test_outline_of_a_mask_that_fills_the_tile_is_the_tile_edge():
    painted = (outline(np.zeros((3, 3, 3), np.uint8), np.ones((3, 3), bool)) == OUTLINE_RGB).all(axis=2)
    assert painted.sum() == 8 and not painted[1, 1]


def test_images_with_missed_objects_are_the_first_in_list_order():
    record = {
        "a": [ObjectRecord(1, 0, "salient")],
        "b": [ObjectRecord(1, 0, "salient"), ObjectRecord(2, 1, "missing")],
        "c": [ObjectRecord(1, 2, "faint")],
        "d": [ObjectRecord(1, 3, "missing")],
        "e": [ObjectRecord(1, 3, "missing")],
    }
    ids = ["e", "a", "b", "c", "d", "x"]  # list order, not the record's; "x" has no record
    assert images_with_missed_objects(record, ids, 2) == ["e", "b"]
    assert images_with_missed_objects(record, ids, 5) == ["e", "b", "d"]
    assert images_with_missed_objects(record, ["a", "c"], 3) == []
