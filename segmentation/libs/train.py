"""``main.py train``: DeepLab-v2 MSC training on pseudo or masked labels (docs/method.md, stages 4 and 7).

Batches come from an endless stream over passes of the data (each pass
reshuffled, the last partial batch of a pass kept, as the original's
DataLoader does); a step accumulates the next ITER_SIZE batches of the stream.

Single process or ``torchrun --nproc_per_node N main.py train ...`` (DDP): the
global batch SOLVER.BATCH_SIZE.TRAIN is split evenly over the processes,
ITER_SIZE batches are still accumulated per step, the loss means divide by the
global count of labelled pixels (so a step equals the single-process step on
the same global batch), BN stays frozen, and only rank 0 writes checkpoints,
config, log file and TensorBoard. The last partial batch of a pass is split
over the ranks too: the distributed sampler pads it with repeated images so
that every rank has one, and those repeats have every pixel ignored, so the
partial batch counts exactly the images one process would see.

Every checkpoint (``checkpoint_<step>.pth`` every ITER_SAVE steps, and
``checkpoint_recent.pth`` every ITER_SAVE_RECENT steps / MINUTES_SAVE_RECENT
minutes, replaced each time) holds the whole state: ``--resume`` continues the
interrupted run exactly (see :mod:`nsrom.training_state`).
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from pathlib import Path
from typing import Iterator

import torch
import yaml
from addict import Dict
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from nsrom import distributed
from nsrom.errors import ConfigError, NsromError
from nsrom.files import atomic_write_text, ensure_writable_dir, remove_leftover_temporaries
from nsrom.precision import Precision
from nsrom.provenance import StaleOutputError
from nsrom.training_state import (
    CheckpointCadence, ResumableSampler, gather_rng, load_state, most_advanced, reseed_loader, restore_rank_rng,
    save_state,
)

from .data_config import check_split, class_names, data_layout, mean_bgr, training_label_dir
from .datasets import TrainDataset, seed_worker
from .models import build_model, freeze_bn
from .models.init_weights import load_init
from .train_step import CountReducer, train_step
from .utils.config import to_yaml
from .utils.paths import RunPaths
from .utils.solver import build_optimizer, set_poly_lr
from .val_monitor import ValMonitor

LOG = logging.getLogger(__name__)
RESUME_LATEST = "latest"
"""``--resume`` without a path: the most advanced of ``checkpoint_recent.pth`` and ``checkpoint_<step>.pth``."""
SEED_RANGE = 2**31 - 1
"""Shuffling/augmentation seed drawn from torch's generator (``torch.manual_seed`` makes runs repeatable)."""


def _numbered_checkpoints(paths: RunPaths) -> list[Path]:
    """The run's ``checkpoint_<step>.pth`` files, highest step first."""
    numbered = []
    for path in paths.model_dir.glob("checkpoint_*.pth"):
        match = re.fullmatch(r"checkpoint_(\d+)\.pth", path.name)
        if match:
            numbered.append((int(match.group(1)), path))
    return [path for _, path in sorted(numbered, reverse=True)]


def remove_earlier_checkpoints(paths: RunPaths) -> list[Path]:
    """Delete an earlier run's checkpoints (numbered, recent, final), so that a later ``--resume`` of a run
    started again with ``--overwrite`` cannot continue the earlier one; returns the deleted paths."""
    found = [p for p in (*_numbered_checkpoints(paths), paths.recent_checkpoint, paths.final_checkpoint) if p.is_file()]
    for path in found:
        path.unlink()
    return found


def latest_checkpoint(paths: RunPaths) -> Path:
    """The most advanced training checkpoint of a run: checkpoint_recent.pth or the highest checkpoint_<step>.pth."""
    candidates = [*_numbered_checkpoints(paths), paths.recent_checkpoint]
    best = most_advanced(candidates)
    if best is None:
        raise NsromError(f"--resume: no checkpoint_<step>.pth or {paths.recent_checkpoint.name} in {paths.model_dir}; "
                         "start without --resume")
    return best


