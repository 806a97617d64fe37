#!/usr/bin/env python3
"""PyTorch twin of a tessera CPU training run of a LLaMA-shaped model, for
bench/cpu_llama_vs_torch.sh.

The model is tessera's `family = "llama"`, written as a PyTorch user would write it: RMSNorm
(eps 1e-5), rotary positions (rotate-half over the whole head, theta 10000, cos/sin tables
built once), grouped-query attention through F.scaled_dot_product_attention (causal; key/value
heads shared with enable_gqa where this torch has it, otherwise repeated with
repeat_interleave), SwiGLU MLP down(silu(gate(x)) * up(x)), no biases, an untied LM head over
the vocabulary padded to a multiple of 128 (the loss over the real vocabulary). QKV and
gate/up are one linear layer each, as in tessera, so both programs run the same GEMM shapes.
fp32, AdamW (decay on the block matrices and the LM head), global-norm clipping at 1.0, random
token batches of the same shape. Prints one line `torch: ... tokens/s` (timed steps only).

--compile wraps the model (forward and loss) in torch.compile; its compilation happens in the
warm-up steps, which are not timed.
"""
import argparse
import sys
import time

try:
    import torch
    import torch.nn.functional as F

    from torch_llama_model import Llama
except ImportError as e:
    print(f"SKIP: torch not installed ({e})")
    sys.exit(77)


def sdpa_has_gqa():
    try:
        q = torch.zeros(1, 2, 1, 4)
        kv = torch.zeros(1, 1, 1, 4)
        F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
        return True
    except (TypeError, RuntimeError):
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--d-model", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--d-ff", type=int, default=1024, help="SwiGLU hidden width")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=257)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=15, help="timed steps")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--gqa", choices=("auto", "sdpa", "repeat"), default="auto",
                    help="sdpa: SDPA's enable_gqa; repeat: repeat_interleave the kv heads")
    ap.add_argument("--adamw", choices=("default", "foreach", "fused"), default="default",
                    help="AdamW implementation (default: what torch picks for CPU tensors)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    gqa = args.gqa
    if gqa == "auto":
        gqa = "sdpa" if sdpa_has_gqa() else "repeat"
    model = Llama(args.layers, args.d_model, args.heads, args.kv_heads, args.d_ff, args.seq_len,
                  args.vocab, args.rope_theta, "gqa" if gqa == "sdpa" else "repeat")
    # Matrices of the blocks and the LM head decay (tessera's optim defaults), not the embedding.
    decayed = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith("wte")]
    ids = {id(p) for p in decayed}
    others = [p for p in model.parameters() if id(p) not in ids]
    impl = {} if args.adamw == "default" else {args.adamw: True}
    opt = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1},
                             {"params": others, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, **impl)
    step_fn = torch.compile(model) if args.compile else model
    B, T = args.micro_batch, args.seq_len
    times = []
    for step in range(args.warmup + args.steps):
        tokens = torch.randint(0, args.vocab, (B, T + 1))
        t0 = time.perf_counter()
        loss = step_fn(tokens[:, :-1], tokens[:, 1:])
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
    mode = "compiled" if args.compile else "eager"
    print(f"torch: {torch.__version__}, {mode}, gqa {gqa}, adamw {args.adamw}, "
          f"{torch.get_num_threads()} threads, {n_params / 1e6:.2f}M parameters (padded), "
          f"{len(timed)} timed steps, mean {sum(timed) / len(timed) * 1000:.0f} ms/step, "
          f"{B * T * len(timed) / sum(timed):.0f} tokens/s")


if __name__ == "__main__":
    main()
