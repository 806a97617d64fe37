// Trainer: sharded checkpoints. What this rank owns (plan_shard), saving through a background
// writer with the ranks agreeing on progress at step boundaries, and resuming from the newest
// valid checkpoint under any layout.
#include <chrono>
#include <cstring>
#include <filesystem>

#include "checkpoints/failpoint.h"
#include "launch/layout.h"
#include "launch/trainer.h"
#include "launch/version.h"
#include "parallel/mpi_comm.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/ops.h"

namespace tessera {
namespace fs = std::filesystem;
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string shard_name(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard_%05d.h5", rank);
  return buf;
}

}  // namespace

// This rank owns the elements it would count in the gradient norm (one tensor-parallel rank
// for replicated tensors, never the tied copy) within its optimizer range, on one
// data-parallel rank unless ZeRO splits the range.
void Trainer::plan_shard() {
  const bool zero = !shard_grads_.empty();
  const ParamRegistry& reg = model_->registry();
  const int64_t begin = optimizer_->begin();
  shard_ = ShardData{};
  shard_.dtype = optimizer_->master_dtype() == DType::f64 ? "f64" : "f32";
  shard_.groups = {"master", "exp_avg", "exp_avg_sq"};
  if (zero || me_.dp == 0)
    for (const AdamW::Piece& piece : optimizer_->pieces()) {
      const Param& p = *piece.param;
      if (!counted_once(p)) continue;
      const int64_t o = reg.flat_offset(p);
      shard_.entries.push_back({p.name, p.global_shape, param_slices(p, piece.lo - o, piece.hi - o, piece.lo - begin)});
    }
  owns_state_ = !shard_.entries.empty();
  if (owns_state_) {
    const size_t bytes = static_cast<size_t>(optimizer_->end() - begin) * dtype_size(optimizer_->master_dtype());
    for (auto& b : (shard_.buffers = std::vector<std::vector<char>>(3))) b.resize(bytes);
  }
  jobs_ = std::make_unique<BackgroundJobs>();
}

CheckpointMeta Trainer::checkpoint_meta(int64_t step) const {
  CheckpointMeta m;
  m.step = step;
  m.samples = sample_base_ + step * cfg_.train.global_batch;
  m.tokens = m.samples * cfg_.model.seq_len;
  m.seed = cfg_.train.seed;
  m.dtype = shard_.dtype;
  m.config_toml = config_to_toml(cfg_);
  const ParallelConfig& par = cfg_.parallel;
  char layout[256];
  std::snprintf(layout, sizeof layout,
                "world %d = dp %d x pp %d x tp %d, zero %lld, schedule %s, virtual stages %lld, "
                "sequence parallel %s",
                topology_.world(), topology_.dp(), topology_.pp(), topology_.tp(),
                static_cast<long long>(par.zero), par.schedule.c_str(),
                static_cast<long long>(par.virtual_stages), par.sequence_parallel ? "on" : "off");
  m.layout = layout;
  m.layout_ints = {topology_.world(), topology_.tp(), topology_.pp(), topology_.dp(),
                   par.zero, par.virtual_stages, par.sequence_parallel ? 1 : 0};
  m.tessera_version = tessera_version();
  m.git_commit = tessera_git_commit();
  return m;
}

void Trainer::save_flags(double* done_failed) const {
  done_failed[0] = jobs_->idle() ? 1.0 : 0.0;
  done_failed[1] = jobs_->error().empty() ? 0.0 : 1.0;
}

// Starts saving the state after `step` steps: the rank's pieces are copied to host buffers
// now, and written by the background writer (waited for here unless `async`).
void Trainer::save_checkpoint(int64_t step, bool async) {
  drain_save();  // the previous save completes first
  save_started_ = now_s();
  const std::string root = cfg_.checkpoint.root(cfg_.log.dir);
  const std::string partial = root + "/" + checkpoint_dir_name(step) + ".partial";
  run_agreed(world_, [&] {
    if (rank_ != 0) return;
    std::error_code ec;
    fs::create_directories(root, ec);
    fs::remove_all(partial, ec);
    if (!fs::create_directory(partial, ec) || ec)
      throw UserError(partial + ": cannot create checkpoint directory (" +
                      (ec ? ec.message() : std::string("exists")) + "; is checkpoint.dir writable?)");
  });
  save_phase_ = SavePhase::writing;
  save_step_ = step;
  if (owns_state_) {
    const Tensor master = optimizer_->master().empty()
                              ? flat_slice(model_->registry().flat_values(), optimizer_->begin(),
                                           optimizer_->end() - optimizer_->begin())
                              : optimizer_->master();
    const Tensor sources[3] = {master, optimizer_->exp_avg(), optimizer_->exp_avg_sq()};
    for (int g = 0; g < 3; ++g) dev_.copy_to_host(shard_.buffers[g].data(), sources[g]);
    const std::string path = partial + "/" + shard_name(rank_);
    jobs_->submit([this, path] { shard_file_ = shard_write(path, rank_, shard_); });
  }
  if (async && rank_ == 0)
    log_info("checkpoint: %s: state copied to host in %.0f ms, writing in the background",
             checkpoint_dir_name(step).c_str(), 1000 * (now_s() - save_started_));
  if (!async) drain_save();
}

