"""Exact resume: a training run interrupted mid-epoch and resumed ends bit-identical to an uninterrupted one.

Classification (with attention accumulation) and DeepLab, tiny sizes, CPU; the
recent-checkpoint cadence and the choice of the checkpoint to resume from; the
DeepLab batch stream keeping the last partial batch; an export resumed after
an interruption writes the same bytes. The two-process DDP versions are in
tests/test_ddp_training.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from classification import test as cam_export
from classification import train as cls_train
from classification import training
from nsrom import distributed
from nsrom.classes import IGNORE_INDEX
from nsrom.images import read_grey
from nsrom.training_state import CheckpointCadence, capture_rng, most_advanced, restore_rng, save_state
from segmentation import main as seg_main
from segmentation import trainaug_pred
from segmentation.libs import train as seg_train
from segmentation.libs.train import BatchStream, latest_checkpoint
from segmentation.libs.utils.config import CONFIG_DIR, load_config
from segmentation.libs.utils.paths import RunPaths

pytestmark = pytest.mark.usefixtures("single_thread")


class Interrupted(Exception):
    """Stands for a crash in the middle of a step (click turns KeyboardInterrupt into an exit)."""


def crash_on_call(monkeypatch, module, number: int) -> None:
    """Make ``module.train_step`` raise on its ``number``-th call (the state on disk is the crash's)."""
    real, calls = module.train_step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "train_step", step)


def count_calls(monkeypatch, module) -> list[int]:
    """Count the calls of ``module.train_step`` (the real one runs): what a resumed run still trains."""
    real, calls = module.train_step, []

    def step(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "train_step", step)
    return calls


def cls_args(layout, runs: Path, *extra: str) -> list[str]:
    return ["--data-root", str(layout.root), "--runs-dir", str(runs), "--input-size", "32", "--num-workers", "0",
            "--device", "cpu", "--epochs", "3", "--batch-size", "3", "--width-div", "16", "--no-pretrained",
            "--seed", "0", "--checkpoint-every-steps", "2", "--no-check-data",
            "--warmup-steps", "7", *extra]  # the crash and the resume fall inside the warm-up


