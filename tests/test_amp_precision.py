"""SOLVER.AMP / MODEL.CHANNELS_LAST and --amp / --channels-last: off is bit-identical, bf16 trains on the CPU."""

from __future__ import annotations

import copy

import pytest
import torch

from classification import train as cls_train
from classification.models import vgg
from classification.training import train_step as cls_train_step
from nsrom.errors import ConfigError
from nsrom.precision import Precision
from segmentation import main as seg_main
from segmentation.libs.models import build_model, freeze_bn
from segmentation.libs.train_step import train_step as seg_train_step
from segmentation.libs.utils.config import CONFIG_DIR, load_config
from segmentation.libs.utils.paths import RunPaths
from segmentation.libs.loss import msc_loss
from segmentation.libs.utils.solver import build_optimizer


def seg_model_and_batches(size: int = 33, n: int = 2):
    torch.manual_seed(0)
    cfg = load_config(CONFIG_DIR / "demo.yaml", ["MODEL.WIDTH_DIV=16"])
    model = build_model(cfg.MODEL, 3)
    model.train()
    freeze_bn(model)
    batches = [(torch.randn(2, 3, size, size), torch.randint(0, 3, (2, size, size))) for _ in range(n)]
    return cfg, model, batches


def test_segmentation_amp_off_is_bit_identical_to_plain_float32_step():
    cfg, model, batches = seg_model_and_batches()
    reference = copy.deepcopy(model)
    opt, ref_opt = build_optimizer(model, cfg.SOLVER), build_optimizer(reference, cfg.SOLVER)
    precision = Precision("off")
    for _ in range(2):
        seg_train_step(model, opt, iter(batches), iter_size=2, ignore_label=255, precision=precision,
                       scaler=precision.grad_scaler())
        ref_opt.zero_grad(set_to_none=True)  # the loop as it was before the switches existed
        for images, labels in batches:
            (msc_loss(reference(images), labels) / 2).backward()
        ref_opt.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name


def test_segmentation_bf16_channels_last_step_on_cpu():
    cfg, model, batches = seg_model_and_batches(size=17, n=1)
    before = copy.deepcopy(model)
    precision = Precision("bf16", channels_last=True)
    precision.prepare_model(model)
    seen = []
    model.base.aspp.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    loss = seg_train_step(model, build_optimizer(model, cfg.SOLVER), iter(batches), iter_size=1, ignore_label=255,
                          precision=precision, scaler=precision.grad_scaler())
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert set(seen) == {torch.bfloat16}
    assert model.base.aspp.c0.weight.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(model.base.aspp.c0.weight, before.base.aspp.c0.weight)


def test_grad_scaler_only_for_fp16_and_unknown_mode_refused():
    assert Precision("fp16").grad_scaler().is_enabled()
    assert not Precision("bf16").grad_scaler().is_enabled()
    assert not Precision("off").grad_scaler().is_enabled()
    with pytest.raises(ConfigError):
        Precision("fp8")
    with pytest.raises(ConfigError, match="SOLVER.AMP"):
        load_config(None, ["SOLVER.AMP=int8"])
    assert load_config(None, ["SOLVER.AMP=off"]).SOLVER.AMP == "off"  # YAML's off is false: read back as text


def test_segmentation_train_with_bf16_keys(synthetic_root, tmp_path):
    sets = [f"DATASET.ROOT={synthetic_root.root}", f"EXP.OUTPUT_DIR={tmp_path}", f"DATASET.LABEL_DIR={synthetic_root.mask_dir}",
            "IMAGE.SIZE.TRAIN=17", "SOLVER.BATCH_SIZE.TRAIN=2", "SOLVER.ITER_SIZE=1", "SOLVER.ITER_MAX=1",
            "SOLVER.ITER_TB=1", "SOLVER.AMP=bf16", "MODEL.CHANNELS_LAST=true", "MODEL.WIDTH_DIV=16"]
    args = ["train", "-c", str(CONFIG_DIR / "demo.yaml"), "--cpu", "--fully-supervised"]
    for s in sets:
        args += ["--set", s]
    final = seg_main.main(args)
    state = torch.load(final, weights_only=True)
    assert state["step"] == 1 and state["config"]["SOLVER"]["AMP"] == "bf16"
    assert final == RunPaths.from_config(load_config(CONFIG_DIR / "demo.yaml", sets)).final_checkpoint


def cls_model_and_batch():
    torch.manual_seed(0)
    model = vgg.vgg16(False, 3, 16)
    model.train()
    batch = {"image": torch.randn(2, 3, 32, 32), "label": torch.tensor([[1.0, 0, 1], [0, 1, 0]])}
    return model, batch


def test_classification_amp_off_is_bit_identical_to_plain_float32_step():
    model, batch = cls_model_and_batch()
    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    precision = Precision("off")
    for _ in range(2):
        cam, loss = cls_train_step(model, opt, batch, cls_train.classification_loss, precision, precision.grad_scaler())
        ref_cam = reference(batch["image"])  # the loop as it was before the switches existed
        ref_loss = cls_train.classification_loss(ref_cam, batch)
        ref_opt.zero_grad(set_to_none=True)
        ref_loss.backward()
        ref_opt.step()
        assert torch.equal(cam, ref_cam.detach()) and torch.equal(loss, ref_loss.detach())
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name


def test_classification_bf16_channels_last_flags(synthetic_root, tmp_path, capsys, monkeypatch):
    """--amp bf16 --channels-last reach stage 1's training steps: every forward runs in bfloat16 on
    channels-last weights (a step of the real loop, observed, not replaced)."""
    from classification import training

    args = ["--data-root", str(synthetic_root.root), "--runs-dir", str(tmp_path), "--input-size", "32",
            "--num-workers", "0", "--device", "cpu", "--epochs", "1", "--batch-size", "4", "--width-div", "16",
            "--no-pretrained", "--seed", "0", "--amp", "bf16", "--channels-last"]
    assert cls_train.build_parser().parse_args(args).amp == "bf16"
    real_step, outputs, layouts = training.train_step, [], []

    def observed_step(model, *rest):
        handle = model.register_forward_hook(lambda m, i, o: outputs.append(o.dtype))
        first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        layouts.append(first_conv.weight.is_contiguous(memory_format=torch.channels_last))
        try:
            return real_step(model, *rest)
        finally:
            handle.remove()

    monkeypatch.setattr(training, "train_step", observed_step)
    final = cls_train.main(args)
    assert final.is_file()
    assert outputs and set(outputs) == {torch.bfloat16} and all(layouts) and len(layouts) == len(outputs)
    with pytest.raises(SystemExit):
        cls_train.build_parser().parse_args([*args[:-2], "fp8"])  # --amp fp8
    assert "argument --amp: invalid choice: 'fp8'" in capsys.readouterr().err
