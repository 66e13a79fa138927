"""Val mIoU during DeepLab-v2 training (SOLVER.ITER_VAL): logged to TensorBoard, training unchanged."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nsrom.errors import ConfigError
from nsrom.images import read_label, read_rgb
from nsrom.metrics import ConfusionAccumulator, scores
from segmentation import main as seg_main
from segmentation.libs.predictor import Predictor
from segmentation.libs.utils.config import CONFIG_DIR, load_config
from segmentation.libs.utils.paths import RunPaths

DEMO = CONFIG_DIR / "demo.yaml"


def train(root, out, extra: list[str]) -> tuple[RunPaths, dict]:
    sets = [f"DATASET.ROOT={root.root}", f"EXP.OUTPUT_DIR={out}", f"DATASET.LABEL_DIR={root.mask_dir}",
            "IMAGE.SIZE.TRAIN=33", "SOLVER.ITER_MAX=2", "SOLVER.ITER_SAVE=2", "SOLVER.ITER_TB=1", "SOLVER.ITER_SIZE=1",
            *extra]
    args = ["train", "-c", str(DEMO), "--cpu", "--fully-supervised", "--seed", "0"]
    for s in sets:
        args += ["--set", s]
    seg_main.main(args)
    paths = RunPaths.from_config(load_config(DEMO, sets))
    return paths, torch.load(paths.final_checkpoint, weights_only=True)["model"]


def test_val_miou_is_logged_and_changes_nothing(synthetic_root, tmp_path):
    paths, weights = train(synthetic_root, tmp_path / "monitored", ["SOLVER.ITER_VAL=1", "SOLVER.VAL_IMAGES=2"])
    plain_paths, plain = train(synthetic_root, tmp_path / "plain", [])
    for key, value in plain.items():
        torch.testing.assert_close(weights[key], value, rtol=0, atol=0, msg=key)

    events = EventAccumulator(str(paths.log_dir))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars("miou/val")}
    assert sorted(logged) == [1, 2]
    # step 2 is the final model: its mIoU on the first two val images, computed here from scratch
    cfg = load_config(paths.model_dir / "config.yaml")
    predictor = Predictor(cfg, paths.final_checkpoint)
    acc = ConfusionAccumulator(len(predictor.class_names))
    for image_id in synthetic_root.ids("val")[:2]:
        acc.update(read_label(synthetic_root.mask_path(image_id)), predictor.label(read_rgb(synthetic_root.image_path(image_id))))
    assert logged[2] == pytest.approx(scores(acc.matrix)["Mean IoU"], abs=1e-6)
    assert "miou/val" not in EventAccumulator(str(plain_paths.log_dir)).Reload().Tags()["scalars"]


def test_val_keys_default_off_and_are_checked():
    cfg = load_config(None)
    assert (cfg.SOLVER.ITER_VAL, cfg.SOLVER.VAL_IMAGES) == (0, 0)
    with pytest.raises(ConfigError, match="SOLVER.ITER_VAL must be >= 0"):
        load_config(None, ["SOLVER.ITER_VAL=-1"])
