"""Run the whole NSROM method (docs/method.md, stages 1-7) with one command.

    python pipeline.py --data-root ROOT --work-dir W [--preset voc12|demo|tiny] [--from STAGE] [--to STAGE]

The dataset's folder names, image extension and split names come from
ROOT/dataset.yaml (VOC's without it; see README, "Data layout"); the layout
flags below override it for every stage of the run.

Stages: pretrain (stand-in weights, demo and tiny presets), cam_train, cam_export,
iam_train, oacam_export, pseudo_label, seg1_train, seg1_test, seg1_crf,
trainaug_pred, masked_label, seg2_train, seg2_test, seg2_crf,
seg2_trainaug_pred and missed_objects (datasets with an object record),
report. Completed stages are skipped; an interrupted run
resumes; ``--from STAGE`` runs that stage and all later ones again (those
it clears but does not reach, with ``--to`` or a kill, the next run redoes).
W keeps the dataset (its dataset.yaml too), preset and extra flags it was made with:
a run with others is refused unless ``--from STAGE`` names where the change starts.
Scores go to W/results.json and W/results.md, the figures to W/figures/.

Several GPUs (or CPU processes): ``torchrun --nproc_per_node N pipeline.py ...``.
Training, export, test and CRF stages run on every process; label generation
and the report on rank 0 alone; rank 0 writes the markers and results.
"""

# This docstring is pipeline.py's --help text; pipeline.py only calls main().

from __future__ import annotations

import argparse
import logging
from contextlib import nullcontext
from pathlib import Path

import torch

from nsrom.arg_types import whole_number
from nsrom import distributed
from nsrom.dataset_settings import add_layout_args, layout_overrides
from nsrom.errors import exit_on_error
from nsrom.files import ensure_writable_dir
from nsrom.logs import kept_log_file
from .context import RunContext
from .presets import PRESETS, get_preset
from .run import run_pipeline
from .stages import STAGE_NAMES

PIPELINE_LOG = "pipeline.log"
"""The log of every run in a work dir (appended to): the runner's lines and every stage's."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, help="dataset ROOT in the VOC layout (see README)")
    p.add_argument("--work-dir", required=True, help="where every stage writes (W)")
    p.add_argument("--preset", default="voc12", choices=sorted(PRESETS), help="settings (default voc12: the paper)")
    p.add_argument("--from", dest="from_stage", choices=STAGE_NAMES, help="re-run from this stage on")
    p.add_argument("--to", dest="to_stage", choices=STAGE_NAMES, help="stop after this stage")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: CUDA when available")
    p.add_argument("--seg-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra segmentation config override for both rounds (repeatable)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed each DeepLab-v2 training (init, shuffling, augmentation) for a repeatable run")
    p.add_argument("--stage1-attempts", type=whole_number(1), default=None, metavar="N",
                   help="train stage 1 at most N times: again with the next seed while its recognition check "
                        "names a class not learnt (default: the preset's, 3 for demo, 1 for voc12)")
    p.add_argument("--cls-arg", action="append", default=[], metavar="FLAG",
                   help="extra flag for both classification trainers, e.g. --cls-arg=--pretrained-path=vgg16.pth")
    p.add_argument("--cam-arg", action="append", default=[], metavar="FLAG",
                   help="extra flag for stage 1's trainer alone (train.py), after every other, "
                        "e.g. --cam-arg=--accu-gate=0.1 (repeatable)")
    p.add_argument("--pseudo-label-arg", action="append", default=[], metavar="FLAG",
                   help="extra flag for gen_label.py (stage 3), after the preset's rules, "
                        "e.g. --pseudo-label-arg=--no-pom (repeatable)")
    p.add_argument("--masked-label-arg", action="append", default=[], metavar="FLAG",
                   help="extra flag for gen_masked_label.py (stage 6), after the preset's rules, "
                        "e.g. --masked-label-arg=--dilation=20 (repeatable)")
    p.add_argument("--seg-config", type=Path, default=None, metavar="YAML",
                   help="segmentation config of both rounds instead of the preset's "
                        "(e.g. a file with 'BASE: voc12.yaml' and the keys it changes)")
    add_layout_args(p, ("image_ext", "mask_dir", "train_split", "val_split"))
    return p


@exit_on_error
def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    ctx = RunContext(args.data_root, args.work_dir, get_preset(args.preset), device=args.device,
                     seg_overrides=args.seg_set, classifier_extra=args.cls_arg, cam_extra=args.cam_arg,
                     pseudo_label_extra=args.pseudo_label_arg, masked_label_extra=args.masked_label_arg,
                     layout_overrides=layout_overrides(args), seg_config=args.seg_config, seed=args.seed,
                     stage1_attempts=args.stage1_attempts)
    ensure_writable_dir(ctx.work_dir)  # a file, or a folder that cannot be written: one line, exit 2
    distributed.setup_rank_logging()
    # W/pipeline.log holds the whole run (rank 0): every stage's log lines, through their own logging set-ups
    log_file = kept_log_file(ctx.work_dir / PIPELINE_LOG) if distributed.from_env().is_main else nullcontext()
    with log_file:
        logging.getLogger("pipeline").info("dataset %s:\n%s", ctx.data_root, ctx.layout.settings.describe())
        use_cuda = args.device != "cpu" and torch.cuda.is_available()
        with distributed.session("cuda" if use_cuda else "cpu") as info:  # one process group for every stage
            results = run_pipeline(ctx, args.from_stage, args.to_stage)
    if info.is_main:
        print((ctx.work_dir / "results.md").read_text())
    return results
