"""tessera's hf: tokenizer against the tokenizers library itself.

usage: hf_tokenizer_check.py DUMP WORKDIR CACHE_DIR [TESSERA]

For every tokenizer.json (the published GPT-2, Pythia, BLOOM and LLaMA-3 ones when they are in
CACHE_DIR or can be downloaded into it, and always a few trained here with the library's own
trainer in each family's configuration), encodes the test texts with `DUMP encode hf:PATH`
(tests/reference/hf_tokenize_dump.cpp) and with tokenizers' encode(text,
add_special_tokens=False), and decodes with both. Invalid UTF-8 goes to tessera as bytes and to
tokenizers as the string tessera's utf8_repair makes of it (one U+FFFD per bad run). Exits 1 at
the first tokenizer with a mismatch, printing it. With TESSERA, the one-line texts also go
through `tessera tokenizer encode`, which must give the same ids.
"""
import glob
import json
import os
import random
import subprocess
import sys
import urllib.request

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

PUBLISHED = {
    "gpt2": "openai-community/gpt2",
    "pythia-70m": "EleutherAI/pythia-70m",
    "bloom-560m": "bigscience/bloom-560m",
    "llama-3-8b": "NousResearch/Meta-Llama-3-8B",
    "tinyllama-1.1b": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
}
EOD_NAMES = ["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"]
BLOOM_PATTERN = " ?[^(\\s|[.,!?…。，、।۔،])]+"
LLAMA3_PATTERN = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)

TEXTS = [
    "Hello world! It's a test. We're sure they've said I'm fine, you'll see, he'd agree.",
    "DON'T SHOUT'S 'quoted' isn’t ſ'ſ 'S 'LL 'Ve x'D",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Καλημέρα κόσμε!",
    "مرحبا بالعالم! هذا اختبار، أليس كذلك؟ ١٢٣٤٥",
    "שלום עולם, זהו מבחן. 12 תפוחים",
    "नमस्ते दुनिया। यह एक परीक्षण है ४२ बार।",
    "สวัสดีชาวโลก นี่คือการทดสอบ",
    "你好，世界。这是一个测试。我们在北京！",
    "こんにちは世界、これはテストです。カタカナとひらがな。",
    "안녕하세요 세계! 이것은 테스트입니다.",
    "Emoji: 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇩🇪 🤷🏻‍♀️ done",
    "Combining: e\u0301 a\u0308 A\u030a \u1e9b\u0323 o\u0302\u0323 ﬁ ① ² Ⅻ ｶ \u212b \u2126",
    "Numbers 12345 3.14159 1,000,000 0x1F 2026-11-23 ١٢٣ ४२ ๑๒๓",
    "a  b   c\t\td\n\ne \r\n f\u00a0g\u3000h\u2028i\u0085j\u180ek   \n  ",
    "   leading spaces and trailing ones   ",
    "\n\n\n",
    " ",
    "",
    "x",
    "<|endoftext|>",
    "Before<|endoftext|>after <|endoftext|> spaced <|endoftext|>\n",
    "Half <|endoftext| and <|endoftext|><|endoftext|> twice",
    "<s>BLOOM</s> tokens <pad> and <unk> here</s>",
    "<|begin_of_text|>LLaMA<|end_of_text|> <|reserved_special_token_3|>x",
    "Spaces:" + " " * 30 + "end" + " " * 7 + "x" + " " * 2 + "y\t \t z",
    "def f(x):\n    return x**2  # square\n\n\tif x >= 10: print('big')\n",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa !!!!!!!!!!!! ------ ......",
    "Punctuation… 。，、।۔، «quotes» „Anführungszeichen“ (brackets) [x] {y} |pipe|",
    "Newer Unicode: \U00031350\U00031351 \u1c89\u1c8a \U00010d40 end",
    "URL https://example.com/path?q=1&r=2#frag and mail a.b@c.org",
    "Mixed 日本語English한국어Русский123abc",
    "Fill [MASK] here,  [MASK]  and[MASK]x <sep> a<sep>b test testing attest test. ing sing  ing",
    "Line one\nline two\n\nthree 42 times, (quoted) 'x' -- dashes!",
]
INVALID = [
    b"abc\xff\xfedef",
    b"\xe2\x82 truncated euro",
    b"\xc0\xaf overlong slash",
    b"\xed\xa0\x80 surrogate",
    b"\xf4\x90\x80\x80 above U+10FFFF",
    b"ok \xe6\x97\xa5\xe6\x9c",
    b"\x80\x80\x80 continuation run <|endoftext|>\xff",
]


