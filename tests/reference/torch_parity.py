#!/usr/bin/env python3
"""Replays a parity_dump run in PyTorch and compares it with tessera.

usage: torch_parity.py PARITY.h5

The file (written by tests/reference/parity_dump.cpp) holds the model family and its
components, the initial weights, the token batches, and tessera's losses, step-1 gradients and
final weights. This script builds the same model from the published architectures (written out
here, not derived from tessera's code: GPT-2; Hugging Face's LlamaForCausalLM,
GPTNeoXForCausalLM and BloomForCausalLM), one forward whose components follow the config, then
checks, in fp32:
  - the step-1 loss to 1e-6 relative error,
  - every step-1 parameter gradient to 1e-5 relative norm error ||a - b|| / ||b||,
  - the per-step losses and the weights after all steps of torch.optim.AdamW with
    per-parameter-group weight decay and torch.nn.utils.clip_grad_norm_, to 1e-5.
The same replay in fp64 is printed beside it as the floor that fp32 rounding alone reaches.

Exit status: 0 pass, 1 fail, 77 skipped (torch or h5py not installed).
"""
import math
import sys

try:
    import torch
    import torch.nn.functional as F
    import numpy as np
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIP: torch not installed ({e}); install python3-torch or point "
          "TESSERA_REFERENCE_PYTHON at an interpreter that has it")
    sys.exit(77)
try:
    import h5py
except ImportError as e:  # pragma: no cover
    print(f"SKIP: h5py not installed ({e})")
    sys.exit(77)

LOSS_RTOL = 1e-6
GRAD_RTOL = 1e-5
WEIGHT_RTOL = 1e-5
# The 2-D weight matrices decay (the LM head's too, when untied); the embeddings (wte, wpe),
# biases and norm gains only when the run says so.
MATRIX_SUFFIXES = ("attn.qkv.weight", "attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight",
                   "lm_head.weight")
EMBEDDINGS = ("wte", "wpe")
# A step whose gradient norm exceeds the previous step's by this factor counts as a spike.
SPIKE_FACTOR = 1.5


def load(path):
    with h5py.File(path, "r") as f:
        cfg = {k: v.item() for k, v in f["config"].attrs.items()}
        cfg = {k: v.decode() if isinstance(v, bytes) else v for k, v in cfg.items()}
        run = {
            "cfg": cfg,
            "inputs": f["inputs"][()].astype(np.int64),
            "targets": f["targets"][()].astype(np.int64),
            "losses": f["losses"][()],
            "grad_norms": f["grad_norms"][()],
            "clip_scales": f["clip_scales"][()],
        }
        for group in ("init", "grads", "final"):
            run[group] = {name: f[group][name][()] for name in f[group]}
    return run


def param_names(cfg):
    """The model's parameters, named as in the dump, from the config's components."""
    def norm(name):
        return [f"{name}.weight"] + ([f"{name}.bias"] if cfg["norm"] == "layernorm" else [])

    def linear(name, bias):
        return [f"{name}.weight"] + ([f"{name}.bias"] if bias else [])

    names = ["wte"]
    if cfg["position"] == "learned":
        names.append("wpe")
    if cfg["embedding_norm"]:
        names += norm("emb_ln")
    for l in range(cfg["n_layer"]):
        names += [f"h.{l}.{n}" for n in (
            norm("ln_1") + linear("attn.qkv", cfg["qkv_bias"]) + linear("attn.proj", cfg["bias"]) +
            norm("ln_2") + linear("mlp.fc", cfg["bias"]) + linear("mlp.proj", cfg["bias"]))]
    names += norm("ln_f")
    if not cfg["tie_embeddings"]:
        names.append("lm_head.weight")
    return names


def decays(name, cfg):
    if name.endswith(MATRIX_SUFFIXES):
        return True
    if name in EMBEDDINGS:
        return bool(cfg["decay_embeddings"])
    return bool(cfg["decay_norms_and_biases"])  # biases and norm gains


def norm(x, p, name, cfg):
    """LayerNorm (GPT-2, NeoX, BLOOM) or LLaMA's RMSNorm x / sqrt(mean(x^2) + eps) * g."""
    if cfg["norm"] == "rmsnorm":
        rms = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg["norm_eps"])
        return p[f"{name}.weight"] * (x * rms)
    return F.layer_norm(x, (x.shape[-1],), p[f"{name}.weight"], p[f"{name}.bias"],
                        cfg["norm_eps"])


