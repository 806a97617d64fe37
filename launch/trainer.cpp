#include "launch/trainer.h"

#include "launch/session.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "checkpoints/weights_file.h"
#include "model/init.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/ops.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string format_duration(double s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%.0fs", s);
  return buf;
}

}  // namespace

Trainer::Trainer(const RunConfig& cfg, Device& dev)
    : cfg_(cfg), dev_(dev), topology_(1, cfg.parallel.tp, cfg.parallel.pp, cfg.parallel.dp) {
  const TrainConfig& t = cfg_.train;
  const ModelConfig& m = cfg_.model;
  compute_ = t.precision == "fp64" ? DType::f64 : t.precision == "bf16" ? DType::bf16 : DType::f32;
  grad_dtype_ = compute_ == DType::bf16 ? DType::f32 : compute_;
  if (topology_.tp() * topology_.pp() * topology_.dp() != 1)
    throw UserError(cfg_.source + ": [parallel] asks for tp*pp*dp > 1 but this run has one process");
  const int64_t global_batch = t.global_batch ? t.global_batch : t.micro_batch * topology_.dp();
  if (global_batch % (t.micro_batch * topology_.dp()) != 0)
    throw UserError(cfg_.source + ": train.global_batch = " + std::to_string(global_batch) +
                    " is not divisible by train.micro_batch * dp = " +
                    std::to_string(t.micro_batch * topology_.dp()));
  cfg_.train.global_batch = global_batch;
  micro_per_step_ = global_batch / (t.micro_batch * topology_.dp());

  // Data first: its errors (missing shards) are the likeliest user mistake.
  if (cfg_.data.train.empty()) throw UserError(cfg_.source + ": data.train is not set (a directory of token shards from `tessera prepare`)");
  train_shards_ = std::make_unique<data::ShardSet>(data::ShardSet::open(cfg_.data.train));
  if (!cfg_.data.valid.empty())
    valid_shards_ = std::make_unique<data::ShardSet>(data::ShardSet::open(cfg_.data.valid));
  train_loader_ = std::make_unique<data::Loader>(*train_shards_, m.seq_len, static_cast<uint64_t>(t.seed));

  schedule_ = schedule_make(cfg_.parallel.schedule, topology_.pp(), 0, static_cast<int>(micro_per_step_));
  RunShape shape;
  shape.micro_batch = t.micro_batch;
  shape.seq_len = m.seq_len;
  shape.slots = slots_ = schedule_max_in_flight(schedule_);
  shape.recompute = t.recompute == "full" ? Recompute::full : Recompute::none;
  shape.compute = compute_;
  shape.device = dev.kind();
  model_ = std::make_unique<ModelInstance>(m, stage_spec_whole(m), shape, dev, grad_dtype_);
  init_parameters(dev, model_->registry(), static_cast<uint64_t>(t.seed));

  const DType master = compute_ == DType::f64 ? DType::f64 : DType::f32;
  optimizer_ = std::make_unique<AdamW>(cfg_.optim, model_->registry(), master);
  {
    Arena measure("optimizer", dev.kind());
    optimizer_->layout(measure);
    state_ = std::make_unique<Arena>("optimizer", dev, measure.used());
    optimizer_->layout(*state_);
  }
  optimizer_->init_master(dev);

  // Per-step token and loss buffers on the device.
  const DType loss_dtype = compute_ == DType::f64 ? DType::f64 : DType::f32;
  const int64_t n = micro_per_step_ * t.micro_batch * m.seq_len;
  auto carve = [&](Arena& a) {
    inputs_ = a.take({micro_per_step_, t.micro_batch, m.seq_len}, DType::i32);
    targets_ = a.take({micro_per_step_, t.micro_batch, m.seq_len}, DType::i32);
    losses_ = a.take({micro_per_step_, t.micro_batch * m.seq_len}, loss_dtype);
    norm_scratch_ = a.take({1}, grad_dtype_);
  };
  Arena measure_io("io", dev.kind());
  carve(measure_io);
  io_ = std::make_unique<Arena>("io", dev, measure_io.used());
  carve(*io_);
  host_inputs_.resize(n);
  host_targets_.resize(n);

  flops_per_token_ = m.flops_per_token();
  peak_flops_ = dev.peak_flops();

  std::filesystem::create_directories(cfg_.log.dir);
  {
    std::ofstream c(cfg_.log.dir + "/config.toml");
    c << config_to_toml(cfg_);
    if (!c) throw UserError(cfg_.log.dir + "/config.toml: cannot write (log.dir not writable?)");
  }
  metrics_.open(cfg_.log.dir + "/metrics.jsonl", std::ios::trunc);
}

