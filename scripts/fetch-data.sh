#!/usr/bin/env bash
# Fills DEST (default data/raw) with the corpora, verified against MANIFEST.sha256.
# Usage: scripts/fetch-data.sh [DEST [fetch_data.py options]]
# With DAPT_DATA_MIRROR set, copies from that folder; the mirror's manifest is the
# reference. Files already present with the right hash are not copied again.
# Without it, scripts/fetch_data.py downloads every file from its public home (URLs
# pinned to commits in data/sources.tsv, checked against data/MANIFEST.sha256,
# resumable; see its header). Extra arguments go to it (e.g. --only general/gutenberg).
set -euo pipefail
dest="${1:-data/raw}"
mirror="${DAPT_DATA_MIRROR:-}"

if [[ -z "$mirror" ]]; then
  exec python3 "$(dirname "${BASH_SOURCE[0]}")/fetch_data.py" "$dest" "${@:2}"
fi
if [[ ! -f "$mirror/MANIFEST.sha256" ]]; then
  echo "error: $mirror/MANIFEST.sha256 not found; DAPT_DATA_MIRROR must point at the corpus mirror" >&2
  exit 1
fi

mkdir -p "$dest"
cp "$mirror/MANIFEST.sha256" "$dest/MANIFEST.sha256"
[[ -f "$mirror/SOURCES.md" ]] && cp "$mirror/SOURCES.md" "$dest/SOURCES.md"

# Copy only what is missing or differs (via a temporary name, so an interrupted
# copy never leaves a truncated file under its real name), then verify everything.
copied=0
while read -r _ path; do
  path="${path#\*}" # sha256sum's binary-mode marker
  target="$dest/$path"
  if ! cmp -s "$mirror/$path" "$target"; then
    mkdir -p "$(dirname "$target")"
    cp "$mirror/$path" "$target.tmp"
    mv "$target.tmp" "$target"
    copied=$((copied + 1))
  fi
done < "$mirror/MANIFEST.sha256"

if ! (cd "$dest" && sha256sum --quiet -c MANIFEST.sha256); then
  echo "error: files in $dest do not match MANIFEST.sha256 (listed above); delete them and run 'just data' again" >&2
  exit 1
fi
echo "data: $(wc -l < "$dest/MANIFEST.sha256") files verified in $dest ($copied copied from $mirror)"