// Moves the current save forward once every rank reports its part done; `done_failed` is
// summed over the world, so every rank takes the same branch.
void Trainer::advance_save(const double* done_failed) {
  if (save_phase_ == SavePhase::none) return;
  const std::string name = checkpoint_dir_name(save_step_);
  if (done_failed[1] > 0) {
    const bool failed = !jobs_->error().empty();
    const int who = world_ ? world_->first_rank_with(failed) : 0;
    std::string last = "none";
    if (rank_ == who) {
      const auto complete = checkpoint_list(cfg_.checkpoint.root(cfg_.log.dir));
      if (!complete.empty()) last = complete.front();
    }
    save_phase_ = SavePhase::none;
    fail_together(world_,
                  "checkpoint " + name + " was not saved: " + jobs_->error() +
                      "; training stopped (last complete checkpoint: " + last + ")",
                  rank_ == who);
  }
  if (done_failed[0] < topology_.world()) return;  // still writing
  if (save_phase_ == SavePhase::committing) {
    save_phase_ = SavePhase::none;
    if (rank_ == 0)
      log_info("checkpoint: saved %s/%s (%.2f s)", cfg_.checkpoint.root(cfg_.log.dir).c_str(),
               name.c_str(), now_s() - save_started_);
    return;
  }
  // Every shard is on disk: rank 0 learns their sizes and checksums and commits.
  const int world = topology_.world();
  std::vector<double> info(3 * static_cast<size_t>(world), 0.0);
  if (owns_state_) {
    info[3 * rank_] = 1;
    info[3 * rank_ + 1] = static_cast<double>(shard_file_.bytes);
    info[3 * rank_ + 2] = static_cast<double>(shard_file_.crc32);
  }
  world_sum(info.data(), static_cast<int64_t>(info.size()));
  save_phase_ = SavePhase::committing;
  if (rank_ != 0) return;
  std::vector<ShardFile> shards;
  for (int r = 0; r < world; ++r)
    if (info[3 * r] > 0)
      shards.push_back({shard_name(r), r, static_cast<int64_t>(info[3 * r + 1]),
                        static_cast<uint32_t>(info[3 * r + 2])});
  const std::string root = cfg_.checkpoint.root(cfg_.log.dir);
  const CheckpointMeta meta = checkpoint_meta(save_step_);
  const int64_t keep = cfg_.checkpoint.keep, keep_every = cfg_.checkpoint.keep_every;
  jobs_->submit([root, name, meta, shards, keep, keep_every] {
    checkpoint_commit(root, root + "/" + name + ".partial", root + "/" + name, meta, shards, keep, keep_every);
  });
}

void Trainer::drain_save() {
  while (save_phase_ != SavePhase::none) {
    jobs_->wait();
    double flags[2];
    save_flags(flags);
    world_sum(flags, 2);
    advance_save(flags);
  }
}

// "" when `dir` is a complete checkpoint whose shards all exist with their recorded sizes and
// checksums (`reader` then holds it open); otherwise the first problem. Collective: shards are
// checksummed by rank i % world.
std::string Trainer::checkpoint_problem(const std::string& dir, std::unique_ptr<CheckpointReader>& reader) {
  std::string problem;
  try {
    reader = std::make_unique<CheckpointReader>(dir);
    problem = reader->first_problem(false);
  } catch (const UserError& e) {
    problem = e.what();
  }
  double any = problem.empty() ? 0 : 1;
  world_sum(&any, 1);
  if (any > 0) return problem.empty() ? dir + ": not readable from every rank" : problem;
  const size_t n = reader->shards().size();
  std::vector<double> bad(n, 0.0);
  const int world = topology_.world();
  if (cfg_.checkpoint.verify)
    for (size_t i = rank_; i < n; i += world) bad[i] = reader->verify_shard(i).empty() ? 0 : 1;
  if (n) world_sum(bad.data(), static_cast<int64_t>(n));
  for (size_t i = 0; i < n; ++i)
    if (bad[i] > 0) return dir + "/" + reader->shards()[i].file + ": shard fails its checksum";
  return "";
}

