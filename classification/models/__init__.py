"""Networks of the classification side: ``vgg`` (OAA classifier) and ``vgg1`` (IAM)."""

from __future__ import annotations

from typing import Callable

from . import vgg, vgg1
from .attention_net import AttentionNet

ARCHS: dict[str, Callable[..., AttentionNet]] = {"vgg": vgg.vgg16, "vgg1": vgg1.vgg16}
"""Registry for ``--arch``: vgg = OAA classifier (stage 1), vgg1 = IAM (stage 2)."""
