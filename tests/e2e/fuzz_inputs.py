"""Seeded fuzz of what a user types: valid tiny configs with one random mutation each (unknown
keys, wrong types, extreme numbers, odd strings) trained by `tessera train`, and every
subcommand's flags with one mutation each (a value replaced, a flag dropped, duplicated or
unknown, a value missing at the end). Each case must be handled well: exit 0, or exit 2 with
exactly one `tessera: error:` line; a run still training at the time limit (a mutation that
made the run long) counts as handled once it has logged a step. Anything else (a signal, an
abort, another exit code, several lines, silence past the limit) is a crash, printed with the
command that reproduces it.

usage: fuzz_inputs.py TESSERA FIXTURE_DIR [--seed S] [--configs N] [--flags M] [--jobs J]
FIXTURE_DIR holds tr/ (byte shards), run/model.h5, run/checkpoints/step_00000002, ids.json,
text.txt, hf/ (an export) and base.toml (a valid tiny config); the cases run inside it."""
import argparse
import os
import random
import resource
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

KEYS = {
    "model": ["family", "n_layer", "d_model", "n_head", "n_kv_head", "d_ff", "vocab_size", "seq_len",
              "dropout", "tie_embeddings", "norm", "norm_eps", "bias", "qkv_bias", "position",
              "rope_theta", "rope_fraction", "activation", "residual", "embedding_norm"],
    "parallel": ["tp", "pp", "dp", "schedule", "virtual_stages", "sequence_parallel", "zero",
                 "bucket_mb", "node_local_tp"],
    "train": ["steps", "micro_batch", "global_batch", "seed", "device", "precision", "recompute",
              "eval_every", "eval_batches", "threads", "stop_at", "collective_timeout_s", "straggler_ratio",
              "on_nonfinite", "max_skipped", "spike_zscore", "spike_window", "on_spike", "skip_data"],
    "optim": ["lr", "min_lr", "warmup_steps", "schedule", "decay_fraction", "weight_decay", "beta1",
              "beta2", "eps", "grad_clip", "decay_embeddings", "decay_norms_and_biases"],
    "data": ["tokenizer", "train", "valid", "temperature"],
    "checkpoint": ["dir", "every", "keep", "keep_every", "async", "resume", "verify"],
    "log": ["dir", "every", "tensorboard"],
}
NUMBERS = ["0", "-1", "1", "2", "3", "7", "-0.0", "0.5", "1e-300", "1e308", "-1e308", "inf", "-inf",
           "nan", "2147483647", "2147483648", "4294967296", "9223372036854775807",
           "-9223372036854775808", "65536", "1000000", "0x10", "1_000"]
STRINGS = ['""', '" "', '"\\u0000"', '"a\\nb"', '"\\t"', '"..."', '"../x"', '"no-such-dir"',
           '"tr"', '"run"', '"auto"', '"none"', '"cuda"', '"fp64"', '"bf16"', '"llama"', '"bloom"',
           '"hf:no/such/tokenizer.json"', '"sentencepiece:nope.model"', '"byte"',
           '"ééé€😀"', '"\\u202e"', '"%s%n%x"', '"' + "a" * 5000 + '"', '"' + "b/" * 300 + '"',
           '"tr/../tr"', '"/dev/null"', '"ids.json"']
OTHERS = ["true", "false", "[]", "[1, 2]", '["a"]', "{}", "{ a = 1 }", "1979-05-27T07:32:00Z", "00:00:00"]
JUNK = ["", "-1", "0", "nan", "1e999", "abc", "--", "-", "no-such-file", "/dev/null", "tr",
        "run/model.h5", "ids.json", "a" * 5000, "é😀", "%s%n", "5XB", "99999999999999999999",
        "../../", "--model", "run/checkpoints/step_00000002", "hf", "text.txt"]

def base_commands():
    return {
        "eval-tokens": ["eval", "--model", "run/model.h5", "--tokens", "tr", "--batches", "1"],
        "eval-ids": ["eval", "--model", "run/checkpoints/step_00000002", "--ids", "ids.json", "--logits", "o.npy"],
        "generate": ["generate", "--model", "run/model.h5", "--prompt", "Hi", "--tokens", "4", "--seed", "1",
                     "--temperature", "0.8", "--top-k", "5"],
        "inspect": ["inspect", "run/checkpoints/step_00000002"],
        "export": ["export", "run/checkpoints/step_00000002", "--format", "hf", "--out", "exp", "--max-shard-size", "1MB"],
        "import": ["import", "hf", "--out", "imp"],
        "prepare": ["prepare", "--tokenizer", "byte", "--input", "text.txt", "--out", "prep", "--language", "en",
                    "--dedup", "--shard-mb", "1", "--threads", "1", "--unit-mb", "1"],
        "tokenizer-encode": ["tokenizer", "encode", "--tokenizer", "byte"],
        "tokenizer-train": ["tokenizer", "train", "--input", "text.txt", "--vocab-size", "300", "--type", "bpe",
                            "--out", "tok.model", "--max-sentences", "200"],
        "contamination": ["contamination", "--train", "tr", "--eval", "text.txt", "--n", "8", "--top", "2", "--threads", "1"],
        "report": ["report", "run"],
    }


