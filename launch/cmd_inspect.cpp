// `tessera inspect CHECKPOINT_DIR`: what a checkpoint holds (progress, layout, config summary,
// tensors, optimizer state, shard files) and whether every shard passes its checksum.
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/session.h"
#include "runtime/error.h"

namespace tessera {
namespace {

std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (int d = 0; d < s.rank; ++d) out += (d ? ", " : "") + std::to_string(s[d]);
  return out + "]";
}

std::string human_bytes(int64_t b) {
  char buf[32];
  if (b < (1 << 10)) std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  else if (b < (1 << 20)) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else if (b < (1LL << 30)) std::snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
  return buf;
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  const char* usage = "usage: tessera inspect CHECKPOINT_DIR";
  if (argc != 2 || argv[1][0] == '-') throw UserError(usage);
  const CheckpointReader r(argv[1]);
  const CheckpointMeta& m = r.meta();
  const RunConfig cfg = config_parse(m.config_toml, r.dir() + "/index.h5 (stored config)");
  const ModelConfig& mc = cfg.model;

  std::printf("checkpoint   %s\n", r.dir().c_str());
  std::printf("step         %lld\n", static_cast<long long>(m.step));
  std::printf("tokens       %lld (%lld samples)\n", static_cast<long long>(m.tokens),
              static_cast<long long>(m.samples));
  std::printf("layout       %s\n", m.layout.c_str());
  std::printf("written by   tessera %s (commit %s)\n", m.tessera_version.c_str(), m.git_commit.c_str());
  std::printf("model        %s\n", model_describe(mc).c_str());
  std::printf("parameters   %lld (without vocabulary padding)\n", static_cast<long long>(mc.num_parameters()));
  std::printf("precision    %s on %s; stored tensors %s; tokenizer %s; seed %lld\n",
              cfg.train.precision.c_str(), cfg.train.device.c_str(), m.dtype.c_str(),
              cfg.data.tokenizer.c_str(), static_cast<long long>(m.seed));

  // Tensors in the model's registration order; anything the config does not name goes last.
  std::map<std::string, size_t> order;
  for (const Param& p : session_param_list(mc)) order.emplace(p.name, order.size());
  std::vector<CheckpointReader::TensorInfo> model = r.tensors("model");
  std::stable_sort(model.begin(), model.end(), [&](const auto& a, const auto& b) {
    const auto ia = order.find(a.name), ib = order.find(b.name);
    const size_t ka = ia == order.end() ? order.size() : ia->second;
    const size_t kb = ib == order.end() ? order.size() : ib->second;
    return ka != kb ? ka < kb : a.name < b.name;
  });
  size_t width = 6;
  for (const auto& t : model) width = std::max(width, t.name.size());
  const int w = static_cast<int>(width);
  std::printf("\ntensors (model/)\n  %-*s  %-16s %-5s %14s\n", w, "name", "shape", "dtype", "bytes");
  int64_t elems = 0, bytes = 0;
  for (const auto& t : model) {
    std::printf("  %-*s  %-16s %-5s %14lld%s\n", w, t.name.c_str(), shape_text(t.shape).c_str(),
                t.dtype.c_str(), static_cast<long long>(t.bytes),
                order.count(t.name) ? "" : "  (not in the stored config's model)");
    elems += t.shape.numel();
    bytes += t.bytes;
  }
  std::printf("  %-*s  %zu tensors, %lld elements, %lld bytes (%s)\n", w, "total", model.size(),
              static_cast<long long>(elems), static_cast<long long>(bytes), human_bytes(bytes).c_str());
  std::vector<std::string> missing;
  for (const auto& [name, k] : order)
    if (!r.has("model", name)) missing.push_back(name);
  if (!missing.empty())
    std::printf("  missing: %zu tensors of the stored config's model (first: %s)\n", missing.size(),
                missing.front().c_str());

  std::printf("\noptimizer state: %s\n",
              m.has_optimizer ? "AdamW master weights and moments"
                              : "none (imported weights: the moments start at zero)");
  for (const char* group : {"optim/master", "optim/exp_avg", "optim/exp_avg_sq"}) {
    const auto ts = r.tensors(group);
    int64_t e = 0, b = 0;
    for (const auto& t : ts) e += t.shape.numel(), b += t.bytes;
    if (ts.empty()) std::printf("  %-17s absent\n", group);
    else
      std::printf("  %-17s %zu tensors, %lld elements, %lld bytes (%s)\n", group, ts.size(),
                  static_cast<long long>(e), static_cast<long long>(b), human_bytes(b).c_str());
  }
  std::printf("  (model/ and optim/master/ name the same stored elements)\n");

  std::printf("\nshards\n");
  std::string first_problem;
  int bad = 0;
  int64_t shard_bytes = 0;
  std::vector<size_t> all(r.shards().size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  const std::vector<std::string> problems = r.verify_shards(all);
  for (size_t i = 0; i < r.shards().size(); ++i) {
    const ShardFile& s = r.shards()[i];
    const std::string& problem = problems[i];
    std::printf("  %-16s rank %-5lld %12lld bytes  crc32 %08x  %s\n", s.file.c_str(),
                static_cast<long long>(s.rank), static_cast<long long>(s.bytes),
                static_cast<unsigned>(s.crc32), problem.empty() ? "ok" : "FAILED");
    shard_bytes += s.bytes;
    if (!problem.empty()) {
      std::printf("    %s\n", problem.c_str());
      if (first_problem.empty()) first_problem = problem;
      ++bad;
    }
  }
  std::printf("  total: %zu shards, %lld bytes (%s)\n", r.shards().size(),
              static_cast<long long>(shard_bytes), human_bytes(shard_bytes).c_str());
  if (bad) {
    std::printf("verify: FAILED (%d of %zu shards)\n", bad, r.shards().size());
    std::fflush(stdout);
    throw UserError(first_problem + (bad > 1 ? " (and " + std::to_string(bad - 1) + " more shards)" : ""));
  }
  std::printf("verify: ok (every shard matches its recorded size and CRC-32)\n");
  return 0;
}

}  // namespace tessera
