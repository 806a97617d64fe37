// The merge of `tessera prepare` (data/prepare.h). Rank 0 lays the final shards out from 40
// bytes per document (its record and its index entry), deciding duplicates in unit order as one
// pass over the corpus would; the tokens are then copied by the process that made each unit, in
// parallel, straight to their final place. The result is byte for byte what appending every
// kept document in order to one ShardWriter gives.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_set>
#include <utility>
#include <vector>

#include "data/prepare.h"
#include "data/prepare_internal.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "runtime/error.h"

namespace tessera::data {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using namespace prepare_detail;

namespace {

// One run of a unit's kept tokens: unit shard `from`, tokens [src, src + count), to final shard
// `to` at token `dst`. A unit's runs are in <unit>/copies.bin.
struct MergeCopy {
  uint64_t from = 0, to = 0, src = 0, dst = 0, count = 0;
};

std::string final_temp_path(const std::string& out, size_t shard) {
  return out + "/" + shard_file_name(shard) + ".tmp";
}

}  // namespace

PrepareStats prepare_merge_plan(const PreparePlan& plan) {
  const PrepareOptions& o = plan.options;
  const std::unique_ptr<Tokenizer> tokenizer = tokenizer_create(o.tokenizer);
  PrepareStats stats;
  stats.tokenizer = tokenizer->name();
  stats.vocab_size = tokenizer->vocab_size();
  stats.units = plan.units.size();
  const TokenDtype dtype = token_dtype_for_vocab(stats.vocab_size);

  // The final shard being laid out: its tokens and document starts so far.
  size_t shard = 0;
  uint64_t shard_tokens = 0;
  std::vector<uint64_t> starts;
  const auto close_shard = [&] {
    shard_write_frame(final_temp_path(o.out, shard), dtype, stats.vocab_size, shard_tokens, starts);
    ++shard;
    shard_tokens = 0;
    starts.clear();
  };
  std::unordered_set<Hash128, Hash128Hasher> seen;
  std::vector<DocRecord> records;
  for (size_t u = 0; u < plan.units.size(); ++u) {
    const std::string dir = unit_dir(o.out, u);
    json unit;
    {
      std::ifstream in(dir + "/stats.json");
      if (!in) throw UserError("prepare: unit " + std::to_string(u) + " (" + plan.units[u].path + ") was not prepared");
      unit = json::parse(in);
    }
    std::vector<std::string> names;
    std::vector<PrepareCounts> counts;
    for (const json& l : unit.at("languages")) {
      names.push_back(l.at("language"));
      counts.push_back(counts_from_json(l.at("counts")));
    }
    // Records of this unit's documents, in order.
    {
      const std::string path = dir + "/docs.bin";
      std::ifstream in(path, std::ios::binary | std::ios::ate);
      const std::streamoff size = in ? static_cast<std::streamoff>(in.tellg()) : -1;
      if (size < 0 || size % sizeof(DocRecord) != 0) throw UserError("prepare: " + path + " is damaged");
      records.resize(static_cast<size_t>(size) / sizeof(DocRecord));
      in.seekg(0);
      in.read(reinterpret_cast<char*>(records.data()), size);
    }
    std::vector<MergeCopy> copies;
    size_t d_global = 0;
    const size_t unit_shards = unit.at("shards");
    for (size_t s = 0; s < unit_shards; ++s) {
      const TokenShard from = TokenShard::open(dir + "/" + shard_file_name(s));
      if (from.dtype() != dtype || from.vocab_size() != stats.vocab_size)
        throw UserError("prepare: unit " + dir + " is damaged (another vocabulary)");
      for (int64_t d = 0; d < from.document_count(); ++d, ++d_global) {
        if (d_global >= records.size()) throw UserError("prepare: unit " + dir + " is damaged");
        const DocRecord& r = records[d_global];
        const uint64_t start = static_cast<uint64_t>(from.document_start(d));
        const uint64_t end = static_cast<uint64_t>(d + 1 < from.document_count() ? from.document_start(d + 1) : from.token_count());
        const uint64_t count = end - start;
        if (o.dedup && !seen.insert(r.hash).second) {
          PrepareCounts& c = counts.at(r.language);
          --c.documents;
          c.bytes -= r.bytes;
          c.tokens -= count;
          ++c.duplicates_removed;
          continue;
        }
        if (shard_is_full(shard_tokens, count, dtype, o.shard_bytes)) close_shard();
        starts.push_back(shard_tokens);
        MergeCopy* last = copies.empty() ? nullptr : &copies.back();
        if (last && last->from == s && last->to == shard && last->src + last->count == start &&
            last->dst + last->count == shard_tokens)
          last->count += count;
        else
          copies.push_back({s, shard, start, shard_tokens, count});
        shard_tokens += count;
      }
    }
    if (d_global != records.size()) throw UserError("prepare: unit " + dir + " is damaged");
    write_file_atomic(dir + "/copies.bin",
                      std::string(reinterpret_cast<const char*>(copies.data()), copies.size() * sizeof(MergeCopy)));
    PrepareCounts unit_total;
    for (size_t i = 0; i < names.size(); ++i) {
      stats.languages[names[i]].add(counts[i]);
      unit_total.add(counts[i]);
    }
    stats.total.add(unit_total);
    if (stats.files.empty() || stats.files.back().path != plan.units[u].path)
      stats.files.push_back({plan.units[u].path, {}});
    stats.files.back().counts.add(unit_total);
  }
  if (!starts.empty()) close_shard();
  // The default language may have seen no document at all.
  std::erase_if(stats.languages, [](const auto& entry) {
    const PrepareCounts& c = entry.second;
    return c.documents + c.empty_skipped + c.duplicates_removed + c.contaminated_removed == 0;
  });
  stats.shards = shard;
  if (stats.total.documents == 0) {
    std::error_code ec;
    fs::remove_all(o.out + "/" + kUnitsDir, ec);
    throw UserError("prepare: the inputs hold no non-empty document");
  }
  return stats;
}

void prepare_merge_copy(const PreparePlan& plan, int rank, int size) {
  const PrepareOptions& o = plan.options;
  for_each_unit(plan, rank, size, [&](size_t u) {
    const std::string dir = unit_dir(o.out, u);
    std::string bytes;
    {
      std::ifstream in(dir + "/copies.bin", std::ios::binary);
      if (!in) throw UserError("prepare: " + dir + "/copies.bin is missing (was the merge planned?)");
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    if (bytes.size() % sizeof(MergeCopy) != 0) throw UserError("prepare: " + dir + "/copies.bin is damaged");
    std::vector<MergeCopy> copies(bytes.size() / sizeof(MergeCopy));
    std::memcpy(copies.data(), bytes.data(), bytes.size());
    std::vector<std::unique_ptr<TokenShard>> from;
    std::vector<std::pair<uint64_t, int>> to;  // (final shard, fd) this unit writes into
    const auto close_all = [&] {
      for (const auto& [s, fd] : to) ::close(fd);
      to.clear();
    };
    try {
      for (const MergeCopy& c : copies) {
        if (c.from >= from.size()) from.resize(c.from + 1);
        if (!from[c.from])
          from[c.from] = std::make_unique<TokenShard>(TokenShard::open(dir + "/" + shard_file_name(c.from)));
        const TokenShard& shard = *from[c.from];
        if (to.empty() || to.back().first != c.to) {
          const std::string path = final_temp_path(o.out, c.to);
          const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
          if (fd < 0) throw UserError("prepare: cannot open " + path + ": " + std::strerror(errno));
          to.emplace_back(c.to, fd);
        }
        if (c.src + c.count > static_cast<uint64_t>(shard.token_count()))
          throw UserError("prepare: " + dir + "/copies.bin is damaged");
        const size_t n = c.count * dtype_width(shard.dtype());
        const char* p = reinterpret_cast<const char*>(shard.token_bytes(static_cast<int64_t>(c.src)));
        const uint64_t at = shard_token_offset(shard.dtype(), c.dst);
        if (!write_at(to.back().second, p, n, at))
          throw UserError("prepare: cannot write " + final_temp_path(o.out, c.to) + ": " + std::strerror(errno));
      }
      // Synced by the writer itself: on a shared file system each client flushes its own pages.
      for (const auto& [s, fd] : to)
        if (::fsync(fd) != 0) throw UserError("prepare: cannot sync " + final_temp_path(o.out, s) + ": " + std::strerror(errno));
    } catch (...) {
      close_all();
      throw;
    }
    close_all();
  });
}

void prepare_merge_commit(const PreparePlan& plan, const PrepareStats& stats) {
  const PrepareOptions& o = plan.options;
  for (size_t s = 0; s < stats.shards; ++s) {
    const std::string path = o.out + "/" + shard_file_name(s);
    if (std::rename(final_temp_path(o.out, s).c_str(), path.c_str()) != 0)
      throw UserError("prepare: cannot rename " + final_temp_path(o.out, s) + ": " + std::strerror(errno));
  }
  if (const int fd = ::open(o.out.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {  // the renames
    ::fsync(fd);
    ::close(fd);
  }
  std::error_code ec;
  fs::remove_all(o.out + "/" + kUnitsDir, ec);
  write_stats(o.out, stats);
}

void prepare_merge_abandon(const PreparePlan& plan) {
  std::error_code ec;
  for (fs::directory_iterator it(plan.options.out, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with("shard_") && name.ends_with(".tok.tmp")) fs::remove(it->path(), ec);
  }
}

PrepareStats prepare_finish(const PreparePlan& plan) {
  try {
    const PrepareStats stats = prepare_merge_plan(plan);
    prepare_merge_copy(plan, 0, 1);
    prepare_merge_commit(plan, stats);
    return stats;
  } catch (...) {
    prepare_merge_abandon(plan);
    throw;
  }
}

}  // namespace tessera::data
