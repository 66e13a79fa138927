#!/usr/bin/env bash
# NSROM stage 2: export the OA-CAMs of the IAM trained by train_iam.sh (one grey PNG per image and class).
# Every variable below can be set from the environment; relative paths are relative to this
# folder. Extra arguments go to the Python entry point (python -m classification.test_iam --help).
set -euo pipefail
cd "$(dirname "$0")"

EXP=${EXP:-exp2}
DATA_ROOT=${DATA_ROOT:-../data/VOCdevkit/VOC2012}
LIST=${LIST:-}   # empty: the dataset's training split (ROOT/dataset.yaml; train_aug for VOC)
INPUT_SIZE=${INPUT_SIZE:-256}
BATCH_SIZE=${BATCH_SIZE:-8}
RUNS_DIR=${RUNS_DIR:-./runs}
CHECKPOINT=${CHECKPOINT:-}   # empty: RUNS_DIR/EXP/model/checkpoint_final.pth
SAVE_DIR=${SAVE_DIR:-}       # empty: RUNS_DIR/EXP/attention
DEVICE=${DEVICE:-auto}
NUM_WORKERS=${NUM_WORKERS:-4}
PYTHON=${PYTHON:-python3}

exec "$PYTHON" -m classification.test_iam \
    --exp "$EXP" \
    --data-root "$DATA_ROOT" \
    ${LIST:+--list "$LIST"} \
    --input-size "$INPUT_SIZE" \
    --batch-size "$BATCH_SIZE" \
    --runs-dir "$RUNS_DIR" \
    ${CHECKPOINT:+--checkpoint "$CHECKPOINT"} \
    ${SAVE_DIR:+--save-dir "$SAVE_DIR"} \
    --device "$DEVICE" \
    --num-workers "$NUM_WORKERS" \
    "$@"
