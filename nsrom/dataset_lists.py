"""Image lists, ``train_cls.txt`` and ``labels.txt`` for a dataset of one's own.

What :mod:`nsrom.voc_lists` does for PASCAL VOC + SBD, for any dataset root
(``tools/make_lists.py``): the images are the files of the image folder; the
image-level labels come from a CSV (``<image id>,<class> ...``, names or
0-based foreground indices) and, for images the CSV does not list, from their
masks; the validation split is given as a list or drawn (seeded) from the
images that have a mask, since only those can be scored. Both tools share
:class:`ListReport` and :func:`list_texts`.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .classes import class_names_text, load_class_names, parse_index, read_class_names
from .data import DataLayout, cls_list_text, derive_image_labels, id_from_token, ids_text, read_ids
from .data_check import SALIENCY, elsewhere_hint
from .dataset_settings import IMAGE_EXTS, settings_text
from .errors import ConfigError, DataError
from .files import atomic_write_texts, read_text

BACKGROUND = "background"
HEADER_NAMES = {"image_id", "imageid", "id", "image", "images", "filename", "file", "name", "image_name"}
"""A first CSV row whose first cell is one of these (case, spaces and dashes aside: ``Image ID``) is a header."""
CLASS_SEPARATORS = ";|"
"""Separators of several classes in one CSV cell (besides separate cells and whitespace)."""


@dataclass
class ListReport:
    """What a list tool found: the ids of each split, missing files by kind, notes."""

    splits: dict[str, list[str]]
    missing: dict[str, list[Path]] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)
    """Reference size of a split (VOC's), shown next to the count."""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = []
        for split, ids in self.splits.items():
            ref = f" (VOC setting: {self.expected[split]})" if split in self.expected else ""
            lines.append(f"{split}: {len(ids)} ids{ref}")
        for kind, paths in self.missing.items():
            if paths:
                shown = ", ".join(str(p) for p in paths[:5])
                more = f" ... and {len(paths) - 5} more" if len(paths) > 5 else ""
                lines.append(f"missing {kind}: {len(paths)} ({shown}{more})")
            else:
                lines.append(f"missing {kind}: none")
        return "\n".join(lines + self.notes)


def list_texts(
    layout: DataLayout,
    splits: Mapping[str, Sequence[str]],
    cls_labels: Mapping[str, Iterable[int]] | None,
    missing: Mapping[str, Sequence[Path]],
) -> dict[Path, str]:
    """The texts of ``<split>.txt`` for each split, ``train_cls.txt`` (when given) and ``missing_files.txt``,
    by path: written together with :func:`nsrom.files.atomic_write_texts`."""
    texts = {layout.list_path(split): ids_text(ids) for split, ids in splits.items()}
    if cls_labels is not None:
        texts[layout.cls_list_path] = cls_list_text(cls_labels)
    texts[layout.list_dir / "missing_files.txt"] = ids_text(str(p) for paths in missing.values() for p in paths)
    return texts


def labels_from_masks(layout: DataLayout, ids: Iterable[str], num_classes: int) -> dict[str, list[int]]:
    """Image-level labels (0-based) of the ``ids`` that have a mask; the others are left out."""
    return derive_image_labels(layout, ids, num_classes, skip_missing=True)


# --- classes and the CSV of image-level labels ------------------------------------------


CLASS_FILE_SUFFIXES = (".txt", ".csv", ".names", ".yaml", ".yml")
"""Suffixes that make a ``--classes`` value a file name (one that is missing is an error, not a class name)."""


def parse_class_option(text: str) -> list[str]:
    """``--classes``: a file (``labels.txt`` format or one name per line) or ``a,b,c``; background first."""
    path = Path(text)
    if path.is_file():
        lines = [line.strip() for line in read_text(path).splitlines() if line.strip()]
        names = read_class_names(path) if lines and parse_index(lines[0].split()[0]) is not None else lines
    elif "," not in text and ("/" in text or path.suffix.lower() in CLASS_FILE_SUFFIXES):
        raise ConfigError(f"--classes {text!r}: no such file (class names are given as a file or as a,b,c)")
    else:
        names = [name.strip() for name in text.split(",") if name.strip()]
    if names and names[0] == BACKGROUND:
        names = names[1:]
    if not names:
        raise ConfigError(f"--classes {text!r} names no class")
    if len(set(names)) != len(names):
        raise ConfigError(f"--classes {text!r} names a class twice")
    return [BACKGROUND, *names]


@dataclass(frozen=True)
class CsvRow:
    """One image of the CSV: its id, class tokens (names or indices) and line number."""

    image_id: str
    tokens: tuple[str, ...]
    line: int


def _split_cell(cell: str) -> list[str]:
    pieces = [cell]
    for sep in CLASS_SEPARATORS:
        pieces = [p for piece in pieces for p in piece.split(sep)]
    return [p.strip() for p in pieces if p.strip()]


def read_label_csv(path: str | Path) -> list[CsvRow]:
    """Rows ``<image id>,<class>,<class>...`` of a CSV of image-level labels.

    A cell may hold several classes separated by ``;``, ``|`` or whitespace
    (whitespace only splits a cell that is not a class name as a whole, see
    :func:`resolve_csv_labels`). An image id may carry an extension or folder
    (``img1.png``). Blank rows, rows starting with ``#`` and a header row
    (first cell ``image_id``, ``id``, ``image``, ``filename``...) are skipped.
    A repeated id is a :class:`DataError` naming both lines.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label CSV not found: {path}")
    rows: list[CsvRow] = []
    seen: dict[str, int] = {}
    for line_no, cells in enumerate(csv.reader(io.StringIO(read_text(path), newline="")), start=1):
        cells = [c.strip() for c in cells]
        if not cells or not cells[0] or cells[0].startswith("#"):
            continue
        if not rows and not seen and "_".join(cells[0].lower().replace("-", " ").split()) in HEADER_NAMES:
            seen[""] = line_no  # the header
            continue
        image_id = id_from_token(cells[0])
        if image_id in seen:
            raise DataError(f"{path}:{line_no}: image {image_id!r} already listed on line {seen[image_id]}")
        seen[image_id] = line_no
        rows.append(CsvRow(image_id, tuple(t for cell in cells[1:] for t in _split_cell(cell)), line_no))
    if not rows:
        raise DataError(f"{path} lists no image (expected rows '<image id>,<class> ...')")
    return rows


def _resolve_token(token: str, names: Sequence[str], where: str) -> list[int]:
    """0-based foreground classes of one token: a class name, a 0-based index, or several of these
    separated by whitespace."""
    if token in names[1:]:
        return [names.index(token) - 1]
    if token == names[0]:
        raise DataError(f"{where}: {token!r} is the background, not an image-level class; leave it out")
    index = parse_index(token)
    if index is not None:
        if not 0 <= index < len(names) - 1:
            raise DataError(
                f"{where}: class index {index} outside 0..{len(names) - 2} (0-based foreground classes: "
                f"0 is {names[1]!r})"
            )
        return [index]
    parts = token.split()
    if len(parts) > 1:
        return [c for part in parts for c in _resolve_token(part, names, where)]
    raise DataError(f"{where}: unknown class {token!r}; classes are {', '.join(names[1:])}")


def class_names_from_csv(rows: Sequence[CsvRow], path: Path) -> list[str]:
    """A class list made of the names the CSV uses (sorted), background first."""
    names: set[str] = set()
    for row in rows:
        for token in row.tokens:
            for part in token.split():
                if parse_index(part) is not None:
                    raise DataError(
                        f"{path}:{row.line}: class index {part} needs a class list: give --classes "
                        "or write ROOT/labels.txt"
                    )
                if part != BACKGROUND:
                    names.add(part)
    if not names:
        raise DataError(f"{path} names no class")
    return [BACKGROUND, *sorted(names)]


def resolve_csv_labels(rows: Sequence[CsvRow], names: Sequence[str], path: Path) -> dict[str, list[int]]:
    """Image id -> sorted 0-based classes; an unknown name or index is a DataError naming file:line."""
    return {
        row.image_id: sorted({c for token in row.tokens for c in _resolve_token(token, names, f"{path}:{row.line}")})
        for row in rows
    }


# --- images and splits --------------------------------------------------------------------


def image_ids(layout: DataLayout) -> list[str]:
    """Sorted ids of the images in the image folder (extensions of ``image_ext``).

    Two files with the same id (``a.jpg`` and ``a.png``), or an id with a space, are a DataError.
    """
    if not layout.image_dir.is_dir():
        raise DataError(f"image folder not found: {layout.image_dir} (set image_dir in dataset.yaml or --image-dir)")
    exts = layout.settings.image_exts
    found: dict[str, Path] = {}
    for path in sorted(layout.image_dir.iterdir()):
        if path.suffix not in exts or not path.is_file():  # the suffixes image_path tries, capitals included
            continue
        if path.stem in found:
            raise DataError(f"two images with id {path.stem!r}: {found[path.stem]} and {path}; keep one")
        if Path(path.stem).suffix.lower() in IMAGE_EXTS:
            raise DataError(f"{path}: a file name with two image extensions; the lists would read its id as "
                            f"{Path(path.stem).stem!r}: rename it to {Path(path.stem).stem}{path.suffix}")
        if any(ch.isspace() for ch in path.stem):
            raise DataError(f"{path}: an image id may not hold a space (the lists separate fields by "
                            "spaces); rename the file, and its mask and saliency map")
        found[path.stem] = path
    if not found:
        raise DataError(f"no image ({', '.join(exts)}) in {layout.image_dir}")
    return sorted(found)


def _read_given_ids(path: Path, images: set[str]) -> list[str]:
    ids = read_ids(path)
    unknown = [i for i in ids if i not in images]
    if unknown:
        raise DataError(f"{path}: {len(unknown)} ids have no image, e.g. {', '.join(unknown[:3])}")
    return ids


def choose_val(
    images: Sequence[str],
    with_mask: Sequence[str],
    val_ids: Path | None,
    val_fraction: float | None,
    seed: int,
) -> list[str]:
    """The validation ids: those of the ``val_ids`` list, or a seeded ``val_fraction`` of the
    images that have a mask (at least one; 1 takes them all)."""
    if val_ids is not None:
        return _read_given_ids(val_ids, set(images))
    if val_fraction is None:
        raise ConfigError(
            "choose the validation images: --val-ids FILE, or --val-fraction F (of the images with a mask)"
        )
    if not 0 < val_fraction <= 1:
        raise ConfigError(f"--val-fraction must lie in (0, 1], got {val_fraction}")
    if not with_mask:
        raise DataError("no image has a mask, so none can be a scored validation image; give --val-ids FILE")
    count = max(1, round(val_fraction * len(with_mask)))
    return sorted(random.Random(seed).sample(sorted(with_mask), count))


@dataclass(frozen=True)
class ListRequest:
    """What ``tools/make_lists.py`` was asked for (the dataset root is the layout's)."""

    labels_csv: Path | None = None
    classes: list[str] | None = None
    val_ids: Path | None = None
    train_ids: Path | None = None
    val_fraction: float | None = None
    seed: int = 0


def build_lists(layout: DataLayout, request: ListRequest, write: bool = True,
                settings: Mapping[str, object] | None = None) -> ListReport:
    """Lists of the training and validation splits, their image-level labels and the class list.

    Training images are the images with a label (a CSV row or a mask) that are
    not validation images, or those of ``request.train_ids``. With ``write``,
    writes the two split lists, ``train_cls.txt`` (the training images'
    labels), ``labels.txt`` (when absent, or when ``classes`` is given),
    ``missing_files.txt`` and, given ``settings``, ``ROOT/dataset.yaml``: all of
    them or none (:func:`nsrom.files.atomic_write_texts`).
    """
    images = image_ids(layout)
    rows = read_label_csv(request.labels_csv) if request.labels_csv is not None else []
    old_names = load_class_names(layout.root) if layout.labels_path.is_file() else None
    if request.classes is not None:
        names = request.classes
    elif old_names is not None:
        names = old_names
    elif rows:
        names = class_names_from_csv(rows, request.labels_csv)
    else:
        raise ConfigError("name the classes: --classes a,b,c (or a file), or write ROOT/labels.txt")
    csv_labels = resolve_csv_labels(rows, names, request.labels_csv) if rows else {}
    image_set = set(images)
    unknown = [row for row in rows if row.image_id not in image_set]
    if unknown:
        raise DataError(
            f"{request.labels_csv}:{unknown[0].line}: no image {unknown[0].image_id!r} in {layout.image_dir} "
            f"({len(unknown)} CSV rows name a missing image)"
        )
    with_mask = [i for i in images if layout.has_mask(i)]
    mask_labels = labels_from_masks(layout, with_mask, len(names) - 1)
    val = choose_val(images, with_mask, request.val_ids, request.val_fraction, request.seed)
    val_set = set(val)
    if request.train_ids is not None:
        train = _read_given_ids(request.train_ids, image_set)
    else:
        train = [i for i in images if i not in val_set and (i in csv_labels or i in mask_labels)]
    overlap = sorted(val_set.intersection(train))
    if overlap:
        raise DataError(f"{len(overlap)} images are in both splits, e.g. {', '.join(overlap[:3])}")
    unlabelled = [i for i in train if i not in csv_labels and i not in mask_labels]
    if unlabelled:
        raise DataError(f"{len(unlabelled)} training images have neither a CSV row nor a mask, e.g. "
                        f"{', '.join(unlabelled[:3])}")
    if not train:
        raise DataError(
            "no training image is left: every image with a label is a validation image"
            + (f" (--val-fraction {request.val_fraction} took all {len(val)} images with a mask)"
               if request.val_ids is None else f" or unlabelled ({request.val_ids} lists {len(val)})")
            + "; give image-level labels of the other images (--labels-csv) or a smaller --val-fraction"
            + ("" if not write else "; nothing was written"))
    cls_labels = {i: csv_labels.get(i, mask_labels.get(i)) for i in train}
    report = ListReport(
        splits={layout.train_split: train, layout.val_split: val},
        missing={
            "saliency maps (training images)": [layout.saliency_path(i) for i in train
                                                if not layout.saliency_path(i).is_file()],
            "masks (validation images, not scored)": [layout.mask_path(i) for i in val if not layout.has_mask(i)],
        },
        notes=_notes(images, train, val, csv_labels, mask_labels, names),
    )
    if request.classes is None and old_names is None and with_mask:
        order = ", ".join(f"{k} {name}" for k, name in enumerate(names[1:], start=1))
        report.notes.append(
            f"class indices from the CSV's names, sorted (neither --classes nor {layout.labels_path} gives them): "
            f"{order}. A mask's value k must mean class k of this list: if your masks were made in another order, "
            "run again with --classes in that order")
    if request.classes is not None and old_names is not None and list(old_names) != list(names):
        report.notes.append(f"{layout.labels_path} {'rewritten' if write else 'would be rewritten'}: "
                            f"{', '.join(old_names[1:])} -> {', '.join(names[1:])}")
    no_saliency = report.missing["saliency maps (training images)"]
    if train and len(no_saliency) == len(train):
        hint = elsewhere_hint(layout, SALIENCY, train)
        report.notes.append(f"no training image has a saliency map in {layout.saliency_dir} (<id>.png); "
                            + (hint or "put them there, or name their folder with --saliency-dir"))
    if write:  # the lists, their class list and the dataset's settings together, or none of them
        texts = list_texts(layout, report.splits, cls_labels, report.missing)
        if request.classes is not None or not layout.labels_path.is_file():
            texts[layout.labels_path] = class_names_text(list(names))
        if settings:
            path, text = settings_text(layout.root, settings)
            texts[path] = text
        atomic_write_texts(texts)
    return report


def _notes(
    images: Sequence[str],
    train: Sequence[str],
    val: Sequence[str],
    csv_labels: Mapping[str, list[int]],
    mask_labels: Mapping[str, list[int]],
    names: Sequence[str],
) -> list[str]:
    notes = []
    used = set(train) | set(val)
    left_out = [i for i in images if i not in used]
    labelled = [i for i in left_out if i in csv_labels or i in mask_labels]
    unlabelled = [i for i in left_out if i not in labelled]
    for why, ids in (("no CSV row, no mask", unlabelled), ("in neither --train-ids nor --val-ids", labelled)):
        if ids:
            notes.append(f"left out ({why}): {len(ids)} images, e.g. {', '.join(ids[:3])}")
    both = [i for i in csv_labels if i in mask_labels]
    differ = [i for i in both if csv_labels[i] != mask_labels[i]]
    if differ:
        i = differ[0]
        notes.append(f"CSV labels differ from the mask for {len(differ)} of the {len(both)} images with both, e.g. "
                     f"{i}: CSV {csv_labels[i]}, mask {mask_labels[i]} (the CSV's are used; if most differ, the "
                     "masks' class order is not that of the class list: give --classes in the masks' order)")
    counts = {name: 0 for name in names[1:]}
    for image_id in train:
        for c in csv_labels.get(image_id, mask_labels.get(image_id, [])):
            counts[names[c + 1]] += 1
    notes.append(f"classes ({len(names) - 1}), training images per class: "
                 + ", ".join(f"{name} {n}" for name, n in counts.items()))
    return notes
