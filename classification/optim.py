"""Optimiser and learning-rate schedule of stages 1 and 2 (docs/method.md, stage 1, "Optimiser").

SGD (momentum 0.9, Nesterov, weight decay 5e-4) over four parameter groups;
the learning rate is multiplied by 0.1 at the start of each decay epoch. The
rate of a step is computed from the base rate, the epoch and the global step
(not by repeated multiplication), so a resumed run gets the same rates.
An optional linear warm-up (not in the paper, whose default is none) scales
the first steps' rates by ``(step + 1) / warmup_steps``.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

HEAD_PREFIX = "extra_convs"
"""Parameters whose name starts with this belong to the head (randomly initialised layers)."""

GROUP_LR_MULTS = (1.0, 2.0, 10.0, 20.0)
"""lr multipliers of backbone weights, backbone biases, head weights, head biases."""

MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
DEFAULT_LR = 1e-3
DEFAULT_DECAY_POINTS = (5, 10)
"""Epochs at whose start the rate is multiplied by :data:`DECAY_FACTOR`."""
DECAY_FACTOR = 0.1


def parameter_groups(model: nn.Module) -> tuple[list[nn.Parameter], ...]:
    """(backbone weights, backbone biases, head weights, head biases)."""
    groups: tuple[list[nn.Parameter], ...] = ([], [], [], [])
    for name, param in model.named_parameters():
        head = name.startswith(HEAD_PREFIX)
        bias = name.endswith("bias")
        groups[2 * head + bias].append(param)
    return groups


def build_optimizer(
    model: nn.Module,
    lr: float = DEFAULT_LR,
    weight_decay: float = WEIGHT_DECAY,
    momentum: float = MOMENTUM,
) -> torch.optim.SGD:
    """SGD with the four groups at lr x (1, 2, 10, 20); each group remembers its multiplier."""
    params = [
        {"params": group, "lr": lr * mult, "lr_mult": mult}
        for group, mult in zip(parameter_groups(model), GROUP_LR_MULTS)
    ]
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)


def lr_at_epoch(base_lr: float, epoch: int, decay_points: Iterable[int] = DEFAULT_DECAY_POINTS) -> float:
    """Base rate of ``epoch`` (0-based): times 0.1 for each decay point <= epoch."""
    return base_lr * DECAY_FACTOR ** sum(epoch >= p for p in decay_points)


def lr_at_step(
    base_lr: float,
    epoch: int,
    step: int,
    decay_points: Iterable[int] = DEFAULT_DECAY_POINTS,
    warmup_steps: int = 0,
) -> float:
    """Base rate of global ``step`` (0-based) in ``epoch``: :func:`lr_at_epoch`, times
    ``(step + 1) / warmup_steps`` while ``step < warmup_steps``."""
    lr = lr_at_epoch(base_lr, epoch, decay_points)
    if step < warmup_steps:
        lr *= (step + 1) / warmup_steps
    return lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    """Set every group's rate to ``lr`` times its multiplier; returns ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
    return lr


def set_epoch_lr(
    optimizer: torch.optim.Optimizer,
    base_lr: float,
    epoch: int,
    decay_points: Iterable[int] = DEFAULT_DECAY_POINTS,
) -> float:
    """Set every group's rate for ``epoch``; returns the base rate."""
    return set_lr(optimizer, lr_at_epoch(base_lr, epoch, decay_points))
