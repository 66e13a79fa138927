"""The state of a classifier's training run on disk: whether earlier outputs allow it to start,
resume or be skipped (``prepare_run``), the settings it recorded (``changed_settings``), where it
stands (``Position``), and the checkpoints that hold its whole state (``Saver``, ``restore``;
nsrom.training_state)."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nsrom import distributed
from nsrom.errors import ConfigError, DataError
from nsrom.files import ensure_writable_dir, read_json, remove_leftover_temporaries
from nsrom.provenance import StaleOutputError
from nsrom.training_state import gather_rng, load_state, most_advanced, save_state

from .attention_accumulation import AttentionAccumulator, records_to_state
from .models.pretrained import load_model_state
from .run_layout import RunDirs

log = logging.getLogger("classification.training")  # one log name for the whole training run

def args_record(args: argparse.Namespace) -> dict:
    """The command line as ``train_args.json`` records it (paths as text)."""
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
    now = json.loads(json.dumps(args_record(args)))  # as the record holds it (tuples as lists)

    def same(key: str) -> bool:
        old, new = before[key], now[key]
        if old is None or new is None or old == new:
            return True
        return key in PATH_SETTINGS and Path(old).resolve() == Path(new).resolve()

    return [f"{key}: {before[key]!r} -> {now[key]!r}" for key in sorted(now)
            if key in before and key not in NOT_SETTINGS and not same(key)]


def prepare_run(args: argparse.Namespace, dirs: RunDirs, accumulator: AttentionAccumulator | None) -> bool:
    """Check earlier outputs; returns False when the run is already complete (skip).

    A finished run (final checkpoint) is skipped unless ``--overwrite``, and refused
    (:class:`StaleOutputError`) when it was trained with other settings than this
    command line's; a run with partial outputs needs ``--resume`` (continue) or
    ``--overwrite`` (delete them and start over).
    """
    if dirs.checkpoint_final.is_file() and not args.overwrite:
        if changed := changed_settings(args, dirs):  # its model is not what this command asks for
            raise StaleOutputError(
                f"{dirs.checkpoint_final} was trained with other settings ({'; '.join(changed)}); --overwrite "
                f"trains again with these (replacing that run), or another --exp keeps both")
        log.info("%s exists: training already done (use --overwrite to train again)", dirs.checkpoint_final)
        return False
    ensure_writable_dir(dirs.model)
    ensure_writable_dir(dirs.logs)
    remove_leftover_temporaries(dirs.model)
    if accumulator is not None:
        remove_leftover_temporaries(accumulator.out_dir)
    checkpoints = (dirs.checkpoint_last, dirs.checkpoint_recent)
    resuming = args.resume and any(p.is_file() for p in checkpoints)
    if resuming and (changed := changed_settings(args, dirs)):  # the rest of a run must be that run
        raise StaleOutputError(f"--resume: the run in {dirs.root} was started with other settings "
                               f"({'; '.join(changed)}); resume with those, or --overwrite to start over with these")
    if accumulator is not None:
        ensure_writable_dir(accumulator.out_dir)  # not only when the first maps are written, epochs later
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


def resume_from(args: argparse.Namespace, dirs: RunDirs) -> Path | None:
    """The checkpoint ``--resume`` continues from: the most advanced of checkpoint_last / checkpoint_recent."""
    if not args.resume:
        return None
    return most_advanced([dirs.checkpoint_last, dirs.checkpoint_recent])


def restore(
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


class Saver:
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
