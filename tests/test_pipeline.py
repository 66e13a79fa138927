"""The one-command pipeline on a very small synthetic set: all stages, skip, resume, --from."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from PIL import Image

from nsrom.errors import ConfigError
from nsrom.evaluation import evaluate_cams, evaluate_labels
from nsrom.files import read_json
from runner import run as runner, stages as stage_module
from runner.context import RunContext
from runner.results import RESULT_KEYS
from runner.run import run_pipeline, select_stages
from runner.stages import STAGE_NAMES
from runner.state import StageState


def make_ctx(layout, work_dir, preset) -> RunContext:
    return RunContext(layout.root, work_dir, preset, device="cpu")


@pytest.fixture(scope="module")
def finished_run(synthetic_root, tmp_path_factory, tiny_preset):
    work = tmp_path_factory.mktemp("pipeline")
    ctx = make_ctx(synthetic_root, work, tiny_preset)
    results = run_pipeline(ctx, to_stage="pseudo_label")
    assert set(results) == {"cam", "accumulated", "oacam", "pseudo_label", "pseudo_label_no_pom", "pom",
                            "stage_seconds", "machine", "stage1_recognition", "splits", "settings", "stages_not_done"}
    assert results["stages_not_done"] == STAGE_NAMES[STAGE_NAMES.index("seg1_train"):]
    assert "Not done yet (no scores): seg1_train, seg1_test," in (work / "results.md").read_text()
    assert results["splits"] == {"train": "train_aug", "val": "val"}
    assert results["pom"] is True
    results = run_pipeline(make_ctx(synthetic_root, work, tiny_preset))  # the rest; the first five are skipped
    assert "stages_not_done" not in results and "Not done yet" not in (work / "results.md").read_text()
    return ctx, results


def test_results_complete_and_consistent_with_files(finished_run, synthetic_root):
    ctx, results = finished_run
    names = synthetic_root.class_names()
    for key in RESULT_KEYS:
        assert 0.0 <= results[key]["miou"] <= 1.0, key
        assert list(results[key]["class_iou"]) == names, key
    # Which classes the ground truth holds (the report of classes far below the others needs it).
    assert list(results["cam"]["scores"]["Class Accuracy"]) == names
    assert list(results["seg_round2_crf"]["class_accuracy"]) == names
    for key in ("pseudo_label", "masked_label"):
        assert 0.0 <= results[key]["ignored_fraction"] <= 1.0
    assert set(results["stage_seconds"]) == set(STAGE_NAMES)
    # Stage 1's recognition check: one attempt (the tiny preset allows one), its report as written.
    (attempt,) = results["stage1_recognition"]
    assert attempt == {**read_json(ctx.runs_dir / "exp1" / "recognition.json"), "kept": True}
    assert list(attempt["average_precision"]) == names[1:] and attempt["seed"] == 0
    # Scores are those of the files on disk.
    again = evaluate_labels(synthetic_root, "train_aug", ctx.pseudo_dir)
    assert again["miou"] == pytest.approx(results["pseudo_label"]["miou"])
    # Stage 1's accumulated maps (kept at the CAM size of the training input), resized to each image and scored.
    accu = ctx.runs_dir / "exp1" / "accu_att"
    maps = sorted(accu.glob("*.png"))
    assert maps and all(Image.open(p).size != Image.open(synthetic_root.image_path(p.stem.rsplit("_", 1)[0])).size
                        for p in maps)
    again = evaluate_cams(synthetic_root, "train_aug", accu, resize=True)
    assert again["miou"] == pytest.approx(results["accumulated"]["miou"])
    assert again["curve"] == pytest.approx(results["accumulated"]["curve"])
    crf = read_json(stage_module.seg_paths(ctx, "round2").score_path("val", crf=True))
    assert crf["Mean IoU"] == pytest.approx(results["seg_round2_crf"]["miou"])
    train_ids = synthetic_root.ids("train_aug")
    assert sorted(p.stem for p in ctx.masked_dir.glob("*.png")) == sorted(train_ids)
    cams = list(ctx.attention_dir("exp1").glob("*.png"))
    assert len(cams) == sum(len(c) for c in synthetic_root.image_labels("train_aug").values())
    md = (ctx.work_dir / "results.md").read_text()
    assert "| DeepLab-v2 round 2 + CRF (val): the reported number |" in md and "| total |" in md
    # What made the table: the run's settings, and a line of them (nothing given beyond the preset here).
    assert results["settings"] == runner.run_settings(ctx) and results["settings"]["dataset"]["saliency_dir"] == \
        "saliency"
    assert f"\nPreset `{ctx.preset.name}` on {synthetic_root.root}; beyond the preset: nothing.\n" in md
    for name in ("qualitative", "cam_thresholds", "missed_objects"):  # the synthetic data records its objects
        figure = ctx.figure_path(name)
        assert figure.is_file() and figure.stat().st_size > 1000
        assert f"](figures/{name}.png)" in md


def test_stage_1_alone_gets_the_presets_cam_args(finished_run, tiny_preset):
    ctx, _ = finished_run
    assert tiny_preset.cam_args == ["--accu-gate", "0.99"]
    stage1 = json.loads((ctx.runs_dir / "exp1" / "train_args.json").read_text())
    stage2 = json.loads((ctx.runs_dir / "exp2" / "train_args.json").read_text())
    assert stage1["accu_gate"] == 0.99 and "accu_gate" not in stage2


def test_stand_in_weights_are_made_and_loaded_through_the_real_flags(finished_run):
    ctx, _ = finished_run
    assert ctx.vgg_standin_path.is_file() and ctx.deeplab_standin_path.is_file()
    for exp in ("exp1", "exp2"):  # stages 1 and 2: --pretrained-path, as the ImageNet file
        args = read_json(ctx.runs_dir / exp / "train_args.json")
        assert args["pretrained"] is True and args["pretrained_path"] == str(ctx.vgg_standin_path)
        assert f"from {ctx.vgg_standin_path}" in (ctx.runs_dir / exp / "logs" / "train.log").read_text()
    for round_id in ("round1", "round2"):  # stages 4 and 7: MODEL.INIT_MODEL, as the COCO file
        config = (stage_module.seg_paths(ctx, round_id).model_dir / "config.yaml").read_text()
        assert f"INIT_MODEL: {ctx.deeplab_standin_path}" in config


def test_pom_ablation_and_missed_objects(finished_run, synthetic_root):
    ctx, results = finished_run
    no_pom = evaluate_labels(synthetic_root, "train_aug", ctx.pseudo_no_pom_dir)
    assert no_pom["miou"] == pytest.approx(results["pseudo_label_no_pom"]["miou"])
    # POM only turns background into ignore: the labels differ only there.
    from nsrom.images import read_label

    for image_id in synthetic_root.ids("train_aug"):
        with_pom, without = read_label(ctx.pseudo_dir / f"{image_id}.png"), read_label(ctx.pseudo_no_pom_dir / f"{image_id}.png")
        changed = with_pom != without
        assert (without[changed] == 0).all() and (with_pom[changed] == 255).all()
    missed = results["missed_objects"]
    assert list(missed) == ["pseudo_label_no_pom", "pseudo_label", "masked_label", "seg_round1", "seg_round2"]
    for entry in missed.values():
        assert entry["objects"] > 0 and entry["status"] == "missing"
        assert sum(entry[k] for k in ("right_class", "ignored", "background", "other_class")) == pytest.approx(1)
    assert missed["pseudo_label"]["background"] <= missed["pseudo_label_no_pom"]["background"]
    md = (ctx.work_dir / "results.md").read_text()
    assert "| without POM |" in md and "Objects the saliency map misses" in md and "| round 2 - round 1 |" in md
    assert f"Timed on {results['machine']['cpu_cores']} CPU cores" in md


def test_no_object_record_no_missed_objects(finished_run, synthetic_root, tmp_path):
    import shutil

    ctx, _ = finished_run
    root = tmp_path / "data"
    shutil.copytree(synthetic_root.root, root)
    (root / "objects.json").unlink()
    bare = dataclasses.replace(ctx, data_root=root)
    assert stage_module.missed_objects(bare) == {}


def test_completed_stages_are_skipped(finished_run, synthetic_root, monkeypatch, tiny_preset):
    ctx, results = finished_run
    called = []
    patched = [dataclasses.replace(s, run=lambda c, n=s.name: called.append(n)) for s in stage_module.STAGES]
    monkeypatch.setattr(runner, "STAGES", patched)
    assert run_pipeline(make_ctx(synthetic_root, ctx.work_dir, tiny_preset)) == results
    assert called == []


def test_interrupted_run_resumes_at_the_failed_stage(synthetic_root, tmp_path, monkeypatch, tiny_preset):
    calls = []

    def fake(name, fail):
        def run(ctx):
            calls.append(name)
            if fail and name == "seg1_test":
                raise KeyboardInterrupt
            return {}
        return run

    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=fake(s.name, True)) for s in stage_module.STAGES])
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset))
    assert calls == STAGE_NAMES[: STAGE_NAMES.index("seg1_test") + 1]
    state = StageState(tmp_path)
    assert state.is_done("seg1_train") and not state.is_done("seg1_test")
    calls.clear()
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=fake(s.name, False)) for s in stage_module.STAGES])
    run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset))
    assert calls == STAGE_NAMES[STAGE_NAMES.index("seg1_test"):]


def test_from_reruns_that_stage_and_later_ones_with_overwrite(synthetic_root, tmp_path, monkeypatch, tiny_preset):
    seen = []
    monkeypatch.setattr(runner, "STAGES", [
        dataclasses.replace(s, run=lambda ctx, n=s.name: seen.append((n, ctx.overwrite))) for s in stage_module.STAGES
    ])
    run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset))
    seen.clear()
    run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset), from_stage="masked_label", to_stage="seg2_train")
    assert seen == [("masked_label", True), ("seg2_train", True)]
    state = StageState(tmp_path)
    assert state.is_done("pseudo_label") and not state.is_done("seg2_test")
    # the stages --from cleared but --to left out still hold the old outputs: the next plain run redoes them
    seen.clear()
    run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset))
    assert seen == [(name, True) for name in STAGE_NAMES[STAGE_NAMES.index("seg2_test"):]]
    assert state.redo() == []
    seen.clear()
    run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset))
    assert seen == []


def test_from_needs_every_earlier_stage_done(synthetic_root, tmp_path, monkeypatch, tiny_preset):
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda ctx: {}) for s in stage_module.STAGES])
    with pytest.raises(ConfigError, match="--from seg1_train: .*not done: pretrain, cam_train, .*run without --from"):
        run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset), from_stage="seg1_train")
    assert not StageState(tmp_path).is_done("seg1_train")


def test_a_finished_work_dir_refuses_other_settings_unless_from(synthetic_root, tmp_path, monkeypatch, tiny_preset):
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda ctx: {}) for s in stage_module.STAGES])
    run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset))
    other = dataclasses.replace(make_ctx(synthetic_root, tmp_path, tiny_preset), pseudo_label_extra=["--no-pom"], seed=3)
    with pytest.raises(ConfigError, match=r"other settings \(pseudo_label_arg: \[\] -> \['--no-pom'\]; seed: None -> 3\)"):
        run_pipeline(other)
    run_pipeline(other, from_stage="pseudo_label")  # the user says which stages the change affects
    assert StageState(tmp_path).settings()["pseudo_label_arg"] == ["--no-pom"]
    run_pipeline(other)  # the same settings continue
    with pytest.raises(ConfigError, match="data_root"):
        run_pipeline(dataclasses.replace(other, data_root=(tmp_path / "other_data").resolve()))


def test_a_refused_run_leaves_the_work_dir_as_it_was(synthetic_root, tmp_path, monkeypatch, tiny_preset):
    """A --from run stopped by a flag typo clears no marker and stores no setting: the same command
    without the typo is not refused for a run that never happened."""
    ran = []
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda c, n=s.name: ran.append(n) or {})
                                           for s in stage_module.STAGES])
    run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset))
    state = StageState(tmp_path)
    files = {p: p.read_bytes() for p in (tmp_path / ".stages").rglob("*") if p.is_file()}
    typo = dataclasses.replace(make_ctx(synthetic_root, tmp_path, tiny_preset),
                               pseudo_label_extra=["--object-treshold=0.7"])
    ran.clear()
    with pytest.raises(ConfigError, match="has no flag --object-treshold=0.7"):
        run_pipeline(typo, from_stage="pseudo_label")
    assert ran == [] and all(state.is_done(name) for name in STAGE_NAMES) and state.redo() == []
    assert {p: p.read_bytes() for p in (tmp_path / ".stages").rglob("*") if p.is_file()} == files
    run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset))  # the same settings: every stage skipped
    assert ran == []


def test_a_changed_dataset_yaml_is_another_setting(synthetic_root, tmp_path, monkeypatch, tiny_preset):
    """Another saliency folder named in ROOT/dataset.yaml would mix two detectors' maps in one run: refused like
    a flag, with the setting named; a work dir stored before the dataset's settings were kept still continues."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_root.root, root)
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda ctx: {}) for s in stage_module.STAGES])
    ctx = RunContext(root, tmp_path / "work", tiny_preset, device="cpu")
    run_pipeline(ctx, to_stage="pseudo_label")
    shutil.copytree(root / "saliency", root / "saliency_alt")
    (root / "dataset.yaml").write_text("saliency_dir: saliency_alt\n")
    with pytest.raises(ConfigError, match=r"other settings \(dataset.saliency_dir: 'saliency' -> 'saliency_alt'\); "
                                          r"restore the dataset's ROOT/dataset.yaml to continue it, --from STAGE"):
        run_pipeline(RunContext(root, tmp_path / "work", tiny_preset, device="cpu"))
    run_pipeline(RunContext(root, tmp_path / "work", tiny_preset, device="cpu"), from_stage="pseudo_label")
    state = StageState(tmp_path / "work")
    assert state.settings()["dataset"]["saliency_dir"] == "saliency_alt"
    old = state.settings()
    del old["dataset"]
    state.store_settings(old)  # as a work dir of an earlier version stored them
    run_pipeline(RunContext(root, tmp_path / "work", tiny_preset, device="cpu"))


