"""Exact resume of training (stages 1, 2, 4 and 7): the state a run's future depends on.

Besides model, optimiser and loss scale, a checkpoint for an exact resume holds
every random generator of every process, the data order (the sampler's seed
and epoch) and the position inside the epoch. A run resumed from it draws the
same batches with the same augmentation as the run it continues, so a run
killed at any moment and started again ends with bit-identical weights (same
machine, same number of processes; on CUDA only with deterministic kernels).
The pieces both trainers share:

* :func:`seed_all`; :func:`capture_rng` / :func:`restore_rng`, and per rank :func:`gather_rng` /
  :func:`restore_rank_rng`: torch (CPU and the training GPU), numpy and Python
  ``random``;
* :class:`ResumableSampler`: the distributed sampler whose epoch can start part-way;
* :func:`reseed_loader`: a DataLoader's own generator, reseeded per epoch, so that
  iterating a loader never draws from torch's global generator;
* :class:`CheckpointCadence`: the "recent" checkpoint every N steps and/or M minutes;
* :func:`save_state`, :func:`load_state`, :func:`most_advanced`: durable
  checkpoint files and the choice of the one to resume from.
"""

from __future__ import annotations

import io
import itertools
import logging
import pickle
import re
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from . import distributed
from .errors import NsromError
from .files import write_bytes

LOG = logging.getLogger(__name__)

RECENT_CHECKPOINT = "checkpoint_recent.pth"
"""The recent-state checkpoint of a training run: rewritten every N steps / M minutes, deleted at the end."""


# --- random generators -------------------------------------------------------------


def seed_all(seed: int) -> None:
    """Seed torch (CPU and every GPU), numpy and Python ``random`` with ``seed`` (``--seed`` of the trainers).

    Training draws only from torch (model init, the data seed); seeding the
    others too makes the random states stored in checkpoints repeatable.
    """
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)



def capture_rng(device: torch.device | str | None = None) -> dict[str, Any]:
    """This process's random states: torch CPU, the CUDA ``device``'s (when given), numpy, Python.

    Everything is stored as tensors and plain numbers, so the checkpoint loads
    with ``torch.load(weights_only=True)``.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device | str | None = None) -> None:
    """Set this process's random states to ``state`` (from :func:`capture_rng`)."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"].tolist()), python_state["gauss_next"]))
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_rng(device: torch.device | str | None = None) -> list[dict[str, Any]] | None:
    """Every rank's :func:`capture_rng` in rank order on rank 0 (``None`` elsewhere); a collective."""
    return distributed.gather_to_main(capture_rng(device))


def restore_rank_rng(states: Sequence[dict[str, Any]], device: torch.device | str | None = None) -> None:
    """Restore this rank's entry of :func:`gather_rng`'s list.

    With more processes than when the checkpoint was written, the extra ranks
    take rank 0's states (the run then continues, but not bit-identically).
    """
    rank = distributed.current().rank
    if len(states) != distributed.current().world_size:
        LOG.warning("checkpoint written by %d process(es), resumed with %d: the run continues, "
                    "but not bit-identically", len(states), distributed.current().world_size)
    restore_rng(states[rank] if rank < len(states) else states[0], device)


# --- data order --------------------------------------------------------------------


class ResumableSampler(DistributedSampler):
    """The shuffling distributed sampler (padded to split evenly over the ranks) whose epoch can start part-way.

    The order of epoch ``e`` is a permutation seeded by ``(seed, e)``, so it is
    a function of the seed and the epoch alone. ``set_epoch(e, start)`` skips
    this rank's first ``start`` samples of that order: a resumed run continues
    the interrupted epoch without running the batches it had consumed. In a
    single process it is a plain seeded shuffle.
    """

    def __init__(self, dataset: Dataset, seed: int):
        info = distributed.current()
        super().__init__(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed,
                         drop_last=False)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)


def reseed_loader(generator: torch.Generator, seed: int, epoch: int) -> None:
    """Seed a DataLoader's own ``generator`` for ``epoch`` (its workers' seeds then depend on seed and epoch only).

    Without its own generator a DataLoader draws its workers' base seed from
    torch's global generator at every ``iter()``, which would make the global
    state depend on how many epochs this process has started.
    """
    mixed = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    generator.manual_seed(int(mixed))


# --- when to write the recent checkpoint -------------------------------------------------


