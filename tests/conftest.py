"""Shared fixtures: a tiny synthetic VOC-format dataset made once per test session."""

from __future__ import annotations

import dataclasses

import pytest

from nsrom.data import DataLayout
from nsrom.synthetic import generate
from runner.presets import Preset, get_preset


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> DataLayout:
    """8 train + 4 val images, 64 px, 3 classes, seed 0. Treat it as read-only."""
    root = tmp_path_factory.mktemp("synthetic_voc")
    return generate(root, num_train=8, num_val=4, size=64, num_classes=3, seed=0)


@pytest.fixture(scope="session")
def tiny_preset() -> Preset:
    """The demo preset cut down to seconds: 2 epochs at 32 px, 2 DeepLab steps, 1 CRF iteration."""
    return dataclasses.replace(
        get_preset("demo"),
        name="tiny",
        classifier_args=["--input-size", "32", "--width-div", "16", "--epochs", "2", "--decay-points", "1",
                         "--batch-size", "4", "--no-pretrained", "--num-workers", "0", "--seed", "0"],
        export_args=["--input-size", "32", "--num-workers", "0"],
        iam_args=[],
        seg_overrides=["SOLVER.ITER_MAX=2", "SOLVER.ITER_SAVE=1", "SOLVER.BATCH_SIZE.TRAIN=2", "IMAGE.SIZE.TRAIN=33",
                       "CRF.ITER_MAX=1", "DATALOADER.NUM_WORKERS=0"],
        crf_jobs=1,
        label_workers=1,
        figure_images=1,
    )
