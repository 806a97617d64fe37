// `tessera prepare`: text -> token shards (data/prepare.h), over the ranks of an MPI launch
// and the threads of each rank.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "data/prepare.h"
#include "launch/commands.h"
#include "launch/flags.h"
#include "launch/layout.h"
#include "parallel/mpi_comm.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace tessera {
namespace {

// Seconds between progress lines.
constexpr double kProgressEvery = 10;

constexpr const char* kUsage =
    "usage: tessera prepare --tokenizer SPEC --input PATH... --out DIR [--language CODE]\n"
    "         [--text-field NAME] [--language-field NAME] [--dedup]\n"
    "         [--exclude-ngrams-from FILE... [--exclude-n N]] [--threads N] [--shard-mb N]\n"
    "         [--unit-mb N]   (under mpirun: every rank prepares its share)";

[[noreturn]] void usage_error(const std::string& what) {
  // One line, as every UserError: the reason, then where to look.
  throw UserError("prepare: " + what + " (see tessera prepare --help)");
}

uint64_t parse_mib(const Flags& flags, const std::string& flag) {
  const double mb = flag_number<double>(flags, flag, 0.0, true, 1e9, "a positive number of MiB",
                                        usage_error);
  return std::max<uint64_t>(1, static_cast<uint64_t>(mb * 1024 * 1024));
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
  const FlagSpec spec{{"--out", "--tokenizer", "--shard-mb", "--unit-mb", "--language", "--text-field",
                       "--language-field", "--threads", "--exclude-n"},
                      {"--input", "--exclude-ngrams-from"},
                      {"--dedup"},
                      {"--language-field"}};
  const Flags flags = parse_flags(argc, argv, spec, usage_error);
  if (flags.help) {
    std::printf("%s\n", kUsage);
    return 0;
  }
  data::PrepareOptions options;
  options.inputs = flags.list("--input");
  options.exclude_ngrams_from = flags.list("--exclude-ngrams-from");
  options.out = flags.one("--out");
  options.tokenizer = flags.one("--tokenizer", options.tokenizer);
  options.language = flags.one("--language");
  options.documents.text_field = flags.one("--text-field", options.documents.text_field);
  options.documents.language_field = flags.one("--language-field", options.documents.language_field);
  options.dedup = flags.has("--dedup");
  if (flags.has("--shard-mb")) options.shard_bytes = parse_mib(flags, "--shard-mb");
  if (flags.has("--unit-mb")) options.unit_bytes = parse_mib(flags, "--unit-mb");
  if (flags.has("--exclude-n"))
    options.exclude_n = flag_number<int>(flags, "--exclude-n", 1, false, 1000, "a whole number from 1 to 1000", usage_error);
  if (flags.has("--threads"))
    options.threads = flag_number<int>(flags, "--threads", 1, false, 4096, "a whole number from 1 to 4096", usage_error);
  if (options.inputs.empty()) usage_error("missing --input");
  if (options.out.empty()) usage_error("missing --out");

  // Several ranks when started by mpirun / srun: each takes its share of the units.
  std::unique_ptr<MpiWorld> world;
  if (launcher_world_size() > 1) world = std::make_unique<MpiWorld>(nullptr, nullptr);
  const int rank = world ? world->rank() : 0, size = world ? world->size() : 1;
  if (!flags.has("--threads")) {
    // The node's cores, shared by the ranks on it.
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    options.threads = std::max(1, cores / (world ? world->local_size() : 1));
  }
  // Rank 0 checks the inputs, the tokenizer and the output directory, clears the latter and
  // cuts the units; the others receive the unit list instead of reading every input themselves.
  data::PreparePlan plan;
  run_agreed(world.get(), [&] {
    if (rank == 0) plan = data::prepare_plan(options, true);
  });
  // A compressed file is one unit, read by one thread: say so when it is larger than a unit on
  // disk already (its text is several times that), since that loses parallelism.
  if (rank == 0 && size * options.threads > 1)
    for (const data::InputRange& u : plan.units) {
      std::error_code ec;
      const uintmax_t bytes = u.compressed ? std::filesystem::file_size(u.path, ec) : 0;
      if (!ec && bytes > options.unit_bytes)
        log_info("prepare: note: %s is compressed, so one thread reads all of it (%.1f MB); "
                 "several smaller files, or the file decompressed, spread over the threads",
                 u.path.c_str(), bytes / 1e6);
    }
  if (world) {
    std::string units = rank == 0 ? data::encode_units(plan.units) : std::string();
    world->broadcast(units, 0);
    if (rank != 0) {
      plan.options = options;
      plan.units = data::decode_units(units);
    }
  }
  // Progress every 10 s from rank 0, whose share of the units (every size-th one) stands for
  // the whole job.
  const auto start = std::chrono::steady_clock::now();
  double last_report = 0;
  const auto report = [&](const data::PrepareProgress& p) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s - last_report < kProgressEvery || p.units_done == p.units || p.bytes_done == 0) return;
    last_report = s;
    const double rate = static_cast<double>(p.bytes_done) / s;
    log_info("prepare: %s%zu of %zu units, %.0f of %.0f MB (%.0f%%), %.1f MB/s, about %s of tokenizing left",
             size > 1 ? "rank 0's share: " : "", p.units_done, p.units, p.bytes_done / 1e6,
             p.bytes / 1e6, 100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes),
             rate / 1e6, format_duration(static_cast<double>(p.bytes - p.bytes_done) / rate).c_str());
  };
  run_agreed(world.get(), [&] {
    data::prepare_units(plan, rank, size, rank == 0 ? report : std::function<void(const data::PrepareProgress&)>{});
  });
  const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const double tokenized = seconds();
  // The merge: rank 0 lays the shards out, every rank copies its own units' tokens into them,
  // rank 0 puts them in place. A failure anywhere leaves no shard behind.
  data::PrepareStats stats;
  try {
    run_agreed(world.get(), [&] {
      if (rank == 0) stats = data::prepare_merge_plan(plan);
    });
    run_agreed(world.get(), [&] { data::prepare_merge_copy(plan, rank, size); });
    run_agreed(world.get(), [&] {
      if (rank == 0) data::prepare_merge_commit(plan, stats);
    });
  } catch (...) {
    if (rank == 0) data::prepare_merge_abandon(plan);
    throw;
  }
  if (rank == 0) {
    print_stats(stats, options.out);
    std::printf("prepare: units tokenized in %.1f s (%d rank(s) x %d thread(s)), merged into shards in %.1f s\n",
                tokenized, size, options.threads, seconds() - tokenized);
  }
  return 0;
}

}  // namespace tessera