Trainer::~Trainer() = default;

std::string Trainer::arena_summary() const {
  return arena_report({&model_->params_arena(), &model_->grads_arena(), state_.get(),
                       &model_->acts_arena(), io_.get()});
}

void Trainer::load_batch(int64_t step) {
  const TrainConfig& t = cfg_.train;
  const int64_t per_rank = micro_per_step_ * t.micro_batch;
  const int64_t first = topology_.coords(0).dp * per_rank;  // this rank's slice of the batch
  train_loader_->batch(step, t.global_batch, first, per_rank, host_inputs_.data(),
                       host_targets_.data());
  dev_.copy_from_host(inputs_, host_inputs_.data());
  dev_.copy_from_host(targets_, host_targets_.data());
}

// All gradient work after backward lives here: with one rank there is nothing to reduce;
// data-parallel buckets, tensor-parallel and tied-embedding reductions slot in here.
void Trainer::finalize_grads() {}

StepResult Trainer::train_step(int64_t step) {
  const TrainConfig& t = cfg_.train;
  const int64_t T = cfg_.model.seq_len;
  GptStage& stage = model_->stage();
  const int slots = slots_;
  StepResult r;
  const auto t0 = Clock::now();

  load_batch(step);
  r.data_ms = ms_since(t0);
  ops::fill_zero(dev_, model_->registry().flat_grads());
  // The loss is the mean over every token of the global batch, so each micro-batch's
  // gradient is scaled by 1/(global tokens) and accumulation is a plain sum.
  const float dloss = 1.0f / static_cast<float>(t.global_batch * T);
  const int64_t rank_first = topology_.coords(0).dp * micro_per_step_ * t.micro_batch;
  for (const PipeOp& op : schedule_) {
    const int mb = op.microbatch, slot = mb % slots;
    const DropoutKey key{static_cast<uint64_t>(t.seed), step,
                         step * t.global_batch + rank_first + mb * t.micro_batch};
    Tensor tokens = inputs_.slice_rows(mb, 1).view({t.micro_batch, T});
    if (op.kind == PipeOpKind::forward) {
      Tensor targets = targets_.slice_rows(mb, 1).view({t.micro_batch, T});
      stage.forward(dev_, slot, tokens, Tensor{}, targets, losses_.slice_rows(mb, 1).view({t.micro_batch * T}),
                    key, true, dloss);
    } else {
      stage.backward(dev_, slot, tokens, Tensor{}, key);
    }
  }
  finalize_grads();
  r.grad_norm = grad_global_norm(dev_, model_->registry(), norm_scratch_);
  const double clip = cfg_.optim.grad_clip;
  const double scale = clip > 0 && r.grad_norm > clip ? clip / r.grad_norm : 1.0;
  r.lr = lr_at(cfg_.optim, step, t.steps);
  optimizer_->step(dev_, r.lr, step + 1, scale);

  const std::vector<double> losses = tensor_to_host_f64(dev_, losses_);  // also waits for the step
  r.loss = std::accumulate(losses.begin(), losses.end(), 0.0) / static_cast<double>(losses.size());
  r.step_ms = ms_since(t0);
  const double tokens = static_cast<double>(t.global_batch * T);
  r.tokens_per_s = tokens / (r.step_ms / 1000.0);
  r.mfu = flops_per_token_ * r.tokens_per_s / peak_flops_;
  return r;
}

