"""The loss of DeepLab-v2 training (docs/method.md, stage 4, "Loss and optimiser"): the cross-entropy
of each multi-scale output against the label resized to it, summed over the outputs."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.nn import functional as F

from nsrom.classes import IGNORE_INDEX

from .datasets.transforms import resize_labels_multi


def msc_loss(
    outputs: Sequence[torch.Tensor],
    labels: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    reduce_counts: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sum over the MSC outputs of the cross-entropy with the label nearest-resized to each output.

    Each term is the mean over non-ignored pixels; a term whose pixels are all
    ignored contributes 0 (plain mean cross-entropy would give NaN there). The
    labels of all outputs are resized in one device-side gather and the pixel
    counts stay on the device (no host synchronisation). ``reduce_counts``
    turns this batch's per-output valid-pixel counts into the counts the means
    divide by: under DDP the sum over ranks divided by the world size
    (train.py, ``global_count_reducer``), so that DDP's average of the ranks'
    gradients equals one process's gradient on the whole global batch.
    """
    targets = resize_labels_multi(labels, [o.shape[2:] for o in outputs])
    counts = torch.stack([(t != ignore_index).sum() for t in targets]).to(outputs[0].device, torch.float32)
    if reduce_counts is not None:
        counts = reduce_counts(counts)
    total = outputs[0].new_zeros((), dtype=torch.float32)
    for logits, target, count in zip(outputs, targets, counts):
        loss = F.cross_entropy(logits.float(), target.to(logits.device), ignore_index=ignore_index, reduction="sum")
        total = total + loss / count.clamp(min=1.0)
    return total
