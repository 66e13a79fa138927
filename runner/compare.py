"""Several finished pipeline runs side by side: the table of an ablation (``tools/compare_runs.py``).

Each run is a work dir's ``results.json``. The table has one row per score the runs hold
(mIoU of every stage, the ignored shares of the pseudo and masked labels, the ablation
without POM, round 2 against round 1, where the missed objects' pixels end up), named as
results.md names them, and one column per run; below it, the notes of partial scores and
the settings in which each run differs from the first (``settings`` of results.json: the
preset, the data and every flag beyond the preset).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nsrom.errors import DataError
from nsrom.files import read_json

from .results import (
    MISSED_OBJECT_ROWS, MISSED_OBJECTS_KEY, NOT_DONE_KEY, NOTES_KEY, OTHER_SETTINGS_KEY, POM_KEY, RESULT_KEYS,
    SETTINGS_KEY, SPLITS_KEY, in_splits, setting_differences,
)

Row = tuple[str, list["float | str | None"]]
"""A row of the table: its name and one value per run (a fraction, or a word; None where the run lacks it)."""

SCORE_KEYS = (*RESULT_KEYS, "pseudo_label_no_pom", MISSED_OBJECTS_KEY)
"""The results.json entries the table reads; each must be a mapping."""


def load_run(work_dir: str | Path) -> dict:
    """The ``results.json`` of a pipeline work dir; a folder without one, a file given as the folder, or a
    results.json that is not the pipeline's (not a mapping of mappings) is a DataError naming it."""
    work_dir = Path(work_dir)
    if work_dir.is_file():
        raise DataError(f"{work_dir} is a file: give the work dir that holds it")
    path = work_dir / "results.json"
    if not path.is_file():
        raise DataError(f"{work_dir} holds no results.json: not a pipeline work dir, or none of its scored "
                        "stages has finished")
    results = read_json(path)
    if not isinstance(results, dict):
        raise DataError(f"{path} is not a pipeline's results.json (not a mapping)")
    shapes = {**{k: dict for k in (*SCORE_KEYS, NOTES_KEY, SETTINGS_KEY, OTHER_SETTINGS_KEY, SPLITS_KEY)},
              NOT_DONE_KEY: list}
    bad = [k for k, kind in shapes.items() if results.get(k) is not None and not isinstance(results[k], kind)]
    if bad:
        kind = "a list" if shapes[bad[0]] is list else "a mapping"
        raise DataError(f"{path} is not a pipeline's results.json ({bad[0]} is not {kind})")
    if not any(k in results for k in (*SCORE_KEYS, SETTINGS_KEY, "stage_seconds")):
        raise DataError(f"{path} holds none of a pipeline's scores or settings: not a pipeline's results.json")
    return results


def _miou(results: dict, key: str) -> float | None:
    return (results.get(key) or {}).get("miou")


def _difference(results: dict, suffix: str) -> float | None:
    one, two = _miou(results, f"seg_round1{suffix}"), _miou(results, f"seg_round2{suffix}")
    return None if one is None or two is None else two - one


def _same_splits(runs: Sequence[dict]) -> dict | None:
    """The runs' split names when they all have the same ones, else None."""
    splits = [r.get(SPLITS_KEY) or {} for r in runs]
    return splits[0] if all(s == splits[0] for s in splits) else None


def _name(text: str, runs: Sequence[dict]) -> str:
    """A row name of results.md with the runs' split names (``train split`` / ``val split`` when they differ)."""
    splits = _same_splits(runs)
    if splits is not None:
        return in_splits(text, {SPLITS_KEY: splits})
    return text.replace("train_aug", "train split").replace("(val)", "(val split)")


def comparison_rows(runs: Sequence[dict]) -> list[Row]:
    """The rows of the table for ``runs`` (results.json contents), in pipeline order; a row that no run
    holds is left out."""
    rows: list[Row] = []

    def add(name: str, values: list) -> None:
        if any(v is not None for v in values):
            rows.append((_name(name, runs), values))

    if any(r.get(POM_KEY) is False for r in runs):  # then "pseudo labels" is not the same method in every column
        add("stage 3 with POM", ["no" if r.get(POM_KEY) is False else "yes" for r in runs])
    for key, name in RESULT_KEYS.items():
        add(name, [_miou(r, key) for r in runs])
        if key in ("pseudo_label", "masked_label"):
            add(f"{name.split(' (')[0]}: ignored", [(r.get(key) or {}).get("ignored_fraction") for r in runs])
    add("pseudo labels without POM (ablation)", [_miou(r, "pseudo_label_no_pom") for r in runs])
    add("round 2 - round 1", [_difference(r, "") for r in runs])
    add("round 2 + CRF - round 1 + CRF", [_difference(r, "_crf") for r in runs])
    for key, name in MISSED_OBJECT_ROWS.items():
        add(f"missed objects, own class: {name}",
            [((r.get(MISSED_OBJECTS_KEY) or {}).get(key) or {}).get("right_class") for r in runs])
    return rows


def _cell(name: str, value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{100 * value:+.1f}" if " - round 1" in name else f"{100 * value:.1f}"


def render_comparison(names: Sequence[str], runs: Sequence[dict]) -> str:
    """The Markdown table of :func:`comparison_rows` (values in %); then the runs' split names where they
    differ, the notes of partial scores, and each run's settings that differ from the first recorded ones."""
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name, values in comparison_rows(runs):
        lines.append(f"| {name} | " + " | ".join(_cell(name, v) for v in values) + " |")
    if _same_splits(runs) is None:
        splits = [r.get(SPLITS_KEY) or {} for r in runs]
        lines += ["", "Splits:", ""] + [f"- {n}: train {s.get('train', 'train_aug')}, val {s.get('val', 'val')}"
                                        for n, s in zip(names, splits)]
    notes = [f"- {n}, {key}: {text}" for n, r in zip(names, runs) for key, text in (r.get(NOTES_KEY) or {}).items()]
    notes += [f"- {n}: not done yet: {', '.join(r[NOT_DONE_KEY])}" for n, r in zip(names, runs) if r.get(NOT_DONE_KEY)]
    notes += [f"- {n}: {stage} made under other settings ({'; '.join(changes)})" for n, r in zip(names, runs)
              for stage, changes in (r.get(OTHER_SETTINGS_KEY) or {}).items()]
    if notes:
        lines += ["", "Notes:", "", *notes]
    recorded = [(n, r[SETTINGS_KEY]) for n, r in zip(names, runs) if r.get(SETTINGS_KEY) is not None]
    unrecorded = [n for n, r in zip(names, runs) if r.get(SETTINGS_KEY) is None]
    if len(names) > 1:
        lines += ["", f"Settings against {recorded[0][0]}:" if recorded else "Settings:", ""]
        if recorded:
            base = recorded[0][1]
            lines += [f"- {n}: " + ("; ".join(setting_differences(base, s)) or "the same settings")
                      for n, s in recorded[1:]]
        lines += [f"- {n}: settings not recorded (a run made before results.json kept them)" for n in unrecorded]
    return "\n".join(lines) + "\n"