double Trainer::evaluate() {
  if (!valid_shards_) return NAN;
  return session_evaluate(dev_, *model_, cfg_, *valid_shards_, cfg_.train.eval_batches).loss;
}

void Trainer::log_step(int64_t step, const StepResult& r) {
  tokens_since_start_ += r.tokens_per_s * r.step_ms / 1000.0;
  seconds_since_start_ += r.step_ms / 1000.0;
  const double eta = seconds_since_start_ / static_cast<double>(step + 1) *
                     static_cast<double>(cfg_.train.steps - step - 1);
  char line[512];
  std::snprintf(line, sizeof line,
                "step %5lld/%lld | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | MFU %.1f%% | "
                "%.0f ms (data %.1f ms) | ETA %s",
                static_cast<long long>(step + 1), static_cast<long long>(cfg_.train.steps), r.loss,
                r.lr, r.grad_norm, r.tokens_per_s, 100.0 * r.mfu, r.step_ms, r.data_ms,
                format_duration(eta).c_str());
  log_info("%s", line);
  std::snprintf(line, sizeof line,
                "{\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, "
                "\"tokens_per_s\": %.6g, \"mfu\": %.6g, \"step_ms\": %.6g, \"data_ms\": %.6g}\n",
                static_cast<long long>(step + 1), r.loss, r.lr, r.grad_norm, r.tokens_per_s,
                r.mfu, r.step_ms, r.data_ms);
  metrics_ << line << std::flush;
}

void Trainer::write_weights(const std::string& path, int64_t step) {
  std::vector<Tensor> sources;
  for (const auto& s : optimizer_->state()) sources.push_back(s.master);
  WeightsMeta meta{config_to_toml(cfg_), step, compute_ == DType::f64 ? "f64" : "f32"};
  weights_save(path, dev_, model_->registry(), sources, meta);
}

StepResult Trainer::run() {
  const ModelConfig& m = cfg_.model;
  log_info("tessera: %s | %s | layout %s", dev_.name(), cfg_.train.precision.c_str(),
           topology_.describe(0).c_str());
  log_info("model: gpt2 %lld layers, d_model %lld, %lld heads, vocab %lld (padded %lld), context %lld, %.2fM parameters",
           (long long)m.n_layer, (long long)m.d_model, (long long)m.n_head, (long long)m.vocab_size,
           (long long)m.padded_vocab(), (long long)m.seq_len, m.num_parameters() / 1e6);
  log_info("batch: %lld sequences x %lld tokens per step (%lld micro-batches of %lld) | memory: %s",
           (long long)cfg_.train.global_batch, (long long)m.seq_len, (long long)micro_per_step_,
           (long long)cfg_.train.micro_batch, arena_summary().c_str());
  log_info("train data: %lld tokens, %lld windows", (long long)train_shards_->total_tokens(),
           (long long)train_loader_->num_windows());
  StepResult last;
  for (int64_t step = 0; step < cfg_.train.steps; ++step) {
    last = train_step(step);
    if (!std::isfinite(last.loss)) throw UserError("loss became " + std::to_string(last.loss) + " at step " + std::to_string(step + 1) + " (lower optim.lr?)");
    if ((step + 1) % cfg_.log.every == 0 || step + 1 == cfg_.train.steps) log_step(step, last);
    const bool eval_due = cfg_.train.eval_every && (step + 1) % cfg_.train.eval_every == 0;
    if (valid_shards_ && (eval_due || step + 1 == cfg_.train.steps)) {
      const double v = evaluate();
      log_info("step %5lld | validation loss %.4f", static_cast<long long>(step + 1), v);
      metrics_ << "{\"step\": " << step + 1 << ", \"val_loss\": " << v << "}\n" << std::flush;
    }
  }
  const std::string path = cfg_.log.dir + "/model.h5";
  write_weights(path, cfg_.train.steps);
  log_info("weights: %s", path.c_str());
  return last;
}

}  // namespace tessera
