#include "launch/trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <numeric>

#include <unistd.h>


#include "checkpoints/failpoint.h"
#include "launch/layout.h"
#include "launch/session.h"
#include "launch/signals.h"
#include "model/init.h"
#include "parallel/mpi_comm.h"
#include "parallel/pipeline_executor.h"
#include "parallel/zero.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/ops.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

Trainer::Trainer(const RunConfig& cfg, Device& dev, const MpiWorld* world)
    : cfg_(cfg),
      dev_(dev),
      world_(world),
      rank_(world ? world->rank() : 0),
      topology_(world ? world->size() : 1, static_cast<int>(cfg.parallel.tp),
                static_cast<int>(cfg.parallel.pp), static_cast<int>(cfg.parallel.dp)) {
  const TrainConfig& t = cfg_.train;
  me_ = topology_.coords(rank_);
  compute_ = t.precision == "fp64" ? DType::f64 : t.precision == "bf16" ? DType::bf16 : DType::f32;
  grad_dtype_ = compute_ == DType::bf16 ? DType::f32 : compute_;
  const int dp = topology_.dp();
  cfg_.train.global_batch = t.global_batch ? t.global_batch : t.micro_batch * dp;
  micro_per_step_ = cfg_.train.global_batch / (t.micro_batch * dp);
  chunks_ = static_cast<int>(cfg_.parallel.virtual_stages);

  // Every rank's host, on rank 0 (the one collective before the checks; it cannot fail).
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  rank_hosts_ = world_ ? world_->gather(host, 0) : std::vector<std::string>{host};

  // Everything a user can get wrong is checked before the first collective, and every rank
  // agrees on the outcome: a bad layout or missing data fails as one line, everywhere.
  run_agreed(world_, [&] {
    validate_layout(cfg_, topology_);
    if (rank_ == 0) check_node_local_tp();
    setup_data();
    schedule_ = schedule_make(cfg_.parallel.schedule, topology_.pp(), me_.pp,
                              static_cast<int>(micro_per_step_), chunks_);
    if (rank_ == 0) {
      std::filesystem::create_directories(cfg_.log.dir);
      std::ofstream c(cfg_.log.dir + "/config.toml");
      c << config_to_toml(cfg_);
      if (!c) throw UserError(cfg_.log.dir + "/config.toml: cannot write (log.dir not writable?)");
      // A fresh run starts the run's records anew; a resumed one appends to them, after ending
      // a line torn by a launch killed while writing it.
      const std::string metrics = cfg_.log.dir + "/metrics.jsonl";
      const bool fresh = cfg_.checkpoint.resume == "none";
      bool torn = false;
      if (std::ifstream in(metrics, std::ios::binary | std::ios::ate); !fresh && in && in.tellg() > 0) {
        in.seekg(-1, std::ios::end);
        torn = in.get() != '\n';
      }
      metrics_.open(metrics, fresh ? std::ios::trunc : std::ios::app);
      if (torn) metrics_ << '\n';
      if (fresh) std::filesystem::remove(cfg_.log.dir + "/launches.jsonl");
      if (cfg_.log.tensorboard) tensorboard_ = std::make_unique<TensorBoardWriter>(cfg_.log.dir + "/tensorboard");
    }
  });
  if (world_ && t.collective_timeout_s > 0) recorder_ = std::make_unique<FlightRecorder>();
  comms_ = communicators_create(topology_, rank_, world_, dev_, recorder_.get());
  if (recorder_) {
    recorder_->set_phase(-1, "start-up");
    watchdog_ = std::make_unique<CommWatchdog>(
        *recorder_, WatchdogConfig{t.collective_timeout_s, cfg_.log.dir + "/flight", rank_, host},
        [this] { communicators_abort(comms_); });
  }
  setup_model();
  setup_buckets();
  plan_shard();
  spikes_ = LossSpikeDetector(t.spike_zscore, t.spike_window);
  data_skips_ = data_skips_parse(t.skip_data, cfg_.source);
  resume();
  flops_per_token_ = cfg_.model.flops_per_token();
  peak_flops_ = dev.peak_flops();
}

