// encode() follows the tokenizers library's Tokenizer::encode(text, add_special_tokens=false)
// stage by stage:
//   1. added tokens with normalized=false are cut out of the raw text,
//   2. each remaining piece is normalized, then added tokens with normalized=true are cut out,
//   3. the pre-tokenizer steps split what is left into words,
//   4. the BPE model turns each word's bytes into ids.
// The byte-level mapping (bytes shown as printable characters) never materialises: the BPE
// model works on raw bytes and decode() maps every token back to bytes once, at load time.
// SentencePiece-style files (LLaMA-1/2, Mistral: no ByteLevel, `▁` for the space, <0xNN> byte
// fallback) run the same stages with a character-level BPE, an optional Metaspace
// pre-tokenizer, and decode through the library's decoder chain (hf_decoder.h).
#include "data/hf_tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "data/hf_added_tokens.h"
#include "data/hf_bpe.h"
#include "data/hf_decoder.h"
#include "data/hf_normalizer.h"
#include "data/hf_regex.h"
#include "runtime/error.h"

namespace tessera::data {
namespace {

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

std::string type_of(const json& node) {
  if (!node.is_object() || !node.contains("type") || !node["type"].is_string()) return "";
  return node["type"].get<std::string>();
}

bool flag(const json& node, const char* key, bool fallback) {
  if (!node.contains(key) || node[key].is_null()) return fallback;
  return node[key].get<bool>();
}

HfTokenizer::HfTokenizer(std::string path, const json& root) : path_(std::move(path)) {
  if (!root.is_object()) throw UserError(error_prefix() + "the top level is not a JSON object");
  const auto member = [&](const char* key) { return root.contains(key) ? root[key] : json(); };
  HfBpeConfig model = parse_model(member("model"));
  // A ByteLevel decoder makes a byte-level file; anything else a SentencePiece-style one.
  byte_level_ = type_of(member("decoder")) == "ByteLevel";
  model.byte_level = byte_level_;
  if (byte_level_ && model.byte_fallback)
    throw UserError(error_prefix() +
                    "model.byte_fallback is not supported with a ByteLevel decoder");
  if (!byte_level_) parse_decoder(member("decoder"));
  parse_normalizer(member("normalizer"));
  parse_pre_tokenizer(member("pre_tokenizer"));
  bpe_ = std::make_unique<HfBpe>(model, "tokenizer \"hf:" + path_ + "\"");
  const std::map<int32_t, HfAddedToken> added = parse_added_tokens(
      root.contains("added_tokens") ? root["added_tokens"] : json::array(), model);

  int32_t max_id = -1;
  for (const auto& [token, id] : model.vocab) max_id = std::max(max_id, id);
  if (!added.empty()) max_id = std::max(max_id, added.rbegin()->first);
  token_bytes_.assign(max_id + 1, std::string());
  token_present_.assign(max_id + 1, false);
  const auto decoded = [&](const std::string& token) {
    std::string bytes;
    if (!byte_level_) return token;
    return hf_token_bytes(token, bytes) ? bytes : token;  // the ByteLevel decoder's fallback
  };
  for (const auto& [token, id] : model.vocab) {
    token_bytes_[id] = decoded(token);
    token_present_[id] = true;
  }
  for (const auto& [id, token] : added) {
    token_bytes_[id] = decoded(byte_level_ ? token.match : token.content);
    token_present_[id] = true;
  }

  for (const char* name : kEodNames) {
    for (const auto& [id, token] : added) {
      if (token.special && token.content == name && eod_id_ < 0) eod_id_ = id;
    }
  }
  if (eod_id_ < 0)
    throw UserError(error_prefix() +
                    "no end-of-text token among the special added tokens (looked for "
                    "<|endoftext|>, <|end_of_text|>, </s>, <eos>)");
}

HfBpeConfig HfTokenizer::parse_model(const json& model) const {
  const std::string prefix = error_prefix();
  if (!model.is_object() || !model.contains("vocab") || !model.contains("merges"))
    throw UserError(prefix + "no BPE model (model.vocab and model.merges) in the file");
  const std::string type = type_of(model);
  if (!type.empty() && type != "BPE")
    throw UserError(prefix + "model type \"" + type + "\" is not supported (only BPE)");
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      model["dropout"].get<double>() != 0.0)
    throw UserError(prefix + "BPE dropout is not supported (encoding would be random)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty())
      throw UserError(prefix + "BPE " + key + " is not supported");
  }

