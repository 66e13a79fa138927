"""File handling shared by gen_label.py (stage 3) and gen_masked_label.py (stage 6).

Reading the per-image inputs with clear messages, resolving the image list and
class count, and running a per-image function over the list in parallel with a
per-image report and an end-of-run summary. A per-image problem never stops the
run: the image is reported and counted, and no output is written for it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
import argparse
import os
from typing import Callable, Collection, Iterable, Mapping

import numpy as np

from nsrom.arg_types import whole_number
from nsrom.cam import class_map_name
from nsrom.classes import IGNORE_INDEX, values_outside_classes
from nsrom.data import DataLayout, list_image_labels, read_cls_list, resolve_num_classes
from nsrom.data_check import ERROR, FileJob, run_checks
from nsrom.dataset_settings import LABEL_FLAGS, add_layout_args, layout_overrides
from nsrom.errors import DataError
from nsrom.images import read_grey, read_label
from nsrom.parallel import parallel_map

LOG = logging.getLogger(__name__)

WRITTEN, EXISTS, MISSING, FAILED = "written", "exists", "missing", "failed"
"""Per-image outcomes: label written; output already there (no --overwrite);
a required input file is missing (image skipped); an input is unreadable or
inconsistent (image skipped, reported as an error)."""
STATUSES = (WRITTEN, EXISTS, MISSING, FAILED)

LABEL_PATTERN = "*.png"
"""The outputs of both stages in their folder: ``<id>.png`` (what ``--overwrite`` deletes and redoes)."""


@dataclass(frozen=True)
class ImageResult:
    """What happened to one image; ``missing_maps`` has one message per present
    class whose OA-CAM / CAM was missing (that class was left out of a step)."""

    image_id: str
    status: str
    message: str = ""
    missing_maps: tuple[str, ...] = ()
    all_ignored: bool = False
    """The label written is ignore everywhere (the 1% rule, or nothing left after masking)."""

    @classmethod
    def written(cls, image_id: str, label: np.ndarray, missing_maps: tuple[str, ...] = ()) -> "ImageResult":
        """The result of an image whose ``label`` was written."""
        return cls(image_id, WRITTEN, missing_maps=missing_maps, all_ignored=bool((label == IGNORE_INDEX).all()))


@dataclass
class LabelSummary:
    """Counts of the per-image outcomes of one run, and the ids of the skipped images."""

    out_dir: Path
    counts: Counter = field(default_factory=Counter)
    missing_maps: int = 0
    all_ignored: int = 0
    skipped: dict[str, list[str]] = field(default_factory=lambda: {MISSING: [], FAILED: []})

    def add(self, result: ImageResult) -> None:
        self.counts[result.status] += 1
        self.missing_maps += len(result.missing_maps)
        self.all_ignored += result.all_ignored
        if result.status in self.skipped:
            self.skipped[result.status].append(result.image_id)

    @property
    def ok(self) -> bool:
        """True when no image failed and some image has a label (written now or before).

        Missing inputs are reported, not failures, unless every image misses one
        (then a folder is surely wrong).
        """
        total = sum(self.counts.values())
        done = self.counts[WRITTEN] + self.counts[EXISTS]
        return self.counts[FAILED] == 0 and (done > 0 or total == 0)

    def line(self) -> str:
        parts = [f"{self.counts[s]} {s}" for s in STATUSES]
        return f"{sum(self.counts.values())} images: " + ", ".join(parts) + (
            f"; {self.missing_maps} class maps missing" if self.missing_maps else "") + (
            f"; {self.all_ignored} of the labels written are ignore everywhere" if self.all_ignored else "")


def require_dir(path: Path, what: str, flag: str) -> Path:
    """``path`` if it is a folder, else :class:`DataError` naming it and the flag to fix."""
    if not Path(path).is_dir():
        raise DataError(f"{what} folder not found: {path} (set it with {flag})")
    return Path(path)


def read_optional_grey(path: Path, what: str) -> np.ndarray | None:
    """A grey map, or ``None`` when the file does not exist (corrupt: :class:`DataError`)."""
    return read_grey(path, what) if path.is_file() else None


def class_map_path(folder: Path, image_id: str, c: int) -> Path:
    """Path of a CAM / OA-CAM PNG: ``<folder>/<id>_<c>.png`` with the 0-based class c."""
    return Path(folder) / class_map_name(image_id, c)


def read_class_maps(
    folder: Path,
    image_id: str,
    classes: Iterable[int],
    what: str,
    shape: tuple[int, ...],
    ref_path: Path,
    ref_what: str,
) -> tuple[dict[int, np.ndarray], tuple[str, ...]]:
    """The ``what`` maps (CAMs or OA-CAMs) of the present ``classes`` of one image.

    Returns the maps found and one message per missing file. A corrupt file or
    one whose size is not ``shape`` (that of the ``ref_what`` at ``ref_path``)
    raises :class:`DataError`.
    """
    maps: dict[int, np.ndarray] = {}
    missing: list[str] = []
    for c in classes:
        path = class_map_path(folder, image_id, c)
        cam = read_optional_grey(path, what)
        if cam is None:
            missing.append(f"{what} of class {c} not found: {path}; class left out of the step that needs it")
            continue
        check_size(cam, path, what, shape, ref_path, ref_what)
        maps[c] = cam
    return maps, tuple(missing)


def check_size(array: np.ndarray, path: Path, what: str, shape: tuple[int, ...], ref_path: Path, ref_what: str) -> None:
    """:class:`DataError` naming both files when ``array`` (read from ``path``) is not ``shape``."""
    if array.shape != shape:
        raise DataError(
            f"sizes differ: {what} {path} is {array.shape[1]}x{array.shape[0]} (WxH), {ref_what} "
            f"{ref_path} is {shape[1]}x{shape[0]}; every map of an image must have the image's size"
        )


def read_class_label(path: Path, num_classes: int, what: str) -> np.ndarray:
    """A label PNG whose values must be 0..C or 255; :class:`DataError` naming the file otherwise."""
    label = read_label(path, what)
    bad = values_outside_classes(label, num_classes)
    if bad:
        raise DataError(
            f"{what} {path} holds class values {bad} outside 0..{num_classes} and {IGNORE_INDEX} "
            f"(is --num-classes / labels.txt right?)"
        )
    return label


def resolve_image_labels(
    list_path: Path | None, layout: DataLayout | None, default_list: Path, num_classes: int
) -> dict[str, list[int]]:
    """Image id -> 0-based classes: from --list (its class indices, or for a plain id list the
    dataset's labels of those ids: nsrom.data.list_image_labels); with --data-root, the labels of
    the dataset's training split (``train_cls.txt``, else the masks); else the default list.

    A class index outside ``0..C-1`` raises :class:`DataError` naming file and line.
    """
    if list_path is not None:
        return list_image_labels(list_path, num_classes, layout)
    if layout is not None:
        return layout.image_labels(layout.train_split)
    if not Path(default_list).is_file():
        raise DataError(f"class list not found: {default_list} (pass --list FILE or --data-root ROOT)")
    return read_cls_list(default_list, num_classes)


def run_over_images(
    fn: Callable[[tuple[str, list[int]]], ImageResult],
    image_labels: Mapping[str, Iterable[int]],
    out_dir: Path,
    workers: int,
    desc: str,
    failed_check: Collection[str] = (),
) -> LabelSummary:
    """Apply ``fn`` to each ``(id, classes)`` in parallel; log problems; return the summary.

    ``fn`` must be picklable (a top-level function or a ``functools.partial`` of one). The images of
    ``failed_check`` (their saliency map failed :func:`check_saliency_maps`) fail without being processed.
    """
    summary = LabelSummary(Path(out_dir))
    for image_id in sorted(set(failed_check) & set(image_labels)):
        summary.add(ImageResult(image_id, FAILED))
        LOG.error("%s: not written: its saliency map failed the data check (above)", image_id)
    items = [(image_id, list(classes)) for image_id, classes in image_labels.items() if image_id not in failed_check]
    for result in parallel_map(fn, items, workers=workers, desc=desc):
        summary.add(result)
        if result.status == MISSING:
            LOG.warning("%s: skipped: %s", result.image_id, result.message)
        elif result.status == FAILED:
            LOG.error("%s: not written: %s", result.image_id, result.message)
        for note in result.missing_maps:
            LOG.warning("%s: %s", result.image_id, note)
    LOG.info("%s -> %s: %s", desc, out_dir, summary.line())
    if summary.counts[WRITTEN] and summary.all_ignored == summary.counts[WRITTEN] and not summary.counts[EXISTS]:
        LOG.warning("every label written to %s is ignore everywhere: a network trained on them learns nothing "
                    "(check the rules' settings and the input folders)", out_dir)
    if summary.counts[FAILED]:
        LOG.error("%d images failed: %s", summary.counts[FAILED], ", ".join(summary.skipped[FAILED][:20]))
    elif not summary.ok:
        LOG.error("no image had all its inputs: check the input folders")
    return summary


def add_common_args(p: argparse.ArgumentParser, default_list: Path, default_sal_dir: Path, default_out_dir: Path) -> None:
    """The flags gen_label.py and gen_masked_label.py share (list, saliency, output, classes, workers)."""
    p.add_argument("--data-root", type=Path, help="VOC-format dataset root: class count from ROOT/labels.txt; "
                   "the images are those of the training split, labelled by "
                   "ROOT/ImageSets/Segmentation/train_cls.txt (or the masks); saliency defaults to ROOT/saliency")
    p.add_argument("--list", type=Path, help="image list: train_cls.txt format '<id> <c> ...', or ids alone with "
                   f"--data-root (default: the training split of --data-root, else {default_list})")
    p.add_argument("--sal-dir", type=Path, help="saliency maps <id>.png (default: the saliency folder of "
                   f"--data-root, else {default_sal_dir})")
    p.add_argument("--out-dir", type=Path, default=default_out_dir, help="output label PNGs <id>.png")
    p.add_argument("--num-classes", type=int, help="foreground classes C (default: labels.txt of --data-root, else 20)")
    p.add_argument("--workers", type=whole_number(1), default=min(8, os.cpu_count() or 1), help="parallel processes")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the labels in --out-dir and redo them all (needed when they were made from "
                        "other inputs or rules)")
    p.add_argument("--log-file", type=Path, help="also write the log to this file")
    p.add_argument("--check-data", action=argparse.BooleanOptionalAction, default=True,
                   help="with --data-root: check every saliency map first and list the problems "
                        "(the images with a bad map are then skipped, the others processed)")
    add_layout_args(p, LABEL_FLAGS)


def resolve_common_args(
    args: argparse.Namespace, default_list: Path, default_sal_dir: Path
) -> tuple[int, dict[str, list[int]], Path]:
    """``(num_classes, image_labels, sal_dir)`` from the flags of :func:`add_common_args`."""
    layout = DataLayout(args.data_root, **layout_overrides(args)) if args.data_root is not None else None
    num_classes = resolve_num_classes(args.num_classes, layout)
    image_labels = resolve_image_labels(args.list, layout, default_list, num_classes)
    sal_dir = args.sal_dir or (layout.saliency_dir if layout is not None else default_sal_dir)
    return num_classes, image_labels, sal_dir


def check_saliency_maps(args: argparse.Namespace, image_labels: Mapping[str, Iterable[int]],
                        sal_dir: Path) -> set[str]:
    """With ``--data-root`` and ``--check-data``: check every saliency map up front and log each problem;
    returns the ids whose map has an error (another size than the image, undecodable, 16-bit).

    Label generation goes on afterwards (:func:`run_over_images` with ``failed_check``): those
    images fail, named in the summary, and are not written; a missing map skips its image there.
    """
    if args.data_root is None or not args.check_data:
        return set()
    layout = DataLayout(args.data_root, **layout_overrides(args))
    jobs = [FileJob(image_id=i, split=layout.train_split, image=layout.image_path(i),
                    saliency=Path(sal_dir) / f"{i}.png")
            for i in image_labels]
    report = run_checks(layout.root, jobs, workers=args.workers)
    for problem in report.problems:
        (LOG.error if problem.severity == ERROR else LOG.warning)("data check: %s", problem.line())
    for line in report.saliency_summary():
        LOG.info("data check: %s", line)
    by_map = {str(job.saliency): job.image_id for job in jobs}
    return {by_map[p.path] for p in report.problems if p.severity == ERROR and p.path in by_map}
