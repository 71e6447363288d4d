#!/usr/bin/env bash
# lm-evaluation-harness in its own virtualenv, never in the project's (.venv stays untouched).
#
#   bench/peers/setup_lm_eval.sh [VENV]        # default /tmp/peers-lm-eval
#
# The peer venv sees the project's torch and transformers through a .pth file instead of installing its own:
# the comparison then runs both sides on the very same kernels (and no CUDA torch is pulled onto a CPU box).
# Only what lm-eval adds (evaluate, sacrebleu, sqlitedict, ...) is installed, into VENV.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${1:-/tmp/peers-lm-eval}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
LM_EVAL_VERSION="${LM_EVAL_VERSION:-0.4.13}"

"$PY" -m venv "$VENV"
SHARED="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
OWN="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$SHARED" > "$OWN/aicd-project-site.pth"
"$VENV/bin/python" -m pip install -q "lm-eval==$LM_EVAL_VERSION"
"$VENV/bin/python" -c 'import lm_eval, torch, transformers; print("lm-eval", lm_eval.__version__, "torch", torch.__version__, "transformers", transformers.__version__)'
