"""Evaluating any checkpoint under its own name; predictions as PNGs, overlays, the VOC server package; demo.py.

The networks are freshly initialised demo.yaml models saved as checkpoints (no
training): what is tested is where outputs go and that every file holds the
prediction that test/crf score.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nsrom.errors import ConfigError
from nsrom.images import overlay, read_label, read_rgb
from nsrom.metrics import confusion_matrix, scores
from nsrom.provenance import read_record
from segmentation import demo, main as seg_main, trainaug_pred
from segmentation.libs.data_config import mean_bgr
from segmentation.libs.crf_run import class_probabilities
from segmentation.libs.evaluate import upsample_logits
from segmentation.libs.models import build_model
from segmentation.libs.utils.config import CONFIG_DIR, load_config
from segmentation.libs.utils.crf import DenseCRF, wrapped_image
from segmentation.libs.utils.paths import RunPaths

DEMO = CONFIG_DIR / "demo.yaml"


def config_args(sets: list[str]) -> list[str]:
    args = ["-c", str(DEMO)]
    for s in sets:
        args += ["--set", s]
    return args


def save_fresh_model(cfg, path: Path, seed: int, wrapped: bool) -> None:
    """A newly initialised model in checkpoint layout (``{"model": ...}``) or as a plain state_dict."""
    torch.manual_seed(seed)
    model = build_model(cfg.MODEL, 4)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()} if wrapped else model.state_dict(), path)


@pytest.fixture()
def run(synthetic_root, tmp_path):
    """``--set`` values of a run whose checkpoint_final.pth exists, its config, and a foreign checkpoint_70.4.pth."""
    sets = [f"DATASET.ROOT={synthetic_root.root}", f"EXP.OUTPUT_DIR={tmp_path / 'out'}", "CRF.ITER_MAX=2"]
    cfg = load_config(DEMO, sets)
    save_fresh_model(cfg, RunPaths.from_config(cfg).final_checkpoint, seed=0, wrapped=True)
    foreign = tmp_path / "downloads" / "checkpoint_70.4.pth"
    save_fresh_model(cfg, foreign, seed=1, wrapped=False)
    return sets, cfg, foreign


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def test_output_names_of_named_checkpoints_and_crf_inputs():
    cfg = load_config(None, ["EXP.OUTPUT_DIR=out", "EXP.ID=stage7"])
    own = RunPaths.for_evaluation(cfg)
    assert own == RunPaths.from_config(cfg) and own.eval_name is None
    assert RunPaths.for_evaluation(cfg, own.final_checkpoint).eval_name is None  # the run's own checkpoint
    model = "deeplabv2_resnet101_msc"
    named = RunPaths.for_evaluation(cfg, "data/models/checkpoint_70.4.pth")
    assert named.eval_name == "checkpoint_70.4"
    assert named.logit_dir("val") == Path(f"out/features/stage7@checkpoint_70.4/{model}/val/logit")
    assert named.score_path("val", crf=True) == Path(f"out/scores/stage7@checkpoint_70.4/{model}/val/scores_crf.json")
    assert named.model_dir == own.model_dir  # checkpoints and logs never move
    assert RunPaths.for_evaluation(cfg, "x/checkpoint_70.4.pth", name="released").eval_name == "released"
    assert RunPaths.for_evaluation(cfg, None, name="mine").feature_dir("val") == Path(f"out/features/stage7@mine/{model}/val")
    for bad in ("", "..", "a/b"):
        with pytest.raises(ConfigError, match="plain folder name"):
            RunPaths.for_evaluation(cfg, None, name=bad)

    # what the CRF saw is in the name of every CRF output; the paper's input keeps the historical names
    rgb = RunPaths.from_config(load_config(None, ["EXP.OUTPUT_DIR=out", "EXP.ID=stage7", "CRF.WRAPPED_IMAGE=false"]))
    base = Path(f"out/features/stage7/{model}/test")
    assert (own.crf_tag, rgb.crf_tag) == ("crf", "crf_rgb")
    assert own.score_path("val", crf=False).name == rgb.score_path("val", crf=False).name == "scores.json"
    assert (own.score_path("val", True).name, rgb.score_path("val", True).name) == ("scores_crf.json", "scores_crf_rgb.json")
    assert (own.label_crf_dir("test"), rgb.label_crf_dir("test")) == (base / "label_crf", base / "label_crf_rgb")
    assert own.label_dir("test", crf=False) == base / "label" and own.overlay_dir("test", crf=True) == base / "overlay_crf"
    assert rgb.server_label_dir("test", crf=True) == base / "voc_server_crf_rgb/results/VOC2012/Segmentation/comp6_test_cls"
    assert rgb.server_archive("test", crf=False) == base / "voc_server.tar.gz"


def test_a_foreign_checkpoint_writes_under_its_own_name_and_never_touches_the_run(run, capsys):
    sets, cfg, foreign = run
    args = config_args(sets)
    own = RunPaths.from_config(cfg)
    seg_main.main(["test", *args, "--cpu"])
    seg_main.main(["crf", *args, "-j", "1"])
    before = [snapshot(own.feature_dir("val")), snapshot(own.score_dir("val"))]

    seg_main.main(["test", *args, "--cpu", "--model-path", str(foreign)])
    named = RunPaths.for_evaluation(cfg, foreign)
    assert "checkpoint_70.4.pth" in read_record(named.logit_dir("val"))["checkpoint"]["path"]
    with pytest.raises(SystemExit):  # crf finds logits only under the name test used
        seg_main.main(["crf", *args, "-j", "1", "--name", "other"])
    assert "same option" in capsys.readouterr().err
    seg_main.main(["crf", *args, "-j", "1", "--model-path", str(foreign)])  # demo.yaml: 8-bit RGB input
    seg_main.main(["crf", *args, "-j", "1", "--name", "checkpoint_70.4", "--set", "CRF.WRAPPED_IMAGE=true"])
    assert sorted(p.name for p in named.score_dir("val").iterdir()) == ["scores.json", "scores_crf.json", "scores_crf_rgb.json"]
    assert len(list(named.logit_dir("val").glob("*.npy"))) == 4
    # the run's own logits, stamp and scores are exactly as they were
    assert [snapshot(own.feature_dir("val")), snapshot(own.score_dir("val"))] == before
    own_scores = json.loads(own.score_path("val", crf=False).read_text())
    assert own_scores != json.loads(named.score_path("val", crf=False).read_text())  # another network was evaluated


def test_saved_pngs_and_overlays_are_the_scored_predictions(run, synthetic_root):
    sets, cfg, _ = run
    args = config_args(sets)
    paths = RunPaths.from_config(cfg)
    seg_main.main(["test", *args, "--cpu", "--save-png", "--save-overlay"])
    val_ids = synthetic_root.ids("val")
    matrix = 0
    for image_id in val_ids:
        png = Image.open(paths.label_dir("val", crf=False) / f"{image_id}.png")
        assert png.mode == "P"
        label = np.asarray(png)
        logits = np.load(paths.logit_dir("val") / f"{image_id}.npy")
        np.testing.assert_array_equal(label, upsample_logits(logits, label.shape).argmax(0).numpy())
        rgb = read_rgb(synthetic_root.image_path(image_id))
        jpeg = read_rgb(paths.overlay_dir("val", crf=False) / f"{image_id}.jpg")
        assert jpeg.shape == rgb.shape
        error = np.abs(jpeg.astype(int) - overlay(rgb, label)).mean()  # a JPEG of the blend: close, not equal
        assert error < 10 and error < np.abs(jpeg.astype(int) - rgb).mean() / 2, error
        matrix = matrix + confusion_matrix(read_label(synthetic_root.mask_path(image_id)), label, 4)
    assert scores(matrix, synthetic_root.class_names()) == json.loads(paths.score_path("val", crf=False).read_text())

    result = seg_main.main(["crf", *args, "-j", "1", "--save-png"])
    crf_matrix = sum(confusion_matrix(read_label(synthetic_root.mask_path(i)),
                                      read_label(paths.label_crf_dir("val") / f"{i}.png"), 4) for i in val_ids)
    assert scores(crf_matrix, synthetic_root.class_names()) == result
    assert paths.label_crf_dir("val").name == "label_crf_rgb" and not paths.overlay_dir("val", crf=True).exists()


def test_overlay_tints_objects_and_keeps_background():
    rgb = np.array([[[100, 100, 100], [0, 0, 0]], [[255, 255, 255], [10, 20, 30]]], dtype=np.uint8)
    label = np.array([[0, 1], [15, 0]], dtype=np.uint8)  # VOC colours: 1 (128, 0, 0), 15 (192, 128, 128)
    expected = np.array([[[100, 100, 100], [64, 0, 0]], [[224, 192, 192], [10, 20, 30]]], dtype=np.uint8)
    np.testing.assert_array_equal(overlay(rgb, label), expected)
    with pytest.raises(ValueError, match="sizes differ"):
        overlay(rgb, label[:1])


@pytest.fixture()
def test_split_root(synthetic_root, tmp_path):
    """A VOC-like root whose split ``test`` (the val images) has images but no masks."""
    root = tmp_path / "voc_test"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "JPEGImages").symlink_to(synthetic_root.image_dir)
    shutil.copy(synthetic_root.labels_path, root / "labels.txt")
    ids = synthetic_root.ids("val")
    (root / "ImageSets" / "Segmentation" / "test.txt").write_text("\n".join(ids) + "\n")
    return root, ids


def test_split_without_masks_is_packed_for_the_voc_server(run, test_split_root):
    sets, _, foreign = run
    root, ids = test_split_root
    sets = [*sets, f"DATASET.ROOT={root}"]
    args = [*config_args(sets), "--model-path", str(foreign)]
    assert seg_main.main(["test", *args, "--cpu", "--split", "test", "--voc-server"]) is None  # no masks: no scores
    assert trainaug_pred.main(["crf", *args, "-j", "1", "--split", "test", "--voc-server"]) is None
    paths = RunPaths.for_evaluation(load_config(DEMO, sets), foreign)
    assert not paths.score_dir("test").exists()
    for crf in (False, True):
        label_dir = paths.label_dir("test", crf)
        with tarfile.open(paths.server_archive("test", crf)) as tar:
            names = tar.getnames()
            assert names == [f"results/VOC2012/Segmentation/comp6_test_cls/{i}.png" for i in ids]
            for image_id, name in zip(ids, names):
                png = Image.open(tar.extractfile(name))
                assert png.mode == "P" and png.getpalette()[3:6] == [128, 0, 0]
                np.testing.assert_array_equal(np.asarray(png), read_label(label_dir / f"{image_id}.png"))
        assert sorted(p.stem for p in paths.server_label_dir("test", crf).iterdir()) == sorted(ids)


def test_demo_predicts_images_like_test_and_crf(run, synthetic_root, tmp_path, capsys):
    sets, cfg, foreign = run
    args = config_args(sets)
    inputs = tmp_path / "photos"
    inputs.mkdir()
    val_ids = synthetic_root.ids("val")[:2]
    for image_id in val_ids:
        shutil.copy(synthetic_root.image_path(image_id), inputs / f"{image_id}.jpg")
    seg_main.main(["test", *args, "--cpu", "-m", str(foreign), "--save-png"])
    seg_main.main(["crf", *args, "-j", "1", "-m", str(foreign), "--save-png"])
    paths = RunPaths.for_evaluation(cfg, foreign)
    demo_args = ["-c", str(DEMO), "--set", "CRF.ITER_MAX=2", "--set", f"DATASET.LABELS={synthetic_root.labels_path}",
                 "-m", str(foreign), "--cpu"]  # no dataset: the class list alone
    for crf, label_dir in ((False, paths.label_dir("val", False)), (True, paths.label_crf_dir("val"))):
        out = tmp_path / f"demo_{crf}"
        written = demo.main([*demo_args, "--input", str(inputs), "--out", str(out), "--crf" if crf else "--no-crf"])
        assert [p.name for p in written] == [f"{i}.png" for i in val_ids]
        for image_id in val_ids:
            np.testing.assert_array_equal(read_label(out / f"{image_id}.png"), read_label(label_dir / f"{image_id}.png"))
            assert (out / f"{image_id}_overlay.jpg").is_file()
    one = demo.main([*demo_args, "--input", str(inputs / f"{val_ids[0]}.jpg"), "--out", str(tmp_path / "one")])
    assert [p.name for p in one] == [f"{val_ids[0]}.png"]

    with pytest.raises(SystemExit) as exc:  # the inputs' folder: the next run would read the labels as images
        demo.main([*demo_args, "--input", str(inputs), "--out", str(inputs)])
    assert exc.value.code == 2 and "is the folder of the input images" in capsys.readouterr().err
    (inputs / f"{val_ids[0]}.png").write_bytes(b"")
    with pytest.raises(SystemExit) as exc:
        demo.main([*demo_args, "--input", str(inputs), "--out", str(tmp_path / "two")])
    assert exc.value.code == 2 and f"named {val_ids[0]}" in capsys.readouterr().err
    (inputs / f"{val_ids[0]}.png").unlink()
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # unreadable: named, the others written
    Image.new("RGB", (1, 5)).save(inputs / "dot.png")  # too small for the 0.5 scale: named, the others written
    with pytest.raises(SystemExit) as exc:
        demo.main([*demo_args, "--input", str(inputs), "--out", str(tmp_path / "three")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "2 of 4 images could not be read or were too small (broken.jpg, dot.png); the " \
                                   "others' labels are written" in err
    assert f"image {inputs / 'dot.png'} is 1x5 (WxH); the network needs at least 2 pixels on each side" in err
    assert sorted(p.name for p in (tmp_path / "three").glob("*.png")) == sorted(f"{i}.png" for i in val_ids)
    with pytest.raises(SystemExit):
        demo.main([*demo_args, "--input", str(tmp_path / "nothing.jpg"), "--out", str(tmp_path / "x")])
    assert "neither an image nor a folder" in capsys.readouterr().err


def test_crf_names_a_mask_whose_shape_differs_from_its_image(synthetic_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root.root, root)
    sets = [f"DATASET.ROOT={root}", f"EXP.OUTPUT_DIR={tmp_path / 'out'}", "CRF.ITER_MAX=1"]
    cfg = load_config(DEMO, sets)
    save_fresh_model(cfg, RunPaths.from_config(cfg).final_checkpoint, seed=0, wrapped=True)
    seg_main.main(["test", *config_args(sets), "--cpu"])
    mask = synthetic_root.mask_path(synthetic_root.ids("val")[0])
    mask = root / mask.relative_to(synthetic_root.root)
    cropped = Image.open(mask)
    cropped.crop((0, 0, cropped.width, cropped.height - 16)).save(mask)  # palette kept, 16 rows fewer
    with pytest.raises(SystemExit) as exc:
        seg_main.main(["crf", *config_args(sets), "-j", "1", "--no-check-data"])
    err = capsys.readouterr().err
    assert exc.value.code != 0 and str(mask) in err and "Traceback" not in err


def test_confusion_matrix_refuses_a_transposed_mask():
    gt = np.zeros((2, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(gt, gt.T, 2)


def test_crf_wrapped_image_switch_reaches_the_crf(run, synthetic_root):
    """CRF.WRAPPED_IMAGE=true hands the CRF deeplab-pytorch's wrapped image, false the 8-bit image itself."""
    sets, cfg, _ = run
    seg_main.main(["test", *config_args(sets), "--cpu"])
    paths, ids = RunPaths.from_config(cfg), synthetic_root.ids("val")
    written = {}
    for wrapped in (False, True):
        switch = [*sets, f"CRF.WRAPPED_IMAGE={str(wrapped).lower()}"]
        seg_main.main(["crf", *config_args(switch), "-j", "1", "--save-png"])
        label_dir = RunPaths.from_config(load_config(DEMO, switch)).label_crf_dir("val")  # one folder per image
        written[wrapped] = {i: read_label(label_dir / f"{i}.png") for i in ids}
    crf = DenseCRF.from_config(cfg.CRF)
    for image_id in ids:
        rgb = read_rgb(synthetic_root.image_path(image_id))
        prob = class_probabilities(torch.from_numpy(np.load(paths.logit_dir("val") / f"{image_id}.npy")), rgb.shape[:2])
        for wrapped, image in ((False, rgb), (True, wrapped_image(rgb, tuple(mean_bgr(cfg))))):
            np.testing.assert_array_equal(written[wrapped][image_id], crf.labels([image], [prob])[0])
    assert any(not np.array_equal(written[False][i], written[True][i]) for i in ids)


