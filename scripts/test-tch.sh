#!/usr/bin/env bash
# The LibTorch backend: installs torch 2.9.0 (the version burn-tch 0.22 binds) from PyPI
# into a virtualenv, builds dapt-model with `--features tch` in its own target folder (so
# the main build's polars is not rebuilt), and runs a short training and evaluation on
# LibTorch's CPU device, and on CUDA when a GPU is present.
#
#   scripts/test-tch.sh [OUT]     (default target/tch)
set -euo pipefail
out="${1:-target/tch}"
venv="$out/venv"
scripts/torch-venv.sh "$venv"
export PATH="$PWD/$venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1
torch_lib=$(python -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CARGO_TARGET_DIR="$out/cargo"
cargo test --release -p dapt-model --features tch --lib
cargo build --release -p dapt-model --features tch --example train_throughput
devices=(tch-cpu)
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  devices+=(cuda)
fi
for device in "${devices[@]}"; do
  echo "== $device: 6 training steps, then evaluation" >&2
  "$CARGO_TARGET_DIR/release/examples/train_throughput" "$device" 6 2 128 4
done
