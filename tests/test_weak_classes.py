"""Classes far below the others in a run's scores (a class a stage did not learn): runner/results.py."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from runner.results import LOST_CLASS_DOC, render_markdown, weak_class_line, weak_classes
from runner.run import _warn_weak_classes


def entry(ious: dict, accuracies: dict | None, in_scores: bool = False) -> dict:
    out = {"miou": 0.5, "class_iou": ious}
    if accuracies is not None:
        if in_scores:  # CAMs and labels keep it in scores (nsrom.metrics.scores), the rounds beside class_iou
            out["scores"] = {"Class Accuracy": accuracies}
        else:
            out["class_accuracy"] = accuracies
    return out


LOST = entry({"background": 0.9, "red": 0.6, "green": 0.1, "blue": 0.5, "cyan": 0.0},
             {"background": 0.95, "red": 0.7, "green": 0.3, "blue": 0.6, "cyan": None}, in_scores=True)
"""`green` at 0.1 against a median of 0.5 (red, green, blue); `cyan` absent from the ground truth but predicted."""


def test_a_class_under_a_quarter_of_the_median_is_named_with_the_median():
    weak, median = weak_classes(LOST)
    assert median == pytest.approx(0.5)
    assert weak == [("green", 0.1)]
    assert weak_class_line("cam", LOST) == (
        "CAM (stage 1b, train_aug, best bg threshold): `green` 10.0 (median of the classes present 50.0)")


def test_absent_classes_and_the_background_are_never_named():
    # cyan (IoU 0, absent) and a low background stay out; the median is over present foreground classes only.
    low_background = entry({"background": 0.01, "a": 0.6, "b": 0.7}, {"background": 0.02, "a": 0.8, "b": 0.9})
    assert weak_classes(low_background) == ([], pytest.approx(0.65))
    assert "cyan" not in dict(weak_classes(LOST)[0])


def test_the_median_of_an_even_count_and_the_boundary():
    ious = {"background": 0.9, "a": 0.2, "b": 0.4, "c": 0.8, "d": 0.05}
    weak, median = weak_classes(entry(ious, dict.fromkeys(ious, 0.5)))
    assert median == pytest.approx(0.3)  # (0.2 + 0.4) / 2
    assert weak == [("d", 0.05)]  # under 0.25 x 0.3 = 0.075
    at_the_line = {"background": 0.9, "a": 0.4, "b": 0.4, "c": 0.1}  # median 0.4: c is exactly a quarter of it
    assert 0.25 * 0.4 == 0.1
    assert weak_classes(entry(at_the_line, dict.fromkeys(at_the_line, 0.5)))[0] == []
    assert weak_classes(entry(at_the_line, dict.fromkeys(at_the_line, 0.5)), share=0.5)[0] == [("c", 0.1)]


def test_nothing_is_named_without_accuracies_or_with_one_class():
    assert weak_classes(entry(LOST["class_iou"], None)) == ([], None)  # a run scored before accuracies were kept
    one = {"background": 0.9, "a": 0.05, "b": 0.0}
    assert weak_classes(entry(one, {"background": 1.0, "a": 0.1, "b": None})) == ([], None)
    assert weak_class_line("oacam", entry(one, None)) is None


def test_results_md_names_them_and_explains_a_class_stage_1_lost():
    learnt = entry({"background": 0.95, "red": 0.6, "green": 0.65, "blue": 0.6, "cyan": 0.0},
                   {"background": 0.97, "red": 0.7, "green": 0.7, "blue": 0.7, "cyan": None}, in_scores=True)
    md = render_markdown({"cam": LOST, "oacam": learnt}, {}, {})
    assert "Classes far below the others" in md
    assert "- CAM (stage 1b, train_aug, best bg threshold): `green` 10.0 (median of the classes present 50.0)" in md
    assert "OA-CAM (stage 2" not in md.split("Classes far below the others")[1].split("Per-class IoU")[0]
    assert "Stage 1 loses a class" in md
    md = render_markdown({"cam": learnt, "oacam": learnt}, {}, {})
    assert "Classes far below the others" not in md and "Stage 1 loses a class" not in md
    md = render_markdown({"cam": learnt, "seg_round1": LOST}, {}, {})  # a weak round: named, no stage-1 text
    assert "- DeepLab-v2 round 1 (val): `green` 10.0" in md and "Stage 1 loses a class" not in md


def test_the_pipeline_logs_them_when_a_stage_is_scored(caplog):
    with caplog.at_level(logging.WARNING, logger="runner.run"):
        _warn_weak_classes({"cam": LOST, "notes": {"cam": "x"}, "stage_seconds": {}})
    assert [r.getMessage() for r in caplog.records] == [
        "far below the other classes: CAM (stage 1b, train_aug, best bg threshold): `green` 10.0 "
        "(median of the classes present 50.0)"]


def test_the_section_results_md_points_to_exists():
    path, title = re.fullmatch(r'(\S+), "(.+)"', LOST_CLASS_DOC).groups()
    headings = [line for line in (Path(__file__).resolve().parents[1] / path).read_text().splitlines()
                if line.startswith("## ")]
    assert any(line.startswith(f"## {title}") for line in headings)