def test_a_dataset_made_again_in_place_is_another_dataset(synthetic_root, tmp_path, monkeypatch, tiny_preset):
    """The same ROOT with other lists (the generator run again with other sizes) would pair the new images
    with the old CAMs: resuming is refused, naming the list."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_root.root, root)
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda ctx: {}) for s in stage_module.STAGES])
    run_pipeline(RunContext(root, tmp_path / "work", tiny_preset, device="cpu"), to_stage="oacam_export")
    train_list = root / "ImageSets" / "Segmentation" / "train_aug.txt"
    train_list.write_text("\n".join(train_list.read_text().split()[:-1]) + "\n")
    with pytest.raises(ConfigError, match=r"other settings \(lists.train_aug.txt: '[0-9a-f]{16}' -> '[0-9a-f]{16}'\); "
                                          r"restore the dataset's lists \(the dataset was made again"):
        run_pipeline(RunContext(root, tmp_path / "work", tiny_preset, device="cpu"))
    state = StageState(tmp_path / "work")
    old = state.settings()
    del old["lists"]
    state.store_settings(old)  # a work dir of an earlier version, which kept no digests, still continues
    run_pipeline(RunContext(root, tmp_path / "work", tiny_preset, device="cpu"))


def test_from_drops_the_scores_it_clears_and_refuses_changes_it_cannot_reach(synthetic_root, tmp_path, monkeypatch,
                                                                           tiny_preset):
    """A --from run stopped early (--to, a kill) must not show the old run's later scores under the new
    settings; a changed flag that only earlier stages read is refused; a change that reaches some of its
    stages is kept, and the earlier stages made with the old value are named."""
    def score(value):
        return {"miou": value, "class_iou": {"background": value, "a": value}}

    entries = {"seg1_test": {"seg_round1": score(0.5)}, "seg1_crf": {"seg_round1_crf": score(0.6)},
               "seg2_test": {"seg_round2": score(0.7)}, "seg2_crf": {"seg_round2_crf": score(0.8),
                                                                     "notes": {"seg_round2_crf": "partial"}}}
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda c, n=s.name: dict(entries.get(n, {})))
                                           for s in stage_module.STAGES])
    run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset))
    seven = dataclasses.replace(make_ctx(synthetic_root, tmp_path, tiny_preset), seed=7)
    results = run_pipeline(seven, from_stage="seg1_train", to_stage="seg1_test")
    assert results["seg_round1"]["miou"] == 0.5 and "notes" not in results
    assert not {"seg_round1_crf", "seg_round2", "seg_round2_crf"} & set(results)
    assert results["stages_not_done"] == STAGE_NAMES[STAGE_NAMES.index("seg1_crf"):]
    md = (tmp_path / "results.md").read_text()
    assert "round 2" not in md.split("Not done yet")[0].lower() and "Not done yet (no scores): seg1_crf" in md

    assert run_pipeline(seven)["seg_round2_crf"]["miou"] == 0.8  # the plain run finishes it
    epochs = dataclasses.replace(seven, classifier_extra=["--epochs=5"])
    with pytest.raises(ConfigError, match=r"--from report: cls_arg: \[\] -> \['--epochs=5'\], but only stages before "
                                          r"report read it \(pretrain, cam_train, iam_train\); --from pretrain"):
        run_pipeline(epochs, from_stage="report")
    iam_seed = dataclasses.replace(seven, classifier_extra=["--seed=1"])
    results = run_pipeline(iam_seed, from_stage="iam_train")  # the IAM again with another seed: allowed
    assert results["stages_with_other_settings"] == {
        "pretrain": ["cls_arg: [] -> ['--seed=1']"], "cam_train": ["cls_arg: [] -> ['--seed=1']"]}
    assert "- cam_train: cls_arg: [] -> ['--seed=1']" in (tmp_path / "results.md").read_text()


def test_a_deleted_or_damaged_results_json_is_rebuilt_from_the_stage_markers(synthetic_root, tmp_path, monkeypatch,
                                                                              tiny_preset):
    entries = {"seg1_test": {"seg_round1": {"miou": 0.5, "class_iou": {"background": 0.5}}}}
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda c, n=s.name: dict(entries.get(n, {})))
                                           for s in stage_module.STAGES])
    whole = run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset))
    (tmp_path / "results.json").write_text('{"seg_round1": ')  # edited by hand, cut short
    assert run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset), from_stage="report") == whole
    assert (tmp_path / "results.json.damaged").read_text() == '{"seg_round1": '
    (tmp_path / "results.json").unlink()
    assert run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset)) == whole  # nothing to run: rebuilt
    assert "| DeepLab-v2 round 1 (val) | 50.0 |" in (tmp_path / "results.md").read_text()


def test_a_work_dir_with_nothing_written_takes_other_settings(synthetic_root, tmp_path, monkeypatch, tiny_preset):
    """A run of a preset without stand-ins that stopped in stage 1 (a missing download, say) has only the no-op
    pretrain done: run again with the flag that fixes it (here --cls-arg), it is not refused."""
    paper_like = dataclasses.replace(tiny_preset, standin=None)

    def stage1_fails(ctx):
        raise ConfigError("stage 1 stopped")

    stages = [dataclasses.replace(s, run=stage1_fails if s.name == "cam_train" else (lambda ctx: {}))
              for s in stage_module.STAGES]
    monkeypatch.setattr(runner, "STAGES", stages)
    with pytest.raises(ConfigError, match="stage 1 stopped"):
        run_pipeline(make_ctx(synthetic_root, tmp_path, paper_like))
    assert StageState(tmp_path).is_done("pretrain") and not StageState(tmp_path).is_done("cam_train")
    fixed = dataclasses.replace(make_ctx(synthetic_root, tmp_path, paper_like), classifier_extra=["--no-pretrained"])
    with pytest.raises(ConfigError, match="stage 1 stopped"):  # past the settings check, to stage 1 again
        run_pipeline(fixed)
    assert StageState(tmp_path).settings()["cls_arg"] == ["--no-pretrained"]
    # once stage 1 has written a checkpoint, other flags would mix with it: refused again
    checkpoint = tmp_path / "classification" / "runs" / "exp1" / "model" / "checkpoint_recent.pth"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"other settings \(cls_arg"):
        run_pipeline(make_ctx(synthetic_root, tmp_path, paper_like))
    checkpoint.unlink()
    with pytest.raises(ConfigError, match=r"other settings .*preset"):  # so is another preset
        run_pipeline(dataclasses.replace(fixed, preset=dataclasses.replace(paper_like, name="other")))


def test_stage_3_without_pom_has_no_ablation_and_says_so(finished_run, synthetic_root, tmp_path, tiny_preset):
    import shutil

    ctx, _ = finished_run
    work = tmp_path / "work"
    shutil.copytree(ctx.work_dir, work)
    no_pom = dataclasses.replace(make_ctx(synthetic_root, work, tiny_preset), pseudo_label_extra=["--no-pom"])
    results = run_pipeline(no_pom, from_stage="pseudo_label", to_stage="pseudo_label")
    assert results["pom"] is False and "pseudo_label_no_pom" not in results
    assert results["pseudo_label"]["miou"] == pytest.approx(
        evaluate_labels(synthetic_root, "train_aug", ctx.pseudo_no_pom_dir)["miou"])  # the ablation's labels
    md = (work / "results.md").read_text()
    assert "pseudo labels (stage 3 without POM: --no-pom," in md and "| without POM |" not in md


def test_a_classifier_without_accumulated_maps_has_a_note_instead_of_their_score(finished_run, synthetic_root,
                                                                                   tmp_path, tiny_preset):
    import shutil

    ctx, _ = finished_run
    work = tmp_path / "work"
    shutil.copytree(ctx.work_dir, work)
    shutil.rmtree(work / "classification" / "runs" / "exp1" / "accu_att")  # e.g. a classifier trained elsewhere
    results = run_pipeline(make_ctx(synthetic_root, work, tiny_preset), from_stage="cam_export", to_stage="cam_export")
    assert "accumulated" not in results and "no accumulated maps in" in results["notes"]["accumulated"]
    assert results["cam"]["miou"] == pytest.approx(evaluate_cams(synthetic_root, "train_aug",
                                                                 work / "classification" / "runs" / "exp1" /
                                                                 "attention")["miou"])
    assert "- accumulated maps (stage 1 OAA" in (work / "results.md").read_text()


def test_real_rerun_from_masked_label_rewrites_its_outputs(finished_run, synthetic_root, tiny_preset):
    ctx, _ = finished_run
    label = ctx.masked_dir / f"{synthetic_root.ids('train_aug')[0]}.png"
    pseudo = ctx.pseudo_dir / label.name
    before_label, before_pseudo = label.stat().st_mtime_ns, pseudo.stat().st_mtime_ns
    run_pipeline(make_ctx(synthetic_root, ctx.work_dir, tiny_preset),
                 from_stage="masked_label", to_stage="masked_label")
    assert label.stat().st_mtime_ns != before_label
    assert pseudo.stat().st_mtime_ns == before_pseudo


def test_the_settings_line_names_what_was_given_beyond_the_preset():
    from runner.results import settings_line

    settings = {"data_root": "/d", "preset": "demo", "cam_arg": ["--accu-start-epoch=3"], "cls_arg": [],
                "seg_set": ["SOLVER.ITER_MAX=10"], "seg_config": None, "layout": {}, "seed": 2,
                "dataset": {"saliency_dir": "saliency"}}
    assert settings_line(settings) == ("Preset `demo` on /d; beyond the preset: cam-arg ['--accu-start-epoch=3']; "
                                       "seg-set ['SOLVER.ITER_MAX=10']; seed 2.")
    settings["dataset"] = {"saliency_dir": "sal2", "val_split": "val"}  # only what differs from the defaults
    assert settings_line(settings).endswith("seed 2; dataset saliency_dir: sal2.")


def test_stage_selection_errors():
    assert select_stages("seg2_test", None) == ["seg2_test", "seg2_crf", "seg2_trainaug_pred", "missed_objects", "report"]
    with pytest.raises(ConfigError, match="unknown stage 'seg3'"):
        select_stages("seg3", None)
    with pytest.raises(ConfigError, match="comes after"):
        select_stages("report", "cam_train")


def test_cli_reports_missing_data_root(tmp_path, capsys):
    from runner.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--data-root", str(tmp_path / "nope"), "--work-dir", str(tmp_path / "w"), "--preset", "demo"])
    assert exc.value.code == 2
    assert "nope" in capsys.readouterr().err


def test_cli_reports_a_work_dir_that_cannot_be_made(synthetic_root, tmp_path, capsys):
    from runner.cli import main

    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["--data-root", str(synthetic_root.root), "--work-dir", str(tmp_path / "file" / "w"), "--preset", "tiny"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and str(tmp_path / "file") in err and "Traceback" not in err


def test_pipeline_log_holds_every_stage_through_their_own_logging_setups(synthetic_root, tmp_path):
    """Each stage script configures logging again; W/pipeline.log must still get the runner's lines of the
    later stages and the stages' own lines, and let go of the file when the run ends."""
    import logging

    from runner.cli import main

    work = tmp_path / "w"
    main(["--data-root", str(synthetic_root.root), "--work-dir", str(work), "--preset", "tiny", "--device", "cpu",
          "--to", "cam_export"])
    log = (work / "pipeline.log").read_text()
    for line in ("[pretrain] finished", "[cam_train] finished", "[cam_export] finished",
                 "classification.training: epoch 1: mean loss"):
        assert line in log, line
    assert not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(work / "pipeline.log")
                   for h in logging.getLogger().handlers)


