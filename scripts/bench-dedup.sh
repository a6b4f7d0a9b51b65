#!/usr/bin/env bash
# Bench: dapt dedup vs datatrove MinHash on the financial text replicated 8x.
# Installs datatrove into a throwaway virtualenv under WORK_DIR.
set -euo pipefail
dapt="$(realpath "$1")"
work="$(realpath -m "${2:-target/bench}")"
venv="$work/venv-datatrove"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "datatrove[processing]" pyarrow orjson spacy
fi
rm -rf "$work/dedup"
"$venv/bin/python" scripts/bench_dedup.py "$dapt" "$work/work/stages/ingest/out/docs" "$work/dedup"