Trainer::~Trainer() = default;

void Trainer::setup_model() {
  const TrainConfig& t = cfg_.train;
  const ModelConfig& m = cfg_.model;
  const int pp = topology_.pp(), dp = topology_.dp();
  const bool zero = cfg_.parallel.zero > 0 && dp > 1;
  pipeline_ = std::make_unique<PipelineExecutor>(schedule_, chunks_, *comms_.pp);

  RunShape shape;
  shape.micro_batch = t.micro_batch;
  shape.seq_len = m.seq_len;
  shape.slots = pipeline_->slots();
  shape.recompute = t.recompute == "full" ? Recompute::full : Recompute::none;
  shape.compute = compute_;
  shape.device = dev_.kind();
  std::vector<StageSpec> chunks;
  for (int c = 0; c < chunks_; ++c) chunks.push_back(stage_spec_chunk(m, c * pp + me_.pp, pp * chunks_));
  const TensorSlice slice{topology_.tp(), me_.tp, cfg_.parallel.sequence_parallel, comms_.tp.get()};
  model_ = std::make_unique<ModelInstance>(m, chunks, slice, shape, dev_, grad_dtype_, zero ? dp : 1);
  ParamRegistry& reg = model_->registry();
  init_parameters(dev_, reg, static_cast<uint64_t>(t.seed));

  // ZeRO-1: this rank updates its shard of the flat range (parallel/zero.h); else all of it.
  const int64_t total = reg.flat_values().numel();
  const ZeroShard mine = zero ? zero_shard(total, dp, me_.dp) : ZeroShard{0, total};
  const int64_t shard = mine.size(), begin = mine.begin;
  const DType master = compute_ == DType::f64 ? DType::f64 : DType::f32;
  optimizer_ = std::make_unique<AdamW>(cfg_.optim, reg, master, begin, begin + shard);
  {
    Arena measure("optimizer", dev_.kind());
    optimizer_->layout(measure);
    state_ = std::make_unique<Arena>("optimizer", dev_, measure.used());
    optimizer_->layout(*state_);
  }
  optimizer_->init_master(dev_);

  // Per-step tokens, losses, the ZeRO gradient shard and the pipeline's gradient send buffers.
  const DType loss_dtype = compute_ == DType::f64 ? DType::f64 : DType::f32;
  auto carve = [&](Arena& a) {
    inputs_ = a.take({micro_per_step_, t.micro_batch, m.seq_len}, DType::i32);
    targets_ = a.take({micro_per_step_, t.micro_batch, m.seq_len}, DType::i32);
    losses_ = a.take({micro_per_step_, t.micro_batch * m.seq_len}, loss_dtype);
    norm_scratch_ = a.take({1}, grad_dtype_);
    shard_grads_ = zero ? a.take({shard}, grad_dtype_) : Tensor{};
    pipeline_->layout(a, model_->stage(0).stream_shape(), compute_);
  };
  Arena measure_io("io", dev_.kind());
  carve(measure_io);
  io_ = std::make_unique<Arena>("io", dev_, measure_io.used());
  carve(*io_);
  const int64_t n = micro_per_step_ * t.micro_batch * m.seq_len;
  host_inputs_.resize(n);
  host_targets_.resize(n);
}

std::string Trainer::arena_summary() const {
  return arena_report({&model_->params_arena(), &model_->grads_arena(), state_.get(),
                       &model_->acts_arena(), io_.get()});
}

// A model stage as the pipeline executor drives it: forward and backward of a micro-batch,
// with the step's tokens, targets and losses bound by the caller.
struct StageChunk final : PipelineChunk {
  Stage& stage;
  std::function<void(int slot, int microbatch)> run_forward;
  std::function<Tensor(int slot, int microbatch, Tensor dout, bool last)> run_backward;
  explicit StageChunk(Stage& s) : stage(s) {}
  Tensor input(int slot) override { return stage.input(slot); }
  Tensor output(int slot) override { return stage.output(slot); }
  Tensor grad_output() override { return stage.grad_output(); }
  void forward(int slot, int mb) override { run_forward(slot, mb); }
  Tensor backward(int slot, int mb, Tensor dout, bool last) override {
    return run_backward(slot, mb, dout, last);
  }
};

