"""The tests' tiny pipeline preset (the ``tiny_preset`` fixture of conftest.py and the torchrun driver).

The demo preset cut down to seconds: 2 epochs at 32 px, 2 DeepLab steps, 1 CRF iteration.
"""

from __future__ import annotations

import dataclasses

from runner.presets import get_preset

TINY = dataclasses.replace(
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
