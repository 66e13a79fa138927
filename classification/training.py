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
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from nsrom import distributed
from nsrom.dataset_settings import add_layout_args, layout_overrides
from nsrom.errors import ConfigError, DataError, NsromError
from nsrom.files import ensure_writable_dir, read_json, remove_leftover_temporaries, write_json
from nsrom.precision import AMP_MODES, AMP_OFF, Precision
from nsrom.training_state import (
    CheckpointCadence, ResumableSampler, gather_rng, load_state, most_advanced, reseed_loader, restore_rank_rng,
    save_state, seed_all,
)

from .attention_accumulation import AttentionAccumulator, records_from_state, records_to_state
from .datasets import ImageLabelDataset, Sample, load_samples
from .models.attention_net import AttentionNet, class_logits
from .models.pretrained import load_model_state
from .optim import DEFAULT_DECAY_POINTS, DEFAULT_LR, WEIGHT_DECAY, build_optimizer, lr_at_step, set_epoch_lr, set_lr
from .run_layout import RunDirs
from .transforms import DEFAULT_INPUT_SIZE, HUE

log = logging.getLogger(__name__)

DEFAULT_EPOCHS = 15
DEFAULT_BATCH_SIZE = 5
DEFAULT_CHECKPOINT_MINUTES = 10.0
"""Default cadence of checkpoint_recent.pth: a crash loses at most this much training."""
SEED_RANGE = 2**31 - 1
"""Shuffling/jitter seed drawn from torch's generator (``--seed`` makes runs repeatable)."""

LossFn = Callable[[torch.Tensor, dict], torch.Tensor]
"""``(cam, batch) -> loss``; ``batch`` tensors are already on the training device."""


def int_list(text: str) -> list[int]:
    """Parse ``"5,10"`` (argparse type for --decay-points); empty means none."""
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value
    return parse


non_negative_int = whole_number(0)
"""A whole number >= 0 (argparse type of --warmup-steps and --accu-start-epoch)."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given (``cpu``, ``cuda:1``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here; use --device cpu")
    return device


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Flags that say where the images and image-level labels are (stages 1, 1b, 2)."""
    p.add_argument("--data-root", default=None, help="dataset ROOT in the VOC layout of nsrom.data")
    p.add_argument("--list", "--train-list", dest="list", default=None,
                   help="image list: plain ids or train_cls.txt format "
                        "(default ROOT/ImageSets/Segmentation/<train split>.txt)")
    p.add_argument("--img-dir", default=None, help="image folder (default ROOT/JPEGImages)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="foreground classes C (default from ROOT/labels.txt, else 20)")
    p.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE, help="images are resized to SxS")
    p.add_argument("--runs-dir", default=None, help="folder of the runs (default classification/runs)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--num-workers", type=int, default=4, help="DataLoader worker processes")
    p.add_argument("--check-data", action=argparse.BooleanOptionalAction, default=True,
                   help="decode every listed image and check the class indices before starting "
                        "(tools/check_data.py; the pipeline checks once at its start)")
    add_layout_args(p)


