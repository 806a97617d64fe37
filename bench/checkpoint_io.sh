#!/usr/bin/env bash
# Checkpoint save/load throughput for a 124M-parameter GPT-2's full training state (weights =
# master, AdamW moments: 1.49 GB in f32) across 4 ranks (dp 4, ZeRO-1: each rank writes a
# quarter), against this disk's own sequential bandwidth measured in the same run by dd with
# fsync (and, for loading, by dd over the checkpoint's own shard files); and the step-time cost
# of an asynchronous save. Load = the resume's read (with and without checksum verification)
# plus the ZeRO parameter all-gather, from a dropped page cache.
#
# usage: bench/checkpoint_io.sh [build/tessera] [scratch dir on the disk to measure]
#        ROUNDS=N (default 3): rounds of dd + save + load; SKIP_ASYNC=1: without the step-time part
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
# The disk's rates drift by several times within minutes on shared virtual disks, so each round
# measures dd next to tessera and the ratios are taken within a round; the summary gives their
# medians over ROUNDS rounds. Load is reported twice: until every rank's reads and checksums
# were done ("reads"), and until the state was ready to train ("ready": the ZeRO parameter
# all-gather included).
bytes=1490000000
train() { mpirun --oversubscribe -np 4 "$TESSERA" train gpt2.toml "$@" 2>&1; }
secs() { sed -E "s/.*$1 ([0-9.]+) s.*/\1/" <<<"$2"; }
mbs() { sed -E 's/.* copied, ([0-9.]+) s.*/\1/' <<<"$1" | awk -v b=$((bytes / 8388608 * 8388608)) '{ printf "%.0f", b / $1 / 1e6 }'; }
ck=save/checkpoints/step_00000001
: > rounds.txt
for round in $(seq "${ROUNDS:-3}"); do
  echo "== round $round =="
  w=$( { dd if=/dev/zero of=dd.bin bs=8M count=$((bytes / 8388608)) conv=fsync 2>&1 >/dev/null; } | tail -1)
  echo "dd write with fsync: $w"
  cache=$(drop_caches)
  r=$( { dd if=dd.bin of=/dev/null bs=8M 2>&1 >/dev/null; } | tail -1)
  rm -f dd.bin
  echo "dd read ($cache page cache): $r"
  rm -rf save
  line=$(train --set log.dir='"save"' --set train.stop_at=1 | grep -E "checkpoint: saved")
  echo "$line"
  size=$(du -sb $ck | awk '{print $1}')
  save_s=$(sed -E 's/.*\(([0-9.]+) s\).*/\1/' <<<"$line")
  # Each load gets its own dd over the shard files just before it, both from a dropped page
  # cache, so that every load follows the same history (a drop of a full page cache, which on
  # a virtual machine slows the next reads) and is held against the disk's rate of that minute.
  order="true false"; [ $((round % 2)) = 0 ] && order="false true"  # alternate which goes first
  for verify in $order; do
    cache=$(drop_caches)
    t0=$(date +%s.%N)
    for f in $ck/shard_*.h5; do dd if="$f" of=/dev/null bs=8M 2>/dev/null & done; wait
    shards_dd=$(awk -v b="$size" -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.0f", b / (t1 - t0) / 1e6 }')
    echo "dd read of the checkpoint's shards, one dd per shard in parallel ($cache page cache): $shards_dd MB/s"
    cache=$(drop_caches)
    line=$(train --set log.dir='"save"' --set train.steps=1 --set checkpoint.resume='"auto"' \
      --set checkpoint.verify=$verify | grep -E "checkpoint: resuming")
    echo "(page cache $cache) $line"
    declare "read_$verify=$(secs 'read in' "$line")" "loaded_$verify=$(secs 'loaded in' "$line")" \
      "dd_$verify=$shards_dd"
  done
  echo "$round $size $(mbs "$w") $(mbs "$r") $dd_true $dd_false $save_s $read_true $loaded_true $read_false $loaded_false" >> rounds.txt
done
/usr/bin/python3 - <<'PY'
# Each load is held against the faster of two dd reads: the round's one stream over a 1.5 GB
# file, and the one dd per shard file (in parallel) run just before that load; save against
# the round's dd write with fsync.
import statistics as st
rows = [list(map(float, l.split())) for l in open("rounds.txt")]
print("\n== per round: MB/s (% of dd: save against dd write, each load against the faster of the stream dd and its own dd over the shards) ==")
print("round | dd write | save | dd read, one stream | with checksums: dd over shards, reads, ready | without: dd over shards, reads, ready")
ratios = {k: [] for k in ("save", "vread", "vload", "uread", "uload")}
for r, size, dw, dr, dv, du, save, rv, lv, ru, lu in rows:
    mb = size / 1e6
    got = {"save": mb / save / dw, "vread": mb / rv / max(dr, dv), "vload": mb / lv / max(dr, dv),
           "uread": mb / ru / max(dr, du), "uload": mb / lu / max(dr, du)}
    for k, v in got.items(): ratios[k].append(v)
    print(f"{int(r)} | {dw:.0f} | {mb / save:.0f} ({got['save']:.0%}) | {dr:.0f} | "
          f"{dv:.0f}, {mb / rv:.0f} ({got['vread']:.0%}), {mb / lv:.0f} ({got['vload']:.0%}) | "
          f"{du:.0f}, {mb / ru:.0f} ({got['uread']:.0%}), {mb / lu:.0f} ({got['uload']:.0%})")
m = {k: st.median(v) for k, v in ratios.items()}
low = {k: min(v) for k, v in ratios.items()}
print(f"median (lowest) over {len(rows)} rounds: save {m['save']:.0%} ({low['save']:.0%}) of dd write; load with "
      f"checksums: reads {m['vread']:.0%} ({low['vread']:.0%}), ready {m['vload']:.0%} ({low['vload']:.0%}) of dd read; "
      f"without: reads {m['uread']:.0%} ({low['uread']:.0%}), ready {m['uload']:.0%} ({low['uload']:.0%})")
PY
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
