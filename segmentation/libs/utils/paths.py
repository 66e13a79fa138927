"""The one place that derives every output path of a run from the config (docs/method.md, stages 4, 5, 7);
gen_masked_label.py's default ``--pred-dir`` is the one copy, of the voc12 layout.

Layout, as deeplab-pytorch's (``<run>`` = ``<EXP.ID>/<model name, lower case>``)::

    OUTPUT_DIR/models/<run>/<train split>/checkpoint_<step>.pth, checkpoint_recent.pth, checkpoint_final.pth,
                                           config.yaml
    OUTPUT_DIR/logs/<run>/<train split>/          TensorBoard events, train.log
    OUTPUT_DIR/features/<run>/<split>/logit/<id>.npy     stride-8 logits of test
    OUTPUT_DIR/features/<run>/<split>/label_crf/<id>.png CRF labels (trainaug_pred.py crf, crf --save-png)
    OUTPUT_DIR/scores/<run>/<split>/scores.json, scores_crf.json

A checkpoint other than the run's own ``checkpoint_final.pth`` (``test
--model-path``) is evaluated under its own name, ``<EXP.ID>@<name>`` in place of
``<EXP.ID>`` in ``features/`` and ``scores/`` (the name defaults to the
checkpoint's file stem), so that it never touches the run's own outputs.

What the CRF saw is part of every CRF output's name (:attr:`RunPaths.crf_tag`):
``crf`` for the paper's wrapped image (``CRF.WRAPPED_IMAGE: true``), ``crf_rgb``
for the 8-bit RGB image, so the two settings never overwrite each other's scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from addict import Dict

from nsrom.errors import ConfigError
from nsrom.training_state import RECENT_CHECKPOINT

FINAL_CHECKPOINT = "checkpoint_final.pth"
EVAL_NAME_SEPARATOR = "@"
"""``<EXP.ID>@<name>``: the outputs of an evaluated checkpoint that is not the run's own."""
VOC_COMPETITION = "comp6"
"""VOC evaluation-server competition: comp5 is "trained on VOC data only", comp6 "trained
with outside data"; NSROM starts from ImageNet/COCO weights and a saliency model trained
on other data, so its results belong to comp6."""


def evaluation_name(model_path: str | Path | None, name: str | None, final_checkpoint: Path) -> str | None:
    """The name test/crf outputs go under: ``name``, else the stem of a foreign ``model_path``.

    None (the run's own folders) without ``name`` when ``model_path`` is absent or
    is the run's own checkpoint_final.pth. A name must be one plain folder name.
    """
    if name is not None:
        if not name or name in (".", "..") or any(c in name for c in "/\\"):
            raise ConfigError(f"--name {name!r} must be a plain folder name (no '/', not empty, not '.' or '..')")
        return name
    if model_path is None:
        return None
    if Path(model_path).resolve() == final_checkpoint.resolve():
        return None
    return Path(model_path).stem


@dataclass(frozen=True)
class RunPaths:
    """Output paths of one experiment (``EXP``, ``MODEL.NAME``, the train split, CRF input).

    ``eval_name`` (see :func:`evaluation_name`) moves the evaluation outputs
    (features, scores) of a foreign checkpoint under ``<EXP.ID>@<eval_name>``;
    checkpoints and logs always stay under ``<EXP.ID>``.
    """

    output_dir: Path
    exp_id: str
    model: str
    train_split: str
    eval_name: str | None = None
    crf_wrapped: bool = True

    @classmethod
    def from_config(cls, cfg: Dict, eval_name: str | None = None) -> "RunPaths":
        return cls(
            output_dir=Path(cfg.EXP.OUTPUT_DIR),
            exp_id=str(cfg.EXP.ID),
            model=str(cfg.MODEL.NAME).lower(),
            train_split=str(cfg.DATASET.SPLIT.TRAIN),
            eval_name=eval_name,
            crf_wrapped=bool(cfg.CRF.WRAPPED_IMAGE),
        )

    @classmethod
    def for_evaluation(cls, cfg: Dict, model_path: str | Path | None = None, name: str | None = None) -> "RunPaths":
        """Paths of ``test``/``crf`` of ``model_path`` (default: the run's checkpoint_final.pth)."""
        own = cls.from_config(cfg)
        return cls.from_config(cfg, evaluation_name(model_path, name, own.final_checkpoint))

    def _run(self, kind: str) -> Path:
        return self.output_dir / kind / self.exp_id / self.model

    def _eval_run(self, kind: str) -> Path:
        exp = self.exp_id if self.eval_name is None else f"{self.exp_id}{EVAL_NAME_SEPARATOR}{self.eval_name}"
        return self.output_dir / kind / exp / self.model

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

    @property
    def recent_checkpoint(self) -> Path:
        """The recent-state checkpoint (SOLVER.ITER_SAVE_RECENT / MINUTES_SAVE_RECENT), replaced each time."""
        return self.model_dir / RECENT_CHECKPOINT

    @property
    def crf_tag(self) -> str:
        """``crf`` (the paper's wrapped CRF input) or ``crf_rgb`` (the 8-bit RGB image)."""
        return "crf" if self.crf_wrapped else "crf_rgb"

    def _suffix(self, crf: bool) -> str:
        return f"_{self.crf_tag}" if crf else ""

    def feature_dir(self, split: str) -> Path:
        return self._eval_run("features") / split

    def logit_dir(self, split: str) -> Path:
        """``<id>.npy`` logits written by test, read by crf."""
        return self.feature_dir(split) / "logit"

    def label_dir(self, split: str, crf: bool) -> Path:
        """Palette PNGs of the predictions: ``label/`` (test) or ``label_<crf tag>/`` (crf)."""
        return self.feature_dir(split) / f"label{self._suffix(crf)}"

    def label_crf_dir(self, split: str) -> Path:
        """Palette PNGs of the CRF labels (stage 5 output, read by gen_masked_label.py)."""
        return self.label_dir(split, crf=True)

    def overlay_dir(self, split: str, crf: bool) -> Path:
        """``<id>.jpg``: each image blended with the colours of its predicted labels."""
        return self.feature_dir(split) / f"overlay{self._suffix(crf)}"

    def server_dir(self, split: str, crf: bool) -> Path:
        """Root of the VOC evaluation server's layout (holds ``results/``)."""
        return self.feature_dir(split) / f"voc_server{self._suffix(crf)}"

    def server_label_dir(self, split: str, crf: bool) -> Path:
        """``results/VOC2012/Segmentation/comp6_<split>_cls/``: the label PNGs the server reads."""
        return self.server_dir(split, crf) / "results" / "VOC2012" / "Segmentation" / f"{VOC_COMPETITION}_{split}_cls"

    def server_archive(self, split: str, crf: bool) -> Path:
        """The ``.tar.gz`` of :meth:`server_dir`'s ``results/`` tree, ready to upload."""
        return self.feature_dir(split) / f"voc_server{self._suffix(crf)}.tar.gz"

    def score_dir(self, split: str) -> Path:
        return self._eval_run("scores") / split

    def score_path(self, split: str, crf: bool) -> Path:
        """``scores.json`` (test) or ``scores_<crf tag>.json`` (crf)."""
        return self.score_dir(split) / f"scores{self._suffix(crf)}.json"
