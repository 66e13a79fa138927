"""Training / export samples of stages 1, 1b and 2: images, image-level labels, IAM targets.

Samples come from a dataset root in the layout of :mod:`nsrom.data`
(``--data-root``, the list of the dataset's training split by default,
labels from ``train_cls.txt`` or the masks) or, as in the original code, from
an image folder plus a ``train_cls.txt``-style list (``--img-dir``, ``--list``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from nsrom import distributed
from nsrom.cam import class_map_name
from nsrom.data import (
    DataLayout, find_file, has_class_tokens, label_vector, list_image_labels, missing_list_error, read_ids,
    resolve_num_classes,
)
from nsrom.data_check import check_class_list, check_images
from nsrom.dataset_settings import AUTO_IMAGE_EXTS
from nsrom.errors import ConfigError, DataError
from nsrom.files import read_json
from nsrom.images import read_grey, read_rgb

from .run_layout import TRAIN_ARGS


@dataclass(frozen=True)
class Sample:
    """One training image and its 0-based foreground classes."""

    image_id: str
    image_path: Path
    classes: tuple[int, ...]


def _image_paths(ids: list[str], layout: DataLayout | None, img_dir: str | Path | None) -> list[Path]:
    """The image of each id: the layout's, or the first existing ``img_dir/<id><ext>``."""
    if img_dir is None:
        return [layout.image_path(i) for i in ids]
    exts = layout.settings.image_exts if layout is not None else AUTO_IMAGE_EXTS
    return [find_file([Path(img_dir)], i, exts) for i in ids]


def check_inputs(list_path: Path, cls_path: Path | None, images: list[tuple[str, Path]], num_classes: int,
                 workers: int, root: Path) -> None:
    """Before training or export: every image of the list decodes and the class indices of ``cls_path``
    (the ``train_cls.txt``-format file the labels come from, if any) are in range.

    Raises one :class:`DataError` listing every problem (see :mod:`nsrom.data_check`).
    """
    problems = check_class_list(cls_path, num_classes) if cls_path is not None else []
    report = check_images(root, images, workers=workers)
    report.problems[:0] = problems
    report.raise_for(None, f"training / export on {list_path.name}")


def load_samples(
    data_root: str | Path | None,
    list_path: str | Path | None = None,
    img_dir: str | Path | None = None,
    num_classes: int | None = None,
    layout_overrides: Mapping[str, Any] | None = None,
    check_workers: int | None = None,
) -> tuple[list[Sample], int]:
    """Samples of the image list and the number of classes C.

    ``list_path`` defaults to the list of ROOT's training split. A list with
    class indices after the id (``train_cls.txt`` format) gives the labels
    itself; a plain id list takes them from ROOT's ``train_cls.txt`` or, for
    ids it does not list, the masks. ``layout_overrides`` are the dataset
    settings given as flags (``--image-ext`` ...; see nsrom.dataset_settings).
    With ``check_workers``, :func:`check_inputs` runs first (on rank 0 only,
    with that many processes).
    """
    layout = DataLayout(data_root, **(layout_overrides or {})) if data_root is not None else None
    num_classes = resolve_num_classes(num_classes, layout)
    if list_path is None:
        if layout is None:
            raise ConfigError("give --data-root ROOT (VOC layout) or --list FILE with --img-dir DIR")
        list_path = layout.list_path(layout.train_split)
    list_path = Path(list_path)
    if not list_path.is_file():
        raise missing_list_error(list_path)
    if img_dir is None and layout is None:
        raise ConfigError("--img-dir DIR is needed without --data-root")
    if layout is None and not has_class_tokens(list_path):
        list_image_labels(list_path, num_classes, layout)  # refused at once: a plain list takes its classes from ROOT
    if check_workers is not None:
        cls_path = list_path if has_class_tokens(list_path) else layout.cls_list_path if layout is not None else None
        cls_path = cls_path if cls_path is not None and cls_path.is_file() else None
        ids = read_ids(list_path)
        images = list(zip(ids, _image_paths(ids, layout, img_dir)))
        root = layout.root if layout is not None else Path(img_dir).parent
        distributed.run_on_main(lambda: check_inputs(list_path, cls_path, images, num_classes, check_workers, root))
    labels = list_image_labels(list_path, num_classes, layout)
    ids = list(labels)
    samples = [Sample(i, path, tuple(labels[i])) for i, path in zip(ids, _image_paths(ids, layout, img_dir))]
    missing = [str(s.image_path) for s in samples if not s.image_path.is_file()]
    if missing:
        raise DataError(f"{len(missing)} of {len(samples)} images listed in {list_path} are missing, e.g. {missing[:3]}")
    return samples, num_classes


