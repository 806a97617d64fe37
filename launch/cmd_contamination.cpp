// `tessera contamination`: which evaluation documents share an n-gram of normalised words with
// a prepared training directory (rules in data/contamination.h, docs/data-format.md).
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "data/contamination.h"
#include "launch/commands.h"
#include "launch/flags.h"
#include "runtime/error.h"

namespace tessera {
namespace {

constexpr const char* kUsage =
    "usage: tessera contamination --train DIR --eval FILE... [--n 13] [--top K] [--json] "
    "[--text-field NAME] [--threads N]";

[[noreturn]] void usage_error(const std::string& what) {
  throw UserError("contamination: " + what + "; " + kUsage);
}

double share_of(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

void print_table(const data::ContaminationReport& report) {
  std::printf(
      "contamination: %d-grams of normalised words; training set %s (%s): %llu documents, "
      "%llu tokens\n\n",
      report.n, report.train_dir.c_str(), report.tokenizer.c_str(),
      static_cast<unsigned long long>(report.training_documents),
      static_cast<unsigned long long>(report.training_tokens));
  int width = 4;
  for (const auto& file : report.files) width = std::max(width, static_cast<int>(file.path.size()));
  std::printf("%-*s  %10s  %12s  %8s  %14s\n", width, "file", "documents", "contaminated", "share",
              "shorter than n");
  for (const auto& file : report.files)
    std::printf("%-*s  %10llu  %12llu  %7.2f%%  %14llu\n", width, file.path.c_str(),
                static_cast<unsigned long long>(file.documents),
                static_cast<unsigned long long>(file.contaminated),
                100.0 * share_of(file.contaminated, file.documents),
                static_cast<unsigned long long>(file.short_documents));
  for (const auto& file : report.files) {
    if (file.examples.empty()) continue;
    std::printf("\n%s: worst %zu of %llu contaminated\n", file.path.c_str(), file.examples.size(),
                static_cast<unsigned long long>(file.contaminated));
    for (const auto& e : file.examples) {
      std::printf(
          "  %s:%llu  %llu/%llu n-grams shared (%.2f%%) with %llu training document(s), first: %s "
          "document %lld\n",
          file.path.c_str(), static_cast<unsigned long long>(e.line),
          static_cast<unsigned long long>(e.shared_ngrams),
          static_cast<unsigned long long>(e.ngrams), 100.0 * share_of(e.shared_ngrams, e.ngrams),
          static_cast<unsigned long long>(e.training_documents), e.training_shard.c_str(),
          static_cast<long long>(e.training_document));
      std::printf("    text:   %s\n    shared: %s\n", e.text.c_str(), e.shared_text.c_str());
    }
  }
}

void print_json(const data::ContaminationReport& report) {
  nlohmann::ordered_json out;
  out["n"] = report.n;
  out["train"] = report.train_dir;
  out["tokenizer"] = report.tokenizer;
  out["training_documents"] = report.training_documents;
  out["training_tokens"] = report.training_tokens;
  out["files"] = nlohmann::ordered_json::array();
  for (const auto& file : report.files) {
    nlohmann::ordered_json f;
    f["path"] = file.path;
    f["documents"] = file.documents;
    f["contaminated"] = file.contaminated;
    f["share"] = share_of(file.contaminated, file.documents);
    f["short_documents"] = file.short_documents;
    f["examples"] = nlohmann::ordered_json::array();
    for (const auto& e : file.examples) {
      nlohmann::ordered_json x;
      x["line"] = e.line;
      x["offset"] = e.offset;
      x["text"] = e.text;
      x["ngrams"] = e.ngrams;
      x["shared_ngrams"] = e.shared_ngrams;
      x["training_documents"] = e.training_documents;
      x["shared_text"] = e.shared_text;
      x["training"] = {{"shard", e.training_shard}, {"document", e.training_document}};
      f["examples"].push_back(std::move(x));
    }
    out["files"].push_back(std::move(f));
  }
  // Paths are bytes: invalid UTF-8 in one becomes U+FFFD rather than an exception.
  std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

}  // namespace

int cmd_contamination(int argc, char** argv) {
  std::string train;
  std::vector<std::string> eval;
  data::ContaminationOptions options;
  bool json = false;
  const Flags flags = parse_flags(argc, argv,
                                  {{"--train", "--n", "--top", "--text-field", "--threads"}, {"--eval"}, {"--json"}, {}},
                                  usage_error);
  if (flags.help) {
    std::printf("%s\n", kUsage);
    return 0;
  }
  train = flags.one("--train");
  eval = flags.list("--eval");
  json = flags.has("--json");
  options.documents.text_field = flags.one("--text-field", options.documents.text_field);
  const auto whole = [&](const char* flag, int low, int high, int fallback) {
    if (!flags.has(flag)) return fallback;
    return flag_number<int>(flags, flag, low, false, high,
                            "an integer in [" + std::to_string(low) + ", " + std::to_string(high) + "]", usage_error);
  };
  options.n = whole("--n", 1, 1 << 20, options.n);
  options.top = whole("--top", 0, 1 << 20, options.top);
  options.threads = whole("--threads", 1, 4096, options.threads);
  if (train.empty()) usage_error("missing --train");
  if (eval.empty()) usage_error("missing --eval");

  const data::ContaminationReport report = data::contamination_check(train, eval, options);
  json ? print_json(report) : print_table(report);
  return 0;
}

}  // namespace tessera
