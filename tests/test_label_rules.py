"""The stage-3 / stage-6 settings (docs/method.md, stages 3 and 6): each threshold and the
POM switch changes a hand-built label in a known way; flags, presets and the pipeline pass them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from classification import gen_label, gen_masked_label
from classification.labeling.nsrm import NsrmRules, make_masked_label
from classification.labeling.pom import PomRules, make_pseudo_label
from classification.labeling.settings import add_rule_args, rules_from_args, rules_to_argv
from nsrom.errors import ConfigError
from nsrom.images import read_label, write_grey, write_label
from runner import stages
from runner.context import RunContext
from runner.presets import PRESETS

IGN = 255


def row(*values) -> np.ndarray:
    return np.array([values], dtype=np.float32)


def label3(sal, oacams, cams=None, classes=(0,), **rules) -> list[int]:
    """Stage-3 label of a one-row image as a list, with ``rules`` changed from the paper's."""
    out = make_pseudo_label(row(*sal), classes, {c: row(*a) for c, a in oacams.items()},
                            {c: row(*m) for c, m in (cams or {}).items()}, num_classes=2,
                            rules=PomRules(**rules))
    return out[0].tolist()


def test_object_threshold_sets_where_t_marks_objects():
    # pixel 1: background wins (score 1 > 0.85) but A = 0.85 > 0.8 puts T = 255 there -> ignore
    sal, oacam = (255, 0, 0), {0: (1.0, 0.85, 0.0)}
    assert label3(sal, oacam) == [1, IGN, 0]
    assert label3(sal, oacam, object_threshold=0.9) == [1, 0, 0]


def test_low_score_threshold_cuts_weak_foreground():
    # pixel 1: salient (background score 0), A = 0.25 is cut by 0.3 -> all zero -> background, T = 255 -> ignore
    sal, oacam = (255, 255, 0), {0: (1.0, 0.25, 0.0)}
    assert label3(sal, oacam) == [1, IGN, 0]
    assert label3(sal, oacam, low_score_threshold=0.2) == [1, 1, 0]


def test_conflict_threshold_ignores_two_confident_classes():
    # pixel 0: classes 0 and 1 both above 0.9 -> ignore; with 0.94 only class 0 is above it
    sal, oacams = (255, 255, 0), {0: (0.95, 1.0, 0.0), 1: (0.93, 0.0, 1.0)}
    assert label3(sal, oacams, classes=(0, 1)) == [IGN, 1, IGN]  # pixel 2: bg 1 and class 1 at 1.0
    assert label3(sal, oacams, classes=(0, 1), conflict_threshold=0.94) == [1, 1, IGN]


def test_uncertain_background_threshold():
    sal, oacam = (255, 40, 31), {0: (1.0, 0.0, 0.0)}
    assert label3(sal, oacam) == [1, IGN, 0]  # T = S = 40 >= 32 -> ignore; 31 stays background
    assert label3(sal, oacam, uncertain_bg_threshold=41) == [1, 0, 0]
    assert label3(sal, oacam, uncertain_bg_threshold=31) == [1, IGN, IGN]


# pixel 0 is class 0 (no CAM above 0.3 for it); class 1 has no object pixel, so its POM threshold
# comes from branch 2: values > 0.3 are 0.4 0.6 0.8 1.0, median 0.7, values > 0.7 have median 0.9
POM_CASE = dict(sal=(255, 0, 0, 0, 0, 0), oacams={0: (1, 0, 0, 0, 0, 0), 1: (0,) * 6},
                cams={0: (0,) * 6, 1: (0, 0.2, 0.4, 0.6, 0.8, 1.0)}, classes=(0, 1))


def test_pom_switch_turns_potential_object_mining_off():
    assert label3(**POM_CASE) == [1, 0, 0, 0, 0, IGN]
    assert label3(**POM_CASE, pom=False) == [1, 0, 0, 0, 0, 0]


def test_pom_cam_threshold_is_separate_from_the_low_score_cut():
    # 0.5: values > 0.5 are 0.6 0.8 1.0, median 0.8, values > 0.8: {1.0} -> thr 1 -> nothing mined
    assert label3(**POM_CASE, pom_cam_threshold=0.5) == [1, 0, 0, 0, 0, 0]
    # 0.1: values > 0.1 have median 0.6, values > 0.6 (0.8, 1.0) median 0.9: the same pixel is mined
    assert label3(**POM_CASE, pom_cam_threshold=0.1) == [1, 0, 0, 0, 0, IGN]
    # the step-2 cut does not move the POM threshold
    assert label3(**POM_CASE, low_score_threshold=0.5) == [1, 0, 0, 0, 0, IGN]