def random_texts(count, seed):
    """Random code points from every plane, whitespace of every kind, contractions, special
    tokens and combining marks: where regex and normalization tables of different Unicode
    versions would show."""
    rng = random.Random(seed)
    ranges = [(0x20, 0x7F), (0xA0, 0x2000), (0x2000, 0x3100), (0x3100, 0xA000), (0xA000, 0xD800),
              (0xE000, 0x10000), (0x10000, 0x32400), (0xE0000, 0xE0100)]
    spaces = " \t\n\r\u00a0\u3000\u2028\u0085\u180e\u200b"
    pieces = ["'s", "'T", "'ll", "'\u017f", "<|endoftext|>", "</s>", "<|end_of_text|>", "e\u0301",
              "\u0301", "123456", "...", "\u2026", "[MASK]", " <sep> ", "testing"]
    texts = []
    for _ in range(count):
        out = []
        for _ in range(rng.randrange(1, 60)):
            r = rng.random()
            if r < 0.15:
                out.append(rng.choice(spaces) * rng.randrange(1, 4))
            elif r < 0.3:
                out.append(rng.choice(pieces))
            else:
                lo, hi = rng.choice(ranges)
                out.append(chr(rng.randrange(lo, hi)))
        texts.append("".join(out).encode("utf-8"))
    return texts


def utf8_repair(data):
    """data::utf8_repair: every maximal run of ill-formed bytes becomes one U+FFFD."""
    out, i, bad = [], 0, False
    while i < len(data):
        n = 0
        b0 = data[i]
        if b0 < 0x80:
            n = 1
        else:
            lo, hi = 0x80, 0xBF
            if 0xC2 <= b0 <= 0xDF:
                n = 2
            elif 0xE0 <= b0 <= 0xEF:
                n = 3
                lo = 0xA0 if b0 == 0xE0 else lo
                hi = 0x9F if b0 == 0xED else hi
            elif 0xF0 <= b0 <= 0xF4:
                n = 4
                lo = 0x90 if b0 == 0xF0 else lo
                hi = 0x8F if b0 == 0xF4 else hi
            if n and (i + n > len(data) or not lo <= data[i + 1] <= hi or
                      any(not 0x80 <= c <= 0xBF for c in data[i + 2:i + n])):
                n = 0
        if n == 0:
            if not bad:
                out.append("\ufffd")
            bad = True
            i += 1
            continue
        out.append(data[i:i + n].decode("utf-8"))
        bad = False
        i += n
    return "".join(out)


def corpus_lines(limit_bytes):
    lines, size = [], 0
    files = sorted(f for f in glob.glob("/usr/share/games/fortunes/**/*", recursive=True)
                   if os.path.isfile(f) and not f.endswith(".dat") and not os.path.islink(f))
    for path in files:
        for raw in open(path, "rb").read().split(b"\n"):
            if raw.strip() and raw != b"%":
                lines.append(raw)
                size += len(raw)
        if size > limit_bytes:
            break
    return lines


def fetch_published(cache_dir):
    found = {}
    for name, repo in PUBLISHED.items():
        path = os.path.join(cache_dir, name, "tokenizer.json")
        if not os.path.exists(path):
            url = "https://huggingface.co/%s/resolve/main/tokenizer.json" % repo
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    data = r.read()
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path + ".part", "wb") as f:
                    f.write(data)
                os.replace(path + ".part", path)
            except Exception as e:  # offline, or the hub refuses: train-only run
                print("published %s: not available (%s)" % (name, type(e).__name__))
                continue
        found["published " + name] = path
    return found


def rewrite(path, edit):
    tok = json.load(open(path, encoding="utf-8"))
    edit(tok)
    json.dump(tok, open(path, "w", encoding="utf-8"), ensure_ascii=False)


