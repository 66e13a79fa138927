"""Mixed precision and memory format of the trainers (segmentation SOLVER.AMP / MODEL.CHANNELS_LAST,
classification ``--amp`` / ``--channels-last``).

Both are off by default: the paper's numbers (docs/method.md, stages 1, 2, 4) were made
in float32 with the default memory format, and bf16/fp16 change the rounding of
every activation and gradient, so a run with them on is a different experiment.
With ``amp="off"`` every helper here is the identity (no autocast, a disabled
GradScaler whose ``scale``/``step`` are plain ``loss``/``optimizer.step()``), so
results are bit-identical to code without these switches.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

from .errors import ConfigError

LOG = logging.getLogger(__name__)

AMP_OFF = "off"
AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""Autocast dtype of each mixed-precision mode; fp16 also scales the loss (GradScaler)."""
AMP_MODES = (AMP_OFF, *AMP_DTYPES)


def check_amp(mode: str, where: str = "amp") -> str:
    """The mode if it is one of :data:`AMP_MODES`, else a :class:`ConfigError`."""
    if mode not in AMP_MODES:
        raise ConfigError(f"{where}: {mode!r} is not one of {', '.join(AMP_MODES)}")
    return mode


@dataclass(frozen=True)
class Precision:
    """Autocast, loss scaling and memory format for one device."""

    amp: str = AMP_OFF
    channels_last: bool = False
    device_type: str = "cpu"

    def __post_init__(self) -> None:
        check_amp(self.amp)
        if self.amp == "fp16" and self.device_type == "cpu":
            LOG.warning("fp16 autocast on the CPU is slow and rarely supported by kernels; bf16 is the CPU choice")
        if self.amp != AMP_OFF:
            LOG.info("mixed precision %s on %s (not the paper's float32 setting)", self.amp, self.device_type)

    @classmethod
    def for_device(cls, amp: str, channels_last: bool, device: torch.device | str) -> "Precision":
        return cls(amp, bool(channels_last), torch.device(device).type)

    @property
    def enabled(self) -> bool:
        return self.amp != AMP_OFF

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` in the mode's dtype, or a no-op context when off."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=AMP_DTYPES[self.amp])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is enabled only for fp16 (bf16 has float32's exponent range)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.amp == "fp16")

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Convert the weights to channels-last when asked (in place; returns the model)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def prepare_input(self, images: torch.Tensor) -> torch.Tensor:
        """Channels-last copy of an ``(N, C, H, W)`` batch when asked, else the batch itself."""
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images
