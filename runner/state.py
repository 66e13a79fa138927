"""Completion markers of pipeline stages: ``W/.stages/<stage>.json``.

A stage counts as done once its marker exists; the marker is written
atomically after the stage returns, with the seconds it took and the
settings it ran with. ``--from STAGE`` removes the markers of that stage and
the following ones, so they run again.
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

    def seconds(self, stage: str) -> float | None:
        return read_json(self.marker(stage))["seconds"] if self.is_done(stage) else None

    def clear(self, stages: list[str]) -> None:
        for stage in stages:
            self.marker(stage).unlink(missing_ok=True)
