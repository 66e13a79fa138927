#!/usr/bin/env bash
# Quick start, command 1: install what is missing, make the synthetic VOC-format
# dataset and run the NSROM pipeline on it on the CPU.
#   DEMO_DIR   where data and outputs go (default: demo_run/ in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${DEMO_DIR:-demo_run}
PY=${PYTHON:-python3}
bash tools/install.sh
# Make the dataset unless it is there: a folder without labels.txt, or one whose
# generation was interrupted (the parameters are written first, the object record last).
# The generator refuses a folder that holds data it did not write.
if [ ! -f "$DEMO_DIR/data/labels.txt" ] || { [ -f "$DEMO_DIR/data/synthetic.json" ] && [ ! -f "$DEMO_DIR/data/objects.json" ]; }; then
    "$PY" tools/make_synthetic_voc.py --out "$DEMO_DIR/data"
fi
"$PY" pipeline.py --data-root "$DEMO_DIR/data" --work-dir "$DEMO_DIR/work" --preset demo "$@"