// This rank's forward and backward ops of one step, in the schedule's order.
void Trainer::run_schedule(int64_t step) {
  const TrainConfig& t = cfg_.train;
  const int64_t T = cfg_.model.seq_len;
  auto& params = model_->registry().all();
  // The loss is the mean over every token of the global batch, so each micro-batch's
  // gradient is scaled by 1/(global tokens) and accumulation is a plain sum.
  const float dloss = 1.0f / static_cast<float>(t.global_batch * T);
  const int64_t rank_first = me_.dp * micro_per_step_ * t.micro_batch;
  // The final backward of a chunk completes its block gradients: hand them to the buckets
  // (after the tensor-parallel sum of the partial ones).
  const std::function<void(int64_t)> block_done = [&](int64_t layer) {
    for (size_t i : params_of_layer_[layer]) {
      if (params[i].grad_sum_tp) comms_.tp->all_reduce(params[i].grad);
      buckets_->param_done(i);
    }
  };
  auto key = [&](int mb) {
    return DropoutKey{static_cast<uint64_t>(t.seed), step, samples_at(step) + rank_first + mb * t.micro_batch};
  };
  auto tokens = [&](int mb) { return inputs_.slice_rows(mb, 1).view({t.micro_batch, T}); };
  std::vector<StageChunk> adapters;
  for (int c = 0; c < chunks_; ++c) {
    StageChunk& a = adapters.emplace_back(model_->stage(c));
    a.run_forward = [&, &stage = a.stage](int slot, int mb) {
      stage.forward(dev_, slot, tokens(mb), Tensor{}, targets_.slice_rows(mb, 1).view({t.micro_batch, T}),
                    losses_.slice_rows(mb, 1).view({t.micro_batch * T}), key(mb), true, dloss);
    };
    a.run_backward = [&, &stage = a.stage](int slot, int mb, Tensor dout, bool last) {
      return stage.backward(dev_, slot, tokens(mb), dout, key(mb),
                            last ? block_done : std::function<void(int64_t)>{});
    };
  }
  std::vector<PipelineChunk*> chunks;
  for (StageChunk& a : adapters) chunks.push_back(&a);
  pipeline_->run(dev_, chunks);
}

