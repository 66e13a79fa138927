"""Stage 4 input pipeline: nearest label resizing, scale/pad/crop/flip, datasets and the label-source guard."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from nsrom.errors import ConfigError, DataError
from nsrom.images import write_label
from segmentation.libs.data_config import training_label_dir
from segmentation.libs.datasets import TrainDataset
from segmentation.libs.datasets.transforms import (
    augment, nearest_indices, pad_to, random_crop, random_hflip, rescale, resize_label, resize_labels,
    to_network_input,
)
from segmentation.libs.utils.config import load_config

MEAN_BGR = [104.008, 116.669, 122.675]


def test_nearest_indices_use_pixel_centres():
    assert nearest_indices(4, 2).tolist() == [1, 3]
    assert nearest_indices(2, 4).tolist() == [0, 0, 1, 1]
    assert nearest_indices(5, 3).tolist() == [0, 2, 4]
    assert nearest_indices(321, 41)[:3].tolist() == [3, 11, 19]


@pytest.mark.parametrize("size", [(41, 41), (7, 13), (30, 5), (64, 64)])
def test_resize_label_matches_pil_nearest(size):
    label = np.random.default_rng(0).integers(0, 21, size=(37, 29)).astype(np.uint8)
    pil = np.asarray(Image.fromarray(label).resize((size[1], size[0]), resample=Image.NEAREST))
    assert np.array_equal(resize_label(label, *size), pil)


def test_resize_labels_batch_equals_per_image():
    labels = torch.from_numpy(np.random.default_rng(1).integers(0, 5, size=(3, 21, 17)))
    out = resize_labels(labels, (6, 4))
    assert out.shape == (3, 6, 4) and out.dtype == labels.dtype
    for i in range(3):
        assert np.array_equal(out[i].numpy(), resize_label(labels[i].numpy(), 6, 4))


def test_rescale_truncates_sizes_and_keeps_label_values():
    image = np.zeros((10, 7, 3), np.float32)
    label = np.array([[0, 1, 255, 2, 3, 1, 0]] * 10, np.uint8)
    img, lab = rescale(image, label, 0.75)
    assert img.shape == (7, 5, 3) and lab.shape == (7, 5)
    assert set(np.unique(lab)) <= {0, 1, 2, 3, 255}
    img, lab = rescale(image, label, 1.0, base_size=20)  # long side (height) to 20 first
    assert lab.shape == (20, 14)


def test_pad_bottom_right_with_mean_and_ignore():
    image = np.full((2, 3, 3), 7.0, np.float32)
    label = np.ones((2, 3), np.uint8)
    img, lab = pad_to(image, label, 4, MEAN_BGR)
    assert lab.tolist() == [[1, 1, 1, 255], [1, 1, 1, 255], [255] * 4, [255] * 4]
    assert np.all(img[:2, :3] == 7.0)
    assert np.allclose(img[3, 0], MEAN_BGR) and np.allclose(img[0, 3], MEAN_BGR)
    net = to_network_input(img, MEAN_BGR)
    assert net.shape == (3, 4, 4) and np.allclose(net[:, 3, :], 0.0)  # padding is 0 after the mean


def test_random_crop_takes_the_same_window():
    image = np.arange(6 * 8, dtype=np.float32).reshape(6, 8, 1).repeat(3, axis=2)
    label = np.arange(6 * 8).reshape(6, 8)
    for seed in range(5):
        img, lab = random_crop(image, label, 4, random.Random(seed))
        assert img.shape == (4, 4, 3) and np.array_equal(img[..., 0], lab)


def test_augment_keeps_image_and_label_aligned():
    """The image encodes its label (value 10 * label), so every crop/flip/pad must preserve it."""
    rng = np.random.default_rng(3)
    label = rng.integers(0, 4, size=(9, 14)).astype(np.uint8)
    image = np.repeat((10.0 * label)[..., None], 3, axis=2).astype(np.float32)
    flips = 0
    for seed in range(12):
        img, lab = augment(image, label, scales=[1.0], crop_size=12, mean_bgr=MEAN_BGR, rng=random.Random(seed))
        assert img.shape == (12, 12, 3) and lab.shape == (12, 12)
        assert np.all(lab[9:] == 255)  # padded rows (bottom) are ignore
        valid = lab != 255
        assert np.array_equal(img[..., 0][valid], 10.0 * lab[valid])
        assert np.allclose(img[~valid], MEAN_BGR)
        windows = [label[:, left:left + 12] for left in range(3)]
        plain = any(np.array_equal(lab[:9], w) for w in windows)
        flipped = any(np.array_equal(lab[:9], w[:, ::-1]) for w in windows)
        assert plain or flipped
        flips += flipped and not plain
    assert 0 < flips < 12  # some crops are flipped, some are not


class FixedDraw(random.Random):
    """A generator whose ``random()`` always returns ``value`` (its other draws derive from it too)."""

    def __init__(self, value: float):
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_hflip_with_probability_one_half():
    # flip when the uniform draw in [0, 1) is below 0.5: draws 0 .. 0.49 flip, 0.5 .. 0.99 do not
    image = np.arange(3, dtype=np.float32).reshape(1, 3, 1).repeat(3, axis=2)
    label = np.array([[0, 1, 2]], dtype=np.uint8)
    for draw, flipped in ((0.0, True), (0.49, True), (0.5, False), (0.99, False)):
        img, lab = random_hflip(image, label, FixedDraw(draw))
        assert lab.tolist() == ([[2, 1, 0]] if flipped else [[0, 1, 2]])
        assert img[0, :, 0].tolist() == lab[0].tolist()
    # augment flips with the same probability (scale 1, crop the size of the image: only the flip varies)
    for draw, flipped in ((0.49, True), (0.5, False)):
        _, lab = augment(image.repeat(3, axis=0), label.repeat(3, axis=0), scales=[1.0], crop_size=3,
                         mean_bgr=MEAN_BGR, rng=FixedDraw(draw))
        assert lab[0].tolist() == ([2, 1, 0] if flipped else [0, 1, 2])


def test_augment_scales_from_the_set():
    label = np.zeros((40, 40), np.uint8)
    sizes = set()
    for seed in range(40):
        img, lab = augment(np.zeros((40, 40, 3), np.float32), label, scales=[0.5, 0.75, 1.0, 1.25, 1.5],
                           crop_size=80, mean_bgr=MEAN_BGR, rng=random.Random(seed))
        sizes.add(int((lab != 255).sum(axis=0).max()))
    assert sizes == {20, 30, 40, 50, 60}


def test_train_dataset_reads_label_dir_and_skips_missing(synthetic_root, tmp_path):
    ids = synthetic_root.ids("train_aug")
    from nsrom.images import read_label

    for image_id in ids[:-1]:
        write_label(tmp_path / f"{image_id}.png", read_label(synthetic_root.mask_path(image_id)))
    ds = TrainDataset(synthetic_root, "train_aug", tmp_path, mean_bgr=MEAN_BGR, scales=[1.0], crop_size=33, n_classes=4)
    assert len(ds) == len(ids) - 1
    image_id, image, label = ds[0]
    assert image.shape == (3, 33, 33) and image.dtype == np.float32
    assert label.shape == (33, 33) and label.dtype == np.int64
    write_label(tmp_path / f"{ids[0]}.png", np.full_like(read_label(synthetic_root.mask_path(ids[0])), 9))
    with pytest.raises(DataError, match="values \\[9\\]"):
        ds[0]


def test_label_source_guard(synthetic_root, tmp_path):
    cfg = load_config(None, [f"DATASET.ROOT={synthetic_root.root}", "DATASET.LABEL_DIR=" + str(synthetic_root.mask_dir)])
    with pytest.raises(ConfigError, match="ground truth.*--fully-supervised"):
        training_label_dir(cfg, synthetic_root, fully_supervised=False)
    assert training_label_dir(cfg, synthetic_root, fully_supervised=True) == synthetic_root.mask_dir
    cfg = load_config(None, [f"DATASET.ROOT={synthetic_root.root}", "DATASET.LABEL_DIR=/x/SegmentationClass"])
    with pytest.raises(ConfigError):
        training_label_dir(cfg, synthetic_root, fully_supervised=False)
    cfg = load_config(None, [f"DATASET.ROOT={synthetic_root.root}", "DATASET.LABEL_DIR=null"])
    with pytest.raises(ConfigError, match="LABEL_DIR is not set"):
        training_label_dir(cfg, synthetic_root, fully_supervised=False)
    assert training_label_dir(cfg, synthetic_root, fully_supervised=True) == synthetic_root.mask_dir
    cfg = load_config(None, [f"DATASET.ROOT={synthetic_root.root}", f"DATASET.LABEL_DIR={tmp_path / 'pseudo'}"])
    assert training_label_dir(cfg, synthetic_root, fully_supervised=False) == tmp_path / "pseudo"
