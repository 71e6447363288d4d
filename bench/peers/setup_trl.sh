#!/usr/bin/env bash
# Install TRL into its own virtualenv for bench/peers/trl_runner.py — never into the project's .venv.
#
#   bash bench/peers/setup_trl.sh [VENV_DIR]        # default /tmp/aicd-peers/trl
#
# The peer venv sees the project's torch/transformers read-only through a .pth file appended AFTER its
# own site-packages (a CPU torch from PyPI would pull the CUDA wheels); pip installs TRL and whatever
# versions it needs into the peer venv, and never uninstalls from a path outside it, so the project's
# venv is left as it is (the script checks that its package list is unchanged).
set -euo pipefail
VENV="${1:-/tmp/aicd-peers/trl}"
TRL_VERSION="${TRL_VERSION:-1.16.0}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PROJECT_PY="${PROJECT_PY:-$ROOT/.venv/bin/python}"

case "$(cd "$(dirname "$VENV")" 2>/dev/null && pwd)/$(basename "$VENV")" in
  "$ROOT/.venv"*) echo "setup_trl.sh: refusing to install into the project's venv ($VENV)" >&2; exit 2 ;;
esac

before="$("$PROJECT_PY" -m pip freeze --all 2>/dev/null | sort)"
python_bin="$("$PROJECT_PY" -c 'import sys; print(sys._base_executable)')"
"$python_bin" -m venv "$VENV"
peer_site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
project_site="$("$PROJECT_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$project_site" > "$peer_site/zz_aicd_project_site.pth"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "trl==$TRL_VERSION"
after="$("$PROJECT_PY" -m pip freeze --all 2>/dev/null | sort)"
if [ "$before" != "$after" ]; then
  echo "setup_trl.sh: the project's venv changed; compare 'pip freeze' before and after" >&2
  exit 1
fi
"$VENV/bin/python" -c 'import torch, transformers, trl; print(f"peer venv ready: trl {trl.__version__}, transformers {transformers.__version__}, torch {torch.__version__}")'
echo "$VENV/bin/python"
