#!/usr/bin/env bash
# make lint: ruff (lint + format check), the layer contract (import-linter) and the type check (mypy).
# The stage folders live at the repository root and install as biograd.<stage> through setuptools'
# package-dir mapping; static tools read folders, not import hooks, so they get a tree of
# symlinks shaped like the installed package (build/static/biograd).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
TREE=build/static/biograd
mkdir -p "$TREE"
for entry in biograd/* pipeline sources learner sinks deploy; do
    name=$(basename "$entry")
    [ "$name" = "__pycache__" ] && continue
    ln -sfn "$PWD/$entry" "$TREE/$name"
done
$BIN/ruff check --quiet .
$BIN/ruff format --check --quiet .
$BIN/python scripts/check_layers.py
PYTHONPATH="$PWD/build/static" $BIN/mypy
