"""Validation mIoU during DeepLab-v2 training, for TensorBoard only (``SOLVER.ITER_VAL``).

Every ITER_VAL steps the model being trained predicts the first VAL_IMAGES
images of DATASET.SPLIT.VAL (all with 0) as ``test`` does (native size, eval
mode, argmax of the upsampled logits) and the mIoU is logged as ``miou/val``.
It is a curve to watch, never an input to any choice: NSROM uses no pixel
ground truth to pick checkpoints or settings (docs/method.md, stage 4), and
training always ends with its last step's model. The monitor reads images
without a DataLoader and draws no random number, so training is unchanged.
Under torchrun the images are split over the ranks and the confusion matrices summed.
"""

from __future__ import annotations

import logging

import torch
from addict import Dict
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from nsrom import distributed
from nsrom.data import DataLayout
from nsrom.metrics import ConfusionAccumulator, scores

from .data_config import mean_bgr
from .datasets import EvalDataset
from .evaluate import upsample_logits
from .models import freeze_bn

LOG = logging.getLogger(__name__)


class ValMonitor:
    """mIoU of the training model on a fixed list of val images, every ``every`` steps."""

    def __init__(self, dataset: EvalDataset, names: list[str], every: int, device: torch.device):
        self.dataset, self.names, self.every, self.device = dataset, names, every, device

    @classmethod
    def from_config(cls, cfg: Dict, layout: DataLayout, names: list[str], device: torch.device) -> "ValMonitor | None":
        """The monitor of ``SOLVER.ITER_VAL`` / ``SOLVER.VAL_IMAGES``; None when ITER_VAL is 0 (off)."""
        every = cfg.SOLVER.ITER_VAL
        if not every:
            return None
        dataset = EvalDataset(layout, cfg.DATASET.SPLIT.VAL, mean_bgr=mean_bgr(cfg))
        if cfg.SOLVER.VAL_IMAGES:
            dataset.ids = dataset.ids[: cfg.SOLVER.VAL_IMAGES]
        LOG.info("val mIoU of %d %s images every %d steps (TensorBoard miou/val; monitoring only)",
                 len(dataset.ids), cfg.DATASET.SPLIT.VAL, every)
        return cls(dataset, names, every, device)

    def after_step(self, model: nn.Module, step: int, writer: SummaryWriter | None) -> float | None:
        """At every ``every``-th step: the val mIoU (all ranks), logged by the rank with a ``writer``."""
        if step % self.every:
            return None
        miou = self.miou(model)
        if miou is None:
            LOG.warning("no val image has ground truth; no val mIoU at step %d", step)
            return None
        LOG.info("step %d: val mIoU %.2f%% (%d images)", step, 100 * miou, len(self.dataset.ids))
        if writer is not None:
            writer.add_scalar("miou/val", miou, step)
        return miou

    @torch.no_grad()
    def miou(self, model: nn.Module) -> float | None:
        """mIoU of ``model`` (left in training mode with frozen BN, as it was) on the monitor's images."""
        acc = ConfusionAccumulator(len(self.names))
        model.eval()
        try:
            for index in distributed.shard(range(len(self.dataset))):
                _, image, gt = self.dataset[index]
                if gt is None:
                    continue
                logits = model(torch.from_numpy(image)[None].to(self.device))[0].float().cpu()
                acc.update(gt, upsample_logits(logits, gt.shape).argmax(dim=0).numpy())
        finally:
            model.train()
            freeze_bn(model)
        acc.matrix = distributed.all_reduce_sum(torch.from_numpy(acc.matrix)).numpy()
        if not acc.matrix.any():
            return None
        return scores(acc.matrix, self.names)["Mean IoU"]
