"""Stages 1, 1b and 2 end to end on the synthetic data, through the same entry points as the real run.

Tiny settings only (64 px input, channels / 16, 2 epochs): 2 epochs so that
accumulation (from epoch 1) happens.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classification import test as cam_export
from classification import run_state, test_iam, train, train_iam, training
from classification.run_layout import CLASSIFICATION_DIR, run_dirs
from nsrom.images import read_grey, write_grey

BATCH = 4
TINY_TRAIN = ["--epochs", "2", "--batch-size", str(BATCH), "--width-div", "16", "--no-pretrained", "--seed", "0"]


def common(layout, runs: Path) -> list[str]:
    return ["--data-root", str(layout.root), "--runs-dir", str(runs), "--input-size", "64",
            "--num-workers", "0", "--device", "cpu"]


def expected_maps(layout) -> set[str]:
    return {f"{i}_{c}.png" for i, classes in layout.image_labels("train_aug").items() for c in classes}


def image_size(layout, image_id: str) -> tuple[int, int]:
    return np.asarray(Image.open(layout.image_path(image_id))).shape[:2]


@pytest.fixture(scope="module")
def runs(synthetic_root, tmp_path_factory) -> Path:
    """Run train -> test -> train_iam -> test_iam once for the tests below."""
    runs = tmp_path_factory.mktemp("cls_runs")
    args = common(synthetic_root, runs)
    assert train.main(args + TINY_TRAIN) == runs / "exp1" / "model" / "checkpoint_final.pth"
    cam_export.main(args)
    assert train_iam.main(args + TINY_TRAIN) == runs / "exp2" / "model" / "checkpoint_final.pth"
    test_iam.main(args)
    return runs


def test_stage1_accumulates_one_8bit_map_per_image_and_class(synthetic_root, runs):
    accu = runs / "exp1" / "accu_att"
    assert {p.name for p in accu.iterdir()} == expected_maps(synthetic_root)  # last-epoch fill covers all
    maps = [read_grey(path) for path in accu.iterdir()]
    assert all(att.shape == (8, 8) for att in maps)  # CAM resolution of a 64 px input
    assert any(att.max() == 255 for att in maps)  # scaled by the max


def test_stage1_checkpoint_args_and_curves(synthetic_root, runs):
    steps = 2 * math.ceil(len(synthetic_root.ids("train_aug")) / BATCH)
    last = torch.load(runs / "exp1" / "model" / "checkpoint_last.pth", weights_only=True)
    assert set(last) == {"model", "optimizer", "epoch", "step", "position", "data_seed", "rng"}
    assert last["epoch"] == 1 and last["step"] == steps
    assert last["position"] == {"epoch": 2, "batch": 0, "step": steps, "loss_sum": 0.0, "loss_count": 0}
    args = json.loads((runs / "exp1" / "train_args.json").read_text())
    assert args["epochs"] == 2 and args["resolved"]["num_classes"] == 3 and args["resolved"]["device"] == "cpu"
    assert list((runs / "exp1" / "logs").glob("events.out.tfevents.*"))
    iam_args = json.loads((runs / "exp2" / "train_args.json").read_text())
    assert iam_args["accu_dir"] == str(runs / "exp1" / "accu_att")


@pytest.mark.parametrize("exp", ["exp1", "exp2"])
def test_export_writes_one_map_per_image_and_class_at_image_size(synthetic_root, runs, exp):
    out = runs / exp / "attention"
    assert {p.name for p in out.glob("*.png")} == expected_maps(synthetic_root)
    assert {p.name for p in out.glob(".*")} == {".producer.json"}  # no temporary file left behind
    for path in out.glob("*.png"):
        image_id = path.stem.rpartition("_")[0]
        assert read_grey(path).shape == image_size(synthetic_root, image_id)


def test_export_skips_existing_maps_unless_overwrite(synthetic_root, runs):
    out = runs / "exp1" / "attention"
    files = sorted(out.glob("*.png"))
    before = {p: p.stat().st_mtime_ns for p in files}
    files[0].unlink()
    missing_image = files[0].stem.rpartition("_")[0]
    others = [p for p in files if p.stem.rpartition("_")[0] != missing_image]
    assert others
    cam_export.main(common(synthetic_root, runs))
    assert files[0].is_file()
    assert all(p.stat().st_mtime_ns == before[p] for p in others)  # only the missing image's maps rewritten
    cam_export.main(common(synthetic_root, runs) + ["--overwrite"])
    assert all(p.stat().st_mtime_ns != before[p] for p in others)


def test_finished_training_is_skipped_unless_other_settings_are_asked_for(synthetic_root, runs, capsys):
    final = runs / "exp1" / "model" / "checkpoint_final.pth"
    before = final.stat().st_mtime_ns
    # the same command, or one that changes only how it runs (checkpoint cadence): skipped quietly
    assert train.main(common(synthetic_root, runs) + TINY_TRAIN + ["--checkpoint-every-steps", "5"]) is None
    assert "other settings" not in capsys.readouterr().err
    # another setting: refused (its model is not what the command asks for), the finished run kept
    with pytest.raises(SystemExit):
        train.main(common(synthetic_root, runs) + TINY_TRAIN + ["--accu-start-epoch", "0"])
    err = capsys.readouterr().err
    assert f"{final} was trained with other settings (accu_start_epoch: 1 -> 0); --overwrite trains again" in err
    assert "Traceback" not in err and final.stat().st_mtime_ns == before


def interrupted_at_epoch_2(args: list[str], monkeypatch) -> None:
    """Run stage 1 and press Ctrl-C as epoch 2 starts: status 130, epochs 0 and 1 checkpointed."""
    real_set_epoch_lr = training.set_epoch_lr

    def ctrl_c_at_epoch_2(optimizer, lr, epoch, points):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_set_epoch_lr(optimizer, lr, epoch, points)

    monkeypatch.setattr(training, "set_epoch_lr", ctrl_c_at_epoch_2)
    with pytest.raises(SystemExit) as exc:  # Ctrl-C: a message and status 130, the checkpoints kept
        train.main(args)
    assert exc.value.code == 130
    monkeypatch.undo()


def test_resume_after_an_interruption(synthetic_root, tmp_path, monkeypatch):
    args = common(synthetic_root, tmp_path) + TINY_TRAIN + ["--epochs", "3"]
    interrupted_at_epoch_2(args, monkeypatch)
    model_dir, accu = tmp_path / "exp1" / "model", tmp_path / "exp1" / "accu_att"
    assert not (model_dir / "checkpoint_final.pth").exists()
    assert torch.load(model_dir / "checkpoint_last.pth", weights_only=True)["epoch"] == 1
    before = {p.name: read_grey(p) for p in accu.iterdir()}
    assert before  # epoch 1 accumulated maps above the gate

    with pytest.raises(SystemExit):  # partial outputs: refuses to start over silently
        train.main(args)
    train.main(args + ["--resume"])
    final = torch.load(model_dir / "checkpoint_final.pth", weights_only=True)
    last = torch.load(model_dir / "checkpoint_last.pth", weights_only=True)
    assert final["epoch"] == 2 and last["epoch"] == 2
    assert last["step"] == 3 * math.ceil(len(synthetic_root.ids("train_aug")) / BATCH)
    after = {p.name: read_grey(p) for p in accu.iterdir()}
    assert set(after) == expected_maps(synthetic_root)
    for name, old in before.items():  # the reloaded maps were fused, never replaced by smaller ones
        assert (after[name] >= old).all()


def test_a_resume_with_other_settings_or_a_foreign_map_is_refused_before_training(synthetic_root, tmp_path,
                                                                                   monkeypatch, capsys):
    """--resume had taken other settings silently (and recorded them as the whole run's), and a map of another size
    in accu_att had ended an epoch later in numpy's broadcast error."""
    args = common(synthetic_root, tmp_path) + TINY_TRAIN + ["--epochs", "3"]
    interrupted_at_epoch_2(args, monkeypatch)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        train.main(args + ["--resume", "--lr", "0.01"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--resume: the run in" in err and "lr: 0.001 -> 0.01" in err
    accu = tmp_path / "exp1" / "accu_att"
    odd = sorted(accu.glob("*.png"))[0]
    write_grey(odd, np.zeros((16, 16), np.uint8))
    with pytest.raises(SystemExit):
        train.main(args + ["--resume"])
    assert f"accumulated map {odd} is 16x16, the others 8x8: not a map of this run" in capsys.readouterr().err


def test_the_iam_waits_for_stage_1_and_bad_device_or_size_or_map_folder_are_named(synthetic_root, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_iam.main(common(synthetic_root, tmp_path) + TINY_TRAIN)
    assert f"stage 1 (exp1) has not finished: {tmp_path / 'exp1' / 'model' / 'checkpoint_final.pth'} does not " \
           "exist" in capsys.readouterr().err
    for flags, message in ((["--device", "cdua"], "--device 'cdua': not a device"),
                           (["--input-size", "7"], "argument --input-size: expected a whole number >= 8, got '7'")):
        with pytest.raises(SystemExit):
            train.main(common(synthetic_root, tmp_path) + TINY_TRAIN + flags)
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit):  # at the start, not when the first maps are written epochs later
        train.main(common(synthetic_root, tmp_path / "runs") + TINY_TRAIN + ["--accu-dir", str(tmp_path / "a_file")])
    assert "a_file is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "exp1" / "model" / "checkpoint_last.pth").exists()


SCRIPT_VARS = ("EXP", "ACCU_EXP", "DATA_ROOT", "LIST", "INPUT_SIZE", "BATCH_SIZE", "EPOCHS", "LR", "DECAY_POINTS",
               "WIDTH_DIV", "RUNS_DIR", "MODEL_DIR", "ACCU_DIR", "CHECKPOINT", "SAVE_DIR", "DEVICE", "NUM_WORKERS")


def test_train_sh_runs_stage_1(synthetic_root, tmp_path):
    env = dict(os.environ, DATA_ROOT=str(synthetic_root.root), RUNS_DIR=str(tmp_path), INPUT_SIZE="64",
               EPOCHS="2", BATCH_SIZE=str(BATCH), WIDTH_DIV="16", NUM_WORKERS="0", DEVICE="cpu",
               PYTHON=sys.executable)
    done = subprocess.run([str(CLASSIFICATION_DIR / "train.sh"), "--no-pretrained"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name for p in (tmp_path / "exp1" / "accu_att").iterdir()} == expected_maps(synthetic_root)
    assert (tmp_path / "exp1" / "model" / "checkpoint_final.pth").is_file()
    # --exp given to the wrapper names the run: its folders follow (they had stayed exp1's)
    done = subprocess.run([str(CLASSIFICATION_DIR / "train.sh"), "--no-pretrained", "--exp", "exp5", "--epochs", "1"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "exp5" / "model" / "checkpoint_final.pth").is_file() and (tmp_path / "exp5" / "accu_att").is_dir()


@pytest.mark.parametrize("script, module, exp", [
    ("train.sh", train, "exp1"), ("test.sh", cam_export, "exp1"),
    ("train_iam.sh", train_iam, "exp2"), ("test_iam.sh", test_iam, "exp2"),
])
def test_script_defaults_are_the_papers(tmp_path, script, module, exp):
    """Each script makes one call of its entry point; without overrides the flags are the paper's."""
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARS}
    env["PYTHON"] = "echo"  # print the command line instead of running it
    done = subprocess.run([str(CLASSIFICATION_DIR / script), "--extra-flag"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30, check=True)
    argv = done.stdout.split()
    assert argv[:2] == ["-m", module.__name__] and argv[-1] == "--extra-flag"
    args = module.build_parser().parse_args(argv[2:-1])
    assert args.exp == exp and args.input_size == 256 and args.device == "auto"
    assert args.data_root == "../data/VOCdevkit/VOC2012"
    assert args.list is None  # the dataset's training split: train_aug for VOC (ROOT/dataset.yaml may name another)
    if script.startswith("train"):
        assert (args.epochs, args.batch_size, args.lr, args.decay_points) == (15, 5, 0.001, [5, 10])
        # the folders are left to the entry point, which derives them from --exp (so that --exp given here wins)
        assert args.width_div == 1 and args.pretrained is True and args.model_dir is None and args.accu_dir is None
        assert args.runs_dir == "./runs" and run_dirs(args.exp, args.runs_dir).model == Path(f"./runs/{exp}/model")
        if module is train:
            assert args.accu_gate == 0.1
        else:
            assert args.accu_exp == "exp1"
    else:
        assert args.checkpoint is None and args.attention_dir is None and args.runs_dir == "./runs"


def test_accu_gate_reaches_the_accumulator_and_is_checked(synthetic_root, tmp_path, monkeypatch, capsys):
    seen = []

    class Recorder(train.AttentionAccumulator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.gate)

    monkeypatch.setattr(train, "AttentionAccumulator", Recorder)
    train.main(common(synthetic_root, tmp_path) + TINY_TRAIN + ["--epochs", "1", "--accu-gate", "0.9"])
    assert seen == [0.9]
    assert json.loads((tmp_path / "exp1" / "train_args.json").read_text())["accu_gate"] == 0.9
    for bad in ("1.5", "-0.1", "high"):
        with pytest.raises(SystemExit) as info:
            train.build_parser().parse_args(["--accu-gate", bad])
        assert info.value.code == 2
        assert f"--accu-gate: must be a number between 0 and 1, got '{bad}'" in capsys.readouterr().err


def test_accumulator_gets_the_average_pooled_cam_as_logits(synthetic_root, tmp_path, monkeypatch):
    """The loop hands prepare() the CAM and its global average pool (the logits of stage 1); the records'
    probabilities, which apply() compares with the gate, are the sigmoid of that pool."""
    calls, applied = [], []
    real_prepare, real_apply = train.AttentionAccumulator.prepare, train.AttentionAccumulator.apply

    def recording_prepare(self, epoch, image_ids, labels, cams, logits, keep=None):
        records = real_prepare(self, epoch, image_ids, labels, cams, logits, keep)
        calls.append((epoch, list(image_ids), cams.detach().clone(), logits.detach().clone(), records))
        return records

    def recording_apply(self, epoch, updates):
        applied.extend((key, prob) for key, _, prob in updates)
        return real_apply(self, epoch, updates)

    monkeypatch.setattr(train.AttentionAccumulator, "prepare", recording_prepare)
    monkeypatch.setattr(train.AttentionAccumulator, "apply", recording_apply)
    train.main(common(synthetic_root, tmp_path) + TINY_TRAIN)
    assert [epoch for epoch, *_ in calls] == [0, 0, 1, 1]  # 2 batches per epoch
    prepared = []
    for epoch, ids, cams, logits, records in calls:
        torch.testing.assert_close(logits, cams.mean(dim=(2, 3)))
        for (image_id, c), _, prob in records:
            pooled = cams[ids.index(image_id), c].mean()
            assert prob == pytest.approx(torch.sigmoid(pooled).item(), abs=1e-6)
            prepared.append(((image_id, c), prob))
    assert prepared and applied == prepared  # epoch 1's records, the ones the gate sees


def test_each_epoch_fuses_its_own_records_and_the_last_fills_with_its_own_map(synthetic_root, tmp_path, monkeypatch):
    """The records of an epoch were carried into every later one: the last epoch's fill then stored the first
    accumulating epoch's map of a class never above the gate, not the last epoch's (docs/method.md, stage 1)."""
    prepared, applied = {}, []
    real_prepare, real_apply = train.AttentionAccumulator.prepare, train.AttentionAccumulator.apply

    def recording_prepare(self, epoch, image_ids, labels, cams, logits, keep=None):
        records = real_prepare(self, epoch, image_ids, labels, cams, logits, keep)
        prepared.setdefault(epoch, []).extend(records)
        return records

    def recording_apply(self, epoch, updates):
        applied.append((epoch, list(updates)))
        return real_apply(self, epoch, updates)

    monkeypatch.setattr(train.AttentionAccumulator, "prepare", recording_prepare)
    monkeypatch.setattr(train.AttentionAccumulator, "apply", recording_apply)
    args = common(synthetic_root, tmp_path) + TINY_TRAIN + ["--epochs", "4", "--accu-gate", "1.0"]
    train.main(args)  # a gate no probability reaches: only the last epoch's fill stores maps
    assert [epoch for epoch, _ in applied] == [0, 1, 2, 3] and applied[0][1] == []  # accumulation from epoch 1
    for epoch, updates in applied[1:]:
        assert [key for key, *_ in updates] == [key for key, *_ in prepared[epoch]], epoch
    last = {key: att for key, att, _ in prepared[3]}
    for path in (tmp_path / "exp1" / "accu_att").glob("*.png"):
        image_id, _, c = path.stem.rpartition("_")
        np.testing.assert_array_equal(read_grey(path), last[(image_id, int(c))])


def test_progress_bar_counts_epochs_from_1_to_the_total(synthetic_root, tmp_path, monkeypatch):
    titles = []
    real_tqdm = training.tqdm

    def recording_tqdm(*args, desc="", **kwargs):
        titles.append(desc)
        return real_tqdm(*args, desc=desc, **kwargs)

    monkeypatch.setattr(training, "tqdm", recording_tqdm)
    train.main(common(synthetic_root, tmp_path) + TINY_TRAIN)
    assert titles == ["epoch 1/2", "epoch 2/2"]


def test_missing_data_is_a_message_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        train.main(["--data-root", str(tmp_path / "nowhere"), "--runs-dir", str(tmp_path), "--no-pretrained"])
    assert info.value.code == 2
    assert "image list not found" in capsys.readouterr().err


def test_a_checkpoint_with_nan_weights_stops_the_export_instead_of_writing_blank_maps(synthetic_root, runs,
                                                                                       tmp_path, capsys):
    """One NaN in a map would make max-normalisation blank all of it: an export of all-zero CAMs."""
    state = torch.load(runs / "exp1" / "model" / "checkpoint_final.pth", weights_only=True)
    head = next(k for k in state["model"] if k.endswith("weight") and "extra" in k)
    state["model"][head].view(-1)[0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    out = tmp_path / "maps"
    with pytest.raises(SystemExit) as exc:
        cam_export.main(common(synthetic_root, runs) + ["--checkpoint", str(tmp_path / "nan.pth"),
                                                        "--attention-dir", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "hold NaN or infinite values" in err and "train it again" in err and "Traceback" not in err
    assert not list(out.glob("*.png"))


def test_diverging_training_stops_with_a_message(synthetic_root, tmp_path, capsys):
    args = common(synthetic_root, tmp_path) + TINY_TRAIN + ["--lr", "1e6"]
    with pytest.raises(SystemExit) as exc:
        train.main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "training diverged" in err and "lower --lr" in err and "Traceback" not in err
    assert not (tmp_path / "exp1" / "model" / "checkpoint_final.pth").exists()


def test_warmup_raises_the_rate_linearly_across_the_epoch_boundary(synthetic_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # 2 steps per epoch, 2 epochs, 3 warm-up steps: the warm-up goes on into epoch 1,
    # whose epoch rate (no decay before epoch 5) is set at its start.
    assert math.ceil(len(synthetic_root.ids("train_aug")) / BATCH) == 2
    args = common(synthetic_root, tmp_path) + TINY_TRAIN + ["--lr", "0.0006", "--warmup-steps", "3",
                                                            "--decay-points", "5"]
    train.main(args)
    events = EventAccumulator(str(tmp_path / "exp1" / "logs")).Reload()
    rates = [e.value for e in sorted(events.Scalars("train/lr"), key=lambda e: e.step)]
    assert rates == pytest.approx([2e-4, 4e-4, 6e-4, 6e-4])


def test_a_start_epoch_past_the_run_warns_that_nothing_is_accumulated(synthetic_root, tmp_path, capsys):
    train.main(common(synthetic_root, tmp_path) + TINY_TRAIN + ["--accu-start-epoch", "2"])
    log_text = (tmp_path / "exp1" / "logs" / "train.log").read_text()
    assert "--accu-start-epoch 2 with --epochs 2: no CAM is accumulated" in log_text
    assert not any((tmp_path / "exp1" / "accu_att").glob("*.png"))
    with pytest.raises(SystemExit):  # stage 2 then names the cause, not only the missing maps
        train_iam.main(common(synthetic_root, tmp_path) + TINY_TRAIN)
    err = capsys.readouterr().err
    assert "accumulated attention maps are missing" in err and "ran 2 epoch(s) and accumulates from epoch 2" in err


def test_changed_settings_compares_paths_resolved_and_skips_defaults(tmp_path, monkeypatch):
    """A re-run that names the same folder another way, or leaves a setting to its default, changes nothing."""
    import argparse
    import json

    from classification.run_layout import run_dirs

    monkeypatch.chdir(tmp_path)
    dirs = run_dirs("exp1", tmp_path / "runs")
    dirs.root.mkdir(parents=True)
    dirs.train_args.write_text(json.dumps({"data_root": str(tmp_path / "data"), "num_classes": 5, "lr": 0.001,
                                           "decay_points": [5, 10], "device": "cuda"}))
    same = argparse.Namespace(data_root="./data", num_classes=None, lr=0.001, decay_points=(5, 10), device="cpu")
    assert run_state.changed_settings(same, dirs) == []
    other = argparse.Namespace(data_root="other", num_classes=6, lr=0.01, decay_points=(5, 10), device="cpu")
    assert run_state.changed_settings(other, dirs) == [f"data_root: {str(tmp_path / 'data')!r} -> 'other'",
                                                      "lr: 0.001 -> 0.01", "num_classes: 5 -> 6"]


def test_an_iam_of_other_accumulated_maps_is_not_skipped_nor_exported(synthetic_root, tmp_path, capsys):
    """Stage 1 trained again after the IAM: the IAM is stale (classification/iam_targets.py)."""
    from classification.iam_targets import DIGEST_ARG, TARGETS_KEY
    from nsrom.provenance import folder_digest

    args = common(synthetic_root, tmp_path)
    train.main(args + TINY_TRAIN)
    train_iam.main(args + TINY_TRAIN)
    accu = tmp_path / "exp1" / "accu_att"
    digest = folder_digest(accu, "*_*.png")
    assert json.loads((tmp_path / "exp2" / "train_args.json").read_text())[DIGEST_ARG] == digest
    final = torch.load(tmp_path / "exp2" / "model" / "checkpoint_final.pth", weights_only=True)
    assert final[TARGETS_KEY] == {"dir": str(accu.resolve()), "digest": digest}
    assert train_iam.main(args + TINY_TRAIN) is None  # the same maps: the finished IAM is skipped
    test_iam.main(args)  # and exported
    changed = sorted(accu.glob("*.png"))[0]
    write_grey(changed, 255 - read_grey(changed))  # as a stage 1 trained again leaves them
    for script, message in ((train_iam, "was trained on other accumulated maps than those now in"),
                            (test_iam, "as they were then, and they have changed since")):
        with pytest.raises(SystemExit):
            script.main(args + (TINY_TRAIN if script is train_iam else ["--overwrite"]))
        err = capsys.readouterr().err
        assert message in err and "--overwrite" in err and "Traceback" not in err
    assert train_iam.main(args + TINY_TRAIN + ["--overwrite"]) is not None  # trained on the new maps
    test_iam.main(args + ["--overwrite"])
    assert torch.load(tmp_path / "exp2" / "model" / "checkpoint_final.pth",
                      weights_only=True)[TARGETS_KEY]["digest"] == folder_digest(accu, "*_*.png") != digest
    write_grey(changed, 255 - read_grey(changed))
    accu.rename(tmp_path / "elsewhere")  # maps not on this machine (a checkpoint made elsewhere): not compared
    test_iam.main(args + ["--overwrite"])
