#!/usr/bin/env python3
"""Reference-logit fixtures for dapt's Hugging Face import: tiny random models built by
transformers itself, so dapt's loader and forward pass are checked against the library that
defines the format, not against dapt's own reading of it.

Each model is written to OUT_DIR/<name>/ as a Hugging Face folder (config.json,
generation_config.json, model.safetensors in float32) plus reference.safetensors:

    input_ids  int64 [2, 12]       seeded, within the vocabulary
    logits     float32 [2, 12, 96] transformers' forward pass (eager attention, no_grad)
    metadata   {"transformers_version", "torch_version", "model_class", "seed"}

Every parameter is random (seeded), norms' weights included (1 +- 0.2) and biases nonzero,
so a wrong norm, bias, tying, activation, rope scaling or weight layout cannot pass. The
smallest such error, GPT-2's exact GELU in place of its tanh one, moves the logits by about
1e-3, so tests should compare at 1e-4 or tighter.

    gpt2_tied             GPT-2, tanh GELU ("gelu_new"), tied head
    gpt2_gelu_untied      GPT-2, exact GELU ("gelu"), own lm_head.weight
    llama_gqa_tied        Llama, 4 heads / 2 KV heads, rope_theta 1e4, tied
    llama_gqa_untied      Llama, 4 heads / 1 KV head, rope_theta 1e5, linear rope scaling x2, untied
    llama_llama3_scaling  Llama, 2 heads / 1 KV head (head_dim 16), llama3 rope scaling, tied

config.json comes in both spellings dapt meets: transformers 5's (`rope_parameters`, `dtype`)
for gpt2_tied and llama_gqa_tied, transformers 4's (`rope_theta`, `rope_scaling`,
`torch_dtype`, as on the Hub) for the others; each is reloaded by transformers and must give
bit-identical logits.

    python scripts/make_hf_fixtures.py OUT_DIR                  (write the fixtures)
    python scripts/make_hf_fixtures.py OUT_DIR --compare REF    (then check they match REF's)

The committed fixtures live in crates/dapt-model/tests/fixtures/hf/; `just test-hf` reruns this
script into a temporary folder with --compare to show that they come from it.
"""

import argparse
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

VOCAB = 96
BATCH, SEQ = 2, 12
KEEP = {"config.json", "generation_config.json", "model.safetensors", "reference.safetensors"}
# Logits are recomputed on whatever CPU runs --compare; BLAS kernels differ between CPUs, so
# the comparison allows float32 rounding (the weights are normally bit-identical).
COMPARE_ATOL = 1e-5


def gpt2(activation: str, tied: bool) -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32,
        activation_function=activation, tie_word_embeddings=tied,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0,
        bos_token_id=1, eos_token_id=2,
    )
    return GPT2LMHeadModel(config)


def llama(heads: int, kv_heads: int, theta: float, tied: bool, rope_scaling=None, hidden: int = 32) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=hidden, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=64,
        rope_theta=theta, rms_norm_eps=1e-5, tie_word_embeddings=tied, rope_scaling=rope_scaling,
        attention_bias=False, mlp_bias=False, hidden_act="silu",
        bos_token_id=1, eos_token_id=2,
    )
    return LlamaForCausalLM(config)


# name -> (seed, constructor, config.json style). Seeds differ so no two fixtures share weights.
# Style "v5" is what transformers >= 5 writes (`rope_parameters` holding rope_theta and the
# scaling, `dtype`); "v4" is what the checkpoints on the Hub carry (top-level `rope_theta`,
# `rope_scaling`, `torch_dtype`), rewritten here and checked to load to the same logits;
# "v4-type" also names the scaling's kind "type", as Llama 2-era configs do.
MODELS = {
    "gpt2_tied": (1, lambda: gpt2("gelu_new", tied=True), "v5"),
    "gpt2_gelu_untied": (2, lambda: gpt2("gelu", tied=False), "v4"),
    "llama_gqa_tied": (3, lambda: llama(4, 2, 10000.0, tied=True), "v5"),
    # Linear scaling as Llama 2-era configs spell it: {"type": "linear", "factor": 2.0}.
    "llama_gqa_untied": (4, lambda: llama(4, 1, 100000.0, tied=False,
                                          rope_scaling={"rope_type": "linear", "factor": 2.0}), "v4-type"),
    # head_dim 16 (2 heads over 32) gives 8 frequencies whose wavelengths (6.3, 20, 63, ...)
    # fall in all three of llama3's bands for original_max_position_embeddings 32: below
    # 32/4 = 8 (kept), between 8 and 32/1 (smoothed), above 32 (divided by the factor).
    # Spelled as Llama 3.1's config.json spells it.
    "llama_llama3_scaling": (5, lambda: llama(2, 1, 10000.0, tied=True, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32}), "v4"),
}


