"""Dense CRF throughput of pydensecrf (docs/method.md, stage 4 "crf", stage 5): images/s per core at -j 1 and -j N.

Synthetic 500x375 images (a typical VOC size) with model-like 21-class
softmax maps (``crf_inputs.py``) through
:class:`segmentation.libs.utils.crf.DenseCRF` with the paper's settings and
the pydensecrf backend, in joblib processes as ``main.py crf -j N`` runs them.
The inputs are made before the clock starts. ``crf_backends.py`` compares
this with the PyTorch backend.

    python benchmarks/crf_speed.py                # -j 1 and -j <all cores>
    python benchmarks/crf_speed.py --jobs 1,4,8 --images 32
"""

from __future__ import annotations

import argparse
import os
import time

import joblib
import numpy as np

from segmentation.libs.utils.crf import DenseCRF

from crf_inputs import synthetic_inputs
from timing import dump, report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="dense CRF images/s per core at several -j")
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--classes", type=int, default=21)
    p.add_argument("--images", type=int, default=None,
                   help="images per -j setting (default 2 per process of the largest -j, >= 4)")
    p.add_argument("--jobs", default=None, help="comma-separated -j values (default 1 and the core count)")
    p.add_argument("--json", default=None)
    return p


def crf_job(image: np.ndarray, prob: np.ndarray) -> np.ndarray:
    return DenseCRF(backend="pydensecrf")(image, prob).argmax(axis=0)


def pydensecrf_rate(n_jobs: int, inputs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Images/s of pydensecrf over ``inputs`` (image, prob) in ``n_jobs`` joblib processes (started untimed)."""
    pool = joblib.Parallel(n_jobs=n_jobs)
    tiny = (np.zeros((8, 8, 3), np.uint8), np.full((2, 8, 8), 0.5, np.float32))
    pool(joblib.delayed(crf_job)(*tiny) for _ in range(n_jobs))
    start = time.perf_counter()
    pool(joblib.delayed(crf_job)(image, prob) for image, prob in inputs)
    return len(inputs) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    cores = os.cpu_count() or 1
    jobs = [int(j) for j in args.jobs.split(",")] if args.jobs else sorted({1, cores})
    n_images = args.images or max(4, 2 * max(jobs))
    inputs = [synthetic_inputs(s, args.height, args.width, args.classes)[:2] for s in range(n_images)]
    rows = {}
    for n_jobs in jobs:
        rate = pydensecrf_rate(n_jobs, inputs)
        rows[f"-j {n_jobs}: images/s"] = rate
        rows[f"-j {n_jobs}: images/s per core"] = rate / n_jobs
    base = f"-j {jobs[0]}: images/s"
    for n_jobs in jobs[1:]:
        rows[f"-j {n_jobs}: speed-up vs -j {jobs[0]}"] = rows[f"-j {n_jobs}: images/s"] / rows[base]
    result = report(f"dense CRF (pydensecrf) {args.width}x{args.height}, {args.classes} classes, 10 iterations, "
                    f"{cores} cores", rows, "")
    dump(args.json, [result])
    return result


if __name__ == "__main__":
    main()
