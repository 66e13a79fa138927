"""The CPU demo's stand-in for the COCO-pretrained DeepLab weights of stages 4 and 7.

The paper initialises DeepLab-v2's base from ``deeplabv1_resnet101-coco.pth``
(``MODEL.INIT_MODEL``; docs/method.md, stage 4). The demo's network is
narrower and shallower (``MODEL.WIDTH_DIV``, ``MODEL.N_BLOCKS``), so it makes
its own init file: the base network of the configured size is trained on the
source task of :mod:`nsrom.source_task` (not the demo's data), with its
BatchNorm layers learning (stages 4 and 7 freeze them, so they need trained
statistics), and written without the ASPP in deeplab-pytorch's key layout
(``layer1.conv1.conv.weight`` ...). Stages 4 and 7 load it through
``MODEL.INIT_MODEL`` and :func:`~.models.init_weights.load_init`, exactly as
the COCO file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from nsrom.training_state import save_state
from nsrom.source_task import NUM_SOURCE_CLASSES, recalibrate_batchnorm, source_set, train_dense

from .models.deeplabv2 import DeepLabV2

LOG = logging.getLogger(__name__)

DEFAULTS = {"images": 600, "steps": 300, "batch_size": 16, "lr": 1e-3, "seed": 0}
"""Source images, Adam steps, batch, rate and seed of the stand-in training."""
HEAD_PREFIX = "aspp."
"""The class-specific layers, left out of the file (as the COCO init's do not fit VOC either)."""


def caffe_input(mean_bgr: Sequence[float]):
    """``(B, H, W, 3)`` uint8 RGB -> DeepLab's input: BGR minus the mean, NCHW float32."""
    mean = torch.tensor(list(mean_bgr), dtype=torch.float32)

    def convert(batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(batch[..., ::-1])).float() - mean
        return x.permute(0, 3, 1, 2).contiguous()

    return convert


def make_deeplab_standin(
    out_path: str | Path,
    n_blocks: Sequence[int],
    atrous_rates: Sequence[int],
    width_div: int,
    crop_size: int,
    mean_bgr: Sequence[float],
    images: int = DEFAULTS["images"],
    steps: int = DEFAULTS["steps"],
    batch_size: int = DEFAULTS["batch_size"],
    lr: float = DEFAULTS["lr"],
    seed: int = DEFAULTS["seed"],
) -> Path:
    """Train the base network of this size on the source task; write it (no ASPP) to ``out_path``."""
    torch.manual_seed(seed)
    base = DeepLabV2(NUM_SOURCE_CLASSES + 1, n_blocks, atrous_rates, width_div)
    to_input = caffe_input(mean_bgr)
    data, labels = source_set(images, crop_size, seed)
    train_dense(base, to_input, data, labels, steps, batch_size, lr, seed, desc="DeepLab stand-in")
    recalibrate_batchnorm(base, to_input, data, batch_size)
    state = {k: v for k, v in base.state_dict().items() if not k.startswith(HEAD_PREFIX)}
    out_path = Path(out_path)
    save_state(out_path, state)  # atomic, and the same bytes for the same weights
    LOG.info("DeepLab stand-in (blocks %s, width 1/%d, crop %d, %d steps) written to %s",
             list(n_blocks), width_div, crop_size, steps, out_path)
    return out_path