def test_classifier_killed_mid_epoch_resumes_to_identical_weights_and_maps(synthetic_root, tmp_path, monkeypatch):
    """8 images, batch 3 (3 steps per epoch, the last one partial), 3 epochs: crash during step 6."""
    cls_train.main(cls_args(synthetic_root, tmp_path / "a"))
    crash_on_call(monkeypatch, training, 6)
    with pytest.raises(Interrupted):
        cls_train.main(cls_args(synthetic_root, tmp_path / "b"))
    monkeypatch.undo()
    model_dir = tmp_path / "b" / "exp1" / "model"
    recent = torch.load(model_dir / "checkpoint_recent.pth", weights_only=True)
    assert recent["position"]["epoch"] == 1 and recent["position"]["batch"] == 1 and recent["step"] == 4
    assert len(recent["records"]["ids"]) > 0  # epoch 1 accumulates: its first batch's records are saved
    steps = count_calls(monkeypatch, training)
    cls_train.main(cls_args(synthetic_root, tmp_path / "b", "--resume"))
    monkeypatch.undo()
    assert len(steps) == 9 - 4  # from the recent checkpoint's step on: not from an epoch's start, nor from 0
    assert not (model_dir / "checkpoint_recent.pth").exists()
    final_a = torch.load(tmp_path / "a" / "exp1" / "model" / "checkpoint_final.pth", weights_only=True)
    final_b = torch.load(model_dir / "checkpoint_final.pth", weights_only=True)
    for key, value in final_a["model"].items():
        assert torch.equal(value, final_b["model"][key]), key
    accu_a, accu_b = tmp_path / "a" / "exp1" / "accu_att", tmp_path / "b" / "exp1" / "accu_att"
    names = sorted(p.name for p in accu_a.iterdir())
    assert names and names == sorted(p.name for p in accu_b.iterdir())
    for name in names:
        assert np.array_equal(read_grey(accu_a / name), read_grey(accu_b / name)), name

    # export resumed after an interruption: the batches are the same, so are the bytes
    export = ["--data-root", str(synthetic_root.root), "--runs-dir", str(tmp_path / "a"), "--input-size", "32",
              "--num-workers", "0", "--device", "cpu", "--batch-size", "3", "--no-check-data"]
    out = cam_export.main(export)
    before = {p.name: p.read_bytes() for p in out.glob("*_*.png")}
    victim = sorted(before)[len(before) // 2]
    (out / victim).unlink()
    cam_export.main(export)
    assert {p.name: p.read_bytes() for p in out.glob("*_*.png")} == before


def seg_argv(layout, out: Path, *extra: str) -> list[str]:
    sets = [f"DATASET.ROOT={layout.root}", f"EXP.OUTPUT_DIR={out}", f"DATASET.LABEL_DIR={layout.mask_dir}",
            "IMAGE.SIZE.TRAIN=25", "SOLVER.BATCH_SIZE.TRAIN=3", "SOLVER.ITER_SIZE=2", "SOLVER.ITER_MAX=5",
            "SOLVER.ITER_SAVE=100", "SOLVER.ITER_SAVE_RECENT=2", "SOLVER.ITER_TB=1", "MODEL.WIDTH_DIV=16"]
    argv = ["train", "-c", str(CONFIG_DIR / "demo.yaml"), "--cpu", "--fully-supervised", "--seed", "0",
            "--no-check-data", *extra]
    for s in sets:
        argv += ["--set", s]
    return argv


def test_deeplab_killed_mid_pass_resumes_to_identical_weights(synthetic_root, tmp_path, monkeypatch, capsys):
    """8 images, batch 3 (passes of 3, 3, 2), 2 batches per step, 5 steps: crash during step 4."""
    final_a = seg_main.main(seg_argv(synthetic_root, tmp_path / "a"))
    crash_on_call(monkeypatch, seg_train, 4)
    with pytest.raises(Interrupted):
        seg_main.main(seg_argv(synthetic_root, tmp_path / "b"))
    monkeypatch.undo()
    paths = RunPaths.from_config(load_config(CONFIG_DIR / "demo.yaml", [f"EXP.OUTPUT_DIR={tmp_path / 'b'}"]))
    assert latest_checkpoint(paths) == paths.recent_checkpoint
    recent = torch.load(paths.recent_checkpoint, weights_only=True)
    assert recent["step"] == 2 and recent["stream"] == {"epoch": 1, "batch": 1}  # 4 batches: 3 in pass 0, 1 in pass 1
    with pytest.raises(SystemExit):  # started again without --resume: refused, not silently restarted from 0
        seg_main.main(seg_argv(synthetic_root, tmp_path / "b"))
    assert f"checkpoints of an unfinished run in {paths.model_dir} (checkpoint_recent.pth); pass --resume to " \
           "continue it, or --overwrite to start over" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # fewer steps than the checkpoint has trained
        seg_main.main([*seg_argv(synthetic_root, tmp_path / "b", "--resume"), "--set", "SOLVER.ITER_MAX=1"])
    assert "is at step 2, past SOLVER.ITER_MAX 1" in capsys.readouterr().err
    # a resume with another schedule would not continue the interrupted run: refused, the checkpoint kept
    # (a setting of where or how often it saves may change)
    checked = []
    monkeypatch.setattr(seg_train, "check_split", lambda *args, **kwargs: checked.append(args))
    with pytest.raises(SystemExit):  # --check-data: refused before the data check, not minutes after it
        seg_main.main([*seg_argv(synthetic_root, tmp_path / "b", "--resume", "--set", "SOLVER.LR=0.01",
                                 "--set", "SOLVER.ITER_SAVE=50"), "--check-data"])
    monkeypatch.undo()
    assert checked == []
    err = capsys.readouterr().err
    assert "--resume: " in err and "was trained with other settings (SOLVER.LR: 0.00025 -> 0.01)" in err
    assert f"-c {paths.model_dir / 'config.yaml'}" in err and paths.recent_checkpoint.is_file()
    steps = count_calls(monkeypatch, seg_train)
    final_b = seg_main.main(seg_argv(synthetic_root, tmp_path / "b", "--resume", "--set", "SOLVER.ITER_SAVE=50"))
    monkeypatch.undo()
    assert len(steps) == 5 - 2  # from the recent checkpoint's step 2 to step 5
    assert not paths.recent_checkpoint.exists()
    a, b = torch.load(final_a, weights_only=True), torch.load(final_b, weights_only=True)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    momentum_a = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    momentum_b = [s["momentum_buffer"] for s in b["optimizer"]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(momentum_a, momentum_b, strict=True))
    assert a["stream"] == b["stream"] == {"epoch": 3, "batch": 1}  # 10 batches of passes of 3

    # stage-5 CRF labels resumed after an interruption (torch CRF, batches of 3): a batch with a missing
    # label is computed whole, so the resumed labels are those of the uninterrupted run, to the byte
    sets = [a for arg in seg_argv(synthetic_root, tmp_path / "a")[1:] if arg.startswith(("DATASET", "EXP", "MODEL"))
            for a in ("--set", arg)]
    crf_sets = [*sets, "--set", "CRF.BACKEND=torch", "--set", "CRF.BATCH_SIZE=3", "--set", "CRF.ITER_MAX=1"]
    trainaug_pred.main(["test", "-c", str(CONFIG_DIR / "demo.yaml"), *sets, "--cpu", "--no-check-data"])
    crf = ["crf", "-c", str(CONFIG_DIR / "demo.yaml"), *crf_sets, "--cpu", "-j", "1", "--no-check-data"]
    trainaug_pred.main(crf)
    label_dir = RunPaths.from_config(load_config(CONFIG_DIR / "demo.yaml", sets[1::2])).label_crf_dir("train_aug")
    before = {p.name: p.read_bytes() for p in label_dir.glob("*.png")}
    assert len(before) == 8
    (label_dir / sorted(before)[4]).unlink()  # the middle of the second batch
    trainaug_pred.main(crf)
    assert {p.name: p.read_bytes() for p in label_dir.glob("*.png")} == before


class Indices(Dataset):
    """Item i is ``(id, image, label)`` with the label filled with i: the batches show which items they hold."""

    def __init__(self, n: int):
        self.n, self.epoch, self.seed = n, 0, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        return str(index), torch.zeros(1), torch.full((1,), index, dtype=torch.int64)


def stream_batches(dataset: Dataset, size: int, count: int, **position) -> list[list[int]]:
    stream = BatchStream(dataset, size, 0, torch.device("cpu"), seed=3, ignore_label=IGNORE_INDEX, **position)
    return [next(stream)[1].flatten().tolist() for _ in range(count)]


def test_stream_keeps_the_last_partial_batch_of_each_pass():
    """7 images, batch 5: 5, 2, 5, 2 images, each pass a permutation of all 7, reshuffled per pass."""
    batches = stream_batches(Indices(7), 5, 4)
    assert [len(b) for b in batches] == [5, 2, 5, 2]
    assert sorted(batches[0] + batches[1]) == sorted(batches[2] + batches[3]) == list(range(7))
    assert batches[0] + batches[1] != batches[2] + batches[3]
    # a stream built at a saved position continues with the batches the first one would have given
    assert stream_batches(Indices(7), 5, 3, epoch=0, batch=1) == batches[1:]


def test_ddp_partial_batch_is_padded_with_ignored_repeats(monkeypatch):
    """7 images over 2 ranks, global batch 4: each global batch holds the one-process batch's images.

    The sampler pads the last one with a repeat so that each rank has 2; the
    repeat's label is all ignore, so it adds no loss and no labelled pixel.
    """
    single = stream_batches(Indices(7), 4, 2)
    ranks = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "current", lambda rank=rank: distributed.DistInfo(rank, 2))
        ranks.append(stream_batches(Indices(7), 2, 2))
    for k in range(2):
        merged = ranks[0][k] + ranks[1][k]
        assert sorted(v for v in merged if v != IGNORE_INDEX) == sorted(single[k])
    assert [len(single[0]), len(single[1])] == [4, 3] and ranks[1][1].count(IGNORE_INDEX) == 1


