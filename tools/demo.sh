#!/usr/bin/env bash
# Quick start, command 1: install what is missing, make the synthetic VOC-format
# dataset and run the NSROM pipeline on it on the CPU.
#   DEMO_DIR   where data and outputs go (default: demo_run/ in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${DEMO_DIR:-demo_run}
PY=${PYTHON:-python3}
bash tools/install.sh
if [ ! -f "$DEMO_DIR/data/labels.txt" ]; then
    "$PY" tools/make_synthetic_voc.py --out "$DEMO_DIR/data"
fi
if [ -f pipeline.py ]; then
    "$PY" pipeline.py --data-root "$DEMO_DIR/data" --work-dir "$DEMO_DIR/work" --preset demo "$@"
else
    echo "pipeline.py is not there yet: the synthetic dataset is in $DEMO_DIR/data"
fi