def mutate_config(rng, base):
    """One mutation of the base config's text: returns (label, toml text)."""
    lines = base.splitlines()
    kind = rng.choice(["set", "set", "set", "unknown-key", "unknown-section", "duplicate", "drop", "garble"])
    section = rng.choice(sorted(KEYS))
    key = rng.choice(KEYS[section])
    value = rng.choice(rng.choice([NUMBERS, STRINGS, OTHERS]))
    if kind == "set":
        out, in_section, placed = [], None, False
        for line in lines:
            if line.startswith("["):
                if in_section == section and not placed:
                    out.append(f"{key} = {value}")
                    placed = True
                in_section = line.strip("[] ")
            if in_section == section and line.split("=")[0].strip() == key:
                line, placed = f"{key} = {value}", True
            out.append(line)
        if not placed:
            if in_section != section:
                out.append(f"[{section}]")
            out.append(f"{key} = {value}")
        return f"{section}.{key} = {value[:40]}", "\n".join(out) + "\n"
    if kind == "unknown-key":
        return f"{section}.{key}x", base + f"[{section}]\n{key}x = {value}\n"
    if kind == "unknown-section":
        return f"[{section}s]", base + f"[{section}s]\n{key} = {value}\n"
    if kind == "duplicate":
        return f"[{section}] twice", base + f"[{section}]\n{key} = {value}\n"
    if kind == "drop":
        i = rng.randrange(len(lines))
        return f"line {i + 1} dropped", "\n".join(lines[:i] + lines[i + 1:]) + "\n"
    i = rng.randrange(len(base))
    return f"byte {i} garbled", base[:i] + rng.choice(["=", "[", '"', "\n", "\x00", "\xff", "]]", "''"]) + base[i + 1:]


def mutate_flags(rng, argv):
    argv = list(argv)
    kind = rng.choice(["value", "value", "drop", "duplicate", "unknown", "truncate", "junk-arg"])
    flags = [i for i, a in enumerate(argv) if a.startswith("--")]
    values = [i for i in range(1, len(argv)) if not argv[i].startswith("--")]
    if kind == "value" and values:
        argv[rng.choice(values)] = rng.choice(JUNK)
    elif kind == "drop" and flags:
        i = rng.choice(flags)
        del argv[i:i + (2 if i + 1 < len(argv) and not argv[i + 1].startswith("--") else 1)]
    elif kind == "duplicate" and flags:
        i = rng.choice(flags)
        argv += argv[i:i + 2]
    elif kind == "unknown":
        argv.insert(rng.randrange(1, len(argv) + 1), rng.choice(["--frobnicate", "-x", "--model=", "--"]))
    elif kind == "truncate" and flags:
        argv = argv[:rng.choice(flags) + 1]
    else:
        argv.insert(rng.randrange(1, len(argv) + 1), rng.choice(JUNK))
    return argv


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


def run_case(tessera, cwd, label, argv, stdin_text, timeout):
    try:
        p = subprocess.run([tessera] + argv, cwd=cwd, input=stdin_text.encode(), capture_output=True,
                           timeout=timeout, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        if "step " in out:
            return None  # a run made long by its mutation, still training: handled
        return f"{label}: no answer within {timeout} s"
    err = p.stderr.decode(errors="replace")
    errors = [l for l in err.splitlines() if l.startswith("tessera: error:")]
    if p.returncode == 0:
        return None
    if p.returncode == 2 and len(errors) == 1:
        return None
    tail = " | ".join(err.strip().splitlines()[-3:])[:300]
    return f"{label}: exit {p.returncode}, {len(errors)} error line(s): {tail}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("fixtures")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--configs", type=int, default=700)
    ap.add_argument("--flags", type=int, default=400)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=20)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    base = open(os.path.join(a.fixtures, "base.toml")).read()
    cases = []
    for i in range(a.configs):
        label, text = mutate_config(rng, base)
        case_dir = os.path.join(a.fixtures, "cases", f"c{i}")
        os.makedirs(case_dir, exist_ok=True)
        path = os.path.join(case_dir, "run.toml")
        with open(path, "wb") as f:
            f.write(text.encode("utf-8", errors="surrogateescape"))
        argv = ["train", path, "--set", f'log.dir="{case_dir}/log"']
        cases.append((f"config case {i} ({label}): tessera {shlex.join(argv)}", argv, ""))
    bases = base_commands()
    names = sorted(bases)
    for i in range(a.flags):
        name = names[i % len(names)]
        argv = mutate_flags(rng, bases[name])
        # outputs of each case in its own place, so cases do not see each other's files
        argv = [x.replace("exp", f"cases/f{i}/exp").replace("imp", f"cases/f{i}/imp").replace("prep", f"cases/f{i}/prep")
                if x in ("exp", "imp", "prep") else x for x in argv]
        cases.append((f"flag case {i} ({name}): tessera {shlex.join(argv)}", argv, "Hello\nwörld\n"))
    # every base command itself must work, or the flag cases test nothing
    for name in names:
        failure = run_case(a.tessera, a.fixtures, f"base {name}", bases[name], "Hello\n", 60)
        if failure:
            print("FAIL: the unmutated command fails:", failure)
            return 1
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        results = list(pool.map(lambda c: run_case(a.tessera, a.fixtures, c[0], c[1], c[2], a.timeout), cases))
    crashes = [r for r in results if r]
    for r in crashes:
        print("CRASH:", r)
    print(f"fuzz: seed {a.seed}, {len(cases)} cases ({a.configs} configs, {a.flags} flag sets): "
          f"{len(cases) - len(crashes)} handled, {len(crashes)} crashed")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
