"""Mean-field inference of the fully connected CRF in PyTorch (docs/method.md, stage 4, crf).

The model is pydensecrf's ``DenseCRF2D``: unary ``-log(clip(p, 1e-5, 1))`` of
the softmax ``p`` (pydensecrf's ``unary_from_softmax``); a Gaussian kernel over
position (std ``pos_xy_std``) and a bilateral kernel over position and colour
(``bi_xy_std``, ``bi_rgb_std``), each with Potts compatibility ``-w Q`` and symmetric
normalisation ``n^-1/2 K(n^-1/2 Q)``, ``n = K 1``; ``iter_max`` updates
``Q = softmax(-unary + sum_k w_k n_k^-1/2 K_k(n_k^-1/2 Q))`` from
``Q = softmax(-unary)``. The kernels are filtered on a permutohedral lattice
(:mod:`.permutohedral`), as pydensecrf filters them.

Several images run as one set of tensors: their pixels are concatenated and
the lattices keep them apart. The loop has no host synchronisation; only the
lattice construction reads sizes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .permutohedral import PermutohedralLattice

UNARY_CLIP = 1e-5
"""Smallest probability before the log (``unary_from_softmax``'s clip)."""


@dataclass(frozen=True)
class CrfParams:
    """Kernel weights and standard deviations (pixels, colour levels) and the number of mean-field iterations."""

    iter_max: int
    pos_w: float
    pos_xy_std: float
    bi_w: float
    bi_xy_std: float
    bi_rgb_std: float


def _positions(height: int, width: int, std: float, device: torch.device) -> torch.Tensor:
    """``(H*W, 2)`` features (x / std, y / std) in row-major pixel order, float32 as pydensecrf divides them."""
    std = torch.tensor(std, dtype=torch.float32, device=device)
    xs = torch.arange(width, dtype=torch.float32, device=device) / std
    ys = torch.arange(height, dtype=torch.float32, device=device) / std
    return torch.stack([xs.repeat(height), ys.repeat_interleave(width)], dim=1)


def _features(images: Sequence[torch.Tensor], params: CrfParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian (N, 2) and bilateral (N, 5) features of the concatenated pixels of ``images`` (H, W, 3) uint8."""
    gaussian, bilateral = [], []
    rgb_std = torch.tensor(params.bi_rgb_std, dtype=torch.float32)
    for image in images:
        height, width = image.shape[:2]
        gaussian.append(_positions(height, width, params.pos_xy_std, image.device))
        colour = image.reshape(-1, 3).float() / rgb_std.to(image.device)
        bilateral.append(torch.cat([_positions(height, width, params.bi_xy_std, image.device), colour], dim=1))
    return torch.cat(gaussian), torch.cat(bilateral)


class _Kernel:
    """One pairwise term: lattice, symmetric normalisation and Potts weight."""

    def __init__(self, features: torch.Tensor, segments: torch.Tensor, weight: float):
        self.lattice = PermutohedralLattice.build(features, segments)
        ones = features.new_ones(features.shape[0], 1)
        # pydensecrf: norm = 1 / sqrt(K 1 + 1e-20) in double precision, stored as float32
        self.norm = (1.0 / torch.sqrt(self.lattice.filter(ones).double() + 1e-20)).float()
        self.weight = float(weight)

    def message(self, q: torch.Tensor) -> torch.Tensor:
        """``w n^-1/2 K(n^-1/2 Q)``: minus the Potts pairwise energy of ``q`` (N, C)."""
        return self.lattice.filter(q * self.norm) * self.norm * self.weight


def _normalise(energy: torch.Tensor) -> torch.Tensor:
    """Softmax over classes (dim 1), as pydensecrf's expAndNormalize: subtract the max, exp, divide by the sum."""
    e = torch.exp(energy - energy.amax(dim=1, keepdim=True))
    return e / e.sum(dim=1, keepdim=True)


def dense_crf(
    images: Sequence[torch.Tensor], probs: Sequence[torch.Tensor], params: CrfParams
) -> list[torch.Tensor]:
    """Mean-field marginals ``(C, H, W)`` float32 of each image, from its uint8 ``(H, W, 3)`` image and softmax map.

    All tensors on one device; images of different sizes may share a call.
    """
    if not images:
        return []
    device = probs[0].device
    n_classes = probs[0].shape[0]
    sizes = [p.shape[1] * p.shape[2] for p in probs]
    segments = torch.repeat_interleave(
        torch.arange(len(probs), device=device), torch.tensor(sizes, device=device)
    )
    prob = torch.cat([p.reshape(n_classes, -1).T for p in probs]).float()
    unary = -torch.log(prob.clamp(UNARY_CLIP, 1.0))
    gaussian, bilateral = _features(images, params)
    kernels = [_Kernel(gaussian, segments, params.pos_w), _Kernel(bilateral, segments, params.bi_w)]
    q = _normalise(-unary)
    for _ in range(params.iter_max):
        energy = -unary
        for kernel in kernels:
            energy = energy + kernel.message(q)
        q = _normalise(energy)
    return [
        part.T.reshape(n_classes, *p.shape[1:]).contiguous()
        for part, p in zip(torch.split(q, sizes), probs)
    ]
