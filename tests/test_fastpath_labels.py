"""Device-side label resizing of the four MSC outputs equals the original per-sample PIL path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from segmentation.libs.datasets.transforms import nearest_indices, resize_labels_multi
from segmentation.libs.loss import msc_loss


def pil_resize(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """The original code's per-sample path: a PIL image resized with NEAREST."""
    return np.asarray(Image.fromarray(label).resize((width, height), resample=Image.NEAREST))


def test_indices_follow_pil_where_the_floor_formula_does_not():
    # floor((i + 0.5) * 8 / 6) gives 6 for i = 4; PIL's accumulated double gives 5.99.. -> 5
    assert nearest_indices(8, 6).tolist() == [0, 2, 3, 4, 5, 7]
    row = np.arange(8, dtype=np.uint8)[None].repeat(2, 0)
    assert pil_resize(row, 2, 6)[0].tolist() == [0, 2, 3, 4, 5, 7]


@pytest.mark.parametrize("height,width", [(321, 321), (37, 29), (16, 8), (101, 77)])
def test_four_sizes_in_one_call_equal_pil_per_sample(height, width):
    rng = np.random.default_rng(height * 1000 + width)
    labels = rng.integers(0, 21, size=(3, height, width)).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.1] = 255
    sizes = [(41, 41), (21, 21), (31, 31), (41, 41)] if height == 321 else [(7, 5), (13, 11), (6, 6), (height, width)]
    out = resize_labels_multi(torch.from_numpy(labels).long(), sizes)
    assert [tuple(o.shape) for o in out] == [(3, h, w) for h, w in sizes]
    for o, (h, w) in zip(out, sizes):
        assert o.dtype == torch.int64
        for i in range(3):
            assert np.array_equal(o[i].numpy(), pil_resize(labels[i], h, w))


def test_msc_loss_is_the_sum_of_mean_ces_against_pil_resized_labels():
    torch.manual_seed(0)
    labels = np.random.default_rng(3).integers(0, 4, size=(2, 33, 33)).astype(np.uint8)
    labels[:, :5] = 255
    outputs = [torch.randn(2, 4, s, s) for s in (5, 3, 4, 5)]
    expected = sum(
        F.cross_entropy(o, torch.from_numpy(np.stack([pil_resize(x, o.shape[2], o.shape[3]) for x in labels])).long(),
                        ignore_index=255)
        for o in outputs
    )
    torch.testing.assert_close(msc_loss(outputs, torch.from_numpy(labels).long()), expected)
