"""Write the image lists, train_cls.txt and labels.txt of a dataset of one's own.

    python tools/make_lists.py --root ROOT --labels-csv labels.csv --val-fraction 1
    python tools/make_lists.py --root ROOT --classes cat,dog,bird --val-ids my_val.txt

ROOT holds the images (ROOT/JPEGImages/ by default, .jpg or .png) and, for
some or all images, masks (ROOT/SegmentationClassAug/ or SegmentationClass/).
Image-level labels come from the CSV, one row per image: ``<image id>,<class>,...``
(class names or 0-based foreground indices; several classes in one cell may be
separated by ';' or spaces), and, for images without a row, from their masks.

The validation images are those of --val-ids, or a seeded --val-fraction of
the images that have a mask (only those can be scored; 1 takes them all). The
training images are the other labelled images. Writes
ImageSets/Segmentation/<train split>.txt and <val split>.txt, train_cls.txt,
labels.txt (background first), missing_files.txt and, when a layout flag is
given, ROOT/dataset.yaml, which every stage then reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nsrom.data import DataLayout
from nsrom.dataset_lists import ListRequest, build_lists, parse_class_option
from nsrom.dataset_settings import SETTINGS_FILE
from nsrom.errors import exit_on_error

LAYOUT_OPTIONS = ("image_dir", "image_ext", "mask_dir", "saliency_dir", "train_split", "val_split")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help="the dataset ROOT")
    p.add_argument("--labels-csv", type=Path, help="image-level labels: '<image id>,<class>,...' per row")
    p.add_argument("--classes", help="class names 'a,b,c' or a file (labels.txt format or one name per line); "
                                     "default: ROOT/labels.txt, else the names the CSV uses, sorted")
    split = p.add_argument_group("split rule (one of)").add_mutually_exclusive_group()
    split.add_argument("--val-ids", type=Path, help="list of the validation image ids")
    split.add_argument("--val-fraction", type=float,
                       help="fraction of the images with a mask that go to val (seeded; 1: all of them)")
    p.add_argument("--train-ids", type=Path,
                   help="list of the training image ids (default: every other labelled image)")
    p.add_argument("--seed", type=int, default=0, help="seed of --val-fraction's draw")
    layout = p.add_argument_group("dataset layout, written to ROOT/dataset.yaml when given")
    layout.add_argument("--image-dir", help="image folder in ROOT (default JPEGImages)")
    layout.add_argument("--image-ext", help="jpg, png or auto (default auto)")
    layout.add_argument("--mask-dir", help="mask folder in ROOT (default SegmentationClassAug, then SegmentationClass)")
    layout.add_argument("--saliency-dir", help="saliency folder in ROOT (default saliency)")
    layout.add_argument("--train-split", help="name of the training list (default train_aug)")
    layout.add_argument("--val-split", help="name of the validation list (default val)")
    p.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    return p


@exit_on_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = {name: getattr(args, name) for name in LAYOUT_OPTIONS if getattr(args, name) is not None}
    layout = DataLayout(args.root, **settings)
    request = ListRequest(
        labels_csv=args.labels_csv,
        classes=parse_class_option(args.classes) if args.classes else None,
        val_ids=args.val_ids, train_ids=args.train_ids, val_fraction=args.val_fraction, seed=args.seed,
    )
    report = build_lists(layout, request, write=not args.dry_run, settings=settings)
    if settings and not args.dry_run:
        print(f"settings written to {layout.root / SETTINGS_FILE}")
    print(layout.settings.describe())
    print(report.summary())


if __name__ == "__main__":
    main()
