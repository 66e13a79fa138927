"""VOC-layout segmentation datasets for training and evaluation (docs/method.md, stages 4, 5, 7).

Training labels come from ``DATASET.LABEL_DIR/<id>.png`` (stage 3 pseudo labels
or stage 6 masked labels); the pixel ground truth (the dataset's mask folder,
``ROOT/SegmentationClassAug`` or ``SegmentationClass`` for VOC) is read only by
the evaluation dataset, for scoring.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from nsrom.classes import IGNORE_INDEX
from nsrom.data import DataLayout, missing_list_error
from nsrom.errors import DataError
from nsrom.images import read_label, read_rgb

from .transforms import augment, to_network_input

LOG = logging.getLogger(__name__)


def read_bgr(path: str | Path) -> np.ndarray:
    """An image as ``(H, W, 3)`` float32 BGR, 0..255 (the caffe convention)."""
    return np.ascontiguousarray(read_rgb(path)[:, :, ::-1], dtype=np.float32)



SPLIT_CHOICE = "--split (or DATASET.SPLIT.TRAIN / DATASET.SPLIT.VAL)"
"""How a segmentation command names its image list."""


def split_ids(layout: DataLayout, split: str) -> list[str]:
    """The ids of ``split``; a list that does not exist is a DataError naming the lists there and the
    segmentation commands' way to choose one."""
    if not layout.list_path(split).is_file():
        raise missing_list_error(layout.list_path(split), choose=SPLIT_CHOICE)
    return layout.ids(split)

class TrainDataset(Dataset):
    """Augmented ``(id, image (3, S, S) float32, label (S, S) int64)`` for training.

    Ids whose label file is missing (stage 3 skips images without a saliency
    map) are left out with a warning; none left is a :class:`DataError`.

    With ``seed`` set (the trainer sets it), the augmentation of item ``index``
    in pass ``epoch`` draws from its own generator seeded by
    ``(seed, epoch, index)``: it then depends neither on the DataLoader workers
    nor on how many DDP processes share the data.
    """

    def __init__(
        self,
        layout: DataLayout,
        split: str,
        label_dir: Path,
        *,
        mean_bgr: Sequence[float],
        scales: Sequence[float],
        crop_size: int,
        n_classes: int,
        base_size: int | None = None,
        ignore_label: int = IGNORE_INDEX,
    ):
        self.layout, self.label_dir, self.n_classes = layout, Path(label_dir), n_classes
        if not self.label_dir.is_dir():
            raise DataError(f"training label dir not found: {self.label_dir} (DATASET.LABEL_DIR)")
        ids = split_ids(layout, split)
        self.ids = [i for i in ids if (self.label_dir / f"{i}.png").is_file()]
        missing = len(ids) - len(self.ids)
        if missing:
            LOG.warning(
                "%d of %d %s images have no label in %s; training without them",
                missing, len(ids), split, self.label_dir,
            )
        if not self.ids:
            raise DataError(f"no label PNG of split {split} found in {self.label_dir} (DATASET.LABEL_DIR)")
        self.mean_bgr, self.scales, self.crop_size = list(mean_bgr), list(scales), crop_size
        self.base_size, self.ignore_label = base_size, ignore_label
        self.rng = random.Random()
        self.seed: int | None = None
        self.epoch = 0

    def item_rng(self, index: int) -> random.Random:
        """The random stream of one item: per (seed, epoch, index) when seeded, else the shared one."""
        if self.seed is None:
            return self.rng
        return random.Random(f"{self.seed}:{self.epoch}:{index}")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        image_id = self.ids[index]
        image = read_bgr(self.layout.image_path(image_id))
        label_path = self.label_dir / f"{image_id}.png"
        label = read_label(label_path, "training label")
        if label.shape != image.shape[:2]:
            raise DataError(f"label {label_path} is {label.shape}, its image {image.shape[:2]}")
        bad = np.unique(label[(label >= self.n_classes) & (label != self.ignore_label)])
        if bad.size:
            raise DataError(
                f"label {label_path} has values {bad.tolist()} outside 0..{self.n_classes - 1} and {self.ignore_label}"
            )
        image, label = augment(
            image, label, scales=self.scales, crop_size=self.crop_size, mean_bgr=self.mean_bgr,
            rng=self.item_rng(index), base_size=self.base_size, ignore=self.ignore_label,
        )
        return image_id, to_network_input(image, self.mean_bgr), label.astype(np.int64)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give each worker's dataset its own random stream."""
    info = torch.utils.data.get_worker_info()
    info.dataset.rng.seed(info.seed)


class EvalDataset(Dataset):
    """``(id, image (3, H, W) float32, ground truth (H, W) uint8 or None)`` at native size."""

    def __init__(self, layout: DataLayout, split: str, *, mean_bgr: Sequence[float]):
        self.layout, self.mean_bgr = layout, list(mean_bgr)
        self.ids = split_ids(layout, split)

    def __len__(self) -> int:
        return len(self.ids)

    def ground_truth(self, image_id: str) -> np.ndarray | None:
        """The pixel ground truth, or None when the dataset has no mask ``<id>.png``."""
        path = self.layout.mask_path(image_id)
        return read_label(path, "ground-truth mask") if path.is_file() else None

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray | None]:
        image_id = self.ids[index]
        image = to_network_input(read_bgr(self.layout.image_path(image_id)), self.mean_bgr)
        return image_id, image, self.ground_truth(image_id)
