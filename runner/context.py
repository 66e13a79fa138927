"""Where each stage of a pipeline run reads and writes, all below the work dir W."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nsrom.data import DataLayout, TRAIN_SPLIT, VAL_SPLIT
from .presets import Preset

CLASSIFIER_EXP = "exp1"
IAM_EXP = "exp2"
ROUNDS = ("round1", "round2")


@dataclass
class RunContext:
    """Paths and settings shared by the stages of one run.

    ``W/classification/runs/{exp1,exp2}``: classifier and IAM runs (CAMs, OA-CAMs);
    ``W/pseudo_labels``, ``W/masked_labels``: stage 3 and 6 labels;
    ``W/segmentation``: DeepLab-v2 OUTPUT_DIR, EXP.ID ``round1`` / ``round2``;
    ``W/results.json``, ``W/results.md``, ``W/figures/``.
    """

    data_root: Path
    work_dir: Path
    preset: Preset
    device: str = "auto"
    seg_overrides: list[str] = field(default_factory=list)
    classifier_extra: list[str] = field(default_factory=list)
    pseudo_label_extra: list[str] = field(default_factory=list)
    """Flags for ``gen_label.py`` after the preset's rules (``pipeline.py --pseudo-label-arg``)."""
    masked_label_extra: list[str] = field(default_factory=list)
    """Flags for ``gen_masked_label.py`` after the preset's rules (``pipeline.py --masked-label-arg``)."""

    def __post_init__(self) -> None:
        self.data_root = Path(self.data_root).resolve()
        self.work_dir = Path(self.work_dir).resolve()

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.data_root)

    @property
    def train_split(self) -> str:
        return TRAIN_SPLIT

    @property
    def val_split(self) -> str:
        return VAL_SPLIT

    @property
    def runs_dir(self) -> Path:
        return self.work_dir / "classification" / "runs"

    def attention_dir(self, exp: str) -> Path:
        return self.runs_dir / exp / "attention"

    @property
    def pseudo_dir(self) -> Path:
        return self.work_dir / "pseudo_labels"

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

    overwrite: bool = False
    """Set by the runner for stages re-run with ``--from``: redo existing outputs."""

    def seg_sets(self, round_id: str, label_dir: Path) -> list[str]:
        """``KEY=VALUE`` overrides of a DeepLab-v2 round: data root, labels, output dir, EXP.ID."""
        return [
            f"DATASET.ROOT={self.data_root}",
            f"DATASET.LABEL_DIR={label_dir}",
            f"EXP.OUTPUT_DIR={self.seg_output_dir}",
            f"EXP.ID={round_id}",
            *self.preset.seg_overrides,
            *self.seg_overrides,
        ]

    def seg_args(self, round_id: str, label_dir: Path) -> list[str]:
        """``-c CONFIG --set KEY=VALUE ...`` for main.py / trainaug_pred.py."""
        args = ["-c", str(self.preset.seg_config)]
        for item in self.seg_sets(round_id, label_dir):
            args += ["--set", item]
        return args

    @property
    def cuda_flag(self) -> str:
        return "--cpu" if self.device == "cpu" else "--cuda"
