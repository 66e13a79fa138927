"""Which folder each label stage reads (docs/method.md, stages 3 and 6): the OA-CAMs of the IAM run (exp2)
and the CAMs of the classifier run (exp1) for stage 3, the POM pseudo labels for stage 6; the pipeline's
argv and gen_label.py's own defaults, read back with the stage scripts' parsers."""

from __future__ import annotations

from pathlib import Path

import pytest

from classification import gen_label, gen_masked_label, train, train_iam
from runner import stages
from runner.context import RunContext
from runner.presets import PRESETS
from runner.stage_argv import cam_train_argv, gen_label_argv, iam_train_argv, masked_label_argv


class _Called(Exception):
    pass


def _ctx(tmp_path) -> RunContext:
    return RunContext(tmp_path, tmp_path / "work", PRESETS["demo"], device="cpu")


def test_stage3_takes_oacams_from_the_iam_run_and_cams_from_the_classifier_run(tmp_path):
    ctx = _ctx(tmp_path)
    runs = tmp_path / "work" / "classification" / "runs"
    args = gen_label.build_parser().parse_args(gen_label_argv(ctx, ctx.pseudo_dir))
    assert args.oacam_dir == runs / "exp2" / "attention"
    assert args.cam_dir == runs / "exp1" / "attention"
    # exp2 is the run the pipeline trains as the IAM (on exp1's accumulated maps), exp1 the OAA classifier
    iam = train_iam.build_parser().parse_args(iam_train_argv(ctx))
    cam = train.build_parser().parse_args(cam_train_argv(ctx))
    assert (iam.exp, iam.accu_exp, cam.exp) == ("exp2", "exp1", "exp1")


def test_gen_label_defaults_read_oacams_from_exp2_and_cams_from_exp1():
    args = gen_label.build_parser().parse_args([])
    assert args.oacam_dir == Path("runs/exp2/attention")  # written by test_iam.sh (stage 2 export)
    assert args.cam_dir == Path("runs/exp1/attention")  # written by test.sh (stage 1b)


def test_stage6_reads_the_labels_stage3_made_with_pom(tmp_path, monkeypatch):
    ctx = _ctx(tmp_path)
    label_runs = []

    def fake_gen_label(argv):
        label_runs.append(gen_label.build_parser().parse_args(argv))
        return 0

    def fake_masked_label(argv):
        label_runs.append(gen_masked_label.build_parser().parse_args(argv))
        raise _Called

    monkeypatch.setattr(gen_label, "main", fake_gen_label)
    monkeypatch.setattr(gen_masked_label, "main", fake_masked_label)
    monkeypatch.setattr(stages, "score_train_output", lambda ctx, key, score: {})
    stages.pseudo_label(ctx)
    with pytest.raises(_Called):
        stages.masked_label(ctx)
    with_pom, without_pom, masked = label_runs
    assert (with_pom.pom, with_pom.out_dir) == (True, tmp_path / "work" / "pseudo_labels")
    assert (without_pom.pom, without_pom.out_dir) == (False, tmp_path / "work" / "pseudo_labels_no_pom")
    assert masked.pseudo_dir == tmp_path / "work" / "pseudo_labels"
    assert gen_masked_label.build_parser().parse_args(masked_label_argv(ctx)).pseudo_dir == ctx.pseudo_dir
