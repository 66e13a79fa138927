"""The one place that derives a classification run's folders.

``runs/<exp>/{model, accu_att, attention, logs}`` under ``classification/`` by
default (the original layout: ``exp1`` for the classifier, ``exp2`` for the
IAM). Every folder can be overridden. The trainers and exports call
:func:`run_dirs`, and so does the pipeline runner (runner/context.py) to find
the CAMs and OA-CAMs; ``gen_label.py`` names the same folders by default,
relative to the current folder as in the original (``runs/exp2/attention``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nsrom.training_state import RECENT_CHECKPOINT

CLASSIFICATION_DIR = Path(__file__).resolve().parent
DEFAULT_RUNS_DIR = CLASSIFICATION_DIR / "runs"
CLASSIFIER_EXP = "exp1"
"""Default experiment of the OAA classifier (stages 1 and 1b)."""
IAM_EXP = "exp2"
"""Default experiment of the integral attention model (stage 2)."""

CHECKPOINT_LAST = "checkpoint_last.pth"
"""The whole training state after the latest finished epoch (for --resume)."""
CHECKPOINT_RECENT = RECENT_CHECKPOINT
"""The whole training state inside an epoch, every N steps / M minutes (for --resume; deleted at the end)."""
CHECKPOINT_FINAL = "checkpoint_final.pth"
"""Model after the last epoch: what export (test.sh / test_iam.sh) loads."""
TRAIN_ARGS = "train_args.json"
"""In the run folder: the arguments of the training run and what they resolved to."""


@dataclass(frozen=True)
class RunDirs:
    """Folders of one experiment."""

    root: Path
    model: Path
    accu_att: Path
    attention: Path
    logs: Path

    @property
    def checkpoint_last(self) -> Path:
        return self.model / CHECKPOINT_LAST

    @property
    def checkpoint_recent(self) -> Path:
        return self.model / CHECKPOINT_RECENT

    @property
    def checkpoint_final(self) -> Path:
        return self.model / CHECKPOINT_FINAL

    @property
    def train_args(self) -> Path:
        return self.root / TRAIN_ARGS


def run_dirs(
    exp: str,
    runs_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
    accu_dir: str | Path | None = None,
    attention_dir: str | Path | None = None,
    log_dir: str | Path | None = None,
) -> RunDirs:
    """``runs_dir/exp/{model,accu_att,attention,logs}``, each replaced by its override when given."""
    root = Path(runs_dir if runs_dir is not None else DEFAULT_RUNS_DIR) / exp

    def pick(override: str | Path | None, name: str) -> Path:
        return Path(override) if override is not None else root / name

    return RunDirs(
        root=root,
        model=pick(model_dir, "model"),
        accu_att=pick(accu_dir, "accu_att"),
        attention=pick(attention_dir, "attention"),
        logs=pick(log_dir, "logs"),
    )
