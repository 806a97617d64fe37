#!/usr/bin/env bash
# End to end, as a user runs it: prepare byte shards of the fortune corpus with evaluation
# documents planted in it (whole, as a recased 13-gram inside another document, and a 12-word
# near miss that must not count), then require `tessera contamination` to report the exact
# shares in its table and in --json, and the one-line errors (exit code 2).
set -euo pipefail
TESSERA=$1
SRC=$2
source "$SRC/tests/scratch.sh"  # scratch dir (cwd), corpus/, expect_exit2

# Five evaluation documents (fortune format): A is copied whole into training, 13 words of B
# are planted inside a training document, C shares only 12 words, D and E are clean.
cat > eval.txt <<'EOF'
The lighthouse keeper counted forty seven ships passing through the narrow strait before dawn
broke over the quiet harbour.
%
Seventeen violinists rehearsed the difficult passage until the conductor finally smiled and
dismissed them for the evening.
%
Marmalade sandwiches were packed for the expedition across the glacier, along with three
spare lanterns and a compass.
%
Nobody in the village remembered who had planted the crooked walnut tree beside the old mill
pond, nor when.
%
A tortoise named Bartholomew escaped from the zoo twice in one summer and was found both
times in the bakery.
EOF
# Two JSONL documents: the short one (3 words, fewer than n) appears in training.
cat > eval.jsonl <<'EOF'
{"text": "Zanzibar pelican quartet"}
{"text": "An unlikely sentence about copper kettles, ninety umbrellas and a very patient heron that waited."}
EOF

{
  cat corpus/train/en.txt
  printf '%%\n'
  sed -n '1,2p' eval.txt
  printf '%%\n'
  printf 'Yesterday we heard that SEVENTEEN violinists rehearsed the difficult-passage until the\n'
  printf 'Conductor finally smiled, and DISMISSED everybody.\n%%\n'
  printf 'Marmalade sandwiches were packed for the expedition across the glacier along with\n'
  printf 'tents.\n%%\n'
  printf 'The program printed: zanzibar PELICAN-quartet, and stopped.\n%%\n'
} > train.txt
"$TESSERA" prepare --tokenizer byte --input train.txt --out tr >/dev/null

"$TESSERA" contamination --train tr --eval eval.txt eval.jsonl --threads 2 > table.txt
cat table.txt
# file, documents, contaminated, share, shorter than n
grep -Eq '^eval\.txt +5 +2 +40\.00% +0$' table.txt || { echo "FAIL: eval.txt row"; exit 1; }
grep -Eq '^eval\.jsonl +2 +1 +50\.00% +1$' table.txt || { echo "FAIL: eval.jsonl row"; exit 1; }
grep -q '^eval.txt: worst 2 of 2 contaminated$' table.txt || { echo "FAIL: eval.txt examples"; exit 1; }
# A (all 7 n-grams shared) ranks above B (1 of 5); B's shared text is its own words.
grep -q '^  eval.txt:1  7/7 n-grams shared (100.00%) with 1 training document(s)' table.txt ||
  { echo "FAIL: A"; exit 1; }
grep -q '^  eval.txt:4  1/5 n-grams shared (20.00%) with 1 training document(s)' table.txt ||
  { echo "FAIL: B"; exit 1; }
grep -q 'shared: Seventeen violinists rehearsed the difficult passage until the conductor finally smiled and dismissed$' \
  table.txt || { echo "FAIL: B's shared text"; exit 1; }

"$TESSERA" contamination --train tr --eval eval.txt eval.jsonl --json --top 1 > report.json
python3 - <<'PY'
import json
r = json.load(open("report.json"))
assert r["n"] == 13 and r["train"] == "tr" and r["tokenizer"] == "byte", r
stats = json.load(open("tr/stats.json"))
assert (r["training_documents"], r["training_tokens"]) == (stats["documents"], stats["tokens"]), stats
files = {f["path"]: f for f in r["files"]}
a, j = files["eval.txt"], files["eval.jsonl"]
assert (a["documents"], a["contaminated"], a["share"], a["short_documents"]) == (5, 2, 0.4, 0), a
assert (j["documents"], j["contaminated"], j["share"], j["short_documents"]) == (2, 1, 0.5, 1), j
assert len(a["examples"]) == 1, a["examples"]
e = a["examples"][0]
assert (e["line"], e["offset"], e["ngrams"], e["shared_ngrams"], e["training_documents"]) == (1, 0, 7, 7, 1), e
assert e["text"].startswith("The lighthouse keeper counted forty seven ships passing through the narrow strait before dawn broke"), e
assert e["training"]["shard"].startswith("tr/shard_") and e["training"]["document"] >= 0, e
s = j["examples"][0]
assert (s["line"], s["ngrams"], s["shared_ngrams"], s["shared_text"]) == (1, 1, 1, "Zanzibar pelican quartet"), s
print("json ok")
PY

# --n 12: the near miss C is contaminated too.
"$TESSERA" contamination --train tr --eval eval.txt --n 12 --json |
  python3 -c 'import json, sys; f = json.load(sys.stdin)["files"][0]; assert (f["contaminated"], f["share"]) == (3, 0.6), f'

# User mistakes: one line on stderr, exit code 2.
expect_exit2 "$TESSERA" contamination --train missing_dir --eval eval.txt
expect_exit2 "$TESSERA" contamination --train tr --eval missing.txt
expect_exit2 "$TESSERA" contamination --train tr --eval eval.txt --n 0
expect_exit2 "$TESSERA" contamination --train corpus --eval eval.txt
expect_exit2 "$TESSERA" contamination --eval eval.txt
"$TESSERA" contamination --help | grep -q '^usage: tessera contamination --train DIR --eval FILE'
echo "contamination e2e ok"
