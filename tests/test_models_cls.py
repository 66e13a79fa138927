"""OAA classifier (vgg) and IAM (vgg1): key layout, head differences, init, weight loading."""

from __future__ import annotations

import math
import urllib.error

import pytest
import torch
from torch import nn

from classification.models import ARCHS, vgg, vgg1
from classification.train import classification_loss
from classification.models.attention_net import cam_size, class_logits
from classification.models.pretrained import VGG16_URL, load_checkpoint
from nsrom.errors import ConfigError, NsromError

# torchvision vgg16 indices of the 13 convs and (out, in) channels; the last 3 are dilated.
FEATURE_CONVS = [
    (0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256), (14, 256, 256),
    (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512),
]
HEAD = [
    ("extra_convs_1.0.weight", (512, 512, 3, 3)), ("extra_convs_1.0.bias", (512,)),
    ("extra_convs_1.2.weight", (512, 512, 3, 3)), ("extra_convs_1.2.bias", (512,)),
    ("extra_convs_1.4.weight", (512, 512, 3, 3)), ("extra_convs_1.4.bias", (512,)),
    ("extra_convs_2.conv_state.weight", (128, 512, 1, 1)), ("extra_convs_2.conv_state.bias", (128,)),
    ("extra_convs_2.conv_proj.weight", (64, 512, 1, 1)), ("extra_convs_2.conv_proj.bias", (64,)),
    ("extra_convs_2.gcn.conv1.weight", (64, 64, 1)), ("extra_convs_2.gcn.conv1.bias", (64,)),
    ("extra_convs_2.gcn.conv2.weight", (128, 128, 1)),
    ("extra_convs_2.conv_extend.weight", (512, 128, 1, 1)),
    ("extra_convs_2.blocker.weight", (512,)), ("extra_convs_2.blocker.bias", (512,)),
    ("extra_convs_2.blocker.running_mean", (512,)), ("extra_convs_2.blocker.running_var", (512,)),
    ("extra_convs_2.blocker.num_batches_tracked", ()),
]


def expected_keys(classifier_index: int) -> list[tuple[str, tuple]]:
    keys = []
    for i, out_c, in_c in FEATURE_CONVS:
        keys += [(f"features.{i}.weight", (out_c, in_c, 3, 3)), (f"features.{i}.bias", (out_c,))]
    return keys + HEAD + [
        (f"extra_convs_3.{classifier_index}.weight", (20, 512, 1, 1)),
        (f"extra_convs_3.{classifier_index}.bias", (20,)),
    ]


@pytest.fixture(scope="module")
def full_vgg() -> nn.Module:
    torch.manual_seed(0)
    return vgg.vgg16(num_classes=20)


def test_classifier_keys_and_shapes_match_the_original(full_vgg):
    got = [(k, tuple(v.shape)) for k, v in full_vgg.state_dict().items()]
    assert got == expected_keys(classifier_index=1)


def test_iam_keys_and_shapes_match_the_original():
    got = [(k, tuple(v.shape)) for k, v in vgg1.vgg16(num_classes=20).state_dict().items()]
    assert got == expected_keys(classifier_index=0)


def test_backbone_is_vgg16_d1(full_vgg):
    f = full_vgg.features
    pools = {i: (m.kernel_size, m.stride, m.padding) for i, m in enumerate(f) if isinstance(m, nn.MaxPool2d)}
    assert pools == {4: (2, 2, 0), 9: (2, 2, 0), 16: (2, 2, 0), 23: (3, 1, 1)}
    dilations = {i: (m.dilation, m.padding) for i, m in enumerate(f) if isinstance(m, nn.Conv2d)}
    assert [i for i, d in dilations.items() if d == ((2, 2), (2, 2))] == [24, 26, 28]
    assert all(d == ((1, 1), (1, 1)) for i, d in dilations.items() if i < 24)


def test_the_two_head_differences_of_stage_2():
    oaa, iam = vgg.vgg16(num_classes=3, width_div=16), vgg1.vgg16(num_classes=3, width_div=16)
    assert [type(m) for m in oaa.extra_convs_1] == [nn.Conv2d, nn.ReLU] * 2 + [nn.Conv2d]
    assert [type(m) for m in iam.extra_convs_1] == [nn.Conv2d, nn.ReLU] * 3
    assert [type(m) for m in oaa.extra_convs_3] == [nn.ReLU, nn.Conv2d]
    assert [type(m) for m in iam.extra_convs_3] == [nn.Conv2d]
    assert ARCHS == {"vgg": vgg.vgg16, "vgg1": vgg1.vgg16}


def test_init_of_random_convs(full_vgg):
    conv = full_vgg.extra_convs_1[0]
    assert conv.weight.std().item() == pytest.approx((2 / (3 * 3 * 512)) ** 0.5, rel=0.02)
    assert conv.bias.abs().sum() == 0
    assert full_vgg.extra_convs_3[1].weight.std().item() == pytest.approx((2 / 20) ** 0.5, rel=0.1)


