"""``W/results.json`` and ``W/results.md``: the scores of every stage, and stage times.

results.json keys (each an object with at least ``miou`` in [0, 1] and
``class_iou`` by class name): ``cam``, ``accumulated`` (stage 1's
accumulated maps, the IAM's targets), ``oacam``, ``pseudo_label`` (and
``ignored_fraction``), ``seg_round1``, ``seg_round1_crf``, ``masked_label``
(and ``ignored_fraction``), ``seg_round2``, ``seg_round2_crf``; plus
``stage_seconds``. CAMs, OA-CAMs and labels are scored on train_aug, the
segmentation rounds on val.

The evidence for the method's claims, in their own sections of results.md:
``pseudo_label_no_pom`` (stage 3 without potential object mining, the
ablation), round 1 against round 2 (from the keys above) and, for datasets
that record their objects (nsrom/objects.py), ``missed_objects``: for each
stage, the shares of the pixels of the objects the saliency map misses that
are labelled with their class, ignored, background or another class.
``pom`` is false when stage 3 itself ran without POM (``--pseudo-label-arg=--no-pom``;
then there is no ablation). ``machine`` says where the run was timed (CPU cores, torch threads).
``stage1_recognition`` lists the recognition check of each stage-1 attempt
(classification/recognition.py; more than one when a check named a class not learnt).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Sequence

from classification.recognition import lowest_class_ap
from nsrom.dataset_settings import DatasetSettings
from nsrom.error_kinds import NEAR_PIXELS
from nsrom.files import atomic_write_text, read_json, write_json

ACCUMULATED_KEY = "accumulated"
"""results.json key of stage 1's accumulated maps, scored like the CAMs (runner/stages.py, cam_export)."""

RESULT_KEYS = {
    "cam": "CAM (stage 1b, train_aug, best bg threshold)",
    ACCUMULATED_KEY: "accumulated maps (stage 1 OAA, the IAM's targets, train_aug, best bg threshold)",
    "oacam": "OA-CAM (stage 2, train_aug, best bg threshold)",
    "pseudo_label": "pseudo labels (stage 3, train_aug, non-ignored pixels)",
    "seg_round1": "DeepLab-v2 round 1 (val)",
    "seg_round1_crf": "DeepLab-v2 round 1 + CRF (val)",
    "masked_label": "masked labels (stage 6, train_aug, non-ignored pixels)",
    "seg_round2": "DeepLab-v2 round 2 (val)",
    "seg_round2_crf": "DeepLab-v2 round 2 + CRF (val): the reported number",
}


MISSED_OBJECT_ROWS = {
    "pseudo_label_no_pom": "pseudo labels without POM (ablation)",
    "pseudo_label": "pseudo labels (stage 3, with POM)",
    "masked_label": "masked labels (stage 6, NSRM)",
    "seg_round1": "round-1 predictions + CRF (stage 5)",
    "seg_round2": "round-2 predictions + CRF",
}
"""Rows of the missed-objects table: results.json ``missed_objects`` keys and what they are."""

ERROR_ROWS = {
    "cam": "CAM (stage 1b, at its best threshold)",
    "oacam": "OA-CAM (stage 2, at its best threshold)",
    "pseudo_label_no_pom": "pseudo labels without POM (ablation)",
    "pseudo_label": "pseudo labels (stage 3, with POM)",
    "masked_label": "masked labels (stage 6, NSRM)",
}
"""Rows of the table of where the training-set outputs go wrong (their ``error_kinds``, nsrom/error_kinds.py)."""

POM_KEY = "pom"
"""results.json: whether stage 3 ran with POM (absent in runs made before this key: with POM)."""

MISSED_OBJECTS_KEY = "missed_objects"
"""results.json key of the shares of the pixels of the objects the saliency map misses."""

RECOGNITION_KEY = "stage1_recognition"
"""results.json key of the recognition checks of the stage-1 attempts, in order (runner/stages.py, cam_train)."""
KEPT = "kept"
"""In an entry of ``results.json[RECOGNITION_KEY]``: true for the stage-1 attempt the run went on with."""