def test_recent_checkpoint_cadence_by_steps_and_minutes():
    now = [0.0]
    by_steps = CheckpointCadence(every_steps=3, clock=lambda: now[0])
    assert [s for s in range(1, 10) if by_steps.due(s)] == [3, 6, 9]
    timed = CheckpointCadence(every_minutes=2, clock=lambda: now[0])
    now[0] = 119.0
    assert not timed.due(1)
    now[0] = 120.0
    assert timed.due(2)
    timed.saved()
    now[0] = 200.0
    assert not timed.due(3)  # counted from the last save
    assert not CheckpointCadence().due(100)  # both off
    with pytest.raises(ValueError):
        CheckpointCadence(every_steps=-1)


def test_resume_picks_the_most_advanced_checkpoint(tmp_path):
    for name, step in (("checkpoint_100.pth", 100), ("checkpoint_200.pth", 200), ("checkpoint_recent.pth", 230)):
        save_state(tmp_path / name, {"step": step})
    paths = RunPaths(tmp_path.parent, "x", "m", "s")
    shutil.move(str(tmp_path), str(paths.model_dir))
    assert latest_checkpoint(paths) == paths.recent_checkpoint
    save_state(paths.checkpoint(300), {"step": 300})
    assert latest_checkpoint(paths) == paths.checkpoint(300)
    save_state(paths.recent_checkpoint, {"step": 300})  # a tie: the numbered one
    assert latest_checkpoint(paths) == paths.checkpoint(300)
    assert most_advanced([paths.model_dir / "nope.pth"]) is None


