#!/usr/bin/env bash
# The multilingual data pipeline as a user runs it:
#  - `prepare` over JSONL, gzip and fortune files under mpirun (2 ranks x 2 threads) writes the
#    same shards and stats as one process with one thread; per-language counts and
#    deduplication are right;
#  - bad inputs end in one line naming the file (and line), exit code 2;
#  - a temperature mixture of three languages trains; mixture.json holds the resolved
#    probabilities; metrics.jsonl the validation loss per language;
#  - the data order does not depend on the layout (1 process vs dp 2: same losses to rounding)
#    and a resumed mixture run continues exactly (bitwise).
set -euo pipefail
TESSERA=$1
SRC=$2
source "$SRC/tests/lib.sh"
fail() { echo "FAIL: $*"; exit 1; }
expect_error() {  # expect_error PATTERN command...: exit 2 and one line matching PATTERN
  local pattern=$1 rc=0
  shift
  "$@" >out.txt 2>err.txt || rc=$?
  [ "$rc" = 2 ] || fail "exit $rc (want 2): $*: $(cat err.txt)"
  [ "$(wc -l <err.txt)" = 1 ] || fail "not one line: $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "'$pattern' not in: $(cat err.txt)"
}

# --- prepare: formats, ranks and threads -------------------------------------------------------
mkdir -p in
"$PY" - <<'PY'
import gzip, json
docs = [l for l in open("corpus/train/de.txt", encoding="utf-8").read().split("\n%\n") if l.strip()]
with gzip.open("in/de.jsonl.gz", "wt", encoding="utf-8") as f:
    for i, d in enumerate(docs[:3000]):
        f.write(json.dumps({"content": d, "lang": "de"}) + "\n")
    f.write(json.dumps({"content": docs[0], "lang": "de"}) + "\n")  # a duplicate
with open("in/mixed.jsonl", "w", encoding="utf-8") as f:
    f.write(json.dumps({"content": "Bonjour tout le monde", "lang": "fr"}) + "\n")
    f.write(json.dumps({"content": "no language field"}) + "\n")
PY
cp corpus/train/en.txt in/en.txt
common=(--tokenizer byte --input in --language en --text-field content --language-field lang --dedup --unit-mb 0.05 --shard-mb 0.5)
"$TESSERA" prepare "${common[@]}" --out one --threads 1 >/dev/null
mpirun --oversubscribe -np 2 "$TESSERA" prepare "${common[@]}" --out two --threads 2 >prep.txt
grep -q "duplicates removed" prep.txt || fail "no summary: $(cat prep.txt)"
grep -q "note: in/de.jsonl.gz is compressed, so one thread reads all of it" prep.txt ||
  fail "no note that the large compressed file is one unit: $(cat prep.txt)"
n=$(ls one/shard_*.tok | wc -l)
for f in one/shard_*.tok one/stats.json; do
  cmp -s "$f" "two/$(basename "$f")" || fail "$f differs between 1 process and 2 ranks x 2 threads"
done
[ ! -e two/.units ] || fail ".units left behind"
"$PY" - <<'PY' || fail "stats.json"
import json
s = json.load(open("two/stats.json"))
assert s["units"] > 10, s["units"]
assert s["languages"]["de"]["documents"] == 3000, s["languages"]["de"]
assert s["languages"]["de"]["duplicates_removed"] == 1, s["languages"]["de"]
assert s["languages"]["fr"]["documents"] == 1
assert s["languages"]["en"]["documents"] >= 1 + 1000  # en.txt, and the JSONL line without a language
assert [f["path"].split("/")[-1] for f in s["files"]] == ["de.jsonl.gz", "en.txt", "mixed.jsonl"], s["files"]
assert s["documents"] == sum(l["documents"] for l in s["languages"].values())
PY
echo "prepare: 1 process = 2 ranks x 2 threads ($n shards, byte for byte)"

