"""``torchrun --nproc_per_node 2 pipeline.py`` (gloo, the tiny preset) against one process.

Every stage runs under one process group: training, export, test and CRF on
both ranks, label generation and the report on rank 0 alone. What must equal
one process with the same global batch, and what legitimately differs:

* classification (stages 1-2): on gloo the GloRe unit's BatchNorm normalises
  over each process's half of the batch (no SyncBatchNorm on the CPU, see
  docs/speed.md), so the CAMs differ from a one-process run; checked here:
  every map and pseudo label is written, once, and scored;
* segmentation (stages 4-7), from the same pseudo labels and ``--seed``: the
  DeepLab-v2 weights equal one process's to float rounding, and so do the
  scores, masked labels and every results.json entry.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from nsrom import distributed
from nsrom.evaluation import evaluate_cams, evaluate_labels
from nsrom.files import read_json
from runner import run as runner, stages as stage_module
from runner.context import RunContext
from runner.results import RESULT_KEYS
from runner.run import run_pipeline
from runner.seg_rounds import seg_paths
from runner.stages import STAGE_NAMES
from runner.state import StageState

from launch import torchrun

DRIVER = Path(__file__).with_name("ddp_pipeline_driver.py")
SEG_KEYS = ["seg_round1", "seg_round1_crf", "masked_label", "seg_round2", "seg_round2_crf"]


def test_pipeline_under_torchrun_matches_one_process(synthetic_root, tmp_path, tiny_preset):
    ddp = tmp_path / "ddp"
    args = ["--data-root", str(synthetic_root.root), "--preset", "tiny", "--device", "cpu", "--seed", "0"]
    done = torchrun([str(DRIVER), *args, "--work-dir", str(ddp)])
    assert done.stdout.count("# NSROM pipeline results") == 1  # rank 0 prints the table
    results = read_json(ddp / "results.json")
    assert set(results) == {*RESULT_KEYS, "pseudo_label_no_pom", "pom", "missed_objects", "stage_seconds", "machine",
                            "stage1_recognition", "splits", "settings"}
    assert set(results["stage_seconds"]) == set(STAGE_NAMES)
    assert all(StageState(ddp).is_done(name) for name in STAGE_NAMES)
    # rank 0 ran stage 1's recognition check once and wrote the one report
    (attempt,) = results["stage1_recognition"]
    assert attempt == {**read_json(ddp / "classification" / "runs" / "exp1" / "recognition.json"), "kept": True}
    labels = synthetic_root.image_labels("train_aug")
    ctx = RunContext(synthetic_root.root, ddp, tiny_preset, device="cpu", seed=0)
    assert len(list(ctx.attention_dir("exp1").glob("*.png"))) == sum(map(len, labels.values()))
    assert len(list(ctx.attention_dir("exp2").glob("*.png"))) == sum(map(len, labels.values()))
    assert sorted(p.stem for p in ctx.pseudo_dir.glob("*.png")) == sorted(labels)
    assert (ddp / "figures" / "qualitative.png").is_file()

    # One process on the DDP run's pseudo labels: stages 4-7 again, from scratch.
    single = tmp_path / "single"
    shutil.copytree(ddp, single, symlinks=True)
    shutil.rmtree(single / "segmentation")
    shutil.rmtree(single / "masked_labels")
    one = run_pipeline(dataclasses.replace(ctx, work_dir=single), from_stage="seg1_train")
    # stages 1-3 ran under torchrun alone: their recorded scores are those of the files they wrote
    for key, score in (("cam", evaluate_cams(ctx.layout, "train_aug", ctx.attention_dir("exp1"))),
                       ("oacam", evaluate_cams(ctx.layout, "train_aug", ctx.attention_dir("exp2"))),
                       ("pseudo_label", evaluate_labels(ctx.layout, "train_aug", ctx.pseudo_dir))):
        assert results[key]["miou"] == pytest.approx(score["miou"], abs=1e-9), key
    for key in SEG_KEYS:
        assert one[key]["miou"] == pytest.approx(results[key]["miou"], abs=1e-6), key
        assert one[key]["class_iou"] == pytest.approx(results[key]["class_iou"], abs=1e-6), key
    for round_id in ("round1", "round2"):
        path = seg_paths(ctx, round_id).final_checkpoint
        ddp_state = torch.load(path, weights_only=True)["model"]
        one_state = torch.load(single / path.relative_to(ddp), weights_only=True)["model"]
        for key, value in one_state.items():
            torch.testing.assert_close(ddp_state[key], value, rtol=1e-4, atol=1e-6, msg=f"{round_id} {key}")


def fake_stages(calls: list[str]) -> list:
    return [dataclasses.replace(s, run=lambda ctx, n=s.name: calls.append(n)) for s in stage_module.STAGES]


@pytest.mark.parametrize("rank", [0, 1])
def test_rank_zero_alone_runs_cpu_stages_and_writes(synthetic_root, tmp_path, monkeypatch, rank, tiny_preset):
    """Rank 1 of 2 runs the parallel stages only and writes nothing; rank 0 runs all and writes the markers."""
    calls: list[str] = []
    monkeypatch.setattr(runner, "STAGES", fake_stages(calls))
    monkeypatch.setattr(distributed, "current", lambda: distributed.DistInfo(rank=rank, world_size=2))
    waits = []
    monkeypatch.setattr(distributed, "wait_for_all", lambda: waits.append(1))
    if rank == 1:  # rank 0's answers arrive instead of running fn: no stage done earlier, then no entries
        answers = iter([set(), *[{}] * len(STAGE_NAMES)])
        monkeypatch.setattr(distributed, "run_on_main", lambda fn: next(answers))
    else:
        monkeypatch.setattr(distributed, "run_on_main", lambda fn: fn())
    run_pipeline(RunContext(synthetic_root.root, tmp_path, tiny_preset, device="cpu"))
    parallel = [s.name for s in stage_module.STAGES if s.parallel]
    assert {"pseudo_label", "masked_label", "report"}.isdisjoint(parallel)
    assert "seg1_train" in parallel and "trainaug_pred" in parallel
    assert calls == (STAGE_NAMES if rank == 0 else parallel)
    assert len(waits) == len(STAGE_NAMES)  # every rank meets the others after every stage
    assert (tmp_path / "results.json").is_file() == (rank == 0)
    assert all(StageState(tmp_path).is_done(n) == (rank == 0) for n in STAGE_NAMES)
