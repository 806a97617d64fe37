// data/hf_*: SentencePiece-style tokenizer.json files (LLaMA-1/2, TinyLlama, Mistral): a BPE
// over characters with <0xNN> byte fallback, U+2581 for the space, and the decoder chain
// Replace, ByteFallback, Fuse, Strip. Tiny handwritten files whose ids can be worked out by
// hand; tests/reference/hf_tokenizer_check.py compares trained ones with the library.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/hf_decoder.h"
#include "data/tokenizer.h"
#include "runtime/error.h"

namespace tessera::data {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

constexpr const char* kMark = "\u2581";  // ▁
constexpr int32_t kFirstByte = 3;        // <0x00>; <0xNN> is kFirstByte + NN

json added(int32_t id, const char* content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

// LLaMA-2's layout: <unk> <s> </s>, the 256 byte tokens, then ▁ a b c ▁a ab ▁ab (259..265).
// Merges in priority order: a+b, ▁+ab, ▁+a. The legacy normalizer (Prepend ▁, Replace " "
// with ▁), no pre-tokenizer, and LLaMA-2's decoder.
json llama_tokenizer() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = kFirstByte + b;
  }
  const std::string m = kMark;
  const std::string pieces[] = {m, "a", "b", "c", m + "a", "ab", m + "ab"};
  for (int i = 0; i < 7; ++i) vocab[pieces[i]] = 259 + i;
  json root;
  root["version"] = "1.0";
  root["added_tokens"] = json::array({added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")});
  root["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       json::array({{{"type", "Prepend"}, {"prepend", m}},
                    {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", m}}})}};
  root["pre_tokenizer"] = nullptr;
  root["post_processor"] = nullptr;
  root["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       json::array({{{"type", "Replace"}, {"pattern", {{"String", m}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  root["model"] = {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", "<unk>"},
                   {"fuse_unk", true},
                   {"byte_fallback", true},
                   {"vocab", vocab},
                   {"merges", json::array({"a b", m + " ab", m + " a"})}};
  return root;
}

// The newer layout of the same tokenizer: no normalizer, a Metaspace pre-tokenizer that puts
// ▁ only before the start of the text.
json metaspace_tokenizer() {
  json root = llama_tokenizer();
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", kMark}, {"prepend_scheme", "first"}, {"split", false}};
  return root;
}

class HfSentencePieceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "tessera_hf_sp_" + std::to_string(::getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& contents) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }
  std::unique_ptr<Tokenizer> load(const json& root) {
    return tokenizer_create("hf:" + write("tokenizer.json", root.dump()));
  }
  // The one-line UserError that loading `root` gives.
  std::string load_error(const json& root) {
    const std::string path = write("bad.json", root.dump());
    try {
      tokenizer_create("hf:" + path);
    } catch (const UserError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      return what;
    }
    ADD_FAILURE() << "expected a UserError";
    return "";
  }
  static std::string decode(const Tokenizer& tok, const Ids& ids) {
    return tok.decode(ids.data(), ids.size());
  }

  std::string dir_;
};

TEST_F(HfSentencePieceTest, LeadingMarkAndMergesOverCharacters) {
  const auto tok = load(llama_tokenizer());
  EXPECT_EQ(tok->vocab_size(), 266);
  EXPECT_EQ(tok->eod_id(), 2);
  // "▁ab": a+b first, then ▁+ab (▁+a ranks below both).
  EXPECT_EQ(tok->encode("ab"), Ids{265});
  EXPECT_EQ(tok->encode("ca"), (Ids{259, 262, 260}));
  // Every space is a ▁, and a run of them stays a run.
  EXPECT_EQ(tok->encode("ab  a"), (Ids{265, 259, 263}));
  EXPECT_EQ(tok->encode(""), Ids{});
  // Legacy layout: the normalizer runs on each piece between special tokens, so the piece
  // after <s> gets its own ▁.
  EXPECT_EQ(tok->encode("<s>ab</s>"), (Ids{1, 265, 2}));
}

TEST_F(HfSentencePieceTest, UnseenCharacterFallsBackToItsBytes) {
  const auto tok = load(llama_tokenizer());
  // é is not in the vocab: its UTF-8 bytes C3 A9 as <0xC3> <0xA9>.
  EXPECT_EQ(tok->encode("ab \xC3\xA9"), (Ids{265, 259, kFirstByte + 0xC3, kFirstByte + 0xA9}));
  // A four-byte emoji is four byte tokens.
  EXPECT_EQ(tok->encode("\xF0\x9F\x91\x8D"),
            (Ids{259, kFirstByte + 0xF0, kFirstByte + 0x9F, kFirstByte + 0x91, kFirstByte + 0x8D}));

  // Without byte_fallback an unseen character is <unk>; fuse_unk makes a run one <unk>.
  json root = llama_tokenizer();
  root["model"]["byte_fallback"] = false;
  EXPECT_EQ(load(root)->encode("a\xC3\xA9\xC3\xA9"
                               "b"),
            (Ids{263, 0, 261}));
  root["model"]["fuse_unk"] = false;
  EXPECT_EQ(load(root)->encode("a\xC3\xA9\xC3\xA9"
                               "b"),
            (Ids{263, 0, 0, 261}));
}

TEST_F(HfSentencePieceTest, DecodeJoinsBytesAndStripsTheLeadingSpace) {
  const auto tok = load(llama_tokenizer());
  // ▁ab ▁ <0xC3> <0xA9>: " ab" " " "é", fused, one leading space stripped.
  EXPECT_EQ(decode(*tok, {265, 259, kFirstByte + 0xC3, kFirstByte + 0xA9}), "ab \xC3\xA9");
  EXPECT_EQ(decode(*tok, tok->encode("ab  a \xF0\x9F\x91\x8D c")), "ab  a \xF0\x9F\x91\x8D c");
  // Only one space is stripped.
  EXPECT_EQ(decode(*tok, {259, 259, 260}), " a");
  // Bytes that are not UTF-8 give one U+FFFD per byte, as the library's ByteFallback does.
  EXPECT_EQ(decode(*tok, {kFirstByte + 0xC3}), "\xEF\xBF\xBD");
  EXPECT_EQ(decode(*tok, {260, kFirstByte + 0xF0, kFirstByte + 0x9F, 261}),
            "a\xEF\xBF\xBD\xEF\xBF\xBD"
            "b");
  // Special tokens decode as their text; the end-of-document id as nothing.
  EXPECT_EQ(decode(*tok, {1, 265, 2}), "<s> ab");
}

// Details of the library's decoders, checked against tokenizers 0.23.
TEST(HfDecoderChain, FollowsTheLibrarysDecoders) {
  using Kind = HfDecoderStep::Kind;
  HfDecoderStep fallback;
  fallback.kind = Kind::kByteFallback;
  // u8::from_str_radix takes "+F" and lower-case digits; 0F E9 is not UTF-8: one U+FFFD a byte.
  EXPECT_EQ(hf_decode_chain({fallback}, {"<0x+F>", "<0xe9>", "x", "<0xC3>", "<0xA9>"}),
            "\xEF\xBF\xBD\xEF\xBF\xBDx\xC3\xA9");
  // Metaspace drops every ▁ of the first token, not only its first.
  HfDecoderStep metaspace;
  metaspace.kind = Kind::kMetaspace;
  metaspace.pattern = kMark;
  EXPECT_EQ(hf_decode_chain({metaspace}, {"\u2581a\u2581b", "\u2581c\u2581"}), "ab c ");
  metaspace.prepend = false;
  EXPECT_EQ(hf_decode_chain({metaspace}, {"\u2581a\u2581b", "\u2581c"}), " a b c");
  // Strip works on each token: up to `start` leading and `stop` trailing characters.
  HfDecoderStep strip;
  strip.kind = Kind::kStrip;
  strip.start = 2;
  strip.stop = 1;
  EXPECT_EQ(hf_decode_chain({strip}, {"   a  ", " b"}), " a b");
}

TEST_F(HfSentencePieceTest, MetaspacePrependsOnlyAtTheStartOfTheText) {
  const auto tok = load(metaspace_tokenizer());
  EXPECT_EQ(tok->encode("ab"), Ids{265});
  EXPECT_EQ(tok->encode("ab ab"), (Ids{265, 265}));
  // prepend_scheme "first": the piece after <s> does not start the text, so no ▁.
  EXPECT_EQ(tok->encode("<s>ab"), (Ids{1, 264}));
  EXPECT_EQ(tok->encode("<s> ab"), (Ids{1, 265}));

  json root = metaspace_tokenizer();
  root["pre_tokenizer"]["prepend_scheme"] = "always";
  EXPECT_EQ(load(root)->encode("<s>ab"), (Ids{1, 265}));
  root["pre_tokenizer"]["prepend_scheme"] = "never";
  EXPECT_EQ(load(root)->encode("ab"), Ids{264});
}

TEST_F(HfSentencePieceTest, UnsupportedPartsGiveOneLineErrors) {
  json root = llama_tokenizer();
  root["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", " +"}};
  EXPECT_NE(load_error(root).find("normalizer.pattern"), std::string::npos);
  root = llama_tokenizer();
  root["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_NE(load_error(root).find("pre_tokenizer \"Whitespace\" is not supported"),
            std::string::npos);
  root = llama_tokenizer();
  root["decoder"]["decoders"][3] = {{"type", "CTC"}};
  EXPECT_NE(load_error(root).find("decoder \"CTC\" is not supported"), std::string::npos);
  root = llama_tokenizer();
  root["decoder"] = nullptr;
  EXPECT_NE(load_error(root).find("decoder \"null\""), std::string::npos);
  root = metaspace_tokenizer();
  root["pre_tokenizer"]["prepend_scheme"] = "sometimes";
  EXPECT_NE(load_error(root).find("pre_tokenizer.prepend_scheme"), std::string::npos);
  root = llama_tokenizer();
  root["decoder"] = {{"type", "ByteLevel"}};
  EXPECT_NE(load_error(root).find("model.byte_fallback"), std::string::npos);
}

}  // namespace
}  // namespace tessera::data
