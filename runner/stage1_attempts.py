"""Stage 1's attempts: their record, the folders of the attempts set aside, and the one the run keeps.

The pipeline trains stage 1 again with the next seed while its recognition
check names an unlearnt class (docs/method.md, stage 1, "Recognition check";
:func:`runner.stages.cam_train`). Before a new attempt starts, the outputs of
the one before (checkpoints, accumulated maps, logs, report and arguments) are
moved to ``runs/exp1/attempts/attempt<N>/``, so each attempt starts with empty
folders and none is lost. The run keeps the first attempt that learns every
class; when none does, it keeps the one whose lowest class AP is highest
(:func:`best_attempt`), moved back into ``runs/exp1/``.

Every move is a rename and is skipped once done, so a run killed half-way
through setting an attempt aside or bringing one back finishes the job when it
is run again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from classification.recognition import REPORT_NAME, lowest_class_ap
from classification.run_layout import run_dirs

ATTEMPTS_FILE = "stage1_attempts.json"
"""In the stage-1 run folder: the recognition check of each attempt, the attempt under way and the one kept."""

ARCHIVE_DIR = "attempts"
"""In the stage-1 run folder: one ``attempt<N>`` folder (N from 1, as in results.md) per attempt set aside."""

SET_ASIDE = ".complete"
"""Written in an attempt's folder once all of its outputs are in it."""


def attempt_outputs(run_root: Path) -> list[Path]:
    """What one training of stage 1 writes in its run folder (the CAMs are exported later, by stage 1b)."""
    dirs = run_dirs(run_root.name, run_root.parent)
    return [dirs.model, dirs.accu_att, dirs.logs, dirs.root / REPORT_NAME, dirs.train_args]


def lowest_ap(report: dict) -> float:
    """The lowest average precision over the classes a report scored (1.0 when it scored none)."""
    lowest = lowest_class_ap(report)
    return lowest[1] if lowest else 1.0


def best_attempt(attempts: Sequence[dict]) -> int:
    """Index of the attempt to keep: the first that learnt every class, else the highest lowest class AP.

    Ties go to the earlier attempt.
    """
    for index, report in enumerate(attempts):
        if not report["unlearnt"]:
            return index
    return max(range(len(attempts)), key=lambda i: (lowest_ap(attempts[i]), -i))


def attempt_dir(run_root: Path, number: int) -> Path:
    """The folder of attempt ``number`` (1 for the first) once set aside."""
    return run_root / ARCHIVE_DIR / f"attempt{number}"


def set_aside(run_root: Path, number: int) -> Path:
    """Move the outputs of attempt ``number`` from ``run_root`` to its own folder."""
    target = attempt_dir(run_root, number)
    if (target / SET_ASIDE).is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for path in attempt_outputs(run_root):
        if path.exists() and not (target / path.name).exists():
            path.rename(target / path.name)
    (target / SET_ASIDE).touch()
    return target


def bring_back(run_root: Path, number: int) -> None:
    """Move the outputs of attempt ``number``, set aside, back into ``run_root`` and remove its folder.

    The attempt in ``run_root`` must have been set aside first (:func:`set_aside`).
    """
    source = attempt_dir(run_root, number)
    if not source.is_dir():
        return
    for path in attempt_outputs(run_root):
        if (source / path.name).exists() and not path.exists():
            (source / path.name).rename(path)
    shutil.rmtree(source)


def clear_attempts(run_root: Path) -> None:
    """Remove every attempt set aside (a run that starts stage 1 over)."""
    shutil.rmtree(run_root / ARCHIVE_DIR, ignore_errors=True)
