"""benchmarks/demo_generators.py's seed studies: the rounds (or the IAM) rerun on a copy with another seed, and the tables."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import demo_generators as bench
from runner.presets import get_preset
from segmentation.libs.utils.config import load_config
from segmentation.libs.utils.paths import RunPaths


def results_json(r1: float, r2: float) -> dict:
    """A results.json with only what ``summary`` reads (fractions, as the pipeline writes them)."""
    keys = ("cam", "oacam", "pseudo_label", "masked_label")
    results = {k: {"miou": 0.5} for k in keys}
    results["pseudo_label"]["ignored_fraction"] = 0.1
    results["seg_round1_crf"] = {"miou": r1}
    results["seg_round2_crf"] = {"miou": r2}
    return results


def test_round_rows_give_each_seed_and_the_mean():
    per_seed = {0: {"r1crf": 90.0, "r2crf": 91.0}, 1: {"r1crf": 88.0, "r2crf": 92.0},
                2: {"r1crf": 89.0, "r2crf": 88.0}}
    rows = bench.round_rows("blob seed 0", per_seed)
    assert rows == [
        "| blob seed 0 | 0 | 90.0 | 91.0 | +1.0 |",
        "| blob seed 0 | 1 | 88.0 | 92.0 | +4.0 |",
        "| blob seed 0 | 2 | 89.0 | 88.0 | -1.0 |",
        "| blob seed 0 | mean of 3 | 89.0 | 90.3 | +1.3 |",
    ]


def test_rerun_rounds_works_on_a_copy_and_is_not_redone(tmp_path, monkeypatch):
    work = tmp_path / "run" / "work"
    (work / "pseudo_labels").mkdir(parents=True)
    (work / "pseudo_labels" / "a.png").write_bytes(b"label")
    (work / "results.json").write_text(json.dumps(results_json(0.80, 0.81)))
    calls = []

    def fake_run(data, copy, extra, log_name):
        calls.append((copy, extra, log_name))
        assert (copy / "pseudo_labels" / "a.png").read_bytes() == b"label"  # the same labels
        (copy / "results.json").write_text(json.dumps(results_json(0.70, 0.75)))
        return 1.0, 1.0

    monkeypatch.setattr(bench, "run_demo", fake_run)
    r = bench.rerun_rounds(tmp_path / "data", work, 3, redo=False)
    copy = tmp_path / "run" / "work_deeplab_seed3"
    assert calls == [(copy, ("--from", "seg1_train", "--seed", "3"), "pipeline_deeplab_seed3.out")]
    assert (round(r["r1crf"], 6), round(r["r2crf"], 6)) == (70.0, 75.0)
    assert json.loads((work / "results.json").read_text())["seg_round1_crf"]["miou"] == 0.80  # original untouched

    assert bench.rerun_rounds(tmp_path / "data", work, 3, redo=False)["r2crf"] == r["r2crf"]
    assert len(calls) == 1  # read, not run again
    bench.rerun_rounds(tmp_path / "data", work, 3, redo=True)
    assert len(calls) == 2


def test_full_supervision_trains_the_rounds_deeplab_on_the_ground_truth(synthetic_root, tmp_path):
    work = tmp_path / "run" / "work"
    ctx = bench.full_supervision_context(synthetic_root.root, work)
    sets = ctx.seg_sets(bench.FULL_SUPERVISION_ID, ctx.layout.mask_dir)
    values = dict(item.split("=", 1) for item in sets)  # the last of a key wins, as in load_config
    assert ctx.seg_config_path == get_preset("demo").seg_config
    assert values["DATASET.LABEL_DIR"] == str(synthetic_root.mask_dir)
    assert values["MODEL.INIT_MODEL"] == str(work.resolve() / "pretrained" / "deeplab_standin.pth")
    assert values["EXP.ID"] == "full_supervision"
    cfg = load_config(ctx.seg_config_path, sets)
    assert cfg.EXP.OUTPUT_DIR == str(tmp_path / "run" / "full_supervision")  # not the rounds' work/segmentation
    assert cfg.SOLVER.ITER_MAX == load_config(get_preset("demo").seg_config).SOLVER.ITER_MAX


def test_full_supervision_reads_existing_scores_and_runs_train_test_crf_otherwise(synthetic_root, tmp_path,
                                                                               monkeypatch):
    work = tmp_path / "run" / "work"
    work.mkdir(parents=True)
    ctx = bench.full_supervision_context(synthetic_root.root, work)
    paths = RunPaths.from_config(load_config(ctx.seg_config_path,
                                             ctx.seg_sets(bench.FULL_SUPERVISION_ID, ctx.layout.mask_dir)))
    calls = []

    def fake_run(cmd, cwd, check, stdout, stderr):
        assert cmd[1:3] == ["-m", "segmentation.main"]
        calls.append(cmd[3])
        if cmd[3] == "train":
            assert "--fully-supervised" in cmd
        if cmd[3] == "crf":
            for crf, miou in ((False, 0.8), (True, 0.85)):
                path = paths.score_path("val", crf)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"Mean IoU": miou}))

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    r = bench.full_supervision(synthetic_root.root, work, redo=False)
    assert calls == ["train", "test", "crf"]
    assert (round(r["full"], 6), round(r["full_crf"], 6)) == (80.0, 85.0)
    assert bench.full_supervision(synthetic_root.root, work, redo=False) == r
    assert len(calls) == 3  # read, not trained again
    bench.full_supervision(synthetic_root.root, work, redo=True)
    assert len(calls) == 6


def test_full_supervision_row_gives_each_rounds_distance():
    row = bench.full_supervision_row("blob seed 1", {"full": 87.8, "full_crf": 92.3, "r1crf": 88.9, "r2crf": 91.1})
    assert row == "| blob seed 1 | 87.8 | 92.3 | 88.9 | 91.1 | -3.4 | -1.2 |"


def test_iam_rows_give_each_seed_the_mean_and_the_count_below_the_cams():
    per_seed = {0: {"cam": 68.8, "oacam": 66.7}, 1: {"cam": 68.8, "oacam": 66.1}, 2: {"cam": 68.8, "oacam": 70.3}}
    assert bench.iam_rows("synthetic seed 1", per_seed) == [
        "| synthetic seed 1 | 0 | 68.8 | 66.7 | -2.1 |",
        "| synthetic seed 1 | 1 | 68.8 | 66.1 | -2.7 |",
        "| synthetic seed 1 | 2 | 68.8 | 70.3 | +1.5 |",
        "| synthetic seed 1 | mean of 3 (2 below CAM) | 68.8 | 67.7 | -1.1 |",
    ]


def test_rerun_iam_trains_stage_2_again_on_a_copy_without_the_segmentation_runs(tmp_path, monkeypatch):
    work = tmp_path / "run" / "work"
    accu = work / "classification" / "runs" / "exp1" / "accu_att"
    accu.mkdir(parents=True)
    (accu / "a_0.png").write_bytes(b"map")
    (work / "segmentation").mkdir()
    (work / "segmentation" / "big.pth").write_bytes(b"weights")
    results = results_json(0.80, 0.81)
    results["cam"]["miou"], results["oacam"]["miou"] = 0.688, 0.667
    (work / "results.json").write_text(json.dumps(results))
    calls = []

    def fake_run(data, copy, extra, log_name):
        calls.append((copy, extra, log_name))
        assert (copy / "classification" / "runs" / "exp1" / "accu_att" / "a_0.png").read_bytes() == b"map"
        assert not (copy / "segmentation").exists()  # not needed by stage 2, not copied
        changed = json.loads((copy / "results.json").read_text())
        changed["oacam"]["miou"] = 0.703
        (copy / "results.json").write_text(json.dumps(changed))
        return 1.0, 1.0

    monkeypatch.setattr(bench, "run_demo", fake_run)
    r = bench.rerun_iam(tmp_path / "data", work, 2, redo=False)
    copy = tmp_path / "run" / "work_iam_seed2"
    assert calls == [(copy, ("--from", "iam_train", "--to", "oacam_export", "--cls-arg=--seed=2"),
                      "pipeline_iam_seed2.out")]
    assert (round(r["cam"], 6), round(r["oacam"], 6)) == (68.8, 70.3)
    assert json.loads((work / "results.json").read_text())["oacam"]["miou"] == 0.667  # original untouched

    assert bench.rerun_iam(tmp_path / "data", work, 2, redo=False) == r
    assert len(calls) == 1  # read, not run again
    bench.rerun_iam(tmp_path / "data", work, 2, redo=True)
    assert len(calls) == 2


def test_the_table_reads_finished_runs_and_names_a_class_stage_1_lost(tmp_path, capsys):
    # A finished run (results.json, timing.json) is read, not redone; its CAM lost `green`.
    base = tmp_path / "synthetic_seed0"
    (base / "work").mkdir(parents=True)
    results = results_json(0.70, 0.75)
    results["cam"] = {"miou": 0.45, "class_iou": {"background": 0.8, "red": 0.6, "green": 0.05, "blue": 0.5},
                      "scores": {"Class Accuracy": {"background": 0.9, "red": 0.7, "green": 0.1, "blue": 0.6}}}
    # Stage 1 was trained twice: the first attempt's recognition check named `green`.
    results["stage1_recognition"] = [{"line": 0.9, "seed": 0, "average_precision": {"green": 0.77}, "unlearnt": ["green"]},
                                     {"line": 0.9, "seed": 1, "average_precision": {"green": 0.80}, "unlearnt": ["green"]}]
    (base / "work" / "results.json").write_text(json.dumps(results))
    (base / "timing.json").write_text(json.dumps({"wall": 200.0, "cpu": 390.0}))
    out = tmp_path / "rows.json"
    status = bench.main(["--out", str(tmp_path), "--generators", "synthetic", "--seeds", "0", "--json", str(out)])
    row = capsys.readouterr().out.splitlines()[-1]
    assert status == 1  # pseudo labels at 50.0 (results_json), under 65
    assert row.startswith("| synthetic seed 0 | 45.0 | - | 50.0 |")
    assert row.endswith("| 200 | 390 | pseudo >= 65 | green 5.0 | 2 (seed 0: green) |")
    run = json.loads(out.read_text())["runs"][0]
    assert run["cam_classes_far_below"] == {"green": 0.05}
    # Results written before attempts were kept: the last one is the kept one.
    assert run["stage1_attempts"] == [{"seed": 0, "unlearnt": ["green"], "kept": False},
                                      {"seed": 1, "unlearnt": ["green"], "kept": True}]
    assert bench.attempts_cell([{"seed": 0, "unlearnt": []}]) == "1" and bench.attempts_cell([]) == "-"
    best_first = [{"seed": 0, "unlearnt": ["green"], "kept": True}, {"seed": 1, "unlearnt": ["green", "red"]}]
    assert bench.attempts_cell(best_first) == "2 (seed 0: green; seed 1: green, red; kept seed 0)"
    learnt_last = [{"seed": 0, "unlearnt": ["green"]}, {"seed": 1, "unlearnt": [], "kept": True}]
    assert bench.attempts_cell(learnt_last) == "2 (seed 0: green)"


def test_a_dataset_made_elsewhere_is_run_by_name_and_shows_dashes_without_an_object_record(tmp_path, capsys):
    dataset = tmp_path / "mine"
    dataset.mkdir()
    out = tmp_path / "out"
    work = out / "data_theirs" / "work"
    work.mkdir(parents=True)
    (work / "results.json").write_text(json.dumps(results_json(0.80, 0.83)))  # no missed_objects: no record
    (out / "data_theirs" / "timing.json").write_text(json.dumps({"wall": 250.0, "cpu": 480.0}))
    rows = tmp_path / "rows.json"
    status = bench.main(["--out", str(out), "--data-root", f"theirs={dataset}", "--json", str(rows)])
    row = capsys.readouterr().out.splitlines()[-1]
    assert status == 1  # pseudo labels at 50.0, under 65
    assert row.startswith("| theirs | 50.0 | - | 50.0 | 50.0 | 10.0 | 80.0 | 50.0 | 83.0 | - | - | - | - | 250 | 480 |")
    assert "| pseudo >= 65 |" in row
    run = json.loads(rows.read_text())["runs"][0]
    assert run["name"] == "theirs" and run["data_root"] == str(dataset.resolve())
    assert run["targets_not_scored"] == []
    assert sorted(p.name for p in out.iterdir()) == ["data_theirs"]  # no generator ran


def test_a_target_whose_figure_the_run_did_not_produce_is_not_scored():
    results = results_json(0.70, 0.71)
    del results["cam"]  # e.g. no ground-truth masks for train_aug
    r = bench.summary(results)
    assert r["cam"] != r["cam"] and r["oacam"] == 50.0  # NaN
    missed, unscored = bench.check_targets(r)
    assert unscored == ["CAM >= 45", "OA-CAM >= CAM"]
    assert missed == ["pseudo >= 65", "R2+CRF >= R1+CRF+2"]
    assert bench.figure_cell(r["cam"]) == "-" and bench.figure_cell(12.345) == "12.3"


def test_data_root_names_a_folder_and_two_datasets_need_two_names(tmp_path):
    a, b = tmp_path / "x" / "data", tmp_path / "y" / "data"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    parse = bench.build_parser().parse_args
    runs = bench.planned_runs(parse(["--out", str(tmp_path / "o"), "--data-root", f"x={a}", str(b)]))
    assert [(r.name, r.base.name, r.data) for r in runs] == [("x", "data_x", a), ("data", "data_data", b)]
    both = bench.planned_runs(parse(["--out", "o", "--generators", "blob", "--seeds", "3", "--data-root", str(a)]))
    assert [r.name for r in both] == ["blob seed 3", "data"]
    for argv, message in (([str(a), str(b)], "two datasets are named data"),
                          ([str(tmp_path / "none")], "is not a folder"),
                          ([f"a b={a}"], "must be letters")):
        try:
            bench.planned_runs(parse(["--data-root", *argv]))
        except SystemExit as stop:
            assert message in str(stop)
        else:
            raise AssertionError(f"{argv} was accepted")


def test_a_run_that_fails_is_reported_and_the_next_one_still_runs(tmp_path, monkeypatch, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()

    def fake_run(data, work, extra=(), log_name="pipeline.out"):
        if data == first.resolve():
            work.parent.mkdir(parents=True)
            (work.parent / log_name).write_text("12:00 INFO runner.run: data check\nerror: 1 problem(s) in the data\n"
                                                "  image list not found: train_aug.txt\n")
            raise bench.subprocess.CalledProcessError(1, "pipeline.py")
        work.mkdir(parents=True)
        (work / "results.json").write_text(json.dumps(results_json(0.80, 0.83)))
        return 100.0, 190.0

    monkeypatch.setattr(bench, "run_demo", fake_run)
    status = bench.main(["--out", str(tmp_path / "out"), "--data-root", str(first), str(second),
                         "--json", str(tmp_path / "rows.json")])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert captured.err.splitlines() == ["  error: 1 problem(s) in the data", "    image list not found: train_aug.txt"]
    assert status == 1
    failed, ran = json.loads((tmp_path / "rows.json").read_text())["runs"]
    assert failed == {"data_root": str(first.resolve()), "name": "first",
                      "failed": str(tmp_path / "out" / "data_first" / "pipeline.out")}
    assert ran["name"] == "second" and ran["r1crf"] == 80.0
    assert lines[-2] == f"| first | pipeline.py failed: see {tmp_path / 'out' / 'data_first' / 'pipeline.out'} |"
    assert lines[-1].startswith("| second | 50.0 |")
    assert not (tmp_path / "out" / "data_first" / "timing.json").exists()  # run again next time


def test_the_reason_of_a_failed_run_is_its_last_error_or_its_last_lines(tmp_path):
    log = tmp_path / "pipeline.out"
    log.write_text("error: an old one\nINFO working\nerror: missing weights\n  put them in pretrained/\n\n")
    assert bench.failure_reason(log) == "  error: missing weights\n    put them in pretrained/"
    log.write_text("".join(f"line {i}\n" for i in range(10)))  # a traceback, say: no error line of ours
    assert bench.failure_reason(log).splitlines() == [f"  line {i}" for i in range(4, 10)]


def test_data_is_made_under_a_temporary_name_so_a_stopped_generator_is_made_again(tmp_path, monkeypatch, capsys):
    """A generator that stops leaves no dataset folder (the next run makes it again, not mistaking half a
    dataset for a made one), and its row says so instead of a traceback; the next generator still runs."""
    calls = []

    def fake_generator(cmd, cwd, check, stdout):
        out = Path(cmd[cmd.index("--out") + 1])
        calls.append(out)
        out.mkdir(parents=True)
        (out / "labels.txt").write_text("0 background\n1 a\n")  # what a generator writes first
        if len(calls) == 1:
            raise bench.subprocess.CalledProcessError(1, cmd)

    def fake_run(data, work, extra=(), log_name="pipeline.out"):
        work.mkdir(parents=True)
        (work / "results.json").write_text(json.dumps(results_json(0.80, 0.83)))
        return 100.0, 190.0

    monkeypatch.setattr(bench.subprocess, "run", fake_generator)
    monkeypatch.setattr(bench, "run_demo", fake_run)
    status = bench.main(["--out", str(tmp_path / "out"), "--generators", "synthetic", "--seeds", "0", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    seed0, seed1 = tmp_path / "out" / "synthetic_seed0" / "data", tmp_path / "out" / "synthetic_seed1" / "data"
    assert calls == [seed0.with_name("data.partial"), seed1.with_name("data.partial")]
    assert not seed0.exists() and seed1.is_dir() and not seed1.with_name("data.partial").exists()
    assert lines[-2].startswith("| synthetic seed 0 | making the data: ") and lines[-2].endswith("failed (exit 1) |")
    assert lines[-1].startswith("| synthetic seed 1 | 50.0 |")


def test_the_row_scores_the_accumulated_maps_and_leaves_a_dash_without_them():
    results = results_json(0.70, 0.73)
    results["accumulated"] = {"miou": 0.753}
    assert round(bench.summary(results)["accu"], 6) == 75.3
    del results["accumulated"]  # a run made before the pipeline scored them
    r = bench.summary(results)
    assert bench.figure_cell(r["accu"]) == "-"
    assert bench.check_targets(r)[1] == []  # not a target: nothing is "not scored" for want of it
