// `tessera eval`: loss per token of a model (a weights file or a checkpoint directory), either
// on fixed windows of prepared token shards (--tokens) or on given sequences of token ids
// (--ids FILE.json), optionally writing the logits at every position of those (--logits) and
// the gradient of their mean loss with respect to every weight (--grads), under the Hugging Face
// names of the model's family: what a training step on those sequences would descend along,
// comparable tensor by tensor with transformers' backward.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoints/hf/adapter.h"
#include "checkpoints/hf/safetensors.h"
#include "launch/commands.h"
#include "launch/session.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace tessera {
namespace {

// A JSON array of arrays of token ids, each of length 2..T with ids in [0, V).
std::vector<std::vector<int32_t>> read_ids(const std::string& path, int64_t T, int64_t V) {
  if (std::filesystem::is_directory(path)) throw UserError(path + ": is a directory, not a JSON file of token ids");
  std::ifstream in(path);
  if (!in) throw UserError(path + ": cannot read");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  const std::string expected = ": expected a JSON array of sequences of token ids, e.g. [[10, 20, 30], [5, 6]]";
  if (!j.is_array() || j.empty()) throw UserError(path + expected);
  std::vector<std::vector<int32_t>> out;
  for (size_t s = 0; s < j.size(); ++s) {
    const std::string where = path + ": sequence " + std::to_string(s);
    if (!j[s].is_array()) throw UserError(where + " is not an array of token ids");
    const int64_t n = static_cast<int64_t>(j[s].size());
    if (n < 2 || n > T)
      throw UserError(where + " has " + std::to_string(n) + " ids; the model takes 2 to seq_len = " +
                      std::to_string(T));
    std::vector<int32_t> ids;
    for (int64_t k = 0; k < n; ++k) {
      const auto& v = j[s][k];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= V)
        throw UserError(where + ", position " + std::to_string(k) + ": " + v.dump() +
                        " is not a token id of the model's vocabulary (0.." + std::to_string(V - 1) + ")");
      ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
    out.push_back(std::move(ids));
  }
  return out;
}

// A little-endian float32 .npy (format 1.0) of shape (rows, cols).
void write_npy(const std::string& path, const std::vector<float>& data, int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) +
                       ", " + std::to_string(cols) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw UserError(path + ": cannot create");
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.write(reinterpret_cast<const char*>(&len), 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size() * 4));
  out.close();
  if (!out) throw UserError(path + ": cannot write (disk full?)");
}

