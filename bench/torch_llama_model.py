"""The LLaMA-shaped model of tessera's `family = "llama"`, written as a PyTorch user would write
it, for the benchmarks that run PyTorch beside tessera (bench/torch_llama_train.py on the CPU,
bench/torch_llama_gpu.py on a GPU): RMSNorm, rotary positions (rotate-half over the whole head,
cos/sin tables built once), grouped-query attention through F.scaled_dot_product_attention
(causal; key/value heads shared with enable_gqa, attention_path "gqa", or repeated with
repeat_interleave, "repeat"), SwiGLU MLP down(silu(gate(x)) * up(x)), no biases, an untied LM
head over the vocabulary padded to a multiple of 128 and the loss over the real vocabulary in
fp32. QKV and gate/up are one linear layer each, as in tessera, so both run the same GEMM shapes.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def rope_tables(T, HS, theta):
    """cos and sin (T, HS): inverse frequency theta^(-2i/HS) for columns i and i + HS/2."""
    inv_freq = 1.0 / theta ** (torch.arange(0, HS, 2, dtype=torch.float64) / HS)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().float(), angles.sin().float()


def rope(x, cos, sin):
    # The tables in x's dtype (bf16 under autocast), as Hugging Face LLaMA does.
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin  # rotate_half


class RMSNorm(nn.Module):
    def __init__(self, C, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(C))

    def forward(self, x):
        if hasattr(F, "rms_norm"):
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class Block(nn.Module):
    def __init__(self, C, NH, KV, FF, attention):
        super().__init__()
        self.NH, self.KV, self.HS, self.FF, self.attention_path = NH, KV, C // NH, FF, attention
        self.ln_1 = RMSNorm(C)
        self.qkv = nn.Linear(C, (NH + 2 * KV) * self.HS, bias=False)
        self.proj = nn.Linear(NH * self.HS, C, bias=False)
        self.ln_2 = RMSNorm(C)
        self.fc = nn.Linear(C, 2 * FF, bias=False)  # [gate; up]
        self.fc_proj = nn.Linear(FF, C, bias=False)

    def attention(self, x, cos, sin):
        B, T, _ = x.shape
        NH, KV, HS = self.NH, self.KV, self.HS
        q, k, v = self.qkv(x).split([NH * HS, KV * HS, KV * HS], dim=-1)
        q = rope(q.view(B, T, NH, HS).transpose(1, 2), cos, sin)
        k = rope(k.view(B, T, KV, HS).transpose(1, 2), cos, sin)
        v = v.view(B, T, KV, HS).transpose(1, 2)
        if self.attention_path == "gqa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            k, v = (t.repeat_interleave(NH // KV, dim=1) for t in (k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, NH * HS))

    def forward(self, x, cos, sin):
        x = x + self.attention(self.ln_1(x), cos, sin)
        gate, up = self.fc(self.ln_2(x)).split(self.FF, dim=-1)
        return x + self.fc_proj(F.silu(gate) * up)


class Head(nn.Module):
    """Final norm, LM head over the padded vocabulary, fp32 cross-entropy over the real one."""

    def __init__(self, C, V, Vp):
        super().__init__()
        self.V = V
        self.ln_f = RMSNorm(C)
        self.lm_head = nn.Linear(C, Vp, bias=False)

    def forward(self, x, targets):
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits[..., : self.V].float().flatten(0, 1), targets.flatten())


class Llama(nn.Module):
    def __init__(self, L, C, NH, KV, FF, T, V, theta, attention):
        super().__init__()
        Vp = (V + 127) // 128 * 128
        self.wte = nn.Embedding(Vp, C)
        self.blocks = nn.ModuleList(Block(C, NH, KV, FF, attention) for _ in range(L))
        self.head = Head(C, V, Vp)
        cos, sin = rope_tables(T, C // NH, theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, std=std)
        with torch.no_grad():
            self.wte.weight[V:].zero_()
            self.head.lm_head.weight[V:].zero_()

    def forward(self, idx, targets):
        T = idx.shape[1]
        cos, sin = self.cos[:T], self.sin[:T]
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(x, targets)
