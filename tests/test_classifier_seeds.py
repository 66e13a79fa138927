"""benchmarks/classifier_seeds.py: stage 1's loss read from its log, one run per (rate, seed), the tables."""

from __future__ import annotations

import json

from benchmarks import classifier_seeds as bench
from runner.context import CLASSIFIER_EXP, RunContext
from runner.presets import get_preset


def test_epoch_losses_later_lines_win(tmp_path):
    """After a resume an epoch is logged again; its last line counts (the real log: test_pipeline.py)."""
    log_path = tmp_path / "train.log"
    log_path.write_text("".join(f"12:00:00 INFO classification.training: epoch {e}: mean loss {v:.4f}, lr 7.00e-04\n"
                                for e, v in ((0, 0.7197), (1, 0.4186), (2, 0.2478), (1, 0.41), (2, 0.4473))))
    assert bench.epoch_losses(log_path) == [0.7197, 0.41, 0.4473]


def test_largest_rise():
    assert bench.largest_rise([0.72, 0.42, 0.25, 0.37, 0.45, 0.30]) == 0.37 - 0.25
    assert bench.largest_rise([0.9, 0.5, 0.2]) == 0.0
    assert bench.largest_rise([0.3]) == 0.0


def test_preset_lr_is_the_preset_flag_or_the_trainer_default():
    assert bench.preset_lr("demo") == 0.0007
    assert bench.preset_lr("tiny") == 0.001  # no --lr: the paper's default


def fake_results(cam: float, oacam: float | None) -> dict:
    results = {"cam": {"miou": cam, "class_iou": {"background": 0.9, "a": 0.6, "b": 0.1, "c": None}}}
    if oacam is not None:
        results["oacam"] = {"miou": oacam}
    return results


def test_run_one_runs_the_pipeline_with_rate_and_seed_then_reads(tmp_path, monkeypatch):
    standin = tmp_path / "standin" / "pretrained"
    standin.mkdir(parents=True)
    (standin / "vgg16_standin.pth").write_bytes(b"weights")
    calls = []

    def fake_pipeline(data, work, preset, extra, log):
        calls.append((work, preset, extra))
        assert (work / "pretrained" / "vgg16_standin.pth").read_bytes() == b"weights"
        ctx = RunContext(data, work, get_preset(preset))
        logs = ctx.runs_dir / CLASSIFIER_EXP / "logs"
        logs.mkdir(parents=True)
        (logs / "train.log").write_text("x INFO epoch 0: mean loss 0.5000, lr 1e-3\n"
                                        "x INFO epoch 1: mean loss 0.6500, lr 1e-3\n"
                                        "x INFO epoch 2: mean loss 0.1000, lr 1e-4\n")
        ctx.results_path.write_text(json.dumps(fake_results(0.5, 0.45)))

    monkeypatch.setattr(bench, "pipeline", fake_pipeline)
    row = bench.run_one(tmp_path / "data", tmp_path, "demo", 0.0005, 3, "oacam_export", standin, redo=False)
    work = tmp_path / "lr0.0005_seed3"
    assert calls == [(work, "demo", ["--to", "oacam_export", "--cls-arg=--lr=0.0005", "--cls-arg=--seed=3"])]
    assert row["cam"] == 50.0 and row["oacam"] == 45.0
    assert (row["weakest_class"], round(row["weakest_iou"], 6)) == ("b", 10.0)
    assert row["last_loss"] == 0.1 and round(row["largest_rise"], 6) == 0.15
    assert bench.format_row(row) == "| 0.0005 | 3 | 50.0 | 45.0 | -5.0 | b 10.0 | 0.100 | +0.150 |"

    assert bench.run_one(tmp_path / "data", tmp_path, "demo", 0.0005, 3, "oacam_export", standin, False) == row
    assert len(calls) == 1  # read, not run again
    bench.run_one(tmp_path / "data", tmp_path, "demo", 0.0005, 3, "oacam_export", standin, redo=True)
    assert len(calls) == 2
    bench.run_one(tmp_path / "data", tmp_path, "demo", 0.0005, 3, "oacam_export", standin, redo=True,
                  cls_args=["--warmup-steps=0"])
    assert calls[-1][2] == ["--to", "oacam_export", "--cls-arg=--lr=0.0005", "--cls-arg=--seed=3",
                            "--cls-arg=--warmup-steps=0"]


def test_summary_rows_per_rate():
    rows = [{"lr": 7e-4, "cam": 41.4, "oacam": 48.4}, {"lr": 7e-4, "cam": 66.2, "oacam": 60.0},
            {"lr": 5e-4, "cam": 58.3}, {"lr": 5e-4, "cam": 66.7}]
    assert bench.summary_rows(rows) == ["| 0.0007 | 2 | 53.8 | 41.4 | 1 of 2 |", "| 0.0005 | 2 | 62.5 | 58.3 | - |"]
