"""Segmentation training speed (docs/method.md, stage 4, "Loss and optimiser"): this code vs the original code path.

Reference mode mimics deeplab-pytorch's loop: float32, the label of every MSC
output resized per sample with PIL on the host and copied to the device, the
loss read back with ``.item()`` every batch, one process. This code: one
device-side gather for the four label sizes, no per-step host read-back, and
optionally ``--amp bf16|fp16`` / ``--channels-last``. Inputs are random tensors
(the data loader is not timed). The CPU defaults are small; the paper's sizes:

    python benchmarks/seg_train_speed.py --paper --device cuda

Prints images/s of each mode and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from nsrom.precision import AMP_MODES, Precision
from segmentation.libs.datasets.transforms import resize_labels_multi
from segmentation.libs.models import DeepLabV2_ResNet101_MSC, freeze_bn
from segmentation.libs.train_step import train_step
from segmentation.libs.utils.solver import build_optimizer
from segmentation.libs.utils.config import load_config

from timing import best_of_interleaved, dump, report

IGNORE = 255


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="segmentation training images/s: this code vs the original path")
    p.add_argument("--crop", type=int, default=161, help="crop size (paper 321)")
    p.add_argument("--batch", type=int, default=5, help="batch size (paper 5)")
    p.add_argument("--iter-size", type=int, default=2, help="batches per step (paper 2)")
    p.add_argument("--blocks", default="1,1,2,1", help="ResNet blocks (paper 3,4,23,3)")
    p.add_argument("--width-div", type=int, default=4, help="channel divisor (paper 1)")
    p.add_argument("--classes", type=int, default=21)
    p.add_argument("--paper", action="store_true", help="crop 321, blocks 3,4,23,3, width 1 (for a GPU)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per mode, taking turns; the best counts")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", default="off", choices=AMP_MODES, help="extra mode: this code with this AMP")
    p.add_argument("--channels-last", action="store_true", help="extra mode: this code channels-last")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p


def pil_resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The original path: each label through PIL NEAREST on the host."""
    out = [np.asarray(Image.fromarray(lab).resize((size[1], size[0]), resample=Image.NEAREST))
           for lab in labels.numpy().astype(np.uint8)]
    return torch.from_numpy(np.stack(out)).long()


def reference_step(model, optimizer, batches, iter_size: int, device: torch.device) -> float:
    """deeplab-pytorch's step: fp32, PIL label resizing per sample and output, ``.item()`` per batch."""
    optimizer.zero_grad()
    total = 0.0
    for images, labels_cpu in batches:
        outputs = model(images.to(device))
        loss = 0
        for logits in outputs:
            target = pil_resize_labels(labels_cpu, logits.shape[2:]).to(device)
            loss = loss + F.cross_entropy(logits, target, ignore_index=IGNORE)
        loss = loss / iter_size
        loss.backward()
        total += float(loss.item())
    optimizer.step()
    return total


def this_code_step(model, optimizer, images, labels, precision: Precision, iter_size: int, device: torch.device,
                   scaler=None):
    """One step of :func:`segmentation.libs.train.train`'s loop (labels copied to the device as the loader does).

    ``scaler``: the run's fp16 GradScaler, kept across steps as training keeps it (made here when None).
    """
    scaler = scaler if scaler is not None else precision.grad_scaler()

    def step() -> torch.Tensor:
        batches = ((i, lab.to(device)) for i, lab in zip(images, labels))
        return train_step(model, optimizer, batches, iter_size=iter_size, ignore_label=IGNORE,
                          precision=precision, scaler=scaler)

    return step


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.paper:
        args.crop, args.blocks, args.width_div = 321, "3,4,23,3", 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = load_config()
    base = DeepLabV2_ResNet101_MSC(args.classes, [int(b) for b in args.blocks.split(",")], width_div=args.width_div)
    base.train()
    freeze_bn(base)
    images = [torch.randn(args.batch, 3, args.crop, args.crop) for _ in range(args.iter_size)]
    labels = [torch.randint(0, args.classes, (args.batch, args.crop, args.crop)) for _ in range(args.iter_size)]
    for lab in labels:
        lab[:, : args.crop // 8] = IGNORE
    cpu_batches = list(zip(images, labels))

    def fresh(precision: Precision | None = None):
        model = copy.deepcopy(base).to(device)
        if precision is not None:
            precision.prepare_model(model)
        return model, build_optimizer(model, cfg.SOLVER)

    runners = {}
    model, opt = fresh()
    runners["reference (original path)"] = (
        lambda model=model, opt=opt: reference_step(model, opt, cpu_batches, args.iter_size, device))
    modes = [("this code (fp32)", Precision("off", False, device.type))]
    if args.amp != "off" or args.channels_last:
        modes.append((f"this code ({args.amp}{', NHWC' if args.channels_last else ''})",
                      Precision(args.amp, args.channels_last, device.type)))
    dev_images = [i.to(device) for i in images]
    for name, precision in modes:
        model, opt = fresh(precision)
        runners[name] = this_code_step(model, opt, dev_images, labels, precision, args.iter_size, device)
    seconds = best_of_interleaved(runners, args.steps, str(device))
    rows = {name: args.batch * args.iter_size / sec for name, sec in seconds.items()}
    title = (f"segmentation train step, crop {args.crop}, batch {args.batch} x {args.iter_size}, MSC, "
             f"blocks {args.blocks}, width/{args.width_div}, best of {args.steps}, {device}, {torch.get_num_threads()} threads")
    result = report(title, rows, "images/s", baseline="reference (original path)")
    label_result = label_resize_speed(base, images[0].to(device), labels[0], device, args.steps)
    dump(args.json, [result, label_result])
    return result


def label_resize_speed(model, images: torch.Tensor, labels: torch.Tensor, device: torch.device, rounds: int) -> dict:
    """The label side alone: the four MSC label sizes by PIL per sample vs one device-side gather."""
    with torch.no_grad():
        sizes = [tuple(o.shape[2:]) for o in model.to(device)(images)]
    runners = {
        "PIL per sample (original)": lambda: [pil_resize_labels(labels, s).to(device) for s in sizes],
        "one device gather (this code)": lambda: resize_labels_multi(labels.to(device), sizes),
    }
    seconds = best_of_interleaved(runners, max(rounds, 5), str(device))
    rows = {name: 1.0 / sec for name, sec in seconds.items()}
    return report(f"label resizing of one batch {tuple(labels.shape)} to {sizes}", rows, "batches/s",
                  baseline="PIL per sample (original)")


if __name__ == "__main__":
    main()
