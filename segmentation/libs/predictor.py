"""A DeepLab-v2 checkpoint on single images, outside any dataset (demo.py, the report's figure).

The same computation as ``test`` (docs/method.md, stage 4): the BGR image minus
IMAGE.MEAN at native size, the MSC model in eval mode (max over scales),
stride-8 logits upsampled bilinearly to image size, argmax; with ``crf`` the
dense CRF of ``crf`` (CRF section of the config, CRF.WRAPPED_IMAGE included).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from addict import Dict

from .data_config import class_names, mean_bgr
from .datasets.transforms import to_network_input
from .crf_run import crf_label
from .evaluate import upsample_logits
from .models import build_model
from .models.init_weights import load_checkpoint
from .utils.crf import DenseCRF


class Predictor:
    """Labels of RGB images from one checkpoint (``cfg`` gives the network, classes, mean and CRF)."""

    def __init__(self, cfg: Dict, model_path: str | Path, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.mean = mean_bgr(cfg)
        self.class_names = class_names(cfg)
        self.model = build_model(cfg.MODEL, len(self.class_names))
        load_checkpoint(self.model, model_path)
        self.model.eval().to(self.device)
        self.postprocessor = DenseCRF.from_config(cfg.CRF, self.device)  # CRF.BACKEND auto: torch on a GPU
        self.wrapped_mean_bgr = tuple(self.mean) if cfg.CRF.WRAPPED_IMAGE else None

    @torch.no_grad()
    def logits(self, rgb: np.ndarray) -> torch.Tensor:
        """Stride-8 logits ``(C, h, w)`` (float32, CPU) of an ``(H, W, 3)`` uint8 RGB image."""
        image = to_network_input(rgb[:, :, ::-1].astype(np.float32), self.mean)
        return self.model(torch.from_numpy(image)[None].to(self.device))[0].float().cpu()

    def label(self, rgb: np.ndarray, crf: bool = False) -> np.ndarray:
        """``(H, W)`` uint8 class indices (0 background) of an RGB image, with the dense CRF when ``crf``."""
        logits = self.logits(rgb)
        if crf:
            return crf_label(rgb, logits, self.postprocessor, self.wrapped_mean_bgr)
        return upsample_logits(logits, rgb.shape[:2]).argmax(dim=0).numpy().astype(np.uint8)
