#!/usr/bin/env bash
# hf: tokenizer encoding throughput, tessera against the tokenizers library, same text, same
# tokenizer.json, same thread counts. The text is a few MB of fortune lines in a dozen
# languages (shuffled with a fixed seed, invalid UTF-8 repaired as tessera does); each side
# encodes the lines as separate texts without special tokens, and only the encode is timed:
#   tessera     hf_tokenize_dump bench (threads take every n-th line)
#   tokenizers  Tokenizer.encode_batch and encode_batch_fast, RAYON_NUM_THREADS threads
# Tokenizers: the published GPT-2, Pythia and TinyLlama files where .deps/hf-tokenizers holds
# them, and GPT-2-, LLaMA-3- and LLaMA-2-style ones trained on the spot (the LLaMA-2 one is the
# SentencePiece-style BPE with byte fallback, in the legacy layout and the Metaspace one). Best
# of 3 runs each. ONLY keeps the tokenizers whose label contains it (e.g. llama2).
# usage: bench/hf_tokenizer_bench.sh [BUILD_DIR (build)] [MB (4)] [THREADS ("1 2")] [ONLY]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
MB=${2:-4}
THREADS=${3:-"1 2"}
ONLY=${4:-}
DUMP=$BUILD/tests/reference/hf_tokenize_dump
[[ -x $DUMP ]] || { echo "no $DUMP: cmake --build $BUILD --target hf_tokenize_dump" >&2; exit 2; }
VENV=$SRC/.venv-tokenizers
if ! "$VENV/bin/python" -c "import tokenizers" 2>/dev/null; then
  /usr/bin/python3 -m venv "$VENV" && "$VENV/bin/pip" install -q tokenizers
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/python" - "$SRC" "$DUMP" "$work" "$MB" "$THREADS" "$ONLY" <<'PY'
import json, os, random, subprocess, sys, time
src, dump, work, mb, threads = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5].split()
only = sys.argv[6]
sys.path.insert(0, os.path.join(src, "tests", "reference"))
import hf_tokenizer_check as check
import tokenizers

lines = check.corpus_lines(1 << 40)
random.Random(5).shuffle(lines)
text, size = [], 0
for raw in lines:
    line = check.utf8_repair(raw)
    text.append(line)
    size += len(line.encode())
    if size >= mb * 1e6:
        break
corpus = os.path.join(work, "corpus.txt")
with open(corpus, "w", encoding="utf-8", newline="") as f:
    f.write("\n".join(text) + "\n")
nbytes = sum(len(t.encode()) for t in text)

files = {}
for name in ("gpt2", "pythia-70m", "tinyllama-1.1b"):
    path = os.path.join(src, ".deps", "hf-tokenizers", name, "tokenizer.json")
    if os.path.exists(path):
        files["published " + name] = path
trained = check.train(work, check.corpus_lines(3_000_000))
files["trained gpt2"] = trained["trained gpt2"]
files["trained llama3"] = trained["trained llama3"]
files["trained llama2"] = trained["trained llama2"]
files["trained llama2-metaspace"] = trained["trained llama2-metaspace"]
files = {label: path for label, path in files.items() if only in label}

REF = r'''
import sys, time
from tokenizers import Tokenizer
path, corpus, method = sys.argv[1:4]
tok = Tokenizer.from_file(path); tok.no_truncation(); tok.no_padding()
lines = open(corpus, encoding="utf-8", newline="").read().split("\n")[:-1]
encode = getattr(tok, method)
best = None
for _ in range(3):
    t0 = time.perf_counter(); out = encode(lines, add_special_tokens=False); dt = time.perf_counter() - t0
    best = dt if best is None else min(best, dt)
print(best, sum(len(e.ids) for e in out))
'''
print("text: %.2f MB in %d lines; tokenizers %s; %s" % (nbytes / 1e6, len(text),
      tokenizers.__version__, os.uname().machine))
print("%-26s %3s %10s %12s %12s %9s %9s" % ("tokenizer", "thr", "tessera", "encode_batch",
      "batch_fast", "vs batch", "vs fast"))
for label, path in files.items():
    for n in threads:
        runs = [json.loads(subprocess.run([dump, "bench", "hf:" + path, corpus, n], check=True,
                                          capture_output=True, text=True).stdout) for _ in range(3)]
        ours = min(r["seconds"] for r in runs)
        env = dict(os.environ, RAYON_NUM_THREADS=n, TOKENIZERS_PARALLELISM="true")
        theirs = {}
        for method in ("encode_batch", "encode_batch_fast"):
            out = subprocess.run([sys.executable, "-c", REF, path, corpus, method], env=env,
                                 check=True, capture_output=True, text=True).stdout.split()
            theirs[method] = float(out[0])
            if int(out[1]) != runs[0]["tokens"]:
                sys.exit("%s: %s tokens from tessera, %s from tokenizers" % (label, runs[0]["tokens"], out[1]))
        rate = lambda s: nbytes / s / 1e6
        print("%-26s %3s %7.2f MB/s %7.2f MB/s %7.2f MB/s %8.1fx %8.1fx" % (
            label, n, rate(ours), rate(theirs["encode_batch"]), rate(theirs["encode_batch_fast"]),
            theirs["encode_batch"] / ours, theirs["encode_batch_fast"] / ours))
PY
