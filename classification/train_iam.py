"""Stage 2: train the integral attention model (IAM) on the stage-1 maps (train_iam.sh).

    python -m classification.train_iam --data-root ROOT [--exp exp2] [--accu-exp exp1] [...]

Targets are the accumulated maps of stage 1 (``runs/<accu-exp>/accu_att``),
/255, zero for absent classes. Outputs under ``runs/<exp>/``: the checkpoints of
``model/`` and the TensorBoard log, as :mod:`classification.train` writes them (no
accumulated maps and no recognition check: those are stage 1's), which also record the
maps learnt (:mod:`classification.iam_targets`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nsrom.errors import ConfigError, exit_on_error
from nsrom import distributed

from .datasets import IAMDataset
from .iam_loss import iam_loss
from .iam_targets import DIGEST_ARG, TARGETS_KEY, check_finished_iam, targets_record
from .models import vgg1
from .models.attention_net import cam_size
from .run_layout import CLASSIFIER_EXP, IAM_EXP, run_dirs
from .cli_args import add_train_args, resolve_device, samples_from_args
from .run_state import prepare_run
from .training import fit, seed_everything
from .transforms import train_transform


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="NSROM stage 2: integral attention model (IAM)")
    p.add_argument("--exp", default=IAM_EXP, help="experiment name: outputs go to runs/<exp>/")
    add_train_args(p)
    p.add_argument("--accu-exp", default=CLASSIFIER_EXP, help="stage-1 experiment whose accu_att maps are the targets")
    p.add_argument("--accu-dir", "--att-dir", dest="accu_dir", default=None,
                   help="accumulated maps (default runs/<accu-exp>/accu_att)")
    return p


def run(args: argparse.Namespace) -> Path | None:
    """Train; returns the final checkpoint path (None when already trained)."""
    with distributed.session(resolve_device(args.device)):
        return _run(args)


def _run(args: argparse.Namespace) -> Path | None:
    dirs = run_dirs(args.exp, args.runs_dir, model_dir=args.model_dir, log_dir=args.log_dir)
    distributed.setup_rank_logging(dirs.logs / "train.log")
    stage1 = run_dirs(args.accu_exp, args.runs_dir)
    accu_dir = Path(args.accu_dir) if args.accu_dir is not None else stage1.accu_att
    # the maps it learns, a setting of the run: a finished IAM of other maps is stale, a resumed one refused
    targets = targets_record(accu_dir) if accu_dir.is_dir() else None
    setattr(args, DIGEST_ARG, targets["digest"] if targets else None)
    if targets is not None:
        distributed.run_on_main(lambda: check_finished_iam(args, dirs, targets))
    if not distributed.run_on_main(lambda: prepare_run(args, dirs, None)):
        return None
    if args.accu_dir is None and not stage1.checkpoint_final.is_file():
        # the maps of a stage-1 run, which must have finished: its last epoch fills them
        raise ConfigError(f"stage 1 ({args.accu_exp}) has not finished: {stage1.checkpoint_final} does not exist, "
                          f"so its maps in {stage1.accu_att} are partial; finish it first (train.py --resume)")
    seed_everything(args.seed)
    args.accu_dir = str(accu_dir)
    samples, num_classes = samples_from_args(args)
    dataset = IAMDataset(samples, num_classes, train_transform(args.input_size, args.hue_jitter), args.accu_dir, cam_size(args.input_size))
    model = vgg1.vgg16(args.pretrained, num_classes, args.width_div, args.pretrained_path)
    return fit(args, model, dataset, dirs, lambda cam, batch: iam_loss(cam, batch["target"]),
               final_record={TARGETS_KEY: targets} if targets else None)


@exit_on_error
def main(argv: list[str] | None = None) -> Path | None:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
