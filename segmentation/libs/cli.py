"""Command-line pieces shared by main.py and trainaug_pred.py: options, config, device, runner,
and ``test``/``crf`` with their prediction files."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable, Sequence

import click
import torch
from addict import Dict

from nsrom import distributed
from nsrom.errors import INTERRUPTED

from . import crf_run, evaluate
from .data_config import data_layout
from .predictions import PredictionFiles, write_prediction_files
from .utils.config import DEFAULT_CONFIG, load_config
from .utils.paths import RunPaths

LOG = logging.getLogger(__name__)


def config_options(fn: Callable) -> Callable:
    """``-c/--config-path``, repeated ``--set KEY=VALUE`` and ``--split``."""
    fn = click.option("--split", default=None, help="image list to use (e.g. train_aug, val); overrides the config's")(fn)
    return config_file_options(fn)


def config_file_options(fn: Callable) -> Callable:
    """``-c/--config-path`` and repeated ``--set KEY=VALUE``."""
    fn = click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="override a config key, e.g. --set SOLVER.ITER_MAX=100 (repeatable)",
    )(fn)
    fn = click.option(
        "-c", "--config-path", default=str(DEFAULT_CONFIG), show_default=True,
        help="YAML config (schema: voc12.yaml); one with 'BASE: voc12.yaml' holds only the keys it changes",
    )(fn)
    return fn


def device_option(fn: Callable) -> Callable:
    """``--cuda/--cpu`` (default: CUDA when available)."""
    return click.option("--cuda/--cpu", default=True, help="run on the GPU when one is available")(fn)


def overwrite_option(fn: Callable) -> Callable:
    return click.option("--overwrite", is_flag=True, help="delete the outputs of an earlier run and redo them all")(fn)


def check_data_option(fn: Callable) -> Callable:
    return click.option(
        "--check-data/--no-check-data", default=True, show_default=True,
        help="decode the split's images and masks (or training labels) and check them before starting",
    )(fn)


def jobs_option(fn: Callable) -> Callable:
    return click.option(
        "-j", "--n-jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
        help="parallel CRF processes (pydensecrf) or file threads (torch backend)"
    )(fn)


def checkpoint_options(fn: Callable) -> Callable:
    """``-m/--model-path`` and ``--name``: whose outputs test writes and crf reads."""
    fn = click.option(
        "--name", default=None,
        help="name of this checkpoint's outputs: features/ and scores/ go under <EXP.ID>@<name> "
             "(default: the file stem of --model-path; none for the run's own checkpoint_final.pth)",
    )(fn)
    fn = click.option(
        "-m", "--model-path", default=None,
        help="checkpoint (default: the run's checkpoint_final.pth); crf only derives the output name from it",
    )(fn)
    return fn


def prediction_options(fn: Callable) -> Callable:
    """``--save-png``, ``--save-overlay``, ``--voc-server`` (see segmentation/libs/predictions.py)."""
    fn = click.option(
        "--voc-server", is_flag=True,
        help="also write the labels in the VOC evaluation server's layout (comp6) and pack them as .tar.gz",
    )(fn)
    fn = click.option("--save-overlay", is_flag=True, help="also write each image blended with its label colours (JPEG)")(fn)
    fn = click.option("--save-png", is_flag=True, help="write the predicted labels as VOC-palette PNGs")(fn)
    return fn


def run_test(
    cfg: Dict, *, model_path: str | None, name: str | None, split: str, device: torch.device, overwrite: bool,
    files: PredictionFiles, check_data: bool = True,
) -> dict | None:
    """``test`` of ``split`` and then the prediction files asked for (one process group for both)."""
    with distributed.session(device):
        result = evaluate.test(cfg, model_path, split=split, device=device, overwrite=overwrite, name=name,
                               save_labels=files.labels, check_data=check_data)
        if files.derived:
            paths = RunPaths.for_evaluation(cfg, model_path, name)
            write_prediction_files(paths, data_layout(cfg), split, crf=False, files=files)
    return result


def run_crf(
    cfg: Dict, *, model_path: str | None, name: str | None, split: str, n_jobs: int, overwrite: bool,
    files: PredictionFiles, keep_labels: bool = False, device: str | torch.device = "cpu", check_data: bool = True,
) -> dict | None:
    """``crf`` of ``split`` (on ``device``, see ``CRF.BACKEND``) and then the prediction files asked for;
    ``keep_labels``: always write label PNGs."""
    paths = RunPaths.for_evaluation(cfg, model_path, name)
    label_dir = paths.label_crf_dir(split) if files.labels or keep_labels else None
    with distributed.session("cpu"):
        result = crf_run.crf(cfg, split=split, n_jobs=n_jobs, label_dir=label_dir, overwrite=overwrite,
                              model_path=model_path, name=name, device=device, check_data=check_data)
        if files.derived:
            write_prediction_files(paths, data_layout(cfg), split, crf=True, files=files)
    return result


def load_cli_config(
    config_path: str, overrides: Sequence[str], split: str | None = None, split_key: str | None = None
) -> Dict:
    """Config with ``--set`` overrides; ``--split`` becomes ``DATASET.SPLIT.<split_key>``."""
    overrides = list(overrides)
    if split is not None and split_key is not None:
        overrides.append(f"DATASET.SPLIT.{split_key}={split}")
    return load_config(config_path, overrides)


def resolve_device(cuda: bool, benchmark: bool = False) -> torch.device:
    """CUDA when asked for and available, else CPU (with a warning when CUDA was asked for).

    ``benchmark`` turns on cuDNN autotuning: worth it for training, where every
    crop has the same shape, and off for test/CRF at native image sizes, where
    each new shape would be tuned again.
    """
    if cuda and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = benchmark
        return torch.device("cuda")
    if cuda:
        LOG.warning("CUDA is not available; running on the CPU (pass --cpu to silence this)")
    return torch.device("cpu")


def run_group(group: click.Command, argv: Sequence[str] | None, prog_name: str) -> Any:
    """Run a click group (or command) in-process: returns the command's value, raises NsromError, no sys.exit on success."""
    try:
        return group.main(args=list(argv) if argv is not None else None, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C (click turns KeyboardInterrupt into Abort)
        print(f"{prog_name}: {INTERRUPTED}", file=sys.stderr)
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
