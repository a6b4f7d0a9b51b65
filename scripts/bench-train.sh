#!/usr/bin/env bash
# Training and evaluation tokens/s: dapt (burn; the flex CPU backend, LibTorch's CPU
# device when `just test-tch` has built it, and burn's deprecated ndarray backend when
# built with `CARGO_TARGET_DIR=target/ndarray cargo build --release -p dapt-model
# --features ndarray --example train_throughput`) against PyTorch eager on the same GPT shapes,
# fp32 on 2 threads, measured in the same run. PyTorch 2.9.0 is installed from PyPI into a
# throwaway virtualenv under OUT the first time.
#
#   scripts/bench-train.sh [OUT]     (default target/bench)
set -euo pipefail
out="${1:-target/bench}"
venv="$out/venv-torch"
scripts/torch-venv.sh "$venv"
cargo build --quiet --release -p dapt-model --example train_throughput
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
tch_bin=target/tch/cargo/release/examples/train_throughput
ndarray_bin=target/ndarray/release/examples/train_throughput
torch_lib=$("$venv/bin/python" -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")

# One table row: label, dapt's JSON line, PyTorch's JSON line.
row() {
  python3 - "$@" <<'PY'
import json, sys
label, dapt, torch = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
t = (dapt["train_tokens_per_s"], torch["train_tokens_per_s"])
e = (dapt["eval_tokens_per_s"], torch["eval_tokens_per_s"])
label = f"{label} ({dapt['params']:,})"
print(f"{label:<28} {t[0]:>11.0f} {t[1]:>11.0f} {t[0]/t[1]:>6.2f}x {e[0]:>11.0f} {e[1]:>11.0f} {e[0]/e[1]:>6.2f}x")
PY
}

printf '%-28s %11s %11s %7s %11s %11s %7s\n' "backend, L d h (params)" "dapt train" "torch train" "ratio" "dapt eval" "torch eval" "ratio"
# The default pipeline's model, then the reference 4-layer one.
for shape in "2 128 4" "4 256 4"; do
  read -r layers width heads <<<"$shape"
  torch=$("$venv/bin/python" scripts/bench_torch_gpt.py --steps 8 --threads 2 \
    --n-layer "$layers" --d-model "$width" --n-head "$heads" | tail -1)
  row "flex $shape" "$(target/release/examples/train_throughput cpu 8 "$layers" "$width" "$heads" | tail -1)" "$torch"
  if [ -x "$ndarray_bin" ]; then
    row "ndarray $shape" "$("$ndarray_bin" ndarray 8 "$layers" "$width" "$heads" | tail -1)" "$torch"
  fi
  if [ -x "$tch_bin" ]; then
    row "tch-cpu $shape" "$(LD_LIBRARY_PATH="$torch_lib" "$tch_bin" tch-cpu 8 "$layers" "$width" "$heads" | tail -1)" "$torch"
  fi
done
