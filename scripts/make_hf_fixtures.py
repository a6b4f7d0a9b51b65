#!/usr/bin/env python3
"""Reference-logit fixtures for dapt's Hugging Face import: tiny random models built by
transformers itself, so dapt's loader and forward pass are checked against the library that
defines the format, not against dapt's own reading of it.

Each model is written to OUT_DIR/<name>/ as a Hugging Face folder (config.json,
model.safetensors in float32, and generation_config.json where transformers writes one: not
for the masked-LM encoders) plus reference.safetensors, from transformers' forward pass (eager
attention, no_grad, no padding, so no attention mask):

    input_ids              int64 [2, 12]       seeded, within the vocabulary (RoBERTa and T5:
                                               from 2 up, so no pad id: RoBERTa's is 1, T5's 0)
    logits                 float32 [2, 12, 96] (T5: [2, 7, 96], over the decoder's positions)
    hidden_states          float32 [2, 12, 32] BERT and RoBERTa only: the last encoder layer's
                                               output, before the MLM head (token_type_ids 0)
    decoder_input_ids      int64 [2, 7]        T5 only: 0 (decoder_start_token_id), then seeded
    encoder_hidden_states  float32 [2, 12, 32] T5 only: the encoder's output, after its final norm
    metadata   {"transformers_version", "torch_version", "model_class", "seed"}

Every parameter is random (seeded), norms' weights included (1 +- 0.2) and biases nonzero,
so a wrong norm, bias, tying, activation, rope scaling, position offset, relative position
bucket or weight layout cannot pass. The smallest such error, GPT-2's exact GELU in place of
its tanh one (or T5's gelu_new), moves the logits by about 1e-3, and BERT's LayerNorm eps
1e-5 in place of 1e-12 by about 1.5e-4, so tests should compare at 1e-4 or tighter.

    gpt2_tied             GPT-2, tanh GELU ("gelu_new"), tied head
    gpt2_gelu_untied      GPT-2, exact GELU ("gelu"), own lm_head.weight
    llama_gqa_tied        Llama, 4 heads / 2 KV heads, rope_theta 1e4, tied
    llama_gqa_untied      Llama, 4 heads / 1 KV head, rope_theta 1e5, linear rope scaling x2, untied
    llama_llama3_scaling  Llama, 2 heads / 1 KV head (head_dim 16), llama3 rope scaling, tied
    bert_mlm              BertForMaskedLM, exact GELU, post-LN, decoder tied to the word embeddings
    roberta_mlm           RobertaForMaskedLM, pad 1, positions from pad + 1 = 2 (34 position rows)
    t5_span               T5 v1.0: ReLU FFN, head tied to `shared` and fed decoder output * 32**-0.5
    t5_gated_untied       T5 v1.1 / Flan: gated-gelu (gelu_new) FFN, own lm_head.weight, no rescaling

Each has 32 hidden units (T5: d_model 32, 4 heads of d_kv 8, relative position buckets 8 with
max distance 20), 2 layers (T5: 2 encoder and 2 decoder blocks) and a 64-unit FFN (t5_gated_untied:
24, to stay under 200 KB).

config.json comes in both spellings dapt meets: transformers 5's (`rope_parameters`, `dtype`,
T5's `scale_decoder_outputs`) for gpt2_tied, llama_gqa_tied, bert_mlm and t5_span,
transformers 4's (`rope_theta`, `rope_scaling`, `torch_dtype`, and for T5 only
`tie_word_embeddings`, as on the Hub) for the others; each is reloaded by transformers and must
give bit-identical outputs.

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
from transformers import (
    BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
    RobertaConfig, RobertaForMaskedLM, T5Config, T5ForConditionalGeneration,
)

VOCAB = 96
BATCH, SEQ = 2, 12
DECODER_SEQ = 7  # T5's decoder_input_ids: the start token 0, then 6 seeded ids
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


def bert() -> BertForMaskedLM:
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32, type_vocab_size=2, hidden_act="gelu",
        layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        pad_token_id=0, tie_word_embeddings=True,
    )
    return BertForMaskedLM(config)


def roberta() -> RobertaForMaskedLM:
    # Position ids count from pad_token_id + 1 (fairseq's rule), so SEQ tokens need SEQ + 2 rows;
    # 32 + 2 as RoBERTa's 512 + 2.
    config = RobertaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32 + 2, type_vocab_size=2, hidden_act="gelu",
        layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, tie_word_embeddings=True,
    )
    return RobertaForMaskedLM(config)


def t5(feed_forward: str, tied: bool, d_ff: int = 64) -> T5ForConditionalGeneration:
    config = T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=d_ff, num_layers=2, num_decoder_layers=2,
        num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
        feed_forward_proj=feed_forward, tie_word_embeddings=tied, dropout_rate=0.0,
        layer_norm_epsilon=1e-6, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    model = T5ForConditionalGeneration(config)
    if not tied:
        # transformers 5 reads tie_word_embeddings=False as "do not rescale the decoder output"
        # and still ties lm_head to `shared`; T5 v1.1 / Flan checkpoints carry their own
        # lm_head.weight, so it is untied here, as loading such a checkpoint unties it.
        model.config.tie_word_embeddings = False
        model.all_tied_weights_keys.pop("lm_head.weight")
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    return model


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
    "bert_mlm": (6, bert, "v5"),
    "roberta_mlm": (7, roberta, "v4"),
    # T5 v1.0 (t5-small): config.json as transformers 5 writes it, scale_decoder_outputs true.
    "t5_span": (8, lambda: t5("relu", tied=True), "v5"),
    # T5 v1.1 / Flan-T5: config.json as on the Hub, "tie_word_embeddings": false and no
    # scale_decoder_outputs. d_ff 24 keeps the folder under 200 KB (its own lm_head and the
    # gate's third matrix add 60 KB at d_ff 64) and, unlike 32, off d_model, so a transposed
    # wi/wo cannot load.
    "t5_gated_untied": (9, lambda: t5("gated-gelu", tied=False, d_ff=24), "v4"),
}
# model_type in config.json -> the class that reloads it.
CLASSES = {
    "gpt2": GPT2LMHeadModel, "llama": LlamaForCausalLM, "bert": BertForMaskedLM,
    "roberta": RobertaForMaskedLM, "t5": T5ForConditionalGeneration,
}


def v4_config(path: str, old_type_key: bool) -> None:
    """Rewrites a transformers-5 config.json the way transformers 4 wrote it; with old_type_key,
    rope_scaling names its kind "type" (Llama 2-era configs) rather than "rope_type"."""
    config = json.load(open(path))
    if "dtype" in config:
        config["torch_dtype"] = config.pop("dtype")
    # T5: transformers 4 had no scale_decoder_outputs; tie_word_embeddings meant both "tied" and
    # "rescaled", and transformers 5 derives the rescaling from it where the key is absent (and
    # unties lm_head where the checkpoint holds its own).
    scale = config.pop("scale_decoder_outputs", None)
    if scale is not None and scale != config["tie_word_embeddings"]:
        sys.exit(f"{path}: scale_decoder_outputs={scale} has no transformers 4 spelling "
                 f"with tie_word_embeddings={config['tie_word_embeddings']}")
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
            is_norm = "norm" in leaf.lower() or leaf.startswith("ln_")  # BERT's "LayerNorm"
            if is_norm and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape))
            else:
                p.copy_(0.2 * torch.randn(p.shape))


def inputs(model_type: str, seed: int) -> dict[str, torch.Tensor]:
    """The seeded token ids a fixture's reference is computed for. RoBERTa's and T5's avoid ids 0
    and 1 (their pad ids), so no position is padding: RoBERTa's position ids are then 2..13."""
    generator = torch.Generator().manual_seed(1000 + seed)
    low = 2 if model_type in ("roberta", "t5") else 0
    ids = {"input_ids": torch.randint(low, VOCAB, (BATCH, SEQ), generator=generator)}
    if model_type == "t5":
        start = torch.zeros((BATCH, 1), dtype=torch.int64)  # decoder_start_token_id
        rest = torch.randint(2, VOCAB, (BATCH, DECODER_SEQ - 1), generator=generator)
        ids["decoder_input_ids"] = torch.cat([start, rest], dim=1)
    return {k: v.to(torch.int64).contiguous() for k, v in ids.items()}


