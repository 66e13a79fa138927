"""DeepLab-v2 MSC (docs/method.md, stage 4): deeplab-pytorch key layout, strides, MSC outputs, weight loading."""

from __future__ import annotations

import re

import pytest
import torch
from torch.nn import functional as F

from nsrom.errors import NsromError
from segmentation.libs.models import DeepLabV2, DeepLabV2_ResNet101_MSC, freeze_bn
from segmentation.libs.models.init_weights import (
    fold_torchvision_input, load_checkpoint, load_init, torchvision_to_deeplab,
)

BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def expected_deeplab_layout(n_classes: int, n_blocks=(3, 4, 23, 3), c0: int = 64) -> dict[str, tuple]:
    """deeplab-pytorch's keys and shapes, written out from its module description (not from our model)."""
    layout: dict[str, tuple] = {}

    def conv_bn(prefix: str, out_ch: int, in_ch: int, k: int) -> None:
        layout[f"{prefix}.conv.weight"] = (out_ch, in_ch, k, k)
        for suffix in BN_SUFFIXES:
            layout[f"{prefix}.bn.{suffix}"] = () if suffix == "num_batches_tracked" else (out_ch,)

    conv_bn("base.layer1.conv1", c0, 3, 7)
    in_ch = c0
    for layer, (n, out_ch) in enumerate(zip(n_blocks, (4 * c0, 8 * c0, 16 * c0, 32 * c0)), start=2):
        mid = out_ch // 4
        for b in range(1, n + 1):
            prefix = f"base.layer{layer}.block{b}"
            conv_bn(f"{prefix}.reduce", mid, in_ch if b == 1 else out_ch, 1)
            conv_bn(f"{prefix}.conv3x3", mid, mid, 3)
            conv_bn(f"{prefix}.increase", out_ch, mid, 1)
            if b == 1:
                conv_bn(f"{prefix}.shortcut", out_ch, in_ch, 1)
        in_ch = out_ch
    for i in range(4):
        layout[f"base.aspp.c{i}.weight"] = (n_classes, 32 * c0, 3, 3)
        layout[f"base.aspp.c{i}.bias"] = (n_classes,)
    return layout


@pytest.fixture(scope="module")
def resnet101() -> torch.nn.Module:
    return DeepLabV2_ResNet101_MSC(21)


def test_state_dict_matches_deeplab_pytorch(resnet101):
    state = resnet101.state_dict()
    keys = list(state)
    assert len(keys) == 632
    assert keys[0] == "base.layer1.conv1.conv.weight"
    assert keys[-1] == "base.aspp.c3.bias"
    assert tuple(state["base.layer1.conv1.conv.weight"].shape) == (64, 3, 7, 7)
    assert tuple(state["base.layer2.block1.shortcut.conv.weight"].shape) == (256, 64, 1, 1)
    assert tuple(state["base.layer4.block23.conv3x3.conv.weight"].shape) == (256, 256, 3, 3)
    assert tuple(state["base.layer5.block3.increase.conv.weight"].shape) == (2048, 512, 1, 1)
    assert tuple(state["base.aspp.c0.weight"].shape) == (21, 2048, 3, 3)
    assert "base.layer2.block2.shortcut.conv.weight" not in state
    expected = expected_deeplab_layout(21)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


def test_strict_load_of_deeplab_layout_checkpoint(resnet101, tmp_path):
    torch.manual_seed(0)
    fake = {k: (torch.tensor(7) if s == () else torch.randn(s)) for k, s in expected_deeplab_layout(21).items()}
    path = tmp_path / "checkpoint_70.4.pth"
    torch.save(fake, path)
    load_checkpoint(resnet101, path)
    loaded = resnet101.state_dict()
    assert torch.equal(loaded["base.layer4.block7.reduce.bn.running_var"], fake["base.layer4.block7.reduce.bn.running_var"])
    assert torch.equal(loaded["base.aspp.c2.bias"], fake["base.aspp.c2.bias"])


def test_checkpoint_errors_name_the_remedy(tmp_path):
    model = DeepLabV2_ResNet101_MSC(4, (1, 1, 1, 1), (1, 2, 3, 4), width_div=16)
    with pytest.raises(NsromError, match="checkpoint_70.4.pth"):
        load_checkpoint(model, tmp_path / "missing.pth")
    torch.save(DeepLabV2_ResNet101_MSC(5, (1, 1, 1, 1), (1, 2, 3, 4), width_div=16).state_dict(), tmp_path / "other.pth")
    with pytest.raises(NsromError, match="N_CLASSES") as info:
        load_checkpoint(model, tmp_path / "other.pth")
    # how it differs: the ASPP's class count, shape by shape
    assert "8 of other shapes (e.g. base.aspp.c0.weight (5, 128, 3, 3) in the file, (4, 128, 3, 3) in the model" in str(info.value)
    run = tmp_path / "run"  # a training checkpoint: the config of its run is next to it, and named
    run.mkdir()
    torch.save(DeepLabV2_ResNet101_MSC(4, (1, 1, 1, 1), (1, 2, 3, 4), width_div=8).state_dict(), run / "final.pth")
    (run / "config.yaml").write_text("MODEL:\n    WIDTH_DIV: 8\n")
    with pytest.raises(NsromError, match=f"run with -c {run / 'config.yaml'}") as info:
        load_checkpoint(model, run / "final.pth")
    assert "of other shapes" in str(info.value)