def test_classifier_seed_benchmark_reads_one_loss_per_epoch_from_the_real_log(finished_run, tiny_preset):
    from benchmarks.classifier_seeds import epoch_losses

    ctx, _ = finished_run
    losses = epoch_losses(ctx.runs_dir / "exp1" / "logs" / "train.log")
    epochs = tiny_preset.classifier_args[tiny_preset.classifier_args.index("--epochs") + 1]
    assert len(losses) == int(epochs) and all(0 < v < 10 for v in losses)


@pytest.mark.parametrize("vgg_input_size, expected", [(None, 32), (48, 48)])
def test_vgg_standin_is_made_at_its_own_size_or_the_classifiers(synthetic_root, tmp_path, monkeypatch, tiny_preset,
                                                                vgg_input_size, expected):
    import classification.standin
    import segmentation.libs.standin

    made = []
    monkeypatch.setattr(classification.standin, "make_vgg16_standin", lambda path, width_div, size, *a: made.append(size))
    monkeypatch.setattr(segmentation.libs.standin, "make_deeplab_standin", lambda *a: None)
    preset = dataclasses.replace(tiny_preset, standin=dataclasses.replace(tiny_preset.standin,
                                                                          vgg_input_size=vgg_input_size))
    assert "--input-size" in preset.classifier_args and preset.classifier_args[
        preset.classifier_args.index("--input-size") + 1] == "32"
    stage_module.pretrain(make_ctx(synthetic_root, tmp_path, preset))
    assert made == [expected]


