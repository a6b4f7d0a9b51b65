#!/usr/bin/env python3
"""Checks that Hugging Face folders exported by dapt load in transformers and compute dapt's logits.

For each DIR (written by `cargo run --release -p dapt-model --example hf_export_check`):

  1. the Auto class of its kind loads it — AutoModelForCausalLM (GPT2LMHeadModel,
     LlamaForCausalLM), AutoModelForMaskedLM (BertForMaskedLM, RobertaForMaskedLM) or
     AutoModelForSeq2SeqLM (T5ForConditionalGeneration), the kind taken from the class
     --expected-class, DIR/dapt_reference.safetensors or config.json's architectures names —
     with no missing, unexpected or mismatched keys and no error messages (a missing key
     transformers ties to a loaded one, such as a tied head, is not missing), as that class;
  2. its float32 logits on the reference ids (eval mode, no_grad, eager attention) are within
     --atol (default 1e-4) of the logits dapt computed: next-token logits of a causal LM, the
     masked-LM head's of an encoder, the decoder's of T5 given input_ids and
     decoder_input_ids;
  3. AutoTokenizer.from_pretrained(DIR) loads and encodes a sample sentence to the same ids
     as tokenizers.Tokenizer.from_file(DIR/tokenizer.json), with and without special tokens,
     all of them below the model's vocab_size;
  4. model.generate runs (4 greedy tokens) for causal LMs and T5, so
     config.json/generation_config.json are usable (masked LMs do not generate).

DIR/dapt_reference.safetensors, written by dapt beside the weights:

    input_ids          int64   [B, T]      token ids (T5: the encoder's), T <= the model's context
    decoder_input_ids  int64   [B, Td]     T5 only: the decoder's ids, each row from the
                                           decoder start id
    logits             float32 [B, T, V]   dapt's logits (T5: [B, Td, V]; V = config vocab_size)
    metadata           optional; "expected_class": GPT2LMHeadModel, LlamaForCausalLM,
                       BertForMaskedLM, RobertaForMaskedLM or T5ForConditionalGeneration

Prints `<dir>: <class> max|Δlogit| = <x>  OK` per folder; exits 1 if any check fails (every
folder is still checked, and each failure says what and where).

    python scripts/check_hf_export.py [--atol 1e-4] [--expected-class CLASS] DIR [DIR ...]
"""


import argparse
import json
import os
import sys
import warnings

import torch
import transformers
from packaging.version import Version
from safetensors import safe_open
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoTokenizer

SAMPLE = "The Federal Reserve raised rates by 25 bps."
CAUSAL = ("GPT2LMHeadModel", "LlamaForCausalLM")
MASKED = ("BertForMaskedLM", "RobertaForMaskedLM")
SEQ2SEQ = ("T5ForConditionalGeneration",)
CLASSES = CAUSAL + MASKED + SEQ2SEQ
AUTO = {**{c: AutoModelForCausalLM for c in CAUSAL}, **{c: AutoModelForMaskedLM for c in MASKED},
        **{c: AutoModelForSeq2SeqLM for c in SEQ2SEQ}}
REFERENCE = "dapt_reference.safetensors"


class CheckFailed(Exception):
    pass


def read_reference(directory: str):
    """input_ids, decoder_input_ids (None unless T5's), logits and metadata."""
    path = os.path.join(directory, REFERENCE)
    if not os.path.isfile(path):
        raise CheckFailed(f"{REFERENCE} is missing")
    with safe_open(path, "pt") as f:
        names = set(f.keys())
        if not {"input_ids", "logits"} <= names:
            raise CheckFailed(f"{REFERENCE} holds {sorted(names)}, expected input_ids and logits")
        ids, logits, metadata = f.get_tensor("input_ids"), f.get_tensor("logits"), f.metadata() or {}
        decoder_ids = f.get_tensor("decoder_input_ids") if "decoder_input_ids" in names else None
    for label, tensor in (("input_ids", ids), ("decoder_input_ids", decoder_ids)):
        if tensor is not None and (tensor.dtype != torch.int64 or tensor.dim() != 2):
            raise CheckFailed(f"{REFERENCE}: {label} is {tensor.dtype} {list(tensor.shape)}, expected int64 [B, T]")
    if logits.dtype != torch.float32:
        raise CheckFailed(f"{REFERENCE}: logits is {logits.dtype}, expected float32")
    rows = decoder_ids if decoder_ids is not None else ids
    if logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(rows.shape) or rows.shape[0] != ids.shape[0]:
        shapes = f"input_ids {list(ids.shape)}"
        if decoder_ids is not None:
            shapes += f", decoder_input_ids {list(decoder_ids.shape)}"
        raise CheckFailed(f"{REFERENCE}: {shapes} and logits {list(logits.shape)} do not fit "
                          "([B, T] and [B, T, V]; T5: [B, Te], [B, Td] and [B, Td, V])")
    return ids, decoder_ids, logits, metadata


def configured_class(directory: str) -> str | None:
    """The first of config.json's architectures, if it names one."""
    try:
        with open(os.path.join(directory, "config.json")) as f:
            architectures = json.load(f).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return None
    return architectures[0] if architectures and isinstance(architectures[0], str) else None


