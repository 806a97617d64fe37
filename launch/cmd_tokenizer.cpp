// `tessera tokenizer`: train a SentencePiece model; encode text lines to JSON id arrays and
// decode them back, with any tokenizer spec (docs/tokenizers.md).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "data/sentencepiece_tokenizer.h"
#include "data/tokenizer.h"
#include "launch/commands.h"
#include "launch/flags.h"
#include "runtime/error.h"

namespace tessera {
namespace {

constexpr const char* kTrainUsage =
    "usage: tessera tokenizer train --input FILE... --vocab-size N --type bpe|unigram --out PATH "
    "[--character-coverage F] [--max-sentences N] [--threads N] (writes PATH.model and "
    "PATH.vocab)";
constexpr const char* kEncodeUsage =
    "usage: tessera tokenizer encode --tokenizer SPEC (text lines on stdin -> one JSON array of "
    "ids per line on stdout)";
constexpr const char* kDecodeUsage =
    "usage: tessera tokenizer decode --tokenizer SPEC (JSON arrays of ids on stdin -> one text "
    "line each on stdout)";

constexpr size_t kIoChunk = 1 << 20;

[[noreturn]] void usage_error(const std::string& what, const char* usage) {
  throw UserError("tokenizer " + what + "; " + usage);
}

// Flags of one subcommand; mistakes name it and show its usage.
Flags parse_flags(int argc, char** argv, const std::string& command,
                  const std::vector<std::string_view>& valued, std::string_view list,
                  const char* usage) {
  FlagSpec spec{valued, {}, {}, {}};
  if (!list.empty()) spec.lists.push_back(list);
  return tessera::parse_flags(argc, argv, spec, [&](const std::string& what) { usage_error(command + ": " + what, usage); });
}

// `flag`'s value as a T in (low, high] or [low, high] as `low_open` says; `range` describes it.
template <typename T>
T parse_train_number(const Flags& flags, const std::string& flag, T low, bool low_open, T high,
                     const char* range) {
  return flag_number<T>(flags, flag, low, low_open, high, range,
                        [](const std::string& what) { usage_error("train: " + what, kTrainUsage); });
}

int tokenizer_train(int argc, char** argv) {
  const Flags flags = parse_flags(argc, argv, "train",
                                  {"--vocab-size", "--type", "--out", "--character-coverage",
                                   "--max-sentences", "--threads"},
                                  "--input", kTrainUsage);
  if (flags.help) {
    std::printf("%s\n", kTrainUsage);
    return 0;
  }
  data::SentencePieceTrainOptions options;
  if (flags.has("--input")) options.inputs = flags.values.at("--input");
  if (options.inputs.empty()) usage_error("train: missing --input", kTrainUsage);
  if (!flags.has("--vocab-size")) usage_error("train: missing --vocab-size", kTrainUsage);
  options.vocab_size =
      parse_train_number<int32_t>(flags, "--vocab-size", 0, true, 1 << 30, "a positive integer");
  const std::string type = flags.one("--type");
  if (type == "bpe") {
    options.type = data::SentencePieceModelType::bpe;
  } else if (type == "unigram") {
    options.type = data::SentencePieceModelType::unigram;
  } else {
    usage_error(type.empty() ? "train: missing --type"
                             : "train: --type is bpe or unigram, got \"" + type + "\"",
                kTrainUsage);
  }
  options.out = flags.one("--out");
  if (options.out.empty()) usage_error("train: missing --out", kTrainUsage);
  if (flags.has("--character-coverage"))
    options.character_coverage = parse_train_number<double>(flags, "--character-coverage", 0.0,
                                                            true, 1.0, "a number in (0, 1]");
  // SentencePiece refuses samples of 100 sentences or fewer.
  if (flags.has("--max-sentences"))
    options.max_sentences = parse_train_number<uint64_t>(flags, "--max-sentences", 100, true,
                                                         uint64_t{1} << 40, "an integer above 100");
  if (flags.has("--threads"))
    options.threads =
        parse_train_number<int>(flags, "--threads", 0, true, 1024, "a positive integer");

  const auto start = std::chrono::steady_clock::now();
  const data::SentencePieceTrainStats stats = data::sentencepiece_train(options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string too_long =
      stats.sentences_too_long == 0
          ? ""
          : " (" + std::to_string(stats.sentences_too_long) + " lines over 4192 bytes skipped)";
  std::printf(
      "tokenizer train: %s, vocab %d, %llu sentences used of %llu read from %zu file(s)%s, "
      "%.1f s -> %s, %s\n",
      type.c_str(), stats.vocab_size, static_cast<unsigned long long>(stats.sentences_used),
      static_cast<unsigned long long>(stats.sentences_read), options.inputs.size(),
      too_long.c_str(), seconds, stats.model_path.c_str(), stats.vocab_path.c_str());
  return 0;
}

// Lines of stdin without their "\n", read in large chunks.
class StdinLines {
 public:
  bool next(std::string_view& line) {
    while (true) {
      const size_t newline = buffer_.find('\n', pos_);
      if (newline != std::string::npos) {
        line = std::string_view(buffer_).substr(pos_, newline - pos_);
        pos_ = newline + 1;
        return true;
      }
      if (at_end_) {
        if (pos_ == buffer_.size()) return false;
        line = std::string_view(buffer_).substr(pos_);  // the last line has no "\n"
        pos_ = buffer_.size();
        return true;
      }
      buffer_.erase(0, pos_);
      pos_ = 0;
      const size_t kept = buffer_.size();
      buffer_.resize(kept + kIoChunk);
      const size_t got = std::fread(buffer_.data() + kept, 1, kIoChunk, stdin);
      buffer_.resize(kept + got);
      if (got == 0) {
        if (std::ferror(stdin))
          throw UserError("tokenizer: cannot read stdin: " + std::string(std::strerror(errno)));
        at_end_ = true;
      }
    }
  }

 private:
  std::string buffer_;
  size_t pos_ = 0;
  bool at_end_ = false;
};

// Output collected into large writes.
class StdoutBuffer {
 public:
  std::string& text() { return text_; }
  void flush_if_full() {
    if (text_.size() >= kIoChunk) flush();
  }
  void flush() {
    if (std::fwrite(text_.data(), 1, text_.size(), stdout) != text_.size() ||
        std::fflush(stdout) != 0)
      throw UserError("tokenizer: cannot write stdout: " + std::string(std::strerror(errno)));
    text_.clear();
  }

 private:
  std::string text_;
};

// The tokenizer that --tokenizer names; nullptr after printing the usage for --help.
std::unique_ptr<data::Tokenizer> tokenizer_from_flags(int argc, char** argv,
                                                      const std::string& command,
                                                      const char* usage) {
  const Flags flags = parse_flags(argc, argv, command, {"--tokenizer"}, "", usage);
  if (flags.help) {
    std::printf("%s\n", usage);
    return nullptr;
  }
  if (!flags.has("--tokenizer")) usage_error(command + ": missing --tokenizer", usage);
  return data::tokenizer_create(flags.one("--tokenizer"));
}

int tokenizer_encode(int argc, char** argv) {
  const auto tokenizer = tokenizer_from_flags(argc, argv, "encode", kEncodeUsage);
  if (!tokenizer) return 0;
  StdinLines lines;
  StdoutBuffer out;
  std::string clean;
  std::string_view line;
  char digits[16];
  while (lines.next(line)) {
    data::utf8_repair(line, clean);
    const std::vector<int32_t> ids = tokenizer->encode(clean);
    std::string& text = out.text();
    text += '[';
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) text += ", ";
      text.append(digits, std::to_chars(digits, digits + sizeof digits, ids[i]).ptr);
    }
    text += "]\n";
    out.flush_if_full();
  }
  out.flush();
  return 0;
}

int tokenizer_decode(int argc, char** argv) {
  const auto tokenizer = tokenizer_from_flags(argc, argv, "decode", kDecodeUsage);
  if (!tokenizer) return 0;
  const int64_t vocab = tokenizer->vocab_size();
  StdinLines lines;
  StdoutBuffer out;
  std::vector<int32_t> ids;
  std::string clean;
  std::string_view line;
  for (uint64_t number = 1; lines.next(line); ++number) {
    const auto fail = [&](const std::string& what) {
      out.flush();  // the lines before the bad one are good
      throw UserError("tokenizer decode: line " + std::to_string(number) + ": " + what);
    };
    const nlohmann::json array = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!array.is_array()) fail("not a JSON array of token ids");
    ids.clear();
    for (const nlohmann::json& id : array) {
      if (!id.is_number_integer()) fail("not a JSON array of token ids");
      if (id.is_number_unsigned() ? id.get<uint64_t>() >= static_cast<uint64_t>(vocab)
                                  : id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab)
        fail("id " + id.dump() + " is outside the vocabulary [0, " + std::to_string(vocab) +
             ") of " + tokenizer->name());
      ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    // Ids may cut a character in half; what is printed is always valid UTF-8.
    data::utf8_repair(tokenizer->decode(ids.data(), ids.size()), clean);
    out.text() += clean;
    out.text() += '\n';
    out.flush_if_full();
  }
  out.flush();
  return 0;
}

}  // namespace

int cmd_tokenizer(int argc, char** argv) {
  // argv[0] is "tokenizer", argv[1] the subcommand.
  const std::string sub = argc > 1 ? argv[1] : "";
  if (sub == "train") return tokenizer_train(argc - 1, argv + 1);
  if (sub == "encode") return tokenizer_encode(argc - 1, argv + 1);
  if (sub == "decode") return tokenizer_decode(argc - 1, argv + 1);
  if (sub == "-h" || sub == "--help") {
    std::printf("%s\n%s\n%s\n", kTrainUsage, kEncodeUsage, kDecodeUsage);
    return 0;
  }
  throw UserError((sub.empty() ? std::string("tokenizer: missing subcommand")
                               : "tokenizer: unknown subcommand \"" + sub + "\"") +
                  "; known: train, encode, decode (tessera tokenizer --help)");
}

}  // namespace tessera