def test_demo_preset_trains_the_classifiers_at_192_px_on_a_128_px_standin():
    from runner.presets import get_preset

    demo = get_preset("demo")
    assert demo.classifier_args[demo.classifier_args.index("--input-size") + 1] == "192"
    assert demo.standin.vgg_input_size == 128


@pytest.mark.parametrize("folder, message", [
    ("saliency", r"none of the 8 images of split train_aug has a saliency map in .*saliency; stage 3"),
    ("SegmentationClassAug", r"none of the 4 images of split val has a mask in .*SegmentationClassAug; the DeepLab"),
])
def test_no_saliency_map_or_no_val_mask_at_all_stops_before_the_first_stage(
        synthetic_root, tmp_path, monkeypatch, tiny_preset, folder, message):
    import shutil

    from nsrom.errors import DataError

    root = tmp_path / "data"
    shutil.copytree(synthetic_root.root, root)
    split = "train_aug" if folder == "saliency" else "val"
    for image_id in synthetic_root.ids(split):
        for path in (root / folder).glob(f"{image_id}.*"):
            path.unlink()
    ran = []
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda c, n=s.name: ran.append(n))
                                           for s in stage_module.STAGES])
    with pytest.raises(DataError, match=message):
        run_pipeline(RunContext(root, tmp_path / "work", tiny_preset, device="cpu"))
    assert ran == []
    # one image without its file is a warning: the run goes on
    shutil.rmtree(root)
    shutil.copytree(synthetic_root.root, root)
    (root / folder / f"{synthetic_root.ids(split)[0]}.png").unlink()
    run_pipeline(RunContext(root, tmp_path / "work2", tiny_preset, device="cpu"))
    assert ran == STAGE_NAMES