def test_crf_refuses_logits_made_from_another_datasets_images(run, synthetic_root, tmp_path, capsys):
    """Logits of test on one DATASET.ROOT, crf on another with the same ids: refused, the scores kept."""
    sets, cfg, _ = run
    seg_main.main(["test", *config_args(sets), "--cpu"])
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_root.root, copy)
    scores_path = RunPaths.from_config(cfg).score_path("val", crf=True)
    other = [s for s in sets if not s.startswith("DATASET.ROOT=")] + [f"DATASET.ROOT={copy}"]
    with pytest.raises(SystemExit):
        seg_main.main(["crf", *config_args(other), "-j", "1"])
    err = capsys.readouterr().err
    assert f"were made by test from the images of {synthetic_root.image_dir.resolve()}, this crf reads " \
           f"{(copy / 'JPEGImages').resolve()} (DATASET.ROOT)" in err and "Traceback" not in err
    assert not scores_path.exists()
    seg_main.main(["crf", *config_args(sets), "-j", "1"])  # the dataset test ran on: as before
    assert scores_path.is_file()


def test_a_split_without_a_list_names_the_segmentation_flag(run, synthetic_root, capsys):
    sets, _, _ = run
    with pytest.raises(SystemExit):
        seg_main.main(["test", *config_args(sets), "--cpu", "--split", "tset"])
    err = capsys.readouterr().err
    lists = synthetic_root.list_dir
    assert f"image list not found: {lists / 'tset.txt'}; {lists} holds train_aug, val: name the one to use with " \
           "--split (or DATASET.SPLIT.TRAIN / DATASET.SPLIT.VAL)" in err and "--train-split" not in err


