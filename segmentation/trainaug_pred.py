"""Stage 5 (docs/method.md): predictions of the stage-4 model on train_aug, CRF, one label PNG per image.

Run from segmentation/::

    python trainaug_pred.py test --config-path configs/voc12.yaml   # logits of train_aug
    python trainaug_pred.py crf --config-path configs/voc12.yaml -j 10

Labels go to OUTPUT_DIR/features/<EXP.ID>/<model>/train_aug/label_crf/<id>.png,
where classification/gen_masked_label.py reads them.
"""

from __future__ import annotations

from typing import Sequence

import click

from nsrom.errors import exit_on_error
from nsrom.distributed import setup_rank_logging
from segmentation.libs import evaluate
from segmentation.libs.cli import (
    config_options, device_option, jobs_option, load_cli_config, overwrite_option, resolve_device, run_group,
)
from segmentation.libs.utils.paths import RunPaths


@click.group()
def cli() -> None:
    """Initial predictions on the training split (default DATASET.SPLIT.TRAIN)."""


@cli.command()
@config_options
@device_option
@click.option("-m", "--model-path", default=None, help="default: the run's checkpoint_final.pth")
@overwrite_option
def test(config_path, overrides, split, cuda, model_path, overwrite) -> dict | None:
    """Logits of every training image (resumable: logits of the same checkpoint are kept)."""
    cfg = load_cli_config(config_path, overrides)
    setup_rank_logging()
    split = split or cfg.DATASET.SPLIT.TRAIN
    return evaluate.test(cfg, model_path, split=split, device=resolve_device(cuda), overwrite=overwrite)


@cli.command()
@config_options
@device_option
@jobs_option
@overwrite_option
def crf(config_path, overrides, split, cuda, n_jobs, overwrite) -> dict | None:
    """CRF labels of every training image as palette PNGs in .../<split>/label_crf/."""
    cfg = load_cli_config(config_path, overrides)
    setup_rank_logging()
    split = split or cfg.DATASET.SPLIT.TRAIN
    label_dir = RunPaths.from_config(cfg).label_crf_dir(split)
    return evaluate.crf(
        cfg, split=split, n_jobs=n_jobs, label_dir=label_dir, overwrite=overwrite, device=resolve_device(cuda)
    )


@exit_on_error
def main(argv: Sequence[str] | None = None):
    """Entry point; ``argv`` as on the command line (default: ``sys.argv[1:]``)."""
    return run_group(cli, argv, "trainaug_pred.py")


if __name__ == "__main__":
    main()
