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
from segmentation.libs.cli import (
    check_data_option, checkpoint_options, config_options, device_option, jobs_option, load_cli_config,
    overwrite_option, prediction_options, resolve_device, run_crf, run_group, run_test,
)
from segmentation.libs.predictions import PredictionFiles


@click.group()
def cli() -> None:
    """Initial predictions on the training split (default DATASET.SPLIT.TRAIN)."""


@cli.command()
@config_options
@device_option
@checkpoint_options
@prediction_options
@overwrite_option
@check_data_option
def test(config_path, overrides, split, cuda, model_path, name, save_png, save_overlay, voc_server,
         overwrite, check_data) -> dict | None:
    """Logits of every training image (resumable: logits of the same checkpoint are kept)."""
    cfg = load_cli_config(config_path, overrides)
    setup_rank_logging()
    return run_test(cfg, model_path=model_path, name=name, split=split or cfg.DATASET.SPLIT.TRAIN,
                    device=resolve_device(cuda), overwrite=overwrite,
                    files=PredictionFiles(save_png, save_overlay, voc_server), check_data=check_data)


@cli.command()
@config_options
@device_option
@jobs_option
@checkpoint_options
@prediction_options
@overwrite_option
@check_data_option
def crf(config_path, overrides, split, cuda, n_jobs, model_path, name, save_png, save_overlay, voc_server,
        overwrite, check_data) -> dict | None:
    """CRF labels of every training image as palette PNGs in .../<split>/label_crf/ (label_crf_rgb/)."""
    cfg = load_cli_config(config_path, overrides)
    setup_rank_logging()
    return run_crf(cfg, model_path=model_path, name=name, split=split or cfg.DATASET.SPLIT.TRAIN, n_jobs=n_jobs,
                   overwrite=overwrite, files=PredictionFiles(save_png, save_overlay, voc_server), keep_labels=True,
                   device=resolve_device(cuda), check_data=check_data)


@exit_on_error
def main(argv: Sequence[str] | None = None):
    """Entry point; ``argv`` as on the command line (default: ``sys.argv[1:]``)."""
    return run_group(cli, argv, "trainaug_pred.py")


if __name__ == "__main__":
    main()
