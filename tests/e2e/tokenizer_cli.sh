#!/usr/bin/env bash
# End to end, as a user runs it: train BPE and unigram SentencePiece models on a sample of the
# fortune corpus with `tessera tokenizer train`, require `tessera tokenizer encode` to give
# exactly the ids of Debian's spm_encode on the same model and lines, decode them back to the
# same text, run the byte tokenizer through the same commands, and check the one-line errors
# (exit code 2).
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
command -v spm_encode >/dev/null || { echo "FAIL: spm_encode not found (apt-get install sentencepiece)"; exit 1; }
source "$SRC/tests/scratch.sh"  # scratch dir (cwd), corpus/, expect_exit2

# Held-out lines in every language, those that are valid UTF-8 (the CLI repairs invalid
# UTF-8 before encoding, spm_encode does not, so only valid lines compare).
python3 - <<'PY'
import glob
with open("lines.txt", "wb") as out:
    for path in sorted(glob.glob("corpus/valid/*.txt")):
        for line in open(path, "rb").read().split(b"\n")[:-1]:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.write(line + b"\n")
PY
echo "$(wc -l <lines.txt) held-out lines"

# The first mismatching line of two files, as "line N: A != B"; nothing when they agree.
first_difference() {
  python3 - "$1" "$2" <<'PY'
import sys
a = open(sys.argv[1], "rb").read().split(b"\n")
b = open(sys.argv[2], "rb").read().split(b"\n")
for n, (x, y) in enumerate(zip(a, b), 1):
    if x != y:
        print(f"line {n}: {x[:200]!r} != {y[:200]!r}")
        break
else:
    if len(a) != len(b):
        print(f"{len(a) - 1} lines != {len(b) - 1} lines")
PY
}

# A 10,000-sentence sample of all 12 languages keeps training to seconds on 2 cores.
for type in bpe unigram; do
  "$TESSERA" tokenizer train --input corpus/train/*.txt --vocab-size 3000 --type $type \
    --out $type --max-sentences 10000 --threads 2 | tee train_$type.txt
  grep -q "tokenizer train: $type, vocab 3000, 10000 sentences used" train_$type.txt ||
    { echo "FAIL: unexpected summary"; exit 1; }
  test -s $type.model && test "$(wc -l <$type.vocab)" -eq 3000
  grep -q $'^</s>\t' $type.vocab && grep -q $'^<0xE9>\t' $type.vocab

  "$TESSERA" tokenizer encode --tokenizer sentencepiece:$type.model <lines.txt >ours_$type.txt
  # spm_encode prints "15 27 3"; tessera prints JSON "[15, 27, 3]".
  spm_encode --model=$type.model --output_format=id <lines.txt |
    sed 's/ /, /g; s/^/[/; s/$/]/' >spm_$type.txt
  diff=$(first_difference spm_$type.txt ours_$type.txt)
  [ -z "$diff" ] || { echo "FAIL: $type ids differ from spm_encode at $diff"; exit 1; }

  "$TESSERA" tokenizer decode --tokenizer sentencepiece:$type.model <ours_$type.txt >back_$type.txt
  diff=$(first_difference lines.txt back_$type.txt)
  [ -z "$diff" ] || { echo "FAIL: $type decode(encode(text)) != text at $diff"; exit 1; }
  echo "$type: $(wc -l <lines.txt) lines, ids identical to spm_encode, round trip exact"
done

# Byte fallback: a character in no training text comes back through its bytes.
printf '\xe9\xbe\x98 and \xf0\x9f\xa6\x9c\n' >rare.txt
"$TESSERA" tokenizer encode --tokenizer sentencepiece:bpe.model <rare.txt >rare_ids.txt
"$TESSERA" tokenizer decode --tokenizer sentencepiece:bpe.model <rare_ids.txt | cmp - rare.txt

# .gz inputs, and the same model from the same text.
gzip -c corpus/train/bg.txt >bg.txt.gz
"$TESSERA" tokenizer train --input corpus/train/bg.txt --vocab-size 1000 --type bpe --out plain >/dev/null
"$TESSERA" tokenizer train --input bg.txt.gz --vocab-size 1000 --type bpe --out packed >/dev/null
cmp plain.model packed.model || { echo "FAIL: .gz input trained a different model"; exit 1; }

# The byte tokenizer through the same commands; invalid UTF-8 is repaired first.
printf 'h\xc3\xa9\n\n\xff!\n' | "$TESSERA" tokenizer encode --tokenizer byte >byte_ids.txt
printf '[104, 195, 169]\n[]\n[239, 191, 189, 33]\n' | cmp - byte_ids.txt ||
  { echo "FAIL: byte ids"; cat byte_ids.txt; exit 1; }
printf '[104, 195, 169, 256]\n[]\n' | "$TESSERA" tokenizer decode --tokenizer byte | cmp - <(printf 'h\xc3\xa9\n\n')
"$TESSERA" tokenizer encode --tokenizer byte <lines.txt |
  "$TESSERA" tokenizer decode --tokenizer byte | cmp - lines.txt

# User mistakes: one line on stderr, exit code 2.
expect_decode_exit2() {  # stdin text, expected words in the message
  set +e
  printf '%b' "$1" | "$TESSERA" tokenizer decode --tokenizer sentencepiece:bpe.model 2>err.txt >/dev/null
  rc=$?
  set -e
  [ "$rc" -eq 2 ] && [ "$(wc -l <err.txt)" -eq 1 ] && grep -q "$2" err.txt ||
    { echo "FAIL: decode of '$1' exited $rc:"; cat err.txt; exit 1; }
}
expect_exit2 "$TESSERA" tokenizer
expect_exit2 "$TESSERA" tokenizer frobnicate
expect_exit2 "$TESSERA" tokenizer encode
expect_exit2 "$TESSERA" tokenizer decode --tokenizer
expect_exit2 "$TESSERA" tokenizer encode --tokenizer bogus
expect_exit2 "$TESSERA" tokenizer encode --tokenizer sentencepiece:missing.model
head -c 300 bpe.model >truncated.model
expect_exit2 "$TESSERA" tokenizer encode --tokenizer sentencepiece:truncated.model
spm_train --input=corpus/train/ga.txt --model_prefix=noeos --vocab_size=200 --eos_id=-1 \
  --minloglevel=2 >/dev/null 2>&1
expect_exit2 "$TESSERA" tokenizer encode --tokenizer sentencepiece:noeos.model
grep -q "end-of-sentence" err.txt
expect_decode_exit2 '[1, 2]\n[3, oops]\n' "line 2"
expect_decode_exit2 '[1, 2]\n[3000]\n' "line 2: id 3000 is outside"
expect_decode_exit2 '[-1]\n' "line 1: id -1 is outside"
expect_decode_exit2 '[1.5]\n' "line 1: not a JSON array"
expect_decode_exit2 '{"ids": [1]}\n' "line 1: not a JSON array"
expect_exit2 "$TESSERA" tokenizer train --input missing.txt --vocab-size 100 --type bpe --out m
expect_exit2 "$TESSERA" tokenizer train --input corpus/train/ga.txt --vocab-size 100 --type word --out m
expect_exit2 "$TESSERA" tokenizer train --input corpus/train/ga.txt --vocab-size 0 --type bpe --out m
expect_exit2 "$TESSERA" tokenizer train --input corpus/train/ga.txt --vocab-size 100 --type bpe
expect_exit2 "$TESSERA" tokenizer train --input corpus/train/ga.txt --vocab-size 100000 --type unigram --out m
grep -q "Vocabulary size" err.txt
test ! -e m.model
echo "tokenizer e2e ok"
