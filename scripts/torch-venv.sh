#!/usr/bin/env bash
# Makes VENV a virtualenv with torch 2.9.0 from PyPI (the version burn-tch 0.22 binds),
# unless it already has it. Used by the training bench and by `just test-tch`.
#
#   scripts/torch-venv.sh VENV
set -euo pipefail
venv="$1"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "installing torch 2.9.0 into $venv (once, about 4 GB of wheels)" >&2
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.9.0 numpy
fi
