"""Command-line pieces shared by main.py and trainaug_pred.py: options, config, device, runner."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

import click
import torch
from addict import Dict

from .utils.config import DEFAULT_CONFIG, load_config

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


def jobs_option(fn: Callable) -> Callable:
    return click.option(
        "-j", "--n-jobs", type=int, default=os.cpu_count() or 1, show_default=True, help="parallel CRF processes (pydensecrf) or file threads (torch backend)"
    )(fn)


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


def run_group(group: click.Group, argv: Sequence[str] | None, prog_name: str) -> Any:
    """Run a click group in-process: returns the command's value, raises NsromError, no sys.exit on success."""
    try:
        return group.main(args=list(argv) if argv is not None else None, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        raise SystemExit(1) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
