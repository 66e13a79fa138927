"""Turn colour-coded masks (RGB PNGs, one colour per class) into the class-index masks every stage reads.

    python tools/convert_masks.py SRC OUT                            # masks in the PASCAL VOC colours
    python tools/convert_masks.py SRC OUT --colours labelmap.txt --labels-out ROOT/labels.txt

Annotation tools export VOC-format masks as RGB images (CVAT's "Segmentation
mask" export, for one); the stages read palette or grey PNGs whose values are
class indices (README, "Data layout"). Each PNG of SRC is written to OUT as a
palette PNG ``<id>.png``: an RGB(A) mask through the colour map (the VOC colours
of background and --num-classes classes, or a CVAT-style labelmap.txt,
``name:r,g,b::`` per line, background first; VOC's void colour 224,224,192 is
255), a palette or grey mask unchanged when its values are class indices, and a palette
mask in VOC's colours but numbered in another order (a colour mask that an image tool
re-saved as a palette PNG) through its colours.
A colour no class has, or a palette/grey value above the classes (but 255),
fails that file, named with the values; nothing is guessed. Files that exist in OUT are kept unless --overwrite; every file is
written whole or not at all. --labels-out writes the labelmap's class names as
labels.txt. Exit status 1 when a file failed.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nsrom.arg_types import whole_number
from nsrom.classes import IGNORE_INDEX, VOC_CLASSES, read_class_names, values_outside_classes, write_class_names
from nsrom.colour_masks import ColourMap, colours_to_indices
from nsrom.data_check import MAX_LISTED_ERRORS
from nsrom.errors import ConfigError, DataError, exit_on_error
from nsrom.files import ensure_writable_dir, remove_leftover_temporaries
from nsrom.images import reassigned_palette, write_label
from nsrom.parallel import parallel_map

@dataclass(frozen=True)
class Conversion:
    out_dir: Path
    colour_map: ColourMap
    overwrite: bool = False


def convert_one(job: Conversion, src: Path) -> tuple[str, str]:
    """``(status, message)`` of one mask: ``written``, ``exists`` or ``failed``."""
    out = job.out_dir / f"{src.stem}.png"
    if out.exists() and not job.overwrite:
        return "exists", ""
    try:
        with Image.open(src) as img:
            mode = img.mode
            if mode == "P" and reassigned_palette(img, np.asarray(img)):  # VOC colours, another numbering
                label = colours_to_indices(np.asarray(img.convert("RGB")), job.colour_map, f"mask {src}")
            elif mode in ("P", "L"):
                label = np.asarray(img)
                outside = values_outside_classes(label, job.colour_map.num_classes)
                present = np.unique(label)
                if IGNORE_INDEX in present and not ((present > 0) & (present < IGNORE_INDEX)).any():
                    raise DataError(
                        f"mask {src} holds only 0 and 255: an object mask (255 the object), not class indices, "
                        "where 255 means ignore; give its objects their class index first")
                if outside:
                    raise DataError(
                        f"mask {src} is a {'palette' if mode == 'P' else 'grey'} PNG whose values include "
                        f"{', '.join(map(str, outside[:5]))}: not class indices 0..{job.colour_map.num_classes} or "
                        "255 (ignore); a mask of other index values needs them mapped first (--num-classes if "
                        "the dataset has more classes)")
            elif mode in ("RGB", "RGBA"):
                label = colours_to_indices(np.asarray(img.convert("RGB")), job.colour_map, f"mask {src}")
            else:
                raise DataError(f"mask {src} has mode {mode}; expected an RGB colour mask or a palette/grey PNG")
    except DataError as exc:
        return "failed", str(exc)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return "failed", f"cannot decode the mask {src}: {exc}"
    write_label(out, label)
    return "written", ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="folder of colour masks <id>.png")
    p.add_argument("out", type=Path, help="folder to write the class-index masks to (e.g. ROOT/SegmentationClass)")
    p.add_argument("--colours", default="voc",
                   help="voc (the PASCAL VOC colour map, default) or a CVAT-style labelmap.txt")
    p.add_argument("--num-classes", type=int, default=len(VOC_CLASSES) - 1,
                   help="with the VOC colours: classes besides background whose colours count (default 20; "
                        "the other palette colours are no class)")
    p.add_argument("--labels-out", type=Path, help="write the labelmap's class names here as labels.txt")
    p.add_argument("--overwrite", action="store_true", help="convert again the masks that exist in OUT")
    p.add_argument("-j", "--workers", type=whole_number(1), default=1, help="parallel processes")
    return p


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.src.resolve() == args.out.resolve():
        raise ConfigError(f"OUT {args.out} is SRC: write the converted masks to another folder")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"OUT {args.out} is a file, not a folder")
    sources = sorted(p for p in args.src.iterdir() if p.suffix.lower() == ".png") if args.src.is_dir() else []
    if not sources:
        raise DataError(f"no mask <id>.png in {args.src}")
    stems: dict[str, Path] = {}
    for src in sources:  # x.png and x.PNG would both become OUT/x.png
        if src.stem in stems:
            raise DataError(f"{stems[src.stem]} and {src} would both be written as {args.out / (src.stem + '.png')}; "
                            "keep one of them")
        stems[src.stem] = src
    if args.colours == "voc" and not 1 <= args.num_classes < 255:
        raise ConfigError(f"--num-classes must be 1..254, got {args.num_classes}")
    colour_map = (ColourMap.voc(args.num_classes) if args.colours == "voc"
                  else ColourMap.from_labelmap(args.colours))
    if args.labels_out is not None:
        _write_labels(args.labels_out, colour_map)
    ensure_writable_dir(args.out)
    remove_leftover_temporaries(args.out)  # of a run stopped while its workers wrote (a full disk, Ctrl-C)
    job = functools.partial(convert_one, Conversion(args.out, colour_map, args.overwrite))
    results = list(parallel_map(job, sources, args.workers, desc="convert masks"))
    failed = [message for status, message in results if status == "failed"]
    counts = {status: sum(r[0] == status for r in results) for status in ("written", "exists", "failed")}
    print(f"{len(sources)} masks of {args.src} -> {args.out}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for message in failed[:MAX_LISTED_ERRORS]:
        print(f"  {message}")
    if len(failed) > MAX_LISTED_ERRORS:
        print(f"  ... and {len(failed) - MAX_LISTED_ERRORS} more")
    return 1 if failed else 0


def _write_labels(path: Path, colour_map: ColourMap) -> None:
    """labels.txt from the labelmap's names; an existing file must already say the same."""
    if not colour_map.names:
        raise ConfigError("--labels-out needs --colours labelmap.txt (the VOC colours carry no class names)")
    names = list(colour_map.names)
    if path.is_file():
        existing = read_class_names(path)
        if existing != names:
            what = "the same classes in another order" if sorted(existing) == sorted(names) else "other classes"
            raise DataError(
                f"{path} exists with {what} than the labelmap's {names} ({existing}); the converted masks hold the "
                "labelmap's class indices, so the dataset's labels.txt must list its classes in that order: remove "
                f"{path} and run again (tools/make_lists.py then reads the order from it)")
        return
    write_class_names(path, names)
    print(f"class names written to {path}")


if __name__ == "__main__":
    raise SystemExit(main())