def v4_config(path: str, old_type_key: bool) -> None:
    """Rewrites a transformers-5 config.json the way transformers 4 wrote it; with old_type_key,
    rope_scaling names its kind "type" (Llama 2-era configs) rather than "rope_type"."""
    config = json.load(open(path))
    if "dtype" in config:
        config["torch_dtype"] = config.pop("dtype")
    rope = config.pop("rope_parameters", None)
    if rope is not None:
        rope = dict(rope)
        config["rope_theta"] = rope.pop("rope_theta")
        if rope.get("rope_type", "default") == "default":
            config["rope_scaling"] = None
        else:
            rope.pop("type", None)
            if old_type_key:
                rope["type"] = rope.pop("rope_type")
            config["rope_scaling"] = rope
    with open(path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def randomise(model: torch.nn.Module) -> None:
    """Every parameter random: weights N(0, 0.2), norm scales 1 + N(0, 0.2), biases N(0, 0.2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied parameters appear once
            leaf = name.rsplit(".", 1)[0].rsplit(".", 1)[-1]
            is_norm = "norm" in leaf or leaf.startswith("ln_")
            if is_norm and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape))
            else:
                p.copy_(0.2 * torch.randn(p.shape))


def forward(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits.float().contiguous()


def load(directory: str) -> torch.nn.Module:
    cls = GPT2LMHeadModel if json.load(open(os.path.join(directory, "config.json")))["model_type"] == "gpt2" else LlamaForCausalLM
    model, info = cls.from_pretrained(directory, output_loading_info=True, attn_implementation="eager")
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"{directory}: reloading the saved model reported {problems}")
    return model


def make(name: str, seed: int, build, style: str, out: str) -> None:
    torch.manual_seed(seed)
    model = build()
    model.config._attn_implementation = "eager"
    randomise(model)
    model.tie_weights()
    config = model.config
    tied = config.tie_word_embeddings
    shared = model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert shared == tied, f"{name}: tie_word_embeddings={tied} but shared storage={shared}"
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(1000 + seed))
    logits = forward(model, ids)

    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for extra in set(os.listdir(folder)) - KEEP:
        os.remove(os.path.join(folder, extra))
    if style.startswith("v4"):
        v4_config(os.path.join(folder, "config.json"), old_type_key=style == "v4-type")

    # The reference comes from the saved files, so it holds for what dapt will read.
    reloaded = forward(load(folder), ids)
    if not torch.equal(reloaded, logits):
        sys.exit(f"{name}: logits after save/reload differ by {(reloaded - logits).abs().max():.3g}")
    save_file(
        {"input_ids": ids.to(torch.int64).contiguous(), "logits": logits},
        os.path.join(folder, "reference.safetensors"),
        metadata={
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "model_class": type(model).__name__,
            "seed": str(seed),
        },
    )
    sizes = {f: os.path.getsize(os.path.join(folder, f)) for f in sorted(os.listdir(folder))}
    total = sum(sizes.values())
    detail = ", ".join(f"{f} {n / 1024:.1f} KiB" for f, n in sizes.items())
    print(f"{name}: {type(model).__name__}, |logit| max {logits.abs().max():.2f}; {total / 1024:.1f} KiB ({detail})")


def compare(out: str, ref: str) -> bool:
    ok = True
    for name in MODELS:
        new_dir, old_dir = os.path.join(out, name), os.path.join(ref, name)
        if not os.path.isdir(old_dir):
            print(f"{name}: missing from {ref}")
            ok = False
            continue
        problems = []
        for f in ("config.json", "generation_config.json"):
            a, b = (json.load(open(os.path.join(d, f))) for d in (new_dir, old_dir))
            for d in (a, b):
                d.pop("transformers_version", None)
            if a != b:
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                problems.append(f"{f} differs in {keys}")
        new_w, old_w = (load_file(os.path.join(d, "model.safetensors")) for d in (new_dir, old_dir))
        identical = True
        if new_w.keys() != old_w.keys():
            problems.append(f"weight names differ: {sorted(set(new_w) ^ set(old_w))}")
        else:
            for key in new_w:
                if new_w[key].shape != old_w[key].shape:
                    problems.append(f"weight {key} is {list(new_w[key].shape)}, was {list(old_w[key].shape)}")
                elif not torch.equal(new_w[key], old_w[key]):
                    identical = False
                    # torch's vectorised normal sampler may round differently on another CPU.
                    if not torch.allclose(new_w[key], old_w[key], rtol=0.0, atol=1e-6):
                        problems.append(f"weight {key} differs")
        new_r, old_r = (load_file(os.path.join(d, "reference.safetensors")) for d in (new_dir, old_dir))
        if not torch.equal(new_r["input_ids"], old_r["input_ids"]):
            problems.append("input_ids differ")
        diff = float("inf")
        if new_r["logits"].shape == old_r["logits"].shape:
            diff = (new_r["logits"] - old_r["logits"]).abs().max().item()
        if not diff <= COMPARE_ATOL:
            problems.append(f"logits differ by {diff:.3g} (> {COMPARE_ATOL})")
        if problems:
            ok = False
            print(f"{name}: does NOT match {old_dir}: " + "; ".join(problems))
        else:
            weights = "identical" if identical else "within 1e-6"
            print(f"{name}: matches {old_dir} (weights {weights}, max|Δlogit| = {diff:.3g})")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--compare", metavar="REF_DIR", help="after writing, check OUT_DIR's fixtures against REF_DIR's")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread: the same reduction order on every machine
    transformers.utils.logging.disable_progress_bar()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for name, (seed, build, style) in MODELS.items():
        make(name, seed, build, style, args.out_dir)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(args.out_dir) for f in fs)
    print(f"total {total / 1024:.1f} KiB in {args.out_dir}")
    if args.compare and not compare(args.out_dir, args.compare):
        sys.exit(f"the fixtures written to {args.out_dir} do not match {args.compare}: regenerate and commit them")


if __name__ == "__main__":
    main()