@pytest.mark.parametrize("folder, maps, setting", [
    ("saliency", "maps", "saliency_dir: maps"),
    ("saliency", "2012", 'saliency_dir: "2012"'),  # YAML would read 2012 as a number
    ("SegmentationClassAug", "maps", "mask_dir: [maps, SegmentationClassAug, SegmentationClass]"),
    ("SegmentationClassAug", "gt, v2", 'mask_dir: ["gt, v2", SegmentationClassAug, SegmentationClass]'),
])
def test_files_kept_in_another_folder_are_named_with_the_setting_that_finds_them(
        synthetic_root, tmp_path, monkeypatch, tiny_preset, folder, maps, setting):
    import shutil

    from nsrom.errors import DataError

    root = tmp_path / "data"
    shutil.copytree(synthetic_root.root, root)
    split = "train_aug" if folder == "saliency" else "val"
    ids = synthetic_root.ids(split)
    (root / maps).mkdir()
    for image_id in ids:
        (root / folder / f"{image_id}.png").rename(root / maps / f"{image_id}.png")
    ran = []
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda c, n=s.name: ran.append(n))
                                           for s in stage_module.STAGES])
    with pytest.raises(DataError, match=re.escape(f"hold <id>.png files of these images: {maps} ({len(ids)} of "
                                                  f"{len(ids)}); if the ") + ".*" + re.escape(f"set {setting} in")):
        run_pipeline(RunContext(root, tmp_path / "work", tiny_preset, device="cpu"))
    assert ran == []
    (root / "dataset.yaml").write_text(setting + "\n")  # the setting as printed finds them
    run_pipeline(RunContext(root, tmp_path / "work2", tiny_preset, device="cpu"))
    assert ran == STAGE_NAMES


