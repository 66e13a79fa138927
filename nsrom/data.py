"""The VOC-format data layout contract, image lists and image-level labels.

Every stage, the synthetic generator and real PASCAL VOC use this layout
(folder names, image extension and split names are those of
``ROOT/dataset.yaml``, :mod:`nsrom.dataset_settings`; VOC's by default)::

    ROOT/JPEGImages/<id>.jpg                image (.jpg, .jpeg or .png)
    ROOT/SegmentationClassAug/<id>.png      ground truth (0 bg, 1..C, 255 ignore); else SegmentationClass/
    ROOT/saliency/<id>.png                  8-bit grey saliency at image size
    ROOT/ImageSets/Segmentation/<split>.txt one id per line (train_aug, val, ...)
    ROOT/ImageSets/Segmentation/train_cls.txt  optional: "<id> <c> <c> ..." (0-based)
    ROOT/labels.txt                         optional: "<index> <name>", background first
    ROOT/dataset.yaml                       optional: the settings above

For the train split the masks serve only to derive image-level labels (when
``train_cls.txt`` does not list an image) and to evaluate intermediate
outputs; no stage trains on them, and they may be absent.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from .classes import IGNORE_INDEX, VOC_CLASSES, load_class_names, parse_index, values_outside_classes
from .dataset_settings import IMAGE_EXTS, DatasetSettings, load_settings
from .errors import ConfigError, DataError
from .files import atomic_write_text, read_text
from .images import read_label

TRAIN_SPLIT = DatasetSettings.train_split
"""Default training split (PASCAL VOC's train_aug); a dataset may name its own."""
VAL_SPLIT = DatasetSettings.val_split
"""Default validation split."""
INSTANCE_MASK_DIR = "SegmentationObject"
"""VOC's folder of instance masks (never class masks or saliency maps)."""


def find_file(folders: Sequence[Path], stem: str, suffixes: Sequence[str]) -> Path:
    """The first existing ``folder/<stem><suffix>`` (folders, then suffixes, in order).

    When none exists, the first candidate, so that an error names the path a
    user would expect.
    """
    for folder in folders:
        for suffix in suffixes:
            path = Path(folder) / f"{stem}{suffix}"
            if path.is_file():
                return path
    return Path(folders[0]) / f"{stem}{suffixes[0]}"


def id_file_suffixes(folder: str | Path, ids: Iterable[str]) -> Counter:
    """How many files ``<id><suffix>`` of ``ids`` ``folder`` holds, per suffix (empty when it cannot be read)."""
    wanted = set(ids)
    try:
        names = os.listdir(folder)
    except OSError:
        return Counter()
    return Counter(Path(name).suffix for name in names if Path(name).stem in wanted)


def folders_holding(root: str | Path, stems: Iterable[str], suffix: str = ".png",
                    skip: Iterable[str | Path] = ()) -> list[tuple[Path, int]]:
    """The folders right under ``root`` (not those of ``skip``, paths) that hold ``<stem><suffix>`` for some of ``stems``.

    Each with how many of the stems it holds, most first (then by name): where
    a dataset keeps, under another name, the files a stage looks for.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    stems = list(stems)
    skipped = {Path(s).resolve() for s in skip}
    counts = [(folder, id_file_suffixes(folder, stems)[suffix])
              for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.resolve() not in skipped)]
    return sorted(((folder, n) for folder, n in counts if n), key=lambda item: -item[1])


@dataclass(frozen=True)
class DataLayout:
    """Paths of one dataset root that follows the layout contract.

    ``DataLayout(root)`` reads ``ROOT/dataset.yaml`` when it exists; keyword
    overrides (``image_ext``, ``mask_dir``, ``train_split``, ``val_split``,
    ``image_dir``, ``saliency_dir``; None: not set) take precedence.
    """

    root: Path
    settings: DatasetSettings

    def __init__(self, root: str | Path, **overrides: Any):
        object.__setattr__(self, "root", Path(root))
        object.__setattr__(self, "settings", load_settings(root, overrides))

    @property
    def image_dir(self) -> Path:
        return self.root / self.settings.image_dir

    @property
    def mask_dirs(self) -> list[Path]:
        """Ground-truth folders, in the order a mask is looked for."""
        return [self.root / name for name in self.settings.mask_dir]

    @property
    def mask_dir(self) -> Path:
        """The first ground-truth folder that exists (the first named one if none does)."""
        return next((d for d in self.mask_dirs if d.is_dir()), self.mask_dirs[0])

    @property
    def saliency_dir(self) -> Path:
        return self.root / self.settings.saliency_dir

    @property
    def list_dir(self) -> Path:
        return self.root / "ImageSets" / "Segmentation"

    @property
    def cls_list_path(self) -> Path:
        return self.list_dir / "train_cls.txt"

    @property
    def labels_path(self) -> Path:
        return self.root / "labels.txt"

    @property
    def train_split(self) -> str:
        return self.settings.train_split

    @property
    def val_split(self) -> str:
        return self.settings.val_split

    def list_path(self, split: str) -> Path:
        return self.list_dir / f"{split}.txt"

    def image_path(self, image_id: str) -> Path:
        """``image_dir/<id><ext>`` with the first extension of ``image_ext`` that exists."""
        return find_file([self.image_dir], image_id, self.settings.image_exts)

    def mask_path(self, image_id: str) -> Path:
        """``<mask dir>/<id>.png`` in the first mask folder that holds it."""
        return find_file(self.mask_dirs, image_id, (".png",))

    def has_mask(self, image_id: str) -> bool:
        return self.mask_path(image_id).is_file()

    def saliency_path(self, image_id: str) -> Path:
        return self.saliency_dir / f"{image_id}.png"

    def other_folders_holding(self, ids: Iterable[str]) -> list[tuple[Path, int]]:
        """:func:`folders_holding` the ``<id>.png`` of ``ids``, besides the layout's own folders.

        Left out: the image, mask and saliency folders and VOC's instance masks
        (``SegmentationObject``); what remains is where a dataset may keep its
        saliency maps or masks under another name.
        """
        own = [self.image_dir, self.saliency_dir, *self.mask_dirs, self.root / INSTANCE_MASK_DIR]
        return folders_holding(self.root, ids, ".png", skip=own)

    def class_names(self) -> list[str]:
        """Class names, background first (``labels.txt`` or the VOC classes)."""
        return load_class_names(self.root)

    @property
    def num_classes(self) -> int:
        """Number of foreground classes C."""
        return len(self.class_names()) - 1

    def ids(self, split: str) -> list[str]:
        """Image ids of ``split`` (``ImageSets/Segmentation/<split>.txt``)."""
        return read_ids(self.list_path(split))

    def ids_with_masks(self, split: str) -> list[str]:
        """The ids of ``split`` that have a ground-truth mask (the ones that can be scored)."""
        return [i for i in self.ids(split) if self.has_mask(i)]

    def image_labels(self, split: str) -> dict[str, list[int]]:
        """Image-level labels (0-based foreground classes) for the ids of ``split``."""
        return self.labels_for(self.ids(split))

    def labels_for(self, ids: Iterable[str]) -> dict[str, list[int]]:
        """Image-level labels of ``ids``: from ``train_cls.txt`` where it lists an id, else from its mask.

        An id with neither raises :class:`DataError` naming both places.
        """
        ids = list(ids)
        listed = read_cls_list(self.cls_list_path, self.num_classes) if self.cls_list_path.is_file() else {}
        rest = [i for i in ids if i not in listed]
        unlabelled = [i for i in rest if not self.has_mask(i)]
        if unlabelled:
            raise DataError(
                f"{len(unlabelled)} images have no image-level labels (e.g. {', '.join(unlabelled[:3])}): "
                f"they are not in {self.cls_list_path} and have no mask in "
                f"{' or '.join(str(d) for d in self.mask_dirs)}; write train_cls.txt "
                "(tools/make_lists.py does, from a CSV of image labels)"
            )
        labels = {**listed, **derive_image_labels(self, rest)}
        return {i: labels[i] for i in ids}


def id_from_token(token: str) -> str:
    """The image id of a list token: ``x``, or the stem of a path such as ``/JPEGImages/x.jpg``
    (deeplab-pytorch style lines) or of a file name with an image extension (``x.png``). Other
    dots belong to the id (``a.1``)."""
    path = Path(token)
    if path.suffix.lower() in IMAGE_EXTS:
        return path.stem
    return path.name if "/" in token else token


NOT_SPLITS = ("train_cls.txt", "missing_files.txt")
"""The lists of ImageSets/Segmentation that are not image lists of a split."""


def missing_list_error(path: str | Path, choose: str | None = None) -> DataError:
    """The error for an image list that does not exist: it names the lists its folder
    does hold and how to choose one of them as a split (``choose``: the flag of a tool
    that has its own, instead of the stages' --train-split / --val-split)."""
    path = Path(path)
    message = f"image list not found: {path}"
    if path.name == f"{TRAIN_SPLIT}.txt":
        message += " (PASCAL VOC: tools/make_voc_lists.py writes it)"
    others = sorted(p.stem for p in path.parent.glob("*.txt") if p.name not in NOT_SPLITS) \
        if path.parent.is_dir() else []
    if others and choose is not None:
        message += f"; {path.parent} holds {', '.join(others)}: name the one to use with {choose}"
    elif others:
        message += (f"; {path.parent} holds {', '.join(others)}: name the split to use with --train-split "
                    "or --val-split, or train_split/val_split in ROOT/dataset.yaml")
        if path.name == f"{TRAIN_SPLIT}.txt" and "train" in others:
            message += " (to train on train.txt: --train-split train, or train_split: train)"
    return DataError(message)


def read_ids(path: str | Path) -> list[str]:
    """Image ids, one per line (the first token of each non-empty line).

    An empty list, or one that names an id twice (as joining two lists that share images
    does), is a :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_list_error(path)
    ids = [id_from_token(line.split()[0]) for line in read_text(path).splitlines() if line.strip()]
    if not ids:
        raise DataError(f"image list {path} is empty")
    if len(set(ids)) < len(ids):
        counts = Counter(ids)
        repeated = [i for i in counts if counts[i] > 1]
        what = "an id" if len(repeated) == 1 else f"{len(repeated)} ids"
        raise DataError(f"image list {path} names {what} more than once (e.g. {', '.join(repeated[:3])}); "
                        "keep one line of each (e.g. sort -u)")
    return ids


def ids_text(ids: Iterable[str]) -> str:
    """An id list's text: one id per line."""
    return "".join(f"{i}\n" for i in ids)


def write_ids(path: str | Path, ids: Iterable[str]) -> None:
    """Write an id list, one per line, atomically."""
    atomic_write_text(path, ids_text(ids))


def parse_cls_line(line: str, where: str) -> tuple[str, list[int]] | None:
    """One line of a ``train_cls.txt`` file: (image id, its distinct 0-based classes, sorted).

    None for a blank line. A token that is not a decimal integer is a :class:`DataError`
    naming ``where`` (``file:line``). The only parser of the format: :func:`read_cls_list`
    and the data check both use it, so what one accepts the other does.
    """
    parts = line.split()
    if not parts:
        return None
    classes = [parse_index(p) for p in parts[1:]]
    if None in classes:
        bad = next(p for p, c in zip(parts[1:], classes) if c is None)
        raise DataError(f"{where}: class index {bad!r} is not an integer (line {line!r})")
    return id_from_token(parts[0]), sorted(set(classes))


def read_cls_list(path: str | Path, num_classes: int | None = None) -> dict[str, list[int]]:
    """Read a ``train_cls.txt`` file: ``<id> <c> <c> ...`` with 0-based classes.

    Raises :class:`DataError` naming the file and line for a non-integer, an index
    outside ``0..num_classes-1``, or an id listed again with other classes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"class list not found: {path}")
    labels: dict[str, list[int]] = {}
    first_line: dict[str, int] = {}
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        parsed = parse_cls_line(line, f"{path}:{line_no}")
        if parsed is None:
            continue
        image_id, classes = parsed
        for c in classes:
            if c < 0 or (num_classes is not None and c >= num_classes):
                raise DataError(
                    f"{path}:{line_no}: class index {c} outside 0..{(num_classes or 1) - 1} "
                    "(train_cls.txt uses 0-based foreground classes)"
                )
        if image_id in labels and labels[image_id] != classes:
            raise DataError(f"{path}:{line_no}: image {image_id!r} is listed again with other classes "
                            f"({classes} against {labels[image_id]} on line {first_line[image_id]})")
        labels[image_id] = classes
        first_line.setdefault(image_id, line_no)
    return labels


VOC_NUM_CLASSES = len(VOC_CLASSES) - 1
"""Foreground class count when neither --num-classes nor a dataset gives one (VOC's 20)."""


def resolve_num_classes(num_classes: int | None, layout: "DataLayout | None") -> int:
    """Foreground class count C: ``--num-classes``, else the dataset's (``labels.txt``, or VOC's), else 20.

    A ``--num-classes`` below 1, or one that disagrees with the dataset's ``labels.txt``, is a
    :class:`ConfigError` naming the file.
    """
    from_root = layout.num_classes if layout is not None else None
    if num_classes is not None and num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1, got {num_classes}")
    if num_classes is not None and from_root is not None and num_classes != from_root:
        raise ConfigError(f"--num-classes {num_classes} disagrees with {layout.labels_path} ({from_root} classes)")
    return num_classes or from_root or VOC_NUM_CLASSES


def has_class_tokens(path: str | Path) -> bool:
    """True when some line of the list holds class indices after the id (the ``train_cls.txt`` format).

    A line of deeplab-pytorch's format (an image path, then a mask path) is an id, as
    :func:`read_ids` reads it; any other token after the id makes the file a class list, whose
    reader then names the token.
    """
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) > 1 and not (len(parts) == 2 and id_from_token(parts[1]) == id_from_token(parts[0])
                                   and parse_index(parts[1]) is None):
            return True
    return False


def list_image_labels(
    path: str | Path, num_classes: int | None = None, layout: "DataLayout | None" = None
) -> dict[str, list[int]]:
    """Image id -> 0-based classes of an image list given with ``--list``.

    A list in the ``train_cls.txt`` format gives the classes itself
    (:func:`read_cls_list`); a plain id list takes them from the dataset
    (``layout``: its ``train_cls.txt``, else the masks), and without a dataset
    it is a :class:`ConfigError`, never a list of images without classes.
    """
    if not Path(path).is_file():
        raise DataError(f"class list not found: {path}")
    if has_class_tokens(path):
        return read_cls_list(path, num_classes)
    ids = read_ids(path)
    if layout is None:
        raise ConfigError(f"{path} has no class indices; give --data-root so labels can be found")
    return layout.labels_for(ids)


def cls_list_text(labels: Mapping[str, Iterable[int]]) -> str:
    """Image-level labels in the ``train_cls.txt`` format: ``<id> <c> <c> ...`` per line."""
    return "".join(" ".join([image_id, *(str(c) for c in sorted(cls))]) + "\n" for image_id, cls in labels.items())


def write_cls_list(path: str | Path, labels: Mapping[str, Iterable[int]]) -> None:
    """Write image-level labels in the ``train_cls.txt`` format, atomically."""
    atomic_write_text(path, cls_list_text(labels))


def classes_in_mask(mask: np.ndarray, num_classes: int, where: str = "mask") -> list[int]:
    """0-based foreground classes present in a segmentation mask.

    Mask values 0 (background) and 255 (ignore) are not classes; any other
    value outside ``1..num_classes`` raises :class:`DataError`.
    """
    values = np.unique(mask)
    bad = values_outside_classes(values, num_classes)
    if bad:
        raise DataError(f"{where}: values {bad} outside 0..{num_classes} and {IGNORE_INDEX}")
    return [int(v) - 1 for v in values if 0 < v <= num_classes]


def derive_image_labels(
    layout: DataLayout, ids: Iterable[str], num_classes: int | None = None, skip_missing: bool = False
) -> dict[str, list[int]]:
    """Image-level labels (0-based) of ``ids`` derived from their masks, with ``num_classes`` foreground
    classes (default: the dataset's). An id without a mask is a :class:`DataError` naming the file, or,
    with ``skip_missing``, left out."""
    num_classes = layout.num_classes if num_classes is None else num_classes
    ids = list(ids)
    labels = {}
    for image_id in tqdm(ids, desc="labels from masks", dynamic_ncols=True, leave=False, disable=len(ids) < 500):
        path = layout.mask_path(image_id)
        if skip_missing and not path.is_file():
            continue
        labels[image_id] = classes_in_mask(read_label(path, "mask"), num_classes, str(path))
    return labels


def label_vector(classes: Iterable[int], num_classes: int) -> np.ndarray:
    """Multi-hot float32 vector of length ``num_classes`` for 0-based ``classes``."""
    vec = np.zeros(num_classes, dtype=np.float32)
    for c in classes:
        vec[c] = 1.0
    return vec
