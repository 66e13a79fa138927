"""Dense CRF post-processing (docs/method.md, stage 4 "crf", used again by stage 5)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_softmax

CRF_ITER_MAX = 10
"""Mean-field iterations."""
CRF_POS_W, CRF_POS_XY_STD = 3, 1
"""Gaussian (smoothness) kernel: weight 3, spatial std 1 pixel."""
CRF_BI_W, CRF_BI_XY_STD, CRF_BI_RGB_STD = 4, 67, 3
"""Bilateral (appearance) kernel: weight 4, spatial std 67 pixels, colour std 3."""


class DenseCRF:
    """Fully connected CRF on a softmax map: Gaussian + bilateral kernels, Potts compatibility."""

    def __init__(
        self,
        iter_max: int = CRF_ITER_MAX,
        pos_w: float = CRF_POS_W,
        pos_xy_std: float = CRF_POS_XY_STD,
        bi_w: float = CRF_BI_W,
        bi_xy_std: float = CRF_BI_XY_STD,
        bi_rgb_std: float = CRF_BI_RGB_STD,
    ):
        self.iter_max, self.pos_w, self.pos_xy_std = iter_max, pos_w, pos_xy_std
        self.bi_w, self.bi_xy_std, self.bi_rgb_std = bi_w, bi_xy_std, bi_rgb_std

    @classmethod
    def from_config(cls, crf_cfg) -> "DenseCRF":
        """From the config's ``CRF`` section."""
        return cls(crf_cfg.ITER_MAX, crf_cfg.POS_W, crf_cfg.POS_XY_STD, crf_cfg.BI_W, crf_cfg.BI_XY_STD, crf_cfg.BI_RGB_STD)

    def __call__(self, image: np.ndarray, prob: np.ndarray) -> np.ndarray:
        """Refine ``prob`` ``(C, H, W)`` (softmax) with the 8-bit image ``(H, W, 3)``; returns ``(C, H, W)``."""
        n_classes, height, width = prob.shape
        if image.shape[:2] != (height, width) or image.dtype != np.uint8:
            raise ValueError(f"CRF needs a uint8 image of size {(height, width)}, got {image.dtype} {image.shape}")
        # pydensecrf needs writable C-ordered buffers (PIL-backed arrays are read-only): copy.
        crf = dcrf.DenseCRF2D(width, height, n_classes)
        crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(prob.astype(np.float32))))
        crf.addPairwiseGaussian(sxy=self.pos_xy_std, compat=self.pos_w)
        crf.addPairwiseBilateral(
            sxy=self.bi_xy_std, srgb=self.bi_rgb_std, rgbim=np.array(image, dtype=np.uint8, order="C"), compat=self.bi_w
        )
        q = crf.inference(self.iter_max)
        return np.asarray(q, dtype=np.float32).reshape(n_classes, height, width)


def wrapped_image(rgb: np.ndarray, mean_bgr: Sequence[float]) -> np.ndarray:
    """deeplab-pytorch's CRF input: the BGR mean-subtracted image cast to uint8 (negatives wrap).

    Kept only to reproduce its numbers (``CRF.WRAPPED_IMAGE: true``); the float
    is truncated toward zero and taken modulo 256, as the C cast does on x86.
    """
    bgr = rgb[:, :, ::-1].astype(np.float32) - np.asarray(mean_bgr, dtype=np.float32)
    return (np.trunc(bgr).astype(np.int64) % 256).astype(np.uint8)