@pytest.mark.parametrize("field, value, message", [
    ("classifier_extra", ["--bogus"], r"stage cam_train \(--cls-arg / --cam-arg\): classification.train has no flag "
                                      r"--bogus"),
    ("cam_extra", ["--accu-gate=high"], r"stage cam_train .*argument --accu-gate"),
    ("masked_label_extra", ["--dilaton=20"], r"stage masked_label \(--masked-label-arg\): .* has no flag --dilaton"),
    ("seg_overrides", ["SOLVER.ITERMAX=3"], "unknown config key SOLVER.ITERMAX"),
    ("pseudo_label_extra", ["--object-threshold=1.5"], r"stage pseudo_label \(--pseudo-label-arg\): object_threshold "
                                                       r"\(--object-threshold\) must be between 0 and 1, got 1.5"),
    ("pseudo_label_extra", ["--object-threshold 0.7"], r"has no flag --object-threshold 0.7 \(a flag and its value go "
                                                       r"in one argument as --object-threshold=0.7\)"),
    ("seg_overrides", ["MODEL.NAME=Nope"], r"MODEL.NAME 'Nope' unknown; choose one of DeepLabV2_ResNet101_MSC"),
    ("seg_overrides", ["EXP.ID=mine"], r"--seg-set EXP.ID=mine: the pipeline sets EXP.ID for each round; use for "
                                       r"EXP.ID: nothing: the rounds are round1 and round2"),
    ("seg_overrides", ["dataset.split={}"], r"the pipeline sets DATASET.SPLIT.TRAIN, DATASET.SPLIT.VAL .*--train-split"),
    ("classifier_extra", ["--lr=-1"], r"stage cam_train .*argument --lr: expected a number >= 0, got '-1'"),
    ("seg_overrides", ["SOLVER.BATCH_SIZE.TRAIN=0"], r"SOLVER.BATCH_SIZE.TRAIN must be >= 1"),
])
def test_a_bad_pass_through_flag_stops_before_the_first_stage(synthetic_root, tmp_path, monkeypatch, tiny_preset,
                                                              field, value, message):
    ran = []
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda c, n=s.name: ran.append(n))
                                           for s in stage_module.STAGES])
    ctx = dataclasses.replace(make_ctx(synthetic_root, tmp_path, tiny_preset), **{field: value})
    with pytest.raises(ConfigError, match=message):
        run_pipeline(ctx)
    assert ran == []


