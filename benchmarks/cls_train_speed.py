"""Classification training speed with online attention accumulation on (docs/method.md, stage 1).

Reference mode mimics the original OAA code path: float32, and after every
batch, for every (image, present class), the CAM channel copied to the host on
its own, normalised, the stored PNG read from disk, fused by maximum and the
PNG written back. This code: one batched copy per batch, maps kept in memory,
PNGs written once per epoch (and optionally ``--amp`` / ``--channels-last``).
Random in-memory images (the data loader is not timed); epochs >= 1, so every
batch accumulates.

    python benchmarks/cls_train_speed.py                 # CPU defaults
    python benchmarks/cls_train_speed.py --paper --device cuda   # 256 px, full VGG16, batch 5
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from classification.attention_accumulation import AttentionAccumulator
from classification.models import vgg
from classification.models.attention_net import class_logits
from classification.optim import build_optimizer
from classification.training import train_step
from nsrom.precision import AMP_MODES, Precision

from timing import best_of_interleaved, dump, report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="classification training images/s with accumulation: this code vs original")
    p.add_argument("--size", type=int, default=128, help="input size (paper 256)")
    p.add_argument("--batch", type=int, default=5, help="batch size (paper 5)")
    p.add_argument("--width-div", type=int, default=4, help="channel divisor (paper 1)")
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--images", type=int, default=20, help="images per epoch")
    p.add_argument("--rounds", type=int, default=3, help="timed epochs per mode, taking turns; the best counts")
    p.add_argument("--paper", action="store_true", help="256 px, width 1 (for a GPU)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", default="off", choices=AMP_MODES, help="extra mode: this code with this AMP")
    p.add_argument("--channels-last", action="store_true", help="extra mode: this code channels-last")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    return p


def loss_fn(cam: torch.Tensor, batch: dict) -> torch.Tensor:
    return F.multilabel_soft_margin_loss(class_logits(cam), batch["label"])


def reference_accumulate(out_dir: Path, ids, labels: torch.Tensor, cams: torch.Tensor, logits: torch.Tensor) -> None:
    """The original per-map path: one host copy, one PNG read and one PNG write per (image, class)."""
    for b, image_id in enumerate(ids):
        for c in torch.nonzero(labels[b]).flatten().tolist():
            att = cams[b, c].detach().cpu().numpy()
            att[att < 0] = 0
            att = (att / (att.max() + 1e-8) * 255).astype(np.uint8)
            prob = float(torch.sigmoid(logits[b, c]).item())
            path = out_dir / f"{image_id}_{c}.png"
            if path.is_file():
                if prob < 0.1:
                    continue
                att = np.maximum(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), att)
            cv2.imwrite(str(path), att)


def reference_runner(base, batches, device: torch.device, out_dir: Path):
    """One epoch of the original loop (fresh copy of the model; maps on disk persist across calls)."""
    model = copy.deepcopy(base).to(device)
    opt = build_optimizer(model, 1e-3, 5e-4)
    out_dir.mkdir(parents=True, exist_ok=True)

    def epoch() -> None:
        for batch in batches:
            cam = model(batch["image"].to(device))
            loss = loss_fn(cam, {"label": batch["label"].to(device)})
            reference_accumulate(out_dir, batch["id"], batch["label"], cam, class_logits(cam))
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()

    return epoch


def this_code_runner(base, batches, device: torch.device, precision: Precision, out_dir: Path):
    """One epoch of :func:`classification.training.fit`'s loop: train_step, batched records, one save."""
    model = precision.prepare_model(copy.deepcopy(base).to(device))
    opt = build_optimizer(model, 1e-3, 5e-4)
    scaler = precision.grad_scaler()
    accumulator = AttentionAccumulator(out_dir, num_epochs=10**6)  # never the last epoch
    epoch_number = iter(range(1, 10**6))

    def epoch() -> None:
        current, records = next(epoch_number), []
        for batch in batches:
            on_device = {"image": batch["image"].to(device), "label": batch["label"].to(device)}
            cam, loss = train_step(model, opt, on_device, loss_fn, precision, scaler)
            records.extend(accumulator.prepare(current, batch["id"], on_device["label"], cam, class_logits(cam)))
            loss.item()  # fit() logs every step's loss
        accumulator.apply(current, records)
        accumulator.save()

    return epoch


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.paper:
        args.size, args.width_div = 256, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    base = vgg.vgg16(False, args.classes, args.width_div)
    batches = []
    for start in range(0, args.images, args.batch):
        n = min(args.batch, args.images - start)
        label = (torch.rand(n, args.classes) < 0.1).float()
        label[torch.arange(n), torch.randint(0, args.classes, (n,))] = 1.0
        batches.append({"id": [f"img{start + i:05d}" for i in range(n)], "image": torch.randn(n, 3, args.size, args.size),
                        "label": label})
    with tempfile.TemporaryDirectory() as tmp:
        runners = {"reference (original path)": reference_runner(base, batches, device, Path(tmp) / "reference")}
        modes = [("this code (fp32)", Precision("off", False, device.type))]
        if args.amp != "off" or args.channels_last:
            modes.append((f"this code ({args.amp}{', NHWC' if args.channels_last else ''})",
                          Precision(args.amp, args.channels_last, device.type)))
        for i, (name, precision) in enumerate(modes):
            runners[name] = this_code_runner(base, batches, device, precision, Path(tmp) / f"mode{i}")
        seconds = best_of_interleaved(runners, args.rounds, str(device))
    rows = {name: args.images / sec for name, sec in seconds.items()}
    title = (f"classification train + accumulation, {args.size} px, batch {args.batch}, width/{args.width_div}, "
             f"{args.images} images/epoch, best of {args.rounds}, {device}, {torch.get_num_threads()} threads")
    result = report(title, rows, "images/s", baseline="reference (original path)")
    dump(args.json, [result])
    return result


if __name__ == "__main__":
    main()
