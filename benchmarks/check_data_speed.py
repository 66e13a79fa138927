"""Speed of the data check (nsrom.data_check, tools/check_data.py) and its extrapolation to VOC.

    python benchmarks/check_data_speed.py [--images 300] [--workers 1,2] [--root ROOT]

Checks a dataset (by default a generated one with VOC-sized 500 px images:
JPEG image, palette mask and saliency map per image, all of the train split)
with each worker count and prints wall time, images/s, and the CPU time per
image of the check (this process and its workers), which other work on a
shared machine disturbs much less than wall time. From the CPU time it
extrapolates the wall time of 10,582 images on 8 cores (perfect scaling
assumed). ``--root`` measures a real dataset instead (e.g. VOC itself).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from nsrom.data import DataLayout
from nsrom.data_check import check_dataset
from nsrom.synthetic import generate

from timing import dump, report

VOC_TRAIN_AUG = 10582


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(layout: DataLayout, workers: int) -> dict[str, float]:
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = check_dataset(layout, [layout.train_split], workers=workers)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    if result.errors:
        raise SystemExit(f"the dataset has errors:\n{result.format()}")
    return {"images": result.images, "wall_s": wall, "images_per_s": result.images / wall,
            "cpu_ms_per_image": 1000 * cpu / result.images}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=300, help="generated training images (default 300)")
    p.add_argument("--size", type=int, default=500, help="long side of the generated images (VOC: 500)")
    p.add_argument("--workers", default="1,2", help="worker counts to time, comma-separated")
    p.add_argument("--root", default=None, help="check this dataset instead of a generated one")
    p.add_argument("--json", default=None, help="write the figures as JSON")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.root:
            layout = DataLayout(args.root)
        else:
            print(f"generating {args.images} images of {args.size} px ...", flush=True)
            layout = generate(Path(tmp) / "data", num_train=args.images, num_val=0, size=args.size, seed=0)
        check_dataset(layout, [layout.train_split], workers=1)  # warm the file cache: time decoding, not the disk
        rows = {f"workers={w}": measure(layout, int(w)) for w in args.workers.split(",")}
    results = [report("data check: images/s (wall)", {k: v["images_per_s"] for k, v in rows.items()}, "img/s"),
               report("data check: CPU time per image", {k: v["cpu_ms_per_image"] for k, v in rows.items()}, "ms")]
    cpu_ms = min(v["cpu_ms_per_image"] for v in rows.values())
    estimate = VOC_TRAIN_AUG * cpu_ms / 1000 / 8
    print(f"per core: {1000 / cpu_ms:.0f} images/s; {VOC_TRAIN_AUG} images on 8 cores: about {estimate:.0f} s "
          "(CPU time / 8, perfect scaling)")
    results.append({"title": "extrapolation", "per_core_images_per_s": 1000 / cpu_ms, "voc_8_cores_s": estimate})
    dump(args.json, results)


if __name__ == "__main__":
    main()