def test_output_size_is_the_networks_for_every_input_size():
    """The shape check of saved logits rests on this arithmetic: it must be the network's own."""
    from segmentation.libs.models.resnet import output_size

    cfg = load_config(DEMO, ["MODEL.WIDTH_DIV=16"])
    model = build_model(cfg.MODEL, 3).eval()
    with torch.no_grad():
        for height, width in [(2, 2), (3, 5), (9, 17), (16, 16), (17, 33), (54, 64), (97, 121), (321, 333)]:
            out = model(torch.zeros(1, 3, height, width))
            assert tuple(out.shape[2:]) == output_size(height, width), (height, width)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b""), "cannot read the logits .*No data left in file"),
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "cannot read the logits .*EOF"),
    (lambda p: np.save(p, np.zeros((4, 3, 3), np.float32)), r"have shape \(4, 3, 3\), but an image of .* gives "
                                                            r"\(4, \d+, \d+\): made for another image"),
    (lambda p: np.save(p, np.zeros((6, 9, 9), np.float32)), r"have shape \(6, 9, 9\)"),
])
def test_damaged_or_foreign_logits_are_named_by_test_and_crf(run, synthetic_root, capsys, damage, message):
    """An empty .npy had read as Ctrl-C (click takes an EOFError for it), a cut one as a traceback, and
    logits of another image's size were upsampled and scored as if they fit."""
    sets, cfg, _ = run
    seg_main.main(["test", *config_args(sets), "--cpu"])
    path = RunPaths.from_config(cfg).logit_dir("val") / f"{synthetic_root.ids('val')[0]}.npy"
    damage(path)
    for command in (["test", "--cpu"], ["crf", "-j", "1"], ["crf", "-j", "1", "--set", "CRF.BACKEND=torch", "--cpu"]):
        with pytest.raises(SystemExit) as exc:
            seg_main.main([command[0], *config_args(sets), *command[1:]])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "Traceback" not in err and "interrupted" not in err, command
        assert re.search(message, err) and str(path) in err and "main.py test --overwrite" in err, (command, err)


