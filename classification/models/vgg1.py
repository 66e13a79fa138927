"""Integral attention model (IAM) of docs/method.md, stage 2.

The stage-1 network with a ReLU after the third head conv and none before the
1x1 classifier conv.
"""

from __future__ import annotations

from .attention_net import IAM_HEAD, AttentionNet, build_attention_net


def vgg16(
    pretrained: bool = False,
    num_classes: int = 20,
    width_div: int = 1,
    pretrained_path: str | None = None,
) -> AttentionNet:
    """The IAM network; ``pretrained`` loads ImageNet VGG16 weights into ``features``."""
    return build_attention_net(IAM_HEAD, pretrained, num_classes, width_div, pretrained_path)
