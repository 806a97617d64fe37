#!/usr/bin/env python3
"""Replays a parity_dump run in PyTorch and compares it with tessera.

usage: torch_parity.py PARITY.h5

The file (written by tests/reference/parity_dump.cpp) holds the initial weights, the token
batches, and tessera's losses, step-1 gradients and final weights. This script builds the same
GPT-2 from the issue's definition (written out here, not derived from tessera's code), then
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
# Only the 2-D matrices of the blocks decay (wte, wpe, biases and LayerNorms do not).
DECAYED_SUFFIXES = ("attn.qkv.weight", "attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight")


def load(path):
    with h5py.File(path, "r") as f:
        cfg = {k: v.item() for k, v in f["config"].attrs.items()}
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


def param_names(n_layer):
    names = ["wte", "wpe"]
    for l in range(n_layer):
        names += [f"h.{l}.{n}" for n in (
            "ln_1.weight", "ln_1.bias", "attn.qkv.weight", "attn.qkv.bias",
            "attn.proj.weight", "attn.proj.bias", "ln_2.weight", "ln_2.bias",
            "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias")]
    return names + ["ln_f.weight", "ln_f.bias"]


def gpt2_loss(p, cfg, idx, targets):
    """Mean cross-entropy over the micro-batch (B, T) of the pre-LN GPT-2 with tied head."""
    B, T = idx.shape
    C, NH, V = cfg["d_model"], cfg["n_head"], cfg["vocab_size"]
    HS = C // NH
    eps = cfg["layernorm_eps"]
    x = p["wte"][idx] + p["wpe"][:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(cfg["n_layer"]):
        w = lambda n: p[f"h.{l}.{n}"]
        h = F.layer_norm(x, (C,), w("ln_1.weight"), w("ln_1.bias"), eps)
        qkv = F.linear(h, w("attn.qkv.weight"), w("attn.qkv.bias"))
        q, k, v = qkv.split(C, dim=-1)  # head h owns [h*HS, (h+1)*HS) of each third
        q, k, v = (t.view(B, T, NH, HS).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HS))
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, w("attn.proj.weight"), w("attn.proj.bias"))
        h = F.layer_norm(x, (C,), w("ln_2.weight"), w("ln_2.bias"), eps)
        h = F.gelu(F.linear(h, w("mlp.fc.weight"), w("mlp.fc.bias")), approximate="tanh")
        x = x + F.linear(h, w("mlp.proj.weight"), w("mlp.proj.bias"))
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], eps)
    logits = F.linear(x, p["wte"])  # (B, T, Vp); padded columns excluded from the softmax
    return F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))


def replay(run, dtype):
    """Runs every step in `dtype`; returns step-1 gradients, per-step losses, norms, final weights."""
    cfg = run["cfg"]
    names = param_names(cfg["n_layer"])
    missing = sorted(set(names) ^ set(run["init"]))
    if missing:
        raise SystemExit(f"FAIL: parameter names differ between the dump and the model: {missing}")
    p = {n: torch.nn.Parameter(torch.tensor(run["init"][n], dtype=dtype)) for n in names}
    decayed = [p[n] for n in names if n.endswith(DECAYED_SUFFIXES)]
    others = [p[n] for n in names if not n.endswith(DECAYED_SUFFIXES)]
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
            loss = gpt2_loss(p, cfg, inputs[step, mb], targets[step, mb]) / micro
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


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    run = load(argv[1])
    cfg = run["cfg"]
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads | model: "
          f"{cfg['n_layer']} layers, d_model {cfg['d_model']}, {cfg['n_head']} heads, "
          f"T {cfg['seq_len']}, vocab {cfg['vocab_size']} (padded {cfg['padded_vocab']}) | "
          f"{run['inputs'].shape[0]} steps x {cfg['micro_steps']} micro-batches of "
          f"{cfg['micro_batch']}")
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