def test_flags_the_stand_ins_read_are_checked_when_the_run_stops_before_their_stages(synthetic_root, tmp_path,
                                                                                     monkeypatch, tiny_preset):
    """--to cam_train still makes the DeepLab stand-in from the segmentation config: a typo there stops
    the run before anything is written or stored, so the corrected command is not refused afterwards."""
    ran = []
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda c, n=s.name: ran.append(n))
                                           for s in stage_module.STAGES])
    ctx = dataclasses.replace(make_ctx(synthetic_root, tmp_path, tiny_preset), seg_overrides=["SOLVER.ITER_MAXX=3"])
    with pytest.raises(ConfigError, match="unknown config key SOLVER.ITER_MAXX"):
        run_pipeline(ctx, to_stage="cam_train")
    assert ran == [] and StageState(ctx.work_dir).settings() is None
    run_pipeline(make_ctx(synthetic_root, tmp_path, tiny_preset), to_stage="cam_train")
    assert ran == ["pretrain", "cam_train"]


def test_the_paper_preset_names_a_missing_coco_init_before_the_first_stage(synthetic_root, tmp_path, monkeypatch):
    from runner.presets import COCO_INIT, get_preset

    if COCO_INIT.is_file():
        pytest.skip("the COCO init file is installed here")
    monkeypatch.setattr(runner, "STAGES", [dataclasses.replace(s, run=lambda c: {}) for s in stage_module.STAGES])
    with pytest.raises(ConfigError, match=r"MODEL.INIT_MODEL: .*deeplabv1_resnet101-coco.pth not found; download .*"
                                          r"--seg-set MODEL.INIT_MODEL=null"):
        run_pipeline(make_ctx(synthetic_root, tmp_path, get_preset("voc12")))
    ctx = dataclasses.replace(make_ctx(synthetic_root, tmp_path / "w2", get_preset("voc12")),
                              seg_overrides=["MODEL.INIT_MODEL=null"])
    run_pipeline(ctx)  # from scratch: every stage runs without the init file