def test_min_foreground_share():
    sal, oacam = (255, 0, 0, 0), {0: (1.0, 0.0, 0.0, 0.0)}  # 25% foreground
    assert label3(sal, oacam) == [1, 0, 0, 0]
    assert label3(sal, oacam, min_foreground=0.25) == [1, 0, 0, 0]  # strict: exactly 25% is kept
    assert label3(sal, oacam, min_foreground=0.3) == [IGN] * 4


PRED = np.array([[0, 0, 0, 0, 0, 1, 0, 0, 0, 0]], dtype=np.uint8)


def test_dilation_sets_how_far_from_objects_labels_are_kept():
    zeros = np.zeros_like(PRED)
    np.testing.assert_array_equal(make_masked_label(PRED, zeros, zeros, 2), PRED)  # 30x30 covers the row
    # a 3x3 kernel keeps the object pixel and one pixel on each side
    out = make_masked_label(PRED, zeros, zeros, 2, NsrmRules(dilation=3))
    assert out[0].tolist() == [IGN, IGN, IGN, IGN, 0, 1, 0, IGN, IGN, IGN]
    out = make_masked_label(PRED, zeros, zeros, 2, NsrmRules(dilation=1))
    assert out[0].tolist() == [IGN] * 5 + [1] + [IGN] * 4


def test_stage6_min_foreground_share():
    zeros = np.zeros_like(PRED)  # 10% foreground
    np.testing.assert_array_equal(make_masked_label(PRED, None, None, 1, NsrmRules(min_foreground=0.1)), PRED)
    assert (make_masked_label(PRED, None, None, 1, NsrmRules(min_foreground=0.11)) == IGN).all()
    assert (make_masked_label(PRED, zeros, zeros, 2, NsrmRules(min_foreground=0.2)) == IGN).all()


@pytest.mark.parametrize("rules, flag", [
    (dict(conflict_threshold=1.5), "--conflict-threshold"), (dict(min_foreground=-0.1), "--min-foreground"),
    (dict(uncertain_bg_threshold=300), "--uncertain-bg-threshold"),
])
def test_out_of_range_setting_names_its_flag(rules, flag):
    with pytest.raises(ConfigError, match=flag):
        PomRules(**rules)
    with pytest.raises(ConfigError, match="--dilation"):
        NsrmRules(dilation=0)


# ---------------------------------------------------------------- flags and the pipeline
def test_rules_round_trip_through_their_flags():
    for module, rules in ((gen_label, PomRules(pom=False, object_threshold=0.7, uncertain_bg_threshold=20)),
                          (gen_masked_label, NsrmRules(dilation=9, min_foreground=0.05))):
        args = module.build_parser().parse_args(rules_to_argv(rules))
        assert rules_from_args(args, type(rules)) == rules
        assert rules_from_args(module.build_parser().parse_args([]), type(rules)) == type(rules)()


def test_a_rule_setting_with_choices_takes_only_those_and_an_unknown_type_is_named():
    """What docs/extending.md promises a new field: its flag, its choices; a type no flag can carry is refused."""
    import argparse
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class NewRules:
        statistic: str = dataclasses.field(default="median", metadata={"help": "h", "choices": ("median", "mean")})
        margin: float = 0.0

    parser = argparse.ArgumentParser(exit_on_error=False)
    add_rule_args(parser, NewRules, "new")
    assert rules_from_args(parser.parse_args(["--statistic", "mean", "--margin", "0.1"]), NewRules) == \
        NewRules("mean", 0.1)
    assert "{median,mean}" in parser.format_help()
    with pytest.raises(argparse.ArgumentError, match="invalid choice: 'max'"):
        parser.parse_args(["--statistic", "max"])

    @dataclasses.dataclass(frozen=True)
    class BadRules:
        margin: float | None = None

    with pytest.raises(TypeError, match=r"BadRules.margin is of type float \| None; a rule setting is a bool, int"):
        add_rule_args(argparse.ArgumentParser(), BadRules, "bad")


@pytest.fixture()
def pom_files(tmp_path):
    """POM_CASE as grey PNGs (0..255) of one image ``a`` with classes 0 and 1."""
    write_grey(tmp_path / "sal" / "a.png", row(*POM_CASE["sal"]).astype(np.uint8))
    for folder, maps in (("oacam", POM_CASE["oacams"]), ("cam", POM_CASE["cams"])):
        for c, values in maps.items():
            write_grey(tmp_path / folder / f"a_{c}.png", np.rint(row(*values) * 255).astype(np.uint8))
    (tmp_path / "list.txt").write_text("a 0 1\n")
    return tmp_path


def _gen_label(tmp, out, *extra) -> list[int]:
    argv = ["--list", str(tmp / "list.txt"), "--num-classes", "2", "--sal-dir", str(tmp / "sal"),
            "--oacam-dir", str(tmp / "oacam"), "--cam-dir", str(tmp / "cam"), "--out-dir", str(tmp / out),
            "--workers", "1", *extra]
    assert gen_label.main(argv) == 0
    return read_label(tmp / out / "a.png")[0].tolist()


