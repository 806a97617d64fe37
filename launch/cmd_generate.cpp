#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "launch/commands.h"
#include "launch/session.h"
#include "runtime/error.h"
#include "runtime/philox.h"

namespace tessera {
namespace {

// Samples from softmax(logits / temperature) restricted to the top_k largest (0 = all).
int32_t sample_token(const std::vector<double>& logits, int64_t V, double temperature, int64_t top_k,
                     double u) {
  std::vector<int32_t> ids(V);
  std::iota(ids.begin(), ids.end(), 0);
  if (temperature <= 0) return *std::max_element(ids.begin(), ids.end(), [&](int a, int b) { return logits[a] < logits[b]; });
  if (top_k > 0 && top_k < V) {
    std::partial_sort(ids.begin(), ids.begin() + top_k, ids.end(),
                      [&](int a, int b) { return logits[a] > logits[b]; });
    ids.resize(top_k);
  }
  double maxv = -INFINITY;
  for (int32_t i : ids) maxv = std::max(maxv, logits[i]);
  std::vector<double> p(ids.size());
  double sum = 0;
  for (size_t j = 0; j < ids.size(); ++j) sum += p[j] = std::exp((logits[ids[j]] - maxv) / temperature);
  double acc = 0;
  for (size_t j = 0; j < ids.size(); ++j)
    if ((acc += p[j] / sum) > u) return ids[j];
  return ids.back();
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  const char* usage =
      "usage: tessera generate --model WEIGHTS.h5 --prompt TEXT [--tokens N] [--temperature T] "
      "[--top-k K] [--seed S]";
  std::string model_path, prompt;
  int64_t n_tokens = 200, top_k = 40, seed = 1;
  double temperature = 0.8;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) throw UserError("generate: " + a + " needs a value (" + usage + ")");
    if (a == "--model") model_path = argv[++i];
    else if (a == "--prompt") prompt = argv[++i];
    else if (a == "--tokens") n_tokens = std::stoll(argv[++i]);
    else if (a == "--temperature") temperature = std::stod(argv[++i]);
    else if (a == "--top-k") top_k = std::stoll(argv[++i]);
    else if (a == "--seed") seed = std::stoll(argv[++i]);
    else throw UserError("generate: unknown option " + a + " (" + usage + ")");
  }
  if (model_path.empty()) throw UserError(usage);
  RunConfig cfg;
  auto cpu = Device::create(DeviceKind::cpu);
  auto model = session_load_model(model_path, *cpu, /*B=*/1, cfg);
  auto tok = data::tokenizer_create(cfg.data.tokenizer);
  const int64_t T = cfg.model.seq_len, V = cfg.model.vocab_size;
  std::vector<int32_t> ids = tok->encode(prompt);
  if (ids.empty()) ids.push_back(tok->eod_id());
  // Key/value caches for T positions: each new token costs one pass over the positions before
  // it. When the context is full, the newest T/2 tokens are decoded again from position 0.
  Stage& stage = model->stage();
  const DType dtype = model->registry().all().front().value.dtype;
  Arena measure("generate", DeviceKind::cpu);
  stage.layout_decode(measure, dtype);
  measure.take({1, 1}, DType::i32);
  Arena arena("generate", *cpu, measure.used());
  stage.layout_decode(arena, dtype);
  Tensor token = arena.take({1, 1}, DType::i32);
  int64_t pos = 0;
  Tensor logits;
  auto feed = [&](int32_t id) {
    cpu->copy_from_host(token, &id);
    logits = stage.decode(*cpu, token, pos++);
  };
  std::vector<int32_t> context(ids.end() - std::min<int64_t>(static_cast<int64_t>(ids.size()), T), ids.end());
  for (int32_t id : context) feed(id);
  std::vector<int32_t> out;
  for (int64_t n = 0; n < n_tokens; ++n) {
    const double u = philox::uniform(static_cast<uint64_t>(seed), 0, static_cast<uint64_t>(n));
    const int32_t next = sample_token(tensor_to_host_f64(*cpu, logits), V, temperature, top_k, u);
    if (next == tok->eod_id()) break;
    out.push_back(next);
    context.push_back(next);
    if (pos == T) {  // context full: keep the newest half, positions from 0 again
      context.erase(context.begin(), context.end() - T / 2);
      pos = 0;
      for (size_t i = 0; i + 1 < context.size(); ++i) feed(context[i]);
    }
    feed(next);
  }
  std::printf("%s%s\n", prompt.c_str(), tok->decode(out.data(), out.size()).c_str());
  return 0;
}

}  // namespace tessera
