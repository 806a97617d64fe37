// `tessera prepare`: text -> token shards (data/prepare.h), over the ranks of an MPI launch
// and the threads of each rank.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "data/prepare.h"
#include "launch/commands.h"
#include "launch/layout.h"
#include "parallel/mpi_comm.h"
#include "runtime/error.h"

namespace tessera {
namespace {

constexpr const char* kUsage =
    "usage: tessera prepare --tokenizer SPEC --input PATH... --out DIR [--language CODE]\n"
    "         [--text-field NAME] [--language-field NAME] [--dedup]\n"
    "         [--exclude-ngrams-from FILE... [--exclude-n N]] [--threads N] [--shard-mb N]\n"
    "         [--unit-mb N]   (under mpirun: every rank prepares its share)";

[[noreturn]] void usage_error(const std::string& what) {
  // One line, as every UserError: the reason, then where to look.
  throw UserError("prepare: " + what + " (see tessera prepare --help)");
}

uint64_t parse_mib(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double mb = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(mb) || mb <= 0 || mb > 1e9)
    usage_error(flag + " wants a positive number of MiB, got \"" + text + "\"");
  return std::max<uint64_t>(1, static_cast<uint64_t>(mb * 1024 * 1024));
}

int parse_count(const std::string& flag, const std::string& text, int max) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < 1 || v > max)
    usage_error(flag + " wants a whole number from 1 to " + std::to_string(max) + ", got \"" + text + "\"");
  return static_cast<int>(v);
}

void print_stats(const data::PrepareStats& stats, const std::string& out) {
  const data::PrepareCounts& t = stats.total;
  std::printf(
      "prepare: %zu files, %llu documents, %.1f MB, %llu tokens (%s, vocab %lld) -> %s in %zu "
      "shard(s); %llu invalid UTF-8 repaired, %llu empty skipped, %llu duplicates removed, "
      "%llu contaminated removed\n",
      stats.files.size(), static_cast<unsigned long long>(t.documents), t.bytes / 1e6,
      static_cast<unsigned long long>(t.tokens), stats.tokenizer.c_str(),
      static_cast<long long>(stats.vocab_size), out.c_str(), stats.shards,
      static_cast<unsigned long long>(t.invalid_utf8_repaired),
      static_cast<unsigned long long>(t.empty_skipped),
      static_cast<unsigned long long>(t.duplicates_removed),
      static_cast<unsigned long long>(t.contaminated_removed));
  for (const auto& [language, c] : stats.languages)
    std::printf("prepare:   %-6s %10llu documents %12llu tokens\n", language.c_str(),
                static_cast<unsigned long long>(c.documents), static_cast<unsigned long long>(c.tokens));
}

}  // namespace

int cmd_prepare(int argc, char** argv) {
  data::PrepareOptions options;
  bool threads_given = false;
  // argv[0] is "prepare". Flags take "--flag value" or "--flag=value"; --input and
  // --exclude-ngrams-from take every following argument up to the next flag.
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
    if (flag == "--dedup") {
      if (has_inline_value) usage_error("--dedup takes no value");
      options.dedup = true;
      continue;
    }
    if (flag == "--input" || flag == "--exclude-ngrams-from") {
      std::vector<std::string>& list = flag == "--input" ? options.inputs : options.exclude_ngrams_from;
      if (has_inline_value) list.push_back(value);
      while (i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--")) list.push_back(argv[++i]);
      if (list.empty()) usage_error(flag + " needs at least one path");
      continue;
    }
    static const std::vector<std::string> kValued = {"--out", "--tokenizer", "--shard-mb", "--unit-mb",
                                                     "--language", "--text-field", "--language-field",
                                                     "--threads", "--exclude-n"};
    if (std::find(kValued.begin(), kValued.end(), flag) == kValued.end())
      usage_error("unknown argument \"" + std::string(argv[i]) + "\"");
    if (!has_inline_value) {
      if (i + 1 >= argc) usage_error(flag + " needs a value");
      value = argv[++i];
    }
    if (value.empty() && flag != "--language-field") usage_error(flag + " needs a non-empty value");
    if (flag == "--out") options.out = value;
    if (flag == "--tokenizer") options.tokenizer = value;
    if (flag == "--shard-mb") options.shard_bytes = parse_mib(flag, value);
    if (flag == "--unit-mb") options.unit_bytes = parse_mib(flag, value);
    if (flag == "--language") options.language = value;
    if (flag == "--text-field") options.documents.text_field = value;
    if (flag == "--language-field") options.documents.language_field = value;
    if (flag == "--exclude-n") options.exclude_n = parse_count(flag, value, 1000);
    if (flag == "--threads") {
      options.threads = parse_count(flag, value, 4096);
      threads_given = true;
    }
  }
  if (options.inputs.empty()) usage_error("missing --input");
  if (options.out.empty()) usage_error("missing --out");

  // Several ranks when started by mpirun / srun: each takes its share of the units.
  std::unique_ptr<MpiWorld> world;
  if (launcher_world_size() > 1) world = std::make_unique<MpiWorld>(nullptr, nullptr);
  const int rank = world ? world->rank() : 0, size = world ? world->size() : 1;
  if (!threads_given) {
    // The node's cores, shared by the ranks on it.
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    options.threads = std::max(1, cores / (world ? world->local_size() : 1));
  }
  data::PreparePlan plan;
  // Rank 0 checks and clears the output directory first; the others plan without touching it.
  run_agreed(world.get(), [&] {
    if (rank == 0) plan = data::prepare_plan(options, true);
  });
  run_agreed(world.get(), [&] {
    if (rank != 0) plan = data::prepare_plan(options, false);
  });
  run_agreed(world.get(), [&] { data::prepare_units(plan, rank, size); });
  data::PrepareStats stats;
  run_agreed(world.get(), [&] {
    if (rank == 0) stats = data::prepare_finish(plan);
  });
  if (rank == 0) print_stats(stats, options.out);
  return 0;
}

}  // namespace tessera
