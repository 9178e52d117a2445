#!/usr/bin/env bash
# Build .venv on Python 3.10 with every pinned dependency.
# The venv is marked ready only after the whole install succeeded; a venv
# without the mark is deleted and rebuilt, so a failed run never leaves a
# half-installed environment behind.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
READY="$VENV/.biograd-ready"

# Compare what the interpreter prints, so a program that merely exits 0 is not taken for Python.
is_py310() { [ "$("$1" -c 'import sys, venv; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "3.10" ]; }

find_python310() {
    local candidate
    if [ -n "${BIOGRAD_PYTHON:-}" ]; then
        is_py310 "$BIOGRAD_PYTHON" && { echo "$BIOGRAD_PYTHON"; return; }
        echo "BIOGRAD_PYTHON=$BIOGRAD_PYTHON is not a working Python 3.10" >&2; return 1
    fi
    # PATH first; a pyenv shim is on PATH even when 3.10 is not the active
    # version, so the candidate must actually run.
    for candidate in python3.10 python3 python; do
        if command -v "$candidate" >/dev/null && is_py310 "$candidate"; then
            command -v "$candidate"; return
        fi
    done
    local roots=()
    command -v pyenv >/dev/null && roots+=("$(pyenv root)")
    roots+=("${PYENV_ROOT:-$HOME/.pyenv}")
    for root in "${roots[@]}"; do
        for candidate in "$root"/versions/3.10*/bin/python3.10; do
            [ -x "$candidate" ] && is_py310 "$candidate" && { echo "$candidate"; return; }
        done
    done
    return 1
}

if [ -f "$READY" ] && [ "$READY" -nt pyproject.toml ]; then
    exit 0
fi

if ! PY=$(find_python310); then
    cat >&2 <<'MSG'
error: Python 3.10 not found.
lava-nc 0.10.0 (the Loihi/Lava stage) imports only on Python 3.10, so this project targets 3.10.
Looked for: $BIOGRAD_PYTHON, python3.10/python3/python on PATH, and pyenv's versions/3.10*.
Install one of:
  Debian/Ubuntu:  sudo apt install python3.10 python3.10-venv   (deadsnakes PPA on newer Ubuntu)
  pyenv:          pyenv install 3.10
then run the command again (or point BIOGRAD_PYTHON at the interpreter).
MSG
    exit 1
fi

echo "bootstrap: building $VENV with $PY ($("$PY" -V 2>&1))"
rm -rf "$VENV"
trap 'echo "bootstrap: install failed; removing the partial $VENV" >&2; rm -rf "$VENV"' ERR
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[test]"
"$VENV/bin/python" -c "import lava, numba, zmq, aedat, dv_processing, numpy; assert numpy.__version__.startswith('1.')"
trap - ERR
touch "$READY"
echo "bootstrap: $VENV ready"
