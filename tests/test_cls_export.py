"""CAM / OA-CAM export of docs/method.md, stage 1b on hand-built maps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from classification import export
from classification.datasets import Sample
from classification.export import attention_maps, pending_batches
from classification.models import ARCHS
from nsrom.errors import NsromError


def test_present_classes_only_negatives_zero_divided_by_max_times_255():
    cam = np.zeros((3, 2, 2), dtype=np.float32)
    cam[1] = [[-1.0, 0.5], [1.0, 2.0]]
    cam[2] = [[-5.0, -1.0], [-2.0, -3.0]]  # all negative -> all zero
    maps = attention_maps(cam, (1, 2), (2, 2))
    assert sorted(maps) == [1, 2]
    np.testing.assert_array_equal(maps[1], np.array([[0, 63], [127, 255]], dtype=np.uint8))
    np.testing.assert_array_equal(maps[2], np.zeros((2, 2), dtype=np.uint8))


def test_bicubic_resize_of_the_8bit_map_to_the_image_size():
    cam = np.zeros((1, 4, 4), dtype=np.float32)
    cam[0] = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = attention_maps(cam, (0,), (5, 9))[0]
    assert out.shape == (5, 9) and out.dtype == np.uint8
    small = (cam[0] / (15 + 1e-8) * 255).astype(np.uint8)
    np.testing.assert_array_equal(out, cv2.resize(small, (9, 5), interpolation=cv2.INTER_CUBIC))


def test_batches_are_fixed_slices_and_complete_ones_are_skipped(tmp_path):
    """An interrupted export recomputes an unfinished batch with the same neighbours (same bytes on the CPU)."""
    samples = [Sample(i, tmp_path / f"{i}.jpg", (0,)) for i in "abcde"]
    for done in ("a", "b", "d"):
        (tmp_path / f"{done}_0.png").write_bytes(b"")
    ids = lambda batches: [[s.image_id for s in b] for b in batches]  # noqa: E731
    assert ids(pending_batches(samples, tmp_path, 2, overwrite=False)) == [["c", "d"], ["e"]]
    assert ids(pending_batches(samples, tmp_path, 2, overwrite=True)) == [["a", "b"], ["c", "d"], ["e"]]
    (tmp_path / "c_0.png").write_bytes(b"")
    (tmp_path / "e_0.png").write_bytes(b"")
    assert pending_batches(samples, tmp_path, 2, overwrite=False) == []


def test_overwrite_with_a_checkpoint_that_does_not_fit_keeps_the_earlier_maps(synthetic_root, tmp_path):
    """--overwrite deletes the maps of an earlier export only once the checkpoint has loaded into the network."""
    model = ARCHS["vgg"](pretrained=False, num_classes=synthetic_root.num_classes, width_div=16)
    checkpoint = tmp_path / "ck.pth"
    torch.save({"model": model.state_dict(), "width_div": 16}, checkpoint)
    base = ["--data-root", str(synthetic_root.root), "--runs-dir", str(tmp_path / "runs"), "--exp", "e",
            "--checkpoint", str(checkpoint), "--input-size", "64", "--device", "cpu", "--num-workers", "0",
            "--no-check-data"]
    out = export.run(export.make_parser("vgg", "exp1", "CAMs").parse_args(base))
    before = sorted(p.name for p in out.glob("*.png"))
    assert before
    with pytest.raises(NsromError, match="does not fit this network"):
        export.run(export.make_parser("vgg", "exp1", "CAMs").parse_args([*base, "--arch", "vgg1", "--overwrite"]))
    assert sorted(p.name for p in out.glob("*.png")) == before
