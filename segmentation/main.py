"""DeepLab-v2 MSC: ``train``, ``test`` and ``crf`` (docs/method.md, stages 4 and 7).

Run from segmentation/, as in the original README::

    python main.py train --config-path configs/voc12.yaml --set DATASET.LABEL_DIR=PATH
    python main.py test --config-path configs/voc12.yaml --model-path data/models/checkpoint_70.4.pth
    python main.py crf --config-path configs/voc12.yaml --model-path data/models/checkpoint_70.4.pth -j 8
    python main.py config --config-path my.yaml --set SOLVER.ITER_MAX=100   # effective config

In-process: ``segmentation.main.main(["train", "--config-path", ...])``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import click

from nsrom.errors import exit_on_error
from nsrom.distributed import setup_rank_logging
from nsrom.training_state import seed_all
from segmentation.libs.cli import (
    check_data_option, checkpoint_options, config_file_options, config_options, device_option, jobs_option,
    load_cli_config, overwrite_option, prediction_options, resolve_device, run_crf, run_group, run_test,
)
from segmentation.libs.data_config import class_names
from segmentation.libs.predictions import PredictionFiles
from segmentation.libs.utils.config import dataset_overrides, render_config, resolve_config
from segmentation.libs.train import RESUME_LATEST, train as train_model
from segmentation.libs.utils.paths import RunPaths


@click.group()
def cli() -> None:
    """DeepLab-v2 ResNet-101 MSC on pseudo labels (NSROM stages 4 and 7)."""


@cli.command()
@config_options
@device_option
@click.option("--fully-supervised", is_flag=True, help="allow training on pixel ground truth (SegmentationClass*)")
@click.option("--init/--no-init", default=True, help="load MODEL.INIT_MODEL into the backbone (--no-init: from scratch)")
@click.option(
    "--resume", is_flag=False, flag_value=RESUME_LATEST, default=None, metavar="[CHECKPOINT]",
    help="continue exactly from a training checkpoint (its whole state); alone: the most advanced of the run "
         "(checkpoint_recent.pth or checkpoint_<step>.pth)",
)
@click.option("--seed", type=int, default=None,
              help="seed torch (init, shuffling, augmentation), numpy and random for a repeatable run")
@overwrite_option
@check_data_option
def train(config_path, overrides, split, cuda, fully_supervised, init, resume, seed, overwrite, check_data) -> Path:
    """Train on DATASET.LABEL_DIR; checkpoints in OUTPUT_DIR/models/...

    Multi-GPU: torchrun --nproc_per_node N main.py train ... (docs/speed.md).
    """
    cfg = load_cli_config(config_path, overrides, split, "TRAIN")
    if seed is not None:
        seed_all(seed)
    setup_rank_logging(RunPaths.from_config(cfg).log_dir / "train.log")
    return train_model(
        cfg, fully_supervised=fully_supervised, init=init, resume=resume,
        device=resolve_device(cuda, benchmark=True), overwrite=overwrite, check_data=check_data,
    )


@cli.command()
@config_options
@device_option
@checkpoint_options
@prediction_options
@overwrite_option
@check_data_option
def test(config_path, overrides, split, cuda, model_path, name, save_png, save_overlay, voc_server,
         overwrite, check_data) -> dict | None:
    """Predict the val split at native size, save logits, write scores.json (a split without masks: no scores)."""
    cfg = load_cli_config(config_path, overrides)
    setup_rank_logging()
    return run_test(cfg, model_path=model_path, name=name, split=split or cfg.DATASET.SPLIT.VAL,
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
    """Dense CRF on the saved logits, write scores_crf.json (scores_crf_rgb.json with CRF.WRAPPED_IMAGE false).

    CRF.BACKEND auto: the PyTorch CRF on the GPU, else pydensecrf.
    """
    cfg = load_cli_config(config_path, overrides)
    setup_rank_logging()
    return run_crf(cfg, model_path=model_path, name=name, split=split or cfg.DATASET.SPLIT.VAL, n_jobs=n_jobs,
                   overwrite=overwrite, files=PredictionFiles(save_png, save_overlay, voc_server),
                   device=resolve_device(cuda), check_data=check_data)


@cli.command("config")
@config_file_options
def show_config(config_path, overrides) -> str:
    """Print the effective config: every key, its value and where it came from.

    The output is a complete config file (e.g. ``... config -c my.yaml > full.yaml``).
    """
    resolved = resolve_config(config_path, overrides)
    text = render_config(resolved, _dataset_notes(resolved.cfg))
    click.echo(text, nl=False)
    return text


def _dataset_notes(cfg) -> dict[str, str]:
    """What null dataset keys resolve to, read from DATASET.ROOT (labels.txt, dataset.yaml)."""
    from nsrom.data import DataLayout
    from nsrom.errors import NsromError

    notes = {}
    try:
        settings = DataLayout(cfg.DATASET.ROOT, **dataset_overrides(cfg.to_dict())).settings
        for key, name in (("DATASET.IMAGE_EXT", "image_ext"), ("DATASET.MASK_DIR", "mask_dir")):
            value = getattr(settings, name)
            shown = ", ".join(value) if isinstance(value, tuple) else value
            notes[key] = f"dataset: {shown} ({settings.source(name)})"
        if cfg.DATASET.N_CLASSES is None:
            labels = cfg.DATASET.LABELS or f"{cfg.DATASET.ROOT}/labels.txt, else the VOC classes"
            notes["DATASET.N_CLASSES"] = f"{len(class_names(cfg))} from the class list ({labels})"
    except NsromError as exc:
        notes["DATASET.ROOT"] = f"cannot read the dataset settings: {exc}"
    return notes


@exit_on_error
def main(argv: Sequence[str] | None = None):
    """Entry point; ``argv`` as on the command line (default: ``sys.argv[1:]``)."""
    return run_group(cli, argv, "main.py")


if __name__ == "__main__":
    main()
