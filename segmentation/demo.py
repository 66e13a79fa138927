"""Run a DeepLab-v2 checkpoint on one image or a folder of images: label PNGs and colour overlays.

Run from segmentation/::

    python demo.py -c configs/voc12.yaml -m data/models/checkpoint_70.4.pth --input photo.jpg --out demo_out
    python demo.py -c configs/voc12.yaml -m data/models/checkpoint_70.4.pth --input photos/ --out demo_out --crf

For each image ``<name>.<ext>`` it writes ``OUT/<name>.png`` (class indices as a
VOC-palette PNG, the format of the dataset's masks) and ``OUT/<name>_overlay.jpg``
(the image with the labels' colours blended in). The prediction is that of
``main.py test`` (``--crf``: of ``main.py crf``) on the same image. The config
gives the network (MODEL.*), the classes (DATASET.LABELS or ROOT/labels.txt,
else VOC's 21), IMAGE.MEAN and the CRF settings; no dataset is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import click
from tqdm import tqdm

from nsrom.errors import DataError, exit_on_error
from nsrom.images import overlay, read_rgb, write_label, write_rgb
from nsrom.logs import setup_logging
from segmentation.libs.cli import device_option, resolve_device, run_group
from segmentation.libs.models.msc import check_input_size
from segmentation.libs.predictions import OVERLAY_QUALITY
from segmentation.libs.predictor import Predictor
from segmentation.libs.utils.config import DEFAULT_CONFIG, load_config

LOG = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
"""Files of an input folder that are read as images (case-insensitive)."""


def input_images(source: Path) -> list[Path]:
    """``source`` itself, or the images directly inside the folder ``source`` (sorted by name)."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise DataError(f"--input {source} is neither an image nor a folder")
    images = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"no image ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    return images


def check_out_dir(source: Path, out_dir: Path) -> None:
    """``--out`` must be a folder (or not exist yet), and not the folder of the input images, whose labels
    and overlays a later run would read as images."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--out {out_dir} is a file, not a folder")
    if source.is_dir() and out_dir.resolve() == source.resolve():
        raise DataError(f"--out {out_dir} is the folder of the input images: its labels and overlays would be read "
                        "as images by the next run; choose another --out")


def output_paths(images: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """``(label PNG, overlay JPEG)`` of each image; two images with one name, or an output over an input, are refused."""
    outputs = [(out_dir / f"{p.stem}.png", out_dir / f"{p.stem}_overlay.jpg") for p in images]
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        twice = sorted({s for s in stems if stems.count(s) > 1})
        raise DataError(f"several input images are named {twice[0]}.*; their outputs would overwrite each other")
    inputs = {p.resolve() for p in images}
    for path in (p for pair in outputs for p in pair):
        if path.resolve() in inputs:
            raise DataError(f"writing {path} would overwrite an input image; choose another --out")
    return outputs


@click.command()
@click.option("-c", "--config-path", default=str(DEFAULT_CONFIG), show_default=True,
              help="YAML config of the checkpoint's network and classes")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a config key (repeatable)")
@click.option("-m", "--model-path", required=True, help="checkpoint: a training checkpoint or a released state_dict")
@click.option("-i", "--input", "source", required=True, type=click.Path(path_type=Path), help="an image or a folder of images")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="output folder")
@click.option("--crf/--no-crf", default=False, help="refine with the dense CRF (CRF section of the config)")
@device_option
def cli(config_path, overrides, model_path, source, out_dir, crf, cuda) -> list[Path]:
    """Label PNGs and overlays of IMAGE_OR_FOLDER with a DeepLab-v2 checkpoint."""
    setup_logging()
    cfg = load_config(config_path, overrides)
    images = input_images(source)
    check_out_dir(source, out_dir)
    outputs = output_paths(images, out_dir)
    predictor = Predictor(cfg, model_path, resolve_device(cuda))
    LOG.info("%d image(s), checkpoint %s, %s CRF, device %s", len(images), model_path,
             "with" if crf else "no", predictor.device)
    written, unreadable = [], []
    for image_path, (label_path, overlay_path) in zip(tqdm(images, desc="demo", dynamic_ncols=True), outputs):
        try:
            rgb = read_rgb(image_path)
            check_input_size(*rgb.shape[:2], f"image {image_path}")
        except DataError as exc:  # the other images still get their labels
            LOG.error("%s", exc)
            unreadable.append(image_path.name)
            continue
        label = predictor.label(rgb, crf=crf)
        write_label(label_path, label)
        write_rgb(overlay_path, overlay(rgb, label), quality=OVERLAY_QUALITY)
        written.append(label_path)
    LOG.info("labels and overlays of %d image(s) written to %s", len(written), out_dir)
    if unreadable:
        raise DataError(f"{len(unreadable)} of {len(images)} images could not be read or were too small ({', '.join(unreadable[:5])}"
                        f"{', ...' if len(unreadable) > 5 else ''}); the others' labels are written")
    return written


@exit_on_error
def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Entry point; ``argv`` as on the command line (default: ``sys.argv[1:]``); returns the label PNGs."""
    return run_group(cli, argv, "demo.py")


if __name__ == "__main__":
    main()