StepResult Trainer::train_step(int64_t step) {
  const TrainConfig& t = cfg_.train;
  const int64_t T = cfg_.model.seq_len;
  StepResult r;
  const auto t0 = Clock::now();
  communicators_reset_stats(comms_);
  if (recorder_) recorder_->set_step(step + 1);

  load_batch(step);
  const double data_ms = ms_since(t0);
  ops::fill_zero(dev_, model_->registry().flat_grads());
  buckets_->begin_step();

  run_schedule(step);
  if (failpoint_reached("slow-step", rank_))  // tests: this rank lags 200 ms
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  if (failpoint_reached("nan-grad", rank_))  // tests: a NaN in this rank's gradients
    ops::scale_inplace(dev_, model_->registry().flat_grads().view({model_->registry().flat_grads().numel()}), NAN);
  phase("finalize_grads");
  finalize_grads();
  phase("gradient norm");
  r.grad_norm = global_grad_norm();  // one value on every rank: they all decide alike
  r.lr = lr_at(cfg_.optim, step, t.steps);
  // The loss: summed on the last stage (one tensor-parallel rank), then over the world.
  const bool reports = model_->stage(chunks_ - 1).spec().has_head && me_.tp == 0;
  auto local_loss_sum = [&] {
    double sum = 0;
    if (reports)
      for (double l : tensor_to_host_f64(dev_, losses_)) sum += l;  // also waits for the step
    else
      dev_.synchronize();
    return sum;
  };
  const double tokens = static_cast<double>(t.global_batch * T);
  double loss_sum = 0, early_loss = 0;
  bool loss_reduced = false;  // early_loss holds the step's loss
  if (!std::isfinite(r.grad_norm)) {
    if (t.on_nonfinite != "skip")
      fail_together(world_, "the gradient norm became " + std::to_string(r.grad_norm) + " at step " +
                                std::to_string(step + 1) + "; nothing was applied (lower optim.lr, or "
                                "train.on_nonfinite = \"skip\")", rank_ == 0);
    r.skipped = true;
  } else if (spikes_.enabled()) {
    // A spike must be known before the update: the loss's sum over the world comes early (one
    // scalar), and every rank holds it against the same window.
    phase("loss spike check");
    loss_sum = local_loss_sum();
    early_loss = world_sum(loss_sum) / tokens;
    loss_reduced = true;
    const LossSpikeDetector::Verdict v = spikes_.check(early_loss);
    r.skipped = r.spike = v.spike;
    r.spike_mean = v.mean, r.spike_stddev = v.stddev;
  }
  if (!r.skipped) {
    phase("optimizer");
    const double clip = cfg_.optim.grad_clip;
    const double scale = clip > 0 && r.grad_norm > clip ? clip / r.grad_norm : 1.0;
    optimizer_->step(dev_, r.lr, step + 1, scale, shard_grads_);
    gather_parameters();
  }
  if (!loss_reduced)
    loss_sum = local_loss_sum();
  else
    dev_.synchronize();
  r.step_ms = ms_since(t0);
  const CommStats& pipe = comms_.pp->stats();
  double exposed = pipe.total_wait_ms() - pipe.p2p.wait_ms;
  for (const Communicator* c : {comms_.tp.get(), comms_.dp.get(), comms_.embedding.get(), comms_.world.get()})
    exposed += c->stats().total_wait_ms();
  const double compute = std::max(0.0, r.step_ms - data_ms - exposed - pipe.p2p.wait_ms);
  // One sum over the world carries the loss, the time split and the control counts.
  phase("step summary");
  const SaveProgress save = save_progress();
  double totals[] = {loss_sum, data_ms, compute, exposed, pipe.p2p.wait_ms,
                     signals_received() ? 1.0 : 0.0, save.done, save.failed};
  world_sum(totals, std::size(totals));
  const int world = topology_.world();
  r.loss = loss_reduced ? early_loss : totals[0] / tokens;
  r.split = {totals[1] / world, totals[2] / world, totals[3] / world, totals[4] / world};
  r.control = {totals[5], {totals[6], totals[7]}};
  if (world > 1 && t.straggler_ratio > 0) {
    // The slowest rank and its compute time in one max over the world: whole microseconds
    // times 2^20 plus the rank is exact in a double (for steps under ~250 s).
    double slowest = std::floor(std::min(compute, 2.5e5) * 1000.0) * 1048576.0 + rank_;
    comms_.world->all_reduce(Tensor{&slowest, DType::f64, DeviceKind::cpu, Shape{1}}, ReduceOp::max);
    r.slowest_rank = static_cast<int>(std::fmod(slowest, 1048576.0));
    r.slowest_compute_ms = std::floor(slowest / 1048576.0) / 1000.0;
  }
  const Communicator* axes[4] = {comms_.tp.get(), comms_.pp.get(), comms_.dp.get(), comms_.embedding.get()};
  for (int a = 0; a < 4; ++a) r.comm_bytes[a] = axes[a]->stats().total_bytes();
  r.tokens_per_s = tokens / (r.step_ms / 1000.0);
  r.mfu = flops_per_token_ * r.tokens_per_s / (peak_flops_ * world);
  return r;
}

