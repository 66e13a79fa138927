"""docs/method.md, stage 3: pseudo labels with potential object mining (POM).

For every image of the class list: saliency map + OA-CAMs (stage 2) + CAMs
(stage 1b) -> one VOC-palette label PNG ``<out-dir>/<id>.png``. The rules are
in :mod:`classification.labeling.pom`; this module reads, writes and reports.

Run from ``classification/`` with the original layout (all defaults)::

    python gen_label.py

or with explicit paths::

    python gen_label.py --list data/train_cls.txt --sal-dir data/saliency_aug \\
        --oacam-dir runs/exp2/attention --cam-dir runs/exp1/attention \\
        --out-dir pseudo_labels --workers 8

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

from nsrom.errors import DataError, exit_on_error
from nsrom.images import read_grey, write_label
from nsrom.logs import setup_logging
from nsrom.provenance import Producer, prepare_output_dir

from classification.labeling.io import (
    EXISTS, FAILED, LABEL_PATTERN, MISSING, ImageResult, LabelSummary, read_class_maps, require_dir,
    add_common_args, check_saliency_maps, resolve_common_args, run_over_images,
)
from classification.labeling.pom import PomRules, make_pseudo_label
from classification.labeling.settings import add_rule_args, rules_from_args
from classification.run_layout import CLASSIFIER_EXP, IAM_EXP

# Original layout, relative to the current folder (classification/).
DEFAULT_LIST = Path("data/train_cls.txt")
DEFAULT_SAL_DIR = Path("data/saliency_aug")
DEFAULT_OACAM_DIR = Path("runs") / IAM_EXP / "attention"
DEFAULT_CAM_DIR = Path("runs") / CLASSIFIER_EXP / "attention"
DEFAULT_OUT_DIR = Path("pseudo_labels")


@dataclass(frozen=True)
class GenLabelConfig:
    """Folders and settings of one stage-3 run (picklable, sent to the workers)."""

    sal_dir: Path
    oacam_dir: Path
    cam_dir: Path
    out_dir: Path
    num_classes: int
    overwrite: bool = False
    rules: PomRules = PomRules()
    """Thresholds of the rules and the POM switch (the paper's by default)."""


def label_image(config: GenLabelConfig, item: tuple[str, list[int]]) -> ImageResult:
    """Stage 3 for one image: read its maps, build the label, write ``<out_dir>/<id>.png``.

    A missing saliency map skips the image; a missing OA-CAM / CAM leaves its
    class out of the step that needs it (noted in the result); a corrupt file
    or a size mismatch fails the image. Nothing is written unless all succeeds.
    Without POM (``rules.pom`` false) the CAMs are not read.
    """
    image_id, classes = item
    out_path = config.out_dir / f"{image_id}.png"
    if out_path.exists() and not config.overwrite:
        return ImageResult(image_id, EXISTS)
    sal_path = config.sal_dir / f"{image_id}.png"
    if not sal_path.is_file():
        return ImageResult(image_id, MISSING, f"saliency map not found: {sal_path}")
    try:
        saliency = read_grey(sal_path, "saliency map")
        size = (saliency.shape, sal_path, "saliency map")
        oacams, no_oacam = read_class_maps(config.oacam_dir, image_id, classes, "OA-CAM", *size)
        cams, no_cam = {}, ()
        if config.rules.pom:
            cams, no_cam = read_class_maps(config.cam_dir, image_id, classes, "CAM", *size)
        label = make_pseudo_label(saliency, classes, oacams, cams, config.num_classes, config.rules)
        write_label(out_path, label)
    except DataError as exc:
        return ImageResult(image_id, FAILED, str(exc))
    return ImageResult.written(image_id, label, missing_maps=no_oacam + no_cam)


def producer(config: GenLabelConfig) -> Producer:
    """What makes the labels of ``config.out_dir``: the input folders, the class count and the rules."""
    inputs = {"saliency": config.sal_dir, "oacam": config.oacam_dir}
    if config.rules.pom:
        inputs["cam"] = config.cam_dir
    settings = {"num_classes": config.num_classes, **dataclasses.asdict(config.rules)}
    return Producer("gen_label", settings, inputs=inputs)


def run(image_labels: Mapping[str, Sequence[int]], config: GenLabelConfig, workers: int = 1,
        failed_check: Collection[str] = ()) -> LabelSummary:
    """Stage 3 over ``image_labels`` (id -> 0-based classes); returns the summary. The images of
    ``failed_check`` (a bad saliency map) fail without being processed.

    Raises :class:`~nsrom.errors.DataError` when an input folder does not exist
    (the CAM folder is not needed with ``--no-pom``), and
    :class:`~nsrom.provenance.StaleOutputError` when the output folder holds
    labels of other inputs or rules (``overwrite`` redoes them).
    """
    require_dir(config.sal_dir, "saliency", "--sal-dir")
    require_dir(config.oacam_dir, "OA-CAM", "--oacam-dir")
    if config.rules.pom:
        require_dir(config.cam_dir, "CAM", "--cam-dir")
    prepare_output_dir(config.out_dir, producer(config), config.overwrite, LABEL_PATTERN)
    job = functools.partial(label_image, config)
    name = "gen_label (POM)" if config.rules.pom else "gen_label (no POM)"
    return run_over_images(job, image_labels, config.out_dir, workers, name, failed_check)


def build_parser() -> argparse.ArgumentParser:
    """The gen_label.py command line; every default is the original layout."""
    p = argparse.ArgumentParser(description="NSROM stage 3: pseudo labels with potential object mining.")
    add_common_args(p, DEFAULT_LIST, DEFAULT_SAL_DIR, DEFAULT_OUT_DIR)
    p.add_argument("--oacam-dir", type=Path, default=DEFAULT_OACAM_DIR, help="OA-CAMs <id>_<c>.png (stage 2)")
    p.add_argument("--cam-dir", type=Path, default=DEFAULT_CAM_DIR,
                   help="CAMs <id>_<c>.png (stage 1b; used by POM only)")
    add_rule_args(p, PomRules, "stage-3 rules (docs/method.md, stage 3; the defaults are the paper's)")
    return p


def config_from_args(args: argparse.Namespace) -> tuple[dict[str, list[int]], GenLabelConfig]:
    """Resolve the image list and the folders from parsed arguments."""
    num_classes, image_labels, sal_dir = resolve_common_args(args, DEFAULT_LIST, DEFAULT_SAL_DIR)
    config = GenLabelConfig(sal_dir, args.oacam_dir, args.cam_dir, args.out_dir, num_classes, args.overwrite,
                            rules_from_args(args, PomRules))
    return image_labels, config


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    """CLI: 0 when every image was written, skipped as existing or had a missing
    saliency map; 1 when some image failed (listed in the log) or all missed an input."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_file)
    image_labels, config = config_from_args(args)
    failed_check = check_saliency_maps(args, image_labels, config.sal_dir)
    summary = run(image_labels, config, args.workers, failed_check)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
