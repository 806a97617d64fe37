#!/usr/bin/env python3
"""PyTorch twin of a tessera CPU training run, for bench/cpu_train_vs_torch.sh.

Trains the same GPT-2 shape as tessera (pre-LN blocks, tanh GELU, causal attention written out
since torch 1.13 has no scaled_dot_product_attention, LM head tied to a vocabulary padded to a
multiple of 128 with the loss over the real vocabulary) in fp32 with AdamW (decay on the block
matrices only) and global-norm clipping, on random token batches of the same shape. Prints one
line `torch: ... tokens/s` (the mean over the timed steps, warm-up steps excluded).
"""
import argparse
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print(f"SKIP: torch not installed ({e})")
    sys.exit(77)


class Block(nn.Module):
    def __init__(self, C, NH, T):
        super().__init__()
        self.NH = NH
        self.ln_1 = nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.fc = nn.Linear(C, 4 * C)
        self.fc_proj = nn.Linear(4 * C, C)
        self.register_buffer("causal", torch.ones(T, T, dtype=torch.bool).tril(), persistent=False)

    def attention(self, x):
        B, T, C = x.shape
        HS = C // self.NH
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.NH, HS).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HS))
        att = att.masked_fill(~self.causal[:T, :T], float("-inf")).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, C, NH, T, V):
        super().__init__()
        self.V = V
        Vp = (V + 127) // 128 * 128
        self.wte = nn.Embedding(Vp, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList(Block(C, NH, T) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        for name, p in self.named_parameters():  # GPT-2 initialisation
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, std=std)
        with torch.no_grad():
            self.wte.weight[V:].zero_()

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe.weight[:T]
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied head
        return F.cross_entropy(logits[..., : self.V].reshape(-1, self.V), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--d-model", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=257)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=15, help="timed steps")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = GPT(args.layers, args.d_model, args.heads, args.seq_len, args.vocab)
    decayed = [p for n, p in model.named_parameters() if p.dim() == 2 and n.startswith("h.")]
    others = [p for n, p in model.named_parameters() if not (p.dim() == 2 and n.startswith("h."))]
    opt = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1},
                             {"params": others, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    B, T = args.micro_batch, args.seq_len
    times = []
    for step in range(args.warmup + args.steps):
        tokens = torch.randint(0, args.vocab, (B, T + 1))
        t0 = time.perf_counter()
        loss = model(tokens[:, :-1], tokens[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_value = loss.item()
        times.append(time.perf_counter() - t0)
        print(f"torch step {step + 1:3d} | loss {loss_value:.4f} | {times[-1] * 1000:.0f} ms"
              f"{' (warm-up)' if step < args.warmup else ''}", flush=True)
    timed = times[args.warmup:]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch: {torch.__version__}, {torch.get_num_threads()} threads, {n_params / 1e6:.2f}M "
          f"parameters (padded), {len(timed)} timed steps, mean {sum(timed) / len(timed) * 1000:.0f} "
          f"ms/step, {B * T * len(timed) / sum(timed):.0f} tokens/s")


if __name__ == "__main__":
    main()
