#include "data/hf_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>

#include "runtime/error.h"

namespace tessera::data {
namespace {

// Oniguruma's \s: U+0009..U+000D, U+0085 and the Z categories, i.e. Unicode White_Space.
constexpr std::string_view kWhiteSpace =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}";
constexpr std::string_view kWordChars = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}";
// Letters and numbers assigned in Unicode 15 and 16, which the tokenizers library's Oniguruma
// knows and PCRE2 10.42 (Unicode 14) does not. Only additions: harmless with a newer PCRE2.
constexpr std::string_view kNewerLetters =
    "\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CD}\\x{A7DA}-\\x{A7DC}\\x{105C0}-\\x{105F3}"
    "\\x{10D4A}-\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC4}\\x{1123F}-\\x{11240}"
    "\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}"
    "\\x{113D3}\\x{11BC0}-\\x{11BE0}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}"
    "\\x{1342F}\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}\\x{16100}-\\x{1611D}"
    "\\x{16D40}-\\x{16D6C}\\x{18CFF}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}"
    "\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{2B739}"
    "\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}";
constexpr std::string_view kNewerDigits =
    "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"
    "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1E4F0}-\\x{1E4F9}"
    "\\x{1E5F1}-\\x{1E5FA}";
constexpr std::string_view kNewerNumbers =
    "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"
    "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}"
    "\\x{1E4F0}-\\x{1E4F9}\\x{1E5F1}-\\x{1E5FA}";

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Translates the escape at pattern[i] ('\\'), inside a class or not; returns the index after it.
size_t translate_escape(std::string_view p, size_t i, bool in_class, std::string& out,
                        const std::string& context) {
  if (i + 1 >= p.size()) throw UserError(context + ": pattern ends with a backslash");
  const char c = p[i + 1];
  const auto wrap = [&](std::string_view body, bool negate) {
    if (in_class) {
      if (negate)
        throw UserError(context + ": \\" + std::string(1, c) +
                        " inside a character class is not supported");
      out.append(body);
    } else {
      out.append(negate ? "[^" : "[").append(body).append("]");
    }
  };
  switch (c) {
    case 's':
      wrap(kWhiteSpace, false);
      return i + 2;
    case 'S':
      wrap(kWhiteSpace, true);
      return i + 2;
    case 'h':
      wrap("0-9a-fA-F", false);
      return i + 2;
    case 'H':
      wrap("0-9a-fA-F", true);
      return i + 2;
    case 'w':
      wrap(kWordChars, false);
      return i + 2;
    case 'W':
      wrap(kWordChars, true);
      return i + 2;
    case 'v':
      out.append("\\x{0B}");
      return i + 2;
    case 'd':
      wrap("\\p{Nd}" + std::string(kNewerDigits), false);
      return i + 2;
    case 'D':
      wrap("\\p{Nd}" + std::string(kNewerDigits), true);
      return i + 2;
    case 'u':
      if (i + 5 < p.size() && is_hex(p[i + 2]) && is_hex(p[i + 3]) && is_hex(p[i + 4]) &&
          is_hex(p[i + 5])) {
        out.append("\\x{").append(p.substr(i + 2, 4)).append("}");
        return i + 6;
      }
      throw UserError(context + ": \\u must be followed by four hex digits");
    case 'p':
    case 'P': {
      size_t end = i + 2;
      std::string_view name;
      if (end < p.size() && p[end] == '{') {
        const size_t close = p.find('}', end);
        if (close == std::string_view::npos) throw UserError(context + ": unterminated \\p{");
        name = p.substr(end + 1, close - end - 1);
        end = close + 1;
      } else if (end < p.size()) {
        name = p.substr(end, 1);
        end += 1;
      }
      const std::string_view extra = name == "L"    ? kNewerLetters
                                     : name == "N"  ? kNewerNumbers
                                     : name == "Nd" ? kNewerDigits
                                                    : "";
      if (extra.empty() || (c == 'P' && in_class)) {
        out.append(p.substr(i, end - i));
      } else {
        std::string body = "\\p{" + std::string(name) + "}" + std::string(extra);
        wrap(body, c == 'P');
      }
      return end;
    }
    default:
      out.append(p.substr(i, 2));
      return i + 2;
  }
}

}  // namespace