def test_coco_init_fills_base_without_aspp(resnet101, tmp_path, caplog):
    caplog.set_level("INFO")
    coco = {k[len("base."):]: torch.full(s, 0.5) for k, s in expected_deeplab_layout(91).items() if s != ()}
    coco = {k: v for k, v in coco.items() if not k.startswith("aspp")}
    path = tmp_path / "deeplabv1_resnet101-coco.pth"
    torch.save(coco, path)
    aspp_before = resnet101.base.aspp.c0.weight.detach().clone()
    report = load_init(resnet101.base, path)
    assert report["total"] == 632 - 104  # num_batches_tracked of the 104 BN layers not counted
    assert report["matched"] == 632 - 104 - 8
    assert sorted(report["skipped"]) == sorted(f"aspp.c{i}.{p}" for i in range(4) for p in ("weight", "bias"))
    assert torch.all(resnet101.base.layer3.block2.conv3x3.conv.weight == 0.5)
    assert torch.equal(resnet101.base.aspp.c0.weight, aspp_before)
    assert "520 of 528 tensors matched" in caplog.text


def test_init_with_few_matches_or_missing_file_is_an_error(tmp_path):
    model = DeepLabV2(4, (1, 1, 1, 1), (1, 2, 3, 4), width_div=16)
    torch.save({"layer1.conv1.conv.weight": torch.zeros(4, 3, 7, 7)}, tmp_path / "few.pth")
    with pytest.raises(NsromError, match="matched only 1 of"):
        load_init(model, tmp_path / "few.pth")
    with pytest.raises(NsromError, match="deeplabv1_resnet101-coco.pth.*--no-init"):
        load_init(model, tmp_path / "absent.pth")


def fake_torchvision_resnet(blocks=(1, 2, 1, 1), c0: int = 4) -> dict[str, torch.Tensor]:
    """A torchvision-layout ResNet state_dict (conv1/bn1/layerX.Y.convZ/downsample/fc), random values."""
    g = torch.Generator().manual_seed(1)
    state: dict[str, torch.Tensor] = {}

    def bn(prefix: str, ch: int) -> None:
        state[f"{prefix}.weight"] = torch.rand(ch, generator=g) + 0.5
        state[f"{prefix}.bias"] = torch.randn(ch, generator=g)
        state[f"{prefix}.running_mean"] = torch.randn(ch, generator=g)
        state[f"{prefix}.running_var"] = torch.rand(ch, generator=g) + 0.5
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(100)

    state["conv1.weight"] = torch.randn(c0, 3, 7, 7, generator=g)
    bn("bn1", c0)
    inplanes = c0
    for i, n in enumerate(blocks, start=1):
        planes = c0 * 2 ** (i - 1)
        for j in range(n):
            p = f"layer{i}.{j}"
            state[f"{p}.conv1.weight"] = torch.randn(planes, inplanes if j == 0 else 4 * planes, 1, 1, generator=g)
            bn(f"{p}.bn1", planes)
            state[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3, generator=g)
            bn(f"{p}.bn2", planes)
            state[f"{p}.conv3.weight"] = torch.randn(4 * planes, planes, 1, 1, generator=g)
            bn(f"{p}.bn3", 4 * planes)
            if j == 0:
                state[f"{p}.downsample.0.weight"] = torch.randn(4 * planes, inplanes, 1, 1, generator=g)
                bn(f"{p}.downsample.1", 4 * planes)
        inplanes = 4 * planes
    state["fc.weight"] = torch.randn(1000, inplanes, generator=g)
    state["fc.bias"] = torch.randn(1000, generator=g)
    return state


