"""Run every benchmark once with its defaults (or the paper's sizes) and print all figures.

    python benchmarks/run_all.py                       # CPU-sized defaults
    python benchmarks/run_all.py --paper --amp bf16 --channels-last --json speed.json   # on a GPU machine
"""

from __future__ import annotations

import argparse

import cls_train_speed
import crf_backends
import crf_speed
import gen_label_speed
import seg_train_speed

from timing import dump


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="all NSROM-PyTorch benchmarks in one run")
    p.add_argument("--paper", action="store_true", help="paper sizes for the two training benchmarks")
    p.add_argument("--amp", default="off", help="extra training mode with this AMP (off, bf16, fp16)")
    p.add_argument("--channels-last", action="store_true", help="extra training mode channels-last")
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    extra = (["--paper"] if args.paper else []) + ["--amp", args.amp] + (["--channels-last"] if args.channels_last else [])
    results = [
        seg_train_speed.main(extra),
        cls_train_speed.main(extra),
        crf_speed.main([]),
        *crf_backends.main(["--images", "4"]),
        gen_label_speed.main([]),
    ]
    dump(args.json, results)
    return results


if __name__ == "__main__":
    main()
