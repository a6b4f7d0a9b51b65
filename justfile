# dapt tasks. `just pipeline` runs everything; `just test` is what CI runs.

set shell := ["bash", "-euo", "pipefail", "-c"]

dapt_release := "target/release/dapt"

# List the recipes.
default:
    @just --list

# Build in release mode, fetch the data, and run the whole pipeline.
pipeline: build data
    {{dapt_release}} run -c pipeline.toml

# Release build of the dapt binary.
build:
    cargo build --release -p dapt-cli

# Fill data/raw/ (sha256-checked): copy $DAPT_DATA_MIRROR if set, else download (data/sources.tsv).
data:
    scripts/fetch-data.sh data/raw

# Fetch SmolLM2-135M-Instruct (Apache-2.0, GGUF Q4_1, 98 MB) into models/ and check its sha256.
model:
    scripts/fetch-model.sh models

# Every test: unit, integration, end-to-end on slices of the real corpora.
test: test-data-download
    cargo test --workspace --no-fail-fast

# `just data` without a mirror, offline: a local server plays the hosts (drops, corruption).
test-data-download:
    python3 scripts/test_fetch_data.py

# Benchmarks (speed and memory goals are checked here, not in timed tests).
bench: build data
    scripts/bench-noop-run.sh {{dapt_release}}
    python3 scripts/bench_data.py {{dapt_release}} target/bench
    scripts/bench-dedup.sh {{dapt_release}} target/bench
    scripts/bench-cluster.sh {{dapt_release}}
    cargo run --quiet --release -p dapt-tokenize --example bench_encode -- data/raw/financial/ectsum
    scripts/bench-train.sh target/bench

# Fault-injection campaign: the test pipeline killed at 20 seeded moments and named points,
# rerun each time, outputs compared byte for byte; and a full disk (needs root for tmpfs).
chaos seed="7":
    DAPT_CHAOS_KILLS=20 DAPT_CHAOS_SEED={{seed}} cargo test --workspace --test chaos -- --nocapture --test-threads 1

# Property tests of every reader and the pipeline.toml parser (tests/fuzz.rs in dapt-data and
# dapt-dag): CASES per reader and per property (`just test` runs 400); about 5 min on 2 cores.
# DAPT_FUZZ_SEED=N draws other cases.
fuzz cases="20000":
    DAPT_FUZZ_CASES={{cases}} cargo test --workspace --test fuzz -- --nocapture

# The LibTorch backend (torch 2.9.0 in a virtualenv): a short training on CPU, and CUDA if present.
test-tch:
    scripts/test-tch.sh target/tch

# Hugging Face interop checked by transformers (in a virtualenv): fixtures reproduce, exports load with dapt's logits.
test-hf:
    scripts/test-hf.sh target/hf

fmt:
    cargo fmt --all

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
