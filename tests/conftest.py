"""Shared fixtures: a tiny synthetic VOC-format dataset made once per test session."""

from __future__ import annotations

import pytest
import torch

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


@pytest.fixture()
def single_thread():
    """torch on one thread for the test: tiny models run as fast, and a shared 2-core machine's
    other work cannot make two spinning threads wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