def train(workdir, corpus):
    """Tokenizers trained here, one per family configuration (and one with the rarer options)."""
    texts = [utf8_repair(t) for t in corpus] + TEXTS * 3
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    out = {}

    def fit(name, tok, specials, vocab_size=3000):
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      initial_alphabet=alphabet, show_progress=False)
        tok.train_from_iterator(texts, trainer)
        path = os.path.join(workdir, name + ".json")
        tok.save(path)
        out["trained " + name] = path
        return path

    # GPT-2: ByteLevel with its regex; <|endoftext|> matched in normalized text, as published.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    path = fit("gpt2", tok, ["<|endoftext|>"])
    rewrite(path, lambda j: [t.update(normalized=True) for t in j["added_tokens"]])

    # GPT-NeoX / Pythia: NFC, and runs of spaces as normal (non-special) added tokens.
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    path = fit("pythia", tok, ["<|endoftext|>", "<|padding|>"])
    tok = Tokenizer.from_file(path)
    tok.add_tokens([AddedToken(" " * n, normalized=True) for n in range(24, 1, -1)])
    tok.save(path)

    # BLOOM: Split on its regex (a nested class in Oniguruma syntax), ByteLevel without regex;
    # merges in the older "a b" string form.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(BLOOM_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    path = fit("bloom", tok, ["<unk>", "<s>", "</s>", "<pad>"])
    rewrite(path, lambda j: j["model"].update(merges=[" ".join(m) if isinstance(m, list) else m
                                                      for m in j["model"]["merges"]]))

    # LLaMA-3: Split on its regex, ByteLevel without regex, ignore_merges, BOS template.
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>"] + [
        "<|reserved_special_token_%d|>" % i for i in range(8)]
    path = fit("llama3", tok, specials)
    tok = Tokenizer.from_file(path)
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
    tok.save(path)
    rewrite(path, lambda j: j["model"].update(ignore_merges=True))

    # Rarer options: prefix space, NFKC in a Sequence, other Split behaviours, inverted
    # splits, lstrip/rstrip/single_word added tokens, a string pattern.
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.NFC()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("\\d+"), behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex("[.,;:!?()\\[\\]]"), behavior="merged_with_next"),
        pre_tokenizers.Split("\n", behavior="removed"),
        pre_tokenizers.Split(Regex("\\s+"), behavior="contiguous", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    path = fit("options", tok, ["</s>"], vocab_size=1500)
    tok = Tokenizer.from_file(path)
    tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, rstrip=True),
                            AddedToken("<sep>", single_word=True)])
    tok.add_tokens([AddedToken("test", single_word=True), AddedToken("ing", lstrip=True)])
    tok.save(path)

    # LLaMA-1/2, TinyLlama, Mistral: SentencePiece-style BPE over characters, byte fallback to
    # <0x00>..<0xFF> (vocab entries 3..258, not added tokens), spaces as U+2581. Trained on
    # Metaspace words so that merges stay inside words, as SentencePiece's do; a small
    # alphabet sends rarer characters to byte fallback. Then the two published layouts: the
    # legacy one (normalizer Prepend + Replace, no pre-tokenizer: a whole piece of text is one
    # BPE word) and the newer one (Metaspace pre-tokenizer, prepend_scheme "first").
    byte_tokens = ["<0x%02X>" % b for b in range(256)]
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=["<unk>", "<s>", "</s>"] +
                                  byte_tokens, limit_alphabet=300, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    trained = os.path.join(workdir, "llama2-trained.json")
    tok.save(trained)
    decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                 decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    # And the rarer options: Metaspace splitting, prepend_scheme "always", a Metaspace decoder,
    # unknown characters as one <unk> each instead of byte fallback.
    for name, normalizer, pre_tokenizer, fallback in [
            ("llama2", normalizers.Sequence([normalizers.Prepend("\u2581"),
                                             normalizers.Replace(" ", "\u2581")]), None, True),
            ("llama2-metaspace", None,
             pre_tokenizers.Metaspace(prepend_scheme="first", split=False), True),
            ("llama2-options", normalizers.NFKC(),
             pre_tokenizers.Metaspace(prepend_scheme="always", split=True), False)]:
        tok = Tokenizer.from_file(trained)
        tok.normalizer = normalizer
        tok.pre_tokenizer = pre_tokenizer
        tok.decoder = decoder if fallback else decoders.Sequence([
            decoders.ByteFallback(), decoders.Metaspace(prepend_scheme="always")])
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", 1)])
        path = os.path.join(workdir, name + ".json")
        tok.save(path)

        def edit(j):
            j["added_tokens"] = [dict(t, normalized=False, special=True)
                                 for t in j["added_tokens"] if t["content"] not in byte_tokens]
            j["model"].update(byte_fallback=fallback, fuse_unk=fallback, unk_token="<unk>")
        rewrite(path, edit)
        vocab = json.load(open(path, encoding="utf-8"))["model"]["vocab"]
        assert [vocab[t] for t in ["<unk>", "<s>", "</s>"] + byte_tokens] == list(range(259))
        out["trained " + name] = path
    return out


