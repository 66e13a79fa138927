"""Caffe-style ResNet building blocks in deeplab-pytorch's module layout (docs/method.md, stage 4).

Module names are part of the contract: they fix the ``state_dict`` keys, which
must equal deeplab-pytorch's so that ``checkpoint_70.4.pth`` loads strictly and
``deeplabv1_resnet101-coco.pth`` loads into the base network.

* :class:`ConvBnReLU` is an ``nn.Sequential`` of ``conv`` (no bias), ``bn`` and,
  optionally, ``relu`` (which has no parameters).
* :class:`Bottleneck` holds ``reduce`` (1x1, carries the stride: caffe style),
  ``conv3x3`` (stride 1, dilated), ``increase`` (1x1, no ReLU) and, in the
  first block of a layer only, ``shortcut`` (1x1 projection, no ReLU).
* :class:`ResLayer` is ``block1 .. blockN``; :class:`Stem` is ``conv1`` + ``pool``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 1e-5
"""BatchNorm epsilon of the caffe ResNet-101 (docs/method.md, stage 4)."""
BN_MOMENTUM = 1 - 0.999
"""BatchNorm momentum as in deeplab-pytorch; irrelevant while BN is frozen."""
BOTTLENECK_EXPANSION = 4
"""Output channels of a bottleneck are 4x its inner (reduce/conv3x3) channels."""


class ConvBnReLU(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> optional ReLU, named ``conv``/``bn``/``relu``."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        relu: bool = True,
    ):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM))
        if relu:
            self.add_module("relu", nn.ReLU())


class Bottleneck(nn.Module):
    """Caffe-style bottleneck: the stride sits in the first 1x1 conv (``reduce``)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, dilation: int, downsample: bool):
        super().__init__()
        mid_ch = out_ch // BOTTLENECK_EXPANSION
        self.reduce = ConvBnReLU(in_ch, mid_ch, 1, stride, 0, 1, relu=True)
        self.conv3x3 = ConvBnReLU(mid_ch, mid_ch, 3, 1, dilation, dilation, relu=True)
        self.increase = ConvBnReLU(mid_ch, out_ch, 1, 1, 0, 1, relu=False)
        self.shortcut = ConvBnReLU(in_ch, out_ch, 1, stride, 0, 1, relu=False) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.increase(self.conv3x3(self.reduce(x)))
        h = h + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu(h)


class ResLayer(nn.Sequential):
    """``n_blocks`` bottlenecks ``block1..blockN``; only ``block1`` strides and projects."""

    def __init__(self, n_blocks: int, in_ch: int, out_ch: int, stride: int, dilation: int):
        super().__init__()
        for i in range(n_blocks):
            self.add_module(
                f"block{i + 1}",
                Bottleneck(
                    in_ch=in_ch if i == 0 else out_ch,
                    out_ch=out_ch,
                    stride=stride if i == 0 else 1,
                    dilation=dilation,
                    downsample=i == 0,
                ),
            )


def _pooled(length: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a ceil-mode max-pool, as PyTorch computes it (the last window starts inside)."""
    out = -(-(length + 2 * padding - kernel) // stride) + 1
    return out - 1 if (out - 1) * stride >= length + padding else out


def output_size(height: int, width: int) -> tuple[int, int]:
    """``(h, w)`` of the stride-8 class scores for an input of ``height x width`` (the scale-1 branch of
    MSC, whose size the other two are resized to): the stem's 7x7/2 conv (pad 3), its 3x3/2 ceil-mode
    pool (pad 1), then the stride-2 1x1 conv that opens ``layer3``; the dilated layers keep the size."""
    def one(length: int) -> int:
        conv1 = (length - 1) // 2 + 1
        pool = _pooled(conv1, 3, 2, 1)
        return (pool - 1) // 2 + 1
    return one(height), one(width)


class Stem(nn.Sequential):
    """7x7/2 conv-bn-relu (``conv1``) and 3x3/2 max-pool with ceil mode (``pool``)."""

    def __init__(self, out_ch: int):
        super().__init__()
        self.add_module("conv1", ConvBnReLU(3, out_ch, 7, 2, 3, 1))
        self.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))
