"""tools/compare_runs.py: finished runs side by side, with the settings that differ."""

from __future__ import annotations

import json

import pytest

from tools import compare_runs

SETTINGS = {"data_root": "/d", "preset": "demo", "pseudo_label_arg": [], "seed": None,
            "dataset": {"saliency_dir": "saliency"}}


def write_run(folder, results: dict) -> None:
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(results))


def test_two_runs_side_by_side_with_their_difference(tmp_path, capsys):
    write_run(tmp_path / "paper", {
        "cam": {"miou": 0.5}, "pseudo_label": {"miou": 0.8, "ignored_fraction": 0.125},
        "pseudo_label_no_pom": {"miou": 0.75}, "seg_round1_crf": {"miou": 0.7}, "seg_round2_crf": {"miou": 0.75},
        "missed_objects": {"seg_round2": {"right_class": 0.9}}, "settings": SETTINGS})
    write_run(tmp_path / "no_pom", {
        "cam": {"miou": 0.5}, "pseudo_label": {"miou": 0.75, "ignored_fraction": 0.1},
        "seg_round1_crf": {"miou": 0.72}, "seg_round2_crf": {"miou": 0.71},
        "settings": {**SETTINGS, "pseudo_label_arg": ["--no-pom"], "dataset": {"saliency_dir": "sal2"}}})
    table = compare_runs.main([str(tmp_path / "paper"), str(tmp_path / "no_pom"), "--names", "paper,no POM",
                               "--json", str(tmp_path / "t.json")])
    assert capsys.readouterr().out == table
    assert table.splitlines() == [
        "| | paper | no POM |", "|---|---:|---:|",
        "| CAM (stage 1b, train_aug, best bg threshold) | 50.0 | 50.0 |",
        "| pseudo labels (stage 3, train_aug, non-ignored pixels) | 80.0 | 75.0 |",
        "| pseudo labels: ignored | 12.5 | 10.0 |",
        "| DeepLab-v2 round 1 + CRF (val) | 70.0 | 72.0 |",
        "| DeepLab-v2 round 2 + CRF (val): the reported number | 75.0 | 71.0 |",
        "| pseudo labels without POM (ablation) | 75.0 | - |",
        "| round 2 + CRF - round 1 + CRF | +5.0 | -1.0 |",
        "| missed objects, own class: round-2 predictions + CRF | 90.0 | - |",
        "", "Settings against paper:", "",
        "- no POM: dataset.saliency_dir: 'saliency' -> 'sal2'; pseudo_label_arg: [] -> ['--no-pom']",
    ]
    saved = json.loads((tmp_path / "t.json").read_text())
    assert saved["pseudo labels: ignored"] == {"paper": 0.125, "no POM": 0.1}
    assert saved["pseudo labels without POM (ablation)"] == {"paper": 0.75, "no POM": None}


def test_a_folder_without_results_and_bad_names_are_named(tmp_path, capsys):
    write_run(tmp_path / "a", {"cam": {"miou": 0.5}})
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        compare_runs.main([str(tmp_path / "a"), str(tmp_path / "empty")])
    assert f"{tmp_path / 'empty'} holds no results.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare_runs.main([str(tmp_path / "a"), str(tmp_path / "a")])
    assert "a work dir is given twice" in capsys.readouterr().err
    write_run(tmp_path / "b", {"cam": {"miou": 0.6}, "settings": SETTINGS})
    with pytest.raises(SystemExit):
        compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b"), "--names", "x"])
    assert "--names gives 1 names for 2 work dirs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b"), "--names", "x,"])
    assert "the columns need distinct names" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the table over a run's own results.json
        compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b"), "--json", str(tmp_path / "b" / "t.json")])
    assert "would write into a run's work dir" in capsys.readouterr().err
    table = compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b"), "--names", "old,new"])
    assert table.endswith("Settings against new:\n\n- old: settings not recorded (a run made before "
                          "results.json kept them)\n")  # the run that has them is the reference, not blamed
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "results.json").write_text("[1, 2]")
    with pytest.raises(SystemExit):
        compare_runs.main([str(tmp_path / "a"), str(tmp_path / "c")])
    assert "results.json is not a pipeline's results.json (not a mapping)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare_runs.main([str(tmp_path / "a"), str(tmp_path / "c" / "results.json")])
    assert "results.json is a file: give the work dir that holds it" in capsys.readouterr().err


def test_split_names_runs_without_pom_and_notes_are_shown(tmp_path):
    write_run(tmp_path / "pom", {"pseudo_label": {"miou": 0.8, "ignored_fraction": 0.1},
                                 "splits": {"train": "trainval", "val": "test"}, "settings": SETTINGS})
    write_run(tmp_path / "no_pom", {"pseudo_label": {"miou": 0.7, "ignored_fraction": 0.1}, "pom": False,
                                    "splits": {"train": "trainval", "val": "test"},
                                    "notes": {"pseudo_label": "scored on the 3 of 5 trainval images that have a "
                                                              "ground-truth mask"},
                                    "settings": {**SETTINGS, "pseudo_label_arg": ["--no-pom"]}})
    lines = compare_runs.main([str(tmp_path / "pom"), str(tmp_path / "no_pom")]).splitlines()
    assert lines[2] == "| stage 3 with POM | yes | no |"
    assert lines[3] == "| pseudo labels (stage 3, trainval, non-ignored pixels) | 80.0 | 70.0 |"  # the runs' split
    assert "- no_pom, pseudo_label: scored on the 3 of 5 trainval images that have a ground-truth mask" in lines
    (tmp_path / "no_pom" / "results.json").write_text(json.dumps({"pseudo_label": {"miou": 0.7}}))
    lines = compare_runs.main([str(tmp_path / "pom"), str(tmp_path / "no_pom")]).splitlines()
    assert lines[2] == "| pseudo labels (stage 3, train split, non-ignored pixels) | 80.0 | 70.0 |"
    assert "- pom: train trainval, val test" in lines and "- no_pom: train train_aug, val val" in lines



def test_an_unfinished_run_and_stages_made_under_other_settings_are_noted(tmp_path):
    write_run(tmp_path / "a", {"seg_round1": {"miou": 0.6}, "settings": SETTINGS})
    write_run(tmp_path / "b", {"seg_round1": {"miou": 0.5}, "settings": {**SETTINGS, "seed": 7},
                               "stages_not_done": ["seg1_crf", "report"],
                               "stages_with_other_settings": {"cam_train": ["cls_arg: [] -> ['--seed=1']"]}})
    lines = compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b")]).splitlines()
    assert "- b: not done yet: seg1_crf, report" in lines
    assert "- b: cam_train made under other settings (cls_arg: [] -> ['--seed=1'])" in lines


@pytest.mark.parametrize("results, message", [
    ({"cam": {"miou": 0.5}, "notes": ["x"]}, "notes is not a mapping"),
    ({"cam": {"miou": 0.5}, "settings": "demo"}, "settings is not a mapping"),
    ({"cam": {"miou": 0.5}, "stages_not_done": "report"}, "stages_not_done is not a list"),
    ({}, "holds none of a pipeline's scores or settings"),
])
def test_a_results_json_of_another_shape_is_named(tmp_path, capsys, results, message):
    write_run(tmp_path / "a", {"cam": {"miou": 0.5}, "settings": SETTINGS})
    write_run(tmp_path / "b", results)
    with pytest.raises(SystemExit):
        compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
