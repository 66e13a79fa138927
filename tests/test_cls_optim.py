"""Four-group SGD and the step schedule of docs/method.md, stage 1 ("Optimiser")."""

from __future__ import annotations

import pytest

from classification.models import vgg, vgg1
from classification.optim import build_optimizer, lr_at_epoch, lr_at_step, parameter_groups, set_epoch_lr, set_lr


@pytest.mark.parametrize("build", [vgg.vgg16, vgg1.vgg16])
def test_groups_split_backbone_head_weights_biases(build):
    model = build(num_classes=3, width_div=16)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [[names[id(p)] for p in g] for g in parameter_groups(model)]
    assert groups[0] == [f"features.{i}.weight" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)]
    assert groups[1] == [f"features.{i}.bias" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)]
    cls = "extra_convs_3.1" if build is vgg.vgg16 else "extra_convs_3.0"
    assert groups[2] == [
        "extra_convs_1.0.weight", "extra_convs_1.2.weight", "extra_convs_1.4.weight",
        "extra_convs_2.conv_state.weight", "extra_convs_2.conv_proj.weight", "extra_convs_2.gcn.conv1.weight",
        "extra_convs_2.gcn.conv2.weight", "extra_convs_2.conv_extend.weight", "extra_convs_2.blocker.weight",
        f"{cls}.weight",
    ]
    assert groups[3] == [
        "extra_convs_1.0.bias", "extra_convs_1.2.bias", "extra_convs_1.4.bias",
        "extra_convs_2.conv_state.bias", "extra_convs_2.conv_proj.bias", "extra_convs_2.gcn.conv1.bias",
        "extra_convs_2.blocker.bias", f"{cls}.bias",
    ]


def test_sgd_settings_and_group_rates():
    opt = build_optimizer(vgg.vgg16(num_classes=3, width_div=16), lr=1e-3)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 2e-3, 1e-2, 2e-2])
    for g in opt.param_groups:
        assert g["momentum"] == 0.9 and g["nesterov"] is True and g["weight_decay"] == 5e-4


@pytest.mark.parametrize("epoch, lr", [(0, 1e-3), (4, 1e-3), (5, 1e-4), (9, 1e-4), (10, 1e-5), (14, 1e-5)])
def test_step_decay_at_epochs_5_and_10(epoch, lr):
    assert lr_at_epoch(1e-3, epoch) == pytest.approx(lr)
    opt = build_optimizer(vgg.vgg16(num_classes=3, width_div=16), lr=1e-3)
    set_epoch_lr(opt, 1e-3, 14)  # going back in time works too (resume)
    assert set_epoch_lr(opt, 1e-3, epoch) == pytest.approx(lr)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr, 2 * lr, 10 * lr, 20 * lr])


def test_no_decay_points():
    assert lr_at_epoch(0.01, 12, []) == 0.01


def test_no_warmup_is_the_epoch_rate():
    assert [lr_at_step(1e-3, e, s) for e, s in [(0, 0), (4, 99), (5, 100)]] == pytest.approx([1e-3, 1e-3, 1e-4])


def test_linear_warmup_over_the_first_steps():
    # 4 warm-up steps: 1/4, 2/4, 3/4, then the epoch's rate; a decay point inside the
    # warm-up scales the decayed rate.
    rates = [lr_at_step(8e-4, 0, s, (5, 10), warmup_steps=4) for s in range(6)]
    assert rates == pytest.approx([2e-4, 4e-4, 6e-4, 8e-4, 8e-4, 8e-4])
    assert lr_at_step(8e-4, 1, 2, (1,), warmup_steps=4) == pytest.approx(8e-5 * 3 / 4)
    opt = build_optimizer(vgg.vgg16(num_classes=3, width_div=16), lr=1e-3)
    assert set_lr(opt, 5e-4) == 5e-4
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([5e-4, 1e-3, 5e-3, 1e-2])


@pytest.mark.parametrize("text", ["-1", "1.5", "ten"])
def test_warmup_steps_must_be_a_count(text, capsys):
    from classification import train

    with pytest.raises(SystemExit):
        train.build_parser().parse_args(["--warmup-steps", text])
    assert "--warmup-steps" in capsys.readouterr().err
    assert train.build_parser().parse_args(["--warmup-steps", "60"]).warmup_steps == 60
    assert train.build_parser().parse_args([]).warmup_steps == 0  # the paper: no warm-up
