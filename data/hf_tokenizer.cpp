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

#include "data/hf_tokenizer_internal.h"

namespace tessera::data {
namespace hf_internal {

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

}  // namespace hf_internal

std::unique_ptr<Tokenizer> hf_tokenizer_load(const std::string& path) {
  const std::string prefix = "tokenizer \"hf:" + path + "\": ";
  std::ifstream file(path, std::ios::binary);
  if (!file) throw UserError(prefix + "cannot open " + path + ": " + std::strerror(errno));
  std::stringstream contents;
  contents << file.rdbuf();
  if (file.bad()) throw UserError(prefix + "cannot read " + path + ": " + std::strerror(errno));
  try {
    using hf_internal::json;
    const json root = json::parse(contents.str());
    return std::make_unique<hf_internal::HfTokenizer>(path, root);
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(prefix + "not valid JSON: " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw UserError(prefix + "unexpected tokenizer.json structure: " + e.what());
  }
}

}  // namespace tessera::data
