#!/usr/bin/env python3
"""Checks that Hugging Face folders exported by dapt load in transformers and compute dapt's logits.

For each DIR (written by `cargo run --release -p dapt-model --example hf_export_check`):

  1. AutoModelForCausalLM.from_pretrained(DIR) succeeds with no missing, unexpected or
     mismatched keys and no error messages, as a GPT2LMHeadModel or LlamaForCausalLM (and as
     the class DIR/dapt_reference.safetensors or --expected-class names, when one does);
  2. its float32 logits on the reference input_ids (eval mode, no_grad, eager attention) are
     within --atol (default 1e-4) of the logits dapt computed;
  3. AutoTokenizer.from_pretrained(DIR) loads and encodes a sample sentence to the same ids
     as tokenizers.Tokenizer.from_file(DIR/tokenizer.json), with and without special tokens,
     all of them below the model's vocab_size;
  4. model.generate runs (4 greedy tokens), so config.json/generation_config.json are usable.

DIR/dapt_reference.safetensors, written by dapt beside the weights:

    input_ids  int64   [B, T]     token ids, T <= the model's context
    logits     float32 [B, T, V]  dapt's logits for input_ids (V = config vocab_size)
    metadata   optional; "expected_class": "GPT2LMHeadModel" or "LlamaForCausalLM"

Prints `<dir>: <class> max|Δlogit| = <x>  OK` per folder; exits 1 if any check fails (every
folder is still checked, and each failure says what and where).

    python scripts/check_hf_export.py [--atol 1e-4] [--expected-class CLASS] DIR [DIR ...]
"""

import argparse
import os
import sys
import warnings

import torch
import transformers
from packaging.version import Version
from safetensors import safe_open
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

SAMPLE = "The Federal Reserve raised rates by 25 bps."
CLASSES = ("GPT2LMHeadModel", "LlamaForCausalLM")
REFERENCE = "dapt_reference.safetensors"


class CheckFailed(Exception):
    pass


def read_reference(directory: str):
    path = os.path.join(directory, REFERENCE)
    if not os.path.isfile(path):
        raise CheckFailed(f"{REFERENCE} is missing")
    with safe_open(path, "pt") as f:
        names = set(f.keys())
        if not {"input_ids", "logits"} <= names:
            raise CheckFailed(f"{REFERENCE} holds {sorted(names)}, expected input_ids and logits")
        ids, logits, metadata = f.get_tensor("input_ids"), f.get_tensor("logits"), f.metadata() or {}
    if ids.dtype != torch.int64:
        raise CheckFailed(f"{REFERENCE}: input_ids is {ids.dtype}, expected int64")
    if logits.dtype != torch.float32:
        raise CheckFailed(f"{REFERENCE}: logits is {logits.dtype}, expected float32")
    if ids.dim() != 2 or logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(ids.shape):
        raise CheckFailed(f"{REFERENCE}: input_ids {list(ids.shape)} and logits {list(logits.shape)} "
                          "are not [B, T] and [B, T, V]")
    return ids, logits, metadata


def load_model(directory: str):
    dtype_arg = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            directory, output_loading_info=True, attn_implementation="eager", **{dtype_arg: torch.float32})
    except Exception as e:  # noqa: BLE001 - any loading error is the finding
        raise CheckFailed(f"AutoModelForCausalLM.from_pretrained failed: {type(e).__name__}: {e}") from e
    problems = [f"{key}: {value}" for key, value in sorted(info.items()) if value]
    if problems:
        raise CheckFailed("loading reported " + "; ".join(problems))
    return model


