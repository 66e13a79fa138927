"""``main.py train``: DeepLab-v2 MSC training on pseudo or masked labels (docs/method.md, stages 4 and 7).

Single process or ``torchrun --nproc_per_node N main.py train ...`` (DDP): the
global batch SOLVER.BATCH_SIZE.TRAIN is split evenly over the processes,
ITER_SIZE batches are still accumulated per step, the loss means divide by the
global count of labelled pixels (so a step equals the single-process step on
the same global batch), BN stays frozen, and only rank 0 writes checkpoints,
config, log file and TensorBoard.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from pathlib import Path
from typing import Iterator

import torch
from addict import Dict
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from nsrom import distributed
from nsrom.errors import NsromError
from nsrom.files import atomic_path, atomic_write_text
from nsrom.precision import Precision

from .datasets import TrainDataset, class_names, data_layout, mean_bgr, seed_worker, training_label_dir
from .models import build_model, freeze_bn
from .models.init_weights import load_init
from .train_step import CountReducer, train_step
from .utils.config import to_yaml
from .utils.paths import RunPaths
from .utils.solver import build_optimizer, set_poly_lr
from .val_monitor import ValMonitor

LOG = logging.getLogger(__name__)
RESUME_LATEST = "latest"
"""``--resume`` without a path: the newest ``checkpoint_<step>.pth`` of the model dir."""
SEED_RANGE = 2**31 - 1
"""Shuffling/augmentation seed drawn from torch's generator (``torch.manual_seed`` makes runs repeatable)."""


