"""The tokenizer files of `tessera export --format hf` against the Hugging Face libraries.

usage: hf_tokenizer_export_check.py tokenizers|transformers DUMP SPEC EXPORT_DIR [copied]

Encodes a multilingual paragraph (Latin, Cyrillic, CJK, Arabic, Hebrew, Devanagari, emoji with
ZWJ sequences and skin tones, combining marks, runs of spaces and tabs, newlines), the one-line
texts of hf_tokenizer_check.py, the held-out fortune lines in corpus/valid/ (when the current
directory has them) and random strings with tessera's tokenizer SPEC (through
`DUMP encode SPEC`, tests/reference/hf_tokenize_dump.cpp) and with
  tokenizers    Tokenizer.from_file(EXPORT_DIR/tokenizer.json).encode(text, add_special_tokens=False)
  transformers  AutoTokenizer.from_pretrained(EXPORT_DIR)(text)["input_ids"]: the defaults, so
                nothing may be added around the text; its eos must be config.json's, and so
                must its bos unless the special-token files were copied ("copied": they keep
                the bos their authors chose)
and requires the same ids. A SentencePiece model's control pieces (<s>, </s>, <unk>) become
special tokens of the export, which the libraries recognise when they are typed into a text
and SentencePiece does not, so for SPEC sentencepiece:... texts holding one are left out (and
counted). Exits 1 at the first mismatch, printing it.
"""
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PARAGRAPH = (
    "Grüße aus Köln! Привет, мир — съешь же ещё этих мягких булок.\n"
    "你好，世界。我们在北京学习中文；こんにちは、カタカナ。안녕하세요!\n"
    "مرحبا بالعالم، هذا اختبار ١٢٣. שלום עולם, זהו מבחן 42.\n"
    "नमस्ते दुनिया। Emoji: 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇩🇪 🤷🏻‍♀️\n"
    "Combining: e\u0301 a\u0308 o\u0302\u0323 \u1e9b\u0323 ﬁ ① Ⅻ ｶ \u212b\n"
    "Spaces:   three,\t\ttabs,      many   \n\n  indented line\r\n  end.  "
)


def texts():
    import hf_tokenizer_check as check  # its TEXTS and random_texts (imports tokenizers)
    out = [PARAGRAPH] + list(check.TEXTS)
    for path in sorted(glob.glob("corpus/valid/*.txt")):
        for raw in open(path, "rb").read().split(b"\n")[:300]:
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                pass
    out += [t.decode("utf-8") for t in check.random_texts(500, 11)]
    return out


def tessera_ids(dump, spec, items):
    lines = "".join(t.encode("utf-8").hex() + "\n" for t in items)
    out = subprocess.run([dump, "encode", spec], input=lines, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def main():
    mode, dump, spec, export = sys.argv[1:5]
    copied = sys.argv[5:] == ["copied"]
    items = texts()
    if spec.startswith("sentencepiece:"):
        tok_json = json.load(open(os.path.join(export, "tokenizer.json"), encoding="utf-8"))
        specials = [t["content"] for t in tok_json["added_tokens"] if t["special"]]
        kept = [t for t in items if not any(s in t for s in specials)]
        print("%s: %d of %d texts hold one of %s, left out" % (mode, len(items) - len(kept), len(items), specials))
        items = kept
    ours = tessera_ids(dump, spec, items)

    if mode == "tokenizers":
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(export, "tokenizer.json"))
        theirs = [e.ids for e in tok.encode_batch(items, add_special_tokens=False)]
    else:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(export)
        config = json.load(open(os.path.join(export, "config.json")))
        if tok.eos_token_id != config["eos_token_id"] or (not copied and tok.bos_token_id != config["bos_token_id"]):
            sys.exit("FAIL: AutoTokenizer bos/eos %s/%s, config.json %s/%s" % (
                tok.bos_token_id, tok.eos_token_id, config["bos_token_id"], config["eos_token_id"]))
        print("%s: %s, eos %r = %d, bos %r = %d" % (mode, type(tok).__name__, tok.eos_token,
              tok.eos_token_id, tok.bos_token, tok.bos_token_id))
        theirs = tok(items)["input_ids"]

    tokens = 0
    for text, a, b in zip(items, ours, theirs):
        if a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            sys.exit("FAIL %s: %r\n  tessera %s\n  library %s\n  (first difference at token %d)" % (
                mode, text[:200], a[max(0, at - 3):at + 5], b[max(0, at - 3):at + 5], at))
        tokens += len(a)
    print("%s: %d texts, %d tokens, ids equal to tessera's %s" % (mode, len(items), tokens, spec))


if __name__ == "__main__":
    main()
