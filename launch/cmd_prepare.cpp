// `tessera prepare`: plain text -> token shards (see data/prepare.h for the input format).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "data/prepare.h"
#include "launch/commands.h"
#include "runtime/error.h"

namespace tessera {
namespace {

constexpr const char* kUsage =
    "usage: tessera prepare --input PATH... --out DIR [--tokenizer SPEC] [--shard-mb N]";

[[noreturn]] void usage_error(const std::string& what) {
  // One line, as every UserError: the reason, then the usage.
  throw UserError("prepare: " + what + "; " + kUsage);
}

size_t parse_shard_bytes(const std::string& text) {
  char* end = nullptr;
  const double mb = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(mb) || mb <= 0 || mb > 1e9)
    usage_error("--shard-mb wants a positive number of MiB, got \"" + text + "\"");
  return std::max<size_t>(1, static_cast<size_t>(mb * 1024 * 1024));
}

}  // namespace

int cmd_prepare(int argc, char** argv) {
  data::PrepareOptions options;
  // argv[0] is "prepare". Flags take "--flag value" or "--flag=value"; --input takes every
  // following argument up to the next flag and may be repeated.
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    bool has_inline_value = false;
    if (const size_t eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
      has_inline_value = true;
    }
    if (flag == "-h" || flag == "--help") {
      std::printf("%s\n", kUsage);
      return 0;
    }
    if (flag != "--input" && flag != "--out" && flag != "--tokenizer" && flag != "--shard-mb")
      usage_error("unknown argument \"" + std::string(argv[i]) + "\"");
    if (flag == "--input") {
      if (has_inline_value) options.inputs.push_back(value);
      while (i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--"))
        options.inputs.push_back(argv[++i]);
      if (options.inputs.empty()) usage_error("--input needs at least one path");
      continue;
    }
    if (!has_inline_value) {
      if (i + 1 >= argc) usage_error(flag + " needs a value");
      value = argv[++i];
    }
    if (value.empty()) usage_error(flag + " needs a non-empty value");
    if (flag == "--out") options.out = value;
    if (flag == "--tokenizer") options.tokenizer = value;
    if (flag == "--shard-mb") options.shard_bytes = parse_shard_bytes(value);
  }
  if (options.inputs.empty()) usage_error("missing --input");
  if (options.out.empty()) usage_error("missing --out");

  const data::PrepareStats stats = data::prepare(options);
  const data::PrepareCounts& t = stats.total;
  std::printf(
      "prepare: %zu files, %llu documents, %.1f MB, %llu tokens (%s, vocab %lld) -> %s in %zu "
      "shard(s); %llu invalid UTF-8 repaired, %llu empty skipped\n",
      stats.files.size(), static_cast<unsigned long long>(t.documents), t.bytes / 1e6,
      static_cast<unsigned long long>(t.tokens), stats.tokenizer.c_str(),
      static_cast<long long>(stats.vocab_size), options.out.c_str(), stats.shards,
      static_cast<unsigned long long>(t.invalid_utf8_repaired),
      static_cast<unsigned long long>(t.empty_skipped));
  return 0;
}

}  // namespace tessera
