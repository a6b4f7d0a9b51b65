#!/usr/bin/env bash
# Hugging Face interoperability, checked by transformers itself (torch 2.9.0 and
# transformers from PyPI in a virtualenv, CPU):
#   1. scripts/make_hf_fixtures.py, rerun into a temporary folder, reproduces the committed
#      reference-logit fixtures in crates/dapt-model/tests/fixtures/hf (same weights, same
#      logits), so the fixtures dapt's tests load are known to come from that script;
#   2. dapt trains tiny models of every family — GPT and Llama (decoders), BERT and RoBERTa
#      (masked-LM encoders), T5 (encoder-decoder; ReLU tied and gated-GELU untied) — moves
#      every weight off its initial value and exports each as a Hugging Face folder with its
#      own logits beside the weights (the hf_export_check example), and
#      scripts/check_hf_export.py loads every folder with AutoModelForCausalLM,
#      AutoModelForMaskedLM or AutoModelForSeq2SeqLM and AutoTokenizer and requires the same
#      logits (within 1e-4; T5's given encoder and decoder ids), the same token ids, and a
#      working generate for the decoders and T5.
#
#   scripts/test-hf.sh [OUT]     (default target/hf; the virtualenv is OUT/venv)
set -euo pipefail
out="${1:-target/hf}"
venv="$out/venv"
fixtures=crates/dapt-model/tests/fixtures/hf
# transformers pinned: the fixtures record its output, and check 1 reruns it.
scripts/torch-venv.sh "$venv" transformers==5.25.0 tokenizers safetensors gguf
python="$venv/bin/python"

echo "== scripts/make_hf_fixtures.py reproduces $fixtures" >&2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$python" scripts/make_hf_fixtures.py "$scratch/hf" --compare "$fixtures"

echo "== dapt trains and exports tiny models into $out/export" >&2
rm -rf "$out/export"
# -p dapt-cli beside it: features resolve as for `just build`, whose dependencies it reuses.
cargo build --release -p dapt-cli -p dapt-model --example hf_export_check
target/release/examples/hf_export_check "$out/export"

echo "== transformers loads each export and reproduces dapt's logits" >&2
shopt -s nullglob
exports=("$out"/export/*/)
if [ "${#exports[@]}" -eq 0 ]; then
  echo "error: the hf_export_check example wrote no folders under $out/export" >&2
  exit 1
fi
"$python" scripts/check_hf_export.py "${exports[@]}"
