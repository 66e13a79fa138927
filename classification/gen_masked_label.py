"""docs/method.md, stage 6: masked pseudo labels with non-salient region masking (NSRM).

For every image of the class list: stage-5 prediction P + stage-3 pseudo label
L + saliency map S -> one VOC-palette label PNG ``<out-dir>/<id>.png``. The
rules are in :mod:`classification.labeling.nsrm`; this module reads, writes
and reports.

Run from ``classification/`` with the original layout (all defaults)::

    python gen_masked_label.py

or with explicit paths::

    python gen_masked_label.py --list data/train_cls.txt --pred-dir PRED_DIR \\
        --pseudo-dir pseudo_labels --sal-dir data/saliency_aug --out-dir masked_labels

Python API for the pipeline: :func:`run` (raises ``NsromError``) or
``main(argv)`` (the CLI, returns the exit status).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Mapping, Sequence

from nsrom.data import DataLayout
from nsrom.dataset_settings import layout_overrides
from nsrom.errors import DataError, exit_on_error
from nsrom.images import image_size, read_grey, write_label
from nsrom.logs import setup_logging
from nsrom.provenance import Producer, prepare_output_dir

from classification.labeling.io import (
    EXISTS, FAILED, LABEL_PATTERN, MISSING, ImageResult, LabelSummary, check_size, read_class_label,
    require_dir, add_common_args, check_saliency_maps, resolve_common_args, run_over_images,
)
from classification.labeling.nsrm import MIN_CLASSES_FOR_MASKING, NsrmRules, make_masked_label
from classification.labeling.settings import add_rule_args, rules_from_args

# Original layout, relative to the current folder (classification/).
DEFAULT_LIST = Path("data/train_cls.txt")
# Stage-5 CRF labels: segmentation's OUTPUT_DIR/features/<EXP.ID>/<model>/<split>/label_crf
# (segmentation/libs/utils/paths.py derives it) with configs/voc12.yaml run from segmentation/;
# written out here so that the classification package does not import the segmentation one.
DEFAULT_PRED_DIR = Path("../segmentation/data/features/voc12/deeplabv2_resnet101_msc/train_aug/label_crf")
DEFAULT_PSEUDO_DIR = Path("pseudo_labels")
DEFAULT_SAL_DIR = Path("data/saliency_aug")
DEFAULT_OUT_DIR = Path("masked_labels")


@dataclass(frozen=True)
class GenMaskedLabelConfig:
    """Folders and settings of one stage-6 run (picklable, sent to the workers)."""

    pred_dir: Path
    pseudo_dir: Path
    sal_dir: Path
    out_dir: Path
    num_classes: int
    overwrite: bool = False
    rules: NsrmRules = NsrmRules()
    """Dilation and foreground share (the paper's by default)."""
    layout: DataLayout | None = None
    """The dataset (with ``--data-root``): each prediction must have its image's size."""


def mask_image(config: GenMaskedLabelConfig, item: tuple[str, list[int]]) -> ImageResult:
    """Stage 6 for one image: read P (and L, S for multi-class images), write the masked label.

    Only the inputs the rule needs are read: an image with one class keeps P,
    so its pseudo label and saliency map may be absent. A missing needed input
    skips the image; a corrupt file, a class value outside 0..C / 255 or a size
    mismatch fails it. Nothing is written unless all succeeds.
    """
    image_id, classes = item
    out_path = config.out_dir / f"{image_id}.png"
    if out_path.exists() and not config.overwrite:
        return ImageResult(image_id, EXISTS)
    pred_path = config.pred_dir / f"{image_id}.png"
    pseudo_path = config.pseudo_dir / f"{image_id}.png"
    sal_path = config.sal_dir / f"{image_id}.png"
    needed = [("prediction", pred_path)]
    if len(classes) >= MIN_CLASSES_FOR_MASKING:
        needed += [("pseudo label", pseudo_path), ("saliency map", sal_path)]
    absent = [f"{what} not found: {path}" for what, path in needed if not path.is_file()]
    if absent:
        return ImageResult(image_id, MISSING, "; ".join(absent))
    try:
        pred = read_class_label(pred_path, config.num_classes, "prediction")
        if config.layout is not None:  # a one-class image keeps P as it is: nothing else would catch it
            image_path = config.layout.image_path(image_id)
            width, height = image_size(image_path)
            check_size(pred, pred_path, "prediction", (height, width), image_path, "image")
        pseudo = saliency = None
        if len(classes) >= MIN_CLASSES_FOR_MASKING:
            pseudo = read_class_label(pseudo_path, config.num_classes, "pseudo label")
            saliency = read_grey(sal_path, "saliency map")
            check_size(pseudo, pseudo_path, "pseudo label", pred.shape, pred_path, "prediction")
            check_size(saliency, sal_path, "saliency map", pred.shape, pred_path, "prediction")
        label = make_masked_label(pred, pseudo, saliency, len(classes), config.rules)
        write_label(out_path, label)
    except DataError as exc:
        return ImageResult(image_id, FAILED, str(exc))
    return ImageResult.written(image_id, label)


def producer(config: GenMaskedLabelConfig) -> Producer:
    """What makes the labels of ``config.out_dir``: the input folders, the class count and the rules."""
    inputs = {"prediction": config.pred_dir, "pseudo_label": config.pseudo_dir, "saliency": config.sal_dir}
    settings = {"num_classes": config.num_classes, **dataclasses.asdict(config.rules)}
    return Producer("gen_masked_label", settings, inputs=inputs)


def run(
    image_labels: Mapping[str, Sequence[int]], config: GenMaskedLabelConfig, workers: int = 1,
    failed_check: Collection[str] = (),
) -> LabelSummary:
    """Stage 6 over ``image_labels`` (id -> 0-based classes); returns the summary. The images of
    ``failed_check`` (a bad saliency map) fail without being processed.

    Raises :class:`~nsrom.errors.DataError` when an input folder does not exist,
    and :class:`~nsrom.provenance.StaleOutputError` when the output folder holds
    labels of other inputs or rules (``overwrite`` redoes them).
    """
    require_dir(config.pred_dir, "prediction", "--pred-dir")
    require_dir(config.pseudo_dir, "pseudo-label", "--pseudo-dir")
    require_dir(config.sal_dir, "saliency", "--sal-dir")
    prepare_output_dir(config.out_dir, producer(config), config.overwrite, LABEL_PATTERN)
    job = functools.partial(mask_image, config)
    return run_over_images(job, image_labels, config.out_dir, workers, "gen_masked_label (NSRM)", failed_check)


def build_parser() -> argparse.ArgumentParser:
    """The gen_masked_label.py command line; every default is the original layout."""
    p = argparse.ArgumentParser(description="NSROM stage 6: masked pseudo labels (non-salient region masking).")
    add_common_args(p, DEFAULT_LIST, DEFAULT_SAL_DIR, DEFAULT_OUT_DIR)
    p.add_argument("--pred-dir", type=Path, default=DEFAULT_PRED_DIR,
                   help="stage-5 predictions <id>.png (segmentation trainaug_pred.py crf; the default is where "
                        "configs/voc12.yaml writes them, run from segmentation/; with CRF.WRAPPED_IMAGE: false "
                        "they are in label_crf_rgb/ instead of label_crf/)")
    p.add_argument("--pseudo-dir", type=Path, default=DEFAULT_PSEUDO_DIR, help="stage-3 pseudo labels <id>.png")
    add_rule_args(p, NsrmRules, "stage-6 rules (docs/method.md, stage 6; the defaults are the paper's)")
    return p


def config_from_args(args: argparse.Namespace) -> tuple[dict[str, list[int]], GenMaskedLabelConfig]:
    """Resolve the image list and the folders from parsed arguments."""
    num_classes, image_labels, sal_dir = resolve_common_args(args, DEFAULT_LIST, DEFAULT_SAL_DIR)
    layout = DataLayout(args.data_root, **layout_overrides(args)) if args.data_root is not None else None
    config = GenMaskedLabelConfig(
        args.pred_dir, args.pseudo_dir, sal_dir, args.out_dir, num_classes, args.overwrite,
        rules_from_args(args, NsrmRules), layout,
    )
    return image_labels, config


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    """CLI: 0 when every image was written, skipped as existing or had a missing
    input; 1 when some image failed (listed in the log) or all missed an input."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_file)
    image_labels, config = config_from_args(args)
    bad_maps = check_saliency_maps(args, image_labels, config.sal_dir)
    failed_check = {i for i in bad_maps if len(image_labels[i]) >= MIN_CLASSES_FOR_MASKING}  # others need no map
    summary = run(image_labels, config, args.workers, failed_check)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
