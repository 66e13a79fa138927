"""Shared fixtures: a tiny synthetic VOC-format dataset made once per test session."""

from __future__ import annotations

import pytest

from nsrom.data import DataLayout
from nsrom.synthetic import generate
from runner.presets import Preset
from tiny_preset import TINY


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> DataLayout:
    """8 train + 4 val images, 64 px, 3 classes, seed 0. Treat it as read-only."""
    root = tmp_path_factory.mktemp("synthetic_voc")
    return generate(root, num_train=8, num_val=4, size=64, num_classes=3, seed=0)


@pytest.fixture(scope="session")
def tiny_preset() -> Preset:
    """The demo preset cut down to seconds (tests/tiny_preset.py, also used by the torchrun driver)."""
    return TINY