class BatchStream:
    """The endless stream of training batches, and where it stands: batch ``batch`` of pass ``epoch`` comes next.

    Each pass over the data is a new permutation of a :class:`ResumableSampler`
    (a function of the seed and the pass), the augmentation of an item is
    seeded by (seed, pass, index) in the dataset, and the last partial batch
    of a pass is kept. Yields ``(images, labels)``; under DDP the sampler's
    padding repeats get an all-ignore label, so they add no loss and no
    labelled pixels (the partial batch is then the one-process partial batch).
    A stream built at a saved position yields what the saved one would have.
    """

    def __init__(self, dataset: TrainDataset, batch_size: int, num_workers: int, device: torch.device,
                 seed: int, ignore_label: int, epoch: int = 0, batch: int = 0):
        self.dataset, self.batch_size, self.device, self.seed = dataset, batch_size, device, seed
        self.ignore_label = ignore_label
        self.epoch, self.batch = epoch, batch
        self.sampler = ResumableSampler(dataset, seed)
        self.generator = torch.Generator()
        self.loader = DataLoader(
            dataset, batch_size=batch_size, sampler=self.sampler, num_workers=num_workers, drop_last=False,
            worker_init_fn=seed_worker, pin_memory=device.type == "cuda", generator=self.generator,
        )
        self._iterator = self._stream()

    @property
    def batches_per_pass(self) -> int:
        return math.ceil(self.sampler.num_samples / self.batch_size)

    def position(self) -> dict[str, int]:
        """The next batch: ``{"epoch": pass, "batch": index in the pass}``."""
        return {"epoch": self.epoch, "batch": self.batch}

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return next(self._iterator)

    def _stream(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        non_blocking = self.device.type == "cuda"
        while True:
            self.sampler.set_epoch(self.epoch, self.batch * self.batch_size)
            reseed_loader(self.generator, self.seed, self.epoch)
            self.dataset.epoch = self.epoch
            for index, (_, images, labels) in enumerate(self.loader, start=self.batch):
                real = distributed.real_samples(len(self.dataset), index, self.batch_size, len(labels))
                if not all(real):
                    labels[~torch.tensor(real)] = self.ignore_label
                self.batch = index + 1
                yield images.to(self.device, non_blocking=non_blocking), labels.to(self.device, non_blocking=non_blocking)
            self.epoch, self.batch = self.epoch + 1, 0


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


class _Checkpointer:
    """Writes training checkpoints with the whole state of the run (every rank takes part; rank 0 writes)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                 cfg: Dict, stream: BatchStream, recent: deque, device: torch.device):
        self.model, self.optimizer, self.scaler, self.cfg = model, optimizer, scaler, cfg
        self.stream, self.recent, self.device = stream, recent, device

    def save(self, path: Path, step: int) -> None:
        rng = gather_rng(self.device)
        losses = distributed.gather_to_main([float(v) for v in self.recent])  # each rank's logging window
        if not distributed.current().is_main:
            return
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": step,
                 "config": self.cfg.to_dict(), "stream": self.stream.position(), "data_seed": self.stream.seed,
                 "rng": rng, "recent_losses": losses}
        if self.scaler.is_enabled():
            state["scaler"] = self.scaler.state_dict()
        save_state(path, state)
        LOG.info("saved %s", path)


def train(
    cfg: Dict,
    *,
    fully_supervised: bool = False,
    init: bool = True,
    resume: str | Path | None = None,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    check_data: bool = True,
) -> Path:
    """Train the model of ``cfg`` on ``DATASET.LABEL_DIR``; returns the final checkpoint path.

    Stage 4 rules: augmentation of :mod:`..datasets.transforms`, MSC loss summed
    over the four outputs, ITER_SIZE batches per step, three SGD groups, frozen
    BN, poly lr every LR_DECAY steps. ``resume`` is a checkpoint path or
    ``"latest"`` (the most advanced checkpoint of the run). An existing
    checkpoint_final.pth is kept unless ``overwrite``. Under torchrun the
    processes join one DDP job (see the module docstring). ``check_data``: check every
    training image and label first (:func:`..data_config.check_split`).
    """
    with distributed.session(device) as info:
        return _train(cfg, info, fully_supervised, init, resume, distributed.local_device(device), overwrite,
                      check_data)


def _train(
    cfg: Dict,
    info: distributed.DistInfo,
    fully_supervised: bool,
    init: bool,
    resume: str | Path | None,
    device: torch.device,
    overwrite: bool,
    check_data: bool = True,
) -> Path:
    paths = RunPaths.from_config(cfg)
    solver = cfg.SOLVER
    if paths.final_checkpoint.is_file() and not overwrite and resume is None:
        if changed := _finished_with_other_settings(paths, cfg):
            raise StaleOutputError(
                f"{paths.final_checkpoint} was trained with other settings ({'; '.join(changed)}); --overwrite "
                "trains again with these (replacing that run's checkpoints), or another EXP.ID or "
                "EXP.OUTPUT_DIR keeps both")
        LOG.info("%s exists; nothing to train (pass --overwrite to train again)", paths.final_checkpoint)
        return paths.final_checkpoint
    earlier = [p.name for p in (*_numbered_checkpoints(paths), paths.recent_checkpoint) if p.is_file()]
    if earlier and not overwrite and resume is None:  # as the classifiers: never restart a run silently
        raise ConfigError(f"checkpoints of an unfinished run in {paths.model_dir} ({', '.join(earlier)}); pass "
                          "--resume to continue it, or --overwrite to start over")
    batch_size = distributed.per_rank_batch(solver.BATCH_SIZE.TRAIN, "SOLVER.BATCH_SIZE.TRAIN")
    layout = data_layout(cfg)
    n_classes = len(class_names(cfg))
    label_dir = training_label_dir(cfg, layout, fully_supervised)
    if info.is_main:
        ensure_writable_dir(paths.model_dir)
        ensure_writable_dir(paths.log_dir)
        remove_leftover_temporaries(paths.model_dir)
    model = build_model(cfg.MODEL, n_classes)
    if resume is None:
        if init and cfg.MODEL.INIT_MODEL:
            load_init(model.base, cfg.MODEL.INIT_MODEL, mean_bgr=mean_bgr(cfg))
        else:
            LOG.info("no init model: training from scratch (ASPP N(0, 0.01), convs PyTorch default)")
    dataset = TrainDataset(
        layout, cfg.DATASET.SPLIT.TRAIN, label_dir, mean_bgr=mean_bgr(cfg), scales=cfg.DATASET.SCALES,
        crop_size=cfg.IMAGE.SIZE.TRAIN, n_classes=n_classes, base_size=cfg.IMAGE.SIZE.BASE,
        ignore_label=cfg.DATASET.IGNORE_LABEL,
    )
    LOG.info("%d training images of %s, %d classes, %d process(es) x batch %d",
             len(dataset), cfg.DATASET.SPLIT.TRAIN, n_classes, info.world_size, batch_size)
    state = None
    if resume is not None:  # refused before the data check's minutes when it cannot continue that run
        path = latest_checkpoint(paths) if str(resume) == RESUME_LATEST else Path(resume)
        path = distributed.broadcast_from_main(path)
        state = read_resume_state(path, cfg)
    if check_data:
        check_split(layout, cfg.DATASET.SPLIT.TRAIN, dataset.ids, n_classes, "training", label_dir)
    if info.is_main and overwrite and resume is None:  # only once the new run's init and data are in order
        removed = remove_earlier_checkpoints(paths)
        if removed:
            LOG.info("--overwrite: deleted %d checkpoint(s) of an earlier run in %s", len(removed), paths.model_dir)
    seed = distributed.broadcast_from_main(int(torch.randint(SEED_RANGE, ())))

    model.train()
    freeze_bn(model)
    model.to(device)
    precision = Precision.for_device(solver.AMP, cfg.MODEL.CHANNELS_LAST, device)
    precision.prepare_model(model)
    optimizer = build_optimizer(model, solver)
    scaler = precision.grad_scaler()
    start = 0
    if state is not None:
        apply_resume_state(model, optimizer, path, state, scaler)
        start = int(state["step"])
        seed = int(state.get("data_seed", seed))
    position = state.get("stream", {}) if state is not None else {}
    dataset.seed = seed
    stream = BatchStream(dataset, batch_size, cfg.DATALOADER.NUM_WORKERS, device, seed, cfg.DATASET.IGNORE_LABEL,
                         epoch=position.get("epoch", 0), batch=position.get("batch", 0))
    LOG.info("%d batches per pass over the data (the last one partial: %s)", stream.batches_per_pass,
             "yes" if len(dataset) % solver.BATCH_SIZE.TRAIN else "no")
    net = model
    if info.enabled:  # BN is frozen: no buffers change, none need broadcasting
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    if state is not None and "rng" in state:
        restore_rank_rng(state["rng"], device)  # after every start-up draw (model init, data seed)

    writer = None
    if info.is_main:
        atomic_write_text(paths.model_dir / "config.yaml", to_yaml(cfg))
        # purge_step drops what the interrupted run logged after its checkpoint
        writer = SummaryWriter(str(paths.log_dir), purge_step=start + 1 if state is not None else None)
    val_monitor = ValMonitor.from_config(cfg, layout, class_names(cfg), device)  # SOLVER.ITER_VAL, off by default
    reduce_counts = global_count_reducer(info)
    recent: deque[torch.Tensor] = deque(maxlen=solver.AVERAGE_LOSS)
    for value in loss_window((state or {}).get("recent_losses", []), info.rank, info.world_size):
        recent.append(torch.tensor(value, dtype=torch.float32, device=device))
    cadence = CheckpointCadence(solver.ITER_SAVE_RECENT, solver.MINUTES_SAVE_RECENT)
    checkpointer = _Checkpointer(model, optimizer, scaler, cfg, stream, recent, device)
    try:
        bar = tqdm(range(start, solver.ITER_MAX), initial=start, total=solver.ITER_MAX, desc="train",
                   dynamic_ncols=True, disable=not info.is_main)
        for step in bar:
            set_poly_lr(optimizer, step, solver.ITER_MAX, solver.POLY_POWER, solver.LR_DECAY)
            step_loss = train_step(
                net, optimizer, stream, iter_size=solver.ITER_SIZE,
                ignore_label=cfg.DATASET.IGNORE_LABEL, precision=precision, scaler=scaler,
                reduce_counts=reduce_counts,
            )
            done = step + 1
            recent.append(step_loss)  # stays on the device: read back only at logging steps
            if done % solver.ITER_TB == 0 or done == solver.ITER_MAX:
                _log_step(writer, bar, optimizer, recent, done, solver.ITER_TB)
            if val_monitor is not None:
                val_monitor.after_step(model, done, writer)
            if done % solver.ITER_SAVE == 0:
                checkpointer.save(paths.checkpoint(done), done)
                cadence.saved()
            elif done < solver.ITER_MAX and cadence.due(done):
                checkpointer.save(paths.recent_checkpoint, done)
                cadence.saved()
    finally:
        if writer is not None:
            writer.close()
    checkpointer.save(paths.final_checkpoint, solver.ITER_MAX)
    if info.is_main:
        paths.recent_checkpoint.unlink(missing_ok=True)  # the run is complete
    distributed.barrier()  # every rank returns once the final checkpoint exists
    return paths.final_checkpoint


def loss_window(saved: list[list[float]], rank: int, world_size: int) -> list[float]:
    """The logged losses a resumed rank starts its moving average with: its own from the checkpoint's
    per-rank windows, or rank 0's when the run resumes with another process count (the windows are
    all-reduced at each log step, which needs them of one length on every rank)."""
    if len(saved) == world_size:
        return saved[rank]
    return saved[0] if saved else []


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


TRAINING_SETTINGS = (
    "MODEL.NAME", "MODEL.N_BLOCKS", "MODEL.WIDTH_DIV", "MODEL.ATROUS_RATES", "DATASET.ROOT", "DATASET.LABEL_DIR",
    "DATASET.SPLIT.TRAIN", "DATASET.SCALES", "DATASET.IGNORE_LABEL", "DATASET.N_CLASSES", "DATASET.LABELS",
    "IMAGE.MEAN", "IMAGE.SIZE.BASE", "IMAGE.SIZE.TRAIN", "SOLVER.BATCH_SIZE.TRAIN", "SOLVER.ITER_SIZE",
    "SOLVER.LR_DECAY", "SOLVER.LR", "SOLVER.MOMENTUM", "SOLVER.POLY_POWER", "SOLVER.WEIGHT_DECAY", "SOLVER.AMP",
)
"""Config keys a resumed run must share with its checkpoint: what it trains on and how. ``SOLVER.ITER_MAX``
may change (training longer, with a warning: the poly rate then follows the new length), and so may where it
saves, logs and how often, the workers and the CRF."""
PATH_KEYS = ("DATASET.ROOT", "DATASET.LABEL_DIR", "DATASET.LABELS")


def _finished_with_other_settings(paths: RunPaths, cfg: Dict) -> list[str]:
    """How the config of the finished run in ``paths.model_dir`` (its ``config.yaml``) differs from ``cfg``
    in what is trained and how (:func:`changed_training_settings`, and the number of steps); nothing
    for a run without one (an older version, or a downloaded model)."""
    path = paths.model_dir / "config.yaml"
    try:
        before = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        before = None
    if not isinstance(before, dict):
        return []
    changed = changed_training_settings(before, cfg.to_dict())
    steps = (before.get("SOLVER") or {}).get("ITER_MAX")
    if steps is not None and steps != cfg.SOLVER.ITER_MAX:
        changed.append(f"SOLVER.ITER_MAX: {steps!r} -> {cfg.SOLVER.ITER_MAX!r}")
    return changed


def changed_training_settings(before: dict | None, now: dict) -> list[str]:
    """``KEY: old -> new`` for each of :data:`TRAINING_SETTINGS` that differs between the config a checkpoint
    was trained with (``before``; None, an older checkpoint: nothing compared) and ``now``. A key left null
    (resolved later, e.g. the class count) or absent on either side is not compared; paths are compared
    resolved from the current folder."""
    if not before:
        return []

    def get(cfg: dict, key: str):
        for part in key.split("."):
            if not isinstance(cfg, dict) or part not in cfg:
                return None
            cfg = cfg[part]
        return cfg

    changed = []
    for key in TRAINING_SETTINGS:
        old, new = get(before, key), get(now, key)
        if old is None or new is None:
            continue
        if key in PATH_KEYS:
            old, new = str(Path(old).resolve()), str(Path(new).resolve())
        if old != new:
            changed.append(f"{key}: {old!r} -> {new!r}")
    return changed


def read_resume_state(path: Path, cfg: Dict) -> dict:
    """The training checkpoint ``--resume`` continues from, once it is known that this config can continue it.

    Refused (naming the remedy): a missing file, a weights-only file, a run trained with other training
    settings (:func:`changed_training_settings`), or one already past ``SOLVER.ITER_MAX``; a longer
    ``SOLVER.ITER_MAX`` is taken with a warning (the poly rate follows the new length). A checkpoint without a
    stream position (an older version) resumes at the start of a pass, with a warning: the data order then
    differs from the interrupted run's.
    """
    if not path.is_file():
        raise NsromError(f"--resume: checkpoint not found: {path}")
    state = load_state(path, "training checkpoint")
    if "optimizer" not in state or "step" not in state:
        raise NsromError(f"--resume: {path} is a weights-only file; resuming needs a training checkpoint of main.py train")
    if changed := changed_training_settings(state.get("config"), cfg.to_dict()):
        raise StaleOutputError(
            f"--resume: {path} was trained with other settings ({'; '.join(changed)}); resume with the ones "
            f"it was trained with (its run's config: -c {path.parent / 'config.yaml'}), or --overwrite "
            "to start over with these")
    iter_max = cfg.SOLVER.ITER_MAX
    if iter_max < int(state["step"]):
        raise ConfigError(f"--resume: {path} is at step {state['step']}, past SOLVER.ITER_MAX {iter_max}; "
                          "give at least that many steps, or --overwrite to start over")
    trained_for = ((state.get("config") or {}).get("SOLVER") or {}).get("ITER_MAX")
    if trained_for is not None and trained_for != iter_max:
        LOG.warning("--resume with SOLVER.ITER_MAX %d instead of the run's %d: the poly rate follows the new "
                    "length from step %d on", iter_max, trained_for, int(state["step"]))
    if "stream" not in state:
        LOG.warning("%s predates exact resume: the data order restarts at a new pass", path)
    return state


def apply_resume_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    path: Path,
    state: dict,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Restore model, optimiser and loss scale from a checkpoint of :func:`read_resume_state`."""
    try:
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError) as exc:  # another network's sizes or parameter groups
        raise NsromError(
            f"--resume: {path} was trained with another model ({str(exc).splitlines()[0]} ...); resume with "
            "the MODEL.N_BLOCKS, MODEL.WIDTH_DIV and DATASET.N_CLASSES it was trained with, or start "
            "over without --resume"
        ) from None
    if scaler is not None and scaler.is_enabled() and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    LOG.info("resumed from %s at step %d", path, state["step"])