def samples_from_args(args: argparse.Namespace) -> tuple[list[Sample], int]:
    """The samples and class count that the flags of :func:`add_data_args` select."""
    return load_samples(args.data_root, args.list, args.img_dir, args.num_classes, layout_overrides(args),
                        check_workers(args))


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by train.py and train_iam.py; defaults are the paper's."""
    add_data_args(p)
    p.add_argument("--model-dir", "--snapshot-dir", dest="model_dir", default=None,
                   help="checkpoints (default runs/<exp>/model)")
    p.add_argument("--log-dir", default=None, help="log file and TensorBoard (default runs/<exp>/logs)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help="backbone weight lr (x2, x10, x20 for the other groups)")
    p.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY)
    p.add_argument("--decay-points", type=int_list, default=list(DEFAULT_DECAY_POINTS),
                   help="epochs at whose start lr is multiplied by 0.1 (default 5,10)")
    p.add_argument("--warmup-steps", type=non_negative_int, default=0, metavar="N",
                   help="raise the rate linearly over the first N steps (default 0: none, the paper's; "
                        "the CPU demo warms up from its stand-in weights)")
    p.add_argument("--hue-jitter", type=float, default=HUE,
                   help="largest hue shift of the colour jitter, a fraction of the hue circle (default 0.1, the "
                        "paper's); lower it where classes differ by colour, or a shift turns one into another")
    p.add_argument("--width-div", type=int, default=1,
                   help="divide every channel count (CPU demo); ImageNet weights fit 1 only, a narrower net "
                        "needs --no-pretrained or a --pretrained-path file of its width")
    p.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True,
                   help="start the backbone from ImageNet VGG16 weights")
    p.add_argument("--pretrained-path", default=None, help="local vgg16-397923af.pth (default: torch hub cache/URL)")
    p.add_argument("--seed", type=int, default=None, help="torch random seed (default: not set)")
    p.add_argument("--amp", default=AMP_OFF, choices=AMP_MODES,
                   help="mixed precision (fp16 adds loss scaling); off = the paper's float32 (docs/speed.md)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False,
                   help="NHWC memory format for weights and inputs (off by default, see docs/speed.md)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the most advanced of runs/<exp>/model/checkpoint_{last,recent}.pth if present")
    p.add_argument("--checkpoint-every-steps", type=int, default=0, metavar="N",
                   help="also write checkpoint_recent.pth every N steps inside an epoch (0: off)")
    p.add_argument("--checkpoint-every-minutes", type=float, default=DEFAULT_CHECKPOINT_MINUTES, metavar="M",
                   help="... and every M minutes (0: off; default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="start over even if outputs of an earlier run exist")


def check_workers(args: argparse.Namespace) -> int | None:
    """Processes of the input check (``--num-workers``, at least 1), or None with ``--no-check-data``."""
    return max(1, args.num_workers) if getattr(args, "check_data", True) else None


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


def _json_safe(args: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


NOT_SETTINGS = frozenset({"resume", "overwrite", "device", "num_workers", "check_data", "checkpoint_every_steps",
                          "checkpoint_every_minutes", "runs_dir", "model_dir", "log_dir", "accu_dir", "resolved"})
"""Arguments of a training run that do not change what it trains (where it runs, how often it saves, where)."""


PATH_SETTINGS = frozenset({"data_root", "list", "img_dir", "pretrained_path"})
"""Settings that name a file or folder: compared as resolved paths (``data/x`` is ``./data/x``)."""


def changed_settings(args: argparse.Namespace, dirs: RunDirs) -> list[str]:
    """``name: earlier -> now`` for each setting of this command line that differs from the one the run in
    ``dirs`` recorded in its ``train_args.json`` (none when it has no record). A setting left to its default
    on either side (None: resolved later, e.g. the class count from labels.txt) is not compared."""
    try:
        before = read_json(dirs.train_args) if dirs.train_args.is_file() else {}
    except DataError:
        return []
    now = json.loads(json.dumps(_json_safe(args)))  # as the record holds it (tuples as lists)

    def same(key: str) -> bool:
        old, new = before[key], now[key]
        if old is None or new is None or old == new:
            return True
        return key in PATH_SETTINGS and Path(old).resolve() == Path(new).resolve()

    return [f"{key}: {before[key]!r} -> {now[key]!r}" for key in sorted(now)
            if key in before and key not in NOT_SETTINGS and not same(key)]


def prepare_run(args: argparse.Namespace, dirs: RunDirs, accumulator: AttentionAccumulator | None) -> bool:
    """Check earlier outputs; returns False when the run is already complete (skip).

    A finished run (final checkpoint) is skipped unless ``--overwrite``; a run
    with partial outputs needs ``--resume`` (continue) or ``--overwrite``
    (delete them and start over).
    """
    if dirs.checkpoint_final.is_file() and not args.overwrite:
        log.info("%s exists: training already done (use --overwrite to train again)", dirs.checkpoint_final)
        if changed := changed_settings(args, dirs):
            log.warning("the finished run in %s was trained with other settings (%s): they are not applied; "
                        "pass --overwrite to train again with them", dirs.root, "; ".join(changed))
        return False
    ensure_writable_dir(dirs.model)
    ensure_writable_dir(dirs.logs)
    remove_leftover_temporaries(dirs.model)
    if accumulator is not None:
        remove_leftover_temporaries(accumulator.out_dir)
    checkpoints = (dirs.checkpoint_last, dirs.checkpoint_recent)
    resuming = args.resume and any(p.is_file() for p in checkpoints)
    if not resuming:
        leftovers = [p for p in (*checkpoints, dirs.checkpoint_final) if p.is_file()]
        maps = accumulator.existing_files() if accumulator is not None else []
        if (leftovers or maps) and not args.overwrite:
            found = [str(p) for p in leftovers] + ([f"{len(maps)} maps in {accumulator.out_dir}"] if maps else [])
            raise ConfigError(
                f"earlier outputs found ({', '.join(found)}); "
                "pass --resume to continue that run or --overwrite to start over"
            )
        for path in leftovers:
            path.unlink()
        if accumulator is not None and maps:
            log.info("--overwrite: deleted %d maps of an earlier run", accumulator.clear_dir())
    return True


@dataclass
class Position:
    """Where training stands: the next batch to run (``batch`` of ``epoch``), steps done, the epoch's loss sum."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0


def _resume_from(args: argparse.Namespace, dirs: RunDirs) -> Path | None:
    """The checkpoint ``--resume`` continues from: the most advanced of checkpoint_last / checkpoint_recent."""
    if not args.resume:
        return None
    return most_advanced([dirs.checkpoint_last, dirs.checkpoint_recent])


def _restore(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> tuple[dict, Position]:
    """Model, optimiser and loss scale from ``path``; returns the checkpoint and its position.

    A checkpoint of an older version (no position) resumes at the start of
    the epoch after its ``epoch``.
    """
    state = load_state(path, "training checkpoint")
    load_model_state(model, state, str(path))
    optimizer.load_state_dict(state["optimizer"])
    if scaler.is_enabled() and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    if "position" in state:
        position = Position(**state["position"])
    else:
        log.warning("%s predates exact resume: continuing at the next epoch (data order not restored)", path)
        position = Position(epoch=int(state["epoch"]) + 1, step=int(state.get("step", 0)))
    log.info("resumed from %s: epoch %d, batch %d, step %d", path, position.epoch, position.batch, position.step)
    return state, position


def fit(
    args: argparse.Namespace,
    model: AttentionNet,
    dataset: ImageLabelDataset,
    dirs: RunDirs,
    loss_fn: LossFn,
    accumulator: AttentionAccumulator | None = None,
) -> Path:
    """Train ``model`` for ``args.epochs``; returns the final checkpoint.

    The caller runs :func:`prepare_run` first (before loading data and weights).
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
    resume_path = distributed.broadcast_from_main(_resume_from(args, dirs) if info.is_main else None)
    state, position, carried = None, Position(), []
    if resume_path is not None:
        state, position = _restore(resume_path, model, optimizer, scaler)
        data_seed = int(state.get("data_seed", data_seed))
        if accumulator is not None and info.is_main:
            accumulator.load()
            carried = records_from_state(state["records"]) if "records" in state else []
    if info.is_main:
        resolved = {"device": str(device), "num_classes": model.num_classes, "num_images": len(dataset),
                    "model_dir": str(dirs.model), "log_dir": str(dirs.logs), "world_size": info.world_size,
                    "accu_dir": str(accumulator.out_dir) if accumulator is not None else getattr(args, "accu_dir", None)}
        write_json(dirs.train_args, {**_json_safe(args), "resolved": resolved})

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
    saver = _Saver(dirs, model, optimizer, scaler, data_seed, device)
    log.info("%d images, %d steps per epoch, epochs %d..%d, device %s, %d process(es)",
             len(dataset), batches_per_epoch, position.epoch, args.epochs - 1, device, info.world_size)
    try:
        for epoch in range(position.epoch, args.epochs):
            first = position.batch if epoch == position.epoch else 0
            total, count = (position.loss_sum, position.loss_count) if first else (0.0, 0)
            records = carried if epoch == position.epoch else []
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
                                           "num_classes": model.num_classes, "width_div": model.width_div})
        dirs.checkpoint_recent.unlink(missing_ok=True)  # superseded by checkpoint_last
        log.info("final model: %s", dirs.checkpoint_final)
    distributed.barrier()  # every rank returns once the final checkpoint exists
    return dirs.checkpoint_final