def test_random_states_round_trip():
    state = capture_rng()
    drawn = (torch.rand(3), np.random.rand(3), __import__("random").random())
    restore_rng(state)
    again = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(drawn[0], again[0]) and np.array_equal(drawn[1], again[1]) and drawn[2] == again[2]


def test_resume_settings_compare_what_both_sides_set():
    """A key null or absent on either side (an older checkpoint, a class count resolved later) is not
    compared; a value that differs is, paths resolved."""
    from segmentation.libs.train import changed_training_settings

    before = {"SOLVER": {"LR": 0.00025, "ITER_SIZE": 2}, "DATASET": {"N_CLASSES": None, "ROOT": "data/x"}}
    now = {"SOLVER": {"LR": 2.5e-4, "ITER_SIZE": 2, "AMP": "off"}, "DATASET": {"N_CLASSES": 21, "ROOT": "./data/x"}}
    assert changed_training_settings(before, now) == []
    assert changed_training_settings(None, now) == []
    now["SOLVER"]["ITER_SIZE"] = 1
    now["DATASET"]["ROOT"] = "data/y"
    root = lambda p: repr(str(Path(p).resolve()))  # noqa: E731
    assert changed_training_settings(before, now) == [f"DATASET.ROOT: {root('data/x')} -> {root('data/y')}",
                                                      "SOLVER.ITER_SIZE: 2 -> 1"]


def test_a_resume_with_another_process_count_gives_every_rank_a_loss_window_of_one_length():
    from segmentation.libs.train import loss_window

    saved = [[0.5, 0.4, 0.3], [0.6, 0.5, 0.4]]  # two ranks' windows
    assert [loss_window(saved, r, 2) for r in (0, 1)] == saved  # the same count: each its own
    assert [loss_window(saved, r, 4) for r in range(4)] == [saved[0]] * 4  # more ranks: rank 0's for all
    assert loss_window(saved[:1], 0, 1) == saved[0] and loss_window([], 2, 4) == []


def test_a_finished_deeplab_run_is_not_taken_for_a_run_with_other_settings(synthetic_root, tmp_path, capsys):
    """train into a folder whose run has finished: the same settings skip it, other ones (another rate, label
    folder or length) are refused instead of reporting the old model as this run's."""
    final = seg_main.main(seg_argv(synthetic_root, tmp_path))
    before = final.read_bytes()
    assert seg_main.main(seg_argv(synthetic_root, tmp_path)) == final
    for change, named in (("SOLVER.LR=0.01", "SOLVER.LR: 0.00025 -> 0.01"),
                          ("SOLVER.ITER_MAX=3", "SOLVER.ITER_MAX: 5 -> 3")):
        with pytest.raises(SystemExit):
            seg_main.main([*seg_argv(synthetic_root, tmp_path), "--set", change])
        err = capsys.readouterr().err
        assert f"{final} was trained with other settings ({named}); --overwrite trains again" in err
    assert final.read_bytes() == before
