#!/usr/bin/env python3
"""Checks a `tessera export --format hf` directory against tessera's own logits.

usage: hf_export_check.py HF_DIR IDS.json LOGITS.npy

HF_DIR holds model.safetensors and config.json; IDS.json the token sequences given to
`tessera eval --ids` and LOGITS.npy the logits it wrote (every position of every sequence,
concatenated, real vocabulary only). The script reads the safetensors file with numpy alone,
runs a GPT-2 forward written here in torch from the Hugging Face definition (Conv1D weights
[in, out], tanh GELU for "gelu_new", tied LM head), and requires
    max |tessera - reference| / max |reference| <= 1e-4.
When transformers is importable, GPT2LMHeadModel.from_pretrained(HF_DIR) is compared the same
way; otherwise it prints "SKIPPED: transformers not installed" and checks the rest.

Exit status: 0 pass, 1 fail, 77 skipped (torch or numpy not installed).
"""
import json
import math
import os
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIP: torch/numpy not installed ({e})")
    sys.exit(77)

TOL = 1e-4
DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = arr
    return out, header.get("__metadata__", {})


def gpt2_logits(w, cfg, ids):
    """Logits (T, V) of the GPT-2 LM head model for one sequence, in float64."""
    t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in w.items()}
    C, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    assert cfg.get("activation_function", "gelu_new") == "gelu_new"
    hs = C // H
    T = len(ids)
    idx = torch.tensor(ids, dtype=torch.long)
    x = t["transformer.wte.weight"][idx] + t["transformer.wpe.weight"][:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(L):
        p = lambda n: t[f"transformer.h.{l}.{n}"]
        h = F.layer_norm(x, (C,), p("ln_1.weight"), p("ln_1.bias"), eps)
        qkv = h @ p("attn.c_attn.weight") + p("attn.c_attn.bias")  # Conv1D: x @ W[in, out] + b
        q, k, v = (z.view(T, H, hs).transpose(0, 1) for z in qkv.split(C, dim=-1))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(0, 1).reshape(T, C)
        x = x + y @ p("attn.c_proj.weight") + p("attn.c_proj.bias")
        h = F.layer_norm(x, (C,), p("ln_2.weight"), p("ln_2.bias"), eps)
        h = h @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias")
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h ** 3)))
        x = x + h @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias")
    x = F.layer_norm(x, (C,), t["transformer.ln_f.weight"], t["transformer.ln_f.bias"], eps)
    head = t["transformer.wte.weight"] if cfg.get("tie_word_embeddings", True) else t["lm_head.weight"]
    return (x @ head.T).numpy()


def compare(label, ours, ref):
    err = np.abs(ours.astype(np.float64) - ref).max() / np.abs(ref).max()
    ok = err <= TOL
    print(f"{label:44s} max|diff|/max|ref| = {err:.2e} (tol {TOL:.0e})  {'ok' if ok else 'FAIL'}")
    return ok


def main(argv):
    if len(argv) != 4:
        print(__doc__)
        return 2
    hf_dir, ids_path, logits_path = argv[1:]
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    w, meta = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    seqs = json.load(open(ids_path))
    ours = np.load(logits_path)
    V = cfg["vocab_size"]
    ok = True
    checks = [
        (cfg.get("model_type") == "gpt2", "config.json model_type is gpt2"),
        (cfg.get("architectures") == ["GPT2LMHeadModel"], "architectures is [GPT2LMHeadModel]"),
        (meta.get("format") == "pt", "__metadata__ format is pt"),
        (all(a.dtype == np.float32 for a in w.values()), "every tensor is F32"),
        (w["transformer.wte.weight"].shape == (V, cfg["n_embd"]), "wte has the real vocabulary rows"),
        (ours.shape == (sum(len(s) for s in seqs), V), f"tessera logits shape {ours.shape}"),
    ]
    for good, what in checks:
        print(f"{what:44s} {'ok' if good else 'FAIL'}")
        ok &= good
    if not ok:
        return 1
    print(f"model: {cfg['n_layer']} layers, n_embd {cfg['n_embd']}, {cfg['n_head']} heads, n_inner "
          f"{cfg.get('n_inner')}, vocab {V}, n_positions {cfg['n_positions']}; {len(seqs)} sequences")
    ref = np.concatenate([gpt2_logits(w, cfg, s) for s in seqs])
    ok &= compare("tessera vs torch GPT-2 reference (fp64)", ours, ref)
    try:
        import transformers
    except ImportError:
        print("SKIPPED: transformers not installed (the from_pretrained comparison did not run)")
    else:
        model = transformers.GPT2LMHeadModel.from_pretrained(hf_dir).eval()
        with torch.no_grad():
            hf = np.concatenate([model(torch.tensor([s])).logits[0].double().numpy() for s in seqs])
        ok &= compare(f"tessera vs transformers {transformers.__version__}", ours, hf)
        ok &= compare("transformers vs torch reference", hf.astype(np.float32), ref)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
