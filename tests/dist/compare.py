#!/usr/bin/env python3
"""Compares a run against a reference run: per-step training losses (relative) and the final
weights in model.h5: the relative norm error of all of them together, and with --per-tensor of
every tensor on its own. Exit 1 naming the worst offender when a tolerance is exceeded.

Per tensor is the right test in float64. In float32 it is not: the key bias of attention has
an exactly zero gradient (softmax ignores a constant shift), so its fp32 gradient is rounding
noise that Adam normalises into lr-sized steps, different in every summation order.

Usage: compare.py REF_DIR RUN_DIR TOL [--per-tensor] [--expect-steps N] [--from-step N]
(--from-step: compare the losses of steps >= N only, e.g. after a resume; --tol-exact: 0)"""
import json
import sys

import h5py
import numpy as np


def losses(run):
    out = {}
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            if "loss" in rec:
                out[rec["step"]] = rec["loss"]
    return out


def main():
    ref, run, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    args = sys.argv[4:]
    per_tensor = "--per-tensor" in args
    steps = int(args[args.index("--expect-steps") + 1]) if "--expect-steps" in args else None
    first = int(args[args.index("--from-step") + 1]) if "--from-step" in args else 1
    a = {s: v for s, v in losses(ref).items() if s >= first}
    b = {s: v for s, v in losses(run).items() if s >= first}
    problems = []
    if steps is not None and len(b) != steps:
        problems.append(f"{run}: {len(b)} logged steps, expected {steps}")
    if a.keys() != b.keys():
        problems.append(f"{run}: logged steps differ from the reference")
    worst_loss = max(abs(b[s] - a[s]) / abs(a[s]) for s in a if s in b)
    if worst_loss > tol:
        problems.append(f"{run}: per-step loss differs by {worst_loss:.3g} relative (tolerance {tol:g})")
    worst_w, worst_name, diff2, ref2 = 0.0, "", 0.0, 0.0
    with h5py.File(f"{ref}/model.h5", "r") as fa, h5py.File(f"{run}/model.h5", "r") as fb:
        names_a, names_b = set(fa["model"].keys()), set(fb["model"].keys())
        if names_a != names_b:
            problems.append(f"{run}: weights hold {sorted(names_b ^ names_a)} differently")
        for name in sorted(names_a & names_b):
            wa = np.asarray(fa["model"][name], dtype=np.float64)
            wb = np.asarray(fb["model"][name], dtype=np.float64)
            if wa.shape != wb.shape:
                problems.append(f"{run}: {name} has shape {wb.shape}, reference {wa.shape}")
                continue
            diff2 += float(np.sum((wb - wa) ** 2))
            ref2 += float(np.sum(wa ** 2))
            err = np.linalg.norm(wb - wa) / max(np.linalg.norm(wa), 1e-30)
            if err > worst_w:
                worst_w, worst_name = err, name
    total = (diff2 / max(ref2, 1e-300)) ** 0.5
    if total > tol:
        problems.append(f"{run}: the weights differ by {total:.3g} relative norm (tolerance {tol:g})")
    if per_tensor and worst_w > tol:
        problems.append(f"{run}: weights {worst_name} differ by {worst_w:.3g} relative norm (tolerance {tol:g})")
    print(f"{run}: max loss rel diff {worst_loss:.2e}, weights rel norm err {total:.2e}, "
          f"worst tensor {worst_w:.2e} ({worst_name})")
    for p in problems:
        print("FAIL " + p)
    sys.exit(1 if problems else 0)


main()
