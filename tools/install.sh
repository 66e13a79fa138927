#!/usr/bin/env bash
# Install what the project needs into the current Python, skipping what is there.
#   torch first: without it a plain "torch" requirement pulls GBs of CUDA wheels,
#   so on a machine with no torch we ask for the CPU build (TORCH_SPEC overrides,
#   e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu121").
# Usage: bash tools/install.sh [--dev]     (--dev adds pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "[install] torch missing: installing $TORCH_SPEC"
    if ! "$PY" -m pip install $TORCH_SPEC; then
        echo "[install] $TORCH_SPEC unavailable; trying the PyTorch CPU index"
        "$PY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
    fi
fi

missing=$(cd / && "$PY" - <<'PYEOF'
import importlib.util
mods = {"numpy": "numpy", "cv2": "opencv-python-headless", "PIL": "pillow",
        "pydensecrf": "pydensecrf2", "yaml": "pyyaml", "addict": "addict",
        "click": "click", "joblib": "joblib", "tqdm": "tqdm",
        "tensorboard": "tensorboard"}
print(" ".join(p for m, p in mods.items() if importlib.util.find_spec(m) is None))
PYEOF
)
if [ "${1:-}" = "--dev" ] && ! "$PY" -c "import pytest" 2>/dev/null; then
    missing="$missing pytest"
fi
if [ -n "${missing// /}" ]; then
    echo "[install] installing:$missing"
    # shellcheck disable=SC2086
    "$PY" -m pip install $missing
fi
# The project itself, editable, so that scripts run from any folder import it: this clone's code
# (an editable install of another clone would have them run that clone's).
installed=$(cd / && "$PY" -c "import nsrom, classification, segmentation, runner, os; print(os.path.dirname(os.path.dirname(os.path.realpath(nsrom.__file__))))" 2>/dev/null || true)
here=$(pwd -P)
if [ "$installed" != "$here" ]; then
    if [ -n "$installed" ]; then
        echo "[install] the project is installed from $installed; installing this clone ($here) instead"
    else
        echo "[install] installing the project (pip install -e .)"
    fi
    "$PY" -m pip install --no-deps -e . >/dev/null
fi
(cd / && "$PY" -c "import nsrom, torch, pydensecrf; print('[install] ok: torch', torch.__version__)")
