#!/usr/bin/env python3
"""PyTorch reference for the GPU benchmark: a LLaMA-style model (TinyLlama-1.1B's shape by
default: 22 layers, d_model 2048, 32 heads of 64, 4 key/value heads, SwiGLU d_ff 5632,
vocabulary 32000, context 2048) trained on random tokens. Prints `torch-gpu llama: ...
tokens/s ... MFU` over the timed steps (warm-up excluded). Run by bench/gpu_session.sh beside
tessera's `family = "llama"` of the same shape in the same job.

As tessera does it: fp32 master weights, bf16 compute (autocast; fp32 accumulation in the
GEMMs), the loss in fp32, fused AdamW on fp32 state, global-norm clipping at 1.0, no activation
recompute. The model as a PyTorch user writes it: RMSNorm (eps 1e-5), rotary positions
(rotate-half over the whole head, theta 10000), grouped-query attention through
F.scaled_dot_product_attention (flash, causal), SwiGLU down(silu(gate(x)) * up(x)), no biases,
an untied LM head. QKV and gate/up are one linear layer each, as in tessera.

--compile blocks (default) compiles each block and the head separately, as torchtitan does
(one compiled graph serves every layer, so compilation is short); `model` compiles the whole
model as bench/torch_gpt_gpu.py does; `none` runs eager. If a compiled run fails, the error is
printed and the steps run again: compiled with the key/value heads repeated (when the failed run
passed them grouped), then eager.

MFU counts 6N + 12·L·H·D·T FLOPs per token against --peak (H100 SXM / H200 dense bf16), N being
every weight that multiplies an activation (block weights, norms, LM head; not the input
embedding, not the padding rows of the head), exactly as tessera's ModelConfig::flops_per_token
(docs/performance.md)."""
import argparse
import gc
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    import torch._dynamo

    from torch_llama_model import Llama
except ImportError as e:
    print(f"SKIP: torch not installed ({e})")
    sys.exit(77)


ATTENTION = {"gqa": "flash, grouped K/V (enable_gqa)", "repeat": "flash, K/V heads repeated",
             "default": "SDPA's own choice of kernel, K/V heads repeated"}


