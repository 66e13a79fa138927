"""A check of a dataset before anything trains: every listed file decodes, sizes agree, labels are in range.

A corrupt JPEG would otherwise stop training when the loop reaches it, and a
corrupt saliency map would stop stage 3 after stages 1 and 2 have run (hours
on VOC). :func:`check_dataset` looks at every file a run will read, in
parallel, and returns a :class:`DataReport` with every problem at once, each
naming its file:

* lists: the split lists exist and are not empty; ``labels.txt`` parses;
  ``train_cls.txt`` (when present) has integer class indices in ``0..C-1``,
  line by line; the training images it does not list need masks (their
  labels come from them);
* images: present, and decodable to the end (a JPEG is decoded at 1/8 scale,
  which still reads every byte of its compressed data, so a truncated file
  is found; the header gives the size);
* masks (and training labels): present where needed (training images not in
  ``train_cls.txt``; val images for scores), palette or grey 8-bit, of the
  image's size, values ``0..C`` or 255 (decoded in full);
* saliency maps: present for every training image, 8-bit grey, of the image's
  size; per image the fraction of salient pixels (>= :data:`SALIENT_LEVEL`),
  summarised with the maps that are (almost) empty or full.

Problems are errors (a stage that reads the file would fail) or warnings
(a stage carries on: an image without a saliency map is skipped by stage 3, a
val image without a mask is not scored). Stages stop before training on the
errors of what they read (:meth:`DataReport.raise_for`).
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from .classes import IGNORE_INDEX
from .data import TRAIN_SPLIT, DataLayout, id_file_suffixes, id_from_token, parse_cls_line
from .dataset_settings import OVERRIDE_SOURCE
from .errors import DataError
from .files import read_text
from .images import COLOUR_MASK_HINT, oriented_size, reassigned_palette
from .parallel import parallel_map

ERROR, WARNING = "error", "warning"
LISTS, IMAGES, MASKS, SALIENCY, LABELS = "lists", "images", "masks", "saliency", "labels"
"""Parts of a report: what a stage may need (``labels`` are training labels of a label folder)."""
SALIENCY_NOT_FOUND = "saliency map not found: stage 3 skips this image"
MASK_NOT_FOUND = "mask not found: this image is not scored"
MASK_NEEDED = "mask not found (needed: the image-level labels come from the masks)"
"""Warnings for one missing file; when every image of a split has one, :meth:`DataReport.missing_everywhere`."""

SALIENT_LEVEL = 128
"""A saliency value at or above this (half of 255) counts as a salient pixel in the coverage statistics."""
EMPTY_COVERAGE = 0.001
"""A saliency map with fewer salient pixels than this fraction is reported as empty."""
FULL_COVERAGE = 0.99
"""A saliency map with more salient pixels than this fraction is reported as full."""
JPEG_DRAFT_SCALE = 8
"""JPEGs are decoded at 1/8 of their size: every compressed byte is read, the inverse DCT is cheap."""
DEFAULT_WORKERS = min(8, os.cpu_count() or 1)
MAX_LISTED_ERRORS = 20
"""Errors a stage lists when it stops on bad data (tools/check_data.py lists every one)."""
HIGH_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "F")
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the data: ``part`` and ``split`` say which stages it concerns."""

    severity: str
    part: str
    split: str | None
    path: str
    message: str
    general: bool = False
    """About the dataset as a whole (its class list, where a kind of file is), not one file: listed first."""

    def line(self) -> str:
        """``path: message``; the message alone when it names the file already (the text of a DataError)."""
        return self.message if self.path in self.message else f"{self.path}: {self.message}"


@dataclass(frozen=True)
class FileJob:
    """The files of one image to check (``None``: not checked) and what they must satisfy."""

    image_id: str
    split: str
    image: Path
    mask: Path | None = None
    mask_required: bool = False
    saliency: Path | None = None
    label: Path | None = None
    """A training label (pseudo or masked label of DATASET.LABEL_DIR)."""
    num_classes: int = 21
    """Classes with background: label values must be below it, or 255."""


@dataclass
class FileResult:
    """What :func:`check_files` found for the image ``key`` = ``(split, id)``."""

    key: tuple[str, str]
    problems: list[Problem] = field(default_factory=list)
    coverage: float | None = None
    checked: Counter = field(default_factory=Counter)
    mask_classes: set[int] = field(default_factory=set)
    """Class indices (not 255) found in the masks."""


