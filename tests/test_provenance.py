"""Output folders record what produced them (nsrom/provenance.py): a run with another producer
stops instead of mixing, --overwrite redoes the folder, the same producer resumes.
Covers the shared module, gen_label.py, gen_masked_label.py, CAM export, segmentation logits and CRF labels."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from classification import gen_label, gen_masked_label
from classification import test as cam_export
from nsrom.files import write_json
from nsrom.images import write_grey, write_label
from nsrom.provenance import RECORD_NAME, Producer, StaleOutputError, prepare_output_dir, read_record
from segmentation import trainaug_pred
from segmentation.libs.models import build_model
from segmentation.libs.utils.config import CONFIG_DIR, load_config
from segmentation.libs.utils.paths import RunPaths
from runner import run as runner, stages as stage_module
from runner.context import RunContext
from runner.presets import PRESETS
from runner.run import run_pipeline


def _outputs(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(name)


# ---------------------------------------------------------------- the shared module
def test_same_producer_resumes_and_keeps_the_files(tmp_path):
    out = tmp_path / "out"
    producer = Producer("stage_x", {"thr": 0.3}, inputs={"maps": tmp_path})
    assert prepare_output_dir(out, producer, False, "*.png") is False
    record = read_record(out)
    assert record["stage"] == "stage_x" and record["settings"] == {"thr": 0.3}
    assert record["inputs"]["maps"] == {"path": str(tmp_path.resolve()), "producer": None}
    _outputs(out, "a.png", "b.png")
    prepare_output_dir(out, producer, False, "*.png")  # an interrupted run continues
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]


def test_other_settings_are_refused_with_what_differs_then_overwrite_redoes(tmp_path):
    out = tmp_path / "out"
    prepare_output_dir(out, Producer("stage_x", {"thr": 0.3}), False, "*.png")
    _outputs(out, "a.png", "notes.txt")
    with pytest.raises(StaleOutputError) as info:
        prepare_output_dir(out, Producer("stage_x", {"thr": 0.5}), False, "*.png")
    message = str(info.value)
    assert str(out) in message and "setting thr: 0.3 -> 0.5" in message and "--overwrite" in message
    assert (out / "a.png").is_file() and read_record(out)["settings"] == {"thr": 0.3}  # nothing touched
    prepare_output_dir(out, Producer("stage_x", {"thr": 0.5}), True, "*.png")
    assert not (out / "a.png").exists() and (out / "notes.txt").is_file()  # only the outputs go
    assert read_record(out)["settings"] == {"thr": 0.5}


def test_a_folder_under_an_output_name_is_named_before_anything_is_deleted(tmp_path):
    """--overwrite had stopped with IsADirectoryError half way through deleting the outputs."""
    from nsrom.errors import OutputError

    out = tmp_path / "out"
    prepare_output_dir(out, Producer("stage_x", {"thr": 0.3}), False, "*.png")
    _outputs(out, "a.png")
    (out / "b.png").mkdir()
    for overwrite in (False, True):
        with pytest.raises(OutputError, match=r"out/b.png is a folder where an output file goes \(1 such\); move"):
            prepare_output_dir(out, Producer("stage_x", {"thr": 0.5}), overwrite, "*.png")
    assert (out / "a.png").is_file() and read_record(out)["settings"] == {"thr": 0.3}


def test_outputs_without_a_record_are_refused(tmp_path):
    out = tmp_path / "out"
    _outputs(out, "a.npy")
    with pytest.raises(StaleOutputError, match=f"no record of what produced them \\({RECORD_NAME}"):
        prepare_output_dir(out, Producer("stage_x"), False, "*.npy")
    (out / RECORD_NAME).write_text("{ not json")  # unreadable: the same
    with pytest.raises(StaleOutputError, match="no record"):
        prepare_output_dir(out, Producer("stage_x"), False, "*.npy")
    prepare_output_dir(out, Producer("stage_x"), False, "*.png")  # no output of this pattern: nothing to mix


def test_checkpoint_is_identified_by_content_not_path(tmp_path):
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"weights v1")
    out = tmp_path / "out"
    prepare_output_dir(out, Producer("export", checkpoint=ckpt), False, "*.png")
    _outputs(out, "a.png")
    moved = tmp_path / "moved" / "model.pth"
    moved.parent.mkdir()
    shutil.copy(ckpt, moved)
    prepare_output_dir(out, Producer("export", checkpoint=moved), False, "*.png")  # same model: resume
    assert read_record(out)["checkpoint"]["path"] == str(moved.resolve())
    moved.write_bytes(b"weights v2")  # trained again
    with pytest.raises(StaleOutputError, match=r"checkpoint: .*model.pth \(sha256 [0-9a-f]{12}\) -> "):
        prepare_output_dir(out, Producer("export", checkpoint=moved), False, "*.png")


def test_input_folders_by_their_own_record_else_by_path(tmp_path):
    upstream, out = tmp_path / "cams", tmp_path / "labels"
    ckpt = tmp_path / "m.pth"
    ckpt.write_bytes(b"v1")
    prepare_output_dir(upstream, Producer("export", checkpoint=ckpt), False, "*.png")
    prepare_output_dir(out, Producer("labels", inputs={"cam": upstream, "sal": tmp_path / "sal"}), False, "*.png")
    _outputs(out, "a.png")
    # the upstream folder copied elsewhere with its record: the same producer
    shutil.copytree(upstream, tmp_path / "cams_copy")
    prepare_output_dir(out, Producer("labels", inputs={"cam": tmp_path / "cams_copy", "sal": tmp_path / "sal"}),
                       False, "*.png")
    # a new model upstream makes the labels stale: the message goes down to the checkpoint
    ckpt.write_bytes(b"v2")
    prepare_output_dir(upstream, Producer("export", checkpoint=ckpt), True, "*.png")
    with pytest.raises(StaleOutputError, match=f"input cam \\({upstream.resolve()}\\): checkpoint"):
        prepare_output_dir(out, Producer("labels", inputs={"cam": upstream, "sal": tmp_path / "sal"}), False, "*.png")
    # a folder without a record counts by its path
    with pytest.raises(StaleOutputError, match="input sal: .*sal \\(without a record\\) -> .*other"):
        prepare_output_dir(out, Producer("labels", inputs={"cam": tmp_path / "cams_copy", "sal": tmp_path / "other"}),
                           False, "*.png")


# ---------------------------------------------------------------- gen_label.py / gen_masked_label.py
@pytest.fixture()
def label_inputs(tmp_path):
    """Two images with hand-built saliency / OA-CAM / CAM maps (classes 0 and 1)."""
    sal = np.zeros((8, 8), np.uint8)
    sal[2:6, 2:6] = 255
    for image_id in ("a", "b"):
        write_grey(tmp_path / "sal" / f"{image_id}.png", sal)
        write_label(tmp_path / "pred" / f"{image_id}.png", (sal > 0).astype(np.uint8))
        for c in (0, 1):
            write_grey(tmp_path / "oacam" / f"{image_id}_{c}.png", sal // (c + 1))
            write_grey(tmp_path / "cam" / f"{image_id}_{c}.png", sal // (c + 1))
    (tmp_path / "list.txt").write_text("a 0 1\nb 0\n")
    write_json(tmp_path / "cam" / RECORD_NAME, Producer("export", {"arch": "vgg"}).record())
    return tmp_path


def _gen_label(tmp, *extra) -> int:
    return gen_label.main(["--list", str(tmp / "list.txt"), "--num-classes", "2", "--sal-dir", str(tmp / "sal"),
                           "--oacam-dir", str(tmp / "oacam"), "--cam-dir", str(tmp / "cam"),
                           "--out-dir", str(tmp / "out"), "--workers", "1", *extra])


def _refused(fn, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        fn()
    assert info.value.code == 2
    return capsys.readouterr().err


def test_gen_label_refuses_labels_of_other_rules_or_inputs(label_inputs, capsys):
    tmp = label_inputs
    assert _gen_label(tmp) == 0
    record = read_record(tmp / "out")
    assert record["settings"]["pom_cam_threshold"] == 0.3 and record["settings"]["pom"] is True
    assert record["inputs"]["cam"]["producer"]["settings"] == {"arch": "vgg"}
    # resume: a deleted label is redone, the other kept
    kept = (tmp / "out" / "b.png").stat().st_mtime_ns
    (tmp / "out" / "a.png").unlink()
    assert _gen_label(tmp) == 0
    assert (tmp / "out" / "a.png").is_file() and (tmp / "out" / "b.png").stat().st_mtime_ns == kept
    err = _refused(lambda: _gen_label(tmp, "--conflict-threshold", "0.95"), capsys)
    assert f"error: {tmp / 'out'} holds 2 outputs of another producer" in err
    assert "setting conflict_threshold: 0.9 -> 0.95" in err and "--overwrite" in err
    err = _refused(lambda: _gen_label(tmp, "--no-pom"), capsys)
    assert "setting pom: true -> false" in err and "input cam" in err
    shutil.copytree(tmp / "sal", tmp / "sal2")
    err = _refused(lambda: _gen_label(tmp, "--sal-dir", str(tmp / "sal2")), capsys)
    assert f"input saliency: {(tmp / 'sal').resolve()} (without a record) -> {(tmp / 'sal2').resolve()}" in err
    # the CAMs are exported again by another producer
    write_json(tmp / "cam" / RECORD_NAME, Producer("export", {"arch": "vgg", "epochs": 3}).record())
    err = _refused(lambda: _gen_label(tmp), capsys)
    assert "input cam" in err and "setting epochs: null -> 3" in err
    assert _gen_label(tmp, "--overwrite", "--no-pom") == 0
    assert read_record(tmp / "out")["settings"]["pom"] is False


def test_gen_masked_label_refuses_another_dilation(label_inputs, capsys):
    tmp = label_inputs
    assert _gen_label(tmp) == 0

    def masked(*extra):
        return gen_masked_label.main(["--list", str(tmp / "list.txt"), "--num-classes", "2", "--pred-dir",
                                      str(tmp / "pred"), "--pseudo-dir", str(tmp / "out"), "--sal-dir",
                                      str(tmp / "sal"), "--out-dir", str(tmp / "masked"), "--workers", "1", *extra])

    assert masked() == 0
    assert read_record(tmp / "masked")["inputs"]["pseudo_label"]["producer"]["stage"] == "gen_label"
    assert masked() == 0  # same producer: every label exists
    err = _refused(lambda: masked("--dilation", "5"), capsys)
    assert "setting dilation: 30 -> 5" in err
    assert masked("--dilation", "5", "--overwrite") == 0


# ---------------------------------------------------------------- CAM export
def test_cam_export_refuses_maps_of_a_retrained_model(synthetic_root, tmp_path, capsys):
    model = build_cls_checkpoint(tmp_path / "exp1" / "model" / "checkpoint_final.pth", seed=0)
    argv = ["--data-root", str(synthetic_root.root), "--runs-dir", str(tmp_path), "--input-size", "32",
            "--num-workers", "0", "--device", "cpu"]
    out = cam_export.main(argv)
    maps = sorted(out.glob("*.png"))
    assert maps and read_record(out)["checkpoint"]["sha256"]
    assert read_record(out)["settings"]["width_div"] == 16  # the width the network had: the checkpoint's
    cam_export.main(argv)  # same checkpoint: nothing to redo
    cam_export.main([*argv, "--width-div", "16"])  # the checkpoint's own width spelled out: the same producer
    build_cls_checkpoint(model, seed=1)  # trained again
    err = _refused(lambda: cam_export.main(argv), capsys)
    assert f"{out} holds {len(maps)} outputs of another producer" in err and "checkpoint:" in err
    err = _refused(lambda: cam_export.main([*argv, "--input-size", "48"]), capsys)
    assert "setting input_size: 32 -> 48" in err
    cam_export.main([*argv, "--overwrite"])
    assert sorted(out.glob("*.png")) == maps


def build_cls_checkpoint(path, seed):
    from classification.models import ARCHS

    torch.manual_seed(seed)
    model = ARCHS["vgg"](pretrained=False, num_classes=3, width_div=16)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "num_classes": 3, "width_div": 16}, path)
    return path


# ---------------------------------------------------------------- segmentation logits and CRF labels
def test_segmentation_logits_and_crf_labels_refuse_another_producer(synthetic_root, tmp_path, capsys):
    sets = [f"DATASET.ROOT={synthetic_root.root}", f"EXP.OUTPUT_DIR={tmp_path / 'out'}", "CRF.ITER_MAX=1"]
    # one --name for both checkpoints: their outputs share a folder (by default each would get its own)
    args = ["--config-path", str(CONFIG_DIR / "demo.yaml"), "--split", "val", "--name", "shared"]  # 4 images
    for item in sets:
        args += ["--set", item]
    cfg = load_config(CONFIG_DIR / "demo.yaml", sets)
    checkpoints = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        path = tmp_path / f"model_{seed}.pth"
        torch.save(build_model(cfg.MODEL, 4).state_dict(), path)
        checkpoints.append(str(path))
    paths = RunPaths.for_evaluation(cfg, name="shared")
    logit_dir, label_dir = paths.logit_dir("val"), paths.label_crf_dir("val")

    trainaug_pred.main(["test", *args, "--cpu", "-m", checkpoints[0]])
    trainaug_pred.main(["crf", *args, "-j", "1"])
    n = len(synthetic_root.ids("val"))
    assert len(list(label_dir.glob("*.png"))) == n
    assert read_record(label_dir)["inputs"]["logits"]["producer"]["stage"] == "segmentation.test"
    # resume: only the missing label is redone
    labels = sorted(label_dir.glob("*.png"))
    before = {p: p.stat().st_mtime_ns for p in labels[1:]}
    labels[0].unlink()
    trainaug_pred.main(["crf", *args, "-j", "1"])
    assert labels[0].is_file() and all(p.stat().st_mtime_ns == t for p, t in before.items())

    err = _refused(lambda: trainaug_pred.main(["test", *args, "--cpu", "-m", checkpoints[1]]), capsys)
    assert f"{logit_dir} holds {n} outputs of another producer" in err and "checkpoint:" in err
    assert "--overwrite" in err
    trainaug_pred.main(["test", *args, "--cpu", "-m", checkpoints[1], "--overwrite"])
    err = _refused(lambda: trainaug_pred.main(["crf", *args, "-j", "1"]), capsys)
    assert f"{label_dir} holds {n} outputs" in err and f"input logits ({logit_dir.resolve()}): checkpoint" in err
    trainaug_pred.main(["crf", *args, "-j", "1", "--overwrite"])
    err = _refused(lambda: trainaug_pred.main(["crf", *args, "-j", "1", "--set", "CRF.ITER_MAX=2"]), capsys)
    assert 'setting crf: {"ITER_MAX": 1' in err and '-> {"ITER_MAX": 2' in err
    assert json.loads((logit_dir / RECORD_NAME).read_text())["checkpoint"]["path"] == checkpoints[1]


# ---------------------------------------------------------------- the pipeline says how to redo
def test_pipeline_names_its_own_way_to_redo_a_stale_stage(synthetic_root, tmp_path, monkeypatch):
    def stale(ctx):
        raise StaleOutputError("W/pseudo_labels holds 3 outputs of another producer. Re-run with --overwrite.")

    patched = [dataclasses.replace(s, run=stale if s.name == "pseudo_label" else (lambda ctx: None))
               for s in stage_module.STAGES]
    monkeypatch.setattr(runner, "STAGES", patched)
    ctx = RunContext(synthetic_root.root, tmp_path, PRESETS["demo"], device="cpu")
    with pytest.raises(StaleOutputError, match="(?s)another producer.*--from pseudo_label redoes this stage"):
        run_pipeline(ctx)


def test_folder_digest_follows_the_names_and_contents_of_the_matching_files(tmp_path):
    from nsrom.provenance import folder_digest

    write_grey(tmp_path / "a_0.png", np.zeros((4, 4), np.uint8))
    write_grey(tmp_path / "b_1.png", np.full((4, 4), 7, np.uint8))
    first = folder_digest(tmp_path, "*_*.png")
    (tmp_path / "notes.txt").write_text("not a map")
    assert folder_digest(tmp_path, "*_*.png") == first
    write_grey(tmp_path / "b_1.png", np.full((4, 4), 8, np.uint8))  # same size, other content
    second = folder_digest(tmp_path, "*_*.png")
    assert second != first
    (tmp_path / "b_1.png").rename(tmp_path / "c_1.png")
    assert folder_digest(tmp_path, "*_*.png") not in (first, second)
    (tmp_path / "c_1.png").unlink()
    assert folder_digest(tmp_path, "*_*.png") != folder_digest(tmp_path / "missing", "*_*.png")
