"""Datasets of the segmentation stages: training crops and whole evaluation images of a split
(:mod:`.voc`), and their transforms (:mod:`.transforms`). What a config says of its dataset (layout,
classes, mean) is :mod:`segmentation.libs.data_config`."""

from __future__ import annotations

from .voc import EvalDataset, TrainDataset, seed_worker, split_ids

__all__ = ["EvalDataset", "TrainDataset", "seed_worker", "split_ids"]