# --- prepare: bad inputs -----------------------------------------------------------------------
printf '{"text": "ok"}\n{"body": "typo"}\n' > bad.jsonl
expect_error "bad.jsonl:2: no \"text\" field" "$TESSERA" prepare --input bad.jsonl --out x1
head -c 3000 in/de.jsonl.gz > cut.gz
expect_error "cut.gz" "$TESSERA" prepare --input cut.gz --out x2
expect_error "no-such.txt" "$TESSERA" prepare --input no-such.txt --out x3
expect_error "already holds shards" "$TESSERA" prepare --input in/en.txt --out one
printf 'TSRATOK\0garbage' > x4.tok && mkdir -p foreign && cp x4.tok foreign/shard_00000.tok
expect_error "foreign/shard_00000.tok" "$TESSERA" train tiny.toml --set data.train=foreign
[ ! -e x1/shard_00000.tok ] && [ ! -e x2/shard_00000.tok ] || fail "a failed prepare left shards"
echo "prepare: bad inputs are one-line errors"

# --- a temperature mixture ---------------------------------------------------------------------
for l in de ru zh; do
  "$TESSERA" prepare --input corpus/train/$l.txt --language $l --out m/$l >/dev/null
  "$TESSERA" prepare --input corpus/valid/$l.txt --language $l --out m/v$l >/dev/null
done
cat > mix.toml <<'TOML'
[model]
n_layer = 2
d_model = 32
n_head = 2
seq_len = 16
[train]
steps = 12
micro_batch = 2
global_batch = 8
threads = 1
eval_every = 6
eval_batches = 2
[data]
temperature = 2.0
[[data.sources]]
name = "de"
path = "m/de"
valid = "m/vde"
[[data.sources]]
name = "ru"
path = "m/ru"
valid = "m/vru"
[[data.sources]]
name = "zh-fortunes"
language = "zh"
path = "m/zh"
valid = "m/vzh"
[log]
every = 1
TOML
"$TESSERA" train mix.toml --set log.dir='"r1"' > r1.txt
grep -q "data source zh-fortunes" r1.txt || fail "no mixture report: $(head -20 r1.txt)"
grep -q "validation loss .* | de .* ru .* zh " r1.txt || fail "no per-language validation line"
"$PY" - <<'PY' || fail "mixture.json / metrics.jsonl"
import json, math
m = json.load(open("r1/mixture.json"))
n = [s["tokens"] for s in m["sources"]]
z = sum(x ** 0.5 for x in n)
for s, x in zip(m["sources"], n):
    assert abs(s["target_probability"] - x ** 0.5 / z) < 1e-12, s
    assert abs(s["probability"] - s["target_probability"]) <= 1 / 65536, s
    assert abs(s["expected_epochs"] - 96 * s["probability"] / s["windows"]) < 1e-12, s
vals = [json.loads(l) for l in open("r1/metrics.jsonl") if "val_loss" in l]
assert [v["step"] for v in vals] == [6, 12], vals
assert set(vals[-1]["val_loss_by_language"]) == {"de", "ru", "zh"}, vals[-1]
assert all(math.isfinite(x) for x in vals[-1]["val_loss_by_language"].values())
PY
# The same run on 2 data-parallel ranks sees the same tokens: the same losses to rounding.
mpirun --oversubscribe -np 2 "$TESSERA" train mix.toml --set log.dir='"r2"' >/dev/null
"$PY" "$SRC/tests/dist/compare.py" r1 r2 1e-5 >cmp.txt || fail "dp 2 differs: $(cat cmp.txt)"
# Stopped after step 5 and resumed: the losses of steps 6-12 equal the straight run's, bit for bit.
"$TESSERA" train mix.toml --set log.dir='"r3"' --set checkpoint.every=5 --set train.stop_at=5 >/dev/null
"$TESSERA" train mix.toml --set log.dir='"r3"' --set checkpoint.resume='"auto"' >/dev/null
"$PY" "$SRC/tests/dist/compare.py" r1 r3 0 --from-step 6 >cmp.txt || fail "resumed mixture differs: $(cat cmp.txt)"
echo "mixture: probabilities, per-language validation, dp-invariant order, exact resume"
echo "PASS"
