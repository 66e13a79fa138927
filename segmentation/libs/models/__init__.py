"""DeepLab-v2 models (docs/method.md, stage 4) and a registry keyed by ``MODEL.NAME``."""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from nsrom.errors import ConfigError

from .deeplabv2 import ASPP_RATES, RESNET101_BLOCKS, DeepLabV2
from .msc import MSC, MSC_SCALES


def DeepLabV2_ResNet101_MSC(  # noqa: N802 - the name is deeplab-pytorch's and the config's
    n_classes: int,
    n_blocks: Sequence[int] = RESNET101_BLOCKS,
    atrous_rates: Sequence[int] = ASPP_RATES,
    width_div: int = 1,
) -> MSC:
    """DeepLab-v2 ResNet-101 in the multi-scale wrapper (scales 1, 0.5, 0.75).

    With the defaults and 21 classes its ``state_dict`` has deeplab-pytorch's
    632 entries, ``base.layer1.conv1.conv.weight`` ... ``base.aspp.c3.bias``.
    """
    return MSC(DeepLabV2(n_classes, n_blocks, atrous_rates, width_div), scales=MSC_SCALES)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "DeepLabV2_ResNet101_MSC": DeepLabV2_ResNet101_MSC,
}
"""``MODEL.NAME`` -> constructor ``(n_classes, n_blocks, atrous_rates, width_div)``."""


def check_model_name(name: str) -> None:
    """A ``MODEL.NAME`` that :data:`MODELS` does not register is a :class:`ConfigError` listing those it does."""
    if name not in MODELS:
        raise ConfigError(f"MODEL.NAME {name!r} unknown; choose one of {', '.join(MODELS)} "
                          "(segmentation/libs/models/__init__.py registers them)")


def build_model(model_cfg, n_classes: int) -> nn.Module:
    """The network named by ``MODEL.NAME`` with ``MODEL.N_BLOCKS``, ``ATROUS_RATES``, ``WIDTH_DIV``."""
    check_model_name(model_cfg.NAME)
    return MODELS[model_cfg.NAME](n_classes, model_cfg.N_BLOCKS, model_cfg.ATROUS_RATES, model_cfg.WIDTH_DIV)


def freeze_bn(model: nn.Module) -> None:
    """docs/method.md, stage 4, "Loss and optimiser" (BatchNorm frozen): eval mode and no gradient
    for the affine.

    Call after every ``model.train()``: running statistics are then neither
    used from the batch nor updated, and the BN weight/bias are not trained.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)


__all__ = ["DeepLabV2", "DeepLabV2_ResNet101_MSC", "MSC", "MODELS", "build_model", "check_model_name", "freeze_bn"]
