"""Score CAM / OA-CAM folders and pseudo-label folders against the dataset's ground-truth masks.

    python tools/eval_labels.py --data-root ROOT --split train_aug \\
        --cams classification/runs/exp1/attention classification/runs/exp2/attention \\
        --labels classification/pseudo_labels classification/masked_labels \\
        --out scores_labels.json

``--cams`` and ``--labels`` take one folder or several, and may be repeated.
``--resize-maps`` scores maps of another size than their mask, such as the
accumulated maps of stage 1 (``runs/exp1/accu_att``), after resizing them as
the export does.
Images of the split without a mask are not scored (the table says how many).

Prints one per-class IoU table per folder, with a line of where its errors lie
(``nsrom.error_kinds``: missed, other class, ignored, background near an object or far
from it, in % of the object pixels), and writes them all as JSON
(``{folder: result}``). The logic is :mod:`nsrom.evaluation`
(``evaluate_cams`` / ``evaluate_labels``); this file is only the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Sequence

from nsrom.arg_types import whole_number
from nsrom.data import DataLayout, missing_list_error
from nsrom.dataset_settings import add_layout_args, layout_overrides
from nsrom.errors import ConfigError, exit_on_error
from nsrom.evaluation import DEFAULT_THRESHOLDS, evaluate_cams, evaluate_labels, report
from nsrom.files import write_json
from nsrom.logs import setup_logging

LOG = logging.getLogger("eval_labels")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="mIoU of CAMs (best background threshold) and pseudo labels.")
    p.add_argument("--data-root", type=Path, required=True, help="dataset root in the VOC layout")
    p.add_argument("--split", default=None,
                   help="image list ImageSets/Segmentation/<split>.txt (default: the dataset's training split)")
    p.add_argument("--cams", type=Path, nargs="+", action="extend", default=[], metavar="DIR",
                   help="CAM/OA-CAM folders <id>_<c>.png (one or more; repeatable)")
    p.add_argument("--labels", type=Path, nargs="+", action="extend", default=[], metavar="DIR",
                   help="label folders <id>.png (one or more; repeatable)")
    p.add_argument("--thresholds", type=float, nargs="+", default=list(DEFAULT_THRESHOLDS),
                   help="background thresholds swept for CAMs (default 0.05 .. 0.95 by 0.05)")
    p.add_argument("--resize-maps", action="store_true",
                   help="resize CAMs of another size than their mask to it (bicubic, as the export does), "
                        "e.g. to score the accumulated maps of stage 1 (runs/exp1/accu_att, kept at CAM resolution)")
    p.add_argument("--out", type=Path, help="write the results as JSON to this file")
    p.add_argument("--workers", type=whole_number(1), default=min(8, os.cpu_count() or 1), help="parallel processes")
    add_layout_args(p, ("mask_dir",))
    return p


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    if not args.cams and not args.labels:
        raise ConfigError("nothing to evaluate: give at least one --cams DIR or --labels DIR")
    layout = DataLayout(args.data_root, **layout_overrides(args))
    split = args.split or layout.train_split
    if not layout.list_path(split).is_file():
        raise missing_list_error(layout.list_path(split), choose="--split")
    results = {}
    for folder in dict.fromkeys(args.cams):  # each folder once, in the order given
        results[str(folder)] = evaluate_cams(layout, split, folder, args.thresholds, args.workers,
                                             resize=args.resize_maps)
    for folder in dict.fromkeys(args.labels):
        results[str(folder)] = evaluate_labels(layout, split, folder, args.workers)
    for result in results.values():
        print(report(result) + "\n")
    if args.out is not None:
        write_json(args.out, results)
        LOG.info("scores written to %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
