"""The two DeepLab-v2 rounds of a pipeline run (docs/method.md, stages 4 and 7): config, paths, scores.

Shared by the stages (which train and evaluate the rounds) and the figures
(which run the round-2 model), so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

from .context import RunContext


def round_label_dir(ctx: RunContext, round_id: str) -> Path:
    """Training labels of a round: stage-3 pseudo labels (round 1) or stage-6 masked labels (round 2)."""
    return ctx.pseudo_dir if round_id == "round1" else ctx.masked_dir


def seg_config(ctx: RunContext, round_id: str):
    """The resolved segmentation config of a round (``round1`` / ``round2``)."""
    from segmentation.libs.utils.config import load_config

    return load_config(ctx.seg_config_path, ctx.seg_sets(round_id, round_label_dir(ctx, round_id)))


def seg_paths(ctx: RunContext, round_id: str):
    """Output paths (checkpoints, logits, scores) of a round."""
    from segmentation.libs.utils.paths import RunPaths

    return RunPaths.from_config(seg_config(ctx, round_id))


def seg_scores(score: dict) -> dict:
    """A segmentation scores.json (deeplab-pytorch keys) as a results.json entry."""
    return {
        "miou": score["Mean IoU"],
        "class_iou": score["Class IoU"],
        "class_accuracy": score.get("Class Accuracy"),  # absent in scores.json of earlier runs
        "pixel_accuracy": score["Pixel Accuracy"],
        "mean_accuracy": score["Mean Accuracy"],
        "fw_iou": score["Frequency Weighted IoU"],
    }