# --- one image's files --------------------------------------------------------------


def _check_image(job: FileJob, result: FileResult) -> tuple[int, int] | None:
    """The image decodes to its end; returns its size ``(W, H)`` or None."""
    if not job.image.is_file():
        result.problems.append(Problem(ERROR, IMAGES, job.split, str(job.image), "image not found"))
        return None
    result.checked[IMAGES] += 1
    try:
        with Image.open(job.image) as img:
            size = oriented_size(img)
            if img.format == "JPEG":
                img.draft(img.mode, (max(1, size[0] // JPEG_DRAFT_SCALE), max(1, size[1] // JPEG_DRAFT_SCALE)))
            img.load()
    except _DECODE_ERRORS as exc:
        result.problems.append(Problem(ERROR, IMAGES, job.split, str(job.image), f"cannot decode the image: {exc}"))
        return None
    return size


def _size_problem(what: str, got: tuple[int, int], image: Path, size: tuple[int, int]) -> str | None:
    if got == size:
        return None
    return f"{what} is {got[0]}x{got[1]} (WxH) but its image {image.name} is {size[0]}x{size[1]}"


def _check_label_png(path: Path, part: str, what: str, job: FileJob, size: tuple[int, int] | None,
                     result: FileResult) -> None:
    """A class-index PNG (mask or training label): mode, size, values 0..C-1 or 255."""
    result.checked[part] += 1
    try:
        with Image.open(path) as img:
            mode, got = img.mode, oriented_size(img)
            if mode not in ("P", "L"):
                result.problems.append(Problem(ERROR, part, job.split, str(path),
                                               f"{what} has mode {mode}; expected a palette or grey 8-bit PNG "
                                               f"of class indices{COLOUR_MASK_HINT if mode in ('RGB', 'RGBA') else ''}"))
                return
            values = np.asarray(img)
            reassigned = reassigned_palette(img, values)
    except _DECODE_ERRORS as exc:
        result.problems.append(Problem(ERROR, part, job.split, str(path), f"cannot decode the {what}: {exc}"))
        return
    if reassigned:
        result.problems.append(Problem(ERROR, part, job.split, str(path), f"{what} {reassigned}{COLOUR_MASK_HINT}"))
        return
    if size is not None and (msg := _size_problem(what, got, job.image, size)):
        result.problems.append(Problem(ERROR, part, job.split, str(path), msg))
    present = [v for v in np.flatnonzero(np.bincount(values.ravel(), minlength=256)).tolist() if v != IGNORE_INDEX]
    if part == MASKS:
        result.mask_classes.update(present)
    bad = [v for v in present if v >= job.num_classes]
    if bad:
        result.problems.append(Problem(
            ERROR, part, job.split, str(path),
            f"{what} holds values {bad} outside 0..{job.num_classes - 1} and {IGNORE_INDEX} "
            f"({job.num_classes} classes with background, from labels.txt)"))


def _check_saliency(job: FileJob, size: tuple[int, int] | None, result: FileResult) -> None:
    """Present, 8-bit grey, image size; records the fraction of salient pixels."""
    path = job.saliency
    if not path.is_file():
        result.problems.append(Problem(WARNING, SALIENCY, job.split, str(path), SALIENCY_NOT_FOUND))
        return
    result.checked[SALIENCY] += 1
    try:
        with Image.open(path) as img:
            mode, got = img.mode, oriented_size(img)
            if mode in HIGH_BIT_MODES:
                result.problems.append(Problem(ERROR, SALIENCY, job.split, str(path),
                                               f"saliency map has mode {mode} (16-bit or float); "
                                               "expected an 8-bit grey PNG (0..255)"))
                return
            grey = np.asarray(img.convert("L"))
    except _DECODE_ERRORS as exc:
        result.problems.append(Problem(ERROR, SALIENCY, job.split, str(path), f"cannot decode the saliency map: {exc}"))
        return
    if mode != "L":
        result.problems.append(Problem(WARNING, SALIENCY, job.split, str(path),
                                       f"saliency map has mode {mode}; it is read as its luminance "
                                       "(save 8-bit grey maps to be sure of the values)"))
    if size is not None and (msg := _size_problem("saliency map", got, job.image, size)):
        result.problems.append(Problem(ERROR, SALIENCY, job.split, str(path), msg))
    result.coverage = float(np.count_nonzero(grey >= SALIENT_LEVEL)) / max(grey.size, 1)


def check_files(job: FileJob) -> FileResult:
    """Check the files of one image (picklable: runs in a worker process)."""
    result = FileResult((job.split, job.image_id))
    size = _check_image(job, result)
    if job.mask is not None:
        if job.mask.is_file():
            _check_label_png(job.mask, MASKS, "mask", job, size, result)
        elif job.mask_required:
            result.problems.append(Problem(ERROR, MASKS, job.split, str(job.mask), MASK_NEEDED))
        else:
            result.problems.append(Problem(WARNING, MASKS, job.split, str(job.mask), MASK_NOT_FOUND))
    if job.label is not None:
        if job.label.is_file():
            _check_label_png(job.label, LABELS, "training label", job, size, result)
        else:
            result.problems.append(Problem(WARNING, LABELS, job.split, str(job.label),
                                           "training label not found: training leaves this image out"))
    if job.saliency is not None:
        _check_saliency(job, size, result)
    return result


# --- lists and class indices --------------------------------------------------------


def check_class_list(path: Path, num_classes: int, ids: Sequence[str] | None = None,
                     split: str = TRAIN_SPLIT) -> list[Problem]:
    """Every line of a ``train_cls.txt``-format file: integer 0-based class indices below ``num_classes``.

    An id listed again with other classes is an error. With ``ids``: a warning when the
    file does not list all of them (the image-level labels then come from the masks).
    """
    problems: list[Problem] = []
    listed: dict[str, tuple[list[int], int]] = {}
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        where = f"{path}:{line_no}"
        try:
            parsed = parse_cls_line(line, where)
        except DataError as err:
            problems.append(Problem(ERROR, LISTS, split, where, str(err).removeprefix(f"{where}: ")))
            continue
        if parsed is None:
            continue
        image_id, classes = parsed
        if image_id in listed and listed[image_id][0] != classes:
            problems.append(Problem(ERROR, LISTS, split, where,
                                    f"image {image_id!r} listed again with other classes (first on line "
                                    f"{listed[image_id][1]})"))
        listed.setdefault(image_id, (classes, line_no))
        for index in classes:
            if not 0 <= index < num_classes:
                problems.append(Problem(ERROR, LISTS, split, where,
                                        f"class index {index} outside 0..{num_classes - 1} (0-based foreground "
                                        f"classes; labels.txt lists {num_classes} besides background)"))
    if ids is not None:
        absent = [i for i in ids if i not in listed]
        if absent:
            problems.append(Problem(WARNING, LISTS, split, str(path),
                                    f"{len(absent)} ids of {split} are not listed (e.g. {', '.join(absent[:3])}): "
                                    "their image-level labels come from their masks"))
    return problems


# --- the report ------------------------------------------------------------------------


@dataclass
class DataReport:
    """What :func:`check_dataset` found."""

    root: str
    problems: list[Problem] = field(default_factory=list)
    checked: Counter = field(default_factory=Counter)
    coverage: dict[str, float] = field(default_factory=dict)
    """Saliency: image id -> fraction of salient pixels."""
    mask_classes: set[int] = field(default_factory=set)
    """Class indices (not 255) found in the masks checked."""
    seconds: float = 0.0
    workers: int = 1
    images: int = 0

    def select(self, severity: str, needs: Iterable[tuple[str, str | None]] | None = None) -> list[Problem]:
        """Problems of ``severity`` (of the ``(part, split)`` pairs in ``needs``; split None: any split)."""
        found = [p for p in self.problems if p.severity == severity]
        if needs is None:
            return found
        needs = list(needs)
        return [p for p in found if any(p.part == part and (split is None or p.split in (split, None))
                                        for part, split in needs)]

    def missing_everywhere(self, part: str, split: str, images: int) -> list[Problem]:
        """The not-found problems of ``part`` in ``split`` when all ``images`` of the split have one, else []."""
        messages = {SALIENCY: (SALIENCY_NOT_FOUND,), MASKS: (MASK_NOT_FOUND, MASK_NEEDED)}[part]
        found = [p for p in self.problems if p.part == part and p.split == split and p.message in messages]
        return found if images and len(found) == images else []

    @property
    def errors(self) -> list[Problem]:
        return self.select(ERROR)

    @property
    def warnings(self) -> list[Problem]:
        """The warnings, those about the dataset as a whole first (a long list of missing files does not hide them)."""
        return sorted(self.select(WARNING), key=lambda p: not p.general)

    def raise_for(self, needs: Iterable[tuple[str, str | None]] | None, what: str) -> None:
        """:class:`DataError` listing the errors that concern ``needs`` (the first :data:`MAX_LISTED_ERRORS`,
        and how many more), before ``what`` starts; the warnings about the dataset as a whole that concern
        ``needs`` follow as notes."""
        errors = self.select(ERROR, needs)
        if errors:
            lines = [f"  {p.line()}" for p in errors[:MAX_LISTED_ERRORS]]
            if len(errors) > MAX_LISTED_ERRORS:
                lines.append(f"  ... and {len(errors) - MAX_LISTED_ERRORS} more")
            lines += [f"  note: {p.line()}" for p in self.select(WARNING, needs) if p.general]
            raise DataError(f"{len(errors)} problem(s) in the data under {self.root}; {what} needs these files "
                            f"fixed first (full report: python tools/check_data.py {self.root}):\n"
                            + "\n".join(lines))

    def saliency_summary(self) -> list[str]:
        """Coverage statistics of the saliency maps, with the (almost) empty and full ones."""
        if not self.coverage:
            return []
        ids = sorted(self.coverage)
        values = np.array([self.coverage[i] for i in ids])
        q = np.percentile(values, [5, 50, 95])
        empty = [i for i in ids if self.coverage[i] < EMPTY_COVERAGE]
        full = [i for i in ids if self.coverage[i] > FULL_COVERAGE]
        lines = [f"saliency: {len(ids)} maps; salient pixels (>= {SALIENT_LEVEL}) per image: mean "
                 f"{100 * values.mean():.1f}%, 5% {100 * q[0]:.1f}%, median {100 * q[1]:.1f}%, "
                 f"95% {100 * q[2]:.1f}%"]
        for name, group, rule in (("empty", empty, f"< {100 * EMPTY_COVERAGE:g}%"),
                                  ("full", full, f"> {100 * FULL_COVERAGE:g}%")):
            shown = ", ".join(group[:10]) + (f", ... ({len(group) - 10} more)" if len(group) > 10 else "")
            lines.append(f"saliency: {len(group)} {name} maps ({rule} salient pixels){': ' + shown if group else ''}")
        return lines

    def format(self) -> str:
        """The printed report: every error, every warning, counts, saliency statistics, time."""
        lines = [f"data check of {self.root}: {self.images} images, files checked: "
                 + ", ".join(f"{n} {part}" for part, n in sorted(self.checked.items()))]
        for title, group in (("error", self.errors), ("warning", self.warnings)):
            if group:
                lines.append(f"{len(group)} {title}(s):")
                lines += [f"  {line}" for line in _listed(group)]
        lines += self.saliency_summary()
        rate = f" ({self.images / self.seconds:.0f} images/s)" if self.images and self.seconds > 0 else ""
        lines.append(f"{len(self.errors)} errors, {len(self.warnings)} warnings; {self.seconds:.1f} s with "
                     f"{self.workers} worker(s){rate}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"root": self.root, "images": self.images, "checked": dict(self.checked), "seconds": self.seconds,
                "workers": self.workers, "errors": [asdict(p) for p in self.errors],
                "warnings": [asdict(p) for p in self.warnings], "saliency_coverage": self.coverage}


SAME_MESSAGE_SHOWN = 5
"""Problems with one message (the same kind, for several files) printed before the rest are counted."""


def _listed(problems: Sequence[Problem]) -> list[str]:
    """The printed lines of ``problems``, in order: the first :data:`SAME_MESSAGE_SHOWN` of each kind (one
    message for one part of one split) in full, then one line that counts the rest (the JSON keeps every one)."""
    def kind(p: Problem) -> tuple:
        return p.part, p.split, p.message

    total: Counter = Counter(kind(p) for p in problems)
    seen: Counter = Counter()
    lines = []
    for problem in problems:
        seen[kind(problem)] += 1
        if seen[kind(problem)] <= SAME_MESSAGE_SHOWN:
            lines.append(problem.line())
        if seen[kind(problem)] == SAME_MESSAGE_SHOWN and total[kind(problem)] > SAME_MESSAGE_SHOWN:
            where = f" ({problem.split})" if problem.split else ""
            lines.append(f"... and {total[kind(problem)] - SAME_MESSAGE_SHOWN} more{where}: {problem.message}")
    return lines


def run_checks(root: str | Path, jobs: Sequence[FileJob], problems: Sequence[Problem] = (),
               workers: int = DEFAULT_WORKERS) -> DataReport:
    """Check ``jobs`` in ``workers`` processes; ``problems`` found beforehand (lists) come first."""
    start = time.perf_counter()
    report = DataReport(str(root), list(problems), workers=workers, images=len(jobs))
    results = parallel_map(check_files, jobs, workers=workers, desc="check data", chunksize=16)
    by_key = {result.key: result for result in results}  # parallel_map does not keep the order
    for job in jobs:
        result = by_key[(job.split, job.image_id)]
        report.problems += result.problems
        report.checked.update(result.checked)
        report.mask_classes |= result.mask_classes
        if result.coverage is not None:
            report.coverage[job.image_id] = result.coverage
    report.seconds = time.perf_counter() - start
    return report


def _listed_ids(path: Path) -> set[str]:
    """The ids a ``train_cls.txt``-format file lists (its lines' first tokens)."""
    return {id_from_token(line.split()[0]) for line in read_text(path).splitlines() if line.strip()}


def dataset_jobs(layout: DataLayout, splits: Sequence[str] | None = None, *,
                 saliency_splits: Sequence[str] | None = None,
                 label_dir: Path | None = None) -> tuple[list[FileJob], list[Problem]]:
    """The files to check for ``splits`` of ``layout`` (default: its training and val splits), and the
    problems of its lists and class names.

    A training image's mask is required when ``train_cls.txt`` does not list
    the image (its image-level labels then come from the mask); otherwise it is
    checked when present (it is used for scores) and its absence is no problem.
    A val image without a mask is a warning (not scored). Saliency maps are
    checked for ``saliency_splits`` (default: the training split); ``label_dir``:
    also check the training labels ``<label_dir>/<id>.png``.
    """
    splits = list(splits) if splits is not None else [layout.train_split, layout.val_split]
    saliency_splits = list(saliency_splits) if saliency_splits is not None else [layout.train_split]
    problems: list[Problem] = []
    try:
        num_classes = len(layout.class_names())
    except DataError as exc:
        problems.append(Problem(ERROR, LISTS, None, str(layout.labels_path), str(exc)))
        return [], problems
    jobs: list[FileJob] = []
    for split in splits:
        try:
            ids = layout.ids(split)
        except DataError as exc:
            problems.append(Problem(ERROR, LISTS, split, str(layout.list_path(split)), str(exc)))
            continue
        training = split == layout.train_split
        listed: set[str] = set()
        if training and layout.cls_list_path.is_file():
            problems += check_class_list(layout.cls_list_path, num_classes - 1, ids, split)
            listed = _listed_ids(layout.cls_list_path)
        for i in ids:
            required = training and i not in listed
            mask = layout.mask_path(i) if required or not training or layout.has_mask(i) else None
            jobs.append(FileJob(
                image_id=i, split=split, image=layout.image_path(i), mask=mask, mask_required=required,
                saliency=layout.saliency_path(i) if split in saliency_splits else None,
                label=Path(label_dir) / f"{i}.png" if label_dir is not None else None, num_classes=num_classes,
            ))
    return jobs, problems


def check_dataset(layout: DataLayout, splits: Sequence[str] | None = None, *,
                  saliency_splits: Sequence[str] | None = None, label_dir: Path | None = None,
                  workers: int = DEFAULT_WORKERS) -> DataReport:
    """Check every file of ``splits`` of ``layout`` (see the module docstring); never raises for bad data."""
    if not layout.root.is_dir():
        return DataReport(str(layout.root), [Problem(ERROR, LISTS, None, str(layout.root),
                                                     "dataset root not found")])
    jobs, problems = dataset_jobs(layout, splits, saliency_splits=saliency_splits, label_dir=label_dir)
    report = run_checks(layout.root, jobs, problems, workers)
    if (warning := _default_classes_warning(layout, report.mask_classes)) is not None:
        report.problems.append(warning)
    for part, split in sorted({(p.part, p.split) for p in report.problems if p.part in (SALIENCY, MASKS)}):
        ids = layout.ids(split)
        if report.missing_everywhere(part, split, len(ids)) and (hint := elsewhere_hint(layout, part, ids)):
            report.problems.append(Problem(WARNING, part, split, str(layout.root), hint, general=True))
    return report


def elsewhere_hint(layout: DataLayout, part: str, ids: Sequence[str]) -> str | None:
    """When no image of ``ids`` has its saliency map (``part`` SALIENCY) or mask (MASKS) where the layout
    looks: the files of theirs that the layout's folders hold under another extension (the stages read
    ``<id>.png`` only), and the other folders of ROOT that hold their ``<id>.png`` files, with the
    setting that would read the fullest of them; None when neither is found."""
    folders = [layout.saliency_dir] if part == SALIENCY else layout.mask_dirs
    what = "saliency maps" if part == SALIENCY else "masks"
    hints = []
    for folder, suffix, count in _other_extensions(folders, ids):
        remedy = "rename them to <id>.png" if suffix.lower() == ".png" else "convert them"
        hints.append(f"{folder} holds {count} of these images' files as <id>{suffix}; the stages read "
                     f"<id>.png (8-bit PNG): if they are the {what}, {remedy}")
    found = layout.other_folders_holding(ids)
    if found:
        name = found[0][0].name
        if part == SALIENCY:
            setting = f"saliency_dir: {_yaml_text(name)} in ROOT/dataset.yaml"
        elif layout.settings.source("mask_dir") == OVERRIDE_SOURCE:
            setting = f"--mask-dir {shlex.quote(name)} (this run's --mask-dir overrides ROOT/dataset.yaml)"
        else:
            names = ", ".join(_yaml_text(n, in_list=True) for n in [name, *layout.settings.mask_dir])
            setting = f"mask_dir: [{names}] in ROOT/dataset.yaml"
        listed = ", ".join(f"{folder.name} ({count} of {len(ids)})" for folder, count in found)
        hints.append(f"Other folders of {layout.root} hold <id>.png files of these images: {listed}; "
                     f"if the {what} are in {name}, set {setting}")
    return ". ".join(hints) or None


def _yaml_text(name: str, in_list: bool = False) -> str:
    """``name`` as YAML reads it back as that text: plain when it can be, else double-quoted."""
    plain = not (in_list and any(c in name for c in ",[]{}"))
    try:
        plain = plain and yaml.safe_load(name) == name
    except yaml.YAMLError:
        plain = False
    return name if plain else json.dumps(name)


def _other_extensions(folders: Sequence[Path], ids: Sequence[str]) -> list[tuple[Path, str, int]]:
    """``(folder, suffix, count)`` for each suffix other than ``.png`` under which ``folders`` hold files
    ``<id><suffix>`` of ``ids``."""
    found = []
    for folder in folders:
        counts = id_file_suffixes(folder, ids)
        found += [(folder, suffix, n) for suffix, n in counts.most_common() if suffix not in ("", ".png")]
    return found


def _default_classes_warning(layout: DataLayout, mask_classes: set[int]) -> Problem | None:
    """A warning when ROOT has no ``labels.txt`` (so the 21 VOC classes are assumed) and its
    masks use only the first few class indices, as a dataset with fewer classes would."""
    if layout.labels_path.is_file() or not mask_classes:
        return None
    num_classes = len(layout.class_names())
    highest = max(mask_classes)
    if highest >= num_classes - 1:
        return None
    return Problem(WARNING, LISTS, None, str(layout.labels_path),
                   f"not found, so the {num_classes} PASCAL VOC classes (with background) are assumed, but the "
                   f"masks hold only class indices {sorted(mask_classes)}; if the dataset has {highest} classes "
                   f"besides background, write labels.txt ('<index> <name>' per line from '0 background' on), or "
                   f"every network is given {num_classes - 1} class outputs", general=True)


def check_images(root: str | Path, images: Sequence[tuple[str, Path]], split: str = TRAIN_SPLIT,
                 workers: int = DEFAULT_WORKERS) -> DataReport:
    """Check only that the images ``(id, path)`` decode (stages that read nothing else)."""
    jobs = [FileJob(image_id=i, split=split, image=Path(p)) for i, p in images]
    return run_checks(root, jobs, (), workers)