def forward(model: torch.nn.Module, ids: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference outputs: logits, plus the encoder states dapt's probes read."""
    model.eval()
    out = {}
    with torch.no_grad():
        if model.config.model_type in ("bert", "roberta"):
            types = torch.zeros_like(ids["input_ids"])
            result = model(**ids, token_type_ids=types, output_hidden_states=True)
            # hidden_states: the embeddings' output, then each layer's; the last is the
            # encoder's output (MaskedLM models have no pooler).
            assert len(result.hidden_states) == model.config.num_hidden_layers + 1
            out["hidden_states"] = result.hidden_states[-1]
        elif model.config.model_type == "t5":
            result = model(**ids, use_cache=False)
            out["encoder_hidden_states"] = result.encoder_last_hidden_state
        else:
            result = model(**ids, use_cache=False)
        out["logits"] = result.logits
    return {k: v.float().contiguous() for k, v in out.items()}


def check_eager(model: torch.nn.Module, what: str) -> None:
    # T5's encoder and decoder stacks are models of their own, with their own config.
    for module in model.modules():
        if isinstance(module, transformers.PreTrainedModel) and module.config._attn_implementation != "eager":
            sys.exit(f"{what}: {type(module).__name__} uses {module.config._attn_implementation} attention, not eager")


def load(directory: str) -> torch.nn.Module:
    cls = CLASSES[json.load(open(os.path.join(directory, "config.json")))["model_type"]]
    model, info = cls.from_pretrained(directory, output_loading_info=True, attn_implementation="eager")
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"{directory}: reloading the saved model reported {problems}")
    check_eager(model, directory)
    return model


