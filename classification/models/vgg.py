"""OAA classifier of docs/method.md, stage 1: VGG16-D1 + 3 head convs + GloRe + ReLU + 1x1 conv."""

from __future__ import annotations

from .attention_net import OAA_HEAD, AttentionNet, build_attention_net


def vgg16(
    pretrained: bool = False,
    num_classes: int = 20,
    width_div: int = 1,
    pretrained_path: str | None = None,
) -> AttentionNet:
    """The OAA classifier; ``pretrained`` loads ImageNet VGG16 weights into ``features``."""
    return build_attention_net(OAA_HEAD, pretrained, num_classes, width_div, pretrained_path)
