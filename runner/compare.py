"""Several finished pipeline runs side by side: the table of an ablation (``tools/compare_runs.py``).

Each run is a work dir's ``results.json``. The table has one row per score the runs hold
(mIoU of every stage, the ignored shares of the pseudo and masked labels, the ablation
without POM, round 2 against round 1, where the missed objects' pixels end up) and one
column per run; below it, the settings in which each run differs from the first
(``settings`` of results.json: the preset, the data and every flag beyond the preset).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nsrom.errors import DataError
from nsrom.files import read_json

from .results import MISSED_OBJECTS_KEY, RESULT_KEYS, SETTINGS_KEY, setting_differences

Row = tuple[str, list["float | None"]]
"""A row of the table: its name and one value per run (a fraction; None where the run lacks it)."""


def load_run(work_dir: str | Path) -> dict:
    """The ``results.json`` of a pipeline work dir; a folder without one is a DataError naming it."""
    path = Path(work_dir) / "results.json"
    if not path.is_file():
        raise DataError(f"{work_dir} holds no results.json: not a pipeline work dir, or none of its scored "
                        "stages has finished")
    return read_json(path)


def _miou(results: dict, key: str) -> float | None:
    return (results.get(key) or {}).get("miou")


def comparison_rows(runs: Sequence[dict]) -> list[Row]:
    """The rows of the table for ``runs`` (results.json contents), in pipeline order; a row that no run
    holds is left out."""
    rows: list[Row] = []

    def add(name: str, values: list[float | None]) -> None:
        if any(v is not None for v in values):
            rows.append((name, values))

    for key, name in RESULT_KEYS.items():
        add(name, [_miou(r, key) for r in runs])
        if key in ("pseudo_label", "masked_label"):
            add(f"{name.split(' (')[0]}: ignored", [(r.get(key) or {}).get("ignored_fraction") for r in runs])
    add("pseudo labels without POM (ablation)", [_miou(r, "pseudo_label_no_pom") for r in runs])
    add("round 2 + CRF - round 1 + CRF",
        [None if _miou(r, "seg_round2_crf") is None or _miou(r, "seg_round1_crf") is None
         else _miou(r, "seg_round2_crf") - _miou(r, "seg_round1_crf") for r in runs])
    for key, name in (("pseudo_label", "pseudo labels"), ("masked_label", "masked labels"),
                      ("seg_round1", "round-1 predictions"), ("seg_round2", "round-2 predictions")):
        add(f"missed objects, own class: {name}",
            [((r.get(MISSED_OBJECTS_KEY) or {}).get(key) or {}).get("right_class") for r in runs])
    return rows


def render_comparison(names: Sequence[str], runs: Sequence[dict]) -> str:
    """The Markdown table of :func:`comparison_rows` (values in %), then each run's settings that differ
    from the first run's."""
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name, values in comparison_rows(runs):
        signed = name.startswith("round 2 + CRF -")
        cells = ["-" if v is None else (f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}") for v in values]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    base = runs[0].get(SETTINGS_KEY)
    notes = []
    for name, results in zip(names[1:], runs[1:]):
        settings = results.get(SETTINGS_KEY)
        if base is None or settings is None:
            notes.append(f"- {name}: settings not recorded (a run made before results.json kept them)")
        else:
            changed = setting_differences(base, settings)
            notes.append(f"- {name}: " + ("; ".join(changed) if changed else "the same settings"))
    if notes:
        lines += ["", f"Settings against {names[0]}:", "", *notes]
    return "\n".join(lines) + "\n"
