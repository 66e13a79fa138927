"""Tiny end-to-end run of the segmentation stages on the synthetic data:
main.py train -> test -> crf, trainaug_pred.py test -> crf, plus resume and the guard rails."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segmentation import main as seg_main
from segmentation import trainaug_pred
from segmentation.libs.models import build_model
from segmentation.libs.utils.config import CONFIG_DIR, load_config
from segmentation.libs.utils.paths import RunPaths

TINY = [
    "IMAGE.SIZE.TRAIN=33", "SOLVER.BATCH_SIZE.TRAIN=2", "SOLVER.ITER_SIZE=1", "SOLVER.ITER_MAX=2",
    "SOLVER.ITER_SAVE=1", "SOLVER.ITER_TB=1", "SOLVER.LR_DECAY=1", "CRF.ITER_MAX=2",
]


def stride8(n: int) -> int:
    """Output size of the stem conv (7x7/2), ceil-mode pool (3x3/2) and layer3's stride 2."""
    n = (n + 2 * 3 - 7) // 2 + 1
    n = math.ceil((n + 2 * 1 - 3) / 2) + 1
    return (n - 1) // 2 + 1


@pytest.fixture()
def run_args(synthetic_root, tmp_path):
    sets = [f"DATASET.ROOT={synthetic_root.root}", f"EXP.OUTPUT_DIR={tmp_path / 'out'}", *TINY]
    args = ["--config-path", str(CONFIG_DIR / "demo.yaml")]
    for s in sets:
        args += ["--set", s]
    return args, load_config(CONFIG_DIR / "demo.yaml", sets)


def test_train_test_crf_trainaug(run_args, synthetic_root, capsys):
    args, cfg = run_args
    gt_dir = f"DATASET.LABEL_DIR={synthetic_root.mask_dir}"
    paths = RunPaths.from_config(cfg)

    with pytest.raises(SystemExit) as exc:  # ground truth refused without --fully-supervised
        seg_main.main(["train", *args, "--set", gt_dir, "--cpu"])
    assert exc.value.code == 2
    assert "--fully-supervised" in capsys.readouterr().err

    torch.manual_seed(0)
    final = seg_main.main(["train", *args, "--set", gt_dir, "--cpu", "--fully-supervised"])
    assert final == paths.final_checkpoint and final.is_file()
    assert sorted(p.name for p in paths.model_dir.glob("*.pth")) == [
        "checkpoint_1.pth", "checkpoint_2.pth", "checkpoint_final.pth"]
    saved = load_config(paths.model_dir / "config.yaml")
    assert saved.SOLVER.ITER_MAX == 2 and saved.DATASET.LABEL_DIR == str(synthetic_root.mask_dir)
    # TensorBoard: the loss and each group's rate at every step; the rate is the poly decay's
    events = EventAccumulator(str(paths.log_dir))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2]
    for group, factor in enumerate((1, 10, 20)):  # backbone, ASPP weights, ASPP biases
        rates = [e.value for e in events.Scalars(f"lr/group_{group}")]
        assert rates == pytest.approx([factor * cfg.SOLVER.LR * (1 - step / 2) ** 0.9 for step in (0, 1)], rel=1e-6)
    state = torch.load(final, weights_only=True)
    assert state["step"] == 2 and "optimizer" in state
    # BatchNorm frozen in training: affine and statistics still those of the fresh model
    fresh = build_model(cfg.MODEL, 4).state_dict()
    batchnorm = [k for k in fresh if ".bn." in k]
    assert len(batchnorm) == 85
    for key in batchnorm:
        torch.testing.assert_close(state["model"][key], fresh[key], rtol=0, atol=0, msg=key)

    # resume from the latest checkpoint with a longer schedule
    seg_main.main(["train", *args, "--set", gt_dir, "--set", "SOLVER.ITER_MAX=3", "--cpu", "--fully-supervised", "--resume"])
    assert torch.load(final, weights_only=True)["step"] == 3
    assert "--resume with SOLVER.ITER_MAX 3 instead of the run's 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # resuming with another width names the checkpoint, no traceback
        seg_main.main(["train", *args, "--set", gt_dir, "--set", "SOLVER.ITER_MAX=4", "--set", "MODEL.WIDTH_DIV=16",
                       "--cpu", "--fully-supervised", "--resume"])
    err = capsys.readouterr().err
    assert exc.value.code != 0 and str(paths.model_dir) in err and "WIDTH_DIV" in err and "Traceback" not in err
    assert torch.load(final, weights_only=True)["step"] == 3

    result = seg_main.main(["test", *args, "--cpu"])
    out = capsys.readouterr()
    assert str(final) in out.err and "Mean IoU" in out.out and "dots_triangle" in out.out
    val_ids = synthetic_root.ids("val")
    assert sorted(p.stem for p in paths.logit_dir("val").glob("*.npy")) == sorted(val_ids)
    logit = np.load(paths.logit_dir("val") / f"{val_ids[0]}.npy")
    image = Image.open(synthetic_root.image_path(val_ids[0]))
    assert logit.shape == (4, stride8(image.height), stride8(image.width))
    scores = json.loads(paths.score_path("val", crf=False).read_text())
    assert scores == result
    assert set(scores) == {"Pixel Accuracy", "Mean Accuracy", "Frequency Weighted IoU", "Mean IoU", "Class IoU",
                           "Class Accuracy"}

    crf_result = seg_main.main(["crf", *args, "-j", "1"])
    assert "Mean IoU" in capsys.readouterr().out
    assert json.loads(paths.score_path("val", crf=True).read_text())["Mean IoU"] == pytest.approx(crf_result["Mean IoU"])
    torch_backend = ["--cpu", "--set", "CRF.BACKEND=torch", "--set", "CRF.BATCH_SIZE=3"]
    torch_result = seg_main.main(["crf", *args, "-j", "2", *torch_backend])
    assert torch_result["Mean IoU"] == pytest.approx(crf_result["Mean IoU"], abs=1e-3)

    trainaug_pred.main(["test", *args, "--cpu"])
    trainaug_pred.main(["crf", *args, "-j", "1"])
    train_ids = synthetic_root.ids("train_aug")
    label_dir = paths.label_crf_dir("train_aug")
    assert sorted(p.stem for p in label_dir.glob("*.png")) == sorted(train_ids)
    label = Image.open(label_dir / f"{train_ids[0]}.png")
    assert label.mode == "P" and label.size == Image.open(synthetic_root.image_path(train_ids[0])).size
    assert set(np.unique(np.asarray(label))) <= {0, 1, 2, 3}
    assert paths.score_path("train_aug", crf=True).is_file()

    # the torch backend is another producer: refused without --overwrite; its labels agree with pydensecrf's
    reference = {i: np.asarray(Image.open(label_dir / f"{i}.png")) for i in train_ids}
    capsys.readouterr()
    with pytest.raises(SystemExit):
        trainaug_pred.main(["crf", *args, "-j", "2", *torch_backend])
    assert "setting backend: pydensecrf -> torch" in capsys.readouterr().err
    trainaug_pred.main(["crf", *args, "-j", "2", *torch_backend, "--overwrite"])
    record = json.loads((label_dir / ".producer.json").read_text())
    assert record["settings"]["backend"] == "torch" and "BATCH_SIZE" not in record["settings"]["crf"]
    for i in train_ids:
        assert (np.asarray(Image.open(label_dir / f"{i}.png")) == reference[i]).mean() >= 0.995
    # resume: a missing label is redone, the others are kept
    kept = {i: (label_dir / f"{i}.png").stat().st_mtime_ns for i in train_ids[1:]}
    (label_dir / f"{train_ids[0]}.png").unlink()
    trainaug_pred.main(["crf", *args, "-j", "2", *torch_backend])
    assert (label_dir / f"{train_ids[0]}.png").is_file()
    assert {i: (label_dir / f"{i}.png").stat().st_mtime_ns for i in train_ids[1:]} == kept


