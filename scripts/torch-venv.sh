#!/usr/bin/env bash
# Makes VENV a virtualenv with torch 2.9.0 from PyPI (the version burn-tch 0.22 binds),
# unless it already has it, plus any further PACKAGEs (a bare name, or name==version) it
# lacks. Used by the training bench, `just test-tch` and `just test-hf`.
#
#   scripts/torch-venv.sh VENV [PACKAGE...]
set -euo pipefail
venv="$1"
shift
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "installing torch 2.9.0 into $venv (once, about 4 GB of wheels)" >&2
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.9.0 numpy "$@"
elif [ "$#" -gt 0 ] && ! "$venv/bin/python" - "$@" <<'PY'
import importlib.metadata as metadata, sys
for requirement in sys.argv[1:]:
    name, _, wanted = requirement.partition("==")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        sys.exit(1)
    if wanted and have != wanted:
        sys.exit(1)
PY
then
  echo "installing $* into $venv" >&2
  # torch pinned again so that no package's requirements move it off 2.9.0.
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.9.0 "$@"
fi
