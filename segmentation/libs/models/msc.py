"""Multi-scale inputs wrapper (MSC) of DeepLab-v2 (docs/method.md, stage 4)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from nsrom.errors import DataError

MSC_SCALES = (0.5, 0.75)
"""Extra input scales besides 1; their logits are max-fused with the scale-1 logits."""
MIN_INPUT_SIDE = math.ceil(1 / min(MSC_SCALES))
"""The shortest image side the network takes: its smallest scale must leave at least one pixel."""


def check_input_size(height: int, width: int, what: str) -> None:
    """:class:`DataError` naming ``what`` when an image is too small for the multi-scale network."""
    if min(height, width) < MIN_INPUT_SIDE:
        raise DataError(f"{what} is {width}x{height} (WxH); the network needs at least {MIN_INPUT_SIDE} pixels on "
                        "each side")


class MSC(nn.Module):
    """Run ``base`` at scale 1 and at each of ``scales``; fuse by pixel-wise max.

    In training mode returns ``[logits_1, logits_0.5, logits_0.75, logits_max]``
    (each at its own size; ``logits_max`` at the scale-1 size), in eval mode
    only ``logits_max``. Inputs are bilinearly resized (align_corners False).
    """

    def __init__(self, base: nn.Module, scales: Sequence[float] = MSC_SCALES):
        super().__init__()
        self.base = base
        self.scales = tuple(scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        logits = self.base(x)
        size = logits.shape[2:]
        pyramid = [
            self.base(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False))
            for s in self.scales
        ]
        resized = [F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in pyramid]
        logits_max = torch.stack([logits, *resized]).max(dim=0).values
        if self.training:
            return [logits, *pyramid, logits_max]
        return logits_max
