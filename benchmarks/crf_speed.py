"""Dense CRF throughput (docs/method.md, stage 4 "crf", stage 5): images/s per core at -j 1 and -j N.

Random 21-class softmax maps and smooth random images of 500x375 (a typical
VOC size) through :class:`segmentation.libs.utils.crf.DenseCRF` with the
paper's settings, in joblib processes as ``main.py crf -j N`` runs them.

    python benchmarks/crf_speed.py                # -j 1 and -j <all cores>
    python benchmarks/crf_speed.py --jobs 1,4,8 --images 32
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import joblib
import numpy as np

from segmentation.libs.utils.crf import DenseCRF

from timing import dump, report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="dense CRF images/s per core at several -j")
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--classes", type=int, default=21)
    p.add_argument("--images", type=int, default=None, help="images per -j setting (default 2 per process, >= 4)")
    p.add_argument("--jobs", default=None, help="comma-separated -j values (default 1 and the core count)")
    p.add_argument("--json", default=None)
    return p


def make_inputs(seed: int, height: int, width: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random image and a blurred random softmax map, like real logits upsampled."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8), (width, height))
    logits = rng.normal(size=(n_classes, height // 8, width // 8)).astype(np.float32) * 3
    logits = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in logits])
    prob = np.exp(logits - logits.max(axis=0, keepdims=True))
    return image, prob / prob.sum(axis=0, keepdims=True)


def crf_job(seed: int, height: int, width: int, n_classes: int) -> float:
    image, prob = make_inputs(seed, height, width, n_classes)
    start = time.perf_counter()
    DenseCRF()(image, prob).argmax(axis=0)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    cores = os.cpu_count() or 1
    jobs = [int(j) for j in args.jobs.split(",")] if args.jobs else sorted({1, cores})
    rows = {}
    for n_jobs in jobs:
        n_images = args.images or max(4, 2 * n_jobs)
        pool = joblib.Parallel(n_jobs=n_jobs)
        pool(joblib.delayed(crf_job)(s, 64, 64, 2) for s in range(n_jobs))  # start the workers untimed
        start = time.perf_counter()
        pool(joblib.delayed(crf_job)(s, args.height, args.width, args.classes) for s in range(n_images))
        elapsed = time.perf_counter() - start
        rows[f"-j {n_jobs}: images/s"] = n_images / elapsed
        rows[f"-j {n_jobs}: images/s per core"] = n_images / elapsed / n_jobs
    base = f"-j {jobs[0]}: images/s"
    for n_jobs in jobs[1:]:
        rows[f"-j {n_jobs}: speed-up vs -j {jobs[0]}"] = rows[f"-j {n_jobs}: images/s"] / rows[base]
    result = report(f"dense CRF {args.width}x{args.height}, {args.classes} classes, 10 iterations, "
                    f"{cores} cores", rows, "")
    dump(args.json, [result])
    return result


if __name__ == "__main__":
    main()
