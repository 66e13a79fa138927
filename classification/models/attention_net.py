"""The VGG16 attention network shared by the OAA classifier and the IAM (docs/method.md, stages 1, 2).

One implementation; the differences of stage 2 are data
(:data:`OAA_HEAD`, :data:`IAM_HEAD`). ``forward`` returns the class activation
map (CAM, ``(B, C, H/8, W/8)``) and does nothing else; class scores are its
global average (:func:`class_logits`). Module names and indices match the
original NSROM models, so torchvision's ImageNet VGG16 weights load into
``features`` and original checkpoints load as a whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import nn

from nsrom.errors import ConfigError

from .global_reasoning_unit import GloReUnit2d
from .pretrained import load_imagenet_vgg16

LayerSpec = Union[int, str]

VGG16_D1: tuple[LayerSpec, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "N", 512, 512, 512,
)
"""VGG16 config "D1": numbers are 3x3 convs, M = 2x2/2 max-pool, N = 3x3/1 max-pool (pad 1)."""

DILATED_CONVS = 3
"""The last three convs of D1 use dilation 2 (pad 2), keeping output stride 8."""

OUTPUT_STRIDE = 8
"""A 256x256 input gives 32x32 CAMs."""

HEAD_CHANNELS = 512
"""Channels of the three head convs and of the GloRe unit's input (full width)."""

GLORE_MID = 64
"""GloRe nodes (states are twice this) at full width."""


@dataclass(frozen=True)
class HeadVariant:
    """The only differences between the OAA classifier and the IAM: two ReLUs and the init."""

    relu_after_head_convs: bool
    """ReLU after the third 3x3 head conv (IAM) or not (OAA)."""
    relu_before_classifier: bool
    """ReLU between the GloRe unit and the 1x1 classifier conv (OAA) or not (IAM)."""
    stage1_init: bool
    """Conv weights ~ N(0, sqrt(2/(k*k*out))) (OAA), or PyTorch's default init (IAM: the
    original vgg1.py defines that init but never calls it; docs/method.md, stage 2)."""


OAA_HEAD = HeadVariant(relu_after_head_convs=False, relu_before_classifier=True, stage1_init=True)
IAM_HEAD = HeadVariant(relu_after_head_convs=True, relu_before_classifier=False, stage1_init=False)


def scaled(channels: int, width_div: int) -> int:
    """``channels / width_div`` for the reduced-width CPU demo; must divide exactly."""
    if width_div < 1 or channels % width_div:
        raise ConfigError(f"--width-div {width_div} must be a positive divisor of {channels}")
    return channels // width_div


def make_features(cfg: Sequence[LayerSpec] = VGG16_D1, width_div: int = 1) -> nn.Sequential:
    """VGG convolutions with torchvision's module indices (conv, ReLU, ..., pools in between)."""
    layers: list[nn.Module] = []
    in_channels = 3
    num_convs = sum(isinstance(v, int) for v in cfg)
    conv_index = 0
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif v == "N":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=1, padding=1))
        else:
            dilation = 2 if conv_index >= num_convs - DILATED_CONVS else 1
            out_channels = scaled(int(v), width_div)
            layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
            conv_index += 1
    return nn.Sequential(*layers)


class AttentionNet(nn.Module):
    """VGG16-D1 backbone + head (3 convs, GloRe, 1x1 classifier) producing CAMs."""

    def __init__(self, num_classes: int, head: HeadVariant, width_div: int = 1):
        super().__init__()
        self.num_classes = num_classes
        self.width_div = width_div
        self.features = make_features(VGG16_D1, width_div)
        width = scaled(HEAD_CHANNELS, width_div)
        convs: list[nn.Module] = []
        for i in range(3):
            convs.append(nn.Conv2d(width, width, kernel_size=3, padding=1))
            if i < 2 or head.relu_after_head_convs:
                convs.append(nn.ReLU(inplace=True))
        self.extra_convs_1 = nn.Sequential(*convs)
        self.extra_convs_2 = GloReUnit2d(width, scaled(GLORE_MID, width_div))
        classifier: list[nn.Module] = [nn.ReLU(inplace=True)] if head.relu_before_classifier else []
        classifier.append(nn.Conv2d(width, num_classes, kernel_size=1))
        self.extra_convs_3 = nn.Sequential(*classifier)
        if head.stage1_init:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Conv2d weights ~ N(0, sqrt(2 / (k*k*out_channels))), biases 0; BatchNorm 1 / 0.

        docs/method.md, stage 1, "Network" (the initialisation of the head convs; the IAM
        skips it). It covers every Conv2d, the backbone's too: with ImageNet weights
        those are loaded over it, without (``--no-pretrained``) the backbone keeps it.
        The graph convolution's Conv1d layers keep PyTorch's default init, as in the
        original code.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps ``(B, C, H/8, W/8)``."""
        x = self.features(x)
        x = self.extra_convs_1(x)
        x = self.extra_convs_2(x)
        return self.extra_convs_3(x)


def class_logits(cam: torch.Tensor) -> torch.Tensor:
    """Global average pooling of the CAM: ``(B, C, h, w)`` -> ``(B, C)`` logits (stage 1)."""
    return cam.mean(dim=(2, 3))


def cam_size(input_size: int) -> int:
    """Side of the CAM for a square ``input_size`` input (three 2x2/2 pools, floor)."""
    return input_size // OUTPUT_STRIDE


def build_attention_net(
    head: HeadVariant,
    pretrained: bool = False,
    num_classes: int = 20,
    width_div: int = 1,
    pretrained_path: str | None = None,
) -> AttentionNet:
    """Build the network; with ``pretrained`` load VGG16 weights into ``features``.

    The weight file's ``features.*`` shapes must be those of this network: the
    ImageNet file fits ``width_div`` 1; a narrower network needs a file of its
    own width (the CPU demo makes one: classification/standin.py, the pipeline's
    ``pretrain`` stage).
    """
    model = AttentionNet(num_classes, head, width_div)
    if pretrained:
        load_imagenet_vgg16(model, pretrained_path)
    return model
