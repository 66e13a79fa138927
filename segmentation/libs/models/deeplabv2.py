"""DeepLab-v2: dilated caffe-style ResNet and ASPP (docs/method.md, stage 4).

Keys of ``DeepLabV2(21, [3, 4, 23, 3], [6, 12, 18, 24]).state_dict()`` are
exactly deeplab-pytorch's (``layer1.conv1.conv.weight`` ... ``aspp.c3.bias``);
wrapped in :class:`~segmentation.libs.models.msc.MSC` they get the ``base.``
prefix of the released checkpoints.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .resnet import ResLayer, Stem

RESNET101_BLOCKS = (3, 4, 23, 3)
"""Bottlenecks in layer2..layer5 of ResNet-101."""
ASPP_RATES = (6, 12, 18, 24)
"""Dilation rates of the four ASPP branches."""
ASPP_INIT_STD = 0.01
"""ASPP weights are drawn from N(0, 0.01^2); biases start at 0."""
BASE_WIDTH = 64
"""Output channels of the stem at full width; layer k doubles them (64 .. 2048)."""


class ASPP(nn.Module):
    """Sum of 3x3 convs with bias, one per rate, named ``c0``, ``c1``, ..."""

    def __init__(self, in_ch: int, out_ch: int, rates: Sequence[int]):
        super().__init__()
        for i, rate in enumerate(rates):
            self.add_module(f"c{i}", nn.Conv2d(in_ch, out_ch, 3, 1, padding=rate, dilation=rate, bias=True))
        for conv in self.children():
            nn.init.normal_(conv.weight, mean=0.0, std=ASPP_INIT_STD)
            nn.init.constant_(conv.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = list(self.children())
        out = branches[0](x)
        for branch in branches[1:]:
            out = out + branch(x)
        return out


class DeepLabV2(nn.Sequential):
    """Stem, four residual layers (layer4 dilation 2, layer5 dilation 4), ASPP: stride 8.

    ``width_div`` divides every channel count; 1 is the real network, larger
    values give the tiny CPU demo network with the same code and key names.
    """

    def __init__(
        self,
        n_classes: int,
        n_blocks: Sequence[int] = RESNET101_BLOCKS,
        atrous_rates: Sequence[int] = ASPP_RATES,
        width_div: int = 1,
    ):
        super().__init__()
        if len(n_blocks) != 4:
            raise ValueError(f"n_blocks needs 4 entries (layer2..layer5), got {list(n_blocks)}")
        ch = [BASE_WIDTH * 2**p // width_div for p in range(6)]
        if min(ch) < 4:
            raise ValueError(f"width_div {width_div} leaves fewer than 4 channels in the stem")
        self.add_module("layer1", Stem(ch[0]))
        self.add_module("layer2", ResLayer(n_blocks[0], ch[0], ch[2], stride=1, dilation=1))
        self.add_module("layer3", ResLayer(n_blocks[1], ch[2], ch[3], stride=2, dilation=1))
        self.add_module("layer4", ResLayer(n_blocks[2], ch[3], ch[4], stride=1, dilation=2))
        self.add_module("layer5", ResLayer(n_blocks[3], ch[4], ch[5], stride=1, dilation=4))
        self.add_module("aspp", ASPP(ch[5], n_classes, atrous_rates))
