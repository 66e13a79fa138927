"""Input pipeline (resize, colour jitter, ImageNet normalisation) and the samples/targets of stages 1-2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from classification import transforms
from classification.datasets import IAMDataset, ImageLabelDataset, load_samples
from classification.transforms import (
    IMAGENET_MEAN, IMAGENET_STD, ColorJitter, InputTransform, adjust_hue, export_transform, hue_offset,
    to_normalized_tensor, train_transform,
)
from nsrom.errors import ConfigError, DataError
from nsrom.images import write_grey


def solid(rgb, size=(6, 4)) -> Image.Image:
    return Image.fromarray(np.full((size[1], size[0], 3), rgb, dtype=np.uint8))


def test_normalisation_uses_imagenet_mean_and_std():
    t = to_normalized_tensor(solid((255, 0, 255)))
    assert t.shape == (3, 4, 6)
    expected = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1],
                (1 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]]
    torch.testing.assert_close(t[:, 0, 0], torch.tensor(expected))


def test_resize_is_to_a_square_on_both_sides():
    assert export_transform(32)(solid((10, 20, 30), size=(50, 20))).shape == (3, 32, 32)


def test_hue_rotation_by_a_third_turns_red_into_green_and_blue():
    assert np.abs(np.asarray(adjust_hue(solid((255, 0, 0)), 1 / 3))[0, 0].astype(int) - [0, 255, 0]).max() <= 8
    assert np.abs(np.asarray(adjust_hue(solid((255, 0, 0)), -1 / 3))[0, 0].astype(int) - [0, 0, 255]).max() <= 8


def test_hue_shift_is_truncated_toward_zero():
    # 0.09 * 255 = 22.95 -> 22 (rounding would give 23); -0.09 -> -22; 0.0039 * 255 = 0.99 -> 0
    assert [hue_offset(s) for s in (0.09, -0.09, 0.0039, -0.0039, 0.1, -0.1)] == [22, -22, 0, 0, 25, -25]
    img = Image.fromarray(np.full((2, 2, 3), (200, 40, 40), np.uint8)).convert("HSV")
    hue = np.asarray(img)[0, 0, 0].astype(int)
    shifted = np.asarray(adjust_hue(img.convert("RGB"), 0.09).convert("HSV"))[0, 0, 0]
    assert shifted == (hue + 22) % 256
    assert np.asarray(adjust_hue(img.convert("RGB"), 0.0039).convert("HSV"))[0, 0, 0] == hue


def test_jitter_with_zero_strength_is_the_identity():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8))
    out = ColorJitter(0, 0, 0, 0)(img)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(img))


def test_brightness_jitter_scales_by_one_factor_within_0_7_to_1_3():
    gen = torch.Generator().manual_seed(0)
    jitter = ColorJitter(brightness=0.3, contrast=0, saturation=0, hue=0, generator=gen)
    img = solid((100, 150, 200))
    factors = []
    for _ in range(40):
        out = np.asarray(jitter(img)).astype(float)[0, 0]
        ratio = out / np.array([100, 150, 200])
        assert ratio.max() - ratio.min() < 0.02  # one factor for all channels
        factors.append(ratio.mean())
    assert 0.69 <= min(factors) < 0.9 and 1.1 < max(factors) <= 1.31


def test_training_jitter_defaults_are_0_3_and_hue_0_1(monkeypatch):
    # brightness, contrast, saturation factors from [0.7, 1.3]; the hue shift from [-0.1, 0.1]
    jitter = train_transform(16).jitter
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (0.3, 0.3, 0.3, 0.1)
    ranges = []

    def recording_uniform(low, high, generator):
        ranges.append((low, high))
        return (low + high) / 2

    monkeypatch.setattr(transforms, "_uniform", recording_uniform)
    ColorJitter()(solid((120, 60, 30)))
    assert ranges == [pytest.approx(r) for r in ((0.7, 1.3), (0.7, 1.3), (0.7, 1.3), (-0.1, 0.1))]


def test_training_transform_draws_differ_between_calls():
    t = InputTransform(16, ColorJitter(generator=torch.Generator().manual_seed(1)))
    img = solid((120, 60, 30), size=(20, 20))
    assert not torch.equal(t(img), t(img))


def test_samples_from_the_data_root(synthetic_root):
    samples, num_classes = load_samples(synthetic_root.root)
    assert num_classes == 3
    labels = synthetic_root.image_labels("train_aug")
    assert [s.image_id for s in samples] == synthetic_root.ids("train_aug")
    assert all(list(s.classes) == labels[s.image_id] for s in samples)
    assert all(s.image_path == synthetic_root.image_path(s.image_id) for s in samples)


@pytest.mark.parametrize("num_classes, message", [(5, "disagrees with .*labels.txt"), (0, "at least 1")])
def test_num_classes_must_agree_with_the_dataset(synthetic_root, num_classes, message):
    """--num-classes is checked as in stages 3 and 6 (nsrom.data.resolve_num_classes); before, 5 and 0 passed."""
    with pytest.raises(ConfigError, match=message):
        load_samples(synthetic_root.root, num_classes=num_classes)
    assert load_samples(synthetic_root.root, num_classes=3)[1] == 3


def test_original_layout_img_dir_and_cls_list(synthetic_root, tmp_path):
    lst = tmp_path / "train_cls.txt"
    lst.write_text("train_00001 0 2\ntrain_00000 1\n")
    samples, num_classes = load_samples(None, lst, synthetic_root.image_dir, num_classes=3)
    assert [(s.image_id, s.classes) for s in samples] == [("train_00001", (0, 2)), ("train_00000", (1,))]
    lst.write_text("train_00001 0 2\nnot_there 1\n")
    with pytest.raises(DataError, match="missing"):
        load_samples(None, lst, synthetic_root.image_dir, num_classes=3)
    lst.write_text("train_00001\nnot_there\n")  # ids alone, no dataset to take classes from: said before the check
    with pytest.raises(ConfigError, match="has no class indices; give --data-root"):
        load_samples(None, lst, synthetic_root.image_dir, num_classes=3, check_workers=1)


def test_image_label_items(synthetic_root):
    samples, c = load_samples(synthetic_root.root)
    item = ImageLabelDataset(samples, c, export_transform(32))[1]
    img = np.asarray(Image.open(samples[1].image_path))
    assert item["id"] == samples[1].image_id and item["image"].shape == (3, 32, 32)
    assert item["label"].tolist() == [float(k in samples[1].classes) for k in range(c)]
    assert item["size"].tolist() == list(img.shape[:2])


def test_iam_targets_are_maps_over_255_and_zero_for_absent_classes(synthetic_root, tmp_path):
    samples, c = load_samples(synthetic_root.root)
    sample = next(s for s in samples if 0 < len(s.classes) < c)  # has an absent class
    for k in sample.classes:
        write_grey(tmp_path / f"{sample.image_id}_{k}.png", np.full((4, 4), 51 * (k + 1), dtype=np.uint8))
    ds = IAMDataset([sample], c, export_transform(32), tmp_path, map_size=4)
    target = ds[0]["target"]
    assert target.shape == (c, 4, 4)
    for k in range(c):
        expected = 51 * (k + 1) / 255 if k in sample.classes else 0.0
        torch.testing.assert_close(target[k], torch.full((4, 4), expected))
    with pytest.raises(DataError, match="IAM output"):
        IAMDataset([sample], c, export_transform(64), tmp_path, map_size=8)[0]
    with pytest.raises(DataError, match="train.sh"):
        IAMDataset(samples, c, export_transform(32), tmp_path, map_size=4)
