"""Image lists for real PASCAL VOC 2012 + SBD, and a report of missing files.

train_aug = (VOC train + SBD train + SBD val) minus VOC val: 10,582 ids;
val = VOC val: 1,449 ids (docs/method.md, "Data contract").
Without SBD's own lists, the SBD ids are taken from the masks present in
``SegmentationClassAug`` (which holds train_aug and val masks).
"""

from __future__ import annotations

from pathlib import Path

from .data import DataLayout, TRAIN_SPLIT, VAL_SPLIT, read_ids
from .dataset_lists import ListReport, labels_from_masks, write_lists
from .errors import DataError

VOC_TRAIN_AUG_SIZE = 10582
VOC_VAL_SIZE = 1449
SBD_MASK_DIR = "SegmentationClassAug"
"""Where the SBD-augmented masks (train_aug and val) go in the VOC root."""


def _sbd_ids(layout: DataLayout, sbd_dir: Path | None) -> set[str]:
    if sbd_dir is not None:
        return set(read_ids(sbd_dir / "train.txt")) | set(read_ids(sbd_dir / "val.txt"))
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
    writes ``train_aug.txt`` (and ``val.txt`` if absent) into that folder, and
    with ``write_cls`` also ``train_cls.txt`` derived from the masks (ids
    whose mask is missing are left out), plus ``missing_files.txt`` listing
    every missing path.
    """
    layout = DataLayout(voc_root)
    voc_train = set(read_ids(layout.list_dir / "train.txt"))
    voc_val = read_ids(layout.list_path(VAL_SPLIT))
    sbd = _sbd_ids(layout, Path(sbd_dir) if sbd_dir else None)
    train_aug = sorted((voc_train | sbd) - set(voc_val))
    sal_dir = Path(saliency_dir) if saliency_dir else layout.saliency_dir
    missing = {
        "images": [layout.image_path(i) for i in train_aug + voc_val if not layout.image_path(i).is_file()],
        "masks": [layout.mask_path(i) for i in train_aug + voc_val if not layout.has_mask(i)],
        "saliency maps": [sal_dir / f"{i}.png" for i in train_aug if not (sal_dir / f"{i}.png").is_file()],
    }
    report = ListReport(
        splits={TRAIN_SPLIT: train_aug, VAL_SPLIT: voc_val}, missing=missing,
        expected={TRAIN_SPLIT: VOC_TRAIN_AUG_SIZE, VAL_SPLIT: VOC_VAL_SIZE},
    )
    if write:
        splits = {TRAIN_SPLIT: train_aug}
        if not layout.list_path(VAL_SPLIT).is_file():
            splits[VAL_SPLIT] = voc_val
        labels = labels_from_masks(layout, train_aug, layout.num_classes) if write_cls else None
        write_lists(layout, splits, labels, missing)
    return report