def rope_tables(T, rot, theta, dtype):
    """cos and sin (T, rot) of Hugging Face's rotary embedding (LLaMA, NeoX): inverse
    frequencies theta^(-2i/rot), i < rot/2, each used for columns i and i + rot/2."""
    inv_freq = 1.0 / theta ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rope(x, cos, sin):
    """Rotates the first rot columns of every head of x (B, H, T, HS); NeoX's partial rotary
    passes the rest through."""
    rot = cos.shape[-1]
    xr, xp = x[..., :rot], x[..., rot:]
    x1, x2 = xr[..., :rot // 2], xr[..., rot // 2:]
    rotated = torch.cat((-x2, x1), dim=-1)  # rotate_half
    return torch.cat((xr * cos + rotated * sin, xp), dim=-1)


def alibi_slopes(n_head):
    """BLOOM's build_alibi_tensor slopes: 2^(-8i/n) for a power of two n, otherwise those of
    the largest power of two below n followed by every other slope of the next one."""
    closest = 2 ** math.floor(math.log2(n_head))
    base = 2.0 ** (-(2.0 ** -(math.log2(closest) - 3)))
    slopes = [base ** i for i in range(1, closest + 1)]
    if closest != n_head:
        extra_base = 2.0 ** (-(2.0 ** -(math.log2(2 * closest) - 3)))
        remaining = min(closest, n_head - closest)
        slopes += [extra_base ** i for i in range(1, 1 + 2 * remaining, 2)]
    return torch.tensor(slopes, dtype=torch.float64)


def attention(h, p, pre, cfg):
    B, T, _ = h.shape
    NH, KV = cfg["n_head"], cfg["n_kv_head"]
    HS = cfg["d_model"] // NH
    qkv = F.linear(h, p[pre + "attn.qkv.weight"], p.get(pre + "attn.qkv.bias"))
    # [q rows; k rows; v rows]; head h owns columns [h*HS, (h+1)*HS) of its part.
    q, k, v = qkv.split([NH * HS, KV * HS, KV * HS], dim=-1)
    q = q.view(B, T, NH, HS).transpose(1, 2)
    k, v = (t.view(B, T, KV, HS).transpose(1, 2) for t in (k, v))
    if cfg["position"] == "rope":
        cos, sin = rope_tables(T, cfg["rotary_dims"], cfg["rope_theta"], h.dtype)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
    # Grouped-query attention (LLaMA's repeat_kv): query head h reads kv head h // (NH / KV).
    k, v = (t.repeat_interleave(NH // KV, dim=1) for t in (k, v))
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HS))
    if cfg["position"] == "alibi":
        # BLOOM adds slope * s for key position s, unscaled; -slope * (t - s) differs by a
        # constant per row, which the softmax cancels.
        bias = alibi_slopes(NH)[:, None, None] * torch.arange(T, dtype=torch.float64)
        att = att + bias.to(h.dtype)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    y = (att @ v).transpose(1, 2).reshape(B, T, NH * HS)
    return F.linear(y, p[pre + "attn.proj.weight"], p.get(pre + "attn.proj.bias"))


def mlp(h, p, pre, cfg):
    h = F.linear(h, p[pre + "mlp.fc.weight"], p.get(pre + "mlp.fc.bias"))
    if cfg["activation"] == "swiglu":  # LLaMA: down(silu(gate(x)) * up(x)), fc = [gate; up]
        gate, up = h.split(cfg["d_ff"], dim=-1)
        h = F.silu(gate) * up
    elif cfg["activation"] == "gelu":  # NeoX: exact erf GELU
        h = F.gelu(h)
    else:  # GPT-2, BLOOM
        h = F.gelu(h, approximate="tanh")
    return F.linear(h, p[pre + "mlp.proj.weight"], p.get(pre + "mlp.proj.bias"))


def model_loss(p, cfg, idx, targets):
    """Mean cross-entropy over the micro-batch (B, T) of the pre-norm decoder of the config's
    family."""
    T = idx.shape[1]
    V = cfg["vocab_size"]
    x = p["wte"][idx]
    if cfg["position"] == "learned":
        x = x + p["wpe"][:T]
    if cfg["embedding_norm"]:  # BLOOM's word_embeddings_layernorm
        x = norm(x, p, "emb_ln", cfg)
    for l in range(cfg["n_layer"]):
        pre = f"h.{l}."
        if cfg["residual"] == "parallel":  # NeoX's use_parallel_residual
            x = x + attention(norm(x, p, pre + "ln_1", cfg), p, pre, cfg) + \
                mlp(norm(x, p, pre + "ln_2", cfg), p, pre, cfg)
        else:
            x = x + attention(norm(x, p, pre + "ln_1", cfg), p, pre, cfg)
            x = x + mlp(norm(x, p, pre + "ln_2", cfg), p, pre, cfg)
    x = norm(x, p, "ln_f", cfg)
    head = p["wte"] if cfg["tie_embeddings"] else p["lm_head.weight"]
    logits = F.linear(x, head)  # (B, T, Vp); padded columns excluded from the softmax
    return F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))


