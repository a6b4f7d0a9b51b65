#!/usr/bin/env python3
"""PyTorch peer of dapt's Llama training and evaluation throughput: transformers' own
LlamaForCausalLM (RMSNorm, rotary positions, grouped-query attention, SwiGLU MLP), built from a
config with its default initialisation, fp32 on CPU.

Default shape: SmolLM2-135M's (vocab 49152, hidden 576, intermediate 1536, 30 layers, 9 heads,
3 KV heads, rope_theta 1e5, rms_norm_eps 1e-5, tied embeddings, context 2048). Trains on random
tokens with AdamW (weight decay 0.1 on matrices, betas 0.9/0.95) and global-norm clipping 1.0,
2 CPU threads. Prints each step's loss and tokens/s, the median training tokens/s after two
warm-up steps, the evaluation tokens/s (no_grad forward + loss over --eval-windows windows of T,
B at a time, best of 3), and a last JSON line with both, as scripts/bench_torch_gpt.py does.

    python3 scripts/bench_torch_llama.py [--steps 8] [--threads 2] [--batch 4 --seq-len 256]
        [--n-layer 30 --d-model 576 --n-head 9 --n-kv-head 3 --d-ff 1536 --vocab 49152]
        [--attn eager|sdpa]
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--n-layer", type=int, default=30)
    parser.add_argument("--d-model", type=int, default=576)
    parser.add_argument("--n-head", type=int, default=9)
    parser.add_argument("--n-kv-head", type=int, default=3)
    parser.add_argument("--d-ff", type=int, default=1536)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--rope-theta", type=float, default=100000.0)
    parser.add_argument("--untied", action="store_true", help="a separate lm_head (default: tied, as SmolLM2)")
    parser.add_argument("--attn", choices=("eager", "sdpa"), default="eager",
                        help="transformers' attention implementation (default eager)")
    parser.add_argument("--eval-windows", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    transformers.utils.logging.set_verbosity_error()

    vocab, batch, seq_len = args.vocab, args.batch, args.seq_len
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=args.d_model, intermediate_size=args.d_ff,
        num_hidden_layers=args.n_layer, num_attention_heads=args.n_head,
        num_key_value_heads=args.n_kv_head, max_position_embeddings=max(args.context, seq_len),
        rope_theta=args.rope_theta, rms_norm_eps=1e-5, tie_word_embeddings=not args.untied,
        hidden_act="silu", attention_bias=False, mlp_bias=False, use_cache=False,
    )
    model = AutoModelForCausalLM.from_config(config, attn_implementation=args.attn).float()
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.95), eps=1e-8,
    )
    n_params = sum(p.numel() for p in model.parameters())
    rates = []
    for step in range(1, args.steps + 1):
        rows = torch.randint(0, vocab, (batch, seq_len + 1))
        start = time.perf_counter()
        logits = model(input_ids=rows[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.reshape(-1, vocab), rows[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value = loss.item()
        rate = batch * seq_len / (time.perf_counter() - start)
        print(f"step {step:>3}  loss {loss_value:.3f}  {rate:>8.0f} tokens/s", flush=True)
        rates.append(rate)
    steady = rates[2:] or rates
    train_rate = statistics.median(steady)
    print(f"torch {torch.__version__} (transformers {transformers.__version__}, {args.attn} attention): "
          f"{n_params} params, median {train_rate:.0f} training tokens/s over {len(steady)} steps "
          f"(B{batch} T{seq_len}, fp32, {args.threads} threads)")

    model.eval()
    windows = torch.randint(0, vocab, (args.eval_windows, seq_len + 1))
    eval_rate = 0.0
    with torch.no_grad():
        for _ in range(3):
            start = time.perf_counter()
            for rows in windows.split(batch):
                logits = model(input_ids=rows[:, :-1], use_cache=False).logits
                F.cross_entropy(logits.reshape(-1, vocab), rows[:, 1:].reshape(-1), reduction="sum").item()
            eval_rate = max(eval_rate, args.eval_windows * seq_len / (time.perf_counter() - start))
    print(f"torch: {eval_rate:.0f} evaluation tokens/s")
    print(json.dumps({"params": n_params, "train_tokens_per_s": train_rate, "eval_tokens_per_s": eval_rate}))


if __name__ == "__main__":
    main()
