"""torchrun entry for tests/test_pipeline.py: ``pipeline.py`` with the tests' tiny preset.

Usage: torchrun ... tests/ddp_pipeline_driver.py PIPELINE_ARGS... (``--preset tiny`` is available).
"""

from __future__ import annotations

import sys

from runner import cli
from runner.presets import PRESETS
from tiny_preset import TINY  # this script's folder (tests/) is on sys.path


if __name__ == "__main__":
    PRESETS[TINY.name] = TINY
    cli.main(sys.argv[1:])
