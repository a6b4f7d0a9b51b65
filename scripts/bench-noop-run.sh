#!/usr/bin/env bash
# Bench: how long `dapt run` takes when a 10-stage pipeline is already up to date
# (freshness checks only). Goal: under 0.3 s.
set -euo pipefail
dapt="$(realpath "${1:-target/release/dapt}")"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

{
  printf '[pipeline]\nname = "bench-noop"\njobs = 2\n\n'
  for i in $(seq 0 9); do
    inputs=""; deps=""
    if [[ $i -gt 0 ]]; then inputs="\"s$((i - 1))\""; deps="\"out/s$((i - 1)).txt\""; fi
    printf '[stages.s%d]\nkind = "command"\ninputs = [%s]\ndeps = [%s]\nouts = ["out/s%d.txt"]\ncmd = "mkdir -p out && head -c 1000000 /dev/urandom > out/s%d.txt"\n\n' \
      "$i" "$inputs" "$deps" "$i" "$i"
  done
} > "$dir/pipeline.toml"

"$dapt" run -c "$dir/pipeline.toml" > /dev/null
times=()
for _ in $(seq 1 7); do
  start=$(date +%s%N)
  "$dapt" run -c "$dir/pipeline.toml" > /dev/null
  times+=($(( ($(date +%s%N) - start) / 1000000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "no-op run, 10 stages, 1 MB output each: median ${sorted[3]} ms (min ${sorted[0]}, max ${sorted[6]}; goal < 300 ms)"