def latest_checkpoint(model_dir: Path) -> Path:
    """The ``checkpoint_<step>.pth`` with the highest step in ``model_dir``."""
    found = []
    for path in model_dir.glob("checkpoint_*.pth"):
        match = re.fullmatch(r"checkpoint_(\d+)\.pth", path.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        raise NsromError(f"--resume: no checkpoint_<step>.pth in {model_dir}; start without --resume")
    return max(found)[1]


def _batches(loader: DataLoader, sampler: DistributedSampler, dataset: TrainDataset) -> Iterator:
    """Endless stream of batches; each pass over the data reshuffles and redraws the augmentation."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        dataset.epoch = epoch
        yield from loader
        epoch += 1


def _on_device(batches: Iterator, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    non_blocking = device.type == "cuda"
    while True:
        _, images, labels = next(batches)
        yield images.to(device, non_blocking=non_blocking), labels.to(device, non_blocking=non_blocking)


def global_count_reducer(info: distributed.DistInfo) -> CountReducer | None:
    """Under DDP: labelled-pixel counts summed over ranks, divided by the world size.

    DDP averages the ranks' gradients; dividing each rank's CE sum by
    (global count / world) makes that average the gradient of the global
    per-pixel mean, as one process computes it on the whole batch.
    """
    if not info.enabled:
        return None

    def reduce(counts: torch.Tensor) -> torch.Tensor:
        return distributed.all_reduce_sum(counts.clone()) / info.world_size

    return reduce


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    cfg: Dict,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Model, optimiser, step and config (and the fp16 loss scale) in one file, written atomically."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "config": cfg.to_dict()}
    if scaler is not None and scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    LOG.info("saved %s", path)


def train(
    cfg: Dict,
    *,
    fully_supervised: bool = False,
    init: bool = True,
    resume: str | Path | None = None,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
) -> Path:
    """Train the model of ``cfg`` on ``DATASET.LABEL_DIR``; returns the final checkpoint path.

    Stage 4 rules: augmentation of :mod:`..datasets.transforms`, MSC loss summed
    over the four outputs, ITER_SIZE batches per step, three SGD groups, frozen
    BN, poly lr every LR_DECAY steps. ``resume`` is a checkpoint path or
    ``"latest"``. An existing checkpoint_final.pth is kept unless ``overwrite``.
    Under torchrun the processes join one DDP job (see the module docstring).
    """
    with distributed.session(device) as info:
        return _train(cfg, info, fully_supervised, init, resume, distributed.local_device(device), overwrite)


def _train(
    cfg: Dict,
    info: distributed.DistInfo,
    fully_supervised: bool,
    init: bool,
    resume: str | Path | None,
    device: torch.device,
    overwrite: bool,
) -> Path:
    paths = RunPaths.from_config(cfg)
    solver = cfg.SOLVER
    if paths.final_checkpoint.is_file() and not overwrite and resume is None:
        LOG.info("%s exists; nothing to train (pass --overwrite to train again)", paths.final_checkpoint)
        return paths.final_checkpoint
    batch_size = distributed.per_rank_batch(solver.BATCH_SIZE.TRAIN, "SOLVER.BATCH_SIZE.TRAIN")
    layout = data_layout(cfg)
    n_classes = len(class_names(cfg))
    label_dir = training_label_dir(cfg, layout, fully_supervised)
    model = build_model(cfg.MODEL, n_classes)
    start = 0
    if resume is None:
        if init and cfg.MODEL.INIT_MODEL:
            load_init(model.base, cfg.MODEL.INIT_MODEL)
        else:
            LOG.info("no init model: training from scratch (ASPP N(0, 0.01), convs PyTorch default)")
    dataset = TrainDataset(
        layout, cfg.DATASET.SPLIT.TRAIN, label_dir, mean_bgr=mean_bgr(cfg), scales=cfg.DATASET.SCALES,
        crop_size=cfg.IMAGE.SIZE.TRAIN, n_classes=n_classes, base_size=cfg.IMAGE.SIZE.BASE,
        ignore_label=cfg.DATASET.IGNORE_LABEL,
    )
    LOG.info("%d training images of %s, %d classes, %d process(es) x batch %d",
             len(dataset), cfg.DATASET.SPLIT.TRAIN, n_classes, info.world_size, batch_size)
    dataset.seed = distributed.broadcast_from_main(int(torch.randint(SEED_RANGE, ())))
    full_batches = len(dataset) >= solver.BATCH_SIZE.TRAIN
    sampler = DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=dataset.seed, drop_last=full_batches
    )
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=cfg.DATALOADER.NUM_WORKERS,
        drop_last=full_batches, worker_init_fn=seed_worker, pin_memory=device.type == "cuda",
    )

    model.train()
    freeze_bn(model)
    model.to(device)
    precision = Precision.for_device(solver.AMP, cfg.MODEL.CHANNELS_LAST, device)
    precision.prepare_model(model)
    optimizer = build_optimizer(model, solver)
    scaler = precision.grad_scaler()
    if resume is not None:
        start = _resume(model, optimizer, paths, resume, scaler)
    net = model
    if info.enabled:  # BN is frozen: no buffers change, none need broadcasting
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )

    writer = None
    if info.is_main:
        paths.model_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(paths.model_dir / "config.yaml", to_yaml(cfg))
        writer = SummaryWriter(str(paths.log_dir))
    val_monitor = ValMonitor.from_config(cfg, layout, class_names(cfg), device)  # SOLVER.ITER_VAL, off by default
    batches = _batches(loader, sampler, dataset)
    reduce_counts = global_count_reducer(info)
    recent: deque[torch.Tensor] = deque(maxlen=solver.AVERAGE_LOSS)
    try:
        bar = tqdm(range(start, solver.ITER_MAX), initial=start, total=solver.ITER_MAX, desc="train",
                   dynamic_ncols=True, disable=not info.is_main)
        for step in bar:
            set_poly_lr(optimizer, step, solver.ITER_MAX, solver.POLY_POWER, solver.LR_DECAY)
            step_loss = train_step(
                net, optimizer, _on_device(batches, device), iter_size=solver.ITER_SIZE,
                ignore_label=cfg.DATASET.IGNORE_LABEL, precision=precision, scaler=scaler,
                reduce_counts=reduce_counts,
            )
            done = step + 1
            recent.append(step_loss)  # stays on the device: read back only at logging steps
            if done % solver.ITER_TB == 0 or done == solver.ITER_MAX:
                _log_step(writer, bar, optimizer, recent, done, solver.ITER_TB)
            if val_monitor is not None:
                val_monitor.after_step(model, done, writer)
            if done % solver.ITER_SAVE == 0 and info.is_main:
                save_checkpoint(paths.checkpoint(done), model, optimizer, done, cfg, scaler)
    finally:
        if writer is not None:
            writer.close()
    if info.is_main:
        save_checkpoint(paths.final_checkpoint, model, optimizer, solver.ITER_MAX, cfg, scaler)
    distributed.barrier()  # every rank returns once the final checkpoint exists
    return paths.final_checkpoint


def _log_step(
    writer: SummaryWriter | None, bar: tqdm, optimizer: torch.optim.Optimizer, recent: deque, done: int, every: int
) -> None:
    """Moving-average loss and lr to TensorBoard and the bar; the one host read-back of the loss.

    Every rank calls it (the window is averaged over the ranks, giving the loss
    of the global batch); rank 0 (the one with a ``writer``) writes. A
    non-finite loss in the window stops training on every rank (checked here,
    every ITER_TB steps, not every step).
    """
    window = torch.stack(list(recent)).float()
    world = distributed.current().world_size
    losses = (distributed.all_reduce_sum(window) / world).cpu()
    if not bool(torch.isfinite(losses).all()):
        raise NsromError(
            f"training loss is {losses.tolist()} in the {len(losses)} steps up to {done}; "
            "lower SOLVER.LR or check the labels"
        )
    average = float(losses.mean())
    bar.set_postfix(loss=f"{average:.4f}")
    if done % every == 0 and writer is not None:
        writer.add_scalar("loss/train", average, done)
        for i, group in enumerate(optimizer.param_groups):
            writer.add_scalar(f"lr/group_{i}", group["lr"], done)


def _resume(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    paths: RunPaths,
    resume: str | Path,
    scaler: torch.amp.GradScaler | None = None,
) -> int:
    """Restore model, optimiser and step from a training checkpoint; returns the step."""
    path = latest_checkpoint(paths.model_dir) if str(resume) == RESUME_LATEST else Path(resume)
    if not path.is_file():
        raise NsromError(f"--resume: checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "optimizer" not in state or "step" not in state:
        raise NsromError(f"--resume: {path} is a weights-only file; resuming needs a training checkpoint of main.py train")
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and scaler.is_enabled() and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    LOG.info("resumed from %s at step %d", path, state["step"])
    return int(state["step"])