def test_iam_head_keeps_pytorchs_default_init():
    # The original vgg1.py never calls its init: the IAM head is PyTorch's default
    # (kaiming-uniform a=sqrt(5): uniform in +-1/sqrt(fan_in), std 1/sqrt(3 fan_in)), not N(0, sqrt(2/(k*k*out))).
    torch.manual_seed(0)
    iam = vgg1.vgg16(num_classes=20)
    classifier = iam.extra_convs_3[0]
    assert classifier.weight.std().item() == pytest.approx((1 / (3 * 512)) ** 0.5, rel=0.1)
    assert classifier.weight.abs().max().item() <= 1 / 512 ** 0.5
    assert classifier.bias.abs().sum() > 0  # default init draws biases too; stage 1 sets them to 0
    head_conv = iam.extra_convs_1[0]
    assert head_conv.weight.std().item() == pytest.approx((1 / (3 * 9 * 512)) ** 0.5, rel=0.05)
    oaa = vgg.vgg16(num_classes=20)
    ratio = oaa.extra_convs_3[1].weight.std().item() / classifier.weight.std().item()
    assert 10 < ratio < 15  # stage 1's classifier init is about 12x wider


def test_output_stride_8_and_gap_logits():
    model = vgg.vgg16(num_classes=3, width_div=16).eval()
    cam = model(torch.randn(2, 3, 64, 48))
    assert cam.shape == (2, 3, 8, 6)
    assert cam_size(256) == 32 and cam_size(64) == 8
    torch.testing.assert_close(class_logits(cam), cam.mean(dim=(2, 3)))


def test_stage1_loss_is_the_multilabel_soft_margin_of_the_pooled_cam():
    # Pooled logits 2 (class present) and -1 (absent): mean of -log sigmoid(2) and -log(1 - sigmoid(-1)).
    cam = torch.tensor([[[[1.0, 3.0], [2.0, 2.0]], [[-2.0, 0.0], [-1.0, -1.0]]]])
    loss = classification_loss(cam, {"label": torch.tensor([[1.0, 0.0]])})
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_width_div_must_divide_the_channel_counts():
    with pytest.raises(ConfigError, match="width-div"):
        vgg.vgg16(num_classes=3, width_div=3)


def fake_torchvision_vgg16(width_div: int = 1) -> dict[str, torch.Tensor]:
    """A state dict laid out like torchvision's vgg16 (features + a small stand-in classifier)."""
    gen = torch.Generator().manual_seed(3)
    state = {}
    for i, out_c, in_c in FEATURE_CONVS:
        in_c = in_c if i == 0 else in_c // width_div
        state[f"features.{i}.weight"] = torch.randn(out_c // width_div, in_c, 3, 3, generator=gen)
        state[f"features.{i}.bias"] = torch.randn(out_c // width_div, generator=gen)
    state["classifier.0.weight"] = torch.randn(4, 8, generator=gen)
    state["classifier.0.bias"] = torch.randn(4, generator=gen)
    return state


@pytest.mark.parametrize("arch", ["vgg", "vgg1"])
def test_imagenet_weights_load_into_features_only(tmp_path, caplog, arch):
    state = fake_torchvision_vgg16()
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    torch.manual_seed(0)
    with caplog.at_level("INFO"):
        model = ARCHS[arch](pretrained=True, num_classes=20, pretrained_path=str(path))
    own = model.state_dict()
    for key, value in state.items():
        if key.startswith("features."):
            assert torch.equal(own[key], value), key
    assert "loaded 26 tensors" in caplog.text
    assert "unused in the file: 2: classifier.0.weight, classifier.0.bias" in caplog.text
    assert "not loaded (randomly initialised): 20" in caplog.text  # the head's tensors


def test_missing_weight_file_is_a_clear_error(tmp_path):
    with pytest.raises(NsromError, match="not found"):
        vgg.vgg16(pretrained=True, pretrained_path=str(tmp_path / "nope.pth"))


def test_offline_download_names_the_url_the_cache_and_the_flags(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(NsromError) as info:
        vgg1.vgg16(pretrained=True)
    message = str(info.value)
    assert VGG16_URL in message and "--pretrained-path" in message and "--no-pretrained" in message


def test_original_dataparallel_checkpoint_loads_and_wrong_arch_is_refused(tmp_path):
    src = vgg.vgg16(num_classes=3, width_div=16)
    path = tmp_path / "pascal_voc_epoch_14.pth"
    torch.save({"epoch": 14, "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = vgg.vgg16(num_classes=3, width_div=16)
    assert load_checkpoint(dst, path)["epoch"] == 14
    for key, value in src.state_dict().items():
        assert torch.equal(dst.state_dict()[key], value)
    with pytest.raises(ConfigError, match="--arch"):
        load_checkpoint(vgg1.vgg16(num_classes=3, width_div=16), path)


def test_narrow_network_loads_weights_of_its_own_width(tmp_path):
    """--width-div > 1 takes a pretrained file when its shapes are the network's (the demo's stand-in)."""
    path = tmp_path / "narrow.pth"
    state = fake_torchvision_vgg16(width_div=8)
    torch.save(state, path)
    model = vgg.vgg16(pretrained=True, num_classes=3, width_div=8, pretrained_path=str(path))
    assert torch.equal(model.state_dict()["features.28.weight"], state["features.28.weight"])


def test_width_mismatch_names_the_tensor_and_the_fix(tmp_path):
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(fake_torchvision_vgg16(), path)
    with pytest.raises(ConfigError, match=r"features\.0\.weight has shape \(64, 3, 3, 3\).*\(8, 3, 3, 3\).*another width"):
        vgg.vgg16(pretrained=True, num_classes=3, width_div=8, pretrained_path=str(path))