def check_tokenizer(directory: str, vocab_size: int) -> str:
    path = os.path.join(directory, "tokenizer.json")
    if not os.path.isfile(path):
        raise CheckFailed("tokenizer.json is missing")
    raw = Tokenizer.from_file(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"AutoTokenizer.from_pretrained failed: {type(e).__name__}: {e}") from e
    for special in (True, False):
        ours = raw.encode(SAMPLE, add_special_tokens=special).ids
        theirs = tokenizer(SAMPLE, add_special_tokens=special)["input_ids"]
        if list(theirs) != list(ours):
            raise CheckFailed(f"{type(tokenizer).__name__} encodes {SAMPLE!r} (add_special_tokens={special}) "
                              f"to {theirs}, tokenizer.json to {ours}")
        if not ours:
            raise CheckFailed(f"tokenizer.json encodes {SAMPLE!r} to no ids")
        if max(ours) >= vocab_size:
            raise CheckFailed(f"tokenizer id {max(ours)} >= the model's vocab_size {vocab_size}")
    if raw.get_vocab_size(with_added_tokens=True) > vocab_size:
        raise CheckFailed(f"tokenizer.json has {raw.get_vocab_size(with_added_tokens=True)} tokens, "
                          f"more than the model's vocab_size {vocab_size}")
    return type(tokenizer).__name__


def check(directory: str, atol: float, expected_class: str | None) -> str:
    ids, dapt_logits, metadata = read_reference(directory)
    expected = expected_class or metadata.get("expected_class")
    model = load_model(directory)
    name = type(model).__name__
    if name not in CLASSES:
        raise CheckFailed(f"loaded as {name}, expected one of {', '.join(CLASSES)}")
    if expected and name != expected:
        raise CheckFailed(f"loaded as {name}, expected {expected}")
    vocab = model.config.vocab_size
    if dapt_logits.shape[2] != vocab:
        raise CheckFailed(f"dapt's logits have {dapt_logits.shape[2]} columns, the model's vocab_size is {vocab}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab):
        raise CheckFailed(f"input_ids outside [0, {vocab})")
    context = getattr(model.config, "n_positions", None) or model.config.max_position_embeddings
    if ids.shape[1] > context:
        raise CheckFailed(f"input_ids has {ids.shape[1]} positions, the model's context is {context}")

    model.float().eval()
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits.float()
    if logits.shape != dapt_logits.shape:
        raise CheckFailed(f"transformers' logits are {list(logits.shape)}, dapt's {list(dapt_logits.shape)}")
    if not torch.isfinite(dapt_logits).all():
        raise CheckFailed("dapt's logits are not all finite")
    diff = (logits - dapt_logits).abs().max().item()
    if not diff <= atol:
        b, t, v = divmod_index((logits - dapt_logits).abs().argmax().item(), logits.shape)
        raise CheckFailed(f"{name} max|Δlogit| = {diff:.3g} > {atol:g} (worst at batch {b}, position {t}, "
                          f"token {v}: transformers {logits[b, t, v]:.6f}, dapt {dapt_logits[b, t, v]:.6f})")

    tokenizer_class = check_tokenizer(directory, vocab)

    prompt = ids[:1, : max(1, min(ids.shape[1], context - 4))]
    try:
        with torch.no_grad():
            out = model.generate(prompt, max_new_tokens=4, do_sample=False,
                                 pad_token_id=model.generation_config.eos_token_id or 0)
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"model.generate failed: {type(e).__name__}: {e}") from e
    if out.shape[1] <= prompt.shape[1]:
        raise CheckFailed("model.generate produced no tokens")
    return f"{name} max|Δlogit| = {diff:.3g}  OK  ({tokenizer_class}, {ids.shape[0]}x{ids.shape[1]} ids)"


def divmod_index(flat: int, shape) -> tuple[int, int, int]:
    t_v = shape[1] * shape[2]
    return flat // t_v, (flat % t_v) // shape[2], flat % shape[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", metavar="DIR")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest allowed |logit difference| (default 1e-4)")
    parser.add_argument("--expected-class", choices=CLASSES, help="the class every DIR must load as")
    args = parser.parse_args()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")

    failures = 0
    for directory in args.dirs:
        label = directory.rstrip("/") or directory
        if not os.path.isdir(directory):
            print(f"{label}: FAILED: not a folder")
            failures += 1
            continue
        try:
            print(f"{label}: {check(directory, args.atol, args.expected_class)}", flush=True)
        except CheckFailed as e:
            print(f"{label}: FAILED: {e}", flush=True)
            failures += 1
    if failures:
        sys.exit(f"{failures} of {len(args.dirs)} exported folders failed the transformers check")


if __name__ == "__main__":
    main()
