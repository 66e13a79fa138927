"""Which accumulated maps an integral attention model learnt (docs/method.md, stage 2).

The IAM's targets are the accumulated maps of one stage-1 run. When stage 1 is
trained again (``train.py --overwrite``), those maps change and an IAM trained
before is stale: its OA-CAMs show the old classifier's accumulation. So
``train_iam`` records the maps it learns, by folder and content digest, in its
``train_args.json`` and its final checkpoint (key :data:`TARGETS_KEY`), and

* ``train_iam`` refuses to skip a finished IAM whose maps have changed since
  (``--overwrite`` trains it on the new ones), and ``--resume`` refuses to
  continue on changed maps (a setting of the run, as every other);
* the OA-CAM export (``test_iam``) refuses a checkpoint whose maps have changed
  since; a checkpoint without the record (older, or made elsewhere) or whose
  folder is not on this machine is exported as it is.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nsrom.errors import DataError
from nsrom.files import read_json
from nsrom.provenance import StaleOutputError, folder_digest

from .run_layout import RunDirs

log = logging.getLogger(__name__)

TARGETS_KEY = "accu_maps"
"""Key of the record ``{"dir": <accumulated maps>, "digest": <content digest>}`` in the IAM's final checkpoint."""
DIGEST_ARG = "accu_maps_digest"
"""The digest as a setting of the IAM's run (``train_args.json``; compared on ``--resume``)."""
MAPS_PATTERN = "*_*.png"
"""The accumulated maps in their folder, ``<id>_<c>.png``."""

RETRAIN = "train the IAM again on them (train_iam.sh, or python -m classification.train_iam ... --overwrite)"


def targets_record(accu_dir: Path) -> dict:
    """``{"dir", "digest"}`` of the accumulated maps in ``accu_dir`` (every ``<id>_<c>.png``, by content)."""
    return {"dir": str(Path(accu_dir).resolve()), "digest": folder_digest(accu_dir, MAPS_PATTERN)}


def check_finished_iam(args: argparse.Namespace, dirs: RunDirs, record: dict) -> None:
    """Raise :class:`StaleOutputError` when the IAM in ``dirs`` has finished on other accumulated maps than
    ``record``'s (and ``--overwrite`` is not given); the IAM's ``train_args.json`` holds the digest it learnt."""
    if args.overwrite or not dirs.checkpoint_final.is_file() or not dirs.train_args.is_file():
        return
    try:
        learnt = read_json(dirs.train_args).get(DIGEST_ARG)
    except (DataError, AttributeError):
        return
    if learnt is not None and learnt != record["digest"]:
        raise StaleOutputError(
            f"the IAM in {dirs.root} was trained on other accumulated maps than those now in {record['dir']} "
            f"(stage 1 trained again?); {RETRAIN}")


def check_checkpoint_targets(checkpoint: dict, path: Path) -> None:
    """Raise :class:`StaleOutputError` when the IAM checkpoint ``checkpoint`` (read from ``path``) learnt
    accumulated maps that have changed since in their folder; nothing to check without a record or folder."""
    record = checkpoint.get(TARGETS_KEY)
    if not isinstance(record, dict) or not isinstance(record.get("dir"), str):
        return
    folder = Path(record["dir"])
    if not folder.is_dir():
        log.info("%s learnt the accumulated maps of %s, which is not here: not compared", path, folder)
        return
    if folder_digest(folder, MAPS_PATTERN) != record.get("digest"):
        raise StaleOutputError(
            f"{path} is an IAM trained on the accumulated maps in {folder} as they were then, and they have "
            f"changed since (stage 1 trained again?): its OA-CAMs would not be this stage 1's; {RETRAIN}, "
            f"then export")
