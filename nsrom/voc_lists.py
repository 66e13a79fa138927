"""Image lists for real PASCAL VOC 2012 + SBD, and a report of missing files.

train_aug = (VOC train + SBD train + SBD val) minus VOC val: 10,582 ids;
val = VOC val: 1,449 ids (docs/method.md, "Data contract").
Without SBD's own lists, the SBD ids are taken from the masks present in
``SegmentationClassAug`` (which holds train_aug and val masks).
"""

from __future__ import annotations

from pathlib import Path

from .data import DataLayout, TRAIN_SPLIT, VAL_SPLIT, read_ids
from .dataset_lists import ListReport, labels_from_masks, list_texts
from .dataset_settings import settings_text
from .errors import DataError
from .files import atomic_write_texts

VOC_TRAIN_AUG_SIZE = 10582
VOC_VAL_SIZE = 1449
SBD_MASK_DIR = "SegmentationClassAug"
"""Where the SBD-augmented masks (train_aug and val) go in the VOC root."""


VOC_LISTS_HINT = "--voc-root must be VOCdevkit/VOC2012, with the devkit's ImageSets/Segmentation/train.txt and val.txt"
SBD_LISTS_HINT = ("--sbd-dir must be SBD's dataset/ folder, with train.txt and val.txt; without --sbd-dir "
                  f"the SBD ids are taken from the masks in ROOT/{SBD_MASK_DIR}")


def _read_fixed_list(path: Path, hint: str) -> list[str]:
    """Ids of one of the lists this tool reads under a fixed name; a missing one is named with the flag to fix.

    (:func:`read_ids` would suggest ``--train-split``/``--val-split``, which
    tools/make_voc_lists.py does not have: VOC's and SBD's list names are fixed.)
    """
    if not path.is_file():
        raise DataError(f"image list not found: {path} ({hint})")
    return read_ids(path)


def _sbd_ids(layout: DataLayout, sbd_dir: Path | None) -> set[str]:
    if sbd_dir is not None:
        return set(_read_fixed_list(sbd_dir / "train.txt", SBD_LISTS_HINT)) | set(
            _read_fixed_list(sbd_dir / "val.txt", SBD_LISTS_HINT))
    mask_dir = layout.root / SBD_MASK_DIR
    if not mask_dir.is_dir():
        raise DataError(
            f"{mask_dir} not found: put SBD's SegmentationClassAug there, "
            "or give --sbd-dir with SBD's train.txt and val.txt"
        )
    return {p.stem for p in mask_dir.glob("*.png")}


def build_voc_lists(
    voc_root: str | Path,
    sbd_dir: str | Path | None = None,
    saliency_dir: str | Path | None = None,
    write: bool = True,
    write_cls: bool = True,
) -> ListReport:
    """Compute train_aug and val for ``voc_root`` and check every file they need.

    Reads VOC's ``ImageSets/Segmentation/{train,val}.txt``. With ``write``,
    writes ``train_aug.txt`` into that folder, and with ``write_cls`` also
    ``train_cls.txt`` derived from the masks (ids whose mask is missing are left
    out), plus ``missing_files.txt`` listing every missing path. A
    ``saliency_dir`` (a folder in ROOT, or a path from the current folder or an
    absolute one when ROOT has no such folder) is checked instead of the dataset's
    and, with ``write`` and when it holds some of the maps, recorded in
    ``ROOT/dataset.yaml`` so that every stage reads them from there.
    """
    saliency_dir = _saliency_setting(Path(voc_root), saliency_dir) if saliency_dir else None
    layout = DataLayout(voc_root, saliency_dir=saliency_dir)
    voc_train = set(_read_fixed_list(layout.list_dir / "train.txt", VOC_LISTS_HINT))
    voc_val = _read_fixed_list(layout.list_path(VAL_SPLIT), VOC_LISTS_HINT)
    sbd = _sbd_ids(layout, Path(sbd_dir) if sbd_dir else None)
    train_aug = sorted((voc_train | sbd) - set(voc_val))
    sal_dir = layout.saliency_dir
    missing = {
        "images": [layout.image_path(i) for i in train_aug + voc_val if not layout.image_path(i).is_file()],
        "masks": [layout.mask_path(i) for i in train_aug + voc_val if not layout.has_mask(i)],
        "saliency maps": [sal_dir / f"{i}.png" for i in train_aug if not (sal_dir / f"{i}.png").is_file()],
    }
    report = ListReport(
        splits={TRAIN_SPLIT: train_aug, VAL_SPLIT: voc_val}, missing=missing,
        expected={TRAIN_SPLIT: VOC_TRAIN_AUG_SIZE, VAL_SPLIT: VOC_VAL_SIZE},
    )
    if train_aug and len(missing["saliency maps"]) == len(train_aug):
        report.notes.append(f"no train_aug image has a saliency map in {sal_dir}: stage 3 needs them; unpack "
                            "the released saliency_aug.tar.gz there (README, 'Saliency maps'), or set saliency_dir "
                            "in ROOT/dataset.yaml to the folder that holds them")
    if missing["masks"]:
        report.notes.append("masks are missing: train_aug's SBD images take their masks (and image-level labels) "
                            "from SBD's SegmentationClassAug.zip, unpacked into "
                            f"{layout.root / 'SegmentationClassAug'} (README, 'Downloads and where they go')")
    if write and not train_aug:
        raise DataError(f"train_aug would be empty: every id of {layout.list_dir / 'train.txt'} and of SBD is in "
                        f"{layout.list_path(VAL_SPLIT)}; nothing was written (check that the lists are VOC's)")
    if write:  # the lists and the dataset's settings together, or none of them
        labels = labels_from_masks(layout, train_aug, layout.num_classes) if write_cls else None
        texts = list_texts(layout, {TRAIN_SPLIT: train_aug}, labels, missing)
        if saliency_dir and len(missing["saliency maps"]) < len(train_aug):
            path, text = settings_text(layout.root, {"saliency_dir": saliency_dir})
            texts[path] = text
            report.notes.append(f"saliency_dir recorded in {path}: every stage reads the maps from {sal_dir}")
        elif saliency_dir:
            report.notes.append(f"--saliency-dir {saliency_dir} not recorded in ROOT/dataset.yaml: it holds no map")
        atomic_write_texts(texts)
    return report


def _saliency_setting(root: Path, given: str | Path) -> str:
    """The ``saliency_dir`` setting for ``--saliency-dir``: as given when ROOT has that folder (or it is
    absolute), else the absolute path of the folder the current directory has under that name."""
    given = Path(given)
    if given.is_absolute() or (root / given).is_dir() or not given.is_dir():
        return str(given)
    return str(given.resolve())
