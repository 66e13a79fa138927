"""Dense CRF post-processing (docs/method.md, stage 4 "crf", used again by stage 5).

Two backends compute the same model (pydensecrf's ``DenseCRF2D``, see
:mod:`.crf_torch`): ``pydensecrf`` (the C++ library, one image per call, on
the CPU) and ``torch`` (tensor operations on CUDA or the CPU, several images
per call). ``CRF.BACKEND: auto`` picks torch when the CRF runs on CUDA and
pydensecrf on the CPU, where the C++ code is the faster one (docs/speed.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from nsrom.errors import ConfigError, NsromError

from .crf_torch import CrfParams, dense_crf

CRF_ITER_MAX = 10
"""Mean-field iterations."""
CRF_POS_W, CRF_POS_XY_STD = 3, 1
"""Gaussian (smoothness) kernel: weight 3, spatial std 1 pixel."""
CRF_BI_W, CRF_BI_XY_STD, CRF_BI_RGB_STD = 4, 67, 3
"""Bilateral (appearance) kernel: weight 4, spatial std 67 pixels, colour std 3."""

BACKEND_AUTO, BACKEND_PYDENSECRF, BACKEND_TORCH = "auto", "pydensecrf", "torch"
BACKENDS = (BACKEND_AUTO, BACKEND_PYDENSECRF, BACKEND_TORCH)
"""Values of ``CRF.BACKEND``."""


def resolve_backend(name: str, device: torch.device | str) -> str:
    """``auto`` -> ``torch`` when the CRF runs on CUDA, else ``pydensecrf``; other names are checked and kept."""
    if name not in BACKENDS:
        raise ConfigError(f"CRF.BACKEND must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == BACKEND_AUTO:
        return BACKEND_TORCH if torch.device(device).type == "cuda" else BACKEND_PYDENSECRF
    return name


def _pydensecrf():
    """The pydensecrf modules, imported when the pydensecrf backend first runs."""
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError:
        raise NsromError(
            "the pydensecrf CRF backend needs the pydensecrf package: pip install pydensecrf2 "
            "(or use the PyTorch CRF, which needs nothing more: --set CRF.BACKEND=torch)"
        ) from None
    return dcrf, unary_from_softmax


class DenseCRF:
    """Fully connected CRF on a softmax map: Gaussian + bilateral kernels, Potts compatibility.

    ``crf(image, prob)`` refines one image with either backend;
    ``crf.batch(images, probs)`` several (one call of the torch backend).
    ``backend`` is resolved for ``device`` (:func:`resolve_backend`).
    """

    def __init__(
        self,
        iter_max: int = CRF_ITER_MAX,
        pos_w: float = CRF_POS_W,
        pos_xy_std: float = CRF_POS_XY_STD,
        bi_w: float = CRF_BI_W,
        bi_xy_std: float = CRF_BI_XY_STD,
        bi_rgb_std: float = CRF_BI_RGB_STD,
        backend: str = BACKEND_AUTO,
        device: torch.device | str = "cpu",
    ):
        self.params = CrfParams(iter_max, pos_w, pos_xy_std, bi_w, bi_xy_std, bi_rgb_std)
        self.backend = resolve_backend(backend, torch.device(device))
        # pydensecrf runs on the CPU: its workers then open no CUDA context (one per process and GPU)
        self.device = torch.device(device) if self.backend == BACKEND_TORCH else torch.device("cpu")

    @classmethod
    def from_config(cls, crf_cfg, device: torch.device | str = "cpu") -> "DenseCRF":
        """From the config's ``CRF`` section; ``CRF.BACKEND`` is resolved for ``device``."""
        return cls(
            crf_cfg.ITER_MAX, crf_cfg.POS_W, crf_cfg.POS_XY_STD, crf_cfg.BI_W, crf_cfg.BI_XY_STD, crf_cfg.BI_RGB_STD,
            backend=crf_cfg.BACKEND, device=device,
        )

    def __call__(self, image: np.ndarray, prob: np.ndarray | torch.Tensor) -> np.ndarray:
        """Refine ``prob`` ``(C, H, W)`` (softmax) with the 8-bit image ``(H, W, 3)``; returns ``(C, H, W)`` float32."""
        return self.batch([image], [prob])[0]

    def batch(
        self, images: Sequence[np.ndarray], probs: Sequence[np.ndarray | torch.Tensor]
    ) -> list[np.ndarray]:
        """:meth:`__call__` of each (image, prob) pair; the torch backend runs them as one batch on its device."""
        self._check(images, probs)
        if self.backend == BACKEND_TORCH:
            return [q.cpu().numpy() for q in self._torch(images, probs)]
        return [self._pydensecrf(image, prob) for image, prob in zip(images, probs)]

    def labels(self, images: Sequence[np.ndarray], probs: Sequence[np.ndarray | torch.Tensor]) -> list[np.ndarray]:
        """The CRF label map (H, W) uint8 of each pair: argmax over classes (first maximum) of :meth:`batch`."""
        self._check(images, probs)
        if self.backend == BACKEND_TORCH:
            return [q.argmax(dim=0).to(torch.uint8).cpu().numpy() for q in self._torch(images, probs)]
        return [self._pydensecrf(image, prob).argmax(axis=0).astype(np.uint8) for image, prob in zip(images, probs)]

    @staticmethod
    def _check(images: Sequence[np.ndarray], probs: Sequence[np.ndarray | torch.Tensor]) -> None:
        if len(images) != len(probs):
            raise ValueError(f"CRF got {len(images)} images and {len(probs)} probability maps")
        for image, prob in zip(images, probs):
            n_classes, height, width = prob.shape
            if image.shape != (height, width, 3) or image.dtype != np.uint8:
                raise ValueError(
                    f"CRF needs a uint8 image of size {(height, width, 3)}, got {image.dtype} {image.shape}")

    def _torch(self, images: Sequence[np.ndarray], probs: Sequence[np.ndarray | torch.Tensor]) -> list[torch.Tensor]:
        images_t = [torch.from_numpy(np.array(im, dtype=np.uint8, order="C")).to(self.device) for im in images]
        probs_t = [torch.as_tensor(p).to(self.device, torch.float32) for p in probs]
        with torch.no_grad():
            return dense_crf(images_t, probs_t, self.params)

    def _pydensecrf(self, image: np.ndarray, prob: np.ndarray | torch.Tensor) -> np.ndarray:
        dcrf, unary_from_softmax = _pydensecrf()
        prob = prob.cpu().numpy() if isinstance(prob, torch.Tensor) else prob
        n_classes, height, width = prob.shape
        p = self.params
        # pydensecrf needs writable C-ordered buffers (PIL-backed arrays are read-only): copy.
        crf = dcrf.DenseCRF2D(width, height, n_classes)
        crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(prob.astype(np.float32))))
        crf.addPairwiseGaussian(sxy=p.pos_xy_std, compat=p.pos_w)
        crf.addPairwiseBilateral(
            sxy=p.bi_xy_std, srgb=p.bi_rgb_std, rgbim=np.array(image, dtype=np.uint8, order="C"), compat=p.bi_w
        )
        q = crf.inference(p.iter_max)
        return np.asarray(q, dtype=np.float32).reshape(n_classes, height, width)


def wrapped_image(rgb: np.ndarray, mean_bgr: Sequence[float]) -> np.ndarray:
    """deeplab-pytorch's CRF input: the BGR mean-subtracted image cast to uint8 (negatives wrap).

    Kept only to reproduce its numbers (``CRF.WRAPPED_IMAGE: true``); the float
    is truncated toward zero and taken modulo 256, as the C cast does on x86.
    """
    bgr = rgb[:, :, ::-1].astype(np.float32) - np.asarray(mean_bgr, dtype=np.float32)
    return (np.trunc(bgr).astype(np.int64) % 256).astype(np.uint8)
