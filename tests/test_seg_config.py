"""Config loading (voc12.yaml schema, --set overrides), class count check and the output layout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nsrom.errors import ConfigError
from segmentation.libs.cli import load_cli_config
from segmentation.libs.data_config import class_names
from segmentation.libs.utils.config import CONFIG_DIR, load_config, schema
from segmentation.libs.utils.paths import RunPaths


def test_voc12_has_the_paper_values():
    cfg = load_config(CONFIG_DIR / "voc12.yaml")
    assert cfg.MODEL.NAME == "DeepLabV2_ResNet101_MSC" and cfg.MODEL.N_BLOCKS == [3, 4, 23, 3]
    assert cfg.MODEL.ATROUS_RATES == [6, 12, 18, 24] and cfg.MODEL.WIDTH_DIV == 1
    assert (cfg.IMAGE.MEAN.B, cfg.IMAGE.MEAN.G, cfg.IMAGE.MEAN.R) == (104.008, 116.669, 122.675)
    assert cfg.IMAGE.SIZE.TRAIN == 321 and cfg.DATASET.SCALES == [0.5, 0.75, 1.0, 1.25, 1.5]
    s = cfg.SOLVER
    assert (s.BATCH_SIZE.TRAIN, s.BATCH_SIZE.TEST, s.ITER_MAX, s.ITER_SIZE, s.ITER_SAVE, s.LR_DECAY) == (5, 1, 20000, 2, 5000, 10)
    assert (s.LR, s.MOMENTUM, s.POLY_POWER, s.WEIGHT_DECAY) == (2.5e-4, 0.9, 0.9, 5e-4)
    c = cfg.CRF
    assert (c.ITER_MAX, c.POS_W, c.POS_XY_STD, c.BI_W, c.BI_XY_STD, c.BI_RGB_STD, c.WRAPPED_IMAGE) == (10, 3, 1, 4, 67, 3, True)
    assert cfg.DATASET.IGNORE_LABEL == 255 and cfg.DATASET.N_CLASSES is None  # from the class list
    assert len(class_names(cfg)) == 21  # VOC without labels.txt
    assert (cfg.DATASET.SPLIT.TRAIN, cfg.DATASET.SPLIT.VAL) == ("train_aug", "val")  # the dataset's defaults


def test_demo_config_is_valid():
    cfg = load_config(CONFIG_DIR / "demo.yaml")
    assert cfg.MODEL.WIDTH_DIV > 1 and cfg.MODEL.INIT_MODEL is None


def test_demo_crf_is_the_papers_on_the_8bit_image():
    """The demo shrinks the network, not the CRF: every kernel value and the iteration count are voc12's."""
    demo, paper = load_config(CONFIG_DIR / "demo.yaml").CRF, load_config(CONFIG_DIR / "voc12.yaml").CRF
    keys = ("ITER_MAX", "POS_W", "POS_XY_STD", "BI_W", "BI_XY_STD", "BI_RGB_STD")
    assert [demo[k] for k in keys] == [paper[k] for k in keys]
    assert demo.WRAPPED_IMAGE is False  # the corrected CRF input (docs/method.md, stage 4)


def test_overrides_are_typed():
    cfg = load_config(None, ["SOLVER.ITER_MAX=100", "SOLVER.LR=1e-3", "MODEL.INIT_MODEL=null", "CRF.WRAPPED_IMAGE=true"])
    assert cfg.SOLVER.ITER_MAX == 100 and cfg.SOLVER.LR == 1e-3 and isinstance(cfg.SOLVER.LR, float)
    assert cfg.MODEL.INIT_MODEL is None and cfg.CRF.WRAPPED_IMAGE is True


