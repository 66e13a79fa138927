"""Online attention accumulation rules (docs/method.md, stage 1), on hand-built CAMs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from classification.attention_accumulation import (
    PROBABILITY_GATE, START_EPOCH, AttentionAccumulator, parse_map_name,
)
from nsrom.cam import class_map_name
from nsrom.images import read_grey

# One image, two classes, 2x2 CAMs. Class 0 is present, class 1 absent.
# Negatives 0, /max, x255 (0, 63.75, 127.5, 255), rounded half to even: [[0, 64], [128, 255]]
CAM_A = [[-1.0, 0.5], [1.0, 2.0]]
MAP_A = np.array([[0, 64], [128, 255]], dtype=np.uint8)
CAM_B = [[4.0, 0.0], [0.0, 1.0]]  # -> 255, 0, 0, 63.75 -> [[255, 0], [0, 64]]
MAP_B = np.array([[255, 0], [0, 64]], dtype=np.uint8)
HIGH, LOW = 2.0, -3.0  # sigmoid 0.88 (passes the gate), 0.047 (below 0.1)


def batch(cam0, logit0, present=(1.0, 0.0)):
    cams = torch.tensor([[cam0, [[9.0, 9.0], [9.0, 9.0]]]])  # (1, 2, 2, 2)
    labels = torch.tensor([present])
    logits = torch.tensor([[logit0, 5.0]])
    return ["2007_000032"], labels, cams, logits


def test_constants_are_the_papers():
    assert START_EPOCH == 1 and PROBABILITY_GATE == 0.1


def test_epoch_0_is_ignored(tmp_path):
    acc = AttentionAccumulator(tmp_path, num_epochs=15)
    assert acc.update(0, *batch(CAM_A, HIGH)) == 0
    assert len(acc) == 0


def test_a_later_start_epoch_ignores_the_epochs_before_it(tmp_path):
    acc = AttentionAccumulator(tmp_path, num_epochs=15, start_epoch=3)
    assert [acc.update(e, *batch(CAM_A, HIGH)) for e in (1, 2)] == [0, 0]
    assert acc.update(3, *batch(CAM_B, HIGH)) == 1
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], MAP_B)  # CAM_A of epochs 1-2 never fused


def test_train_start_epoch_flag(capsys):
    from classification import train

    assert train.build_parser().parse_args([]).accu_start_epoch == START_EPOCH
    assert train.build_parser().parse_args(["--accu-start-epoch", "0"]).accu_start_epoch == 0
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(["--accu-start-epoch", "-1"])
    assert "--accu-start-epoch" in capsys.readouterr().err


def test_samples_not_kept_give_no_record(tmp_path):
    """The distributed sampler's padding (keep false: nsrom.distributed.real_samples) is left out of the
    accumulation, so a padded duplicate never counts twice, also where fusing it would change nothing."""
    acc = AttentionAccumulator(tmp_path, num_epochs=15)
    ids, labels, cams, logits = batch(CAM_A, HIGH, present=(1.0, 1.0))
    two = (ids + ["2007_000033"], labels.repeat(2, 1), cams.repeat(2, 1, 1, 1), logits.repeat(2, 1))
    assert [key for key, _, _ in acc.prepare(1, *two)] == [(ids[0], 0), (ids[0], 1), ("2007_000033", 0),
                                                            ("2007_000033", 1)]
    assert [key for key, _, _ in acc.prepare(1, *two, keep=[True, False])] == [(ids[0], 0), (ids[0], 1)]
    assert acc.prepare(1, *two, keep=[False, False]) == []


def test_first_store_is_the_normalised_8bit_map_only_for_present_classes(tmp_path):
    acc = AttentionAccumulator(tmp_path, num_epochs=15)
    assert acc.update(1, *batch(CAM_A, HIGH)) == 1
    assert list(acc.maps) == [("2007_000032", 0)]
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], MAP_A)
    assert acc.maps[("2007_000032", 0)].dtype == np.uint8


def test_stored_maps_are_rounded_half_to_even_like_cv2_imwrite(tmp_path):
    # max 255, so the scaled map is the CAM itself: 0.5 -> 0, 2.5 -> 2, 254.6 -> 255 (truncation: 0, 2, 254)
    acc = AttentionAccumulator(tmp_path, num_epochs=15)
    acc.update(1, *batch([[255.0, 0.5], [2.5, 254.6]], HIGH))
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], [[255, 0], [2, 255]])
    # 0.6 -> 1 and 126.5 -> 126 (half to even); the fused map is max(stored, rounded new map)
    acc.update(2, *batch([[255.0, 0.6], [126.5, 0.0]], HIGH))
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], [[255, 1], [126, 255]])
    acc.save()
    np.testing.assert_array_equal(read_grey(tmp_path / class_map_name("2007_000032", 0)), [[255, 1], [126, 255]])


def test_probability_gate(tmp_path):
    acc = AttentionAccumulator(tmp_path, num_epochs=15)
    assert acc.update(1, *batch(CAM_A, LOW)) == 0
    assert len(acc) == 0
    assert acc.update(2, *batch(CAM_A, -2.0)) == 1  # sigmoid(-2) = 0.119 >= 0.1


def test_a_probability_equal_to_the_gate_is_not_skipped(tmp_path):
    # sigmoid(0) = 0.5 exactly: at gate 0.5 the map is stored (only a probability below the gate is skipped)
    acc = AttentionAccumulator(tmp_path, num_epochs=15, gate=0.5)
    assert acc.update(1, *batch(CAM_A, 0.0)) == 1
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], MAP_A)
    assert acc.update(2, *batch(CAM_B, 0.0)) == 1  # and fused
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], np.maximum(MAP_A, MAP_B))
    # the paper's gate: a record of probability 0.1 exactly is stored too
    acc = AttentionAccumulator(tmp_path, num_epochs=15)
    assert acc.apply(1, [(("2007_000032", 0), MAP_B, 0.1)]) == 1


def test_a_higher_gate_skips_maps_the_default_one_fuses(tmp_path):
    # sigmoid(2) = 0.881: fused at the paper's 0.1, skipped at 0.9 (the CPU demo's); sigmoid(3) = 0.953 passes both
    acc = AttentionAccumulator(tmp_path, num_epochs=15, gate=0.9)
    assert acc.update(1, *batch(CAM_A, HIGH)) == 0
    assert acc.update(2, *batch(CAM_B, 3.0)) == 1
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], MAP_B)
    assert acc.update(3, *batch(CAM_A, HIGH)) == 0  # a stored map is not fused with one below the gate
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], MAP_B)


def test_the_last_epoch_fill_ignores_a_higher_gate_too(tmp_path):
    acc = AttentionAccumulator(tmp_path, num_epochs=3, gate=0.9)
    assert acc.update(2, *batch(CAM_A, HIGH)) == 1
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], MAP_A)


def test_element_wise_max_fusion_and_gate_on_fusion(tmp_path):
    acc = AttentionAccumulator(tmp_path, num_epochs=15)
    acc.update(1, *batch(CAM_A, HIGH))
    acc.update(2, *batch(CAM_B, HIGH))
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], np.maximum(MAP_A, MAP_B))
    acc.update(3, *batch([[0.0, 0.0], [0.0, 0.0]], HIGH))  # an all-zero map changes nothing
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], np.maximum(MAP_A, MAP_B))


def test_last_epoch_fill_stores_below_the_gate_when_nothing_is_stored(tmp_path):
    acc = AttentionAccumulator(tmp_path, num_epochs=3)
    acc.update(1, *batch(CAM_A, LOW))  # below gate, not last epoch: nothing
    assert len(acc) == 0
    assert acc.update(2, *batch(CAM_B, LOW)) == 1  # last epoch, nothing stored: store it
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], MAP_B)


def test_last_epoch_with_a_stored_map_keeps_the_gate(tmp_path):
    acc = AttentionAccumulator(tmp_path, num_epochs=3)
    acc.update(1, *batch(CAM_A, HIGH))
    assert acc.update(2, *batch(CAM_B, LOW)) == 0  # stored already, below gate: unchanged
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], MAP_A)
    acc.update(2, *batch(CAM_B, HIGH))  # above gate in the last epoch: fused
    np.testing.assert_array_equal(acc.maps[("2007_000032", 0)], np.maximum(MAP_A, MAP_B))


def test_absent_classes_are_never_stored_even_in_the_last_epoch(tmp_path):
    acc = AttentionAccumulator(tmp_path, num_epochs=2)
    assert acc.update(1, *batch(CAM_A, HIGH, present=(0.0, 0.0))) == 0


def test_save_writes_changed_maps_and_load_restores_them(tmp_path):
    acc = AttentionAccumulator(tmp_path / "accu", num_epochs=15)
    acc.update(1, *batch(CAM_A, HIGH))
    assert acc.save() == 1
    path = tmp_path / "accu" / "2007_000032_0.png"
    np.testing.assert_array_equal(read_grey(path), MAP_A)
    assert acc.save() == 0  # nothing changed since
    again = AttentionAccumulator(tmp_path / "accu", num_epochs=15)
    assert again.load() == 1
    np.testing.assert_array_equal(again.maps[("2007_000032", 0)], MAP_A)
    again.update(2, *batch(CAM_B, HIGH))  # resumed maps keep fusing
    np.testing.assert_array_equal(again.maps[("2007_000032", 0)], np.maximum(MAP_A, MAP_B))
    assert again.clear_dir() == 1 and not path.exists()


@pytest.mark.parametrize("name, key", [
    ("2007_000032_14.png", ("2007_000032", 14)), ("img_0.png", ("img", 0)), ("noclass.png", None),
])
def test_map_names(name, key):
    assert parse_map_name(name) == key
    if key is not None:
        assert class_map_name(*key) == name
