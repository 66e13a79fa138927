"""Dense CRF backends (docs/method.md, stage 4 "crf"): agreement of the PyTorch CRF with pydensecrf, and speed.

On synthetic 500x375 images with 21-class softmax maps (``crf_inputs.py``:
model-like maps, noisy ones, and model-like maps with the wrapped
mean-subtracted image of ``CRF.WRAPPED_IMAGE: true``), both backends with the
paper's settings:

- agreement: % of pixels with the same label, per image (min and mean), for
  each kind of input; mIoU of each backend against the ground truth
  of the set, and the difference in points;
- speed: images/s of pydensecrf at -j 1 and -j <cores> (``crf_speed.py``), of
  the torch backend on one CPU thread and on all cores, and on the GPU
  (named) when there is one, with the peak GPU memory per image (on the CPU:
  the peak of the tensors' allocation trace, an estimate of it); for the
  one-core rows also the CPU seconds per image (and their ratio), which other
  work on a shared machine disturbs less than wall time.

    python benchmarks/crf_backends.py                       # CPU
    python benchmarks/crf_backends.py --device cuda --batch 8 --speed-images 64
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from nsrom.metrics import ConfusionAccumulator, scores
from segmentation.libs.data_config import mean_bgr
from segmentation.libs.utils.config import load_config
from segmentation.libs.utils.crf import DenseCRF, wrapped_image

from crf_inputs import synthetic_inputs
from crf_speed import pydensecrf_rate
from timing import dump, report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="PyTorch dense CRF vs pydensecrf: label agreement, mIoU, images/s")
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--classes", type=int, default=21)
    p.add_argument("--images", type=int, default=8,
                   help="images of each kind (model-like, noisy, wrapped image) for the agreement")
    p.add_argument("--speed-images", type=int, default=None,
                   help="images per speed measurement (default: --batch on the CPU, 8 batches on the GPU)")
    p.add_argument("--batch", type=int, default=4, help="images per call of the torch backend")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cuda adds the GPU rows (default: cuda when available)")
    p.add_argument("--skip-cpu-torch", action="store_true", help="leave out the torch backend's CPU rows (slow)")
    p.add_argument("--json", default=None)
    return p


def agreement(args, device: torch.device) -> dict[str, float]:
    """Label agreement per image and the mIoU of each backend on the synthetic set."""
    reference, ours = DenseCRF(backend="pydensecrf"), DenseCRF(backend="torch", device=device)
    rows: dict[str, float] = {}
    acc = {"pydensecrf": ConfusionAccumulator(args.classes), "torch": ConfusionAccumulator(args.classes)}
    for kind, noisy, wrapped in (("model-like", False, False), ("noisy", True, False), ("wrapped image", False, True)):
        same, differing = [], []
        for seed in range(args.images):
            image, prob, mask = synthetic_inputs(1000 * noisy + seed, args.height, args.width, args.classes, noisy)
            if wrapped:  # CRF.WRAPPED_IMAGE: true, the default
                image = wrapped_image(image, mean_bgr(load_config()))
            ref = reference.labels([image], [prob])[0]
            out = ours.labels([image], [prob])[0]
            same.append(100 * (ref == out).mean())
            differing.append(int((ref != out).sum()))
            acc["pydensecrf"].update(mask, ref)
            acc["torch"].update(mask, out)
        rows[f"{kind}: agreement % min"] = min(same)
        rows[f"{kind}: agreement % mean"] = float(np.mean(same))
        rows[f"{kind}: pixels differing, max per image"] = max(differing)
    miou = {name: 100 * scores(a.matrix)["Mean IoU"] for name, a in acc.items()}
    rows["mIoU pydensecrf"], rows["mIoU torch"] = miou["pydensecrf"], miou["torch"]
    rows["mIoU |difference| (points)"] = abs(miou["torch"] - miou["pydensecrf"])
    return rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_rate(crf: DenseCRF, inputs: list[tuple[np.ndarray, np.ndarray]], batch: int) -> float:
    """Images/s of the torch backend over ``inputs`` in calls of ``batch`` images (after one untimed call)."""
    crf.labels(*zip(*inputs[:batch]))
    _sync(crf.device)
    start = time.perf_counter()
    for i in range(0, len(inputs), batch):
        crf.labels(*zip(*inputs[i:i + batch]))
    _sync(crf.device)
    return len(inputs) / (time.perf_counter() - start)


def traced_peak_bytes(fn) -> int:
    """Peak bytes held by tensors allocated during ``fn()`` on the CPU, from the profiler's allocation trace.

    Without a GPU this estimates the CUDA memory the same tensors need (the
    caching allocator adds a little).
    """
    with torch.profiler.profile(profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    live = peak = 0
    for event in events:
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def speed(args, device: torch.device) -> dict[str, float]:
    cores = os.cpu_count() or 1
    cpu_images = args.speed_images or args.batch
    n_inputs = max(cpu_images, args.batch)
    inputs = [synthetic_inputs(s, args.height, args.width, args.classes)[:2] for s in range(n_inputs)]
    start = time.process_time()
    rows = {"pydensecrf -j 1: images/s": pydensecrf_rate(1, inputs[:cpu_images])}
    rows["pydensecrf -j 1: CPU s per image"] = (time.process_time() - start) / cpu_images  # warm-up: 8x8 images
    if cores > 1:
        rows[f"pydensecrf -j {cores}: images/s"] = pydensecrf_rate(cores, inputs[:max(cpu_images, 2 * cores)])
    if not args.skip_cpu_torch:
        threads = torch.get_num_threads()
        for n in sorted({1, cores}):
            torch.set_num_threads(n)
            start = time.process_time()
            crf = DenseCRF(backend="torch")
            rows[f"torch CPU {n} thread(s): images/s"] = torch_rate(crf, inputs[:cpu_images], args.batch)
            if n == 1:
                warm_up = min(args.batch, cpu_images)
                rows["torch CPU 1 thread: CPU s per image"] = (time.process_time() - start) / (cpu_images + warm_up)
        crf = DenseCRF(backend="torch")
        batch = inputs[:args.batch]
        rows["torch CPU: peak MiB per image (allocation trace)"] = (
            traced_peak_bytes(lambda: crf.labels(*zip(*batch))) / 2 ** 20 / len(batch))
        torch.set_num_threads(threads)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        gpu_inputs = [inputs[i % len(inputs)] for i in range(args.speed_images or 8 * args.batch)]
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        rows[f"torch {name} batch {args.batch}: images/s"] = torch_rate(
            DenseCRF(backend="torch", device=device), gpu_inputs, args.batch)
        peak = torch.cuda.max_memory_allocated(device) - base
        rows[f"torch {name}: peak MiB per image"] = peak / 2 ** 20 / args.batch
    one_core = rows["pydensecrf -j 1: images/s"]
    for key in [k for k in rows if k.startswith("torch") and k.endswith("images/s")]:
        rows[f"{key.split(':')[0]}: x pydensecrf -j 1"] = rows[key] / one_core
    if "torch CPU 1 thread: CPU s per image" in rows:  # robust to other work on the machine
        rows["CPU time ratio torch 1 thread / pydensecrf"] = (
            rows["torch CPU 1 thread: CPU s per image"] / rows["pydensecrf -j 1: CPU s per image"])
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    size = f"{args.width}x{args.height}, {args.classes} classes, 10 iterations"
    results = [
        report(f"CRF backends agree ({size}, 3 x {args.images} images)", agreement(args, device), ""),
        report(f"CRF backends speed ({size}, {os.cpu_count()} cores)", speed(args, device), ""),
    ]
    dump(args.json, results)
    return results


if __name__ == "__main__":
    main()
