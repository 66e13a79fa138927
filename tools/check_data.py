"""Check a dataset before training: every listed image, mask and saliency map, all problems at once.

    python tools/check_data.py ROOT [--splits train_aug val] [--label-dir DIR] [-j 8] [--json report.json]

Decodes every image listed in the splits (JPEGs to the end of their data, at
1/8 scale), every mask and saliency map; compares their sizes; checks mask
values against ROOT/labels.txt and the class indices of train_cls.txt; and
prints every problem with its file name, the coverage statistics of the
saliency maps (fraction of salient pixels per image, empty and full maps) and
the time taken. Exit status 1 when there is an error, 0 otherwise (warnings
only). The layout is ROOT/dataset.yaml's (or VOC's), changed by the layout
flags. pipeline.py and the stage scripts run the same check before they start.
"""

from __future__ import annotations

import argparse

from nsrom.arg_types import whole_number
from nsrom.data import DataLayout
from nsrom.data_check import DEFAULT_WORKERS, check_dataset
from nsrom.dataset_settings import STAGE_FLAGS, add_layout_args, layout_overrides
from nsrom.errors import ConfigError, exit_on_error
from nsrom.files import write_json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="dataset ROOT in the VOC layout (see README, Data layout)")
    p.add_argument("--splits", nargs="+", default=None,
                   help="image lists to check (default: the dataset's training and val splits)")
    p.add_argument("--saliency-splits", nargs="*", default=None,
                   help="splits whose saliency maps are checked (default: the training split)")
    p.add_argument("--label-dir", default=None,
                   help="also check training labels <id>.png in this folder (pseudo or masked labels)")
    p.add_argument("-j", "--workers", type=whole_number(1), default=DEFAULT_WORKERS, help="parallel processes")
    p.add_argument("--json", default=None, help="also write the report (with per-image coverage) as JSON here")
    add_layout_args(p, (*STAGE_FLAGS, "val_split"))
    return p


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    layout = DataLayout(args.root, **layout_overrides(args))
    checked = args.splits or [layout.train_split, layout.val_split]
    unknown = [s for s in args.saliency_splits or [] if s not in checked]
    if unknown:  # a typo would have checked no saliency map and passed
        raise ConfigError(f"--saliency-splits {' '.join(unknown)}: not among the splits checked ({', '.join(checked)}; "
                          "--splits names others)")
    report = check_dataset(layout, args.splits, saliency_splits=args.saliency_splits,
                           label_dir=args.label_dir, workers=args.workers)
    print(report.format())
    if args.json is not None:
        write_json(args.json, report.to_dict())
    return 1 if report.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
