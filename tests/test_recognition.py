"""Stage 1's recognition check (classification/recognition.py) and the pipeline's stage-1 attempts."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from classification import train
from classification.recognition import REPORT_NAME, read_report, recognition_report, unlearnt_text
from nsrom.files import read_json, write_json
from nsrom.metrics import average_precision
from runner import stages
from runner.context import RunContext
from runner.results import RECOGNITION_KEY, render_markdown
from runner.run import run_pipeline
from runner.stage1_attempts import ARCHIVE_DIR, attempt_dir, attempt_outputs, best_attempt, lowest_ap


# --- average precision ----------------------------------------------------------------


def test_average_precision_of_hand_ranked_items():
    # Ranked: pos, neg, pos -> precisions at the positives 1/1 and 2/3.
    assert average_precision([3, 2, 1], [1, 0, 1]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0.1, 0.9, 0.5], [0, 1, 1]) == 1.0
    # Positives last of four: 1/3 and 2/4.
    assert average_precision([4, 3, 2, 1], [0, 0, 1, 1]) == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_average_precision_counts_tied_items_as_one_step_and_no_positive_is_none():
    """Tied scores do not rank by list order: a classifier that scores every image alike gets the share
    of positives whatever the order of the images (ids that begin with the class name, say)."""
    assert average_precision([0.9, 0.9], [0, 1]) == average_precision([0.9, 0.9], [1, 0]) == 0.5
    assert average_precision([0.0] * 10, [1] * 5 + [0] * 5) == 0.5
    # a tie inside a ranking: 3 alone (a positive), then 2, 2 (one positive, one not), then 1 (a positive):
    # recall 1/3 at precision 1, then 1/3 at precision 2/3, then 1/3 at precision 3/4
    assert average_precision([3, 2, 2, 1], [1, 0, 1, 1]) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert average_precision([1.0, 2.0], [0, 0]) is None
    with pytest.raises(ValueError, match="3 scores for 2 labels"):
        average_precision([1, 2, 3], [0, 1])


# --- the report ------------------------------------------------------------------------


def test_report_names_the_classes_under_the_line_only():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    logits = np.array([[5.0, 0.0, 1.0],   # class a: both positives first -> AP 1
                       [4.0, 2.0, 1.0],   # class b: positives ranked 2nd and 4th -> (1/2 + 2/4) / 2 = 0.5
                       [0.0, -2.0, 1.0],  # class c: no image has it -> None, never unlearnt
                       [0.0, 3.0, 1.0]])
    report = recognition_report(logits, labels, ["a", "b", "c"], line=0.9, seed=3)
    assert report["average_precision"] == {"a": 1.0, "b": pytest.approx(0.5), "c": None}
    assert report["unlearnt"] == ["b"] and report["seed"] == 3 and report["images"] == 4
    assert unlearnt_text(report) == "`b` (AP 0.500)"
    assert recognition_report(logits, labels, ["a", "b", "c"], line=0.5)["unlearnt"] == []  # exactly at the line
    with pytest.raises(ValueError):
        recognition_report(logits, labels, ["a", "b"])


def test_results_md_lists_every_attempt():
    first = {"line": 0.9, "seed": 0, "average_precision": {"green": 0.77, "red": 0.99}, "unlearnt": ["green"]}
    second = {"line": 0.9, "seed": 1, "average_precision": {"green": 0.996, "red": 0.99}, "unlearnt": []}
    md = render_markdown({RECOGNITION_KEY: [first, second]}, {}, {})
    assert "| 1 | 0 | 0.770 (`green`) | `green` |  |" in md
    assert "| 2 | 1 | 0.990 (`red`) | none | yes |" in md  # results written before attempts were kept: the last
    second["unlearnt"] = ["green"]
    md = render_markdown({RECOGNITION_KEY: [{**first, "kept": True}, second]}, {}, {})
    assert "| 1 | 0 | 0.770 (`green`) | `green` | yes |" in md and "| 2 | 1 | 0.990 (`red`) | `green` |  |" in md
    assert "Stage 1's recognition check" not in render_markdown({}, {}, {})


# --- stage 1 writes the report -------------------------------------------------------------


def _train_args(layout, runs_dir, *extra):
    return train.build_parser().parse_args([
        "--data-root", str(layout.root), "--runs-dir", str(runs_dir), "--input-size", "32", "--width-div", "16",
        "--epochs", "1", "--batch-size", "4", "--num-workers", "0", "--no-pretrained", "--no-check-data",
        "--seed", "5", *extra])


def test_training_writes_the_report_and_a_finished_run_gets_one(synthetic_root, tmp_path, single_thread):
    train.run(_train_args(synthetic_root, tmp_path))
    path = tmp_path / "exp1" / REPORT_NAME
    report = read_report(path)
    names = synthetic_root.class_names()[1:]
    assert list(report["average_precision"]) == names and report["seed"] == 5
    assert report["images"] == len(synthetic_root.ids("train_aug"))
    assert report["unlearnt"] == [n for n in names if report["average_precision"][n] < 0.9]
    path.unlink()  # a run trained before the check existed: the skipped run computes it from the checkpoint
    train.run(_train_args(synthetic_root, tmp_path))
    assert read_report(path)["average_precision"] == pytest.approx(report["average_precision"])


# --- the pipeline's attempts, with a scripted trainer -----------------------------------------


class ScriptedTrainer:
    """Stands in for train.run: records each call's seed and start mode and writes the scripted report.

    Each script entry is the class's AP (True: 0.5, unlearnt; False: 1.0); the call
    also writes ``model/seed.txt`` so a test can tell whose outputs are in the run folder.
    """

    def __init__(self, run_root, unlearnt_per_call):
        self.run_root = run_root
        self.script = list(unlearnt_per_call)
        self.calls = []
        self.found = []  # the run folder's entries when each call started

    def __call__(self, args):
        self.calls.append((args.seed, "overwrite" if args.overwrite else "resume"))
        self.found.append(sorted(p.name for p in self.run_root.iterdir()) if self.run_root.is_dir() else [])
        entry = self.script.pop(0)
        ap = entry if isinstance(entry, float) else (0.5 if entry else 1.0)
        (self.run_root / "model").mkdir(parents=True, exist_ok=True)
        (self.run_root / "model" / "seed.txt").write_text(str(args.seed))
        write_json(self.run_root / REPORT_NAME, {"line": 0.9, "seed": args.seed, "images": 8,
                                                 "average_precision": {"a": ap},
                                                 "unlearnt": ["a"] if ap < 0.9 else []})


@pytest.fixture()
def scripted(monkeypatch, synthetic_root, tmp_path, tiny_preset):
    def make(attempts, unlearnt_per_call, work="work"):
        ctx = RunContext(synthetic_root.root, tmp_path / work,
                         dataclasses.replace(tiny_preset, stage1_attempts=attempts), device="cpu")
        fake = ScriptedTrainer(ctx.runs_dir / "exp1", unlearnt_per_call)
        monkeypatch.setattr(train, "run", fake)
        return ctx, fake
    return make


def test_unlearnt_class_trains_stage_1_again_with_the_next_seed(scripted, caplog):
    ctx, fake = scripted(3, [True, True, False])
    with caplog.at_level(logging.WARNING):
        entries = stages.cam_train(ctx)
    assert fake.calls == [(0, "resume"), (1, "overwrite"), (2, "overwrite")]
    assert [a["seed"] for a in entries[RECOGNITION_KEY]] == [0, 1, 2]
    assert [a["unlearnt"] for a in entries[RECOGNITION_KEY]] == [["a"], ["a"], []]
    assert "training it again with --seed 1 (attempt 2 of at most 3)" in caplog.text
    assert read_json(ctx.runs_dir / "exp1" / stages.ATTEMPTS_FILE)["running"] is None


def test_attempts_stop_at_the_presets_count(scripted, caplog):
    ctx, fake = scripted(2, [True, True])
    with caplog.at_level(logging.WARNING):
        entries = stages.cam_train(ctx)
    assert len(fake.calls) == 2 and len(entries[RECOGNITION_KEY]) == 2
    assert ("did not learn every class in 2 attempts; the run goes on with attempt 1 (--seed 0, lowest class AP "
            "0.500: `a` (AP 0.500))") in caplog.text  # a tie: the earlier attempt
    # Killed after the last check, before the stage was marked done: nothing is trained again.
    ctx, fake = scripted(2, [])
    assert len(stages.cam_train(ctx)[RECOGNITION_KEY]) == 2 and fake.calls == []
    ctx, fake = scripted(1, [True], work="paper")  # the paper's preset: trained once whatever the check says
    assert len(stages.cam_train(ctx)[RECOGNITION_KEY]) == 1 and fake.calls == [(0, "resume")]


def test_a_killed_attempt_resumes_with_its_own_seed(scripted):
    ctx, fake = scripted(3, [False])
    first = {"line": 0.9, "seed": 0, "images": 8, "average_precision": {"a": 0.5}, "unlearnt": ["a"]}
    write_json(ctx.runs_dir / "exp1" / stages.ATTEMPTS_FILE, {"attempts": [first], "running": 1})
    entries = stages.cam_train(ctx)
    assert fake.calls == [(1, "resume")]
    assert entries[RECOGNITION_KEY][0] == first and entries[RECOGNITION_KEY][1]["seed"] == 1


def test_a_finished_run_of_another_seed_is_trained_over(scripted):
    """A finished stage-1 run of another --seed in the folder (an earlier attempt's, kept by a kill) would be
    refused by train.py as a run of other settings; the attempt trains over it with its own seed."""
    ctx, fake = scripted(1, [False])
    run_root = ctx.runs_dir / "exp1"
    (run_root / "model").mkdir(parents=True)
    (run_root / "model" / "checkpoint_final.pth").write_bytes(b"")
    write_json(run_root / "train_args.json", {"seed": 7})
    write_json(run_root / REPORT_NAME, {"line": 0.9, "seed": 7, "average_precision": {}, "unlearnt": []})
    entries = stages.cam_train(ctx)
    assert fake.calls == [(0, "overwrite")] and entries[RECOGNITION_KEY][0]["seed"] == 0
    write_json(run_root / "train_args.json", {"seed": 0})  # its own seed's finished run: kept (train.py skips it)
    ctx, fake = scripted(1, [False], work="work")
    (ctx.runs_dir / "exp1" / stages.ATTEMPTS_FILE).unlink()
    stages.cam_train(ctx)
    assert fake.calls == [(0, "resume")]


def test_each_attempt_starts_in_empty_folders_and_the_others_are_set_aside(scripted):
    ctx, fake = scripted(3, [True, True, False])
    stages.cam_train(ctx)
    run_root = ctx.runs_dir / "exp1"
    outputs = {path.name for path in attempt_outputs(run_root)}
    assert [[n for n in found if n in outputs] for found in fake.found] == [[], [], []]
    assert (run_root / "model" / "seed.txt").read_text() == "2"  # the attempt that learnt every class
    for seed in (0, 1):  # attempt 1 trained with seed 0, attempt 2 with seed 1
        assert (attempt_dir(run_root, seed + 1) / "model" / "seed.txt").read_text() == str(seed)
        assert read_report(attempt_dir(run_root, seed + 1) / REPORT_NAME)["seed"] == seed


def test_the_best_attempt_is_kept_when_none_learns_every_class(scripted, caplog):
    ctx, fake = scripted(3, [0.6, 0.8, 0.7])
    with caplog.at_level(logging.WARNING):
        entries = stages.cam_train(ctx)[RECOGNITION_KEY]
    run_root = ctx.runs_dir / "exp1"
    assert [a.get("kept", False) for a in entries] == [False, True, False]
    assert (run_root / "model" / "seed.txt").read_text() == "1" and read_report(run_root / REPORT_NAME)["seed"] == 1
    assert not attempt_dir(run_root, 2).exists()
    assert [(attempt_dir(run_root, n) / "model" / "seed.txt").read_text() for n in (1, 3)] == ["0", "2"]
    assert "the run goes on with attempt 2 (--seed 1, lowest class AP 0.800" in caplog.text
    assert read_json(run_root / stages.ATTEMPTS_FILE)["attempts"] == entries


def test_a_run_killed_while_bringing_an_attempt_back_finishes_the_move(scripted):
    ctx, fake = scripted(2, [0.8, 0.6])
    stages.cam_train(ctx)
    run_root = ctx.runs_dir / "exp1"
    # Undo half of the last move: the kept attempt's report is back in its folder, its model is not.
    attempt_dir(run_root, 1).mkdir(parents=True)
    (run_root / REPORT_NAME).rename(attempt_dir(run_root, 1) / REPORT_NAME)
    ctx, fake = scripted(2, [])
    entries = stages.cam_train(ctx)[RECOGNITION_KEY]
    assert fake.calls == [] and entries[0]["kept"]
    assert read_report(run_root / REPORT_NAME)["seed"] == 0 and (run_root / "model" / "seed.txt").read_text() == "0"
    assert not attempt_dir(run_root, 1).exists() and (attempt_dir(run_root, 2) / "model" / "seed.txt").is_file()


def test_starting_stage_1_over_removes_the_attempts_set_aside(scripted):
    ctx, fake = scripted(2, [0.8, 0.6])
    stages.cam_train(ctx)
    ctx, fake = scripted(2, [False])
    ctx.overwrite = True  # pipeline.py --from cam_train
    entries = stages.cam_train(ctx)[RECOGNITION_KEY]
    assert fake.calls == [(0, "overwrite")] and len(entries) == 1 and entries[0]["kept"]
    assert not (ctx.runs_dir / "exp1" / ARCHIVE_DIR).exists()


def test_best_attempt_rule():
    def report(*aps, unlearnt=True):
        return {"average_precision": dict(zip("abc", aps)), "unlearnt": ["a"] if unlearnt else []}

    assert lowest_ap(report(0.9, None, 0.7)) == 0.7 and lowest_ap(report(None)) == 1.0
    assert best_attempt([report(0.5, 0.99), report(0.6, 0.7), report(0.6, 0.65)]) == 1  # ties: the earlier
    assert best_attempt([report(0.5), report(0.95, unlearnt=False)]) == 1  # an attempt that learnt every class


# --- the real trainer, one retry -------------------------------------------------------------------


def test_pipeline_retrains_stage_1_for_real(synthetic_root, tmp_path, tiny_preset):
    # A line of 1.0: every class of the 2-epoch classifier is under it, so each check asks for another attempt.
    preset = dataclasses.replace(tiny_preset, stage1_attempts=2)
    ctx = RunContext(synthetic_root.root, tmp_path, preset, device="cpu", cam_extra=["--recognition-line=1.0"])
    results = run_pipeline(ctx, to_stage="cam_train")
    attempts = results[RECOGNITION_KEY]
    assert [a["seed"] for a in attempts] == [0, 1] and all(a["unlearnt"] for a in attempts)
    run_root = ctx.runs_dir / "exp1"
    kept = best_attempt(attempts)
    assert [a.get("kept", False) for a in attempts] == [i == kept for i in range(2)]
    assert read_json(run_root / "train_args.json")["seed"] == kept
    assert read_report(run_root / REPORT_NAME)["seed"] == kept
    other = attempt_dir(run_root, 2 - kept)  # attempt k + 1 was trained with seed k
    assert (other / "model" / "checkpoint_final.pth").is_file()
    assert read_json(other / "train_args.json")["seed"] == 1 - kept
    assert (run_root / "model" / "checkpoint_final.pth").is_file() and (run_root / "accu_att").is_dir()
    assert (ctx.work_dir / "results.md").read_text().count("| 2 | 1 |") == 1


def test_the_flag_overrides_the_presets_attempts(scripted, synthetic_root, tmp_path, tiny_preset):
    from runner.cli import build_parser
    from runner.run import run_settings

    ctx, fake = scripted(3, [True])
    ctx.stage1_attempts = 1  # pipeline.py --stage1-attempts 1 on a preset that allows three
    assert len(stages.cam_train(ctx)[RECOGNITION_KEY]) == 1 and len(fake.calls) == 1
    assert run_settings(ctx)["stage1_attempts"] == 1
    plain = RunContext(synthetic_root.root, tmp_path / "plain", tiny_preset, device="cpu")
    assert "stage1_attempts" not in run_settings(plain)  # work dirs made before the flag keep matching
    args = build_parser().parse_args(["--data-root", "d", "--work-dir", "w", "--stage1-attempts", "2"])
    assert args.stage1_attempts == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--data-root", "d", "--work-dir", "w", "--stage1-attempts", "0"])
