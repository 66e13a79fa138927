"""The dataset a segmentation config names, read from it: its layout (``DATASET.ROOT``, ``NAME``), class
names, image mean, training labels, and the data check of a split before a command reads it. Shared by
main.py, trainaug_pred.py and demo.py."""

from __future__ import annotations

import logging
from pathlib import Path

from addict import Dict

from nsrom import distributed
from nsrom.classes import read_class_names, load_class_names
from nsrom.data import DataLayout
from nsrom.data_check import DEFAULT_WORKERS, FileJob, run_checks
from nsrom.errors import ConfigError

from .utils.config import dataset_overrides

LOG = logging.getLogger(__name__)

DATASETS: dict[str, type[DataLayout]] = {
    "vocaug": DataLayout,
    "voc12": DataLayout,
    "synthetic": DataLayout,
}
"""``DATASET.NAME`` -> data layout class (all follow nsrom.data's VOC layout contract)."""

GROUND_TRUTH_PREFIX = "SegmentationClass"
"""Label dirs whose name starts with this hold pixel ground truth (SegmentationClass, ...Aug)."""


def data_layout(cfg: Dict) -> DataLayout:
    """The dataset root of ``DATASET.ROOT`` as a layout (``DATASET.NAME`` must be registered).

    ``ROOT/dataset.yaml`` gives the folder names, image extension and split
    names; ``DATASET.IMAGE_EXT``, ``MASK_DIR`` and ``SPLIT.TRAIN/VAL`` override it when set.
    """
    name = cfg.DATASET.NAME
    if name not in DATASETS:
        raise ConfigError(f"DATASET.NAME {name!r} unknown; choose one of {', '.join(DATASETS)}")
    layout = DATASETS[name](cfg.DATASET.ROOT, **dataset_overrides(cfg.to_dict()))
    if not layout.root.is_dir():
        raise ConfigError(
            f"dataset root not found: {layout.root} (DATASET.ROOT); it must hold the images, masks and "
            "ImageSets/Segmentation/<split>.txt (README, 'Data layout'); set it with --set DATASET.ROOT=PATH"
        )
    return layout


def class_names(cfg: Dict) -> list[str]:
    """Class names, background first: DATASET.LABELS, else ROOT/labels.txt, else the VOC classes.

    DATASET.N_CLASSES (when not null) must equal their number.
    """
    labels = cfg.DATASET.LABELS
    if labels and not Path(labels).is_file():
        raise ConfigError(f"DATASET.LABELS: class list {labels} not found ('<index> <name>' per line, background "
                          "first; null reads ROOT/labels.txt)")
    names = read_class_names(labels) if labels else load_class_names(cfg.DATASET.ROOT)
    source = labels or (Path(cfg.DATASET.ROOT) / "labels.txt")
    n_classes = cfg.DATASET.N_CLASSES
    if n_classes is not None and n_classes != len(names):
        raise ConfigError(
            f"DATASET.N_CLASSES is {n_classes} but the class list ({source}, or the 21 VOC classes "
            f"when it is absent) has {len(names)} entries with background; fix one of them "
            "(N_CLASSES: null takes the class list's count)"
        )
    return names


def mean_bgr(cfg: Dict) -> list[float]:
    """IMAGE.MEAN in B, G, R order."""
    return [float(cfg.IMAGE.MEAN.B), float(cfg.IMAGE.MEAN.G), float(cfg.IMAGE.MEAN.R)]


def training_label_dir(cfg: Dict, layout: DataLayout, fully_supervised: bool) -> Path:
    """Where training labels come from, with the stage-4 guard against ground truth.

    NSROM trains on pseudo labels (stage 3) or masked labels (stage 6): a label
    dir named ``SegmentationClass*`` (or one of the dataset's mask dirs) is refused
    unless ``fully_supervised``; with that flag and no LABEL_DIR the ground truth is used.
    """
    label_dir = cfg.DATASET.LABEL_DIR
    if not label_dir:
        if not fully_supervised:
            raise ConfigError(
                "DATASET.LABEL_DIR is not set: point it at the pseudo labels (stage 3) or the masked "
                "labels (stage 6), e.g. --set DATASET.LABEL_DIR=PATH (or pass --fully-supervised "
                "to train on the ground truth)"
            )
        label_dir = layout.mask_dir
    label_dir = Path(label_dir)
    is_ground_truth = label_dir.name.startswith(GROUND_TRUTH_PREFIX) or (
        label_dir.exists() and any(d.exists() and label_dir.resolve() == d.resolve() for d in layout.mask_dirs)
    )
    if is_ground_truth and not fully_supervised:
        raise ConfigError(
            f"DATASET.LABEL_DIR {label_dir} holds pixel ground truth; weakly supervised training must "
            "use pseudo or masked labels. Pass --fully-supervised if you mean to train on it"
        )
    kind = "ground truth, fully supervised" if is_ground_truth else "pseudo/masked labels"
    LOG.info("training labels: %s (%s)", label_dir, kind)
    return label_dir


MAX_SHOWN_WARNINGS = 5
"""Warnings of the data check a segmentation command logs before it counts the rest."""


def check_split(
    layout: DataLayout, split: str, ids: list[str], num_classes: int, what: str, label_dir: Path | None = None
) -> None:
    """Before a stage reads ``split``: every image decodes, and its mask (or training label in ``label_dir``)
    is an 8-bit class-index PNG of the image's size with values below ``num_classes`` or 255.

    Raises one :class:`~nsrom.errors.DataError` listing every problem (on rank 0, for every rank);
    a missing mask is not an error (the image is not scored).
    """
    def run() -> None:
        jobs = [
            FileJob(image_id=i, split=split, image=layout.image_path(i),
                    mask=layout.mask_path(i) if label_dir is None else None,
                    label=Path(label_dir) / f"{i}.png" if label_dir is not None else None, num_classes=num_classes)
            for i in ids
        ]
        report = run_checks(layout.root, jobs, workers=DEFAULT_WORKERS)
        LOG.info("data check of %d %s images: %d errors, %d warnings (%.1f s)",
                 len(ids), split, len(report.errors), len(report.warnings), report.seconds)
        for problem in report.warnings[:MAX_SHOWN_WARNINGS]:
            LOG.warning("data check: %s", problem.line())
        if len(report.warnings) > MAX_SHOWN_WARNINGS:
            LOG.warning("data check: %d more warnings (tools/check_data.py lists them all)",
                        len(report.warnings) - MAX_SHOWN_WARNINGS)
        report.raise_for(None, what)

    distributed.run_on_main(run)