// Forward only, one micro-batch at a time through every chunk; data-parallel ranks split the
// validation batches.
Trainer::Validation Trainer::evaluate() {
  Validation result;
  if (valid_.empty()) return result;
  const bool reports = model_->stage(chunks_ - 1).spec().has_head && me_.tp == 0;
  auto forward = [&](Tensor in, Tensor tg, Tensor losses) {
    std::vector<StageChunk> adapters;
    for (int c = 0; c < chunks_; ++c) {
      StageChunk& a = adapters.emplace_back(model_->stage(c));
      a.run_forward = [&, &stage = a.stage](int, int) {
        stage.forward(dev_, 0, in, Tensor{}, tg, losses, DropoutKey{}, false, 0.0f);
      };
    }
    std::vector<PipelineChunk*> chunks;
    for (StageChunk& a : adapters) chunks.push_back(&a);
    pipeline_->run_forward(chunks);
    return reports;
  };
  const DType loss_dtype = compute_ == DType::f64 ? DType::f64 : DType::f32;
  std::vector<double> sums;  // (loss sum, tokens) per set
  for (const ValidSet& v : valid_) {
    const EvalResult r = session_evaluate_part(dev_, cfg_, *v.shards, cfg_.train.eval_batches,
                                               loss_dtype, forward, me_.dp, topology_.dp());
    sums.push_back(r.sum);
    sums.push_back(static_cast<double>(r.tokens));
  }
  pipeline_->finish();
  world_sum(sums.data(), static_cast<int>(sums.size()));
  double weighted = 0, weights = 0;
  for (size_t i = 0; i < valid_.size(); ++i) {
    result.per_set.push_back(sums[2 * i] / sums[2 * i + 1]);
    weighted += valid_[i].probability * result.per_set.back();
    weights += valid_[i].probability;
  }
  result.overall = weights > 0 ? weighted / weights : result.per_set.front();
  return result;
}

StepResult Trainer::run() {
  try {
    return run_steps();
  } catch (...) {
    // Before any destructor frees device memory or destroys a communicator (either would wait
    // on work queued behind a peer that may never come): NCCL comms are aborted. MPI's are
    // left to the agreed error, MPI_Abort or the launcher.
    communicators_abort(comms_);
    throw;
  }
}