def shares_storage_with_loaded(model, key: str, missing: set[str]) -> bool:
    """Whether parameter `key` is tied by transformers to one the checkpoint did provide."""
    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))
    tensor = tensors.get(key)
    if tensor is None:
        return False
    return any(name != key and name not in missing and other.data_ptr() == tensor.data_ptr()
               and other.shape == tensor.shape
               for name, other in tensors.items())


def load_model(directory: str, expected: str):
    auto = AUTO[expected]
    dtype_arg = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    try:
        model, info = auto.from_pretrained(
            directory, output_loading_info=True, attn_implementation="eager", **{dtype_arg: torch.float32})
    except Exception as e:  # noqa: BLE001 - any loading error is the finding
        raise CheckFailed(f"{auto.__name__}.from_pretrained failed: {type(e).__name__}: {e}") from e
    # A key transformers ties to another (BERT's cls.predictions.decoder.weight, RoBERTa's
    # lm_head.decoder.weight, T5's encoder/decoder.embed_tokens.weight and a tied lm_head, all
    # the word embedding) is absent from a tied export by design: it is fine when "missing"
    # as long as transformers did tie it, i.e. it shares storage with a key that was loaded.
    # (transformers 5 already drops such keys from missing_keys; older versions list them.)
    missing = set(info.get("missing_keys") or ())
    info = dict(info, missing_keys=sorted(k for k in missing if not shares_storage_with_loaded(model, k, missing)))
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


def context_of(model) -> int | None:
    """The longest input the model's positions allow (None: T5's are relative)."""
    config = model.config
    if config.model_type == "t5":
        return getattr(config, "n_positions", None)
    context = getattr(config, "n_positions", None) or config.max_position_embeddings
    if config.model_type == "roberta":
        context -= config.pad_token_id + 1  # positions count from the padding id plus one
    return context


def check(directory: str, atol: float, expected_class: str | None) -> str:
    ids, decoder_ids, dapt_logits, metadata = read_reference(directory)
    expected = expected_class or metadata.get("expected_class") or configured_class(directory)
    if expected not in CLASSES:
        raise CheckFailed(f"expected class {expected!r} (from --expected-class, {REFERENCE} or config.json) "
                          f"is not one of {', '.join(CLASSES)}")
    seq2seq = expected in SEQ2SEQ
    if seq2seq != (decoder_ids is not None):
        raise CheckFailed(f"{REFERENCE} {'lacks' if seq2seq else 'holds'} decoder_input_ids for a {expected}")
    model = load_model(directory, expected)
    name = type(model).__name__
    if name != expected:
        raise CheckFailed(f"loaded as {name}, expected {expected}")
    vocab = model.config.vocab_size
    if dapt_logits.shape[2] != vocab:
        raise CheckFailed(f"dapt's logits have {dapt_logits.shape[2]} columns, the model's vocab_size is {vocab}")
    for label, tensor in (("input_ids", ids), ("decoder_input_ids", decoder_ids)):
        if tensor is not None and tensor.numel() and (tensor.min() < 0 or tensor.max() >= vocab):
            raise CheckFailed(f"{label} outside [0, {vocab})")
    context = context_of(model)
    if context is not None and ids.shape[1] > context:
        raise CheckFailed(f"input_ids has {ids.shape[1]} positions, the model's context is {context}")
    if seq2seq:
        start = model.config.decoder_start_token_id
        if not (decoder_ids[:, 0] == start).all():
            raise CheckFailed(f"decoder_input_ids do not all start with decoder_start_token_id {start}")
    if model.config.model_type == "roberta" and (ids == model.config.pad_token_id).any():
        raise CheckFailed(f"input_ids hold RoBERTa's padding id {model.config.pad_token_id}, "
                          "which transformers' positions skip")

    model.float().eval()
    with torch.no_grad():
        if seq2seq:
            logits = model(input_ids=ids, decoder_input_ids=decoder_ids, use_cache=False).logits.float()
        elif expected in MASKED:
            logits = model(input_ids=ids).logits.float()
        else:
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

    shape = f"{ids.shape[0]}x{ids.shape[1]}"
    if seq2seq:
        shape += f" + {decoder_ids.shape[0]}x{decoder_ids.shape[1]} decoder"
    shape += " ids"
    if expected in MASKED:
        return f"{name} max|Δlogit| = {diff:.3g}  OK  ({tokenizer_class}, {shape}; masked LM: no generate)"

    # T5's prompt is the encoder's input; a decoder-only model's leaves room for 4 tokens.
    prompt = ids[:1] if seq2seq else ids[:1, : max(1, min(ids.shape[1], context - 4))]
    pad = model.generation_config.pad_token_id
    if pad is None:
        pad = model.generation_config.eos_token_id or 0
    try:
        with torch.no_grad():
            out = model.generate(prompt, max_new_tokens=4, do_sample=False, pad_token_id=pad)
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"model.generate failed: {type(e).__name__}: {e}") from e
    # A decoder-only model returns the prompt and what follows; T5 the decoder's ids, from
    # its start id.
    produced = out.shape[1] - (1 if seq2seq else prompt.shape[1])
    if produced <= 0:
        raise CheckFailed("model.generate produced no tokens")
    return f"{name} max|Δlogit| = {diff:.3g}  OK  ({tokenizer_class}, {shape})"


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
