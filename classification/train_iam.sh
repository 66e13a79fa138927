#!/usr/bin/env bash
# NSROM stage 2: train the integral attention model (IAM) on the maps accumulated by train.sh.
# Every variable below can be set from the environment; relative paths are relative to this
# folder. Extra arguments go to the Python entry point (python -m classification.train_iam --help).
set -euo pipefail
cd "$(dirname "$0")"

EXP=${EXP:-exp2}
ACCU_EXP=${ACCU_EXP:-exp1}
DATA_ROOT=${DATA_ROOT:-../data/VOCdevkit/VOC2012}
LIST=${LIST:-}   # empty: the dataset's training split (ROOT/dataset.yaml; train_aug for VOC)
INPUT_SIZE=${INPUT_SIZE:-256}
BATCH_SIZE=${BATCH_SIZE:-5}
EPOCHS=${EPOCHS:-15}
LR=${LR:-0.001}
DECAY_POINTS=${DECAY_POINTS:-5,10}
WIDTH_DIV=${WIDTH_DIV:-1}
RUNS_DIR=${RUNS_DIR:-./runs}
MODEL_DIR=${MODEL_DIR:-}     # empty: RUNS_DIR/EXP/model
ACCU_DIR=${ACCU_DIR:-}       # empty: RUNS_DIR/ACCU_EXP/accu_att
DEVICE=${DEVICE:-auto}
NUM_WORKERS=${NUM_WORKERS:-4}
PYTHON=${PYTHON:-python3}

exec "$PYTHON" -m classification.train_iam \
    --exp "$EXP" \
    --accu-exp "$ACCU_EXP" \
    --data-root "$DATA_ROOT" \
    ${LIST:+--list "$LIST"} \
    --input-size "$INPUT_SIZE" \
    --batch-size "$BATCH_SIZE" \
    --epochs "$EPOCHS" \
    --lr "$LR" \
    --decay-points "$DECAY_POINTS" \
    --width-div "$WIDTH_DIV" \
    --runs-dir "$RUNS_DIR" \
    ${MODEL_DIR:+--model-dir "$MODEL_DIR"} \
    ${ACCU_DIR:+--accu-dir "$ACCU_DIR"} \
    --device "$DEVICE" \
    --num-workers "$NUM_WORKERS" \
    "$@"
