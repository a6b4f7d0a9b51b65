#!/usr/bin/env python3
"""Write the GGUF test fixtures of `crates/dapt-gguf` with llama.cpp's own `gguf` Python package.

    python scripts/make_gguf_fixture.py crates/dapt-gguf/tests/fixtures

Needs `gguf` and `numpy` only. Everything is seeded, so a rerun with the same package versions
writes the same bytes. It writes:

* `quants.gguf`: one small tensor per ggml type the crate reads (F32, F16, BF16, Q8_0, Q4_0, Q4_1,
  Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), two of types it does not (I32, Q2_K), a custom
  `general.alignment` of 64 and one metadata key of every GGUF value type, nested arrays included.
  gguf-py quantizes the legacy types itself (`gguf.quants.quantize`); it cannot quantize the
  k-quants, so those tensors are random block bytes (with finite f16 scales), which is just as good
  a test of a dequantizer.
* `quants_reference.safetensors`: `gguf.quants.dequantize` of each supported tensor, as F32 under
  the GGUF name, in numpy (row-major) shape.
* `llama_tiny.gguf`: a 2-layer Llama (d 8, 2 heads, 1 KV head, FFN 32, tied embeddings) with a
  byte-level BPE vocabulary of 286 tokens and pre-tokenizer `smollm`, laid out as llama.cpp's
  `convert_hf_to_gguf.py` writes it: q/k rows permuted for its rotary layout (`permute` below).
* `llama_tiny_untied.gguf`: the same shapes with an `output.weight`, 2 KV heads by default (no
  `head_count_kv` key), no `rope.freq_base` (default 10000), linear rope scaling, pre-tokenizer
  `llama-bpe` and `add_bos_token = true`.
* `llama_tiny[_untied]_reference.safetensors`: the Hugging Face tensors each GGUF came from, under
  Hugging Face names -- q/k before the permutation, the rest as gguf-py dequantizes them.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T


def write_f32_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """A plain safetensors file of F32 tensors (no `safetensors` package needed)."""
    header: dict[str, object] = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = data.tobytes()
        header[name] = {"dtype": "F32", "shape": list(data.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def random_k_blocks(rng: np.random.Generator, qtype: T, rows: int, cols: int) -> np.ndarray:
    """Random k-quant blocks whose f16 scales are finite (random bytes there could be NaN/inf)."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // block_size
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)

    def f16(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)

    if qtype in (T.Q4_K, T.Q5_K):  # d, dmin, scales[12], ...
        blocks[:, 0:2] = f16(rng.uniform(1e-3, 2e-2, n_blocks))
        blocks[:, 2:4] = f16(rng.uniform(1e-3, 2e-2, n_blocks))
    elif qtype == T.Q6_K:  # ql[128], qh[64], scales[16], d
        blocks[:, 208:210] = f16(rng.uniform(1e-3, 2e-2, n_blocks))
    elif qtype == T.Q2_K:  # scales[16], qs[64], d, dmin
        blocks[:, 80:84] = 0
    else:
        raise ValueError(qtype)
    return blocks.reshape(rows, cols // block_size * type_size)


def make_quants(out: Path) -> None:
    rng = np.random.default_rng(20240601)
    writer = gguf.GGUFWriter(out / "quants.gguf", arch="quants-test")
    writer.add_name("dapt-gguf quantisation fixture")
    writer.add_custom_alignment(64)

    # One key of every value type.
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4_000_000_000)
    writer.add_int32("test.i32", -2_000_000_000)
    writer.add_float32("test.f32", 3.25)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "h\u00e9llo w\u00f6rld")
    writer.add_uint64("test.u64", 2**63 + 5)
    writer.add_int64("test.i64", -(2**62))
    writer.add_float64("test.f64", 2.718281828459045)
    writer.add_array("test.array_i32", [1, -2, 3])
    writer.add_array("test.array_f32", [0.5, -1.5])
    writer.add_array("test.array_bool", [True, False, True])
    writer.add_array("test.array_str", ["a", "bc", ""])
    writer.add_array("test.array_nested", [[1, 2], [3]])
    writer.add_key_value("test.array_u64", [7, 2**40], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT64)

    reference: dict[str, np.ndarray] = {}

    def add(name: str, data: np.ndarray, qtype: T) -> None:
        if qtype == T.F32:
            stored = data.astype(np.float32)
            writer.add_tensor(name, stored)
        elif qtype == T.F16:
            stored = data.astype(np.float16)
            writer.add_tensor(name, stored)
        else:
            stored = gguf.quants.quantize(data.astype(np.float32), qtype)
            writer.add_tensor(name, stored, raw_shape=stored.shape, raw_dtype=qtype)
        reference[name] = gguf.quants.dequantize(stored.view(np.uint8) if qtype not in (T.F32, T.F16) else stored, qtype)

    special = np.array([np.inf, -np.inf, -0.0, 1e-40, -3e-39, 65504.0, 1e30, -7.5], dtype=np.float32)
    f32 = rng.normal(0, 1, (2, 3, 32)).astype(np.float32)
    f32.reshape(-1)[: special.size] = special
    add("f32_3d", f32, T.F32)

    f16 = rng.normal(0, 1, (4, 32)).astype(np.float32)
    f16[0, :6] = [1e-6, -3e-7, 6e-8, 65504.0, -0.0, 0.0]  # f16 subnormals and extremes
    add("f16_2d", f16, T.F16)

    add("bf16", rng.normal(0, 3, (2, 64)), T.BF16)
    q8 = rng.normal(0, 1, (4, 64))
    q8[1, :32] = 0.0  # an all-zero block (d = 0)
    add("q8_0", q8, T.Q8_0)
    add("q4_0", rng.normal(0, 1, (4, 64)), T.Q4_0)
    add("q4_1", rng.normal(0.3, 1, (4, 64)), T.Q4_1)
    add("q5_0", rng.normal(0, 1, (2, 64)), T.Q5_0)
    add("q5_1", rng.normal(-0.2, 1, (2, 64)), T.Q5_1)

    for name, qtype in (("q4_k", T.Q4_K), ("q5_k", T.Q5_K), ("q6_k", T.Q6_K)):
        raw = random_k_blocks(rng, qtype, 2, 512)
        writer.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
        reference[name] = gguf.quants.dequantize(raw, qtype)

    # Types the crate does not dequantize: no reference.
    writer.add_tensor("i32_tensor", np.arange(6, dtype=np.int32))
    q2 = random_k_blocks(rng, T.Q2_K, 1, 256)
    writer.add_tensor("q2_k", q2, raw_shape=q2.shape, raw_dtype=T.Q2_K)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    write_f32_safetensors(out / "quants_reference.safetensors", reference)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# (left, right) pairs, best first; "1 2" would join digits, which `smollm` splits individually.
