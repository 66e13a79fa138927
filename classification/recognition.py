"""The recognition check of stage 1: does the trained classifier tell each class apart?

Stage 1 learns from image-level labels alone, and the same labels say whether it
learnt every class (docs/method.md, stage 1, "Recognition check"). For each class,
the average precision of the trained classifier's logits (the global average of
its CAM, no augmentation, the training input size) over the training images, those
labelled with the class being the positives. A class the classifier learnt ranks
its images first (AP near 1 on the images it trained on); a class it lost in
training, its map as high on the background as on the objects (docs/demo_tuning.md,
"Stage 1 loses a class on outside data F5"), ranks them little better than chance.
Classes with an AP under the line (``--recognition-line``, default
:data:`RECOGNITION_LINE`) are called unlearnt: train.py warns and lists them in
``runs/<exp>/recognition.json``, and the pipeline may train stage 1 again with the
next seed (``Preset.stage1_attempts``). No ground-truth mask is used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from nsrom.classes import load_class_names
from nsrom.files import read_json, write_json
from nsrom.metrics import average_precision

from .datasets import ImageLabelDataset, Sample
from .models.attention_net import AttentionNet, class_logits
from .transforms import export_transform

LOG = logging.getLogger(__name__)

RECOGNITION_LINE = 0.9
"""A class whose training-image AP is under this is unlearnt. Measured with the demo preset
on seven datasets: learnt classes 0.986 to 1.000, a lost class 0.770 (docs/demo_tuning.md)."""

REPORT_NAME = "recognition.json"
"""The report's file name in the run folder (``runs/<exp>/``)."""

CHECK_BATCH = 16


@torch.no_grad()
def image_logits(model: AttentionNet, dataset: ImageLabelDataset, batch_size: int = CHECK_BATCH,
                 device: torch.device | str = "cpu", num_workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class logits ``(N, C)`` of every image of ``dataset`` (eval mode) and its labels ``(N, C)``."""
    model.to(device).eval()
    logits, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for batch in tqdm(loader, desc="recognition check",
                      dynamic_ncols=True, leave=False):
        logits.append(class_logits(model(batch["image"].to(device))).float().cpu().numpy())
        labels.append(batch["label"].numpy())
    return np.concatenate(logits), np.concatenate(labels)


def recognition_report(logits: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                       line: float = RECOGNITION_LINE, seed: int | None = None) -> dict:
    """Per-class average precision of ``logits`` against ``labels`` and the classes under ``line``.

    A class no image is labelled with has AP None and is never unlearnt.
    ``seed`` (the training run's ``--seed``) is kept to tell reports of different runs apart.
    """
    if logits.shape != labels.shape or logits.shape[1] != len(class_names):
        raise ValueError(f"logits {logits.shape}, labels {labels.shape}, {len(class_names)} class names")
    aps = {name: average_precision(logits[:, c], labels[:, c] > 0) for c, name in enumerate(class_names)}
    return {
        "line": line,
        "seed": seed,
        "images": int(logits.shape[0]),
        "average_precision": aps,
        "unlearnt": [name for name, ap in aps.items() if ap is not None and ap < line],
    }


def unlearnt_text(report: dict) -> str:
    """``"`green` (AP 0.770)"``, the unlearnt classes of a report, for messages."""
    aps = report["average_precision"]
    return ", ".join(f"`{name}` (AP {aps[name]:.3f})" for name in report["unlearnt"])


def lowest_class_ap(report: dict) -> tuple[str, float] | None:
    """The class of a report with the lowest AP, and that AP; None when the report scored no class."""
    known = {name: ap for name, ap in report["average_precision"].items() if ap is not None}
    return min(known.items(), key=lambda item: item[1]) if known else None


def foreground_names(data_root: str | Path | None, num_classes: int) -> list[str]:
    """The ``num_classes`` foreground class names of the dataset, or their 0-based indices when they do not match."""
    names = load_class_names(data_root)[1:]
    return names if len(names) == num_classes else [str(c) for c in range(num_classes)]


def check_recognition(model: AttentionNet, samples: list[Sample], num_classes: int, input_size: int,
                      class_names: Sequence[str], out_path: str | Path, line: float = RECOGNITION_LINE,
                      seed: int | None = None, device: torch.device | str = "cpu", num_workers: int = 0) -> dict:
    """Run the check on the training ``samples``, write the report to ``out_path`` and log it; returns it."""
    dataset = ImageLabelDataset(samples, num_classes, export_transform(input_size))
    logits, labels = image_logits(model, dataset, device=device, num_workers=num_workers)
    report = recognition_report(logits, labels, class_names, line, seed)
    write_json(out_path, report)
    lowest = lowest_class_ap(report)
    LOG.info("recognition check on %d training images: lowest class AP %.3f (line %.2f) -> %s",
             report["images"], lowest[1] if lowest else float("nan"), line, out_path)
    if report["unlearnt"]:
        LOG.warning("stage 1 did not learn %s: its training images are not ranked above the others",
                    unlearnt_text(report))
    return report


def read_report(path: str | Path) -> dict | None:
    """The report at ``path``, or None when there is none."""
    path = Path(path)
    return read_json(path) if path.is_file() else None