def run_dump(dump, mode, spec, lines):
    result = subprocess.run([dump, mode, spec], input="".join(l + "\n" for l in lines),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit("%s %s %s failed: %s" % (dump, mode, spec, result.stderr.strip()))
    return result.stdout.splitlines()


def check(dump, label, path, texts, tessera):
    ref = Tokenizer.from_file(path)
    ref.no_truncation()
    ref.no_padding()
    spec = "hf:" + path
    info = json.loads(subprocess.run([dump, "info", spec], capture_output=True, text=True,
                                     check=True).stdout)
    largest = max(ref.get_vocab(with_added_tokens=True).values())
    if info["vocab_size"] != largest + 1:
        print("%s: vocab_size %d, but the largest id in tokenizers is %d" % (
            label, info["vocab_size"], largest))
        return False
    eod = info["eod_id"]
    specials = {t.content: i for i, t in ref.get_added_tokens_decoder().items() if t.special}
    want_eod = next(specials[n] for n in EOD_NAMES if n in specials)
    if eod != want_eod:
        print("%s: eod_id %d, expected %d" % (label, eod, want_eod))
        return False
    got = [json.loads(l) for l in run_dump(dump, "encode", spec, [t.hex() for t in texts])]
    strings = [utf8_repair(t) for t in texts]
    want = [e.ids for e in ref.encode_batch(strings, add_special_tokens=False)]
    for text, g, w in zip(strings, got, want):
        if g != w:
            at = next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
            print("%s: ids differ for %r\n  at index %d: tessera %s\n            tokenizers %s" % (
                label, text[:200], at, g[max(0, at - 3):at + 6], w[max(0, at - 3):at + 6]))
            return False
    if tessera:
        lines = [(t, g) for t, g in zip(texts, got) if b"\n" not in t and b"\r" not in t]
        result = subprocess.run([tessera, "tokenizer", "encode", "--tokenizer", spec],
                                input=b"".join(t + b"\n" for t, _ in lines), capture_output=True)
        if result.returncode != 0:
            print("%s: tessera tokenizer encode failed: %s" % (label, result.stderr.decode()))
            return False
        for (text, g), out in zip(lines, result.stdout.decode().splitlines()):
            if json.loads(out) != g:
                print("%s: tessera tokenizer encode differs for %r" % (label, text[:100]))
                return False
    # Decode: what tessera encoded, then random ids (bytes cut mid-character included); both
    # without the end-of-document id, which tessera decodes to nothing.
    rng = random.Random(7)
    size = largest + 1
    sequences = [[i for i in ids if i != eod] for ids in want]
    sequences += [[rng.randrange(size) for _ in range(rng.randrange(1, 40))] for _ in range(200)]
    sequences = [[i for i in s if i != eod and ref.id_to_token(i) is not None] for s in sequences]
    decoded = run_dump(dump, "decode", spec, [json.dumps(s) for s in sequences])
    for s, hex_bytes in zip(sequences, decoded):
        mine = bytes.fromhex(hex_bytes).decode("utf-8", errors="replace")
        theirs = ref.decode(s, skip_special_tokens=False)
        if mine != theirs:
            print("%s: decode differs for %s\n  tessera    %r\n  tokenizers %r" % (
                label, s[:20], mine[:200], theirs[:200]))
            return False
    for s, hex_bytes in zip(sequences[:len(strings)], decoded):
        try:
            bytes.fromhex(hex_bytes).decode("utf-8")
        except UnicodeDecodeError:
            print("%s: decoding the ids of a text gave invalid UTF-8: %s" % (label, s[:20]))
            return False
    tokens = sum(len(w) for w in want)
    print("%s: %d texts, %d tokens, %d decodes identical" % (label, len(texts), tokens,
                                                             len(sequences)))
    return True


def main():
    dump, workdir, cache_dir = sys.argv[1:4]
    tessera = sys.argv[4] if len(sys.argv) > 4 else None
    os.makedirs(workdir, exist_ok=True)
    corpus = corpus_lines(3_000_000)
    tokenizers_json = fetch_published(cache_dir)
    tokenizers_json.update(train(workdir, corpus))
    rng = random.Random(11)
    sample = rng.sample(corpus, min(2000, len(corpus)))
    texts = [t.encode("utf-8") for t in TEXTS] + INVALID + sample
    # Whole documents too: several fortune lines joined, as prepare would pass them.
    texts += [b"\n".join(sample[i:i + 12]) for i in range(0, 600, 12)]
    texts += random_texts(3000, 13)
    failed = [label for label, path in sorted(tokenizers_json.items())
              if not check(dump, label, path, texts, tessera)]
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    print("all %d tokenizers match tokenizers %s" % (len(tokenizers_json),
                                                     __import__("tokenizers").__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