def test_torchvision_keys_map_onto_caffe_layout(tmp_path):
    tv = fake_torchvision_resnet()
    mapped, unmapped = torchvision_to_deeplab(tv)
    assert sorted(unmapped) == ["fc.bias", "fc.weight"]
    assert mapped["layer1.conv1.conv.weight"] is tv["conv1.weight"]
    assert mapped["layer1.conv1.bn.running_var"] is tv["bn1.running_var"]
    assert mapped["layer3.block2.conv3x3.conv.weight"] is tv["layer2.1.conv2.weight"]
    assert mapped["layer3.block2.increase.bn.bias"] is tv["layer2.1.bn3.bias"]
    assert mapped["layer5.block1.shortcut.conv.weight"] is tv["layer4.0.downsample.0.weight"]
    assert mapped["layer2.block1.shortcut.bn.running_mean"] is tv["layer1.0.downsample.1.running_mean"]
    assert mapped["layer4.block1.reduce.conv.weight"] is tv["layer3.0.conv1.weight"]

    model = DeepLabV2(3, (1, 2, 1, 1), (1, 2, 3, 4), width_div=16)
    torch.save(tv, tmp_path / "resnet101-torchvision.pth")
    report = load_init(model, tmp_path / "resnet101-torchvision.pth")
    assert report["layout"] == "torchvision"
    assert report["skipped"] == [f"aspp.c{i}.{p}" for i in range(4) for p in ("weight", "bias")]
    assert torch.equal(model.layer4.block1.conv3x3.conv.weight, tv["layer3.0.conv2.weight"])


@pytest.mark.parametrize("mean_bgr", [None, (90.0, 100.0, 110.0)])  # the default (IMAGE.MEAN of voc12), another
def test_torchvision_stem_fold_gives_the_same_bn_output(mean_bgr):
    """BN(conv(torchvision-normalised RGB)) == BN'(conv'(BGR - IMAGE.MEAN)) after the fold."""
    tv = fake_torchvision_resnet()
    mapped, _ = torchvision_to_deeplab(tv)
    folded = fold_torchvision_input(mapped) if mean_bgr is None else fold_torchvision_input(mapped, mean_bgr)
    rgb = torch.rand(1, 3, 9, 9) * 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    tv_input = (rgb / 255 - mean) / std
    caffe_input = rgb.flip(1) - torch.tensor(mean_bgr or [104.008, 116.669, 122.675]).view(1, 3, 1, 1)

    def stem(x, state):
        y = F.conv2d(x, state["layer1.conv1.conv.weight"])  # no padding: the fold is exact
        return F.batch_norm(y, state["layer1.conv1.bn.running_mean"], state["layer1.conv1.bn.running_var"],
                            state["layer1.conv1.bn.weight"], state["layer1.conv1.bn.bias"], eps=1e-5)

    torch.testing.assert_close(stem(caffe_input, folded), stem(tv_input, mapped), rtol=1e-4, atol=1e-4)


def _tiny(n_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return DeepLabV2_ResNet101_MSC(n_classes, (1, 1, 1, 1), (1, 2, 3, 4), width_div=16)


def test_output_stride_and_dilations():
    model = _tiny()
    assert model.base.layer1.pool.ceil_mode
    assert model.base.layer3.block1.reduce.conv.stride == (2, 2)  # caffe style: stride in the 1x1
    assert model.base.layer3.block1.conv3x3.conv.stride == (1, 1)
    assert model.base.layer4.block1.conv3x3.conv.dilation == (2, 2)
    assert model.base.layer5.block1.conv3x3.conv.dilation == (4, 4)
    assert [c.dilation[0] for c in model.base.aspp.children()] == [1, 2, 3, 4]
    assert model.base.layer1.conv1.bn.eps == 1e-5
    model.eval()
    with torch.no_grad():
        assert model.base(torch.zeros(1, 3, 65, 65)).shape == (1, 3, 9, 9)
        assert model.base(torch.zeros(1, 3, 321, 321)).shape == (1, 3, 41, 41)


def test_msc_training_returns_four_outputs_and_eval_their_max():
    model = _tiny()
    x = torch.randn(2, 3, 65, 65)
    model.train()
    freeze_bn(model)
    outs = model(x)
    assert [tuple(o.shape[2:]) for o in outs] == [(9, 9), (5, 5), (7, 7), (9, 9)]
    model.eval()
    with torch.no_grad():
        fused = model(x)
        s1 = model.base(x)
        parts = [s1] + [
            F.interpolate(model.base(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)),
                          size=(9, 9), mode="bilinear", align_corners=False)
            for s in (0.5, 0.75)
        ]
    assert torch.is_tensor(fused) and fused.shape == (2, 3, 9, 9)
    torch.testing.assert_close(fused, torch.stack(parts).max(dim=0).values)
    torch.testing.assert_close(outs[3].detach(), fused)  # frozen BN: train and eval agree
    assert torch.all(fused >= s1)


def test_aspp_init_is_normal_001_with_zero_bias():
    model = DeepLabV2(21, (1, 1, 1, 1), (6, 12, 18, 24), width_div=1)
    w = model.aspp.c0.weight.detach()
    assert abs(float(w.std()) - 0.01) < 5e-4 and abs(float(w.mean())) < 5e-4
    assert torch.all(model.aspp.c3.bias == 0)
    assert re.fullmatch(r"c\d", list(dict(model.aspp.named_children()))[3])