// Every rank reads its own slices of the global tensors: its optimizer range of the master
// weights and moments, and its parameters' local elements — under ZeRO-1 only those in its
// range, the rest arriving from the other data-parallel ranks through the usual parameter
// all-gather (resume() runs it), so the checkpoint is read once, not once per replica.
void Trainer::load_checkpoint(const CheckpointReader& r) {
  const CheckpointMeta& meta = r.meta();
  ParamRegistry& reg = model_->registry();
  const bool zero = !shard_grads_.empty();
  const int64_t begin = optimizer_->begin(), n = optimizer_->end() - begin;
  const DType md = optimizer_->master_dtype();
  std::vector<char> buf(static_cast<size_t>(n) * dtype_size(md));
  auto load = [&](const char* group, const Tensor& dst, bool stored) {
    std::fill(buf.begin(), buf.end(), 0);
    if (stored)
      for (const AdamW::Piece& piece : optimizer_->pieces()) {
        const int64_t o = reg.flat_offset(*piece.param);
        r.read(group, *piece.param, piece.lo - o, piece.hi - o, buf.data(), md, piece.lo - begin);
      }
    dev_.copy_from_host(dst, buf.data());
  };
  // model/<name> holds the master weights; the working weights are their rounding.
  if (!optimizer_->master().empty()) load("model", optimizer_->master(), true);
  const Tensor range = flat_slice(reg.flat_values(), begin, n);
  if (!zero) r.load_parameters(dev_, reg);  // every local element
  else if (optimizer_->master().empty()) load("model", range, true);
  else ops::convert(dev_, range, optimizer_->master());
  load("optim/exp_avg", optimizer_->exp_avg(), meta.has_optimizer);
  load("optim/exp_avg_sq", optimizer_->exp_avg_sq(), meta.has_optimizer);
  start_step_ = meta.step;
  sample_base_ = meta.samples - meta.step * cfg_.train.global_batch;
  if (rank_ == 0 && meta.seed != cfg_.train.seed)
    log_info("checkpoint: warning: it was written with train.seed = %lld, this run uses %lld "
             "(data order and dropout differ from the run that wrote it)",
             static_cast<long long>(meta.seed), static_cast<long long>(cfg_.train.seed));
}

void Trainer::resume() {
  const std::string mode = cfg_.checkpoint.resume;
  if (mode == "none") return;
  const std::string root = cfg_.checkpoint.root(cfg_.log.dir);
  const bool automatic = mode == "auto";
  const std::vector<std::string> candidates = automatic ? checkpoint_list(root) : std::vector<std::string>{mode};
  for (const std::string& dir : candidates) {
    const double t0 = now_s();
    std::unique_ptr<CheckpointReader> reader;
    const std::string problem = checkpoint_problem(dir, reader);
    if (problem.empty()) {
      const CheckpointReader& r = *reader;
      const double t1 = now_s();
      run_agreed(world_, [&] { load_checkpoint(r); });
      gather_parameters();  // ZeRO-1: every rank loaded its range; the dp group shares them
      dev_.synchronize();
      double t2 = now_s() - t1;
      comms_.world->all_reduce(Tensor{&t2, DType::f64, DeviceKind::cpu, Shape{1}}, ReduceOp::max);
      if (rank_ == 0) {
        int64_t bytes = 0;
        for (const ShardFile& f : r.shards()) bytes += f.bytes;
        log_info("checkpoint: resuming from %s (step %lld, %lld tokens; written by %s; %.1f MiB "
                 "verified in %.2f s, loaded in %.2f s)",
                 dir.c_str(), static_cast<long long>(r.meta().step),
                 static_cast<long long>(r.meta().tokens), r.meta().layout.c_str(),
                 bytes / 1048576.0, t1 - t0, t2);
      }
      return;
    }
    if (!automatic) fail_together(world_, problem, rank_ == 0);
    if (rank_ == 0) log_info("checkpoint: skipping %s: %s", dir.c_str(), problem.c_str());
  }
  if (rank_ == 0) log_info("checkpoint: no valid checkpoint in %s; starting from step 0", root.c_str());
}

}  // namespace tessera
