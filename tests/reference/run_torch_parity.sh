#!/usr/bin/env bash
# ctest driver: parity_dump writes a run into a temporary directory, torch_parity.py replays it
# in PyTorch and compares. Exit 77 (skipped) when the interpreter or torch is missing.
# usage: run_torch_parity.sh PARITY_DUMP PYTHON TORCH_PARITY_PY [FAMILY]   (default gpt2)
set -euo pipefail
dump=$1 python=$2 script=$3 family=${4:-gpt2}
if [[ ! -x $python ]]; then
  echo "SKIP: $python not found (set -DTESSERA_REFERENCE_PYTHON=... to an interpreter with torch)"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$dump" "$dir/parity.h5" "$family"
"$python" "$script" "$dir/parity.h5"