def make(name: str, seed: int, build, style: str, out: str) -> None:
    torch.manual_seed(seed)
    model = build()
    model.set_attn_implementation("eager")
    check_eager(model, name)
    randomise(model)
    model.tie_weights()
    config = model.config
    tied = config.tie_word_embeddings
    shared = model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert shared == tied, f"{name}: tie_word_embeddings={tied} but shared storage={shared}"
    ids = inputs(config.model_type, seed)
    outputs = forward(model, ids)
    logits = outputs["logits"]

    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for extra in set(os.listdir(folder)) - KEEP:
        os.remove(os.path.join(folder, extra))
    if style.startswith("v4"):
        v4_config(os.path.join(folder, "config.json"), old_type_key=style == "v4-type")

    # The reference comes from the saved files, so it holds for what dapt will read.
    reloaded = forward(load(folder), ids)
    for key, value in outputs.items():
        if not torch.equal(reloaded[key], value):
            sys.exit(f"{name}: {key} after save/reload differ by {(reloaded[key] - value).abs().max():.3g}")
    save_file(
        {**ids, **outputs},
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
            present = [os.path.exists(os.path.join(d, f)) for d in (new_dir, old_dir)]
            if present != [True, True]:
                if present[0] != present[1]:
                    problems.append(f"{f} is {'new' if present[0] else 'gone'}")
                continue
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
        if new_r.keys() != old_r.keys():
            problems.append(f"reference tensor names differ: {sorted(set(new_r) ^ set(old_r))}")
        diffs = {}
        for key in sorted(new_r.keys() & old_r.keys()):
            if new_r[key].is_floating_point():  # logits, hidden states: recomputed, so rounded
                diff = float("inf")
                if new_r[key].shape == old_r[key].shape:
                    diff = (new_r[key] - old_r[key]).abs().max().item()
                if not diff <= COMPARE_ATOL:
                    problems.append(f"{key} differ by {diff:.3g} (> {COMPARE_ATOL})")
                diffs[key] = diff
            elif not torch.equal(new_r[key], old_r[key]):  # the token ids
                problems.append(f"{key} differ")
        if problems:
            ok = False
            print(f"{name}: does NOT match {old_dir}: " + "; ".join(problems))
        else:
            weights = "identical" if identical else "within 1e-6"
            detail = ", ".join(f"max|Δ{key}| = {diff:.3g}" for key, diff in diffs.items())
            print(f"{name}: matches {old_dir} (weights {weights}, {detail})")
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
