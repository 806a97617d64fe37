// The hf: tokenizer's class, shared by its two source files: hf_tokenizer_parse.cpp reads a
// tokenizer.json into it (model, added tokens, normalizer, pre-tokenizer, decoder), and
// hf_tokenizer.cpp runs it (encode, decode). Internal to data/.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/hf_added_tokens.h"
#include "data/hf_bpe.h"
#include "data/hf_decoder.h"
#include "data/hf_normalizer.h"
#include "data/hf_regex.h"
#include "data/tokenizer.h"
#include "runtime/error.h"

namespace tessera::data::hf_internal {

using nlohmann::json;

// The pattern the library's ByteLevel pre-tokenizer uses when use_regex is true.
constexpr const char* kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// End-of-text tokens by the names the usual families give them, in order of preference.
constexpr const char* kEodNames[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// The Metaspace pre-tokenizer: spaces become `replacement`, which is put before the text
// (always, or only before the text's first piece, or never), then optionally split before
// every replacement.
struct Metaspace {
  enum class Prepend { kAlways, kFirst, kNever };
  std::string replacement = "\u2581";
  Prepend prepend = Prepend::kAlways;
  bool split = true;
};

// One pre-tokenizer step: a Split, or the ByteLevel step (always last; its byte mapping is the
// BPE model's business, so here it only adds the prefix space and splits with its regex).
struct PreTokenizerStep {
  std::unique_ptr<HfRegex> regex;  // null: ByteLevel without use_regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
};

class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(std::string path, const json& root);

  std::vector<int32_t> encode(std::string_view text) const override {
    thread_local std::string repaired;
    utf8_repair(text, repaired);
    std::vector<int32_t> ids;
    ids.reserve(repaired.size() / 3 + 1);
    raw_tokens_.split(repaired, [&](std::string_view piece, int32_t token) {
      if (token >= 0) {
        ids.push_back(token);
        return;
      }
      std::string buffer;
      const std::string_view normalized = normalizer_.apply(piece, buffer);
      normalized_tokens_.split(normalized, [&](std::string_view inner, int32_t inner_token) {
        if (inner_token >= 0) {
          ids.push_back(inner_token);
        } else if (metaspace_) {
          // The library's "first" asks whether the piece starts at offset 0 of the input.
          const bool first = piece.data() == repaired.data() && inner.data() == normalized.data();
          metaspace_split(inner, first, ids);
        } else {
          pre_tokenize(inner, 0, ids);
        }
      });
    });
    return ids;
  }

  std::string decode(const int32_t* ids, size_t count) const override {
    if (!byte_level_) {
      std::vector<std::string> tokens;
      tokens.reserve(count);
      for (size_t i = 0; i < count; ++i) {
        TS_ASSERT(ids[i] >= 0 && ids[i] < vocab_size(), "hf tokenizer: id out of range");
        if (ids[i] != eod_id_ && token_present_[ids[i]]) tokens.push_back(token_bytes_[ids[i]]);
      }
      return hf_decode_chain(decoder_, std::move(tokens));
    }
    std::string text;
    for (size_t i = 0; i < count; ++i) {
      TS_ASSERT(ids[i] >= 0 && ids[i] < vocab_size(), "hf tokenizer: id out of range");
      if (ids[i] != eod_id_) text.append(token_bytes_[ids[i]]);
    }
    return text;
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(token_bytes_.size()); }
  int32_t eod_id() const override { return eod_id_; }
  std::string name() const override { return "hf:" + path_; }

 private:
  HfBpeConfig parse_model(const json& model) const;
  std::map<int32_t, HfAddedToken> parse_added_tokens(const json& entries, const HfBpeConfig& model);
  void parse_normalizer(const json& node);
  void parse_pre_tokenizer(const json& node);
  Metaspace parse_metaspace(const json& node, const std::string& field) const;
  void parse_decoder(const json& node);
  void metaspace_split(std::string_view text, bool first, std::vector<int32_t>& ids) const;
  void add_step(const json& node, bool last);
  void pre_tokenize(std::string_view text, size_t step, std::vector<int32_t>& ids) const;
  std::string error_prefix() const { return "tokenizer \"hf:" + path_ + "\": "; }

  std::string path_;
  HfNormalizer normalizer_;
  std::vector<PreTokenizerStep> steps_;
  bool byte_level_ = true;  // false: SentencePiece-style (characters, ▁, byte fallback)
  std::optional<Metaspace> metaspace_;  // SentencePiece-style: the pre-tokenizer, if any
  std::vector<HfDecoderStep> decoder_;  // SentencePiece-style: the decoder chain
  std::unique_ptr<HfBpe> bpe_;
  HfAddedTokens raw_tokens_;         // normalized=false: matched in the raw text
  HfAddedTokens normalized_tokens_;  // normalized=true: matched in the normalized text
  // id -> what the ByteLevel decoder gives for it; SentencePiece-style: the token's string
  std::vector<std::string> token_bytes_;
  std::vector<bool> token_present_;  // SentencePiece-style: false for ids with no token
  int32_t eod_id_ = -1;
};

}  // namespace tessera::data::hf_internal