def replay(run, dtype):
    """Runs every step in `dtype`; returns step-1 gradients, per-step losses, norms, final weights."""
    cfg = run["cfg"]
    names = param_names(cfg)
    missing = sorted(set(names) ^ set(run["init"]))
    if missing:
        raise SystemExit(f"FAIL: parameter names differ between the dump and the model: {missing}")
    p = {n: torch.nn.Parameter(torch.tensor(run["init"][n], dtype=dtype)) for n in names}
    decayed = [p[n] for n in names if decays(n, cfg)]
    others = [p[n] for n in names if not decays(n, cfg)]
    opt = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": cfg["weight_decay"]},
         {"params": others, "weight_decay": 0.0}],
        lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])
    inputs, targets = torch.from_numpy(run["inputs"]), torch.from_numpy(run["targets"])
    steps, micro = inputs.shape[0], inputs.shape[1]
    losses, norms, grads = [], [], None
    for step in range(steps):
        opt.zero_grad(set_to_none=False)
        total = 0.0
        for mb in range(micro):
            # Equal-sized micro-batches: the step's mean loss is the mean of their means.
            loss = model_loss(p, cfg, inputs[step, mb], targets[step, mb]) / micro
            loss.backward()
            total += loss.item()
        if step == 0:
            grads = {n: p[n].grad.detach().double().numpy().copy() for n in names}
        norm = torch.nn.utils.clip_grad_norm_(list(p.values()), cfg["grad_clip"])
        opt.step()
        losses.append(total)
        norms.append(norm.item())
    final = {n: p[n].detach().double().numpy() for n in names}
    return grads, np.array(losses), np.array(norms), final


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    nb = np.linalg.norm(b)
    return np.linalg.norm(a - b) / nb if nb > 0 else np.linalg.norm(a - b)


def spike_steps(norms):
    """1-based steps whose gradient norm exceeds the previous step's by SPIKE_FACTOR."""
    return [s + 1 for s in range(1, len(norms)) if norms[s] > SPIKE_FACTOR * norms[s - 1]]


