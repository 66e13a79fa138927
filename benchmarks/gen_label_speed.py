"""Stage-3 pseudo-label throughput (classification/gen_label.py): images/s at --workers 1 vs N.

Writes random but plausible inputs for ``--images`` images of 500x375 (a
saliency map, and an OA-CAM and a CAM for each of two classes) to a temporary
folder, then runs :func:`classification.gen_label.run` over them at each
worker count (outputs overwritten each time).

    python benchmarks/gen_label_speed.py                 # --workers 1 and <all cores>
    python benchmarks/gen_label_speed.py --workers 1,4,8 --images 200
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from classification.gen_label import GenLabelConfig, run
from nsrom.cam import class_map_name, max_normalize, to_uint8
from nsrom.images import write_grey

from timing import dump, report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="gen_label images/s at several worker counts")
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--workers", default=None, help="comma-separated worker counts (default 1 and the core count)")
    p.add_argument("--json", default=None)
    return p


def blob(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth 8-bit map with one bright region (like an attention map or a saliency map)."""
    small = rng.random((height // 25, width // 25)).astype(np.float32)
    return to_uint8(max_normalize(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)))


def write_inputs(root: Path, n_images: int, height: int, width: int) -> dict[str, list[int]]:
    rng = np.random.default_rng(0)
    labels = {}
    for i in range(n_images):
        image_id = f"bench_{i:05d}"
        classes = sorted(rng.choice(20, size=2, replace=False).tolist())
        labels[image_id] = classes
        write_grey(root / "saliency" / f"{image_id}.png", blob(rng, height, width))
        for c in classes:
            write_grey(root / "oacam" / class_map_name(image_id, c), blob(rng, height, width))
            write_grey(root / "cam" / class_map_name(image_id, c), blob(rng, height, width))
    return labels


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    cores = os.cpu_count() or 1
    counts = [int(w) for w in args.workers.split(",")] if args.workers else sorted({1, cores})
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        labels = write_inputs(root, args.images, args.height, args.width)
        config = GenLabelConfig(root / "saliency", root / "oacam", root / "cam", root / "out", 20, overwrite=True)
        for workers in counts:
            start = time.perf_counter()
            summary = run(labels, config, workers)
            elapsed = time.perf_counter() - start
            if not summary.ok:
                raise SystemExit(f"gen_label failed on the benchmark inputs: {summary}")
            rows[f"--workers {workers}: images/s"] = args.images / elapsed
        base = f"--workers {counts[0]}: images/s"
        for workers in counts[1:]:
            rows[f"--workers {workers}: speed-up"] = rows[f"--workers {workers}: images/s"] / rows[base]
    result = report(f"gen_label (POM), {args.images} images {args.width}x{args.height}, 2 classes each, "
                    f"{cores} cores", rows, "")
    dump(args.json, [result])
    return result


if __name__ == "__main__":
    main()
