#!/bin/sh
# The N-MNIST experiment chain behind docs/results.md, in the order it was run.
# Each step appends to bench/exp_logs/<name>.jsonl and skips runs already logged.
set -e
cd "$(dirname "$0")/.."
PY="nice -n 10 .venv/bin/python -m bench.experiments"
EPOCHS=${EPOCHS:-30}
$PY streaming --lrs 3e-5 1e-4 3e-4 1e-3 3e-3 --sleep-every 32 --seeds 0 1 2
$PY nmnist --epochs "$EPOCHS" --batch 32 --seeds 0 1 2
$PY ablation --epochs "$EPOCHS" --batch 32 --seeds 0
$PY cv --epochs "$EPOCHS" --batch 32 --folds 5 --seed 0
