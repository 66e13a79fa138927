"""Write a small synthetic dataset in the VOC layout (see nsrom/synthetic.py).

    python tools/make_synthetic_voc.py --out data/synthetic_voc
"""

from __future__ import annotations

import argparse
from collections import Counter

from nsrom.arg_types import whole_number
from nsrom.errors import ConfigError, exit_on_error
from nsrom.objects import read_record
from nsrom.synthetic import MAX_SIDE, RARELY_SALIENT_CLASSES, SHAPES, TEXTURES, generate


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="dataset root to write (the ROOT of the layout): a new or empty folder, "
                   "or this tool's earlier output (a folder with other data is refused)")
    p.add_argument("--num-train", type=int, default=200, help="train_aug images (default 200, the demo's)")
    p.add_argument("--num-val", type=int, default=100, help="val images (default 100)")
    p.add_argument("--size", type=whole_number(32, MAX_SIDE), default=160,
                   help=f"long image side in pixels (default 160, at most {MAX_SIDE})")
    p.add_argument("--classes", type=int, default=5, help="foreground classes K (default 5, at most 28)")
    p.add_argument("--rarely-salient", type=int, default=RARELY_SALIENT_CLASSES,
                   help="how many classes (the first ones) the saliency maps seldom show "
                        f"(default {RARELY_SALIENT_CLASSES}; 0: every class alike)")
    p.add_argument("--seed", type=whole_number(0), default=0, help="random seed; same seed, same files")
    return p


def check_counts(args: argparse.Namespace) -> None:
    """The flags' ranges, checked before anything is written (ConfigError naming the flag)."""
    most = len(SHAPES) * len(TEXTURES)
    for flag, value, low, high in (("--num-train", args.num_train, 1, None), ("--num-val", args.num_val, 1, None),
                                   ("--size", args.size, 32, None), ("--classes", args.classes, 1, most),
                                   ("--rarely-salient", args.rarely_salient, 0, args.classes)):
        if value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{flag} must be {bounds}, got {value}")


@exit_on_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    check_counts(args)
    layout = generate(args.out, args.num_train, args.num_val, args.size, args.classes, args.seed,
                      args.rarely_salient)
    status = Counter(o.saliency for objs in read_record(layout.root).values() for o in objs)
    print(
        f"wrote {args.num_train} train_aug + {args.num_val} val images, {args.classes} classes, "
        f"to {layout.root}\nobjects by saliency: "
        + ", ".join(f"{k} {status[k]}" for k in ("salient", "faint", "missing"))
    )


if __name__ == "__main__":
    main()
