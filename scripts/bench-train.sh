#!/usr/bin/env bash
# Training and evaluation tokens/s: dapt (burn; the flex CPU backend, LibTorch's CPU
# device when `just test-tch` has built it, and burn's deprecated ndarray backend when
# built with `CARGO_TARGET_DIR=target/ndarray cargo build --release -p dapt-model
# --features ndarray --example train_throughput`) against PyTorch eager on the same GPT shapes,
# fp32 on 2 threads, interleaved in the same run. PyTorch 2.9.0 is installed from PyPI into a
# throwaway virtualenv under OUT the first time.
#
#   scripts/bench-train.sh [OUT]     (default target/bench)
set -euo pipefail
out="${1:-target/bench}"
venv="$out/venv-torch"
scripts/torch-venv.sh "$venv"
# With -p dapt-cli beside it, features resolve as for `just build`, so the example reuses
# that build's dependencies instead of compiling polars and burn a second time (~30 min).
cargo build --quiet --release -p dapt-cli -p dapt-model --example train_throughput
# As the dapt binary sets it (crates/dapt-cli/src/main.rs): freed memory stays mapped.
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 MIMALLOC_PURGE_DELAY=-1
tch_bin=target/tch/cargo/release/examples/train_throughput
ndarray_bin=target/ndarray/release/examples/train_throughput
torch_lib=$("$venv/bin/python" -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")

# Each backend and PyTorch run in turn, BENCH_REPS times per model (default 3): this
# machine's tokens/s drift by 10-30% between runs, so interleaving and medians keep the
# comparison fair. Rows: the median over runs, the range in brackets.
reps="${BENCH_REPS:-3}"
# Training steps per run; the first two (allocation warm-up) are not counted.
steps="${BENCH_STEPS:-12}"
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for shape in "2 128 4" "4 256 4"; do
  read -r layers width heads <<<"$shape"
  for _ in $(seq "$reps"); do
    printf '%s\ttorch\t%s\n' "$shape" "$("$venv/bin/python" scripts/bench_torch_gpt.py --steps "$steps" --threads 2 \
      --n-layer "$layers" --d-model "$width" --n-head "$heads" | tail -1)" >>"$runs"
    printf '%s\tflex\t%s\n' "$shape" "$(target/release/examples/train_throughput cpu "$steps" "$layers" "$width" "$heads" | tail -1)" >>"$runs"
    if [ -x "$ndarray_bin" ]; then
      printf '%s\tndarray\t%s\n' "$shape" "$("$ndarray_bin" ndarray "$steps" "$layers" "$width" "$heads" | tail -1)" >>"$runs"
    fi
    if [ -x "$tch_bin" ]; then
      printf '%s\ttch-cpu\t%s\n' "$shape" "$(LD_LIBRARY_PATH="$torch_lib" "$tch_bin" tch-cpu "$steps" "$layers" "$width" "$heads" | tail -1)" >>"$runs"
    fi
  done
done

# SmolLM2-135M's Llama shape (B4 T256) against transformers' LlamaForCausalLM (eager
# attention), fewer steps: a step takes seconds here.
llama_steps="${BENCH_LLAMA_STEPS:-6}"
"$venv/bin/python" -c "import transformers" 2>/dev/null || scripts/torch-venv.sh "$venv" transformers==5.25.0
for _ in $(seq "$reps"); do
  printf '%s\ttorch\t%s\n' "smollm2" "$("$venv/bin/python" scripts/bench_torch_llama.py --steps "$llama_steps" --threads 2 \
    --batch 4 --seq-len 256 | tail -1)" >>"$runs"
  printf '%s\tflex\t%s\n' "smollm2" "$(target/release/examples/train_throughput cpu "$llama_steps" smollm2 | tail -1)" >>"$runs"
done

python3 - "$runs" <<'PY'
import json, statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    shape, backend, record = line.rstrip("\n").split("\t")
    runs[shape, backend].append(json.loads(record))
def summary(records, key):
    values = [r[key] for r in records]
    return statistics.median(values), min(values), max(values)
header = [f"{name + ' tok/s [range]':>23} {'torch':>7} {'ratio':>6}" for name in ("train", "eval")]
print(f"{'backend, L d h (params)':<26} {header[0]}   {header[1]}")
for (shape, backend), records in runs.items():
    if backend == "torch":
        continue
    torch = runs[shape, "torch"]
    cells = []
    for key in ("train_tokens_per_s", "eval_tokens_per_s"):
        (ours, low, high), (theirs, _, _) = summary(records, key), summary(torch, key)
        cells.append(f"{ours:>7.0f} [{low:>6.0f}-{high:>6.0f}] {theirs:>7.0f} {ours / theirs:>5.2f}x")
    label = f"{backend} {shape} ({records[0]['params']:,})"
    print(f"{label:<26} {cells[0]}   {cells[1]}")
PY
