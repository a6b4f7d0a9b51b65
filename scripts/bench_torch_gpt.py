#!/usr/bin/env python3
"""PyTorch peer of `cargo run --release -p dapt-model --example train_throughput`.

Same model (GPT: learned positions, pre-LayerNorm, fused qkv, causal attention, exact GELU 4x
MLP, tied head), same shapes (default 4 layers, d 256, 4 heads; T 128, B 8, vocab 8192), fp32,
AdamW with global-norm clipping 1.0, 2 CPU threads. Prints the median training tokens/s after
two warm-up steps, the evaluation tokens/s (no_grad forward + loss over 16 windows of 128, 8 at
a time, best of 3), and a last JSON line with both.

    python3 scripts/bench_torch_gpt.py [--steps 8] [--threads 2] [--n-layer 4 --d-model 256 --n-head 4]
"""

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.attention_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.output = nn.Linear(d_model, d_model)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.expand = nn.Linear(d_model, 4 * d_model)
        self.contract = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        context = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.output(context.transpose(1, 2).reshape(b, t, d))
        return x + self.contract(F.gelu(self.expand(self.mlp_norm(x))))


class Gpt(nn.Module):
    def __init__(self, vocab: int, n_layer: int, n_head: int, d_model: int, context: int):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d_model)
        self.position_embedding = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_head) for _ in range(n_layer))
        self.final_norm = nn.LayerNorm(d_model)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("output.weight", "contract.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.token_embedding(ids) + self.position_embedding.weight[:t]
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x) @ self.token_embedding.weight.T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-head", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    vocab, batch, seq_len = 8192, 8, 128
    model = Gpt(vocab, n_layer=args.n_layer, n_head=args.n_head, d_model=args.d_model, context=seq_len)
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
        logits = model(rows[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), rows[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value = loss.item()
        rate = batch * seq_len / (time.perf_counter() - start)
        print(f"step {step:>3}  loss {loss_value:.3f}  {rate:>8.0f} tokens/s")
        rates.append(rate)
    steady = rates[2:] or rates
    train_rate = statistics.median(steady)
    print(f"torch {torch.__version__}: {n_params} params, median {train_rate:.0f} "
          f"training tokens/s over {len(steady)} steps (B8 T128, fp32, {args.threads} threads)")

    model.eval()
    windows = torch.randint(0, vocab, (16, seq_len + 1))
    eval_rate = 0.0
    with torch.no_grad():
        for _ in range(3):
            start = time.perf_counter()
            for rows in windows.split(batch):
                logits = model(rows[:, :-1])
                F.cross_entropy(logits.reshape(-1, vocab), rows[:, 1:].reshape(-1), reduction="sum").item()
            eval_rate = max(eval_rate, 16 * seq_len / (time.perf_counter() - start))
    print(f"torch: {eval_rate:.0f} evaluation tokens/s")
    print(json.dumps({"params": n_params, "train_tokens_per_s": train_rate, "eval_tokens_per_s": eval_rate}))


if __name__ == "__main__":
    main()