def test_a_hash_in_an_override_is_part_of_the_value_not_a_comment():
    """YAML would read 'runs/exp #2' as 'runs/exp' and train into another folder."""
    from segmentation.libs.utils.config import parse_override

    assert parse_override("EXP.OUTPUT_DIR=/tmp/runs/exp #2") == ("EXP.OUTPUT_DIR", "/tmp/runs/exp #2")
    assert parse_override("EXP.ID=#1") == ("EXP.ID", "#1")
    assert parse_override('EXP.ID="a #b"') == ("EXP.ID", "a #b")  # quoted: YAML's own string
    assert parse_override("EXP.ID=a#b") == ("EXP.ID", "a#b")
    assert load_config(None, ["EXP.OUTPUT_DIR=/tmp/runs/exp #2"]).EXP.OUTPUT_DIR == "/tmp/runs/exp #2"
    with pytest.raises(ConfigError, match="MODEL.N_BLOCKS must be"):
        load_config(None, ["MODEL.N_BLOCKS=[3, 4, 23, 3] # resnet101"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("SOLVER.ITERMAX=3", "unknown config key SOLVER.ITERMAX.*SOLVER.ITER_MAX"),
        ("SOLVER.ITER_MAX=ten", "SOLVER.ITER_MAX must be int"),
        ("SOLVER.ITER_MAX=2.5", "SOLVER.ITER_MAX must be int"),
        ("DATASET.N_CLASSES=abc", "DATASET.N_CLASSES must be int"),  # null in the schema: typed by its table
        ("CRF.WRAPPED_IMAGE=maybe", "CRF.WRAPPED_IMAGE must be bool"),
        ("SOLVER.LR=null", "SOLVER.LR must not be empty"),
        ("SOLVER.ITER_MAX", "KEY=VALUE"),
        ("MODEL.N_BLOCKS=[3, 4]", r"override 'MODEL.N_BLOCKS=\[3, 4\]': MODEL.N_BLOCKS needs 4"),
        ("crf.iter_max=5", r"unknown config key crf.iter_max \(did you mean CRF.ITER_MAX\?\)"),
        ("DATASET.SCALES=[]", "DATASET.SCALES needs at least one positive"),
        ("DATASET.SCALES=[1.0, 0.0]", "DATASET.SCALES needs at least one positive"),
        ("DATASET.IGNORE_LABEL=300", "IGNORE_LABEL must be in 0..255"),
        ("IMAGE.SIZE.TRAIN=0", "IMAGE.SIZE.TRAIN .* must be >= 1"),
        ("SOLVER.LR=0.0", "SOLVER.LR must be > 0"),
        ("SOLVER.POLY_POWER=-1.0", "SOLVER.POLY_POWER must be >= 0"),
        ("CRF.ITER_MAX=-1", "CRF.ITER_MAX must be >= 1"),
        ("CRF.BI_RGB_STD=0", "CRF.BI_RGB_STD must be > 0"),
        ("SOLVER.BATCH_SIZE.TRAIN=0", "SOLVER.BATCH_SIZE.TRAIN must be >= 1"),
        ("MODEL.ATROUS_RATES=[0, 0, 0, 0]", r"MODEL.ATROUS_RATES needs positive dilations"),
        ("MODEL.ATROUS_RATES=[-1, 2, 3, 4]", r"MODEL.ATROUS_RATES needs positive dilations"),
        ("MODEL.ATROUS_RATES=[]", r"MODEL.ATROUS_RATES needs positive dilations"),
        ("DATALOADER.NUM_WORKERS=-1", "DATALOADER.NUM_WORKERS must be >= 0"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_yaml_keys_name_the_key(tmp_path):
    text = (CONFIG_DIR / "voc12.yaml").read_text()
    path = tmp_path / "typo.yaml"
    path.write_text(text.replace("    ITER_SAVE:", "    ITER_SAV:"))
    with pytest.raises(ConfigError, match="typo.yaml: unknown config key SOLVER.ITER_SAV"):
        load_config(path)
    path.write_text(text.replace("    POS_W: 3\n", ""))
    with pytest.raises(ConfigError, match="missing config keys CRF.POS_W"):
        load_config(path)
    # Project-added keys are optional; without WRAPPED_IMAGE a config is deeplab-pytorch's,
    # whose CRF input wraps (the paper's setting).
    path.write_text(re.sub(r"\n    WRAPPED_IMAGE: .*", "", text))
    assert load_config(path).CRF.WRAPPED_IMAGE is True
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_split_option_and_class_count(synthetic_root):
    cfg = load_cli_config(str(CONFIG_DIR / "demo.yaml"), [f"DATASET.ROOT={synthetic_root.root}"], "val", "TRAIN")
    assert cfg.DATASET.SPLIT.TRAIN == "val"
    assert class_names(cfg) == synthetic_root.class_names()  # N_CLASSES null: from labels.txt
    cfg = load_config(None, [f"DATASET.ROOT={synthetic_root.root}"])  # voc12: N_CLASSES from labels.txt
    assert class_names(cfg) == synthetic_root.class_names()
    cfg = load_config(None, [f"DATASET.ROOT={synthetic_root.root}", "DATASET.N_CLASSES=21"])
    with pytest.raises(ConfigError, match="N_CLASSES is 21.*4 entries"):
        class_names(cfg)
    for missing in ("nolabels.txt", str(synthetic_root.root)):  # a typo, a folder: named, no traceback
        cfg = load_config(None, [f"DATASET.ROOT={synthetic_root.root}", f"DATASET.LABELS={missing}"])
        with pytest.raises(ConfigError, match=f"DATASET.LABELS: class list {missing} not found"):
            class_names(cfg)


def test_output_layout():
    cfg = load_config(None, ["EXP.OUTPUT_DIR=out", "EXP.ID=stage7"])
    paths = RunPaths.from_config(cfg)
    run = Path("stage7/deeplabv2_resnet101_msc")  # deeplab-pytorch: models/<EXP.ID>/<model>/<split>
    assert paths.model_dir == Path("out/models") / run / "train_aug"
    assert paths.final_checkpoint == Path("out/models") / run / "train_aug/checkpoint_final.pth"
    assert paths.checkpoint(5000) == Path("out/models") / run / "train_aug/checkpoint_5000.pth"
    assert paths.log_dir == Path("out/logs") / run / "train_aug"
    assert paths.logit_dir("val") == Path("out/features") / run / "val/logit"
    assert paths.label_crf_dir("train_aug") == Path("out/features") / run / "train_aug/label_crf"
    assert paths.score_path("val", crf=False) == Path("out/scores") / run / "val/scores.json"
    assert paths.score_path("val", crf=True) == Path("out/scores") / run / "val/scores_crf.json"


def test_cudnn_autotuning_only_for_training(monkeypatch, tmp_path):
    """Test and CRF run at native image sizes, where autotuning every new shape costs time."""
    import torch

    from segmentation import main as seg_main
    from segmentation.libs import evaluate

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)  # test must turn it off
    seen = {}
    monkeypatch.setattr(evaluate, "test", lambda cfg, *a, **k: seen.setdefault("test", torch.backends.cudnn.benchmark))
    monkeypatch.setattr(seg_main, "train_model", lambda cfg, **k: seen.setdefault("train", torch.backends.cudnn.benchmark))
    args = ["-c", str(CONFIG_DIR / "demo.yaml"), "--set", f"EXP.OUTPUT_DIR={tmp_path}"]
    seg_main.main(["test", *args])
    seg_main.main(["train", *args])
    assert seen == {"test": False, "train": True}


# --- overlays (BASE) and the effective config ------------------------------------------------


def _overlay(tmp_path, text: str, name: str = "my.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_overlay_names_only_the_keys_it_changes(tmp_path):
    from segmentation.libs.utils.config import resolve_config

    path = _overlay(tmp_path, "BASE: voc12.yaml\nEXP:\n    ID: mine\nSOLVER:\n    ITER_MAX: 100\n")
    resolved = resolve_config(path, ["SOLVER.LR=1e-3"])
    cfg, origins = resolved.cfg, resolved.origins
    assert (cfg.EXP.ID, cfg.SOLVER.ITER_MAX, cfg.SOLVER.LR, cfg.SOLVER.ITER_SIZE) == ("mine", 100, 1e-3, 2)
    assert origins["SOLVER.ITER_MAX"].endswith("my.yaml") and origins["SOLVER.LR"] == "--set"
    assert origins["SOLVER.ITER_SIZE"].endswith("voc12.yaml")
    assert "dataset default" in origins["DATASET.SPLIT.TRAIN"]
    # A chain: BASE relative to the file, which itself has a BASE.
    top = _overlay(tmp_path, "BASE: my.yaml\nSOLVER:\n    ITER_MAX: 7\n", "top.yaml")
    cfg = load_config(top)
    assert (cfg.EXP.ID, cfg.SOLVER.ITER_MAX) == ("mine", 7)


@pytest.mark.parametrize("text, message", [
    ("BASE: voc12.yaml\nSOLVER:\n    ITERMAX: 3\n", "bad.yaml: unknown config key SOLVER.ITERMAX"),
    ("BASE: nope.yaml\n", "BASE 'nope.yaml' not found"),
    ("BASE: bad.yaml\n", "BASE chain loops"),
    ("SOLVER:\n    ITER_MAX: 3\n", "missing config keys .* or write only the keys you change below 'BASE: voc12.yaml'"),
])
def test_overlay_errors_name_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_overlay(tmp_path, text, "bad.yaml"))


def test_null_splits_follow_the_dataset(tmp_path):
    (tmp_path / "dataset.yaml").write_text("train_split: train\n")
    cfg = load_config(None, [f"DATASET.ROOT={tmp_path}"])
    assert (cfg.DATASET.SPLIT.TRAIN, cfg.DATASET.SPLIT.VAL) == ("train", "val")
    cfg = load_config(None, [f"DATASET.ROOT={tmp_path}", "DATASET.SPLIT.TRAIN=mine"])
    assert cfg.DATASET.SPLIT.TRAIN == "mine"


def test_config_command_prints_every_value_with_its_origin(tmp_path, capsys, monkeypatch):
    import yaml

    from segmentation import main as seg_main

    monkeypatch.chdir(tmp_path)
    path = _overlay(tmp_path, "BASE: voc12.yaml\nSOLVER:\n    ITER_MAX: 100\n")
    seg_main.main(["config", "-c", str(path), "--set", "SOLVER.AMP=bf16", "--set", f"DATASET.ROOT={tmp_path}"])
    text = capsys.readouterr().out
    origin, parents = {}, []
    for line in text.splitlines():  # "    KEY: value   # origin" -> {"SECTION.KEY": origin}
        depth = (len(line) - len(line.lstrip())) // 4
        parents = parents[:depth] + [line.split(":")[0].strip()]
        if "#" in line:
            origin[".".join(parents)] = line.split("#", 1)[1].strip()
    assert origin["SOLVER.ITER_MAX"] == "my.yaml" and origin["CRF.ITER_MAX"] == str(CONFIG_DIR / "voc12.yaml")
    assert origin["SOLVER.AMP"] == "--set"
    assert origin["DATASET.N_CLASSES"].startswith(str(CONFIG_DIR / "voc12.yaml"))
    assert "21 from the class list" in origin["DATASET.N_CLASSES"]
    assert len(origin) == len(schema())  # every key
    # The output is a complete config that loads to the same values.
    full = _overlay(tmp_path, text, "full.yaml")
    assert yaml.safe_load(text)["SOLVER"]["ITER_MAX"] == 100
    assert load_config(full) == load_config(path, ["SOLVER.AMP=bf16", f"DATASET.ROOT={tmp_path}"])


def test_stage7_overlay_is_voc12_with_two_keys_changed():
    overlay = load_config(CONFIG_DIR / "voc12_nsrm.yaml")
    assert overlay == load_config(None, ["EXP.ID=voc12_nsrm", "DATASET.LABEL_DIR=../classification/masked_labels"])
