#!/usr/bin/env bash
# Dedup clustering in memory against out of core (dapt_dedup::external), on the default
# pipeline's dedup signatures repeated 1x, 8x and 32x: seconds, documents/s, peak RSS, and
# a digest of the partition (equal digests: the same clusters). Each mode runs in its own
# process. Builds the dedup stage first if its signatures are missing.
#
#   scripts/bench-cluster.sh DAPT_BINARY
set -euo pipefail
dapt="${1:-target/release/dapt}"
signatures=.dapt/stages/dedup/out/signatures
if [ ! -d "$signatures" ]; then
  "$dapt" run -c pipeline.toml dedup
fi
# -p dapt-cli beside it: features resolve as for `just build`, whose dependencies it reuses.
cargo build --quiet --release -p dapt-cli -p dapt-dedup --example cluster_bench
bench=target/release/examples/cluster_bench
for copies in 1 8 32; do
  "$bench" memory "$signatures" "$copies"
  "$bench" external "$signatures" "$copies" 4
done
