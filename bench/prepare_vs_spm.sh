#!/usr/bin/env bash
# `tessera prepare` with a SentencePiece model against Debian's `spm_encode` with the same model
# on the same text, with the same number of cores, in one run.
#
# The text is the fortune corpus's training split (12 languages), repeated REPEAT times (default
# 4, about 65 MB). spm_encode is single-threaded: with N cores the text is cut into N parts at
# line boundaries and N spm_encode processes run at once (ids to /dev/null). tessera prepare
# runs with --threads N on the whole text and writes real shards (reading, UTF-8 repair,
# tokenizing, shard writing and the final merge all counted). Reported: MB of text per second
# of wall time, and per CPU-second (user + system of all processes, from /usr/bin/time: the
# per-core rate, which other load on a shared machine disturbs far less than wall time).
#
# usage: bench/prepare_vs_spm.sh [build/tessera] [SentencePiece .model]   (REPEAT=N, CORES="1 2")
set -euo pipefail
TESSERA=$(realpath "${1:-build/tessera}")
SRC=$(realpath "$(dirname "$0")/..")
WORK=$SRC/runs/bench_prepare
MODEL=${2:+$(realpath "$2")}
mkdir -p "$WORK"
cd "$WORK"
"$SRC/scripts/build-fortune-corpus" corpus >/dev/null
if [ -z "$MODEL" ]; then
  MODEL=$WORK/sp.model
  [ -f "$MODEL" ] || "$TESSERA" tokenizer train --input corpus/train/*.txt --vocab-size 8000 \
    --type bpe --max-sentences 300000 --out "$WORK/sp" >/dev/null
fi
MODEL=$(realpath "$MODEL")
REPEAT=${REPEAT:-4}
rm -f text.txt
for _ in $(seq "$REPEAT"); do cat corpus/train/*.txt >> text.txt; done
BYTES=$(stat -c %s text.txt)
now() { date +%s.%N; }
echo "text: $BYTES bytes ($REPEAT x the fortune training split), model $MODEL"
for n in ${CORES:-1 2}; do
  rm -rf parts out && mkdir parts
  split -n "l/$n" -d text.txt parts/p
  cat text.txt parts/* > /dev/null  # the same warm page cache for both
  t0=$(now)
  for p in parts/p*; do
    /usr/bin/time -f "%U %S" -o "$p.cpu" spm_encode --model "$MODEL" --output_format=id < "$p" > /dev/null &
  done
  wait
  t1=$(now)
  /usr/bin/time -f "%U %S" -o prepare.cpu "$TESSERA" prepare --tokenizer "sentencepiece:$MODEL" \
    --input text.txt --out out --threads "$n" --unit-mb 4 > /dev/null
  t2=$(now)
  spm_cpu=$(cat parts/p*.cpu | awk '{s += $1 + $2} END {print s}')
  tess_cpu=$(awk '{print $1 + $2}' prepare.cpu)
  python3 - "$BYTES" "$n" "$t0" "$t1" "$t2" "$spm_cpu" "$tess_cpu" <<'PY'
import sys
b, n = int(sys.argv[1]), int(sys.argv[2])
t0, t1, t2, spm_cpu, tess_cpu = map(float, sys.argv[3:])
mb = b / 1e6
spm, tess = mb / (t1 - t0), mb / (t2 - t1)
print(f"cores {n}: wall: spm_encode {spm:.2f} MB/s ({t1 - t0:.2f} s) | tessera prepare {tess:.2f} MB/s "
      f"({t2 - t1:.2f} s) | ratio {tess / spm:.2f} || per CPU-second: spm_encode {mb / spm_cpu:.2f} MB "
      f"| tessera {mb / tess_cpu:.2f} MB | ratio {spm_cpu / tess_cpu:.2f}")
PY
done
