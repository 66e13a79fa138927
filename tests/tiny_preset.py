"""The tests' tiny pipeline preset (the ``tiny_preset`` fixture of conftest.py and the torchrun driver).

The ``tiny`` preset of runner/presets.py: the demo preset cut down to seconds (stand-in
weights from 2 steps on 6 source images, 2 epochs at 32 px, 2 DeepLab steps, 1 CRF
iteration, a recent-state checkpoint at every step); it is a named preset so that
``pipeline.py --preset tiny`` runs it too (tools/fault_injection.py in the tests).
"""

from __future__ import annotations

from runner.presets import get_preset

TINY = get_preset("tiny")
