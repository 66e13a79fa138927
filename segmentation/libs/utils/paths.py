"""The one place that derives every output path of a run from the config (docs/method.md, stages 4, 5, 7).

Layout, as deeplab-pytorch's (``<run>`` = ``<EXP.ID>/<model name, lower case>``)::

    OUTPUT_DIR/models/<run>/<train split>/checkpoint_<step>.pth, checkpoint_final.pth, config.yaml
    OUTPUT_DIR/logs/<run>/<train split>/          TensorBoard events, train.log
    OUTPUT_DIR/features/<run>/<split>/logit/<id>.npy     stride-8 logits of test
    OUTPUT_DIR/features/<run>/<split>/label_crf/<id>.png CRF labels (trainaug_pred.py crf)
    OUTPUT_DIR/scores/<run>/<split>/scores.json, scores_crf.json
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from addict import Dict

FINAL_CHECKPOINT = "checkpoint_final.pth"


@dataclass(frozen=True)
class RunPaths:
    """Output paths of one experiment (``EXP``, ``MODEL.NAME``, the train split)."""

    output_dir: Path
    exp_id: str
    model: str
    train_split: str

    @classmethod
    def from_config(cls, cfg: Dict) -> "RunPaths":
        return cls(
            output_dir=Path(cfg.EXP.OUTPUT_DIR),
            exp_id=str(cfg.EXP.ID),
            model=str(cfg.MODEL.NAME).lower(),
            train_split=str(cfg.DATASET.SPLIT.TRAIN),
        )

    def _run(self, kind: str) -> Path:
        return self.output_dir / kind / self.exp_id / self.model

    @property
    def model_dir(self) -> Path:
        """Checkpoints and the resolved config of the model trained on the train split."""
        return self._run("models") / self.train_split

    @property
    def log_dir(self) -> Path:
        """TensorBoard events and the training log."""
        return self._run("logs") / self.train_split

    @property
    def final_checkpoint(self) -> Path:
        return self.model_dir / FINAL_CHECKPOINT

    def checkpoint(self, step: int) -> Path:
        return self.model_dir / f"checkpoint_{step}.pth"

    def feature_dir(self, split: str) -> Path:
        return self._run("features") / split

    def logit_dir(self, split: str) -> Path:
        """``<id>.npy`` logits written by test, read by crf."""
        return self.feature_dir(split) / "logit"

    def label_crf_dir(self, split: str) -> Path:
        """Palette PNGs of the CRF labels (stage 5 output, read by gen_masked_label.py)."""
        return self.feature_dir(split) / "label_crf"

    def score_dir(self, split: str) -> Path:
        return self._run("scores") / split

    def score_path(self, split: str, crf: bool) -> Path:
        return self.score_dir(split) / ("scores_crf.json" if crf else "scores.json")