std::string hf_regex_translate(std::string_view p, const std::string& context) {
  std::string out;
  out.reserve(p.size() * 2);
  int depth = 0;  // nesting of character classes
  size_t i = 0;
  while (i < p.size()) {
    const char c = p[i];
    if (c == '\\') {
      i = translate_escape(p, i, depth > 0, out, context);
      continue;
    }
    if (depth == 0) {
      if (c == '[') {
        depth = 1;
        out.push_back('[');
        ++i;
        if (i < p.size() && p[i] == '^') out.push_back(p[i++]);
        if (i < p.size() && p[i] == ']') out.push_back(p[i++]);  // a leading ] is literal
      } else if (c == '(' && i + 1 < p.size() && p[i + 1] == '?') {
        // Inline flags (?imx-imx) and (?imx-imx:...): Ruby's m is dot-all.
        size_t j = i + 2;
        while (j < p.size() && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-')) ++j;
        if (j > i + 2 && j < p.size() && (p[j] == ')' || p[j] == ':')) {
          out.append("(?");
          for (size_t k = i + 2; k < j; ++k) out.push_back(p[k] == 'm' ? 's' : p[k]);
          i = j;
        } else {
          out.append("(?");
          i += 2;
        }
      } else {
        out.push_back(c);
        ++i;
      }
      continue;
    }
    // Inside a class.
    if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      const size_t close = p.find(":]", i + 2);
      if (close == std::string_view::npos) throw UserError(context + ": unterminated [:class:]");
      out.append(p.substr(i, close + 2 - i));
      i = close + 2;
    } else if (c == '[') {
      if (i + 1 < p.size() && p[i + 1] == '^')
        throw UserError(context + ": negated nested character classes are not supported");
      ++depth;  // a nested class is a union: drop its brackets
      ++i;
    } else if (c == ']') {
      if (--depth == 0) out.push_back(']');
      ++i;
    } else if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') {
      throw UserError(context + ": character class intersection (&&) is not supported");
    } else {
      out.push_back(c);
      ++i;
    }
  }
  if (depth != 0) throw UserError(context + ": unterminated character class");
  return out;
}

namespace {

// One thread's scratch for matching: match data with room for the whole match and a JIT stack
// larger than PCRE2's 32 KiB default (long whitespace runs under \s+(?!\S) recurse).
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, nullptr);
  MatchScratch() { pcre2_jit_stack_assign(context, nullptr, jit_stack); }
  ~MatchScratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

HfRegex::HfRegex(const std::string& pattern, bool literal, const std::string& context)
    : code_(nullptr), context_(context) {
  pcre2_compile_context* compile_context = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(compile_context, PCRE2_NEWLINE_LF);
  // PCRE2_LITERAL excludes UTF and UCP; a backslash before every ASCII punctuation character
  // makes it literal instead.
  std::string escaped;
  if (literal) {
    for (char c : pattern) {
      if (static_cast<unsigned char>(c) < 0x80 && !std::isalnum(static_cast<unsigned char>(c)))
        escaped.push_back('\\');
      escaped.push_back(c);
    }
  }
  const std::string& source = literal ? escaped : pattern;
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error, &offset, compile_context);
  pcre2_compile_context_free(compile_context);
  if (code == nullptr)
    throw UserError(context + ": regex does not compile at offset " + std::to_string(offset) +
                    ": " + pcre2_message(error));
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT, pcre2_match interprets
  code_ = code;
}

HfRegex::~HfRegex() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

bool HfRegex::search(std::string_view text, size_t from, size_t* start, size_t* end) const {
  thread_local MatchScratch scratch;
  const int rc =
      pcre2_match(static_cast<const pcre2_code*>(code_), reinterpret_cast<PCRE2_SPTR>(text.data()),
                  text.size(), from, PCRE2_NO_UTF_CHECK, scratch.data, scratch.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) throw UserError(context_ + ": regex match failed: " + pcre2_message(rc));
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
  *start = ovector[0];
  *end = ovector[1];
  return true;
}

}  // namespace tessera::data
