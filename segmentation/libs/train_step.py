"""One optimiser step of DeepLab-v2 training (docs/method.md, stage 4): ITER_SIZE accumulated batches.

Shared by :func:`segmentation.libs.train.train`, the tests and the benchmarks.
Mixed precision (SOLVER.AMP) and channels-last (MODEL.CHANNELS_LAST) come in
through :class:`nsrom.precision.Precision`; with both off the step is the plain
``loss.backward()`` / ``optimizer.step()`` of float32 training. Under DDP the
gradient all-reduce runs only on the last batch of the step (``no_sync``).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable

import torch

from nsrom.precision import Precision

from .loss import msc_loss

CountReducer = Callable[[torch.Tensor], torch.Tensor]


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    iter_size: int,
    ignore_label: int,
    precision: Precision,
    scaler: torch.amp.GradScaler,
    reduce_counts: CountReducer | None = None,
) -> torch.Tensor:
    """Zero the gradients, accumulate ``iter_size`` batches of ``(images, labels)``, step.

    Each batch's MSC loss is divided by ``iter_size``; returns the step's loss
    as a detached device tensor (no host synchronisation).
    """
    optimizer.zero_grad(set_to_none=True)
    step_loss = None
    batches = iter(micro_batches)
    for i in range(iter_size):
        images, labels = next(batches)
        last = i == iter_size - 1
        no_sync = getattr(model, "no_sync", None)
        sync = contextlib.nullcontext() if last or no_sync is None else no_sync()
        with sync:
            with precision.autocast():
                outputs = model(precision.prepare_input(images))
            loss = msc_loss(outputs, labels, ignore_label, reduce_counts) / iter_size
            scaler.scale(loss).backward()
        step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
    scaler.step(optimizer)
    scaler.update()
    return step_loss
