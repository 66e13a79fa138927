"""Online attention accumulation (OAA), docs/method.md, stage 1.

The training loop hands every batch's CAMs to :class:`AttentionAccumulator`
(the model's ``forward`` knows nothing about it), which collects them
(:meth:`~AttentionAccumulator.prepare`) and applies the rules at the end of the
epoch (:meth:`~AttentionAccumulator.apply`). For each (image, present class) the
accumulator keeps one 8-bit map at CAM resolution in memory, fuses new maps
into it by element-wise maximum, and at the end of each epoch writes
the maps that changed as grey PNGs ``<id>_<c>.png`` (0-based class) into its
directory, atomically. A resumed run reloads them from there, and a mid-epoch
checkpoint holds the records of the running epoch (:func:`records_to_state`).
Applying an epoch's records twice gives the maps of applying them once (the
maximum is idempotent and each key has one record per epoch), so a run killed
while an epoch's maps were being written resumes to the same maps.

An update is two halves: :meth:`AttentionAccumulator.prepare` turns a batch
into ``(id, class, 8-bit map, probability)`` records and :meth:`apply` runs the
rules on them. Under DDP each rank prepares the records of its own samples
(padded duplicates of the distributed sampler left out), rank 0 gathers them
and applies them: each (image, class) is then updated from exactly one rank,
once per epoch, as in a single process (the rules of one key never depend on
another key, so the order inside an epoch does not matter).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from nsrom.cam import class_map_name, max_normalize, to_uint8
from nsrom.errors import DataError
from nsrom.images import read_grey, write_grey

log = logging.getLogger(__name__)

START_EPOCH = 1
"""Accumulation starts at epoch 1: the CAMs of epoch 0 are not used."""

PROBABILITY_GATE = 0.1
"""A map is fused only if sigmoid(logit) of its class is at least this (except the last-epoch fill)."""

Key = tuple[str, int]
Update = tuple[Key, np.ndarray, float]
"""``((image id, class), 8-bit map at CAM resolution, sigmoid probability)``."""


def parse_map_name(name: str) -> Key | None:
    """``(id, class)`` of a ``<id>_<c>.png`` name (ids may contain ``_``), else ``None``."""
    stem, _, cls = Path(name).stem.rpartition("_")
    return (stem, int(cls)) if stem and cls.isascii() and cls.isdigit() else None


class AttentionAccumulator:
    """Keeps and fuses the accumulated attention maps of stage 1.

    ``num_epochs`` identifies the last epoch (``num_epochs - 1``), in which an
    (image, class) that has no map yet gets the current one whatever its
    probability.
    """

    def __init__(
        self,
        out_dir: str | Path,
        num_epochs: int,
        start_epoch: int = START_EPOCH,
        gate: float = PROBABILITY_GATE,
    ):
        self.out_dir = Path(out_dir)
        self.num_epochs = num_epochs
        self.start_epoch = start_epoch
        self.gate = gate
        self.maps: dict[Key, np.ndarray] = {}
        self._dirty: set[Key] = set()

    def __len__(self) -> int:
        return len(self.maps)

    def update(
        self,
        epoch: int,
        image_ids: Sequence[str],
        labels: torch.Tensor,
        cams: torch.Tensor,
        logits: torch.Tensor,
    ) -> int:
        """Apply the stage-1 rules to one batch; returns how many maps were stored or fused.

        ``labels`` ``(B, C)`` multi-hot, ``cams`` ``(B, C, h, w)``, ``logits`` ``(B, C)``.
        """
        return self.apply(epoch, self.prepare(epoch, image_ids, labels, cams, logits))

    def prepare(
        self,
        epoch: int,
        image_ids: Sequence[str],
        labels: torch.Tensor,
        cams: torch.Tensor,
        logits: torch.Tensor,
        keep: Sequence[bool] | None = None,
    ) -> list[Update]:
        """The records of every present class of the batch's samples (those with ``keep`` true).

        Each map is the CAM channel with negatives at 0, scaled to 0..255 by its
        max (+1e-8) and rounded half to even to 8 bits (as the original's
        cv2.imwrite of the float map); the probability is sigmoid(logit).
        Nothing before START_EPOCH.
        """
        if epoch < self.start_epoch:
            return []
        present = labels.detach() > 0
        if keep is not None:
            present &= torch.as_tensor(list(keep), dtype=torch.bool, device=present.device)[:, None]
        rows, cols = torch.nonzero(present, as_tuple=True)
        if rows.numel() == 0:
            return []
        pairs = list(zip(rows.tolist(), cols.tolist()))
        selected = cams.detach()[rows, cols].float().cpu().numpy()
        probs = torch.sigmoid(logits.detach()[rows, cols].float()).cpu().numpy()
        new_maps = to_uint8(max_normalize(selected), round_nearest=True)
        return [((image_ids[b], c), att, float(prob)) for (b, c), att, prob in zip(pairs, new_maps, probs)]

    def apply(self, epoch: int, updates: Sequence[Update]) -> int:
        """Stage-1 rules on prepared records; returns how many maps were stored or fused.

        Last epoch: an (image, class) without a map takes this one. Otherwise a
        record whose probability is below the gate is skipped; else it is
        stored, or fused with the stored map by element-wise maximum.
        """
        last_epoch = epoch == self.num_epochs - 1
        changed = 0
        for key, att, prob in updates:
            stored = self.maps.get(key)
            if stored is not None and stored.shape != att.shape:
                raise DataError(f"accumulated map {self.out_dir / class_map_name(*key)} is {stored.shape[1]}x"
                                f"{stored.shape[0]}, this run's maps are {att.shape[1]}x{att.shape[0]}: made at "
                                "another --input-size or by another program; --overwrite starts the run over")
            if last_epoch and stored is None:
                self.maps[key] = att
            elif prob < self.gate:
                continue
            elif stored is None:
                self.maps[key] = att
            else:
                self.maps[key] = np.maximum(stored, att)
            self._dirty.add(key)
            changed += 1
        return changed

    def save(self) -> int:
        """Write the maps changed since the last save; returns how many files were written."""
        keys = sorted(self._dirty)
        for key in tqdm(keys, desc="write accumulated maps", leave=False, dynamic_ncols=True):
            write_grey(self.out_dir / class_map_name(*key), self.maps[key])
        self._dirty.clear()
        return len(keys)

    def existing_files(self) -> list[Path]:
        """Map files already in the output dir."""
        if not self.out_dir.is_dir():
            return []
        return [p for p in sorted(self.out_dir.glob("*_*.png")) if parse_map_name(p.name)]

    def load(self) -> int:
        """Read the maps already in the output dir (resume); returns how many."""
        files = self.existing_files()
        for path in tqdm(files, desc="read accumulated maps", leave=False, dynamic_ncols=True):
            key = parse_map_name(path.name)
            self.maps[key] = read_grey(path, "accumulated attention map")
        shapes = Counter(m.shape for m in self.maps.values())
        if len(shapes) > 1:  # one run keeps every map at its CAM size
            usual = shapes.most_common(1)[0][0]
            odd = next(key for key, m in sorted(self.maps.items()) if m.shape != usual)
            raise DataError(f"accumulated map {self.out_dir / class_map_name(*odd)} is {self.maps[odd].shape[1]}x"
                            f"{self.maps[odd].shape[0]}, the others {usual[1]}x{usual[0]}: not a map of this run; "
                            "remove it, or --overwrite to start the run over")
        log.info("accumulator: %d maps loaded from %s", len(files), self.out_dir)
        return len(files)

    def clear_dir(self) -> int:
        """Delete the map files of an earlier run from the output dir."""
        files = self.existing_files()
        for path in files:
            path.unlink()
        return len(files)


def records_to_state(records: Sequence[Update]) -> dict:
    """Pending records of a running epoch as tensors, for a mid-epoch checkpoint (exact resume)."""
    if not records:
        return {"ids": [], "classes": [], "maps": torch.zeros(0, dtype=torch.uint8), "probs": torch.zeros(0)}
    return {
        "ids": [key[0] for key, _, _ in records],
        "classes": [key[1] for key, _, _ in records],
        "maps": torch.from_numpy(np.stack([att for _, att, _ in records])),
        "probs": torch.tensor([prob for _, _, prob in records], dtype=torch.float64),
    }


def records_from_state(state: dict) -> list[Update]:
    """The records of :func:`records_to_state`, as :meth:`AttentionAccumulator.prepare` made them."""
    maps = state["maps"].numpy()
    return [((image_id, int(cls)), maps[i], float(prob))
            for i, (image_id, cls, prob) in enumerate(zip(state["ids"], state["classes"], state["probs"].tolist()))]
