"""Optimiser and learning-rate schedule of DeepLab-v2 training (docs/method.md, stage 4); the loss is
:mod:`segmentation.libs.loss`."""

from __future__ import annotations

import torch
from torch import nn

ASPP_WEIGHT_LR_MULT = 10
"""ASPP weights learn at 10x the base lr (with weight decay)."""
ASPP_BIAS_LR_MULT = 20
"""ASPP biases learn at 20x the base lr, without weight decay."""


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """The three SGD groups: backbone convs (lr, wd), ASPP weights (10 lr, wd), ASPP biases (20 lr, no wd).

    BatchNorm parameters are in no group (BN is frozen). Each group records
    its ``initial_lr`` for :func:`set_poly_lr`.
    """
    backbone, aspp_w, aspp_b = [], [], []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d):
            continue
        if "aspp" in name.split("."):
            aspp_w.append(module.weight)
            if module.bias is not None:
                aspp_b.append(module.bias)
        else:
            backbone.extend(module.parameters())
    groups = [(backbone, lr, weight_decay), (aspp_w, ASPP_WEIGHT_LR_MULT * lr, weight_decay),
              (aspp_b, ASPP_BIAS_LR_MULT * lr, 0.0)]
    return [{"params": p, "lr": g_lr, "initial_lr": g_lr, "weight_decay": wd} for p, g_lr, wd in groups]


def build_optimizer(model: nn.Module, solver_cfg) -> torch.optim.SGD:
    """SGD with momentum over :func:`param_groups` (SOLVER.LR, MOMENTUM, WEIGHT_DECAY)."""
    return torch.optim.SGD(
        param_groups(model, solver_cfg.LR, solver_cfg.WEIGHT_DECAY), lr=solver_cfg.LR, momentum=solver_cfg.MOMENTUM
    )


def poly_lr(base_lr: float, step: int, iter_max: int, power: float, update_every: int) -> float:
    """Learning rate for the update that follows ``step`` completed steps.

    ``base_lr * (1 - s / iter_max) ** power`` with ``s`` = ``step`` rounded down
    to a multiple of ``update_every`` (the lr changes every LR_DECAY steps).
    """
    s = (step // update_every) * update_every
    return base_lr * max(1.0 - s / iter_max, 0.0) ** power


def set_poly_lr(optimizer: torch.optim.Optimizer, step: int, iter_max: int, power: float, update_every: int) -> None:
    """Set every group's lr from its ``initial_lr`` with :func:`poly_lr`."""
    for group in optimizer.param_groups:
        group["lr"] = poly_lr(group["initial_lr"], step, iter_max, power, update_every)
