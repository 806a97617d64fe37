#!/usr/bin/env python3
"""Checks tessera's logits (and gradients) for a Hugging Face model directory with transformers.

usage: hf_model_check.py HF_DIR IDS.json LOGITS.npy [GRADS.safetensors]

HF_DIR is a model directory transformers loads with AutoModelForCausalLM (LlamaForCausalLM,
GPTNeoXForCausalLM, BloomForCausalLM, GPT2LMHeadModel): exported by tessera, or saved by
transformers and imported by tessera. IDS.json holds the token sequences given to
`tessera eval --ids`, LOGITS.npy the logits it wrote (every position of every sequence,
concatenated, real vocabulary only) and GRADS.safetensors the gradients it wrote with --grads
(of the mean next-token loss over all the sequences, under the Hugging Face names).
The model runs each sequence in float64 (and float32, printed for scale), and this requires
    max |tessera - transformers| / max |transformers| <= 1e-5
for the logits, and for every gradient tensor, against the float64 run.

Exit status: 0 pass, 1 fail, 77 skipped (torch, numpy or transformers not installed).
"""
import json
import sys

try:
    import numpy as np
    import torch
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIP: torch/numpy/transformers/safetensors not installed ({e})")
    sys.exit(77)

TOL = 1e-5
# Stored names that transformers 5 renames when it loads (its parameter names differ).
RENAMED = {"embed_out.weight": "lm_head.weight"}


def rel(ours, ref):
    scale = float(np.abs(ref).max())
    return float(np.abs(ours - ref).max()) / (scale if scale > 0 else 1.0)


def main():
    hf_dir, ids_path, logits_path = sys.argv[1:4]
    grads_path = sys.argv[4] if len(sys.argv) > 4 else None
    ids = json.load(open(ids_path))
    ours = np.load(logits_path).astype(np.float64)
    failed = False
    for dtype in (torch.float64, torch.float32):
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=dtype)
        model.eval()
        arch = type(model).__name__
        V = model.config.vocab_size
        with torch.no_grad():
            ref = np.concatenate([model(torch.tensor([s])).logits[0, :, :V].double().numpy() for s in ids])
        assert ref.shape == ours.shape, (ref.shape, ours.shape)
        r = rel(ours, ref)
        name = "float64" if dtype == torch.float64 else "float32"
        print(f"{hf_dir}: tessera vs transformers {arch} ({name}): logits max rel diff {r:.2e}")
        if dtype != torch.float64:
            continue
        if r > TOL:
            print(f"FAIL: {hf_dir}: logits differ by {r:.2e} > {TOL:g}")
            failed = True
        if grads_path is None:
            continue
        # The gradient of the mean loss over every target of every sequence.
        total = sum(len(s) - 1 for s in ids)
        model.zero_grad()
        loss = 0.0
        for s in ids:
            logits = model(torch.tensor([s])).logits[0, :-1, :V]
            loss = loss + torch.nn.functional.cross_entropy(logits, torch.tensor(s[1:]), reduction="sum")
        (loss / total).backward()
        theirs = {n: p.grad.numpy() for n, p in model.named_parameters()}
        grads = {RENAMED.get(n, n) if RENAMED.get(n) in theirs else n: g for n, g in load_file(grads_path).items()}
        if set(grads) != set(theirs):
            print(f"FAIL: {grads_path}: tensors differ: only tessera {sorted(set(grads) - set(theirs))}, "
                  f"only transformers {sorted(set(theirs) - set(grads))}")
            failed = True
            continue
        worst = max((rel(grads[n].astype(np.float64), theirs[n]), n) for n in theirs)
        print(f"{hf_dir}: gradients of {len(theirs)} tensors: worst max rel diff {worst[0]:.2e} ({worst[1]})")
        if worst[0] > TOL:
            print(f"FAIL: {hf_dir}: gradient of {worst[1]} differs by {worst[0]:.2e} > {TOL:g}")
            failed = True
    if failed:
        return 1
    print(f"PASS: {hf_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