class ImageLabelDataset(Dataset):
    """Items ``{"id", "image" (3, S, S), "label" (C,), "size" (H, W) of the original image}``.

    With ``seed`` set (the trainer sets it), the colour jitter of item ``index``
    in epoch ``epoch`` draws from a generator seeded by ``(seed, epoch, index)``,
    so it depends neither on DataLoader workers nor on the number of DDP processes.
    """

    def __init__(self, samples: list[Sample], num_classes: int, transform: Callable[..., torch.Tensor]):
        self.samples = samples
        self.num_classes = num_classes
        self.transform = transform
        self.seed: int | None = None
        self.epoch = 0

    def _transform(self, img: Image.Image, index: int) -> torch.Tensor:
        if self.seed is None:
            return self.transform(img)
        state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1, dtype=np.uint64)[0]
        return self.transform(img, generator=torch.Generator().manual_seed(int(state)))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        rgb = read_rgb(sample.image_path)
        return {
            "id": sample.image_id,
            "image": self._transform(Image.fromarray(rgb), index),
            "label": torch.from_numpy(label_vector(sample.classes, self.num_classes)),
            "size": torch.tensor(rgb.shape[:2]),
        }


def _no_accumulation_hint(accu_dir: Path) -> str:
    """Why a finished stage-1 run stored no maps, from its ``train_args.json`` next to ``accu_dir``: it ran no
    more epochs than its ``--accu-start-epoch`` (docs/method.md, stage 1); else nothing."""
    path = Path(accu_dir).parent / TRAIN_ARGS
    try:
        args = read_json(path) if path.is_file() else {}
    except DataError:
        return ""
    epochs, start = args.get("epochs"), args.get("accu_start_epoch")
    if isinstance(epochs, int) and isinstance(start, int) and epochs <= start:
        return (f". {path} says that stage 1 ran {epochs} epoch(s) and accumulates from epoch {start} (0-based) on, "
                f"so it stored no map: train it for more than {start} epoch(s), or with --accu-start-epoch 0")
    return ""


class IAMDataset(ImageLabelDataset):
    """Stage-2 items: also ``"target"`` (C, s, s), the accumulated maps / 255, zero for absent classes."""

    def __init__(
        self,
        samples: list[Sample],
        num_classes: int,
        transform: Callable[[Image.Image], torch.Tensor],
        accu_dir: str | Path,
        map_size: int,
    ):
        super().__init__(samples, num_classes, transform)
        self.accu_dir = Path(accu_dir)
        self.map_size = map_size
        missing = [
            class_map_name(s.image_id, c) for s in samples for c in s.classes
            if not (self.accu_dir / class_map_name(s.image_id, c)).is_file()
        ]
        if missing:
            raise DataError(
                f"{len(missing)} accumulated attention maps are missing from {self.accu_dir}, e.g. "
                f"{missing[:3]}; run stage 1 (train.sh) to the end, or point --accu-dir at its accu_att dir"
                + _no_accumulation_hint(self.accu_dir)
            )

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        sample = self.samples[index]
        target = np.zeros((self.num_classes, self.map_size, self.map_size), dtype=np.float32)
        for c in sample.classes:
            path = self.accu_dir / class_map_name(sample.image_id, c)
            att = read_grey(path, "accumulated attention map")
            if att.shape != (self.map_size, self.map_size):
                raise DataError(
                    f"{path} is {att.shape[0]}x{att.shape[1]}, but the IAM output is "
                    f"{self.map_size}x{self.map_size}; use the stage-1 --input-size"
                )
            target[c] = att / 255.0
        item["target"] = torch.from_numpy(target)
        return item
