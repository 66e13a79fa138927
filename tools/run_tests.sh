#!/usr/bin/env bash
# Quick start, command 2: install what is missing, then run the whole test suite.
# Extra arguments go to pytest (e.g. bash tools/run_tests.sh -k metrics).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh --dev
exec "${PYTHON:-python3}" -m pytest "$@"
