#!/usr/bin/env bash
# Create .venv with the CPU build of torch and the workbench installed (editable, with test extras).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first, pinned, so nothing later pulls a multi-GB CUDA build (see DEVELOPERS.md)
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test]"
