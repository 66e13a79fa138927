"""Completion markers of pipeline stages: ``W/.stages/<stage>.json``.

A stage counts as done once its marker exists; the marker is written
atomically after the stage returns, with the seconds it took and the
time it finished and the result keys it wrote. ``--from STAGE`` removes the
markers of that stage and the following ones, so they run again, and lists
them in ``redo.json`` until each has run: a ``--from`` run stopped by ``--to``
or a kill leaves their old outputs, which the next run then redoes instead of
keeping. ``settings.json`` holds the settings of the run that made ``W``
(:func:`run_settings` of runner/run.py), so that another dataset or other flags
are not mixed into its outputs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nsrom.files import read_json, write_json


class StageState:
    """Markers of completed stages under ``work_dir/.stages``."""

    def __init__(self, work_dir: str | Path):
        self.dir = Path(work_dir) / ".stages"

    def marker(self, stage: str) -> Path:
        return self.dir / f"{stage}.json"

    def is_done(self, stage: str) -> bool:
        return self.marker(stage).is_file()

    def mark_done(self, stage: str, seconds: float, info: dict[str, Any] | None = None) -> None:
        write_json(self.marker(stage), {"stage": stage, "seconds": round(seconds, 2),
                                        "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **(info or {})})

    def info(self, stage: str) -> dict[str, Any]:
        """The marker's content (seconds, finish time, result keys, the run's settings); {} if not done."""
        return read_json(self.marker(stage)) if self.is_done(stage) else {}

    def seconds(self, stage: str) -> float | None:
        return read_json(self.marker(stage))["seconds"] if self.is_done(stage) else None

    def clear(self, stages: list[str]) -> None:
        """Remove the markers of ``stages`` and list them for redoing (:meth:`redo`)."""
        write_json(self.redo_path, sorted(set(self.redo()) | set(stages)))
        for stage in stages:
            self.marker(stage).unlink(missing_ok=True)

    @property
    def redo_path(self) -> Path:
        return self.dir / "redo.json"

    def redo(self) -> list[str]:
        """Stages that ``--from`` cleared and that have not run since."""
        return list(read_json(self.redo_path)) if self.redo_path.is_file() else []

    def redone(self, stage: str) -> None:
        """``stage`` ran again after ``--from``: no longer listed for redoing."""
        left = [name for name in self.redo() if name != stage]
        if left:
            write_json(self.redo_path, left)
        else:
            self.redo_path.unlink(missing_ok=True)

    @property
    def settings_path(self) -> Path:
        return self.dir / "settings.json"

    def settings(self) -> dict[str, Any] | None:
        """The settings stored by the run that made the work dir (None: none stored yet)."""
        return read_json(self.settings_path) if self.settings_path.is_file() else None

    def store_settings(self, settings: dict[str, Any]) -> None:
        write_json(self.settings_path, settings)
