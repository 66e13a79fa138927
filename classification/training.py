"""The training loop shared by stage 1 (OAA classifier) and stage 2 (IAM).

Both stages use the same optimiser, schedule and input pipeline (docs/method.md,
stages 1 and 2); they differ in the network, the loss and whether an
:class:`~classification.attention_accumulation.AttentionAccumulator` watches
the batches. :func:`fit` runs the epochs with a progress bar, TensorBoard
scalars (loss, lr), a checkpoint after every epoch (``checkpoint_last.pth``)
and a recent-state one inside epochs (``checkpoint_recent.pth``, every
``--checkpoint-every-steps`` / ``--checkpoint-every-minutes``), and
``--resume``. Both checkpoints hold the whole state (see
:mod:`nsrom.training_state`): a run killed at any moment and resumed ends
with the weights and maps of an uninterrupted run.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from nsrom import distributed
from nsrom.errors import NsromError
from nsrom.files import write_json
from nsrom.precision import AMP_OFF, Precision
from nsrom.training_state import (
    CheckpointCadence, ResumableSampler, reseed_loader, restore_rank_rng, save_state, seed_all,
)

from .attention_accumulation import AttentionAccumulator, records_from_state
from .cli_args import resolve_device
from .datasets import ImageLabelDataset
from .models.attention_net import AttentionNet, class_logits
from .optim import build_optimizer, lr_at_step, set_epoch_lr, set_lr
from .run_layout import RunDirs
from .run_state import Position, Saver, args_record, restore, resume_from

log = logging.getLogger(__name__)

SEED_RANGE = 2**31 - 1
"""Shuffling/jitter seed drawn from torch's generator (``--seed`` makes runs repeatable)."""

LossFn = Callable[[torch.Tensor, dict], torch.Tensor]
"""``(cam, batch) -> loss``; ``batch`` tensors are already on the training device."""