NOTES_KEY = "notes"
"""results.json key of the notes: result key -> why it is missing or partial."""
SETTINGS_KEY = "settings"
"""results.json key of the run's settings (``runner.run.run_settings``: data, preset, every extra flag)."""
SPLITS_KEY = "splits"
"""results.json key of the run's split names, ``{"train": ..., "val": ...}`` (the dataset's, else VOC's)."""
NOT_DONE_KEY = "stages_not_done"
"""results.json key of the stages not done yet (a run stopped by ``--to`` or a kill); absent once all are."""
OTHER_SETTINGS_KEY = "stages_with_other_settings"
"""results.json key of the done stages made under other values of a setting they read (a later ``--from``
changed it): stage -> ``key: its value -> the run's``."""


def in_splits(text: str, results: dict) -> str:
    """A row name or heading written for VOC's splits (``train_aug``, ``(val)``) with the run's split names."""
    splits = results.get(SPLITS_KEY) or {}
    text = text.replace("train_aug", splits.get("train", "train_aug"))
    return text.replace("(val)", f"({splits.get('val', 'val')})")


WEAK_CLASS_SHARE = 0.25
"""A foreground class is reported as far below the others when its IoU is under this share
of the median IoU of the foreground classes present in the ground truth."""

LOST_CLASS_DOC = 'docs/demo_tuning.md, "Stage 1 loses a class on outside data F5"'
"""Where the project describes a class lost by stage 1 (its CAM as high on the background as on the objects)."""


def weak_classes(entry: dict, share: float = WEAK_CLASS_SHARE) -> tuple[list[tuple[str, float]], float | None]:
    """The foreground classes of a results entry whose IoU is under ``share`` x the median
    IoU of the foreground classes present, as ``(name, iou)``, and that median.

    A class counts as present when it has a class accuracy (``class_accuracy``, or
    ``scores["Class Accuracy"]``): a class absent from the ground truth but predicted
    has IoU 0 and must not be reported. Entries without accuracies (runs made before
    they were recorded) and with fewer than two present classes report nothing.
    Class 0 is the background.
    """
    ious = entry.get("class_iou") or {}
    accuracy = entry.get("class_accuracy") or (entry.get("scores") or {}).get("Class Accuracy")
    if not accuracy:
        return [], None
    present = [name for name in list(ious)[1:] if accuracy.get(name) is not None and ious[name] is not None]
    if len(present) < 2:
        return [], None
    median = statistics.median(ious[name] for name in present)
    return [(name, ious[name]) for name in present if ious[name] < share * median], median


def weak_class_line(key: str, entry: dict) -> str | None:
    """One line naming the classes of :func:`weak_classes` of result ``key``; None if there are none."""
    weak, median = weak_classes(entry)
    if not weak:
        return None
    named = ", ".join(f"`{name}` {_pct(iou)}" for name, iou in weak)
    return f"{RESULT_KEYS.get(key, key)}: {named} (median of the classes present {_pct(median)})"


