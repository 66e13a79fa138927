"""``W/results.json`` and ``W/results.md``: the scores of every stage, and stage times.

results.json keys (each an object with at least ``miou`` in [0, 1] and
``class_iou`` by class name): ``cam``, ``oacam``, ``pseudo_label`` (and
``ignored_fraction``), ``seg_round1``, ``seg_round1_crf``, ``masked_label``
(and ``ignored_fraction``), ``seg_round2``, ``seg_round2_crf``; plus
``stage_seconds``. CAMs, OA-CAMs and labels are scored on train_aug, the
segmentation rounds on val.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nsrom.files import atomic_write_text, read_json, write_json

RESULT_KEYS = {
    "cam": "CAM (stage 1b, train_aug, best bg threshold)",
    "oacam": "OA-CAM (stage 2, train_aug, best bg threshold)",
    "pseudo_label": "pseudo labels (stage 3, train_aug, non-ignored pixels)",
    "seg_round1": "DeepLab-v2 round 1 (val)",
    "seg_round1_crf": "DeepLab-v2 round 1 + CRF (val)",
    "masked_label": "masked labels (stage 6, train_aug, non-ignored pixels)",
    "seg_round2": "DeepLab-v2 round 2 (val)",
    "seg_round2_crf": "DeepLab-v2 round 2 + CRF (val): the reported number",
}


NOTES_KEY = "notes"
"""results.json key of the notes: result key -> why it is missing or partial."""


def load_results(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


def update_results(path: Path, entries: dict) -> dict:
    """Merge ``entries`` into results.json (atomically) and return the whole.

    ``notes`` are merged key by key; a new result drops the old note of its key.
    """
    results = load_results(path)
    entries = dict(entries)
    notes = {k: v for k, v in results.get(NOTES_KEY, {}).items() if k not in entries}
    notes.update(entries.pop(NOTES_KEY, {}))
    results.update(entries)
    if notes:
        results[NOTES_KEY] = notes
    else:
        results.pop(NOTES_KEY, None)
    write_json(path, results)
    return results


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def render_markdown(
    results: dict,
    stage_seconds: dict[str, float],
    stage_descriptions: dict[str, str],
    figures: Sequence[tuple[str, str]] = (),
) -> str:
    """The results as Markdown: summary table, per-class IoU table, stage times, ``(caption, path)`` figures."""
    keys = [k for k in RESULT_KEYS if k in results]
    lines = ["# NSROM pipeline results", "", "| output | mIoU (%) | ignored (%) |", "|---|---:|---:|"]
    for key in keys:
        entry = results[key]
        extra = f" (thr {entry['best_threshold']:.2f})" if "best_threshold" in entry else ""
        lines.append(f"| {RESULT_KEYS[key]}{extra} | {_pct(entry['miou'])} | {_pct(entry.get('ignored_fraction'))} |")
    notes = results.get(NOTES_KEY, {})
    if notes:
        lines += ["", "Notes:", ""] + [f"- {RESULT_KEYS.get(k, k)}: {text}" for k, text in notes.items()]
    if keys:
        classes = list(results[keys[0]]["class_iou"])
        lines += ["", "Per-class IoU (%):", "", "| class | " + " | ".join(keys) + " |",
                  "|---|" + "---:|" * len(keys)]
        for name in classes:
            row = [_pct(results[k]["class_iou"].get(name)) for k in keys]
            lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += ["", "| stage | what | time (s) |", "|---|---|---:|"]
    for stage, seconds in stage_seconds.items():
        lines.append(f"| {stage} | {stage_descriptions.get(stage, '')} | {seconds:.1f} |")
    lines.append(f"| total | | {sum(stage_seconds.values()):.1f} |")
    if figures:
        lines += ["", "Figures:", ""] + [f"- [{caption}]({path})" for caption, path in figures]
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, text: str) -> None:
    atomic_write_text(path, text)


__all__ = [
    "NOTES_KEY", "RESULT_KEYS", "load_results", "update_results", "render_markdown", "write_markdown", "write_json",
]
