"""The CPU demo's stand-in for the ImageNet VGG16 weights of stages 1 and 2.

    python -m classification.standin --out vgg16_standin.pth --width-div 8 --input-size 128

Trains the VGG16-D1 convolutions of :mod:`.models.attention_net` (``--width-div``
narrower) on the source task of :mod:`nsrom.source_task`, a per-pixel task
that is not the demo's data, and writes their weights in the layout of
torchvision's ``vgg16-397923af.pth`` (``features.<index>.weight/bias``): stages
1 and 2 load the file with ``--pretrained-path``, exactly as the ImageNet file.

A plain VGG16 (no normalisation) learns slowly from random weights, so the
stand-in is trained with a BatchNorm after each convolution and every
BatchNorm is then folded into its convolution (``w * g / sqrt(var + eps)``,
``(b - mean) * g / sqrt(var + eps) + beta``): the file holds a plain VGG16 that
computes what the normalised one computed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nsrom.errors import exit_on_error
from nsrom.training_state import save_state
from nsrom.logs import setup_logging
from nsrom.source_task import NUM_SOURCE_CLASSES, recalibrate_batchnorm, source_set, train_dense

from .models.attention_net import OAA_HEAD, AttentionNet, scaled
from .transforms import DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD

LOG = logging.getLogger(__name__)

DEFAULTS = {"images": 600, "steps": 400, "batch_size": 16, "lr": 1e-3, "seed": 0}
"""Source images, Adam steps, batch, rate and seed of the stand-in training."""


class NormalisedFeatures(nn.Module):
    """VGG16-D1 ``features`` with a BatchNorm after each conv (before its ReLU) and a 1x1 classifier."""

    def __init__(self, features: nn.Sequential, num_classes: int):
        super().__init__()
        self.features = features
        convs = [m for m in features if isinstance(m, nn.Conv2d)]
        self.norms = nn.ModuleList(nn.BatchNorm2d(c.out_channels) for c in convs)
        self.classifier = nn.Conv2d(convs[-1].out_channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norms = iter(self.norms)
        for module in self.features:
            x = module(x)
            if isinstance(module, nn.Conv2d):
                x = next(norms)(x)
        return self.classifier(x)

    @torch.no_grad()
    def folded_features(self) -> nn.Sequential:
        """The plain ``features`` with each BatchNorm (eval statistics) folded into its conv."""
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        for conv, norm in zip(convs, self.norms):
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias.copy_((conv.bias - norm.running_mean) * scale + norm.bias)
        self.norms = nn.ModuleList(nn.Identity() for _ in convs)
        return self.features


def imagenet_input(batch: np.ndarray) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 RGB -> the stage-1 network input (ImageNet mean/std), NCHW float32."""
    x = torch.from_numpy(batch).float().div_(255.0)
    x = (x - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    return x.permute(0, 3, 1, 2).contiguous()


def make_vgg16_standin(
    out_path: str | Path,
    width_div: int,
    input_size: int = DEFAULT_INPUT_SIZE,
    images: int = DEFAULTS["images"],
    steps: int = DEFAULTS["steps"],
    batch_size: int = DEFAULTS["batch_size"],
    lr: float = DEFAULTS["lr"],
    seed: int = DEFAULTS["seed"],
) -> Path:
    """Train the stand-in and write ``features.*`` (torchvision's VGG16 layout) to ``out_path``."""
    torch.manual_seed(seed)
    features = AttentionNet(1, OAA_HEAD, width_div).features  # the stage-1 init of the convs
    model = NormalisedFeatures(features, NUM_SOURCE_CLASSES + 1)
    data, labels = source_set(images, input_size, seed)
    train_dense(model, imagenet_input, data, labels, steps, batch_size, lr, seed, desc="VGG16 stand-in")
    recalibrate_batchnorm(model, imagenet_input, data, batch_size)
    state = {f"features.{k}": v.clone() for k, v in model.folded_features().state_dict().items()}
    out_path = Path(out_path)
    save_state(out_path, state)  # atomic, and the same bytes for the same weights
    LOG.info("VGG16 stand-in (width 1/%d, %d px, %d steps) written to %s", width_div, input_size, steps, out_path)
    return out_path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="weight file to write (load it with --pretrained-path)")
    p.add_argument("--width-div", type=int, default=1, help="channel divisor of the network that will load it")
    p.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE, help="source image side (the stage-1 input)")
    p.add_argument("--images", type=int, default=DEFAULTS["images"], help="source images drawn")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="Adam steps")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    return p


@exit_on_error
def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    setup_logging()
    scaled(512, args.width_div)  # a bad divisor fails before any work
    return make_vgg16_standin(args.out, args.width_div, args.input_size, args.images, args.steps,
                              args.batch_size, args.lr, args.seed)


if __name__ == "__main__":
    main()
