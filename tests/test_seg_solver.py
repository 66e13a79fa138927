"""Stage 4 optimisation: parameter groups, poly lr every LR_DECAY steps, MSC loss, frozen BatchNorm."""

from __future__ import annotations

import math

import pytest
import torch
from addict import Dict
from torch import nn
from torch.nn import functional as F

from segmentation.libs.models import DeepLabV2_ResNet101_MSC, freeze_bn
from segmentation.libs.loss import msc_loss
from segmentation.libs.utils.solver import build_optimizer, param_groups, poly_lr, set_poly_lr

SOLVER = Dict({"LR": 2.5e-4, "WEIGHT_DECAY": 5e-4, "MOMENTUM": 0.9})


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return DeepLabV2_ResNet101_MSC(3, (1, 2, 1, 1), (1, 2, 3, 4), width_div=16)


def test_three_parameter_groups():
    model = _tiny()
    groups = param_groups(model, 2.5e-4, 5e-4)
    convs = [m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and ".aspp." not in n + "."]
    assert [len(g["params"]) for g in groups] == [len(convs), 4, 4]
    assert {id(p) for p in groups[0]["params"]} == {id(m.weight) for m in convs}
    assert {id(p) for p in groups[1]["params"]} == {id(getattr(model.base.aspp, f"c{i}").weight) for i in range(4)}
    assert {id(p) for p in groups[2]["params"]} == {id(getattr(model.base.aspp, f"c{i}").bias) for i in range(4)}
    assert [g["lr"] for g in groups] == pytest.approx([2.5e-4, 2.5e-3, 5e-3])
    assert [g["weight_decay"] for g in groups] == [5e-4, 5e-4, 0.0]
    bn_params = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    assert not bn_params & {id(p) for g in groups for p in g["params"]}


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 2.5e-4),
        (9, 2.5e-4),
        (10, 2.5e-4 * (1 - 10 / 20000) ** 0.9),
        (19, 2.5e-4 * (1 - 10 / 20000) ** 0.9),
        (10000, 2.5e-4 * 0.5**0.9),
        (10009, 2.5e-4 * 0.5**0.9),
        (19999, 2.5e-4 * (10 / 20000) ** 0.9),
    ],
)
def test_poly_lr_updated_every_ten_steps(step, expected):
    assert poly_lr(2.5e-4, step, 20000, 0.9, 10) == pytest.approx(expected, rel=1e-12)


def test_set_poly_lr_scales_every_group():
    optimizer = build_optimizer(_tiny(), SOLVER)
    set_poly_lr(optimizer, 10000, 20000, 0.9, 10)
    factor = 0.5**0.9
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([2.5e-4 * factor, 2.5e-3 * factor, 5e-3 * factor])
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_msc_loss_sums_ce_against_nearest_resized_labels():
    labels = torch.tensor([[[0, 0, 1, 1], [0, 255, 1, 1], [2, 2, 1, 1], [2, 2, 1, 255]]])
    big = torch.randn(1, 3, 4, 4)
    small = torch.randn(1, 3, 2, 2)
    # nearest 4 -> 2 takes rows/cols 1 and 3
    small_labels = torch.tensor([[[255, 1], [2, 255]]])
    expected = F.cross_entropy(big, labels, ignore_index=255) + F.cross_entropy(small, small_labels, ignore_index=255)
    torch.testing.assert_close(msc_loss([big, small], labels), expected)
    ignored = torch.full((1, 4, 4), 255)
    assert float(msc_loss([big, small], ignored)) == 0.0  # no NaN for an all-ignore crop


def test_bn_frozen_after_a_train_step():
    model = _tiny()
    model.train()
    freeze_bn(model)
    bn = model.base.layer3.block2.conv3x3.bn
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    conv_before = model.base.layer3.block2.conv3x3.conv.weight.detach().clone()
    optimizer = build_optimizer(model, Dict({"LR": 0.1, "WEIGHT_DECAY": 5e-4, "MOMENTUM": 0.9}))
    loss = msc_loss(model(torch.randn(2, 3, 33, 33)), torch.randint(0, 3, (2, 33, 33)))
    loss.backward()
    optimizer.step()
    assert not bn.training and not bn.weight.requires_grad and bn.weight.grad is None
    for key, value in bn.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not torch.equal(model.base.layer3.block2.conv3x3.conv.weight, conv_before)
    assert math.isfinite(loss.item())
