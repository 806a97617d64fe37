"""Reads <run>/tensorboard with TensorBoard's EventAccumulator and requires every scalar that
metrics.jsonl holds (loss, lr, grad_norm, tokens/s, MFU, step time; validation loss) at the same
steps, equal to float32 precision (to the 6 digits metrics.jsonl keeps of the perf/ figures)."""
import glob
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = sys.argv[1]
files = glob.glob(f"{run}/tensorboard/events.out.tfevents.*")
assert len(files) == 1, files
acc = EventAccumulator(files[0], size_guidance={"scalars": 0})
acc.Reload()
records = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
want = {"train/loss": "loss", "train/lr": "lr", "train/grad_norm": "grad_norm",
        "perf/tokens_per_s": "tokens_per_s", "perf/mfu": "mfu", "perf/step_ms": "step_ms", "val/loss": "val_loss"}
tags = set(acc.Tags()["scalars"])
assert set(want) <= tags, f"tags missing: {set(want) - tags}"
checked = 0
for tag, key in want.items():
    expected = [(r["step"], r[key]) for r in records if key in r]
    got = [(e.step, e.value) for e in acc.Scalars(tag)]
    assert [s for s, _ in got] == [s for s, _ in expected], (tag, got, expected)
    for (step, value), (_, ref) in zip(got, expected):
        # float32 in the event file; metrics.jsonl gives the perf/ figures to 6 digits
        tol = 6e-6 if tag.startswith("perf/") else 1e-6
        assert abs(value - ref) <= tol * max(1.0, abs(ref)), (tag, step, value, ref)
        checked += 1
print(f"tensorboard ok: {checked} scalars in {len(tags)} tags read by EventAccumulator match metrics.jsonl")