def load_results(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


def _without_pom(text: str, results: dict) -> str:
    """A row name of stage 3 for a run whose stage 3 was without POM (``pom: false``)."""
    if results.get(POM_KEY) is not False:
        return text
    return text.replace("with POM", "without POM: --no-pom") if "with POM" in text else \
        text.replace("stage 3,", "stage 3 without POM: --no-pom,")


def update_results(path: Path, entries: dict) -> dict:
    """Merge ``entries`` into results.json (atomically) and return the whole.

    ``notes`` are merged key by key; a new result drops the old note of its key.
    An entry of None removes its key (a result this run no longer makes).
    """
    results = load_results(path)
    entries = dict(entries)
    dropped = [k for k, v in entries.items() if v is None]
    for key in dropped:
        entries.pop(key)
        results.pop(key, None)
    notes = {k: v for k, v in results.get(NOTES_KEY, {}).items() if k not in entries and k not in dropped}
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
        name = in_splits(_without_pom(RESULT_KEYS[key], results), results)
        lines.append(f"| {name}{extra} | {_pct(entry['miou'])} | {_pct(entry.get('ignored_fraction'))} |")
    notes = results.get(NOTES_KEY, {})
    if notes:
        lines += ["", "Notes:", ""] + [f"- {in_splits(RESULT_KEYS.get(k) or ERROR_ROWS.get(k, k), results)}: {text}"
                                       for k, text in notes.items()]
    weak = {key: line for key in keys if (line := weak_class_line(key, results[key]))}
    if weak:
        lines += ["", f"Classes far below the others (IoU under {WEAK_CLASS_SHARE:.0%} of the median of the "
                      "foreground classes present):", ""] + [f"- {line}" for line in weak.values()]
        if "cam" in weak:
            lines += ["", "A class that stage 1 did not learn has a CAM as high on the background as on the "
                          "objects; the IAM may learn it again from the accumulated maps (compare the OA-CAM "
                          f"column below). See {LOST_CLASS_DOC}."]
    lines += recognition_lines(results.get(RECOGNITION_KEY) or [])
    lines += _evidence(results)
    lines += error_lines(results)
    if keys:
        classes = list(results[keys[0]]["class_iou"])
        lines += ["", "Per-class IoU (%):", "", "| class | " + " | ".join(keys) + " |",
                  "|---|" + "---:|" * len(keys)]
        for name in classes:
            row = [_pct(results[k]["class_iou"].get(name)) for k in keys]
            lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += ["", "| stage | what | time (s) |", "|---|---|---:|"]
    for stage, seconds in stage_seconds.items():
        lines.append(f"| {stage} | {in_splits(stage_descriptions.get(stage, ''), results)} | {seconds:.1f} |")
    lines.append(f"| total | | {sum(stage_seconds.values()):.1f} |")
    if "machine" in results:
        machine = results["machine"]
        lines += ["", f"Timed on {machine['cpu_cores']} CPU cores ({machine['torch_threads']} torch threads), "
                      f"device {machine['device']}."]
    if SETTINGS_KEY in results:
        lines += ["", settings_line(results[SETTINGS_KEY])]
    lines += unfinished_lines(results)
    if figures:
        lines += ["", "Figures:", ""] + [f"- [{caption}]({path})" for caption, path in figures]
    return "\n".join(lines) + "\n"


def unfinished_lines(results: dict) -> list[str]:
    """Lines of results.md for a run that is not whole: the stages not done yet (their scores are absent),
    and the stages made under other settings than the run's (a later ``--from`` changed a setting)."""
    lines = []
    if results.get(NOT_DONE_KEY):
        lines += ["", f"Not done yet (no scores): {', '.join(results[NOT_DONE_KEY])}."]
    other = results.get(OTHER_SETTINGS_KEY) or {}
    if other:
        lines += ["", "Made under other settings than those above (their value -> the run's):", ""]
        lines += [f"- {stage}: {'; '.join(changes)}" for stage, changes in other.items()]
    return lines


def setting_differences(before: dict, now: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for each setting that differs; in a dict-valued setting (the dataset's),
    each of its keys that differs (``dataset.saliency_dir: 'saliency' -> 'sal2'``)."""
    lines = []
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key), now.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            lines += setting_differences(old, new, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return lines


EXTRA_SETTINGS = ("cls_arg", "cam_arg", "pseudo_label_arg", "masked_label_arg", "seg_set", "seg_config", "layout",
                  "seed", "stage1_attempts")
"""The settings of a run beyond its preset and data (pipeline.py's pass-through and override flags)."""


def settings_line(settings: dict) -> str:
    """One sentence of results.md: the preset, the data and every setting given beyond the preset (the
    dataset's settings that differ from the defaults included), so that two results tables can be told
    apart."""
    given = [f"{key.replace('_', '-')} {settings[key]}" for key in EXTRA_SETTINGS if settings.get(key) not in
             (None, [], {})]
    defaults = DatasetSettings().values()
    dataset = {k: v for k, v in (settings.get("dataset") or {}).items() if v != defaults.get(k)}
    if dataset:
        given.append("dataset " + ", ".join(f"{k}: {v}" for k, v in dataset.items()))
    return (f"Preset `{settings.get('preset')}` on {settings.get('data_root')}; beyond the preset: "
            + ("; ".join(given) if given else "nothing") + ".")


def kept_attempt(attempts: Sequence[dict]) -> int:
    """Index of the attempt marked kept; the last one in results written before attempts were kept."""
    return next((i for i, a in enumerate(attempts) if a.get(KEPT)), len(attempts) - 1)


def recognition_lines(attempts: Sequence[dict]) -> list[str]:
    """results.md's table of the stage-1 attempts: seed, lowest class AP, classes under the line, the kept one."""
    if not attempts:
        return []
    kept = kept_attempt(attempts)
    lines = ["", f"Stage 1's recognition check: average precision of the classifier on its training images "
                 f"(image labels only); a class under {attempts[-1]['line']:.2f} is not learnt, and the "
                 "next attempt trains stage 1 again with the next seed (the preset allows "
                 "several attempts or one). The run goes on with the first attempt that learns every class, "
                 "or else with the one whose lowest class AP is highest.", "",
             "| attempt | --seed | lowest class AP | not learnt | kept |", "|---:|---:|---|---|---|"]
    for number, report in enumerate(attempts, 1):
        lowest = lowest_class_ap(report)
        low = f"{lowest[1]:.3f} (`{lowest[0]}`)" if lowest else "-"
        missing = ", ".join(f"`{name}`" for name in report["unlearnt"]) or "none"
        seed = "-" if report.get("seed") is None else report["seed"]
        lines.append(f"| {number} | {seed} | {low} | {missing} | {'yes' if number - 1 == kept else ''} |")
    return lines


def _signed(value: float) -> str:
    return f"{100 * value:+.1f}"


def _evidence(results: dict) -> list[str]:
    """The sections on POM, round 1 against round 2 and the missed objects (those results present)."""
    lines: list[str] = []
    if "pseudo_label_no_pom" in results and "pseudo_label" in results:
        lines += ["", in_splits("Potential object mining (stage 3, train_aug):", results), "",
                  "| pseudo labels | mIoU over non-ignored (%) | ignored (%) |", "|---|---:|---:|"]
        for key, name in (("pseudo_label_no_pom", "without POM"), ("pseudo_label", "with POM (the method)")):
            entry = results[key]
            lines.append(f"| {name} | {_pct(entry['miou'])} | {_pct(entry.get('ignored_fraction'))} |")
    rows = [(name, results.get(f"seg_round1{suffix}"), results.get(f"seg_round2{suffix}"))
            for name, suffix in (("DeepLab-v2", ""), ("DeepLab-v2 + CRF", "_crf"))]
    rows = [(name, a, b) for name, a, b in rows if a is not None and b is not None]
    if rows:
        val = (results.get(SPLITS_KEY) or {}).get("val", "val")
        lines += ["", f"Round 1 (pseudo labels) against round 2 (masked labels), {val} mIoU (%):", "",
                  "| model | round 1 | round 2 | round 2 - round 1 |", "|---|---:|---:|---:|"]
        for name, a, b in rows:
            lines.append(f"| {name} | {_pct(a['miou'])} | {_pct(b['miou'])} | {_signed(b['miou'] - a['miou'])} |")
    missed = results.get(MISSED_OBJECTS_KEY)
    if missed:
        first = next(iter(missed.values()))
        lines += ["", in_splits(f"Objects the saliency map misses ({first['objects']} objects, {first['pixels']} "
                                f"pixels of train_aug): where their pixels end up (%):", results), "",
                  "| stage | own class | ignored | background | other class |", "|---|---:|---:|---:|---:|"]
        for key, name in MISSED_OBJECT_ROWS.items():
            name = _without_pom(name, results)
            if key in missed:
                e = missed[key]
                lines.append(f"| {name} | {_pct(e['right_class'])} | {_pct(e['ignored'])} | "
                             f"{_pct(e['background'])} | {_pct(e['other_class'])} |")
    return lines


def error_lines(results: dict) -> list[str]:
    """results.md's table of where the errors of the CAMs, OA-CAMs and labels lie (those results that have them)."""
    rows = [(key, name) for key, name in ERROR_ROWS.items() if "error_kinds" in results.get(key, {})]
    if not rows:
        return []
    lines = ["", in_splits(f"Where the training-set outputs go wrong, in % of the objects' pixels of train_aug "
                           f"(background near: within {NEAR_PIXELS} px of an object; nsrom/error_kinds.py):", results), "",
             "| output | missed (background) | other class | ignored | background near, labelled | "
             "background far, labelled |", "|---|---:|---:|---:|---:|---:|"]
    for key, name in rows:
        e = results[key]["error_kinds"]
        lines.append(f"| {_without_pom(name, results)} | {_pct(e['missed'])} | {_pct(e['other_class'])} | "
                     f"{_pct(e.get('ignored'))} | {_pct(e['background_near'])} | {_pct(e['background_far'])} |")
    return lines


def write_markdown(path: Path, text: str) -> None:
    atomic_write_text(path, text)


__all__ = [
    "ACCUMULATED_KEY", "ERROR_ROWS", "KEPT", "MISSED_OBJECTS_KEY", "NOTES_KEY", "POM_KEY", "RECOGNITION_KEY",
    "RESULT_KEYS", "SPLITS_KEY",
    "in_splits", "kept_attempt",
    "error_lines", "recognition_lines", "load_results", "update_results", "render_markdown",
    "weak_class_line", "weak_classes", "write_markdown", "write_json",
]