  HfBpeConfig config;
  for (const auto& [token, id] : model["vocab"].items()) {
    config.vocab.emplace_back(token, id.get<int32_t>());
    if (config.vocab.back().second < 0)
      throw UserError(prefix + "negative id for \"" + token + "\"");
  }
  for (const json& merge : model["merges"]) {
    if (merge.is_array() && merge.size() == 2) {
      config.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
      continue;
    }
    const std::string line = merge.get<std::string>();
    if (line.starts_with("#version")) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
      throw UserError(prefix + "merge \"" + line + "\" is not two tokens separated by a space");
    config.merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  if (model.contains("unk_token") && !model["unk_token"].is_null())
    config.unk_token = model["unk_token"].get<std::string>();
  config.fuse_unk = flag(model, "fuse_unk", false);
  config.byte_fallback = flag(model, "byte_fallback", false);
  config.ignore_merges = flag(model, "ignore_merges", false);
  return config;
}

// Ids as the library assigns them on loading (the file's "id" is not read): the vocab's id
// when the content is in the vocab, else the next id after the vocab's entry count, in file
// order; a content listed twice keeps its first id and its last definition.
std::map<int32_t, HfAddedToken> HfTokenizer::parse_added_tokens(const json& entries,
                                                                const HfBpeConfig& model) {
  std::unordered_map<std::string, int32_t> vocab_ids(model.vocab.begin(), model.vocab.end());
  std::unordered_map<std::string, int32_t> added_ids;
  std::map<int32_t, HfAddedToken> added;
  int32_t next_id = static_cast<int32_t>(model.vocab.size());
  for (const json& entry : entries) {
    HfAddedToken token;
    token.content = entry.at("content").get<std::string>();
    token.single_word = flag(entry, "single_word", false);
    token.lstrip = flag(entry, "lstrip", false);
    token.rstrip = flag(entry, "rstrip", false);
    token.normalized = flag(entry, "normalized", true);
    token.special = flag(entry, "special", false);
    if (token.content.empty()) continue;
    if (auto it = added_ids.find(token.content); it != added_ids.end()) {
      token.id = it->second;
    } else if (auto jt = vocab_ids.find(token.content); jt != vocab_ids.end()) {
      token.id = jt->second;
    } else {
      token.id = next_id++;
    }
    added_ids[token.content] = token.id;
    added[token.id] = token;
  }
  std::vector<HfAddedToken> raw, normalized;
  for (auto& [id, token] : added) {
    std::string buffer;
    token.match =
        token.normalized ? std::string(normalizer_.apply(token.content, buffer)) : token.content;
    (token.normalized ? normalized : raw).push_back(token);
  }
  raw_tokens_ = HfAddedTokens(raw);
  normalized_tokens_ = HfAddedTokens(normalized);
  return added;
}

void HfTokenizer::parse_normalizer(const json& node) {
  if (node.is_null()) return;
  const std::string type = type_of(node);
  if (type == "Sequence") {
    for (const json& inner : node.at("normalizers")) parse_normalizer(inner);
    return;
  }
  if (type == "Prepend") {
    normalizer_.add_prepend(node.at("prepend").get<std::string>());
    return;
  }
  if (type == "Replace") {
    const json& pattern = node.at("pattern");
    if (!pattern.contains("String") || pattern["String"].get<std::string>().empty())
      throw UserError(error_prefix() +
                      "normalizer Replace: only a non-empty String pattern is supported "
                      "(normalizer.pattern)");
    normalizer_.add_replace(pattern["String"].get<std::string>(),
                            node.at("content").get<std::string>());
    return;
  }
  if (!normalizer_.add(type))
    throw UserError(error_prefix() + "normalizer \"" + type +
                    "\" is not supported (NFC, NFD, NFKC, NFKD, Prepend, Replace and Sequences "
                    "of them are)");
}

// The library's Metaspace deserialisation: prepend_scheme, "always" when absent; the older
// add_prefix_space, when false, must come with prepend_scheme "never" (the library refuses the
// file otherwise).
Metaspace HfTokenizer::parse_metaspace(const json& node, const std::string& field) const {
  Metaspace m;
  m.replacement = node.at("replacement").get<std::string>();
  if (m.replacement.empty() || hf_code_point_at(m.replacement, 0).second != m.replacement.size())
    throw UserError(error_prefix() + field + ".replacement must be one character");
  if (node.contains("prepend_scheme") && !node["prepend_scheme"].is_null()) {
    const std::string scheme = node["prepend_scheme"].get<std::string>();
    if (scheme == "always") {
      m.prepend = Metaspace::Prepend::kAlways;
    } else if (scheme == "first") {
      m.prepend = Metaspace::Prepend::kFirst;
    } else if (scheme == "never") {
      m.prepend = Metaspace::Prepend::kNever;
    } else {
      throw UserError(error_prefix() + field + ".prepend_scheme \"" + scheme +
                      "\" is not supported (always, first, never)");
    }
  }
  if (!flag(node, "add_prefix_space", true) && m.prepend != Metaspace::Prepend::kNever)
    throw UserError(error_prefix() + field +
                    ".add_prefix_space false does not match its prepend_scheme");
  m.split = flag(node, "split", true);
  return m;
}

void HfTokenizer::parse_decoder(const json& node) {
  const std::string type = type_of(node);
  const std::string context = error_prefix() + "decoder " + type;
  HfDecoderStep step;
  if (type == "Sequence") {
    for (const json& inner : node.at("decoders")) parse_decoder(inner);
    return;
  } else if (type == "Replace") {
    const json& pattern = node.at("pattern");
    if (!pattern.contains("String") || pattern["String"].get<std::string>().empty())
      throw UserError(context +
                      ": only a non-empty String pattern is supported "
                      "(decoder.pattern)");
    step.kind = HfDecoderStep::Kind::kReplace;
    step.pattern = pattern["String"].get<std::string>();
    step.content = node.at("content").get<std::string>();
  } else if (type == "ByteFallback") {
    step.kind = HfDecoderStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = HfDecoderStep::Kind::kFuse;
  } else if (type == "Strip") {
    const std::string content = node.at("content").get<std::string>();
    if (content.empty() || hf_code_point_at(content, 0).second != content.size())
      throw UserError(context + ": decoder.content must be one character");
    step.kind = HfDecoderStep::Kind::kStrip;
    step.strip_char = hf_code_point_at(content, 0).first;
    step.start = node.at("start").get<size_t>();
    step.stop = node.at("stop").get<size_t>();
  } else if (type == "Metaspace") {
    const Metaspace m = parse_metaspace(node, "decoder");
    step.kind = HfDecoderStep::Kind::kMetaspace;
    step.pattern = m.replacement;
    step.prepend = m.prepend != Metaspace::Prepend::kNever;
  } else {
    throw UserError(error_prefix() + "decoder \"" + (node.is_null() ? "null" : type) +
                    "\" is not supported (ByteLevel; or Replace, ByteFallback, Fuse, Strip, "
                    "Metaspace and Sequences of them)");
  }
  decoder_.push_back(std::move(step));
}

void HfTokenizer::parse_pre_tokenizer(const json& node) {
  const std::string type = type_of(node);
  if (!byte_level_) {
    if (node.is_null()) return;
    if (type == "Metaspace") {
      metaspace_ = parse_metaspace(node, "pre_tokenizer");
      return;
    }
    throw UserError(error_prefix() + "pre_tokenizer \"" + type +
                    "\" is not supported without a ByteLevel decoder (null or Metaspace are)");
  }
  if (type == "ByteLevel") {
    add_step(node, true);
  } else if (type == "Sequence") {
    const json& inner = node.at("pretokenizers");
    for (size_t i = 0; i < inner.size(); ++i) add_step(inner[i], i + 1 == inner.size());
  } else {
    throw UserError(error_prefix() + "pre_tokenizer \"" + (node.is_null() ? "null" : type) +
                    "\" is not supported (ByteLevel, or a Sequence of Splits ending in "
                    "ByteLevel)");
  }
}

void HfTokenizer::add_step(const json& node, bool last) {
  const std::string type = type_of(node);
  const std::string context = error_prefix() + "pre_tokenizer " + type;
  PreTokenizerStep step;
  if (type == "ByteLevel") {
    if (!last) throw UserError(context + " must be the last pre-tokenizer of the Sequence");
    step.add_prefix_space = flag(node, "add_prefix_space", true);
    if (flag(node, "use_regex", true))
      step.regex =
          std::make_unique<HfRegex>(hf_regex_translate(kByteLevelPattern, context), false, context);
  } else if (type == "Split") {
    if (last) throw UserError(error_prefix() + "the pre_tokenizer Sequence must end in ByteLevel");
    const json& pattern = node.at("pattern");
    const std::string behavior = node.at("behavior").get<std::string>();
    static const std::pair<const char*, SplitBehavior> kBehaviors[] = {
        {"Removed", SplitBehavior::kRemoved},
        {"Isolated", SplitBehavior::kIsolated},
        {"MergedWithPrevious", SplitBehavior::kMergedWithPrevious},
        {"MergedWithNext", SplitBehavior::kMergedWithNext},
        {"Contiguous", SplitBehavior::kContiguous}};
    const auto found = std::find_if(std::begin(kBehaviors), std::end(kBehaviors),
                                    [&](const auto& b) { return behavior == b.first; });
    if (found == std::end(kBehaviors))
      throw UserError(context + ": unknown behavior \"" + behavior + "\"");
    step.behavior = found->second;
    step.invert = flag(node, "invert", false);
    if (pattern.contains("Regex")) {
      const std::string onig = pattern["Regex"].get<std::string>();
      step.regex = std::make_unique<HfRegex>(hf_regex_translate(onig, context), false, context);
    } else {
      step.regex =
          std::make_unique<HfRegex>(pattern.at("String").get<std::string>(), true, context);
    }
  } else {
    throw UserError(error_prefix() + "pre_tokenizer \"" + type +
                    "\" is not supported inside a Sequence (Split and ByteLevel are)");
  }
  steps_.push_back(std::move(step));
}

// The library's NormalizedString::split over the (offsets, is_match) list of Pattern::
// find_matches; calls emit(piece) for every piece it keeps, in order.
template <typename Emit>
void split_by(const HfRegex& regex, SplitBehavior behavior, bool invert, std::string_view text,
              Emit&& emit) {
  if (behavior == SplitBehavior::kIsolated) {  // the common case, without the list
    size_t previous = 0;
    hf_regex_find_each(regex, text, [&](size_t start, size_t end) {
      if (previous != start) emit(text.substr(previous, start - previous));
      emit(text.substr(start, end - start));
      previous = end;
    });
    if (previous != text.size()) emit(text.substr(previous));
    return;
  }
  struct Span {
    size_t start, end;
    bool match;
  };
  std::vector<Span> spans;
  size_t previous = 0;
  hf_regex_find_each(regex, text, [&](size_t start, size_t end) {
    if (previous != start) spans.push_back({previous, start, invert});
    spans.push_back({start, end, !invert});
    previous = end;
  });
  if (previous != text.size()) spans.push_back({previous, text.size(), invert});

  std::vector<Span> kept;  // .match now means "remove"
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      kept = spans;
      break;
    case SplitBehavior::kContiguous:
      for (const Span& s : spans) {
        if (s.match == previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back({s.start, s.end, false});
        }
        previous_match = s.match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.match && !previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back({s.start, s.end, false});
        }
        previous_match = s.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto s = spans.rbegin(); s != spans.rend(); ++s) {
        if (s->match && !previous_match && !kept.empty()) {
          kept.back().start = s->start;
        } else {
          kept.push_back({s->start, s->end, false});
        }
        previous_match = s->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    case SplitBehavior::kIsolated:
      break;
  }
  for (const Span& s : kept)
    if (!s.match) emit(text.substr(s.start, s.end - s.start));
}

// The library's Metaspace::pre_tokenize on one piece of normalized text.
void HfTokenizer::metaspace_split(std::string_view text, bool first,
                                  std::vector<int32_t>& ids) const {
  const std::string& mark = metaspace_->replacement;
  std::string word;
  word.reserve(text.size() + 2 * mark.size());
  const bool prepend = metaspace_->prepend == Metaspace::Prepend::kAlways ||
                       (metaspace_->prepend == Metaspace::Prepend::kFirst && first);
  for (char c : text) {
    if (c == ' ') {
      word += mark;
    } else {
      word.push_back(c);
    }
  }
  if (prepend && !word.starts_with(mark)) word.insert(0, mark);
  if (!metaspace_->split) {
    bpe_->encode_word(word, ids);
    return;
  }
  // MergedWithNext on the replacement: every piece but the first starts with it.
  size_t start = 0;
  for (size_t at = word.find(mark, 1); at != std::string::npos; at = word.find(mark, at + 1)) {
    bpe_->encode_word(std::string_view(word).substr(start, at - start), ids);
    start = at;
  }
  bpe_->encode_word(std::string_view(word).substr(start), ids);
}

void HfTokenizer::pre_tokenize(std::string_view text, size_t step,
                               std::vector<int32_t>& ids) const {
  if (text.empty()) return;
  if (step == steps_.size()) {
    bpe_->encode_word(text, ids);
    return;
  }
  const PreTokenizerStep& s = steps_[step];
  std::string spaced;
  if (s.add_prefix_space && text[0] != ' ') {
    spaced.reserve(text.size() + 1);
    spaced.push_back(' ');
    spaced.append(text);
    text = spaced;
  }
  if (s.regex == nullptr) {
    pre_tokenize(text, step + 1, ids);
    return;
  }
  split_by(*s.regex, s.behavior, s.invert, text,
           [&](std::string_view piece) { pre_tokenize(piece, step + 1, ids); });
}

}  // namespace

std::unique_ptr<Tokenizer> hf_tokenizer_load(const std::string& path) {
  const std::string prefix = "tokenizer \"hf:" + path + "\": ";
  std::ifstream file(path, std::ios::binary);
  if (!file) throw UserError(prefix + "cannot open " + path + ": " + std::strerror(errno));
  std::stringstream contents;
  contents << file.rdbuf();
  if (file.bad()) throw UserError(prefix + "cannot read " + path + ": " + std::strerror(errno));
  try {
    const json root = json::parse(contents.str());
    return std::make_unique<HfTokenizer>(path, root);
  } catch (const json::parse_error& e) {
    throw UserError(prefix + "not valid JSON: " + e.what());
  } catch (const json::exception& e) {
    throw UserError(prefix + "unexpected tokenizer.json structure: " + e.what());
  }
}

}  // namespace tessera::data
