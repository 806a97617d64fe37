#!/usr/bin/env bash
# ctest driver for hf_tokenizer_check.py: makes (once) the venv .venv-tokenizers at the
# repository root with the tokenizers library alone (a small wheel: no torch, no transformers),
# then compares tessera's hf: tokenizer with it. Published tokenizer.json files are cached in
# .deps/hf-tokenizers/NAME/tokenizer.json; without network only the cached ones and the ones
# trained on the spot are checked. Exit 77 (skipped) when the venv cannot be made.
# usage: run_hf_tokenizer_check.sh HF_TOKENIZE_DUMP TESSERA SRC
set -euo pipefail
DUMP=$1 TESSERA=$2 SRC=$3
VENV=$SRC/.venv-tokenizers
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c "import tokenizers" 2>/dev/null; then
  if ! /usr/bin/python3 -m venv "$VENV" >/dev/null 2>&1 ||
     ! "$VENV/bin/pip" install -q tokenizers >/dev/null 2>&1; then
    echo "SKIPPED: cannot make $VENV with the tokenizers library (python3-venv, or PyPI, missing)"
    exit 77
  fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/python" "$SRC/tests/reference/hf_tokenizer_check.py" "$DUMP" "$work" \
  "$SRC/.deps/hf-tokenizers" "$TESSERA"
