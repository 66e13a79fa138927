"""GloRe unit (docs/method.md, stage 1, "GloRe unit"): structure, exact computation, gradients."""

from __future__ import annotations

import pytest
import torch

from classification.models.global_reasoning_unit import BLOCKER_BN_EPS, GloReUnit2d, _autocast_on


def test_parameter_shapes_at_full_width():
    unit = GloReUnit2d(512, 64)
    shapes = {k: tuple(v.shape) for k, v in unit.state_dict().items()}
    assert shapes == {
        "conv_state.weight": (128, 512, 1, 1), "conv_state.bias": (128,),
        "conv_proj.weight": (64, 512, 1, 1), "conv_proj.bias": (64,),
        "gcn.conv1.weight": (64, 64, 1), "gcn.conv1.bias": (64,),
        "gcn.conv2.weight": (128, 128, 1),
        "conv_extend.weight": (512, 128, 1, 1),
        "blocker.weight": (512,), "blocker.bias": (512,),
        "blocker.running_mean": (512,), "blocker.running_var": (512,), "blocker.num_batches_tracked": (),
    }
    assert unit.blocker.eps == BLOCKER_BN_EPS == 1e-4


def test_output_shape_keeps_input_shape():
    unit = GloReUnit2d(16, 4)
    x = torch.randn(2, 16, 5, 7)
    assert unit(x).shape == x.shape


def test_matches_direct_formula_without_normalisation_by_n():
    torch.manual_seed(0)
    unit = GloReUnit2d(6, 2).double().eval()
    with torch.no_grad():
        for p in unit.parameters():
            p.uniform_(-1, 1)
        unit.blocker.running_mean.uniform_(-1, 1)
        unit.blocker.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    n = 12
    xf = x.reshape(2, 6, n)
    state = torch.einsum("oc,bcn->bon", unit.conv_state.weight[:, :, 0, 0], xf) + unit.conv_state.bias[None, :, None]
    proj = torch.einsum("oc,bcn->bon", unit.conv_proj.weight[:, :, 0, 0], xf) + unit.conv_proj.bias[None, :, None]
    v = torch.einsum("bsn,bkn->bsk", state, proj)  # (B, 4 states, 2 nodes), a plain sum over pixels
    # conv1 over the node axis: v'[s, k] = sum_j W1[k, j] v[s, j] + b1[k]
    h = torch.einsum("kj,bsj->bsk", unit.gcn.conv1.weight[:, :, 0], v) + unit.gcn.conv1.bias[None, None, :]
    h = torch.relu(h + v)
    h = torch.einsum("ts,bsk->btk", unit.gcn.conv2.weight[:, :, 0], h)
    back = torch.einsum("bsk,bkn->bsn", h, proj)
    ext = torch.einsum("os,bsn->bon", unit.conv_extend.weight[:, :, 0, 0], back).reshape(2, 6, 3, 4)
    bn = unit.blocker
    normed = (ext - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + 1e-4)
    expected = x + normed * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    torch.testing.assert_close(unit(x), expected)


def test_gradient_reaches_every_parameter_and_the_input():
    torch.manual_seed(1)
    unit = GloReUnit2d(8, 2)
    with torch.no_grad():
        unit.blocker.weight.fill_(1.0)
    x = torch.randn(3, 8, 4, 4, requires_grad=True)
    (unit(x) ** 2).sum().backward()
    for name, p in unit.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_under_autocast_the_unit_computes_in_float32():
    """The two products sum over every pixel: in float16 ``back`` passes 65504 at the sizes of a
    256-pixel input. Under autocast the unit computes in float32 (the same numbers as without it)."""
    torch.manual_seed(0)
    unit = GloReUnit2d(64, 16).eval()
    x = 10.0 * torch.rand(1, 64, 32, 32)  # at this width, features that overflow float16 in the products
    plain = unit(x)
    with torch.autocast("cpu", dtype=torch.float16):
        if not _autocast_on("cpu"):  # torch before 2.2 has no float16 autocast on the CPU
            pytest.skip("this torch has no float16 autocast on the CPU")
        inner = unit._forward(x.half())  # what autocast alone would compute
        guarded = unit(x)
    assert not torch.isfinite(inner).all()  # the overflow this guards against
    assert guarded.dtype == torch.float32 and torch.equal(guarded, plain)