@pytest.mark.parametrize("device, cuda, flag", [("auto", False, "--cpu"), ("auto", True, "--cuda"), ("cpu", True, "--cpu"),
                                                ("cuda", False, "--cuda")])
def test_segmentation_device_flag_follows_the_pipeline_device(tmp_path, tiny_preset, monkeypatch, device, cuda, flag):
    """--device auto without CUDA hands the segmentation scripts --cpu, so they do not warn that CUDA is missing
    and suggest a flag pipeline.py does not have; --device cuda keeps asking for CUDA (and is warned)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert RunContext(tmp_path / "d", tmp_path / "w", tiny_preset, device=device).cuda_flag == flag


def test_every_missing_download_and_data_problem_is_named_at_once(synthetic_root, tmp_path, tiny_preset):
    """A missing COCO init and training images without saliency maps: one error before the first stage names
    both (with the pipeline's flags), not one per run."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_root.root, root)
    shutil.rmtree(root / "saliency")
    paper_like = dataclasses.replace(tiny_preset, standin=None)
    ctx = dataclasses.replace(RunContext(root, tmp_path / "work", paper_like, device="cpu"),
                              seg_overrides=[f"MODEL.INIT_MODEL={tmp_path / 'absent.pth'}"])
    with pytest.raises(ConfigError) as info:
        run_pipeline(ctx)
    text = str(info.value)
    assert text.startswith("before the first stage:")
    assert f"MODEL.INIT_MODEL: {tmp_path / 'absent.pth'} not found" in text and "--seg-set MODEL.INIT_MODEL=null" in text
    assert "none of the" in text and "has a saliency map" in text and "saliency_aug.tar.gz" in text
    assert not StageState(tmp_path / "work").is_done("cam_train")


def test_the_real_pipeline_results_compare_with_themselves(finished_run, tmp_path):
    ctx, results = finished_run
    from tools import compare_runs

    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "results.json").write_bytes((ctx.work_dir / "results.json").read_bytes())
    table = compare_runs.main([str(ctx.work_dir), str(tmp_path / "copy"), "--names", "one,two"])
    cam = f"{100 * results['cam']['miou']:.1f}"
    assert f"| CAM (stage 1b, train_aug, best bg threshold) | {cam} | {cam} |" in table
    assert table.endswith("- two: the same settings\n")