MERGES = [
    ("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"), ("\u0120", "a"), ("e", "r"), ("o", "n"),
    ("\u0120", "s"), ("a", "t"), ("e", "n"), ("\u0120", "c"), ("\u0120", "w"), ("o", "r"), ("i", "s"),
    ("\u0120", "o"), ("\u0120", "b"), ("a", "n"), ("\u0120a", "n"), ("\u0120an", "d"), ("\u0120", "f"),
    ("\u0120", "p"), ("i", "t"), ("\u0120", "h"), ("e", "d"), ("\u0120t", "o"), ("1", "2"),
]


def permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp `convert_hf_to_gguf.py` LlamaModel.permute, verbatim."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def make_llama(out: Path, stem: str, *, untied: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    d, ff, layers, heads = 8, 32, 2, 2
    kv_heads = heads if untied else 1
    head_dim = d // heads

    byte_tokens = [bytes_to_unicode()[b] for b in range(256)]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    merged = ["".join(pair) for pair in MERGES]
    tokens = specials + byte_tokens + merged + ["<think>"]
    token_types = [3] * len(specials) + [1] * (len(byte_tokens) + len(merged)) + [4]
    vocab = len(tokens)

    writer = gguf.GGUFWriter(out / f"{stem}.gguf", arch="llama")
    writer.add_name("Tiny Llama Untied" if untied else "Tiny Llama")
    writer.add_context_length(128)
    writer.add_embedding_length(d)
    writer.add_feed_forward_length(ff)
    writer.add_block_count(layers)
    writer.add_head_count(heads)
    if not untied:
        writer.add_head_count_kv(kv_heads)
        writer.add_rope_freq_base(100000.0)
    else:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(2.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe" if untied else "smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges([f"{a} {b}" for a, b in MERGES])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(untied)
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}")

    reference: dict[str, np.ndarray] = {}

    def add(gguf_name: str, hf_name: str, hf_value: np.ndarray, qtype: T, stored_value: np.ndarray | None = None) -> None:
        """Store `stored_value` (default: the HF value) as `qtype`; the reference is what the
        crate must give back under the HF name: the HF value itself, through the same rounding."""
        value = (hf_value if stored_value is None else stored_value).astype(np.float32)
        if qtype == T.F32:
            stored = value
            writer.add_tensor(gguf_name, stored)
        elif qtype == T.F16:
            stored = value.astype(np.float16)
            writer.add_tensor(gguf_name, stored)
        else:
            stored = gguf.quants.quantize(value, qtype)
            writer.add_tensor(gguf_name, stored, raw_shape=stored.shape, raw_dtype=qtype)
        if stored_value is None:
            reference[hf_name] = gguf.quants.dequantize(stored, qtype).astype(np.float32)
        else:
            reference[hf_name] = hf_value.astype(np.float32)

    def w(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.5, shape).astype(np.float32)

    add("token_embd.weight", "model.embed_tokens.weight", w(vocab, d), T.F16)
    for i in range(layers):
        p, hp = f"blk.{i}.", f"model.layers.{i}."
        add(p + "attn_norm.weight", hp + "input_layernorm.weight", 1 + w(d), T.F32)
        q, k = w(heads * head_dim, d), w(kv_heads * head_dim, d)
        add(p + "attn_q.weight", hp + "self_attn.q_proj.weight", q, T.F32, permute(q, heads, heads))
        add(p + "attn_k.weight", hp + "self_attn.k_proj.weight", k, T.F32, permute(k, heads, kv_heads))
        add(p + "attn_v.weight", hp + "self_attn.v_proj.weight", w(kv_heads * head_dim, d), T.F32)
        add(p + "attn_output.weight", hp + "self_attn.o_proj.weight", w(d, heads * head_dim), T.F32)
        add(p + "ffn_norm.weight", hp + "post_attention_layernorm.weight", 1 + w(d), T.F32)
        add(p + "ffn_gate.weight", hp + "mlp.gate_proj.weight", w(ff, d), T.F32)
        add(p + "ffn_up.weight", hp + "mlp.up_proj.weight", w(ff, d), T.F16)
        add(p + "ffn_down.weight", hp + "mlp.down_proj.weight", w(d, ff), T.Q8_0)
    add("output_norm.weight", "model.norm.weight", 1 + w(d), T.F32)
    if untied:
        add("output.weight", "lm_head.weight", w(vocab, d), T.F32)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    write_f32_safetensors(out / f"{stem}_reference.safetensors", reference)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    make_quants(out)
    make_llama(out, "llama_tiny", untied=False, seed=7)
    make_llama(out, "llama_tiny_untied", untied=True, seed=8)
    for path in sorted(out.iterdir()):
        print(f"{path.stat().st_size:>8}  {path}")


if __name__ == "__main__":
    main()