StepResult Trainer::run_steps() {
  const ModelConfig& m = cfg_.model;
  const ParallelConfig& par = cfg_.parallel;
  if (rank_ == 0) {
    log_info("tessera: %s | %s | world %d = dp %d x pp %d x tp %d | schedule %s%s | sequence "
             "parallel %s | zero %lld",
             dev_.name(), cfg_.train.precision.c_str(), topology_.world(), topology_.dp(),
             topology_.pp(), topology_.tp(), par.schedule.c_str(),
             chunks_ > 1 ? (" x" + std::to_string(chunks_) + " virtual stages").c_str() : "",
             par.sequence_parallel ? "on" : "off", static_cast<long long>(par.zero));
    log_info("model: %s", model_describe(m).c_str());
    for (int r = 0; r < topology_.world(); ++r) {  // every rank's layout, from the arithmetic
      std::string layers;
      for (int c = 0; c < chunks_; ++c) {
        const StageSpec sp = stage_spec_chunk(m, c * topology_.pp() + topology_.coords(r).pp,
                                              topology_.pp() * chunks_);
        layers += (c ? ", " : "") + std::to_string(sp.first_layer) + "-" +
                  std::to_string(sp.first_layer + sp.n_layers - 1);
        if (sp.has_embedding) layers += " +embedding";
        if (sp.has_head) layers += " +head";
      }
      log_info("rank %d: %s | layers %s", r, topology_.describe(r).c_str(), layers.c_str());
    }
    log_info("batch: %lld sequences x %lld tokens per step (%lld micro-batches of %lld per data-parallel rank)",
             (long long)cfg_.train.global_batch, (long long)m.seq_len, (long long)micro_per_step_,
             (long long)cfg_.train.micro_batch);
    log_info("memory (rank 0): %s", arena_summary().c_str());
    report_mixture();
  }
  record_launch_start();
  StepResult last;
  const CheckpointConfig& ck = cfg_.checkpoint;
  for (int64_t step = start_step_; step < cfg_.train.steps; ++step) {
    last = train_step(step);
    seconds_since_start_ += last.step_ms / 1000.0;
    report_straggler(step, last);
    if (last.spike && cfg_.train.on_spike == "rewind") {
      log_step(step, last);
      if (++rewinds_in_row_ > cfg_.train.max_skipped)
        fail_together(world_, "a loss spike at step " + std::to_string(step + 1) + " after " +
                                  std::to_string(cfg_.train.max_skipped) + " rewinds without passing step " +
                                  std::to_string(furthest_step_ + 1) + " (train.max_skipped = " +
                                  std::to_string(cfg_.train.max_skipped) + "); the last checkpoint holds the state before them",
                      rank_ == 0);
      if (rewind_after_spike(step, last)) {
        step = start_step_ - 1;  // the loop's ++step makes it the checkpoint's next step
        continue;
      }
      if (rank_ == 0) log_warn("step %lld: no checkpoint to rewind to: the step is skipped", static_cast<long long>(step + 1));
    }
    if (last.skipped) {
      ++skipped_in_row_;
      if (last.spike) {
        record_spike(step, last, "skipped", step + 1);
      } else if (rank_ == 0) {
        log_warn("step %lld: gradient norm %g: the update was skipped (%lld in a row; train.on_nonfinite = \"skip\")",
                 static_cast<long long>(step + 1), last.grad_norm, static_cast<long long>(skipped_in_row_));
      }
      if (skipped_in_row_ >= cfg_.train.max_skipped)
        fail_together(world_, std::to_string(skipped_in_row_) + " steps in a row up to step " + std::to_string(step + 1) +
                                  (last.spike ? " were loss spikes" : " had a non-finite gradient norm") +
                                  " and were skipped (train.max_skipped = " + std::to_string(cfg_.train.max_skipped) +
                                  "); the last checkpoint holds the state before them",
                      rank_ == 0);
    } else {
      skipped_in_row_ = 0;
      spikes_.accept(last.loss);
      if (step > furthest_step_) furthest_step_ = step, rewinds_in_row_ = 0;
    }
    if (!last.skipped && !std::isfinite(last.loss))  // the loss is reduced over the world: every rank sees it
      fail_together(world_, "loss became " + std::to_string(last.loss) + " at step " +
                                std::to_string(step + 1) + " (lower optim.lr?)",
                    rank_ == 0);
    if ((step + 1) % cfg_.log.every == 0 || step + 1 == cfg_.train.steps || last.skipped) log_step(step, last);
    if (save_phase_ != SavePhase::none) advance_save(last.control.save);
    const bool last_step = step + 1 == cfg_.train.steps;
    // A signal reached some rank (all see the sum and stop together), or train.stop_at.
    const bool stop = (last.control.signalled > 0 || step + 1 == cfg_.train.stop_at) && !last_step;

    const bool eval_due = cfg_.train.eval_every && (step + 1) % cfg_.train.eval_every == 0;
    if (!valid_.empty() && !stop && (eval_due || last_step)) {
      const Validation v = evaluate();
      if (rank_ == 0) log_validation(step + 1, v);
    }
    const bool due = ck.every > 0 && ((step + 1) % ck.every == 0 || last_step);
    if (due || stop) save_checkpoint(step + 1, ck.async && !stop && !last_step);
    if (stop) {
      stopped_ = true;
      if (rank_ == 0)
        log_info("stopped by %s after step %lld; checkpoint: %s/%s (continue with "
                 "checkpoint.resume = \"auto\")",
                 last.control.signalled > 0 ? "a signal" : "train.stop_at", static_cast<long long>(step + 1), ck.root(cfg_.log.dir).c_str(),
                 checkpoint_dir_name(step + 1).c_str());
      record_launch_end(last.control.signalled > 0 ? "stopped by a signal" : "stopped at train.stop_at", step + 1);
      return last;
    }
  }
  drain_save();
  const std::string path = cfg_.log.dir + "/model.h5";
  const Clock::time_point written = Clock::now();
  write_weights(path, cfg_.train.steps);
  if (rank_ == 0)
    log_info("weights: %s (%.1f MB in %.2f s)", path.c_str(),
             static_cast<double>(std::filesystem::file_size(path)) / 1e6, ms_since(written) / 1000);
  record_launch_end("finished", cfg_.train.steps);
  return last;
}

}  // namespace tessera
