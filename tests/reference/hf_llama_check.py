#!/usr/bin/env python3
"""Checks a `tessera export --format hf` LLaMA directory with transformers itself.

usage: hf_llama_check.py HF_DIR IDS.json LOGITS.npy

HF_DIR holds model.safetensors and config.json (LlamaForCausalLM); IDS.json the token sequences
given to `tessera eval --ids`, LOGITS.npy the logits it wrote (every position of every
sequence, concatenated, real vocabulary only). LlamaForCausalLM.from_pretrained(HF_DIR) runs
each sequence in float32 and float64, and this requires
    max |tessera - transformers| / max |transformers| <= 1e-5
against the float64 run (the float32 one is printed beside it, for scale).

Exit status: 0 pass, 1 fail, 77 skipped (torch, numpy or transformers not installed).
"""
import json
import sys

try:
    import numpy as np
    import torch
    from transformers import LlamaForCausalLM
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIP: torch/numpy/transformers not installed ({e})")
    sys.exit(77)

TOL = 1e-5


def main():
    hf_dir, ids_path, logits_path = sys.argv[1:4]
    ids = json.load(open(ids_path))
    ours = np.load(logits_path).astype(np.float64)
    worst = 0.0
    for dtype in (torch.float64, torch.float32):
        model = LlamaForCausalLM.from_pretrained(hf_dir, torch_dtype=dtype)
        model.eval()
        V = model.config.vocab_size
        with torch.no_grad():
            ref = np.concatenate([model(torch.tensor([s])).logits[0, :, :V].double().numpy() for s in ids])
        assert ref.shape == ours.shape, (ref.shape, ours.shape)
        rel = float(np.abs(ours - ref).max() / np.abs(ref).max())
        name = "float64" if dtype == torch.float64 else "float32"
        print(f"{hf_dir}: tessera vs transformers LlamaForCausalLM ({name}): max rel diff {rel:.2e}")
        if dtype == torch.float64:
            worst = rel
    if worst > TOL:
        print(f"FAIL: {hf_dir}: max relative difference {worst:.2e} > {TOL:g}")
        return 1
    print(f"PASS: {hf_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
