"""IAM loss of docs/method.md, stage 2 against a direct computation."""

from __future__ import annotations

import math

import pytest
import torch

from classification.iam_loss import iam_loss


def direct(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    x, t = x.double(), t.double()
    p = torch.sigmoid(x)
    pos, neg = t > 0, t == 0
    loss = torch.zeros((), dtype=torch.float64)
    if pos.any():
        loss = loss + (-t[pos] * torch.log(p[pos])).sum() / pos.sum()
    if neg.any():
        loss = loss + (-torch.log(1 - p[neg])).sum() / neg.sum()
    return loss


def test_hand_computed_values():
    assert iam_loss(torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)).item() == pytest.approx(math.log(2))
    x = torch.zeros(1, 1, 1, 2)
    t = torch.tensor([[[[0.5, 0.0]]]])
    assert iam_loss(x, t).item() == pytest.approx(0.5 * math.log(2) + math.log(2))


def test_small_positive_targets_count_as_positive_and_only_zero_as_negative():
    # t = 1/255 (the smallest 8-bit map value) and 0.05 are positive pixels, only t = 0 negative.
    # x = 0 on all but the last pixel, x = ln 3 there: -log(1 - sigmoid(ln 3)) = ln 4 = 2 ln 2.
    x = torch.tensor([[[[0.0, 0.0], [0.0, math.log(3)]]]])
    t = torch.tensor([[[[1 / 255, 0.05], [0.0, 0.0]]]])
    positive = (1 / 255 + 0.05) * math.log(2) / 2  # mean of t * ln 2 over the two t > 0 pixels
    negative = (math.log(2) + 2 * math.log(2)) / 2  # mean over the two t == 0 pixels
    assert iam_loss(x, t).item() == pytest.approx(positive + negative, rel=1e-6)


def test_matches_direct_computation_on_a_random_map():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=gen) * 3
    t = torch.rand(2, 3, 4, 4, generator=gen)
    t[t < 0.5] = 0  # about half the pixels negative
    torch.testing.assert_close(iam_loss(x, t).double(), direct(x, t), rtol=1e-5, atol=1e-6)


def test_all_negative_target_is_the_negative_mean_only():
    x = torch.tensor([[[[-1.0, 2.0], [0.5, 3.0]]]])
    t = torch.zeros_like(x)
    torch.testing.assert_close(iam_loss(x, t).double(), (-torch.log(1 - torch.sigmoid(x.double()))).mean())


def test_all_positive_target_is_the_positive_mean_only():
    x = torch.tensor([[[[-1.0, 2.0], [0.5, 3.0]]]])
    t = torch.tensor([[[[1.0, 0.5], [0.25, 1.0]]]])
    torch.testing.assert_close(iam_loss(x, t).double(), (-t.double() * torch.log(torch.sigmoid(x.double()))).mean())


def test_stable_for_large_logits():
    x = torch.tensor([[[[100.0, -100.0]]]], requires_grad=True)
    t = torch.tensor([[[[0.0, 1.0]]]])  # both maximally wrong: softplus(100) = 100 each
    loss = iam_loss(x, t)
    assert loss.item() == pytest.approx(200.0)
    loss.backward()
    assert torch.isfinite(x.grad).all()


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        iam_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 8, 8))