def seed_everything(seed: int | None) -> None:
    """``--seed``: seed torch (model init, shuffling, colour jitter), numpy and ``random`` when given."""
    if seed is not None:
        seed_all(seed)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict,
    loss_fn: LossFn,
    precision: Precision,
    scaler: torch.amp.GradScaler,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (under autocast when asked), loss in float32, backward, step; returns ``(cam, loss)`` detached.

    With ``precision.amp == "off"`` this is exactly forward / loss / zero_grad /
    backward / step in float32.
    """
    with precision.autocast():
        cam = model(precision.prepare_input(batch["image"]))
    cam = cam.float()
    loss = loss_fn(cam, batch)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return cam.detach(), loss.detach()


def fit(
    args: argparse.Namespace,
    model: AttentionNet,
    dataset: ImageLabelDataset,
    dirs: RunDirs,
    loss_fn: LossFn,
    accumulator: AttentionAccumulator | None = None,
    final_record: dict | None = None,
) -> Path:
    """Train ``model`` for ``args.epochs``; returns the final checkpoint (which also holds ``final_record``).

    The caller runs :func:`~classification.run_state.prepare_run` first (before loading data and weights).
    Under torchrun (see :mod:`nsrom.distributed`) the model is wrapped in DDP,
    ``--batch-size`` is the global batch split evenly over the ranks (GloRe's
    BatchNorm becomes SyncBatchNorm on CUDA, so it normalises over the global
    batch as one process does; gloo on the CPU keeps per-rank statistics), the
    accumulator's records are gathered on rank 0 at the end of each epoch, and
    only rank 0 writes checkpoints, maps, TensorBoard and train_args.json.

    ``--resume`` continues from the most advanced checkpoint with everything
    the rest of the run depends on: weights, optimiser (momentum), loss scale,
    the data seed, the epoch and the batch inside it, the loss sum of the
    epoch, the accumulation records of the epoch so far and every rank's
    random generators.
    """
    info = distributed.current()
    device = distributed.local_device(resolve_device(args.device))
    batch_size = distributed.per_rank_batch(args.batch_size, "--batch-size")
    if info.enabled and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif info.enabled:
        log.warning("DDP on the CPU: BatchNorm statistics are per process (SyncBatchNorm needs CUDA)")
    model.to(device)
    precision = Precision.for_device(getattr(args, "amp", AMP_OFF), getattr(args, "channels_last", False), device)
    precision.prepare_model(model)
    optimizer = build_optimizer(model, args.lr, args.weight_decay)
    scaler = precision.grad_scaler()
    data_seed = distributed.broadcast_from_main(int(torch.randint(SEED_RANGE, ())))
    resume_path = distributed.broadcast_from_main(resume_from(args, dirs) if info.is_main else None)
    state, position, carried = None, Position(), []
    if resume_path is not None:
        state, position = restore(resume_path, model, optimizer, scaler)
        data_seed = int(state.get("data_seed", data_seed))
        if accumulator is not None and info.is_main:
            accumulator.load()
            carried = records_from_state(state["records"]) if "records" in state else []
    if info.is_main:
        resolved = {"device": str(device), "num_classes": model.num_classes, "num_images": len(dataset),
                    "model_dir": str(dirs.model), "log_dir": str(dirs.logs), "world_size": info.world_size,
                    "accu_dir": str(accumulator.out_dir) if accumulator is not None else getattr(args, "accu_dir", None)}
        write_json(dirs.train_args, {**args_record(args), "resolved": resolved})

    dataset.seed = data_seed
    sampler = ResumableSampler(dataset, data_seed)
    generator = torch.Generator()
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=args.num_workers,
        pin_memory=device.type == "cuda", drop_last=False, generator=generator,
    )
    batches_per_epoch = math.ceil(sampler.num_samples / batch_size)
    net = model
    if info.enabled:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if state is not None and "rng" in state:
        restore_rank_rng(state["rng"], device)  # after every start-up draw (model init, data seed)
    writer = None
    if info.is_main:
        from torch.utils.tensorboard import SummaryWriter  # heavy import, only when training

        # purge_step drops what the interrupted run logged after its checkpoint
        writer = SummaryWriter(log_dir=str(dirs.logs), purge_step=position.step + 1 if state is not None else None)
    cadence = CheckpointCadence(getattr(args, "checkpoint_every_steps", 0), getattr(args, "checkpoint_every_minutes", 0))
    warmup_steps = getattr(args, "warmup_steps", 0)
    saver = Saver(dirs, model, optimizer, scaler, data_seed, device)
    log.info("%d images, %d steps per epoch, epochs %d..%d, device %s, %d process(es)",
             len(dataset), batches_per_epoch, position.epoch, args.epochs - 1, device, info.world_size)
    resumed_epoch = position.epoch  # ``position`` moves on at each epoch's end
    try:
        for epoch in range(position.epoch, args.epochs):
            first = position.batch if epoch == position.epoch else 0
            total, count = (position.loss_sum, position.loss_count) if first else (0.0, 0)
            # this epoch's records alone: a resumed epoch starts from those its checkpoint carried
            records = list(carried) if epoch == resumed_epoch else []
            lr = set_epoch_lr(optimizer, args.lr, epoch, args.decay_points)
            sampler.set_epoch(epoch, first * batch_size)
            reseed_loader(generator, data_seed, epoch)
            dataset.epoch = epoch
            net.train()
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", dynamic_ncols=True, leave=False,
                       initial=first, total=batches_per_epoch, disable=not info.is_main)
            step = position.step
            for index, batch in enumerate(bar, start=first):
                batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
                if step < warmup_steps:
                    lr = set_lr(optimizer, lr_at_step(args.lr, epoch, step, args.decay_points, warmup_steps))
                cam, loss = train_step(net, optimizer, batch, loss_fn, precision, scaler)
                if accumulator is not None:  # collected here, fused at the epoch's end (_accumulate)
                    keep = distributed.real_samples(len(dataset), index, batch_size, len(batch["id"]))
                    records += accumulator.prepare(epoch, batch["id"], batch["label"], cam, class_logits(cam), keep)
                value = loss.item()
                if not math.isfinite(value):
                    # The weights are already damaged: stop instead of training on NaNs
                    # (the checkpoints still hold an earlier state).
                    raise NsromError(
                        f"training diverged: loss {value} at epoch {epoch} step {step}; "
                        f"lower --lr (now {args.lr}) and start again with --overwrite"
                    )
                total, count, step = total + value, count + 1, step + 1
                if writer is not None:
                    writer.add_scalar("train/loss", value, step)
                    writer.add_scalar("train/lr", lr, step)
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.1e}")
                if index + 1 < batches_per_epoch and cadence.due(step):
                    saver.save(dirs.checkpoint_recent, Position(epoch, index + 1, step, total, count),
                               records if accumulator is not None else None)
                    cadence.saved()
            position = Position(epoch + 1, 0, step)
            mean = total / max(count, 1)
            if accumulator is not None:
                _accumulate(accumulator, epoch, records)
            if writer is not None:
                writer.add_scalar("train/epoch_loss", mean, step)
            saver.save(dirs.checkpoint_last, position, None)
            cadence.saved()
            log.info("epoch %d: mean loss %.4f, lr %.2e", epoch, mean, lr)
    finally:
        if writer is not None:
            writer.close()
    if info.is_main:
        save_state(dirs.checkpoint_final, {"model": model.state_dict(), "epoch": args.epochs - 1, "step": position.step,
                                           "num_classes": model.num_classes, "width_div": model.width_div,
                                           **(final_record or {})})
        dirs.checkpoint_recent.unlink(missing_ok=True)  # superseded by checkpoint_last
        log.info("final model: %s", dirs.checkpoint_final)
    distributed.barrier()  # every rank returns once the final checkpoint exists
    return dirs.checkpoint_final


def _accumulate(accumulator: AttentionAccumulator, epoch: int, records: list) -> None:
    """Apply one epoch's accumulation records (all ranks' on rank 0) and write the changed maps."""
    gathered = distributed.gather_to_main(records)
    if gathered is None:
        return
    changed = accumulator.apply(epoch, [r for rank_records in gathered for r in rank_records])
    written = accumulator.save()
    log.info("epoch %d: %d accumulated maps updated (%d written), %d in total", epoch, changed, written, len(accumulator))
