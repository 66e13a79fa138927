"""torch.distributed plumbing for ``torchrun`` launches of the trainers and inference commands.

``torchrun --nproc_per_node N script ...`` sets RANK, WORLD_SIZE and LOCAL_RANK;
:func:`session` then joins the process group (NCCL for CUDA devices, gloo on the
CPU) and leaves it on exit. Without those variables everything here degrades
to the single-process case (rank 0 of 1), so the same code path runs both ways.
The rules of the project on top of it: the global batch is split evenly over
the ranks (:func:`per_rank_batch`), only rank 0 writes checkpoints, logs and
TensorBoard, and inference splits its image list with :func:`shard`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist

from .errors import ConfigError, NsromError
from .logs import setup_logging

LOG = logging.getLogger(__name__)
T = TypeVar("T")

TIMEOUT = timedelta(minutes=30)
"""Collective timeout: long enough for rank 0 to write a checkpoint or a CRF-free epoch of maps."""
WAIT_TIMEOUT = timedelta(hours=24)
"""How long the other ranks wait in :func:`run_on_main` for rank 0's work (a whole CPU-only
pipeline stage such as label generation may run there)."""
_wait_group: Any = None
"""gloo group over every rank with :data:`WAIT_TIMEOUT`, made by the :func:`session` that made the group."""
_host_group: Any = None
"""gloo group over every rank with :data:`TIMEOUT`, for small per-step collectives (:func:`host_group`)."""


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job; ``DistInfo()`` is the single-process case."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """RANK / WORLD_SIZE / LOCAL_RANK as set by torchrun (defaults: one process)."""
    try:
        info = DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise ConfigError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers (launch with torchrun): {exc}") from None
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise ConfigError(f"bad torchrun environment: RANK={info.rank} WORLD_SIZE={info.world_size}")
    return info


def current() -> DistInfo:
    """The initialised process group's view, else the single-process :class:`DistInfo`."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def local_device(device: torch.device | str) -> torch.device:
    """``cuda`` -> ``cuda:<LOCAL_RANK>`` in a distributed run, which (as ``cuda:N`` in one process)
    becomes the current CUDA device too; any other device unchanged."""
    device = torch.device(device)
    if device.type == "cuda" and current().enabled:
        device = torch.device("cuda", current().local_rank)
    if device.type == "cuda" and device.index is not None and torch.cuda.is_available():
        torch.cuda.set_device(device)  # pinned copies and new tensors go there too (a CPU session sets none)
    return device


@contextlib.contextmanager
def session(device: torch.device | str) -> Iterator[DistInfo]:
    """Join the process group described by the environment for the duration of the block.

    NCCL when ``device`` is CUDA, else gloo. Inside an already initialised
    group (a caller's session) it only reports that group; the group is
    destroyed by the session that created it.
    """
    info = from_env()
    if not info.enabled or dist.is_initialized():
        yield current()
        return
    device = torch.device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend, init_method="env://", timeout=TIMEOUT)
    global _wait_group, _host_group
    _wait_group = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)
    _host_group = dist.new_group(backend="gloo", timeout=TIMEOUT)
    LOG.info("rank %d of %d joined the %s process group", info.rank, info.world_size, backend)
    try:
        yield current()
    finally:
        _wait_group = _host_group = None
        dist.destroy_process_group()


def per_rank_batch(global_batch: int, what: str = "batch size") -> int:
    """The per-rank share of a global batch; the global batch must split evenly over the ranks."""
    world = current().world_size
    if global_batch % world:
        raise ConfigError(
            f"{what} {global_batch} does not split over {world} processes; use a multiple of {world} "
            "(the global batch is kept equal to the single-process setting)"
        )
    return global_batch // world


def shard(items: Sequence[T]) -> list[T]:
    """This rank's part of an inference list: every WORLD_SIZE-th item from RANK."""
    info = current()
    return list(items[info.rank::info.world_size])


def _device_kwargs() -> dict:
    if dist.get_backend() == "nccl":
        return {"device_ids": [torch.cuda.current_device()]}
    return {}


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if current().enabled:
        dist.barrier(**_device_kwargs())


def wait_for_all() -> None:
    """:func:`barrier` with :data:`WAIT_TIMEOUT`: for ranks that may wait long for rank 0."""
    if current().enabled:
        dist.barrier(group=_wait_group)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks in place (moved to the backend's device and back); returns it."""
    if not current().enabled:
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        on_gpu = tensor.cuda()
        dist.all_reduce(on_gpu)
        tensor.copy_(on_gpu.cpu())
    else:
        dist.all_reduce(tensor)
    return tensor


def broadcast_from_main(obj: T, group: Any = None) -> T:
    """Rank 0's ``obj`` on every rank (picklable objects); ``group`` defaults to the whole job."""
    if not current().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]


def host_group() -> Any:
    """A gloo group of the job (None outside one), with the job's :data:`TIMEOUT`: a collective of plain
    Python objects on it moves no tensor through the GPU and so does not wait for the GPU's queued work."""
    return _host_group


def gather_to_main(obj: Any) -> list | None:
    """Every rank's ``obj`` in rank order on rank 0, ``None`` elsewhere."""
    info = current()
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def run_on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give its result (or its :class:`NsromError`) to every rank.

    For steps with side effects on shared files (deleting an earlier run's
    outputs) or CPU work done once (scoring, a pipeline stage that is not
    distributed): the other ranks wait (up to :data:`WAIT_TIMEOUT`) instead of
    racing, and a refusal on rank 0 stops every rank with the same message
    instead of leaving them blocked.
    """
    info = current()
    if not info.enabled:
        return fn()
    outcome: tuple[bool, Any] = (True, None)
    if info.is_main:
        try:
            outcome = (True, fn())
        except NsromError as exc:
            outcome = (False, exc)
    ok, value = broadcast_from_main(outcome, group=_wait_group)
    if not ok:
        raise value
    return value


def setup_rank_logging(log_file: str | Path | None = None) -> None:
    """:func:`nsrom.logs.setup_logging` for this rank: rank 0 logs INFO (and to ``log_file``), others warnings only."""
    info = from_env()
    setup_logging(log_file if info.is_main else None, logging.INFO if info.is_main else logging.WARNING)


def real_samples(n_samples: int, batch_index: int, batch_size: int, batch_len: int) -> list[bool]:
    """Which items of this rank's batch are real samples rather than DistributedSampler padding.

    With ``drop_last=False`` the sampler repeats the first indices until the
    list splits evenly; rank ``r`` takes global positions ``r, r + W, ...``, so
    local position ``k`` is global position ``r + W * k`` and padding is every
    position ``>= n_samples``. ``batch_size`` is the per-rank batch of the
    DataLoader (all batches but the last are full).
    """
    info = current()
    first = batch_index * batch_size
    return [info.rank + info.world_size * (first + k) < n_samples for k in range(batch_len)]
