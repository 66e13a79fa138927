"""DDP on the CPU (gloo, two processes launched with torchrun on 127.0.0.1) against one process.

Segmentation: after a few steps the parameters equal those of one process with
the same global batch, also across the last partial batch of a pass (7
images: the sampler's padding repeat is ignored); test and crf split over the
ranks give the same scores. Classification: the accumulated maps equal those
of one process on the same images, also when the sampler pads an odd image
count. Both: a DDP run interrupted mid-epoch and resumed ends bit-identical to
an uninterrupted DDP run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from classification import train as cls_train
from classification.run_layout import run_dirs
from nsrom import distributed
from nsrom.errors import ConfigError
from nsrom.images import read_grey
from segmentation import main as seg_main
from segmentation.libs.utils.config import CONFIG_DIR, load_config
from segmentation.libs.utils.paths import RunPaths

from launch import torchrun

SEGMENTATION_MAIN = Path(seg_main.__file__)
EVAL_DRIVER = Path(__file__).with_name("ddp_eval_driver.py")
RESUME_DRIVER = Path(__file__).with_name("ddp_resume_driver.py")


@pytest.fixture(scope="module")
def seven_labels(synthetic_root, tmp_path_factory) -> Path:
    """Labels (the masks) of 7 of the 8 training images: with batch 4 each pass is 4 + 3 images."""
    folder = tmp_path_factory.mktemp("seven_labels")
    for image_id in synthetic_root.ids("train_aug")[:7]:
        shutil.copy(synthetic_root.mask_path(image_id), folder / f"{image_id}.png")
    return folder


def seg_sets(root, out: Path, labels: Path | None = None, steps: int = 2, iter_size: int = 2) -> list[str]:
    return [f"DATASET.ROOT={root.root}", f"EXP.OUTPUT_DIR={out}", f"DATASET.LABEL_DIR={labels or root.mask_dir}",
            "IMAGE.SIZE.TRAIN=25", "SOLVER.BATCH_SIZE.TRAIN=4", f"SOLVER.ITER_SIZE={iter_size}", f"SOLVER.ITER_MAX={steps}",
            "SOLVER.ITER_SAVE=2", "SOLVER.ITER_SAVE_RECENT=1", "SOLVER.ITER_TB=1", "SOLVER.LR=0.01",
            "MODEL.WIDTH_DIV=16"]


def config_args(sets: list[str]) -> list[str]:
    argv = ["-c", str(CONFIG_DIR / "demo.yaml")]
    for s in sets:
        argv += ["--set", s]
    return argv


def seg_argv(sets: list[str]) -> list[str]:
    return ["train", *config_args(sets), "--cpu", "--fully-supervised", "--seed", "0"]


def test_segmentation_ddp_equals_one_process_with_the_same_global_batch(synthetic_root, seven_labels, tmp_path):
    single_sets = seg_sets(synthetic_root, tmp_path / "single", seven_labels)
    ddp_sets = seg_sets(synthetic_root, tmp_path / "ddp", seven_labels)
    single = torch.load(seg_main.main(seg_argv(single_sets)), weights_only=True)
    torchrun([str(SEGMENTATION_MAIN), *seg_argv(ddp_sets)])
    paths = RunPaths.from_config(load_config(CONFIG_DIR / "demo.yaml", ddp_sets))
    ddp = torch.load(paths.final_checkpoint, weights_only=True)
    assert ddp["step"] == 2 and sorted(p.name for p in paths.model_dir.glob("*.pth")) == [
        "checkpoint_2.pth", "checkpoint_final.pth"]
    assert len(list(paths.log_dir.glob("events.out.tfevents.*"))) == 1  # rank 0 only
    for key, value in single["model"].items():
        torch.testing.assert_close(ddp["model"][key], value, rtol=1e-4, atol=1e-6, msg=key)

    # test + crf split over the ranks give the scores of one process on the same checkpoint
    torchrun([str(EVAL_DRIVER), *config_args(ddp_sets)])
    eval_sets = seg_sets(synthetic_root, tmp_path / "single_eval")
    seg_main.main(["test", *config_args(eval_sets), "--cpu", "-m", str(paths.final_checkpoint)])
    seg_main.main(["crf", *config_args(eval_sets), "-j", "1", "-m", str(paths.final_checkpoint)])
    # another run's checkpoint: its outputs go under <EXP.ID>@checkpoint_final
    one = RunPaths.for_evaluation(load_config(CONFIG_DIR / "demo.yaml", eval_sets), paths.final_checkpoint)
    assert one.eval_name == "checkpoint_final"
    assert len(list(paths.logit_dir("val").glob("*.npy"))) == len(synthetic_root.ids("val"))
    for crf in (False, True):
        assert json.loads(paths.score_path("val", crf).read_text()) == json.loads(one.score_path("val", crf).read_text())


def test_per_rank_batch_splits_the_global_batch_or_refuses(monkeypatch):
    monkeypatch.setattr(distributed, "current", lambda: distributed.DistInfo(rank=0, world_size=2))
    assert distributed.per_rank_batch(10) == 5
    with pytest.raises(ConfigError, match="does not split over 2 processes"):
        distributed.per_rank_batch(5, "SOLVER.BATCH_SIZE.TRAIN")
    assert distributed.shard(list("abcde")) == ["a", "c", "e"]


def cls_argv(root, runs: Path, ids: Path, batch: int) -> list[str]:
    return ["--data-root", str(root.root), "--runs-dir", str(runs), "--list", str(ids), "--input-size", "32",
            "--num-workers", "0", "--device", "cpu", "--epochs", "2", "--batch-size", str(batch), "--width-div", "16",
            "--no-pretrained", "--seed", "0", "--lr", "0"]


def test_classification_ddp_accumulation_equals_one_process(synthetic_root, tmp_path):
    """7 images over 2 ranks (the sampler pads one duplicate): the gathered maps equal one process's.

    lr 0 keeps the weights fixed and the per-rank batch (1) equals the
    single-process batch, so each image's CAM is the same in both runs (the
    colour jitter is seeded per image and epoch); the maps must then be equal.
    That the padded duplicate gives no record is tested on its own
    (tests/test_accumulation.py): here it would give the same CAM, and fusing
    a map with itself changes nothing.
    """
    ids = tmp_path / "seven.txt"
    ids.write_text("\n".join(synthetic_root.ids("train_aug")[:7]) + "\n")
    cls_train.main(cls_argv(synthetic_root, tmp_path / "single", ids, 1))
    torchrun(["-m", "classification.train", *cls_argv(synthetic_root, tmp_path / "ddp", ids, 2)])
    single_dir = run_dirs("exp1", tmp_path / "single").accu_att
    ddp_dir = run_dirs("exp1", tmp_path / "ddp").accu_att
    names = sorted(p.name for p in single_dir.iterdir())
    assert names and names == sorted(p.name for p in ddp_dir.iterdir())
    for name in names:
        assert np.array_equal(read_grey(single_dir / name), read_grey(ddp_dir / name)), name


def test_real_samples_marks_sampler_padding(monkeypatch):
    monkeypatch.setattr(distributed, "current", lambda: distributed.DistInfo(rank=1, world_size=2))
    # 7 samples over 2 ranks: rank 1 holds global positions 1, 3, 5, 7; position 7 is padding
    assert distributed.real_samples(7, 0, 2, 2) == [True, True]
    assert distributed.real_samples(7, 1, 2, 2) == [True, False]
    monkeypatch.setattr(distributed, "current", lambda: distributed.DistInfo())
    assert distributed.real_samples(7, 3, 2, 1) == [True]


def test_ddp_runs_interrupted_mid_epoch_resume_bit_identically(synthetic_root, seven_labels, tmp_path):
    """One torchrun job: DeepLab (7 images, global batch 4, crash in step 4 of 4, mid-pass) and the OAA classifier
    (7 images, global batch 2, 2 epochs, crash in step 6 of 8, inside the accumulating epoch), each
    straight through and interrupted + resumed; the final weights (and maps) are equal to the bit."""
    ids = tmp_path / "seven.txt"
    ids.write_text("\n".join(synthetic_root.ids("train_aug")[:7]) + "\n")
    seg = seg_argv(seg_sets(synthetic_root, tmp_path / "seg" / "{out}", seven_labels, steps=4, iter_size=1))
    cls = [*cls_argv(synthetic_root, tmp_path / "cls" / "{out}", ids, 2), "--lr", "0.01",
           "--checkpoint-every-steps", "1"]
    # steps left after the most recent checkpoint (every step): seg 4 - 3, cls 8 - 5
    torchrun([str(RESUME_DRIVER), "seg", "4", "1", *seg, "::", "cls", "6", "3", *cls])
    finals = [RunPaths.from_config(load_config(CONFIG_DIR / "demo.yaml", seg_sets(
        synthetic_root, tmp_path / "seg" / run, seven_labels))).final_checkpoint for run in ("straight", "resumed")]
    finals += [run_dirs("exp1", tmp_path / "cls" / run).checkpoint_final for run in ("straight", "resumed")]
    for straight, resumed in (finals[:2], finals[2:]):
        a, b = torch.load(straight, weights_only=True), torch.load(resumed, weights_only=True)
        assert a["step"] == b["step"] and not resumed.with_name("checkpoint_recent.pth").exists()
        for key, value in a["model"].items():
            assert torch.equal(value, b["model"][key]), (straight, key)
    accu = [run_dirs("exp1", tmp_path / "cls" / run).accu_att for run in ("straight", "resumed")]
    names = sorted(p.name for p in accu[0].iterdir())
    assert names and names == sorted(p.name for p in accu[1].iterdir())
    assert all(np.array_equal(read_grey(accu[0] / n), read_grey(accu[1] / n)) for n in names)