// The gradients held in `model` (the whole model on this process) as float32 safetensors under
// the Hugging Face names of family m.family.
void write_grads(const std::string& path, Device& dev, ModelInstance& model, const ModelConfig& m) {
  const HfAdapter* hf = hf_adapter_for(m.family);
  if (!hf) throw UserError("eval: --grads: family " + m.family + " has no Hugging Face names");
  std::vector<std::vector<float>> data;
  std::vector<SafetensorsEntry> entries;
  for (const Param& p : model.registry().all()) {
    const std::vector<double> g = tensor_to_host_f64(dev, p.grad);
    const std::vector<float> ours(g.begin(), g.end());
    for (const HfPiece& piece : hf->tensor_map(m, p.name).pieces) {
      data.push_back(hf_piece_from_tessera(p, piece, ours.data()));
      entries.push_back({piece.name, hf_piece_shape(p, piece), nullptr});
    }
  }
  for (size_t i = 0; i < entries.size(); ++i) entries[i].data = data[i].data();
  safetensors_write(path, entries, {{"format", "pt"}, {"content", "gradients of the mean loss"}});
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  const char* usage =
      "usage: tessera eval --model WEIGHTS.h5|CHECKPOINT_DIR (--tokens SHARD_DIR [--batches N] | "
      "--ids FILE.json [--logits OUT.npy] [--grads OUT.safetensors])";
  std::string model_path, tokens, ids_path, logits_path, grads_path;
  int64_t batches = 16;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) throw UserError("eval: " + a + " needs a value (" + usage + ")");
    if (a == "--model") model_path = argv[++i];
    else if (a == "--tokens") tokens = argv[++i];
    else if (a == "--batches") batches = std::stoll(argv[++i]);
    else if (a == "--ids") ids_path = argv[++i];
    else if (a == "--logits") logits_path = argv[++i];
    else if (a == "--grads") grads_path = argv[++i];
    else throw UserError("eval: unknown option " + a + " (" + usage + ")");
  }
  if (model_path.empty() || tokens.empty() == ids_path.empty()) throw UserError(usage);
  if ((!logits_path.empty() || !grads_path.empty()) && ids_path.empty())
    throw UserError("eval: --logits and --grads need --ids (" + std::string(usage) + ")");
  RunConfig cfg;
  auto cpu = Device::create(DeviceKind::cpu);
  auto model = session_is_checkpoint(model_path)
                   ? session_load_checkpoint_model(model_path, *cpu, /*B=*/1, cfg)
                   : session_load_model(model_path, *cpu, /*B=*/1, cfg);
  cfg.train.micro_batch = 1;
  if (!tokens.empty()) {
    const data::ShardSet shards = data::ShardSet::open(tokens);
    session_check_shards(cfg, shards);
    const EvalResult r = session_evaluate(*cpu, *model, cfg, shards, batches);
    std::printf("{\"loss\": %.9g, \"tokens\": %lld}\n", r.loss, static_cast<long long>(r.tokens));
    return 0;
  }

  // Given sequences, one at a time in a window of seq_len: a causal model's logits at a
  // position do not depend on what follows, so the padding after a sequence changes nothing
  // before it; its positions get target -1 (no loss).
  const int64_t T = cfg.model.seq_len, V = cfg.model.vocab_size, Vp = cfg.model.padded_vocab();
  const auto seqs = read_ids(ids_path, T, V);
  if (!grads_path.empty() && cfg.model.dropout != 0)
    throw UserError("eval: --grads: the model has dropout = " + std::to_string(cfg.model.dropout) +
                    " and its backward applies it; gradients are taken of models without dropout");
  int64_t targets_total = 0;  // the gradient is of the mean over every sequence's targets
  for (const auto& s : seqs) targets_total += static_cast<int64_t>(s.size()) - 1;
  if (!grads_path.empty()) ops::fill_zero(*cpu, model->registry().flat_grads());
  const DType dt = model->registry().all().front().value.dtype;
  const DType loss_dtype = dt == DType::f64 ? DType::f64 : DType::f32;
  Arena measure("eval", DeviceKind::cpu);
  measure.take({1, T}, DType::i32);
  measure.take({1, T}, DType::i32);
  measure.take({T}, loss_dtype);
  Arena arena("eval", *cpu, measure.used());
  Tensor in = arena.take({1, T}, DType::i32), tg = arena.take({1, T}, DType::i32);
  Tensor losses = arena.take({T}, loss_dtype);
  double sum = 0;
  int64_t count = 0;
  std::vector<float> logits;
  auto load = [&](const std::vector<int32_t>& s) {  // the window and its targets
    std::vector<int32_t> window(T, 0), targets(T, -1);
    std::copy(s.begin(), s.end(), window.begin());
    std::copy(s.begin() + 1, s.end(), targets.begin());
    cpu->copy_from_host(in, window.data());
    cpu->copy_from_host(tg, targets.data());
  };
  for (const auto& s : seqs) {
    const int64_t n = static_cast<int64_t>(s.size());
    load(s);
    model->stage().forward(*cpu, 0, in, Tensor{}, tg, losses, DropoutKey{}, false, 0.0f);
    const std::vector<double> l = tensor_to_host_f64(*cpu, losses);
    for (int64_t k = 0; k + 1 < n; ++k) sum += l[k];
    count += n - 1;
    if (logits_path.empty()) continue;
    const std::vector<double> z =
        tensor_to_host_f64(*cpu, model->stage().logits(0).view({T, Vp}).slice_rows(0, n));
    for (int64_t k = 0; k < n; ++k)
      for (int64_t v = 0; v < V; ++v) logits.push_back(static_cast<float>(z[k * Vp + v]));
  }
  if (!grads_path.empty()) {
    // Again with the loss's gradient (it replaces the logits), then backward: sums over sequences.
    const float dloss = 1.0f / static_cast<float>(targets_total);
    for (const auto& s : seqs) {
      load(s);
      model->stage().forward(*cpu, 0, in, Tensor{}, tg, losses, DropoutKey{}, false, dloss);
      model->stage().backward(*cpu, 0, in, Tensor{}, DropoutKey{});
    }
    write_grads(grads_path, *cpu, *model, cfg.model);
  }
  if (!logits_path.empty()) write_npy(logits_path, logits, static_cast<int64_t>(logits.size()) / V, V);
  std::printf("{\"loss\": %.9g, \"tokens\": %lld}\n", sum / static_cast<double>(count),
              static_cast<long long>(count));
  return 0;
}

}  // namespace tessera
