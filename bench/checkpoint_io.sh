#!/usr/bin/env bash
# Checkpoint save/load throughput for a 124M-parameter GPT-2's full training state (weights =
# master, AdamW moments: 1.49 GB in f32) across 4 ranks (dp 4, ZeRO-1: each rank writes a
# quarter), against this disk's own sequential bandwidth measured in the same run by dd with
# fsync (and, for loading, by dd over the checkpoint's own shard files); and the step-time cost
# of an asynchronous save. Load = the resume's read (with and without checksum verification)
# plus the ZeRO parameter all-gather, from a dropped page cache.
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
ck=save/checkpoints/step_00000001
size=$(du -sb $ck | awk '{print $1}')
awk -v b="$size" 'BEGIN { printf "checkpoint size: %.1f MB\n", b / 1e6 }'
cache=$(drop_caches)
t0=$(date +%s.%N)
for f in $ck/shard_*.h5; do dd if="$f" of=/dev/null bs=8M 2>/dev/null & done; wait
shards_dd=$(awk -v b="$size" -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.0f", b / (t1 - t0) / 1e6 }')
echo "dd read of the checkpoint's shards, one dd per shard in parallel ($cache page cache): $shards_dd MB/s"
# rate LOGLINE: MB/s of a resume (its reads, checksums and the ZeRO parameter all-gather)
rate() { sed -E 's/.* loaded in ([0-9.]+) s\).*/\1/' <<<"$1" | awk -v b="$size" '{ printf "%.2f s = %.0f MB/s", $1, b / $1 / 1e6 }'; }
cache=$(drop_caches)
echo "(page cache $cache before loading)"
line=$(mpirun --oversubscribe -np 4 "$TESSERA" train gpt2.toml --set log.dir='"save"' --set train.steps=1 \
  --set checkpoint.resume='"auto"' 2>&1 | grep -E "checkpoint:")
echo "$line"
verified=$(rate "$line")
cache=$(drop_caches)
echo "(page cache $cache; resuming again without checksum verification)"
line=$(mpirun --oversubscribe -np 4 "$TESSERA" train gpt2.toml --set log.dir='"save"' --set train.steps=1 \
  --set checkpoint.resume='"auto"' --set checkpoint.verify=false 2>&1 | grep -E "checkpoint:")
echo "$line"
unverified=$(rate "$line")
dd_read=$(sed -E 's/.* copied, ([0-9.]+) s.*/\1/' <<<"$r" | awk -v b=$((bytes / 8388608 * 8388608)) '{ printf "%.0f", b / $1 / 1e6 }')
for what in "verified:$verified" "not verified:$unverified"; do
  mbs=$(sed -E 's/.*= ([0-9]+) MB\/s/\1/' <<<"${what#*:}")
  awk -v w="${what%%:*}" -v t="${what#*:}" -v m="$mbs" -v d="$dd_read" -v s="$shards_dd" \
    'BEGIN { printf "load (%s): %s: %.0f%% of dd read (%s MB/s), %.0f%% of dd over the shards (%s MB/s)\n", w, t, 100 * m / d, d, 100 * m / s, s }'
done
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
