"""Stage 1: train the OAA classifier with online attention accumulation (train.sh).

    python -m classification.train --data-root ROOT [--exp exp1] [...]

Writes ``runs/<exp>/model/checkpoint_{last,final}.pth``, the accumulated maps
``runs/<exp>/accu_att/<id>_<c>.png``, TensorBoard curves and a log in
``runs/<exp>/logs``, the resolved arguments in ``runs/<exp>/train_args.json`` and the
recognition check of the trained classifier in ``runs/<exp>/recognition.json``
(classification/recognition.py: the classes it did not learn, from image labels alone).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from nsrom.arg_types import non_negative_int
from nsrom.errors import exit_on_error
from nsrom import distributed

from .attention_accumulation import PROBABILITY_GATE, START_EPOCH, AttentionAccumulator
from .datasets import ImageLabelDataset, Sample
from .models import vgg
from .models.attention_net import AttentionNet, class_logits
from .models.pretrained import load_model_state, read_checkpoint
from .recognition import RECOGNITION_LINE, REPORT_NAME, check_recognition, foreground_names
from .run_layout import CLASSIFIER_EXP, run_dirs
from .cli_args import add_train_args, resolve_device, samples_from_args
from .run_state import prepare_run
from .training import fit, seed_everything
from .transforms import train_transform

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="NSROM stage 1: OAA classifier + online attention accumulation")
    p.add_argument("--exp", default=CLASSIFIER_EXP, help="experiment name: outputs go to runs/<exp>/")
    add_train_args(p)
    p.add_argument("--accu-dir", "--att-dir", dest="accu_dir", default=None,
                   help="accumulated attention maps (default runs/<exp>/accu_att)")
    p.add_argument("--accu-gate", type=fraction, default=PROBABILITY_GATE,
                   help=f"a CAM is accumulated only if its class probability is at least this "
                        f"(default {PROBABILITY_GATE}, the paper's; the CPU demo uses a higher one)")
    p.add_argument("--accu-start-epoch", type=non_negative_int, default=START_EPOCH, metavar="E",
                   help=f"first epoch (0-based) whose CAMs are accumulated (default {START_EPOCH}, the paper's); "
                        f"the last epoch, when it is accumulated, still fills the maps that are missing")
    p.add_argument("--recognition-line", type=fraction, default=RECOGNITION_LINE,
                   help=f"after training, a class whose average precision on the training images is under this "
                        f"is reported as not learnt (default {RECOGNITION_LINE}; image labels only)")
    return p


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1] (``--accu-gate``, a probability; ``--recognition-line``, an AP)."""
    message = f"must be a number between 0 and 1, got {text!r}"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(message) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(message)
    return value


def classification_loss(cam: torch.Tensor, batch: dict) -> torch.Tensor:
    """Multi-label soft margin loss on the GAP logits of the CAM (stage 1)."""
    return F.multilabel_soft_margin_loss(class_logits(cam), batch["label"])


def run(args: argparse.Namespace) -> Path | None:
    """Train; returns the final checkpoint path (None when already trained)."""
    with distributed.session(resolve_device(args.device)):
        return _run(args)


def _run(args: argparse.Namespace) -> Path | None:
    dirs = run_dirs(args.exp, args.runs_dir, model_dir=args.model_dir, accu_dir=args.accu_dir, log_dir=args.log_dir)
    distributed.setup_rank_logging(dirs.logs / "train.log")
    if args.accu_start_epoch >= args.epochs:
        log.warning("--accu-start-epoch %d with --epochs %d: no CAM is accumulated (stage 2 needs the maps)",
                    args.accu_start_epoch, args.epochs)
    accumulator = AttentionAccumulator(dirs.accu_att, args.epochs, start_epoch=args.accu_start_epoch,
                                       gate=args.accu_gate)
    if not distributed.run_on_main(lambda: prepare_run(args, dirs, accumulator)):
        if not (dirs.root / REPORT_NAME).is_file():  # trained before the check existed, or killed just before it
            distributed.run_on_main(lambda: _check_checkpoint(args, dirs.checkpoint_final, dirs.root / REPORT_NAME))
            distributed.barrier()
        return None
    seed_everything(args.seed)
    samples, num_classes = samples_from_args(args)
    dataset = ImageLabelDataset(samples, num_classes, train_transform(args.input_size, args.hue_jitter))
    model = vgg.vgg16(args.pretrained, num_classes, args.width_div, args.pretrained_path)
    final = fit(args, model, dataset, dirs, classification_loss, accumulator)
    device = next(model.parameters()).device
    distributed.run_on_main(lambda: _recognition(args, model, samples, num_classes, dirs.root / REPORT_NAME, device))
    distributed.barrier()
    return final


def _check_checkpoint(args: argparse.Namespace, checkpoint: Path, report: Path) -> dict:
    """The recognition check of a finished run, from its final checkpoint."""
    samples, num_classes = samples_from_args(args)
    ckpt = read_checkpoint(checkpoint)
    model = vgg.vgg16(False, num_classes, int(ckpt.get("width_div", args.width_div)))
    load_model_state(model, ckpt, str(checkpoint))
    return _recognition(args, model, samples, num_classes, report, resolve_device(args.device))


def _recognition(args: argparse.Namespace, model: AttentionNet, samples: list[Sample], num_classes: int,
                 report: Path, device: torch.device) -> dict:
    """Stage 1's recognition check (docs/method.md) of ``model`` on the training samples, written to ``report``."""
    return check_recognition(model, samples, num_classes, args.input_size,
                             foreground_names(args.data_root, num_classes), report, args.recognition_line,
                             args.seed, device, args.num_workers)


@exit_on_error
def main(argv: list[str] | None = None) -> Path | None:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