def test_gen_label_flags_change_the_written_label(pom_files, capsys):
    assert _gen_label(pom_files, "paper") == [1, 0, 0, 0, 0, IGN]
    assert _gen_label(pom_files, "no_pom", "--no-pom", "--cam-dir", str(pom_files / "nowhere")) == [1, 0, 0, 0, 0, 0]
    assert _gen_label(pom_files, "cam05", "--pom-cam-threshold", "0.5") == [1, 0, 0, 0, 0, 0]
    assert _gen_label(pom_files, "fg", "--min-foreground", "0.2") == [IGN] * 6
    with pytest.raises(SystemExit) as exit_info:
        _gen_label(pom_files, "bad", "--low-score-threshold", "2")
    assert exit_info.value.code == 2
    assert "low_score_threshold (--low-score-threshold) must be between 0 and 1" in capsys.readouterr().err


def test_gen_masked_label_dilation_flag(tmp_path):
    write_label(tmp_path / "pred" / "a.png", PRED)
    write_label(tmp_path / "pseudo" / "a.png", np.zeros_like(PRED))
    write_grey(tmp_path / "sal" / "a.png", np.zeros_like(PRED))
    (tmp_path / "list.txt").write_text("a 0 1\n")
    argv = ["--list", str(tmp_path / "list.txt"), "--num-classes", "2", "--pred-dir", str(tmp_path / "pred"),
            "--pseudo-dir", str(tmp_path / "pseudo"), "--sal-dir", str(tmp_path / "sal"),
            "--out-dir", str(tmp_path / "out"), "--workers", "1", "--dilation", "3"]
    assert gen_masked_label.main(argv) == 0
    assert read_label(tmp_path / "out" / "a.png")[0].tolist() == [IGN, IGN, IGN, IGN, 0, 1, 0, IGN, IGN, IGN]


class _Called(Exception):
    pass


@pytest.mark.parametrize("stage, module, field, extra_field", [
    (stages.pseudo_label, gen_label, "pom_rules", "pseudo_label_extra"),
    (stages.masked_label, gen_masked_label, "nsrm_rules", "masked_label_extra"),
])
def test_pipeline_passes_the_preset_rules_then_the_extra_flags(stage, module, field, extra_field, monkeypatch,
                                                               tmp_path):
    paper = getattr(PRESETS["voc12"], field)
    assert paper == type(paper)()
    # The README's account of the demo: the paper's rules but the stage-6 square, scaled to 160 px images.
    assert getattr(PRESETS["demo"], field) == (paper if field == "pom_rules" else NsrmRules(dilation=10))
    changed = PomRules(pom=False, conflict_threshold=0.95) if field == "pom_rules" else NsrmRules(dilation=5)
    extra = ["--min-foreground", "0.02"]
    seen = []

    def fake_main(argv):
        seen.append(rules_from_args(module.build_parser().parse_args(argv), type(paper)))
        raise _Called

    monkeypatch.setattr(module, "main", fake_main)
    preset = dataclasses.replace(PRESETS["demo"], **{field: changed})
    ctx = RunContext(tmp_path, tmp_path / "work", preset, **{extra_field: extra})
    with pytest.raises(_Called):
        stage(ctx)
    assert seen == [dataclasses.replace(changed, min_foreground=0.02)]


def test_cam_arg_reaches_stage_1_alone_after_the_flags_of_both_classifiers(monkeypatch, tmp_path):
    from classification import train, train_iam

    seen = {}

    def fake_run(name, module):
        def run(args):
            seen[name] = args
            raise _Called
        monkeypatch.setattr(module, "run", run)

    fake_run("cam", train)
    fake_run("iam", train_iam)
    ctx = RunContext(tmp_path, tmp_path / "work", PRESETS["demo"],
                     classifier_extra=["--warmup-steps=5"], cam_extra=["--accu-gate=0.2", "--warmup-steps=7"])
    for stage in (stages.cam_train, stages.iam_train):
        with pytest.raises(_Called):
            stage(ctx)
    assert seen["iam"].warmup_steps == 5  # --cls-arg: both classifiers, after the preset's 60
    assert seen["cam"].warmup_steps == 7  # --cam-arg: stage 1 alone, after --cls-arg
    assert seen["cam"].accu_gate == 0.2  # ... and after the preset's cam_args (0.99)


def test_pipeline_cli_takes_cam_args():
    from runner import cli

    args = cli.build_parser().parse_args(["--data-root", "d", "--work-dir", "w", "--cam-arg=--accu-start-epoch=4",
                                          "--cam-arg=--accu-gate=0.5"])
    assert args.cam_arg == ["--accu-start-epoch=4", "--accu-gate=0.5"]
