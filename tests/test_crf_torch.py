"""The PyTorch dense CRF (stage 4, crf): permutohedral lattice, mean-field model, agreement with pydensecrf."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
import torch

from nsrom.errors import ConfigError, NsromError
from segmentation.libs.utils.config import CONFIG_DIR, load_config
from segmentation.libs.utils.crf import DenseCRF, resolve_backend
from segmentation.libs.utils.crf_torch import CrfParams, _Kernel, dense_crf
from segmentation.libs.utils.permutohedral import PermutohedralLattice, slice_alpha


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one thread avoids spinning thread pools on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def grid_points(n: int, spacing: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float() * spacing


@pytest.mark.parametrize("d", [1, 2, 5])
def test_isolated_point_on_a_vertex(d):
    # Splat puts all weight on the vertex at the origin; the blur sends half of it to a neighbour
    # along each direction in turn, and 2^-(d+1) comes back after the d+1 steps; slice scales by alpha.
    lattice = PermutohedralLattice.build(torch.zeros(1, d))
    assert lattice.weights[0].tolist() == [1.0] + [0.0] * d
    assert slice_alpha(d) == pytest.approx(1 / (1 + 2.0 ** -d))
    expected = (1 + 2.0 ** -(d + 1)) / (1 + 2.0 ** -d)
    assert lattice.filter(torch.tensor([[3.0]]))[0, 0].item() == pytest.approx(3 * expected, rel=1e-6)


def test_segments_keep_point_sets_apart():
    # two points at the same feature in different images do not see each other
    lattice = PermutohedralLattice.build(torch.zeros(2, 2), segments=torch.tensor([0, 1]))
    out = lattice.filter(torch.tensor([[1.0], [5.0]]))[:, 0]
    assert out.tolist() == pytest.approx([0.9, 4.5], rel=1e-6)
    together = PermutohedralLattice.build(torch.zeros(2, 2)).filter(torch.tensor([[1.0], [5.0]]))[:, 0]
    assert together.tolist() == pytest.approx([5.4, 5.4], rel=1e-6)


def test_barycentric_weights_split_each_point():
    features = torch.rand(500, 5, generator=torch.Generator().manual_seed(0)) * 6
    lattice = PermutohedralLattice.build(features)
    assert torch.allclose(lattice.weights.sum(dim=1), torch.ones(500), atol=1e-6)
    assert lattice.weights.min() >= 0
    # the d+1 vertices of a point are distinct lattice rows
    assert all(len(set(row)) == 6 for row in lattice.offsets.tolist())
    # constant in, constant times K1 out (linear filter)
    ones = lattice.filter(torch.ones(500, 1))
    assert torch.allclose(lattice.filter(torch.full((500, 3), 2.0)), 2 * ones.expand(500, 3), rtol=1e-6)


def test_splat_by_segments_equals_index_add():
    # the GPU's splat (segment sums over pairs sorted at build time) gives the CPU's sums bit for bit
    features = torch.rand(400, 5, generator=torch.Generator().manual_seed(2)) * torch.tensor([2.0, 2, 1, 1, 1])
    lattice = PermutohedralLattice.build(features)
    values = torch.rand(400, 7, generator=torch.Generator().manual_seed(3))
    table = lattice.splat(values, by_segments=False)
    assert table.shape == (lattice.n_vertices + 1, 7) and not table[0].any()
    assert torch.equal(lattice.splat(values, by_segments=True), table)
    assert table.sum().item() == pytest.approx(values.sum().item(), rel=1e-5)  # weights sum to one per point


def test_filter_approximates_a_unit_gaussian():
    points = grid_points(24, 0.25)  # std 1 covers 4 grid steps
    values = (points[:, 0] < 3).float()[:, None]
    lattice = PermutohedralLattice.build(points)
    filtered = lattice.filter(torch.cat([values, torch.ones_like(values)], dim=1))
    estimate = filtered[:, 0] / filtered[:, 1]
    inner = ((points > 1.5) & (points < 4.5)).all(dim=1)
    dist2 = torch.cdist(points, points) ** 2

    def error(std: float) -> float:
        k = torch.exp(-dist2 / (2 * std * std))
        return (estimate - (k @ values)[:, 0] / k.sum(dim=1))[inner].abs().max().item()

    assert error(1.0) < 0.03
    assert error(0.8) > 0.05 and error(1.25) > 0.05


def test_symmetric_normalisation():
    points = grid_points(16, 0.5)
    segments = torch.zeros(len(points), dtype=torch.int64)
    kernel = _Kernel(points, segments, weight=2.0)
    k_ones = kernel.lattice.filter(torch.ones(len(points), 1))
    assert torch.allclose(kernel.norm, k_ones ** -0.5, rtol=1e-6)
    q = torch.rand(len(points), 3, generator=torch.Generator().manual_seed(1))
    expected = 2.0 * kernel.norm * kernel.lattice.filter(kernel.norm * q)
    assert torch.equal(kernel.message(q), expected)
    # n^-1/2 K n^-1/2 maps a constant to about the same constant away from the border
    inner = ((points > 2) & (points < 5.5)).all(dim=1)
    constant = kernel.message(torch.ones(len(points), 1))[inner]
    assert torch.allclose(constant, torch.full_like(constant, 2.0), rtol=0.03)


@pytest.mark.parametrize("weight, winner", [(3.0, 0), (-3.0, 1)])
def test_potts_sign(weight, winner):
    # an undecided pixel among confident class-0 pixels of the same colour: attractive Potts
    # weights pull it to class 0, negative ones push it away
    image = torch.full((7, 7, 3), 100, dtype=torch.uint8)
    prob = torch.zeros(2, 7, 7)
    prob[0], prob[1] = 0.95, 0.05
    prob[:, 3, 3] = 0.5
    params = CrfParams(iter_max=5, pos_w=weight, pos_xy_std=1, bi_w=weight, bi_xy_std=5, bi_rgb_std=3)
    q = dense_crf([image], [prob], params)[0]
    assert q[:, 3, 3].argmax().item() == winner


def crf_inputs(seed: int, height: int, width: int, n_classes: int, noisy: bool) -> tuple[np.ndarray, np.ndarray]:
    """A smooth image with two colour regions and a model-like (or noisy) softmax map."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8), (width, height))
    image[:, width // 2:] = 255 - image[:, width // 2:]
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    logits = rng.normal(size=(n_classes, height // 8, width // 8)).astype(np.float32) * 3
    logits = np.stack([cv2.resize(c, (width, height)) for c in logits])
    if noisy:
        logits += rng.normal(0, 2, logits.shape).astype(np.float32)
    prob = np.exp(logits - logits.max(axis=0, keepdims=True))
    return image, (prob / prob.sum(axis=0, keepdims=True)).astype(np.float32)


def test_agrees_with_pydensecrf():
    pytest.importorskip("pydensecrf")
    inputs = [crf_inputs(seed, 40, 50, 4, noisy=seed % 2 == 1) for seed in range(4)]
    images, probs = [i for i, _ in inputs], [p for _, p in inputs]
    reference = DenseCRF(backend="pydensecrf").batch(images, probs)
    ours = DenseCRF(backend="torch").batch(images, probs)
    for ref, q in zip(reference, ours):
        assert q.shape == ref.shape and q.dtype == np.float32
        assert (q.argmax(axis=0) == ref.argmax(axis=0)).mean() >= 0.995
        assert np.abs(q - ref).max() < 1e-3
    labels = DenseCRF(backend="torch").labels(images, probs)
    assert all(np.array_equal(lab, q.argmax(axis=0)) for lab, q in zip(labels, ours))


def test_batch_equals_single_images_and_repeats_exactly():
    crf = DenseCRF(iter_max=3, backend="torch")
    (im_a, p_a), (im_b, p_b) = crf_inputs(0, 24, 32, 3, False), crf_inputs(1, 30, 20, 3, True)
    together = crf.batch([im_a, im_b], [p_a, torch.from_numpy(p_b)])
    assert np.array_equal(together[0], crf(im_a, p_a))
    assert np.array_equal(together[1], crf(im_b, p_b))
    assert np.array_equal(crf.batch([im_a, im_b], [p_a, p_b])[1], together[1])


def test_backend_choice_and_config():
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("auto", "cpu") == "pydensecrf"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ConfigError, match="CRF.BACKEND"):
        resolve_backend("gpu", "cpu")
    cfg = load_config(CONFIG_DIR / "voc12.yaml")
    assert cfg.CRF.BACKEND == "auto" and DenseCRF.from_config(cfg.CRF).backend == "pydensecrf"
    assert DenseCRF.from_config(cfg.CRF, "cuda").backend == "torch"
    with pytest.raises(ConfigError, match="CRF.BACKEND"):
        load_config(CONFIG_DIR / "voc12.yaml", ["CRF.BACKEND=gpu"])
    with pytest.raises(ConfigError, match="CRF.BATCH_SIZE"):
        load_config(CONFIG_DIR / "voc12.yaml", ["CRF.BATCH_SIZE=0"])


def test_without_pydensecrf_the_message_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    image, prob = crf_inputs(0, 16, 16, 2, False)
    with pytest.raises(NsromError, match="pip install pydensecrf2.*CRF.BACKEND=torch"):
        DenseCRF(backend="pydensecrf")(image, prob)
    assert DenseCRF(backend="torch", iter_max=1)(image, prob).shape == (2, 16, 16)


def test_the_pydensecrf_backend_keeps_its_inputs_on_the_cpu_whatever_the_device():
    """Asked for with a CUDA device (``--cuda`` is main.py's default), pydensecrf still runs on the CPU: its
    worker processes must open no CUDA context."""
    from segmentation.libs.utils.crf import DenseCRF

    assert DenseCRF(backend="pydensecrf", device="cuda:3").device == torch.device("cpu")
    assert DenseCRF(backend="torch", device="cuda:3").device == torch.device("cuda:3")
