// parity_dump: trains a tiny model of one family (gpt2, llama, neox, bloom) on the CPU in fp32
// for a few AdamW steps and writes everything an independent implementation needs to
// reproduce the run into one HDF5 file, for tests/reference/torch_parity.py:
//   /config              attributes: model shape and components (family, norm, position,
//                        activation, residual, ...), optimizer settings, steps, micro-batches
//   /inputs, /targets    (steps, micro, B, T) i32; targets are the inputs shifted by one
//   /init/<param>        weights before step 1 (f32, global shape, registry names)
//   /grads/<param>       gradients of step 1, summed over its micro-batches, before clipping
//   /final/<param>       weights after the last step
//   /losses, /grad_norms, /clip_scales   (steps) f64: per-step mean loss, global gradient
//                        norm before clipping, and the factor the gradients were scaled by
// The step below mirrors Trainer::train_step (loss = mean over every token of the step,
// accumulated as a plain sum of per-micro-batch gradients scaled by 1/(global tokens)).
#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "checkpoints/hdf5.h"
#include "model/init.h"
#include "model/instance.h"
#include "optim/adamw.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "runtime/philox.h"

namespace tessera {
namespace {

struct ParityRun {
  ModelConfig model;
  OptimConfig optim;
  int64_t micro_batch = 4;
  int64_t micro_steps = 2;  // micro-batches accumulated per step
  int64_t steps = 5;
  uint64_t seed = 1234;
};

// Each family's preset on a small shape chosen to exercise its components: grouped-query
// heads for llama (4 query heads over 2 key/value heads), a head size of 16 for neox so that
// its 25% rotary share is 4 dimensions (two pairs: 2 would make rotate-half and interleaved
// pairing the same, and leave one frequency, theta^0, whatever the exponent's denominator),
// and 6 heads for bloom (ALiBi slopes for a head count that is not a power of two).
ParityRun parity_run_for(const std::string& family) {
  ParityRun r;
  if (!model_apply_family(r.model, family)) throw UserError("unknown family '" + family + "'");
  r.model.n_layer = 2;
  r.model.d_model = 64;
  r.model.n_head = 4;
  r.model.seq_len = 32;
  r.model.vocab_size = 257;  // byte tokenizer: 256 bytes + end of document
  r.model.dropout = 0.0;
  // One initialisation for every family (N(0, 0.02), output projections scaled): the clip
  // thresholds below are set from the gradient norms it gives. With NeoX's small init the
  // attention key bias (whose gradient is exactly zero, so float32 rounding noise that Adam
  // scales to lr-sized steps) drifts 6e-5 between PyTorch fp32 and fp64 themselves, above any
  // tolerance that says something about the other tensors. model.init is unit-tested on its own.
  r.model.init = "normal", r.model.init_std = 0.02;
  r.optim.lr = 1e-3;
  r.optim.schedule = "constant";
  r.optim.weight_decay = 0.1;
  r.optim.beta1 = 0.9;
  r.optim.beta2 = 0.95;
  r.optim.eps = 1e-8;
  // A clip threshold between the run's largest and smallest gradient norms clips some steps
  // and not others (the dump records which; the script checks both). GPT-2's and NeoX's norms
  // are about 0.56 in the first steps and 0.49 in the last.
  r.optim.grad_clip = 0.5;
  if (family == "llama") {
    r.model.n_kv_head = 2;
    r.optim.grad_clip = 0.795;  // norms 0.78 to 0.81
  } else if (family == "bloom") {
    r.model.d_model = 48;
    r.model.n_head = 6;
    r.optim.grad_clip = 0.603;  // norms 0.598 to 0.605
  }
  return r;
}

// ---- minimal HDF5 writing (RAII over hid_t) ----

class H5 {
 public:
  H5(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) { TS_CHECK_HDF5(id); }
  ~H5() { close_(id_); }
  H5(const H5&) = delete;
  H5& operator=(const H5&) = delete;
  hid_t get() const { return id_; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

void write_dataset(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims,
                   hid_t file_type, hid_t mem_type, const void* data) {
  H5 space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  H5 ds(
      H5Dcreate2(loc, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose);
  TS_CHECK_HDF5(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
}

void write_f64_attr(hid_t obj, const char* name, double v) {
  H5 space(H5Screate(H5S_SCALAR), H5Sclose);
  H5 attr(H5Acreate2(obj, name, H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  TS_CHECK_HDF5(H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, &v));
}

void write_i64_attr(hid_t obj, const char* name, int64_t v) {
  H5 space(H5Screate(H5S_SCALAR), H5Sclose);
  H5 attr(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  TS_CHECK_HDF5(H5Awrite(attr.get(), H5T_NATIVE_INT64, &v));
}

// One group holding every parameter's value or gradient as f32 with its global shape.
void write_params(hid_t file, const char* group, Device& dev, const ParamRegistry& registry,
                  bool grads) {
  H5 g(H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  for (const Param& p : registry.all()) {
    const std::vector<double> host = tensor_to_host_f64(dev, grads ? p.grad : p.value);
    std::vector<float> f(host.begin(), host.end());  // exact: the tensors are f32
    std::vector<hsize_t> dims;
    for (int d = 0; d < p.global_shape.rank; ++d) dims.push_back(p.global_shape[d]);
    write_dataset(g.get(), p.name, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, f.data());
  }
}

// Fixed pseudo-random token sequences, every id of the vocabulary (the end-of-document id
// included) possible. Row r of the step's batch is tokens [0, T] of one sequence; inputs are
// [0, T), targets [1, T].
void make_tokens(const ParityRun& run, std::vector<int32_t>& inputs,
                 std::vector<int32_t>& targets) {
  const int64_t T = run.model.seq_len, V = run.model.vocab_size;
  const int64_t rows = run.steps * run.micro_steps * run.micro_batch;
  inputs.resize(rows * T);
  targets.resize(rows * T);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t <= T; ++t) {
      const philox::Block b = philox::generate(run.seed, static_cast<uint64_t>(r * (T + 1) + t), 7);
      const auto id = static_cast<int32_t>(b.v[0] % static_cast<uint32_t>(V));
      if (t < T) inputs[r * T + t] = id;
      if (t > 0) targets[r * T + t - 1] = id;
    }
}

// GPT-2 initialisation leaves every bias at 0 and every LayerNorm weight at 1, which would
// hide a missing or misplaced bias/gain from the loss and gradient comparison. Perturb them.
void perturb_norms_and_biases(Device& dev, ParamRegistry& registry, uint64_t seed) {
  for (Param& p : registry.all()) {
    if (p.kind != ParamKind::bias && p.kind != ParamKind::norm) continue;
    std::vector<double> host = tensor_to_host_f64(dev, p.value);
    const uint64_t stream = philox::hash_name(p.name.c_str()) ^ 0x5eed;
    for (size_t i = 0; i < host.size(); ++i) host[i] += 0.1 * philox::normal(seed, stream, i);
    ops::convert(dev, p.value, Tensor{host.data(), DType::f64, DeviceKind::cpu, p.value.shape});
  }
}

// Runs the training and writes the file at `path` (closed on return).
void parity_dump_write(const std::string& path, const std::string& family) {
  const ParityRun run = parity_run_for(family);
  const ModelConfig& m = run.model;
  const int64_t B = run.micro_batch, T = m.seq_len, M = run.micro_steps;
  auto dev = Device::create(DeviceKind::cpu);

  RunShape shape;
  shape.micro_batch = B;
  shape.seq_len = T;
  shape.compute = DType::f32;
  shape.device = DeviceKind::cpu;
  ModelInstance model(m, stage_spec_whole(m), shape, *dev, DType::f32);
  ParamRegistry& registry = model.registry();
  init_parameters(*dev, registry, run.seed);
  perturb_norms_and_biases(*dev, registry, run.seed);

  AdamW optimizer(run.optim, registry, DType::f32);
  Arena measure("optimizer", DeviceKind::cpu);
  optimizer.layout(measure);
  Arena state("optimizer", *dev, measure.used());
  optimizer.layout(state);
  optimizer.init_master(*dev);

  std::vector<int32_t> host_inputs, host_targets;
  make_tokens(run, host_inputs, host_targets);
  Tensor inputs, targets, losses, norm_scratch;
  auto carve = [&](Arena& a) {
    inputs = a.take({B, T}, DType::i32);
    targets = a.take({B, T}, DType::i32);
    losses = a.take({B * T}, DType::f32);
    norm_scratch = a.take({1}, DType::f32);
  };
  Arena measure_io("io", DeviceKind::cpu);
  carve(measure_io);
  Arena io("io", *dev, measure_io.used());
  carve(io);

  H5 file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  {
    H5 cfg(H5Gcreate2(file.get(), "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    h5::write_string_attr(cfg.get(), "family", m.family);
    write_i64_attr(cfg.get(), "n_layer", m.n_layer);
    write_i64_attr(cfg.get(), "d_model", m.d_model);
    write_i64_attr(cfg.get(), "n_head", m.n_head);
    write_i64_attr(cfg.get(), "n_kv_head", m.kv_heads());
    write_i64_attr(cfg.get(), "d_ff", m.ff());
    write_i64_attr(cfg.get(), "seq_len", m.seq_len);
    write_i64_attr(cfg.get(), "vocab_size", m.vocab_size);
    write_i64_attr(cfg.get(), "padded_vocab", m.padded_vocab());
    h5::write_string_attr(cfg.get(), "norm", m.norm);
    write_f64_attr(cfg.get(), "norm_eps", m.norm_eps);
    write_i64_attr(cfg.get(), "bias", m.has_linear_bias());
    write_i64_attr(cfg.get(), "qkv_bias", m.has_qkv_bias());
    h5::write_string_attr(cfg.get(), "position", m.position);
    write_f64_attr(cfg.get(), "rope_theta", m.rope_theta);
    write_i64_attr(cfg.get(), "rotary_dims", m.rotary_dims());
    h5::write_string_attr(cfg.get(), "activation", m.activation);
    h5::write_string_attr(cfg.get(), "residual", m.residual);
    write_i64_attr(cfg.get(), "embedding_norm", m.embedding_norm);
    write_i64_attr(cfg.get(), "tie_embeddings", m.tie_embeddings);
    write_i64_attr(cfg.get(), "micro_batch", B);
    write_i64_attr(cfg.get(), "micro_steps", M);
    write_i64_attr(cfg.get(), "steps", run.steps);
    write_f64_attr(cfg.get(), "lr", run.optim.lr);
    write_f64_attr(cfg.get(), "weight_decay", run.optim.weight_decay);
    write_f64_attr(cfg.get(), "beta1", run.optim.beta1);
    write_f64_attr(cfg.get(), "beta2", run.optim.beta2);
    write_f64_attr(cfg.get(), "eps", run.optim.eps);
    write_f64_attr(cfg.get(), "grad_clip", run.optim.grad_clip);
    write_i64_attr(cfg.get(), "decay_embeddings", run.optim.decay_embeddings);
    write_i64_attr(cfg.get(), "decay_norms_and_biases", run.optim.decay_norms_and_biases);
  }
  const std::vector<hsize_t> token_dims = {static_cast<hsize_t>(run.steps), static_cast<hsize_t>(M),
                                           static_cast<hsize_t>(B), static_cast<hsize_t>(T)};
  write_dataset(file.get(), "inputs", token_dims, H5T_STD_I32LE, H5T_NATIVE_INT32,
                host_inputs.data());
  write_dataset(file.get(), "targets", token_dims, H5T_STD_I32LE, H5T_NATIVE_INT32,
                host_targets.data());
  write_params(file.get(), "init", *dev, registry, false);

  std::vector<double> step_losses, grad_norms, clip_scales;
  const float dloss = 1.0f / static_cast<float>(M * B * T);
  for (int64_t step = 0; step < run.steps; ++step) {
    ops::fill_zero(*dev, registry.flat_grads());
    double loss_sum = 0;
    for (int64_t mb = 0; mb < M; ++mb) {
      const size_t offset = static_cast<size_t>((step * M + mb) * B * T);
      dev->copy_from_host(inputs, host_inputs.data() + offset);
      dev->copy_from_host(targets, host_targets.data() + offset);
      const DropoutKey key{run.seed, step, (step * M + mb) * B};
      model.stage().forward(*dev, 0, inputs, Tensor{}, targets, losses, key, true, dloss);
      model.stage().backward(*dev, 0, inputs, Tensor{}, key);
      for (double l : tensor_to_host_f64(*dev, losses)) loss_sum += l;
    }
    if (step == 0) write_params(file.get(), "grads", *dev, registry, true);
    const double norm = grad_global_norm(*dev, registry, norm_scratch);
    const double clip = run.optim.grad_clip;
    const double scale = clip > 0 && norm > clip ? clip / norm : 1.0;
    optimizer.step(*dev, lr_at(run.optim, step, run.steps), step + 1, scale);
    step_losses.push_back(loss_sum / static_cast<double>(M * B * T));
    grad_norms.push_back(norm);
    clip_scales.push_back(scale);
    std::printf("step %lld: loss %.7f grad norm %.6f clip scale %.6f\n",
                static_cast<long long>(step + 1), step_losses.back(), norm, scale);
  }
  write_params(file.get(), "final", *dev, registry, false);
  const std::vector<hsize_t> step_dims = {static_cast<hsize_t>(run.steps)};
  write_dataset(file.get(), "losses", step_dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                step_losses.data());
  write_dataset(file.get(), "grad_norms", step_dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                grad_norms.data());
  write_dataset(file.get(), "clip_scales", step_dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                clip_scales.data());
  TS_CHECK_HDF5(H5Fflush(file.get(), H5F_SCOPE_GLOBAL));
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || argv[1][0] == '-') {
    std::fprintf(stderr, "usage: parity_dump OUT.h5 [gpt2|llama|neox|bloom]\n");
    return 2;
  }
  const std::string path = argv[1], tmp = path + ".partial";
  const std::string family = argc == 3 ? argv[2] : "gpt2";
  try {
    tessera::parity_dump_write(tmp, family);  // a file exists under its name only once complete
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw tessera::UserError("cannot rename " + tmp + " to " + path);
    std::printf("wrote %s\n", path.c_str());
    return 0;
  } catch (const tessera::UserError& e) {
    std::fprintf(stderr, "parity_dump: error: %s\n", e.what());
    return 2;
  }
}