class _Saver:
    """Writes checkpoint_last / checkpoint_recent with the whole state of the run (a collective under DDP)."""

    def __init__(self, dirs: RunDirs, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, data_seed: int, device: torch.device):
        self.dirs, self.model, self.optimizer, self.scaler = dirs, model, optimizer, scaler
        self.data_seed, self.device = data_seed, device

    def save(self, path: Path, position: Position, records: list | None) -> None:
        """Save the state at ``position``; ``records``: this rank's pending accumulation records (mid-epoch)."""
        rng = gather_rng(self.device)
        gathered = distributed.gather_to_main(records) if records is not None else None
        if not distributed.current().is_main:
            return
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "epoch": position.epoch - 1, "step": position.step, "position": asdict(position),
                 "data_seed": self.data_seed, "rng": rng}
        if self.scaler.is_enabled():
            state["scaler"] = self.scaler.state_dict()
        if gathered is not None:
            state["records"] = records_to_state([r for rank_records in gathered for r in rank_records])
        save_state(path, state)


def _accumulate(accumulator: AttentionAccumulator, epoch: int, records: list) -> None:
    """Apply one epoch's accumulation records (all ranks' on rank 0) and write the changed maps."""
    gathered = distributed.gather_to_main(records)
    if gathered is None:
        return
    changed = accumulator.apply(epoch, [r for rank_records in gathered for r in rank_records])
    written = accumulator.save()
    log.info("epoch %d: %d accumulated maps updated (%d written), %d in total", epoch, changed, written, len(accumulator))
