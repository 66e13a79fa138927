"""Stage 4 test/crf pieces: scoring of upsampled argmax, the dense CRF, deeplab-pytorch's wrapped image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nsrom.metrics import ConfusionAccumulator, confusion_matrix, scores
from segmentation.libs.crf_run import class_probabilities
from segmentation.libs.evaluate import upsample_logits
from segmentation.libs.utils.config import CONFIG_DIR, load_config
from segmentation.libs.utils.crf import DenseCRF, wrapped_image
from segmentation.libs.utils.crf_torch import CrfParams


def test_scores_of_an_upsampled_prediction():
    # 1x1 logits map: class 1 wins everywhere after upsampling
    logits = np.array([[[0.0]], [[2.0]]], dtype=np.float32)
    pred = upsample_logits(logits, (2, 2)).argmax(dim=0).numpy()
    assert pred.tolist() == [[1, 1], [1, 1]]
    acc = ConfusionAccumulator(2)
    acc.update(np.array([[0, 0], [1, 1]]), np.array([[0, 1], [1, 1]]))
    acc.update(np.array([[255]]), np.array([[0]]))  # ignore pixels are not scored
    assert acc.matrix.tolist() == [[1, 1], [0, 2]]
    result = scores(acc.matrix, ["background", "cat"])
    assert result["Pixel Accuracy"] == pytest.approx(0.75)
    assert result["Mean Accuracy"] == pytest.approx(0.75)
    assert result["Class IoU"] == pytest.approx({"background": 0.5, "cat": 2 / 3})
    assert result["Mean IoU"] == pytest.approx(7 / 12)
    assert result["Frequency Weighted IoU"] == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_upsample_is_bilinear_half_pixel():
    logits = torch.tensor([[[0.0, 4.0]]])
    assert upsample_logits(logits, (1, 4))[0, 0].tolist() == pytest.approx([0.0, 1.0, 3.0, 4.0])


def test_crf_input_is_the_softmax_of_the_upsampled_logits():
    # class 0 logits 0, 4 -> upsampled 0, 1, 3, 4; class 1 logits 0 everywhere: p0 = sigmoid(logit 0).
    # Softmax before upsampling would interpolate the probabilities instead: 0.5, 0.62, 0.86, 0.98.
    logits = torch.tensor([[[0.0, 4.0]], [[0.0, 0.0]]])
    prob = class_probabilities(logits, (1, 4))
    p0 = [1 / (1 + math.exp(-v)) for v in (0.0, 1.0, 3.0, 4.0)]
    assert prob.shape == (2, 1, 4)
    assert prob[0, 0].tolist() == pytest.approx(p0, abs=1e-6)
    assert prob[1, 0].tolist() == pytest.approx([1 - p for p in p0], abs=1e-6)


def test_crf_cleans_a_noisy_prediction():
    rng = np.random.default_rng(0)
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 255
    truth = (np.arange(40)[None, :] >= 20).repeat(40, axis=0).astype(np.int64)
    flipped = rng.random((40, 40)) < 0.2
    noisy = np.where(flipped, 1 - truth, truth)
    prob = np.stack([np.where(noisy == 0, 0.6, 0.4), np.where(noisy == 1, 0.6, 0.4)]).astype(np.float32)
    refined = DenseCRF()(image, prob)
    assert refined.shape == (2, 40, 40)
    assert np.allclose(refined.sum(axis=0), 1.0, atol=1e-4)
    error_before = (prob.argmax(0) != truth).mean()
    error_after = (refined.argmax(0) != truth).mean()
    assert error_before > 0.15 and error_after < 0.01


def test_confusion_matrix_skips_a_prediction_or_truth_equal_to_n_classes():
    # 2 classes: value 2 is not a class (as 255 is not); only the (0, 0) and (1, 1) pixels count
    gt = np.array([[0, 0, 1, 2]])
    pred = np.array([[0, 2, 1, 0]])
    assert confusion_matrix(gt, pred, 2).tolist() == [[1, 0], [0, 1]]


def test_crf_rejects_a_float_image():
    with pytest.raises(ValueError, match="uint8"):
        DenseCRF()(np.zeros((4, 4, 3), np.float32), np.full((2, 4, 4), 0.5, np.float32))


def test_wrapped_image_reproduces_the_uint8_cast():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [123, 117, 104]]], np.uint8)
    out = wrapped_image(rgb, [104.008, 116.669, 122.675])
    # BGR - mean, truncated toward zero, modulo 256
    assert out.tolist() == [[[152, 140, 134], [150, 138, 132], [0, 0, 0]]]


def test_crf_from_config_maps_each_key_to_its_kernel_parameter():
    paper = DenseCRF.from_config(load_config(CONFIG_DIR / "voc12.yaml").CRF)
    assert paper.params == CrfParams(iter_max=10, pos_w=3, pos_xy_std=1, bi_w=4, bi_xy_std=67, bi_rgb_std=3)
    distinct = ["CRF.ITER_MAX=2", "CRF.POS_W=5", "CRF.POS_XY_STD=7", "CRF.BI_W=11", "CRF.BI_XY_STD=13", "CRF.BI_RGB_STD=17"]
    crf = DenseCRF.from_config(load_config(CONFIG_DIR / "voc12.yaml", distinct).CRF)
    assert crf.params == CrfParams(iter_max=2, pos_w=5, pos_xy_std=7, bi_w=11, bi_xy_std=13, bi_rgb_std=17)
