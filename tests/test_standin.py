"""The demo's stand-in pretrained weights: the source task, their making, and their loading through the real flags."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from classification.models import vgg
from classification.models.attention_net import OAA_HEAD, AttentionNet
from classification.standin import NormalisedFeatures, imagenet_input, make_vgg16_standin
from nsrom.source_task import HUE_BINS, NUM_SOURCE_CLASSES, source_sample, source_set
from segmentation.libs.models import DeepLabV2_ResNet101_MSC
from segmentation.libs.models.init_weights import load_init
from segmentation.libs.standin import make_deeplab_standin

MEAN_BGR = (104.008, 116.669, 122.675)


def test_source_labels_follow_the_object_colours():
    rng = np.random.default_rng(5)
    hues_ok, seen = 0, 0
    for _ in range(10):
        image, label = source_sample(rng, 64, 64)
        assert image.shape == (64, 64, 3) and label.shape == (64, 64)
        assert label.max() <= NUM_SOURCE_CLASSES and (label == 0).any()
        hue = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 0].astype(np.float64)
        for k in np.unique(label):
            if 1 <= k <= HUE_BINS and (label == k).sum() > 20:
                centre = (k - 0.5) * 180 / HUE_BINS
                distance = np.abs((np.median(hue[label == k]) - centre + 90) % 180 - 90)
                hues_ok += distance <= 180 / HUE_BINS / 2
                seen += 1
    assert seen >= 5 and hues_ok == seen  # each saturated object's median hue lies in its own bin


def test_source_set_is_deterministic_for_a_seed():
    a, la = source_set(3, 40, seed=1)
    b, lb = source_set(3, 40, seed=1)
    c, _ = source_set(3, 40, seed=2)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and not np.array_equal(a, c)


def test_folding_batchnorm_keeps_the_function():
    torch.manual_seed(0)
    model = NormalisedFeatures(AttentionNet(1, OAA_HEAD, 16).features, 3)
    for norm in model.norms:  # statistics far from the identity
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        features = model.folded_features()
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in features.modules())
        torch.testing.assert_close(model.classifier(features(x)), expected, rtol=1e-4, atol=1e-4)


def test_vgg_standin_loads_through_pretrained_path(tmp_path):
    path = make_vgg16_standin(tmp_path / "vgg16_standin.pth", width_div=16, input_size=32, images=6, steps=2,
                              batch_size=3)
    state = torch.load(path, weights_only=True)
    own = AttentionNet(3, OAA_HEAD, 16).features.state_dict()
    assert sorted(state) == sorted(f"features.{k}" for k in own)  # torchvision's layout, nothing else
    model = vgg.vgg16(pretrained=True, num_classes=3, width_div=16, pretrained_path=str(path))
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    with pytest.raises(Exception, match="another width"):
        vgg.vgg16(pretrained=True, num_classes=3, width_div=8, pretrained_path=str(path))


def test_imagenet_input_matches_the_stage_transform():
    from PIL import Image

    from classification.transforms import to_normalized_tensor

    batch = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    expected = torch.stack([to_normalized_tensor(Image.fromarray(b)) for b in batch])
    torch.testing.assert_close(imagenet_input(batch), expected)


def test_deeplab_standin_loads_through_init_model(tmp_path):
    blocks, rates = (1, 1, 1, 1), (1, 2, 3, 4)
    path = make_deeplab_standin(tmp_path / "deeplab_standin.pth", blocks, rates, 16, 33, MEAN_BGR, images=6,
                                steps=2, batch_size=3)
    state = torch.load(path, weights_only=True)
    assert state and not any(k.startswith("aspp.") for k in state)
    # BatchNorm statistics were measured on the source images, not left at their initial 0 / 1.
    assert any(k.endswith("running_mean") and v.abs().sum() > 0 for k, v in state.items())
    model = DeepLabV2_ResNet101_MSC(4, blocks, rates, 16)
    report = load_init(model.base, path)
    assert report["skipped"] and all(k.startswith("aspp.") for k in report["skipped"])
    assert torch.equal(model.base.layer1.conv1.conv.weight, state["layer1.conv1.conv.weight"])