def print_grad_norm_spikes(ours, ref32, ref64):
    """Per-step gradient norms side by side: a spike in tessera that PyTorch reproduces at the
    same step comes from the model and data, one PyTorch does not see from tessera."""
    print(f"\n{'step':>4s} {'tessera':>10s} {'torch fp32':>10s} {'torch fp64':>10s} "
          f"{'tessera/prev':>12s} {'torch/prev':>10s}")
    for s in range(len(ours)):
        ratio = lambda n: f"{n[s] / n[s - 1]:.4f}" if s > 0 else "-"
        print(f"{s + 1:4d} {ours[s]:10.6f} {ref32[s]:10.6f} {ref64[s]:10.6f} "
              f"{ratio(ours):>12s} {ratio(ref32):>10s}")
    ours_spikes, ref_spikes = spike_steps(ours), spike_steps(ref32)
    verdict = "the same steps" if ours_spikes == ref_spikes else "DIFFERENT steps"
    print(f"gradient-norm spikes (> {SPIKE_FACTOR}x the previous step): tessera at "
          f"{ours_spikes or 'none'}, torch at {ref_spikes or 'none'}: {verdict}")


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    run = load(argv[1])
    cfg = run["cfg"]
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads | {cfg['family']}: "
          f"{cfg['n_layer']} layers, d_model {cfg['d_model']}, {cfg['n_head']} heads "
          f"({cfg['n_kv_head']} kv), d_ff {cfg['d_ff']}, T {cfg['seq_len']}, vocab "
          f"{cfg['vocab_size']} (padded {cfg['padded_vocab']}) | {run['inputs'].shape[0]} steps x "
          f"{cfg['micro_steps']} micro-batches of {cfg['micro_batch']}")
    rotary = f" ({cfg['rotary_dims']} rotary dims, theta {cfg['rope_theta']:g})" \
        if cfg["position"] == "rope" else ""
    print(f"components: {cfg['norm']} (eps {cfg['norm_eps']:g}), {cfg['position']}{rotary}, "
          f"{cfg['activation']}, {cfg['residual']} residual, bias {bool(cfg['bias'])}, "
          f"qkv bias {bool(cfg['qkv_bias'])}, embedding norm {bool(cfg['embedding_norm'])}, "
          f"tied {bool(cfg['tie_embeddings'])}")
    g32, l32, n32, w32 = replay(run, torch.float32)
    g64, l64, n64, w64 = replay(run, torch.float64)

    failures = []
    # error: tessera vs torch fp32 (the acceptance); vs fp64: tessera vs torch fp64; floor:
    # torch fp32 vs torch fp64, what fp32 rounding alone costs.
    header = f"{'error':>10s} {'vs fp64':>10s} {'floor':>10s} {'tol':>8s}"

    def row(label, ours, ref32, ref64, tol, what):
        err = rel_err(ours, ref32)
        ok = err <= tol
        if not ok:
            failures.append(what)
        print(f"{label:34s} {err:10.2e} {rel_err(ours, ref64):10.2e} {rel_err(ref32, ref64):10.2e} "
              f"{tol:8.0e}  {'ok' if ok else 'FAIL'}")

    print("\n(error = ||tessera - torch fp32|| / ||torch fp32||; vs fp64 = the same against torch "
          "fp64; floor = torch fp32 against torch fp64)")
    print(f"{'quantity':34s} {header}")
    for s in range(len(l32)):
        clipped = "clipped" if run["clip_scales"][s] < 1 else "not clipped"
        row(f"loss step {s + 1}", run["losses"][s], l32[s], l64[s],
            LOSS_RTOL if s == 0 else WEIGHT_RTOL, f"loss step {s + 1}")
        row(f"grad norm step {s + 1} ({clipped})", run["grad_norms"][s], n32[s], n64[s],
            GRAD_RTOL, f"grad norm step {s + 1}")
    # Clipping must have been exercised, and both implementations must agree on when.
    torch_clipped = n32 > cfg["grad_clip"]
    tessera_clipped = run["clip_scales"] < 1
    if not torch_clipped.any():
        failures.append("clipping never triggered (lower grad_clip in parity_dump)")
    if (torch_clipped != tessera_clipped).any():
        failures.append("clipping triggered in different steps")

    rows = []  # (error, kind, name, ours, ref32, ref64)
    for n in g32:
        rows.append((rel_err(run["grads"][n], g32[n]), "grad", n, run["grads"][n], g32[n], g64[n]))
        rows.append((rel_err(run["final"][n], w32[n]), "weight", n, run["final"][n], w32[n], w64[n]))
    print(f"\n{'worst parameters':34s} {header}")
    for i, (err, kind, n, ours, ref32, ref64) in enumerate(sorted(rows, key=lambda r: -r[0])):
        label = f"{'step-1 grad' if kind == 'grad' else 'final weight'} {n}"
        tol = GRAD_RTOL if kind == "grad" else WEIGHT_RTOL
        if i < 12:
            row(label, ours, ref32, ref64, tol, f"{kind} {n}")
        elif err > tol:
            failures.append(f"{kind} {n}")
    print_grad_norm_spikes(run["grad_norms"], n32, n64)
    worst = {k: max((r for r in rows if r[1] == k), key=lambda r: r[0]) for k in ("grad", "weight")}
    print(f"\nworst gradient error {worst['grad'][0]:.2e} ({worst['grad'][2]}), worst final weight "
          f"error {worst['weight'][0]:.2e} ({worst['weight'][2]}) over {len(g32)} parameters")
    if failures:
        print("FAIL: " + ", ".join(failures))
        return 1
    print("PASS: tessera matches PyTorch")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
