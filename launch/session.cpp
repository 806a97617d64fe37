#include "launch/session.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "checkpoints/weights_file.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace tessera {

std::unique_ptr<Device> session_device(const RunConfig& cfg, int local_rank, int local_ranks, int rank) {
  if (cfg.train.threads > 0)
    omp_set_num_threads(static_cast<int>(cfg.train.threads));
  else if (local_ranks > 1)  // oversubscribing cores slows every rank down
    omp_set_num_threads(std::max(1, omp_get_num_procs() / local_ranks));
  if (cfg.train.device != "cuda") return Device::create(DeviceKind::cpu);
  const int visible = cuda_device_count();
  const int ordinal = cuda_ordinal_for(visible, local_rank, local_ranks);
  const char* mask = std::getenv("CUDA_VISIBLE_DEVICES");
  std::fprintf(stderr, "tessera: rank %d (local rank %d of %d): GPU %d of %d visible (CUDA_VISIBLE_DEVICES=%s)\n",
               rank, local_rank, local_ranks, ordinal, visible, mask ? mask : "unset");
  return Device::create(DeviceKind::cuda, ordinal);
}

int cuda_ordinal_for(int visible, int local_rank, int local_ranks) {
  if (visible < 1)
    throw UserError("train.device = \"cuda\" but no CUDA GPU is visible to this process");
  if (visible == 1) return 0;
  if (local_rank < visible) return local_rank;
  throw UserError("train.device = \"cuda\": " + std::to_string(local_ranks) +
                  " ranks on this node but only " + std::to_string(visible) +
                  " GPUs visible to each (give one GPU per rank: --gpus-per-task=1, or as many "
                  "visible GPUs as ranks)");
}

void session_resolve_vocab(RunConfig& cfg) {
  const int64_t v = data::tokenizer_create(cfg.data.tokenizer)->vocab_size();
  if (cfg.model.vocab_size == 0) cfg.model.vocab_size = v;
  if (cfg.model.vocab_size < v)
    throw UserError(cfg.source + ": model.vocab_size = " + std::to_string(cfg.model.vocab_size) +
                    " is smaller than the tokenizer's vocabulary (" + std::to_string(v) + ")");
}

void session_check_shards(const RunConfig& cfg, const data::ShardSet& shards) {
  if (shards.vocab_size() > cfg.model.vocab_size)
    throw UserError(cfg.source + ": the token shards were written for a vocabulary of " +
                    std::to_string(shards.vocab_size()) + " but model.vocab_size = " +
                    std::to_string(cfg.model.vocab_size) +
                    " (data.tokenizer does not match the shards?)");
}

namespace {

// The whole model, micro-batch `B`, computing in the stored dtype (bf16 on a GPU).
std::unique_ptr<ModelInstance> whole_model(const RunConfig& cfg, const std::string& dtype,
                                           Device& dev, int64_t B) {
  RunShape shape;
  shape.micro_batch = B;
  shape.seq_len = cfg.model.seq_len;
  shape.device = dev.kind();
  shape.compute = dev.kind() == DeviceKind::cuda ? DType::bf16
                  : dtype == "f64"               ? DType::f64
                                                 : DType::f32;
  const DType grad = shape.compute == DType::bf16 ? DType::f32 : shape.compute;
  return std::make_unique<ModelInstance>(cfg.model, stage_spec_whole(cfg.model), shape, dev, grad);
}

}  // namespace

std::unique_ptr<ModelInstance> session_load_model(const std::string& path, Device& dev, int64_t B,
                                                  RunConfig& cfg) {
  const WeightsMeta meta = weights_read_meta(path);
  cfg = config_parse(meta.config_toml, path + " (stored config)");
  auto model = whole_model(cfg, meta.dtype, dev, B);
  weights_load(path, dev, model->registry());
  return model;
}

bool session_is_checkpoint(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) && std::filesystem::exists(path + "/index.h5", ec);
}

std::unique_ptr<ModelInstance> session_load_checkpoint_model(const std::string& dir, Device& dev,
                                                             int64_t B, RunConfig& cfg) {
  const CheckpointReader r(dir);
  if (std::string problem = r.first_problem(true); !problem.empty()) throw UserError(problem);
  cfg = config_parse(r.meta().config_toml, r.dir() + "/index.h5 (stored config)");
  auto model = whole_model(cfg, r.meta().dtype, dev, B);
  r.load_parameters(dev, model->registry());
  return model;
}

std::vector<Param> session_param_list(const ModelConfig& m) {
  ParamRegistry reg;
  const Stage stage(m, stage_spec_whole(m), TensorSlice{}, reg);
  return reg.all();
}

EvalResult session_evaluate_part(Device& dev, const RunConfig& cfg, const data::ShardSet& shards,
                                 int64_t batches, DType loss_dtype, const EvalForward& forward,
                                 int part, int parts) {
  const int64_t T = cfg.model.seq_len, B = cfg.train.micro_batch;
  data::Loader loader(shards, T, 0);  // seed 0: fixed windows, the same for every evaluation
  batches = std::min<int64_t>(batches, std::max<int64_t>(1, loader.num_windows() / B));
  Arena measure("eval", dev.kind());
  auto carve = [&](Arena& a) {
    return std::vector<Tensor>{a.take({B, T}, DType::i32), a.take({B, T}, DType::i32),
                               a.take({B * T}, loss_dtype)};
  };
  carve(measure);
  Arena arena("eval", dev, measure.used());
  const auto buf = carve(arena);
  std::vector<int32_t> in(B * T), tg(B * T);
  EvalResult r;
  for (int64_t b = part; b < batches; b += parts) {
    loader.batch(b, B, 0, B, in.data(), tg.data());
    dev.copy_from_host(buf[0], in.data());
    dev.copy_from_host(buf[1], tg.data());
    if (!forward(buf[0], buf[1], buf[2])) continue;
    for (double l : tensor_to_host_f64(dev, buf[2])) r.sum += l;
    r.tokens += B * T;
  }
  r.loss = r.tokens ? r.sum / static_cast<double>(r.tokens) : 0.0;
  return r;
}

EvalResult session_evaluate(Device& dev, ModelInstance& model, const RunConfig& cfg,
                            const data::ShardSet& shards, int64_t batches) {
  const DType loss_dtype = model.registry().all().front().value.dtype == DType::f64 ? DType::f64 : DType::f32;
  return session_evaluate_part(dev, cfg, shards, batches, loss_dtype,
                               [&](Tensor in, Tensor tg, Tensor losses) {
                                 model.stage().forward(dev, 0, in, Tensor{}, tg, losses,
                                                       DropoutKey{}, false, 0.0f);
                                 return true;
                               });
}

}  // namespace tessera
