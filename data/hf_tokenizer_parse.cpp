// The hf: tokenizer: reading tokenizer.json (every part the library would use, or a one-line
// error naming the file and the field). See hf_tokenizer.cpp for how it runs.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "data/hf_tokenizer_internal.h"

namespace tessera::data::hf_internal {

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

}  // namespace tessera::data::hf_internal
