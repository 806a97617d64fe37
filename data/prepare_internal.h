// What the two halves of `tessera prepare` share: the units' files under <out>/.units/
// (data/prepare.cpp writes them, data/prepare_merge.cpp reads them) and the worker loop.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "data/prepare.h"

namespace tessera::data::prepare_detail {

inline constexpr const char* kUnitsDir = ".units";

struct Hash128 {
  uint64_t lo = 0, hi = 0;
  bool operator==(const Hash128&) const = default;
};
struct Hash128Hasher {
  size_t operator()(const Hash128& h) const { return static_cast<size_t>(h.lo); }
};

// One record per written document of a unit, in order (<unit>/docs.bin).
struct DocRecord {
  Hash128 hash;
  uint64_t bytes = 0;
  uint32_t language = 0;  // index into the unit's language list
  uint32_t reserved = 0;
};
static_assert(sizeof(DocRecord) == 32);

// <out>/.units/unit_NNNNNN
std::string unit_dir(const std::string& out, size_t u);
PrepareCounts counts_from_json(const nlohmann::ordered_json& j);
// Writes `text` to `path` through a temporary file and a rename: never half a file.
void write_file_atomic(const std::string& path, const std::string& text);
// Runs fn(u) for units rank, rank + size, ... (unit u belongs to process u mod size) on
// options.threads threads, which take this process's units in turn. The first exception stops
// the others at their next unit and is rethrown.
void for_each_unit(const PreparePlan& plan, int rank, int size, const std::function<void(size_t)>& fn);
// <dir>/stats.json
void write_stats(const std::string& dir, const PrepareStats& stats);

}  // namespace tessera::data::prepare_detail
