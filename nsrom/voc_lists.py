"""Image lists for real PASCAL VOC 2012 + SBD, and a report of missing files.

train_aug = (VOC train + SBD train + SBD val) minus VOC val: 10,582 ids;
val = VOC val: 1,449 ids (docs/method.md, "Data contract").
Without SBD's own lists, the SBD ids are taken from the masks present in
``SegmentationClassAug`` (which holds train_aug and val masks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .data import DataLayout, TRAIN_SPLIT, VAL_SPLIT, classes_in_mask, read_ids, write_cls_list, write_ids
from .errors import DataError
from .images import read_label

VOC_TRAIN_AUG_SIZE = 10582
VOC_VAL_SIZE = 1449


@dataclass
class ListReport:
    """What :func:`build_voc_lists` found: list sizes and missing files by kind."""

    train_aug: list[str]
    val: list[str]
    missing: dict[str, list[Path]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [
            f"train_aug: {len(self.train_aug)} ids (VOC setting: {VOC_TRAIN_AUG_SIZE})",
            f"val: {len(self.val)} ids (VOC setting: {VOC_VAL_SIZE})",
        ]
        for kind, paths in self.missing.items():
            if paths:
                shown = ", ".join(str(p) for p in paths[:5])
                more = f" ... and {len(paths) - 5} more" if len(paths) > 5 else ""
                lines.append(f"missing {kind}: {len(paths)} ({shown}{more})")
            else:
                lines.append(f"missing {kind}: none")
        return "\n".join(lines)


def _sbd_ids(layout: DataLayout, sbd_dir: Path | None) -> set[str]:
    if sbd_dir is not None:
        return set(read_ids(sbd_dir / "train.txt")) | set(read_ids(sbd_dir / "val.txt"))
    if not layout.mask_dir.is_dir():
        raise DataError(
            f"{layout.mask_dir} not found: put SBD's SegmentationClassAug there, "
            "or give --sbd-dir with SBD's train.txt and val.txt"
        )
    return {p.stem for p in layout.mask_dir.glob("*.png")}


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
        "masks": [layout.mask_path(i) for i in train_aug + voc_val if not layout.mask_path(i).is_file()],
        "saliency maps": [sal_dir / f"{i}.png" for i in train_aug if not (sal_dir / f"{i}.png").is_file()],
    }
    report = ListReport(train_aug=train_aug, val=voc_val, missing=missing)
    if write:
        write_ids(layout.list_path(TRAIN_SPLIT), train_aug)
        if not layout.list_path(VAL_SPLIT).is_file():
            write_ids(layout.list_path(VAL_SPLIT), voc_val)
        all_missing = [str(p) for paths in missing.values() for p in paths]
        write_ids(layout.list_dir / "missing_files.txt", all_missing)
        if write_cls:
            n = layout.num_classes
            labels = {
                i: classes_in_mask(read_label(layout.mask_path(i), "mask"), n, str(layout.mask_path(i)))
                for i in train_aug
                if layout.mask_path(i).is_file()
            }
            write_cls_list(layout.cls_list_path, labels)
    return report
