"""Loss curve of this code's segmentation training step vs the original code path.

Issue target: with a fixed seed, the loss curve of this code (optionally with
``--amp`` / ``--channels-last``) matches the reference mode (fp32, PIL label
resizing per sample) within noise. Both start from the same weights and see
the same batches; "noise" is measured as the gap between two reference runs
whose data differ only in the order of the batches.

    python benchmarks/seg_loss_curve.py                      # CPU: small network, 60 steps
    python benchmarks/seg_loss_curve.py --paper --steps 200 --device cuda --amp bf16 --channels-last

Prints the mean absolute gap of the smoothed curves (this code vs reference,
and reference vs reference with shuffled batches) and the final losses.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from torch.nn import functional as F

from nsrom.precision import AMP_MODES, Precision
from segmentation.libs.models import DeepLabV2_ResNet101_MSC, freeze_bn
from segmentation.libs.utils.config import load_config
from segmentation.libs.utils.solver import build_optimizer

from seg_train_speed import IGNORE, reference_step, this_code_step


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60, help="training steps per run (issue target: 200)")
    p.add_argument("--crop", type=int, default=97)
    p.add_argument("--batch", type=int, default=5)
    p.add_argument("--iter-size", type=int, default=2)
    p.add_argument("--blocks", default="1,1,1,1")
    p.add_argument("--width-div", type=int, default=8)
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--paper", action="store_true", help="crop 321, blocks 3,4,23,3, width 1, 21 classes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", default="off", choices=AMP_MODES)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smooth", type=int, default=10, help="moving-average window for the comparison")
    return p


def learnable_batches(args, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches whose labels are a fixed function of the image (so the loss falls)."""
    mix = torch.randn(args.classes, 3, generator=generator)
    batches = []
    for _ in range(args.steps * args.iter_size):
        image = F.avg_pool2d(torch.randn(args.batch, 3, args.crop, args.crop, generator=generator) * 60, 9, 1, 4)
        label = torch.einsum("kc,bchw->bkhw", mix, image).argmax(1)
        label[:, : args.crop // 10] = IGNORE
        batches.append((image, label))
    return batches


def run(args, base, batches, precision: Precision | None, device) -> list[float]:
    model = copy.deepcopy(base).to(device)
    if precision is not None:
        precision.prepare_model(model)
    optimizer = build_optimizer(model, load_config().SOLVER)
    scaler = precision.grad_scaler() if precision is not None else None  # one per run, as in training
    losses = []
    for s in range(args.steps):
        chunk = batches[s * args.iter_size:(s + 1) * args.iter_size]
        if precision is None:
            losses.append(reference_step(model, optimizer, chunk, args.iter_size, device))
        else:
            images = [i.to(device) for i, _ in chunk]
            step = this_code_step(model, optimizer, images, [lab for _, lab in chunk], precision, args.iter_size,
                                  device, scaler=scaler)
            losses.append(float(step()))
    return losses


def smooth(x: list[float], k: int) -> np.ndarray:
    return np.convolve(np.asarray(x), np.ones(k) / k, mode="valid")


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.paper:
        args.crop, args.blocks, args.width_div, args.classes = 321, "3,4,23,3", 1, 21
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    base = DeepLabV2_ResNet101_MSC(args.classes, [int(b) for b in args.blocks.split(",")], width_div=args.width_div)
    base.train()
    freeze_bn(base)
    batches = learnable_batches(args, torch.Generator().manual_seed(args.seed))
    order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(args.seed + 1)).tolist()
    shuffled = [batches[i] for i in order]
    ref = run(args, base, batches, None, device)
    ref_shuffled = run(args, base, shuffled, None, device)
    mine = run(args, base, batches, Precision(args.amp, args.channels_last, device.type), device)
    k = min(args.smooth, args.steps)
    gap = float(np.abs(smooth(mine, k) - smooth(ref, k)).mean())
    noise = float(np.abs(smooth(ref_shuffled, k) - smooth(ref, k)).mean())
    mode = f"this code ({args.amp}{', NHWC' if args.channels_last else ''})"
    print(f"{args.steps} steps, crop {args.crop}, blocks {args.blocks}, width/{args.width_div}, {device}, seed {args.seed}")
    print(f"loss first/last: reference {ref[0]:.4f} -> {ref[-1]:.4f}; {mode} {mine[0]:.4f} -> {mine[-1]:.4f}")
    print(f"mean |gap| of {k}-step moving averages: {mode} vs reference {gap:.5f}; "
          f"noise (reference, batches reordered) {noise:.5f}; ratio {gap / max(noise, 1e-12):.3f}")
    print("within noise" if gap <= noise else "NOT within noise")
    return {"gap": gap, "noise": noise, "reference": ref, "this_code": mine}


if __name__ == "__main__":
    main()