def attention_path(NH, KV, HS):
    """'gqa' if the flash kernel takes grouped key/value heads (enable_gqa), 'repeat' if it
    takes them only repeated to NH heads, 'default' if flash takes neither here (then SDPA
    chooses its backend). Checked forward and backward on a small causal problem."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return "default"
    for path, kv_heads, extra in (("gqa", KV, {"enable_gqa": True}), ("repeat", NH, {})):
        try:
            q = torch.randn(2, NH, 256, HS, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            kv = torch.randn(2, kv_heads, 256, HS, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                F.scaled_dot_product_attention(q, kv, kv, is_causal=True, **extra).sum().backward()
            torch.cuda.synchronize()
            return path
        except (RuntimeError, TypeError):
            continue
    return "default"


def set_compilation(model, mode, attention):
    """Sets every block's attention path and compiles as `mode` says ('blocks', 'model' or
    'none', which also undoes an earlier compilation); returns the callable to step with."""
    torch._dynamo.reset()
    for block in model.blocks:
        block.attention_path = attention
    for module in [model.head, *model.blocks]:
        module._compiled_call_impl = None
    if mode == "model":
        return torch.compile(model)
    if mode == "blocks":
        # One graph serves every layer; a cache limit above the layer count keeps any layer
        # from falling back to eager should the blocks compile separately.
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 4 * len(model.blocks)))
        for module in [model.head, *model.blocks]:
            module.compile()
    return model


def run_steps(step_fn, model, opt, a, label):
    """Warm-up plus timed steps; returns the timed steps' seconds."""
    B, T = a.micro_batch, a.seq_len
    times = []
    for step in range(a.warmup + a.steps):
        idx = torch.randint(0, a.vocab, (B, T), device="cuda")
        tgt = torch.randint(0, a.vocab, (B, T), device="cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_fn(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if step >= a.warmup:
            times.append(dt)
        print(f"torch {label} step {step + 1:3d} | loss {loss.item():.4f} | {dt * 1000:.0f} ms"
              f"{' (warm-up)' if step < a.warmup else ''}", flush=True)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--d-model", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--d-ff", type=int, default=5632, help="SwiGLU hidden width")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--compile", choices=("blocks", "model", "none"), default="blocks")
    ap.add_argument("--peak", type=float, default=989e12, help="dense bf16 FLOP/s of the GPU")
    a = ap.parse_args()

    torch.manual_seed(1)
    torch.backends.cuda.matmul.allow_tf32 = True
    L, C, NH, KV, T = a.layers, a.d_model, a.heads, a.kv_heads, a.seq_len
    attention = attention_path(NH, KV, C // NH)
    if attention != "default":
        # Flash only, so that neither eager nor the compiled graph picks another kernel.
        torch.backends.cuda.enable_mem_efficient_sdp(False)
        torch.backends.cuda.enable_math_sdp(False)
        if hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
            torch.backends.cuda.enable_cudnn_sdp(False)
    with torch.device("cuda"):  # initialise on the GPU: 1.1B normal draws on the CPU take long
        model = Llama(L, C, NH, KV, a.d_ff, T, a.vocab, a.rope_theta, attention)

    Vp = model.wte.weight.shape[0]
    n_all = sum(p.numel() for p in model.parameters())
    n_real = n_all - 2 * (Vp - a.vocab) * C  # without the padding rows of embedding and head
    n_matmul = n_all - model.wte.weight.numel() - (Vp - a.vocab) * C
    flops_per_token = 6 * n_matmul + 12 * L * NH * (C // NH) * T
    print(f"torch-gpu llama: {torch.__version__}, {torch.cuda.get_device_name()}, {L} layers, "
          f"d_model {C}, {NH} heads ({KV} kv), d_ff {a.d_ff}, vocab {a.vocab}, context {T}, "
          f"micro-batch {a.micro_batch}, {n_real:,} parameters, N = {n_matmul:,}, "
          f"{flops_per_token:,} FLOPs/token; attention: {ATTENTION[attention]}", flush=True)

    # Matrices of the blocks and the LM head decay, as tessera's defaults (optim.weight_decay).
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith("wte")]
    ids = {id(p) for p in decay}
    other = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)

    # Tried in order until one runs: the requested compilation; with grouped K/V, the same with
    # the K/V heads repeated (in case the compiler refuses enable_gqa); eager.
    attempts = [(a.compile, attention)]
    if a.compile != "none" and attention == "gqa":
        attempts.append((a.compile, "repeat"))
    if a.compile != "none":
        attempts.append(("none", attention))
    for i, (mode, path) in enumerate(attempts):
        step_fn = set_compilation(model, mode, path)
        label = "eager" if mode == "none" else f"compiled ({mode})"
        try:
            times = run_steps(step_fn, model, opt, a, label)
            break
        except Exception as e:  # noqa: BLE001 - any compiler failure; the next attempt follows
            if i + 1 == len(attempts):
                raise
            first = (str(e).strip().splitlines() or [""])[0][:300]
            print(f"torch-gpu llama: {label} with attention {ATTENTION[path]} failed: "
                  f"{type(e).__name__}: {first}", flush=True)
        opt.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()

    tps = a.micro_batch * T * len(times) / sum(times)
    print(f"torch-gpu llama: {torch.__version__}, {label}, {tps:.0f} tokens/s, "
          f"MFU {100 * flops_per_token * tps / a.peak:.1f}%, "
          f"{sum(times) / len(times) * 1000:.0f} ms/step over {len(times)} steps, "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB; attention: {ATTENTION[path]}")


if __name__ == "__main__":
    main()
