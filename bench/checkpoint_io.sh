#!/usr/bin/env bash
# Checkpoint save/load throughput for a 124M-parameter GPT-2's full training state (weights =
# master, AdamW moments: 1.49 GB in f32) across 4 ranks (dp 4, ZeRO-1: each rank writes a
# quarter), against this disk's own sequential bandwidth measured in the same run by dd with
# fsync; and the step-time cost of an asynchronous save.
#
# usage: bench/checkpoint_io.sh [build/tessera] [scratch dir on the disk to measure]
#        SKIP_ASYNC=1 bench/checkpoint_io.sh ...   (save and load only)
set -euo pipefail
TESSERA=$(realpath "${1:-build/tessera}")
SRC=$(realpath "$(dirname "$0")/..")
WORK=${2:-$SRC/runs/bench_ckpt}
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$SRC/scripts/build-fortune-corpus" corpus >/dev/null
"$TESSERA" prepare --tokenizer byte --input corpus/train/en.txt --out tr >/dev/null
cat > gpt2.toml <<TOML
[model]
n_layer = 12
d_model = 768
n_head = 12
vocab_size = 50257
seq_len = 128
[train]
steps = 6
micro_batch = 1
global_batch = 4
[parallel]
zero = 1
[data]
train = "tr"
[log]
every = 1
TOML
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && echo dropped || echo kept; }
bytes=1490000000
echo "== dd: sequential write with fsync, then read ($((bytes / 1000000)) MB) =="
w=$( { dd if=/dev/zero of=dd.bin bs=8M count=$((bytes / 8388608)) conv=fsync 2>&1 >/dev/null; } | tail -1)
cache=$(drop_caches)
r=$( { dd if=dd.bin of=/dev/null bs=8M 2>&1 >/dev/null; } | tail -1)
rm -f dd.bin
echo "dd write: $w"
echo "dd read ($cache page cache): $r"
echo "== tessera: 4 ranks, save after step 1 (synchronous), then resume =="
mpirun --oversubscribe -np 4 "$TESSERA" train gpt2.toml --set log.dir='"save"' --set train.stop_at=1 2>&1 | grep -E "parameters|checkpoint:|stopped"
du -sb save/checkpoints/step_00000001 | awk '{printf "checkpoint size: %.1f MB\n", $1 / 1e6}'
cache=$(drop_caches)
echo "(page cache $cache before loading)"
mpirun --oversubscribe -np 4 "$TESSERA" train gpt2.toml --set log.dir='"save"' --set train.steps=1 \
  --set checkpoint.resume='"auto"' 2>&1 | grep -E "checkpoint:"
cache=$(drop_caches)
echo "(page cache $cache; resuming again without checksum verification)"
mpirun --oversubscribe -np 4 "$TESSERA" train gpt2.toml --set log.dir='"save"' --set train.steps=1 \
  --set checkpoint.resume='"auto"' --set checkpoint.verify=false 2>&1 | grep -E "checkpoint:"
[ "${SKIP_ASYNC:-0}" = 1 ] && exit 0
echo "== tessera: step time, no checkpoints vs an asynchronous save after every step =="
mpirun --oversubscribe -np 4 "$TESSERA" train gpt2.toml --set log.dir='"plain"' 2>&1 | grep -E "^step"
mpirun --oversubscribe -np 4 "$TESSERA" train gpt2.toml --set log.dir='"async"' --set checkpoint.every=1 \
  --set checkpoint.async=true --set checkpoint.keep=1 2>&1 | grep -E "^step|checkpoint:"
echo "(the step that triggers a save pays the copy to host above plus its share of the background writer's CPU and disk time)"
/usr/bin/python3 - <<'PY'
import json
def ms(run):
    return {r["step"]: r["step_ms"] for r in map(json.loads, open(f"{run}/metrics.jsonl")) if "step_ms" in r}
a, b = ms("plain"), ms("async")
steps = [s for s in a if s >= 2]
pa = sum(a[s] for s in steps) / len(steps); pb = sum(b[s] for s in steps) / len(steps)
print(f"mean step time over steps {steps[0]}-{steps[-1]}: no checkpoints {pa:.0f} ms, async save every step {pb:.0f} ms: {100 * (pb / pa - 1):+.1f}%")
PY
