"""The command-line flags of the classification scripts (train.py, train_iam.py, test.py, test_iam.py):
where the data is, the training settings (defaults are the paper's, docs/method.md, stages 1 and 2),
and the argparse types they use."""

from __future__ import annotations

import argparse

import torch

from nsrom.arg_types import non_negative_int, positive_int, real_number, whole_number
from nsrom.dataset_settings import add_layout_args, layout_overrides
from nsrom.errors import ConfigError
from nsrom.precision import AMP_MODES, AMP_OFF

from .datasets import Sample, load_samples
from .optim import DEFAULT_DECAY_POINTS, DEFAULT_LR, WEIGHT_DECAY
from .transforms import DEFAULT_INPUT_SIZE, HUE

DEFAULT_EPOCHS = 15
DEFAULT_BATCH_SIZE = 5
DEFAULT_CHECKPOINT_MINUTES = 10.0
"""Default cadence of checkpoint_recent.pth: a crash loses at most this much training."""


def int_list(text: str) -> list[int]:
    """Parse ``"5,10"`` (argparse type for --decay-points); empty means none."""
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


MIN_INPUT_SIZE = 8
"""The smallest input side: the CAM is at stride 8, one cell at 8 px."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given (``cpu``, ``cuda:1``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here; use --device cpu")
    return device


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Flags that say where the images and image-level labels are (stages 1, 1b, 2)."""
    p.add_argument("--data-root", default=None, help="dataset ROOT in the VOC layout of nsrom.data")
    p.add_argument("--list", "--train-list", dest="list", default=None,
                   help="image list: plain ids or train_cls.txt format "
                        "(default ROOT/ImageSets/Segmentation/<train split>.txt)")
    p.add_argument("--img-dir", default=None, help="image folder (default ROOT/JPEGImages)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="foreground classes C (default from ROOT/labels.txt, else 20)")
    p.add_argument("--input-size", type=whole_number(MIN_INPUT_SIZE), default=DEFAULT_INPUT_SIZE,
                   help="images are resized to SxS (at least 8: the CAM is at stride 8)")
    p.add_argument("--runs-dir", default=None, help="folder of the runs (default classification/runs)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--num-workers", type=non_negative_int, default=4, help="DataLoader worker processes")
    p.add_argument("--check-data", action=argparse.BooleanOptionalAction, default=True,
                   help="decode every listed image and check the class indices before starting "
                        "(tools/check_data.py; the pipeline checks once at its start)")
    add_layout_args(p)


def samples_from_args(args: argparse.Namespace) -> tuple[list[Sample], int]:
    """The samples and class count that the flags of :func:`add_data_args` select."""
    return load_samples(args.data_root, args.list, args.img_dir, args.num_classes, layout_overrides(args),
                        check_workers(args))


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by train.py and train_iam.py; defaults are the paper's."""
    add_data_args(p)
    p.add_argument("--model-dir", "--snapshot-dir", dest="model_dir", default=None,
                   help="checkpoints (default runs/<exp>/model)")
    p.add_argument("--log-dir", default=None, help="log file and TensorBoard (default runs/<exp>/logs)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS)
    p.add_argument("--lr", type=real_number(0), default=DEFAULT_LR,
                   help="backbone weight lr (x2, x10, x20 for the other groups)")
    p.add_argument("--weight-decay", type=real_number(0), default=WEIGHT_DECAY)
    p.add_argument("--decay-points", type=int_list, default=list(DEFAULT_DECAY_POINTS),
                   help="epochs at whose start lr is multiplied by 0.1 (default 5,10)")
    p.add_argument("--warmup-steps", type=non_negative_int, default=0, metavar="N",
                   help="raise the rate linearly over the first N steps (default 0: none, the paper's; "
                        "the CPU demo warms up from its stand-in weights)")
    p.add_argument("--hue-jitter", type=real_number(0, 0.5), default=HUE,
                   help="largest hue shift of the colour jitter, a fraction of the hue circle (default 0.1, the "
                        "paper's); lower it where classes differ by colour, or a shift turns one into another")
    p.add_argument("--width-div", type=positive_int, default=1,
                   help="divide every channel count (CPU demo); ImageNet weights fit 1 only, a narrower net "
                        "needs --no-pretrained or a --pretrained-path file of its width")
    p.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True,
                   help="start the backbone from ImageNet VGG16 weights")
    p.add_argument("--pretrained-path", default=None, help="local vgg16-397923af.pth (default: torch hub cache/URL)")
    p.add_argument("--seed", type=int, default=None, help="torch random seed (default: not set)")
    p.add_argument("--amp", default=AMP_OFF, choices=AMP_MODES,
                   help="mixed precision (fp16 adds loss scaling); off = the paper's float32 (docs/speed.md)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False,
                   help="NHWC memory format for weights and inputs (off by default, see docs/speed.md)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the most advanced of runs/<exp>/model/checkpoint_{last,recent}.pth if present")
    p.add_argument("--checkpoint-every-steps", type=non_negative_int, default=0, metavar="N",
                   help="also write checkpoint_recent.pth every N steps inside an epoch (0: off)")
    p.add_argument("--checkpoint-every-minutes", type=real_number(0), default=DEFAULT_CHECKPOINT_MINUTES, metavar="M",
                   help="... and every M minutes (0: off; default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="start over even if outputs of an earlier run exist")


def check_workers(args: argparse.Namespace) -> int | None:
    """Processes of the input check (``--num-workers``, at least 1), or None with ``--no-check-data``."""
    return max(1, args.num_workers) if getattr(args, "check_data", True) else None
