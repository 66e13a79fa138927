"""Loss of the integral attention model (docs/method.md, stage 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def iam_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum of two means over the ``(B, C, h, w)`` output ``x`` and target ``t`` in [0, 1].

    * over pixels with ``t > 0``: mean of ``-t * log(sigmoid(x))``;
    * over pixels with ``t == 0``: mean of ``-log(1 - sigmoid(x))``;

    a mean over an empty set is left out. Computed stably with
    ``-log(sigmoid(x)) = softplus(-x)`` and ``-log(1 - sigmoid(x)) = softplus(x)``.
    """
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ")
    pos = target > 0
    neg = target == 0
    loss = output.new_zeros(())
    if pos.any():
        loss = loss + (target[pos] * F.softplus(-output[pos])).mean()
    if neg.any():
        loss = loss + F.softplus(output[neg]).mean()
    return loss
