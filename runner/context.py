"""Where each stage of a pipeline run reads and writes, all below the work dir W."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from classification.run_layout import CLASSIFIER_EXP, IAM_EXP, run_dirs
from nsrom.data import DataLayout
from .presets import Preset

FIGURES = {
    "qualitative": "image, saliency, CAM, OA-CAM, pseudo label, masked label, round-2 prediction, ground truth",
    "cam_thresholds": "CAM and OA-CAM mIoU against the background threshold (train_aug)",
    "missed_objects": "objects the saliency map misses (outlined in yellow): image, saliency, pseudo label without "
                      "and with POM, round-1 prediction, masked label, round-2 prediction, ground truth",
}
"""The report's figures (``W/figures/<name>.png``) and their captions in results.md."""


@dataclass
class RunContext:
    """Paths and settings shared by the stages of one run.

    ``W/classification/runs/{exp1,exp2}``: classifier and IAM runs (CAMs, OA-CAMs);
    ``W/pretrained``: stand-in pretrained weights (presets that make their own);
    ``W/pseudo_labels``, ``W/masked_labels``: stage 3 and 6 labels;
    ``W/pseudo_labels_no_pom``: stage 3 without POM (the ablation);
    ``W/segmentation``: DeepLab-v2 OUTPUT_DIR, EXP.ID ``round1`` / ``round2``;
    ``W/results.json``, ``W/results.md``, ``W/figures/`` (:data:`FIGURES`).

    ``layout_overrides`` are the dataset settings given to pipeline.py as flags
    (``image_ext``, ``mask_dir``, ``train_split``, ``val_split``); they override
    ``ROOT/dataset.yaml`` and are handed to every stage. ``seg_config``
    replaces the preset's segmentation YAML.
    """

    data_root: Path
    work_dir: Path
    preset: Preset
    device: str = "auto"
    seg_overrides: list[str] = field(default_factory=list)
    classifier_extra: list[str] = field(default_factory=list)
    """Flags for both classifier trainers after the preset's (``pipeline.py --cls-arg``)."""
    cam_extra: list[str] = field(default_factory=list)
    """Flags for stage 1's trainer alone, after all others (``pipeline.py --cam-arg``)."""
    pseudo_label_extra: list[str] = field(default_factory=list)
    """Flags for ``gen_label.py`` after the preset's rules (``pipeline.py --pseudo-label-arg``)."""
    masked_label_extra: list[str] = field(default_factory=list)
    """Flags for ``gen_masked_label.py`` after the preset's rules (``pipeline.py --masked-label-arg``)."""
    layout_overrides: dict[str, Any] = field(default_factory=dict)
    seg_config: Path | None = None
    seed: int | None = None
    """Seed of each DeepLab-v2 training (``main.py train --seed``): init, shuffling, augmentation.
    None: torch's generator as the earlier stages of this process left it."""
    stage1_attempts: int | None = None
    """At most this many stage-1 trainings (``pipeline.py --stage1-attempts``); None: the preset's."""

    @property
    def max_stage1_attempts(self) -> int:
        """The stage-1 attempts allowed: ``stage1_attempts``, else the preset's."""
        return self.stage1_attempts if self.stage1_attempts is not None else self.preset.stage1_attempts

    def __post_init__(self) -> None:
        self.data_root = Path(self.data_root).resolve()
        self.work_dir = Path(self.work_dir).resolve()

    @cached_property
    def layout(self) -> DataLayout:
        """The dataset: ``ROOT/dataset.yaml`` with this run's overrides."""
        return DataLayout(self.data_root, **self.layout_overrides)

    @property
    def train_split(self) -> str:
        return self.layout.train_split

    @property
    def val_split(self) -> str:
        return self.layout.val_split

    @property
    def runs_dir(self) -> Path:
        return self.work_dir / "classification" / "runs"

    def attention_dir(self, exp: str) -> Path:
        return run_dirs(exp, self.runs_dir).attention

    @property
    def pseudo_dir(self) -> Path:
        return self.work_dir / "pseudo_labels"

    @property
    def pseudo_no_pom_dir(self) -> Path:
        """Stage-3 labels made without potential object mining (the POM ablation)."""
        return self.work_dir / "pseudo_labels_no_pom"

    @property
    def masked_dir(self) -> Path:
        return self.work_dir / "masked_labels"

    @property
    def seg_output_dir(self) -> Path:
        return self.work_dir / "segmentation"

    @property
    def results_path(self) -> Path:
        return self.work_dir / "results.json"

    @property
    def figures_dir(self) -> Path:
        return self.work_dir / "figures"

    @property
    def standin_dir(self) -> Path:
        """Stand-in pretrained weights of a preset that makes its own (``W/pretrained``)."""
        return self.work_dir / "pretrained"

    @property
    def vgg_standin_path(self) -> Path:
        return self.standin_dir / "vgg16_standin.pth"

    @property
    def deeplab_standin_path(self) -> Path:
        return self.standin_dir / "deeplab_standin.pth"

    @property
    def standin_classifier_args(self) -> list[str]:
        """``--pretrained-path`` of the stand-in for stages 1 and 2 (nothing without one)."""
        if self.preset.standin is None:
            return []
        return ["--pretrained", "--pretrained-path", str(self.vgg_standin_path)]

    def figure_path(self, name: str) -> Path:
        """``W/figures/<name>.png`` for a name of :data:`FIGURES`."""
        return self.figures_dir / f"{name}.png"

    overwrite: bool = False
    """Set by the runner for stages re-run with ``--from``: redo existing outputs."""

    def seg_sets(self, round_id: str, label_dir: Path) -> list[str]:
        """``KEY=VALUE`` overrides of a DeepLab-v2 round: data root, splits, labels, output dir, EXP.ID."""
        dataset = [f"DATASET.{key}={self.layout_overrides[name]}"
                   for key, name in (("IMAGE_EXT", "image_ext"), ("MASK_DIR", "mask_dir"))
                   if self.layout_overrides.get(name) is not None]
        return [
            f"DATASET.ROOT={self.data_root}",
            f"DATASET.SPLIT.TRAIN={self.train_split}",
            f"DATASET.SPLIT.VAL={self.val_split}",
            *dataset,
            f"DATASET.LABEL_DIR={label_dir}",
            f"EXP.OUTPUT_DIR={self.seg_output_dir}",
            f"EXP.ID={round_id}",
            *self.preset.seg_overrides,
            *([f"MODEL.INIT_MODEL={self.deeplab_standin_path}"] if self.preset.standin is not None else []),
            *self.seg_overrides,
        ]

    @property
    def seg_config_path(self) -> Path:
        """The segmentation YAML of both rounds: ``--seg-config``, else the preset's."""
        return Path(self.seg_config) if self.seg_config is not None else self.preset.seg_config

    def seg_args(self, round_id: str, label_dir: Path) -> list[str]:
        """``-c CONFIG --set KEY=VALUE ...`` for main.py / trainaug_pred.py."""
        args = ["-c", str(self.seg_config_path)]
        for item in self.seg_sets(round_id, label_dir):
            args += ["--set", item]
        return args

    @property
    def cuda_flag(self) -> str:
        """The segmentation scripts' device flag: ``--cpu`` for ``cpu``, and for ``auto`` where CUDA is not
        available (so that they do not warn about a flag pipeline.py does not have); else ``--cuda``."""
        import torch

        if self.device == "cpu" or (self.device == "auto" and not torch.cuda.is_available()):
            return "--cpu"
        return "--cuda"
