#!/usr/bin/env python3
"""PyTorch reference for the GPU benchmark: GPT-2 (124M shape by default) in bf16 autocast with
torch.compile and flash attention (scaled_dot_product_attention), fused AdamW, on random
tokens. Prints `torch-gpu: ... tokens/s ... MFU` over the timed steps (warm-up excluded).
Run by bench/gpu_session.sh beside tessera in the same job."""
import argparse
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
    def __init__(self, C, NH):
        super().__init__()
        self.NH = NH
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fc_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc_proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, C, NH, T, Vp):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(Vp, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, NH) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets, V):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits[..., :V].float().flatten(0, 1), targets.flatten())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--peak", type=float, default=989e12, help="dense bf16 FLOP/s of the GPU")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    Vp = (a.vocab + 127) // 128 * 128
    model = GPT(a.layers, a.d_model, a.heads, a.seq_len, Vp).cuda()
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "wte" not in n and "wpe" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "wte" not in n and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), fused=True)
    cmodel = torch.compile(model)
    B, T = a.micro_batch, a.seq_len
    n_params = sum(p.numel() for p in model.parameters()) - T * a.d_model - (Vp - a.vocab) * a.d_model
    flops_per_token = 6 * n_params + 12 * a.layers * a.d_model * T
    times = []
    for step in range(a.warmup + a.steps):
        idx = torch.randint(0, a.vocab, (B, T), device="cuda")
        tgt = torch.randint(0, a.vocab, (B, T), device="cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = cmodel(idx, tgt, a.vocab)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    tps = B * T * len(times) / sum(times)
    print(f"torch-gpu: {torch.__version__}, {tps:.0f} tokens/s, MFU {100 * flops_per_token * tps / a.peak:.1f}%")


if __name__ == "__main__":
    main()