class CheckpointCadence:
    """Decides when the recent-state checkpoint is due: every ``every_steps`` steps and/or ``every_minutes``.

    0 turns a criterion off. Under DDP rank 0's clock decides and every rank
    follows (checkpoints gather state from every rank), so a timed checkpoint
    costs one small broadcast per step.
    """

    def __init__(self, every_steps: int = 0, every_minutes: float = 0.0, clock: Callable[[], float] = time.monotonic):
        if every_steps < 0 or every_minutes < 0:
            raise ValueError("checkpoint cadence must be >= 0 (0 = off)")
        self.every_steps = int(every_steps)
        self.every_minutes = float(every_minutes)
        self.clock = clock
        self._last = clock()

    def due(self, step: int) -> bool:
        """Whether a recent checkpoint is due after ``step`` completed steps."""
        by_steps = self.every_steps > 0 and step % self.every_steps == 0
        by_time = False
        if self.every_minutes > 0:
            by_time = self.clock() - self._last >= 60.0 * self.every_minutes
            # on the gloo group: under NCCL a broadcast each step would wait for the GPU every step
            by_time = bool(distributed.broadcast_from_main(by_time, group=distributed.host_group()))
        return by_steps or by_time

    def saved(self) -> None:
        """A checkpoint was just written (recent or another): the minutes count from now."""
        self._last = self.clock()


# --- checkpoint files --------------------------------------------------------------


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically and durably (a full disk is an :class:`~nsrom.errors.OutputError`).

    The file is serialised in memory first, so a write failure is an ordinary
    ``OSError`` with its reason, not a torch error about a zip position.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getbuffer())


def load_torch_file(path: str | Path, what: str, missing_help: str = "", mmap: bool = False) -> Any:
    """``torch.load`` of a weight or checkpoint file onto the CPU (tensors only, ``weights_only``).

    A missing file is an :class:`NsromError` "``what`` not found: path" followed by
    ``missing_help`` (what to download, which flag skips it); a corrupt or foreign
    file one that names it. The one reader of .pth files for every stage.
    """
    path = Path(path)
    if not path.is_file():
        raise NsromError(f"{what} not found: {path}" + (f"; {missing_help}" if missing_help else ""))
    try:
        return torch.load(path, map_location="cpu", weights_only=True, **({"mmap": True} if mmap else {}))
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise NsromError(f"cannot read {what} {path}: not a PyTorch file, or a damaged one "
                             f"({str(exc).splitlines()[0][:200]})") from None
        raise NsromError(f"cannot read {what} {path}: it holds Python objects besides tensors ({found.group(1)}), "
                         "which are not loaded (they could run code); a file you trust, made by other code, loads "
                         "once its tensors alone are saved: torch.save(model.state_dict(), PATH)") from None
    except Exception as exc:  # torch raises several types for a corrupt or foreign file: name it
        raise NsromError(f"cannot read {what} {path}: not a PyTorch file, or a damaged one "
                         f"({type(exc).__name__}: {exc})") from None


def state_dict_mismatch(
    state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str], list[str]]:
    """How a loaded state dict differs from a model's own (``model.state_dict()``): the names it lacks, the
    names the model lacks, and the names whose shapes differ, in the model's order where both have them."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    return missing, unexpected, shapes


def load_state(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """A checkpoint written by :func:`save_state` (tensors on the CPU)."""
    path = Path(path)
    state = load_torch_file(path, what)
    if not isinstance(state, dict):
        raise NsromError(f"{what} {path} is not a training checkpoint (expected a dict)")
    return state


def checkpoint_step(path: str | Path) -> int:
    """The ``step`` recorded in a checkpoint (read without loading its tensors)."""
    state = load_torch_file(path, "checkpoint", mmap=True)
    if not isinstance(state, dict) or "step" not in state:
        raise NsromError(f"{path} holds no training step; it is not a training checkpoint of this project")
    return int(state["step"])


def most_advanced(paths: Sequence[str | Path]) -> Path | None:
    """The existing checkpoint of ``paths`` with the highest step (earlier in ``paths`` wins a tie), or None."""
    best: tuple[int, int, Path] | None = None
    for order, path in enumerate(Path(p) for p in paths):
        if path.is_file():
            key = (checkpoint_step(path), -order, path)
            best = key if best is None or key[:2] > best[:2] else best
    return best[2] if best is not None else None
