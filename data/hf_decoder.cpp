#include "data/hf_decoder.h"

#include "data/hf_bpe.h"
#include "data/tokenizer.h"

namespace tessera::data {
namespace {

std::string replace_all(const std::string& text, const std::string& pattern,
                        const std::string& content) {
  if (pattern.empty()) return text;
  std::string out;
  size_t done = 0;
  for (size_t at = text.find(pattern); at != std::string::npos; at = text.find(pattern, done)) {
    out.append(text, done, at - done);
    out.append(content);
    done = at + pattern.size();
  }
  out.append(text, done);
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The library's test: six bytes, "<0x", two characters u8::from_str_radix(_, 16) accepts (two
// hex digits, or '+' and one), ">".
int fallback_byte(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  const int high = hex_digit(token[3]), low = hex_digit(token[4]);
  if (low < 0) return -1;
  if (token[3] == '+') return low;
  return high < 0 ? -1 : high * 16 + low;
}

bool valid_utf8(const std::string& bytes) {
  std::string repaired;
  return utf8_repair(bytes, repaired) == 0;
}

std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  std::string run;  // bytes of the pending <0xNN> tokens
  const auto flush = [&] {
    if (run.empty()) return;
    if (valid_utf8(run)) {
      out.push_back(run);
    } else {
      for (size_t i = 0; i < run.size(); ++i) out.push_back("\xEF\xBF\xBD");
    }
    run.clear();
  };
  for (std::string& token : tokens) {
    const int byte = fallback_byte(token);
    if (byte >= 0) {
      run.push_back(static_cast<char>(byte));
      continue;
    }
    flush();
    out.push_back(std::move(token));
  }
  flush();
  return out;
}

std::string strip(const std::string& token, uint32_t c, size_t start, size_t stop) {
  std::vector<std::pair<size_t, size_t>> chars;  // byte offset and length of each character
  for (size_t i = 0; i < token.size();) {
    const size_t len = hf_code_point_at(token, i).second;
    chars.emplace_back(i, len);
    i += len;
  }
  size_t first = 0, last = chars.size();
  while (first < start && first < chars.size() &&
         hf_code_point_at(token, chars[first].first).first == c)
    ++first;
  for (size_t i = 0; i < stop && last > first; ++i) {
    if (hf_code_point_at(token, chars[last - 1].first).first != c) break;
    --last;
  }
  if (first >= last) return "";
  return token.substr(chars[first].first,
                      chars[last - 1].first + chars[last - 1].second - chars[first].first);
}

}  // namespace

std::string hf_decode_chain(const std::vector<HfDecoderStep>& steps,
                            std::vector<std::string> tokens) {
  for (const HfDecoderStep& step : steps) {
    switch (step.kind) {
      case HfDecoderStep::Kind::kReplace:
        for (std::string& token : tokens) token = replace_all(token, step.pattern, step.content);
        break;
      case HfDecoderStep::Kind::kByteFallback:
        tokens = byte_fallback(std::move(tokens));
        break;
      case HfDecoderStep::Kind::kFuse: {
        std::string all;
        for (const std::string& token : tokens) all += token;
        tokens.assign(1, std::move(all));
        break;
      }
      case HfDecoderStep::Kind::kStrip:
        for (std::string& token : tokens)
          token = strip(token, step.strip_char, step.start, step.stop);
        break;
      case HfDecoderStep::Kind::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i)
          tokens[i] = replace_all(tokens[i], step.pattern, i == 0 && step.prepend ? "" : " ");
        break;
    }
  }
  std::string text;
  for (const std::string& token : tokens) text += token;
  return text;
}

}  // namespace tessera::data
