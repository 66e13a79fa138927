"""The short version of tools/fault_injection.py: the tiny pipeline killed twice with SIGKILL and resumed.

Everything it writes (results.json and every output file but those that
record times) must equal an uninterrupted run to the byte.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "fault_injection.py"


def test_tiny_pipeline_killed_twice_ends_identical(synthetic_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models; no spinning threads on a shared machine
    done = subprocess.run([sys.executable, str(TOOL), "--data-root", str(synthetic_root.root), "--work-dir",
                           str(tmp_path), "--preset", "tiny", "--kills", "2", "--seed", "0"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "identical to the uninterrupted run" in done.stdout
    assert re.search(r"^kill \d+: SIGKILL", done.stdout, re.M), done.stdout[-3000:]  # at least one real kill
