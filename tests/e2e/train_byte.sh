#!/usr/bin/env bash
# End to end, as a user runs it: build the fortune corpus, prepare byte shards, train a tiny
# GPT, and require its held-out loss to fall below the byte-unigram entropy of the held-out
# text (computed here). Also checks eval/generate and the one-line errors (exit code 2).
set -euo pipefail
TESSERA=$1
SRC=$2
source "$SRC/tests/scratch.sh"  # scratch dir (cwd), corpus/, expect_exit2
"$TESSERA" prepare --tokenizer byte --input corpus/train/en.txt corpus/train/de.txt --out tr >/dev/null
"$TESSERA" prepare --tokenizer byte --input corpus/valid/en.txt corpus/valid/de.txt --out va >/dev/null

# Byte-unigram entropy (nats) of the held-out token stream: bytes plus one end-of-document
# token per document, exactly what the model is scored on.
entropy=$(python3 - <<'PY'
import math, collections
counts = collections.Counter()
for path in ["corpus/valid/en.txt", "corpus/valid/de.txt"]:
    docs = [d.strip("\n") for d in open(path, encoding="utf-8").read().split("\n%\n")]
    for d in docs:
        if not d.strip() or d.strip() == "%":
            continue
        counts.update(d.encode("utf-8"))
        counts[256] += 1
n = sum(counts.values())
print(-sum(c / n * math.log(c / n) for c in counts.values()))
PY
)

cat > run.toml <<'TOML'
[model]
n_layer = 2
d_model = 96
n_head = 4
seq_len = 64
[train]
steps = 150
micro_batch = 8
global_batch = 16
eval_batches = 16
threads = 2
[optim]
lr = 3e-3
min_lr = 3e-4
warmup_steps = 15
[data]
train = "tr"
valid = "va"
[log]
dir = "run"
every = 50
TOML
"$TESSERA" train run.toml
val=$(grep val_loss run/metrics.jsonl | tail -1 | sed 's/.*"val_loss": \([0-9.eE+-]*\).*/\1/')
echo "held-out loss $val nats/token, byte-unigram entropy $entropy"
python3 -c "import sys; sys.exit(0 if float('$val') < float('$entropy') else 1)" ||
  { echo "FAIL: held-out loss did not fall below the unigram entropy"; exit 1; }

test -s run/config.toml && grep -q '^steps = 150' run/config.toml
lines=$(grep -c '"loss"' run/metrics.jsonl)
[ "$lines" -ge 3 ] || { echo "FAIL: metrics.jsonl has $lines step lines"; exit 1; }
for key in step tokens loss lr grad_norm tokens_per_s mfu step_ms; do
  head -1 run/metrics.jsonl | grep -q "\"$key\"" || { echo "FAIL: metrics lack $key"; exit 1; }
done
"$TESSERA" eval --model run/model.h5 --tokens va --batches 2 | grep -q '"loss"'

# The run documents itself: README.md (model card) and loss.svg from the run's own records.
python3 - <<'PY'
import json, xml.etree.ElementTree as ET
steps = [json.loads(l) for l in open("run/metrics.jsonl") if '"loss"' in l]
evals = [json.loads(l) for l in open("run/metrics.jsonl") if '"val_loss"' in l]
svg = ET.parse("run/loss.svg").getroot()  # well-formed XML
lines = {p.get("id"): p.get("points").split() for p in svg.iter("{http://www.w3.org/2000/svg}polyline")}
assert len(lines["train"]) == len(steps), (len(lines["train"]), len(steps))
assert len(lines["valid"]) == len(evals), (len(lines["valid"]), len(evals))
card = open("run/README.md").read()
for want in [f"| training, last logged | {steps[-1]['step']} | {steps[-1]['loss']:.4f} |",
             f"| validation, last | {evals[-1]['step']} | {evals[-1]['val_loss']:.4f} |",
             "150 of 150 planned steps, 153,600 tokens", "![training and validation loss against step](loss.svg)",
             "| finished at step 150", "`model.h5`"]:
    assert want in card, f"README.md lacks: {want}"
launches = [json.loads(l) for l in open("run/launches.jsonl")]
assert [l["event"] for l in launches] == ["start", "end"] and launches[0]["world"] == 1, launches
print("report ok: README.md and loss.svg agree with metrics.jsonl")
PY
# Stopped and resumed: one launch record each, the second naming the checkpoint it resumed from.
"$TESSERA" train run.toml --set log.dir='"run2"' --set train.steps=8 --set log.every=2 \
  --set train.stop_at=4 >/dev/null
"$TESSERA" train run.toml --set log.dir='"run2"' --set train.steps=8 --set log.every=2 \
  --set checkpoint.resume='"auto"' >/dev/null
grep -q '| 0 | stopped at train.stop_at at step 4' run2/README.md
# Tokens trained so far, in every record before and after the resume: 16 sequences x 64 per step.
python3 -c "
import json
recs = [json.loads(l) for l in open('run2/metrics.jsonl') if '\"loss\"' in l]
assert [r['step'] for r in recs] == [2, 4, 6, 8] and all(r['tokens'] == r['step'] * 1024 for r in recs), recs
"
grep -q '| 4 (run2/checkpoints/step_00000004) | finished at step 8' run2/README.md
rm run2/README.md && "$TESSERA" report run2 >/dev/null && test -s run2/README.md
# Two runs side by side: a table in order of training FLOPs (run2's 8 steps before run's 150).
"$TESSERA" report run run2 > table.txt
grep -q '^| run | parameters | steps | tokens | training FLOPs' table.txt
n2=$(grep -n '^| run2 | [0-9,]* | 8 | 8,192 |' table.txt | cut -d: -f1)
n1=$(grep -n '^| run | [0-9,]* | 150 | 153,600 |' table.txt | cut -d: -f1)
[ -n "$n1" ] && [ -n "$n2" ] && [ "$n2" -lt "$n1" ] || { echo "FAIL: report's table of runs"; cat table.txt; exit 1; }
"$TESSERA" generate --model run/model.h5 --prompt "The " --tokens 20 >/dev/null

# User mistakes: one line on stderr, exit code 2.
expect_exit2 "$TESSERA" train run.toml --set train.stepz=3
expect_exit2 "$TESSERA" train run.toml --set data.train=missing_dir
expect_exit2 "$TESSERA" train missing.toml
expect_exit2 "$TESSERA" eval --model missing.h5 --tokens va
expect_exit2 "$TESSERA" report missing_dir
mkdir -p empty_run && cp run/config.toml empty_run/
expect_exit2 "$TESSERA" report empty_run
head -c 1000 run/model.h5 > truncated.h5
expect_exit2 "$TESSERA" eval --model truncated.h5 --tokens va
head -c 100 tr/shard_00000.tok > tr_bad.tok && mkdir -p trbad && mv tr_bad.tok trbad/shard_00000.tok
expect_exit2 "$TESSERA" train run.toml --set data.train=trbad
echo "e2e ok"
