"""Write the train_aug list (and train_cls.txt) for PASCAL VOC 2012 + SBD; val is VOC's own val.txt.

    python tools/make_voc_lists.py --voc-root data/VOCdevkit/VOC2012 \
        [--sbd-dir data/benchmark_RELEASE/dataset] [--saliency-dir DIR]

ROOT must hold JPEGImages/, SegmentationClassAug/ (SBD's augmented masks) and
ImageSets/Segmentation/{train,val}.txt. Prints how many ids each list has and
exactly which images, masks and saliency maps are missing (also written to
ImageSets/Segmentation/missing_files.txt).
"""

from __future__ import annotations

import argparse

from nsrom.errors import exit_on_error
from nsrom.voc_lists import build_voc_lists


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--voc-root", required=True, help="VOCdevkit/VOC2012 (the dataset ROOT)")
    p.add_argument("--sbd-dir", default=None, help="SBD's dataset/ folder with train.txt and val.txt "
                   "(default: take SBD ids from the masks in ROOT/SegmentationClassAug)")
    p.add_argument("--saliency-dir", default=None, help="saliency maps: a folder in ROOT or an absolute path "
                   "(default ROOT/saliency, or dataset.yaml's saliency_dir); recorded in ROOT/dataset.yaml")
    p.add_argument("--cls", action=argparse.BooleanOptionalAction, default=True,
                   help="also write train_cls.txt derived from the masks (default on)")
    p.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    return p


@exit_on_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    report = build_voc_lists(args.voc_root, args.sbd_dir, args.saliency_dir,
                             write=not args.dry_run, write_cls=args.cls)
    print(report.summary())


if __name__ == "__main__":
    main()