def test_overwrite_deletes_the_earlier_runs_checkpoints(run_args, synthetic_root, tmp_path):
    """Training again with --overwrite starts clean: a --resume afterwards cannot pick the earlier run's
    higher-step checkpoint (here checkpoint_3.pth of a 3-step run, after a 2-step run)."""
    from segmentation.libs.train import latest_checkpoint

    args, cfg = run_args
    gt = ["--set", f"DATASET.LABEL_DIR={synthetic_root.mask_dir}", "--cpu", "--fully-supervised"]
    paths = RunPaths.from_config(cfg)
    seg_main.main(["train", *args, "--set", "SOLVER.ITER_MAX=3", *gt])
    assert (paths.model_dir / "checkpoint_3.pth").is_file()
    with pytest.raises(SystemExit):  # a retrain that stops before training (no init file) deletes nothing
        seg_main.main(["train", *args, *gt, "--overwrite", "--set", f"MODEL.INIT_MODEL={tmp_path / 'absent.pth'}"])
    assert torch.load(paths.final_checkpoint, weights_only=True)["step"] == 3
    seg_main.main(["train", *args, *gt, "--overwrite"])  # ITER_MAX=2
    assert sorted(p.name for p in paths.model_dir.glob("*.pth")) == [
        "checkpoint_1.pth", "checkpoint_2.pth", "checkpoint_final.pth"]
    assert latest_checkpoint(paths) == paths.checkpoint(2)
    assert torch.load(paths.final_checkpoint, weights_only=True)["step"] == 2


def test_missing_weights_give_clear_messages(run_args, tmp_path, capsys):
    args, _ = run_args
    with pytest.raises(SystemExit):
        seg_main.main(["test", *args, "--cpu", "--model-path", str(tmp_path / "checkpoint_70.4.pth")])
    err = capsys.readouterr().err
    assert "weight file not found" in err and "checkpoint_70.4.pth" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        seg_main.main(["train", *args, "--cpu", "--set", f"DATASET.LABEL_DIR={tmp_path}",
                       "--set", f"MODEL.INIT_MODEL={tmp_path / 'deeplabv1_resnet101-coco.pth'}"])
    err = capsys.readouterr().err
    assert "deeplabv1_resnet101-coco.pth" in err and "--no-init" in err
    with pytest.raises(SystemExit):
        seg_main.main(["crf", *args, "-j", "1"])
    assert "run the test command first" in capsys.readouterr().err