def test_logits_of_other_dilations_or_remade_images_are_another_producer(run, synthetic_root, tmp_path, capsys):
    """The dilations are no weights (the checkpoint's hash misses them) and a dataset made again in place keeps
    its ids: both make the saved logits stale instead of being reused."""
    sets, cfg, _ = run
    root = tmp_path / "data"
    shutil.copytree(synthetic_root.root, root)
    here = [s for s in sets if not s.startswith("DATASET.ROOT=")] + [f"DATASET.ROOT={root}"]
    seg_main.main(["test", *config_args(here), "--cpu"])
    with pytest.raises(SystemExit):
        seg_main.main(["test", *config_args([*here, "MODEL.ATROUS_RATES=[2, 4, 6, 8]"]), "--cpu"])
    assert "setting atrous_rates: [1, 2, 3, 4] -> [2, 4, 6, 8]" in capsys.readouterr().err
    image = root / "JPEGImages" / f"{synthetic_root.ids('val')[0]}.jpg"
    Image.fromarray(255 - read_rgb(image)).save(image, quality=50)  # the same id, another picture
    with pytest.raises(SystemExit):
        seg_main.main(["test", *config_args(here), "--cpu"])
    assert "setting images_digest:" in capsys.readouterr().err


def test_a_crf_label_of_another_size_left_by_an_earlier_run_is_named(run, synthetic_root, capsys):
    """It had been kept without a word, or blamed on the ground-truth mask."""
    sets, cfg, _ = run
    seg_main.main(["test", *config_args(sets), "--cpu"])
    seg_main.main(["crf", *config_args(sets), "-j", "1", "--save-png"])
    label = RunPaths.from_config(cfg).label_crf_dir("val") / f"{synthetic_root.ids('val')[1]}.png"
    Image.open(label).crop((0, 0, 20, 30)).save(label)
    (RunPaths.from_config(cfg).score_path("val", crf=True)).unlink()
    with pytest.raises(SystemExit):
        seg_main.main(["crf", *config_args(sets), "-j", "1", "--save-png"])
    err = capsys.readouterr().err
    assert f"CRF label {label} of an earlier run is 30x20 (HxW)" in err and "--overwrite redoes" in err
    assert "ground-truth" not in err
