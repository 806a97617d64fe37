// Trainer: sharded checkpoints. What this rank owns (plan_shard), saving through a background
// writer with the ranks agreeing on progress at step boundaries, and resuming from the newest
// valid checkpoint under any layout.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "checkpoints/failpoint.h"
#include "model/init.h"
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

// The shards this rank checksums: each its writer's rank modulo the world (the same layout
// resuming reads its own shard, so the checksum pass and the load read the same file), unless
// that gives a rank more than its share; then shard i goes to rank i modulo the world.
std::vector<size_t> shards_to_verify(const std::vector<ShardFile>& shards, int rank, int world) {
  std::vector<int> count(world, 0);
  const size_t share = (shards.size() + world - 1) / world;
  bool by_writer = true;
  for (const ShardFile& s : shards) by_writer = by_writer && ++count[s.rank % world] <= static_cast<int>(share);
  std::vector<size_t> mine;
  for (size_t i = 0; i < shards.size(); ++i)
    if (static_cast<int>(by_writer ? shards[i].rank % world : i % world) == rank) mine.push_back(i);
  return mine;
}

// A shard's checksum did not match (on any rank): the checkpoint is skipped or fails.
class ShardChecksumError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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

std::string Trainer::layout_text() const {
  const ParallelConfig& par = cfg_.parallel;
  char layout[256];
  std::snprintf(layout, sizeof layout,
                "world %d = dp %d x pp %d x tp %d, zero %lld, schedule %s, virtual stages %lld, "
                "sequence parallel %s",
                topology_.world(), topology_.dp(), topology_.pp(), topology_.tp(),
                static_cast<long long>(par.zero), par.schedule.c_str(),
                static_cast<long long>(par.virtual_stages), par.sequence_parallel ? "on" : "off");
  return layout;
}

CheckpointMeta Trainer::checkpoint_meta(int64_t step) const {
  CheckpointMeta m;
  m.step = step;
  m.samples = samples_at(step);  // where the data goes on: past any skipped window
  m.tokens = (sample_base_ + step * cfg_.train.global_batch) * cfg_.model.seq_len;  // trained on
  if (spikes_.enabled()) m.loss_window = spikes_.window_text();
  m.data_skips = data_skips_text(data_skips_);
  m.seed = cfg_.train.seed;
  m.dtype = shard_.dtype;
  m.config_toml = config_to_toml(cfg_);
  const ParallelConfig& par = cfg_.parallel;
  m.layout = layout_text();
  m.layout_ints = {topology_.world(), topology_.tp(), topology_.pp(), topology_.dp(),
                   par.zero, par.virtual_stages, par.sequence_parallel ? 1 : 0};
  m.tessera_version = tessera_version();
  m.git_commit = tessera_git_commit();
  return m;
}

SaveProgress Trainer::save_progress() const {
  return {jobs_->idle() ? 1.0 : 0.0, jobs_->error().empty() ? 0.0 : 1.0};
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
void Trainer::advance_save(const SaveProgress& world_progress) {
  if (save_phase_ == SavePhase::none) return;
  const std::string name = checkpoint_dir_name(save_step_);
  if (world_progress.failed > 0) {
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
  if (world_progress.done < topology_.world()) return;  // still writing
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
    const SaveProgress mine = save_progress();
    double counts[] = {mine.done, mine.failed};
    world_sum(counts, 2);
    advance_save({counts[0], counts[1]});
  }
}

// "" when `dir` is a complete checkpoint whose shards all exist with their recorded sizes
// (`reader` then holds it open); otherwise the first problem. Collective. The checksums are
// checked while loading (load_checkpoint).
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
  return "";
}

// Every rank reads its own slices of the global tensors: the weights and moments of its
// optimizer range, which without ZeRO is every local element of its parameters and under ZeRO-1
// a 1/dp share of them, the rest arriving from the other data-parallel ranks through the
// parameter all-gather, so the checkpoint is read once, not once per replica.
//
// The checksums are taken in the same pass: each shard is checksummed by one rank
// (shards_to_verify), which reads it whole, in order, taking its own slices from the same bytes;
// under the writer's layout that is the rank's own shard, so each file is read once. The range
// is read straight into the optimizer state when that is in host memory (else into host
// buffers). The reading runs on a thread of its own so that the all-gather, which needs only the
// weights (the first third of every shard), overlaps the reading of the moments. Nothing runs on
// the loaded state until every rank has seen its checksums match: a mismatch throws
// ShardChecksumError on every rank, and resume() re-initialises the state.
double Trainer::load_checkpoint(const CheckpointReader& r) {
  const CheckpointMeta& meta = r.meta();
  ParamRegistry& reg = model_->registry();
  const bool zero = !shard_grads_.empty();
  const int64_t begin = optimizer_->begin(), n = optimizer_->end() - begin;
  const DType md = optimizer_->master_dtype();
  const size_t elem = dtype_size(md);
  // model/<name> holds the master weights; the working weights are their rounding.
  const bool master = !optimizer_->master().empty();
  const Tensor range = flat_slice(reg.flat_values(), begin, n);
  const Tensor targets[3] = {master ? optimizer_->master() : range, optimizer_->exp_avg(), optimizer_->exp_avg_sq()};
  const char* groups[3] = {"model", "optim/exp_avg", "optim/exp_avg_sq"};
  const bool stored[3] = {true, meta.has_optimizer, meta.has_optimizer};
  // When the state is not in host memory it is read into host buffers first: the save's
  // staging buffers (plan_shard made them; idle until the first save, and already in memory, which
  // fresh pages are not), else new ones. (n) elements of md each.
  std::vector<char> own[3];
  char* host[3] = {};
  std::vector<CheckpointReader::SliceRead> reads;
  size_t weight_reads = 0;  // reads[0, weight_reads) are the weights
  for (int g = 0; g < 3; ++g) {
    if (targets[g].device != DeviceKind::cpu) {
      const size_t bytes = static_cast<size_t>(n) * elem;
      if (shard_.buffers.size() == 3 && shard_.buffers[g].size() == bytes) host[g] = shard_.buffers[g].data();
      else host[g] = (own[g].resize(bytes), own[g].data());
    }
    char* into = host[g] ? host[g] : static_cast<char*>(targets[g].data);
    int64_t covered = 0;  // what no piece covers (the arena's alignment padding) reads as zero
    for (const AdamW::Piece& piece : optimizer_->pieces()) {
      if (!stored[g]) break;
      const int64_t o = reg.flat_offset(*piece.param), at = piece.lo - begin;
      TS_ASSERT(at >= covered, "optimizer pieces in flat order");
      std::memset(into + covered * elem, 0, static_cast<size_t>(at - covered) * elem);
      reads.push_back({groups[g], piece.param, piece.lo - o, piece.hi - o, into, md, at});
      covered = piece.hi - begin;
    }
    std::memset(into + covered * elem, 0, static_cast<size_t>(n - covered) * elem);
    if (g == 0) weight_reads = reads.size();
  }
  const std::vector<size_t> mine = cfg_.checkpoint.verify
                                       ? shards_to_verify(r.shards(), rank_, topology_.world())
                                       : std::vector<size_t>{};
  // The reads' buffers: idle memory already in place, the save staging of a group read in place.
  std::span<char> io_buffer;
  for (int g = 0; g < 3 && io_buffer.empty(); ++g)
    if (!host[g] && g < static_cast<int>(shard_.buffers.size()))
      io_buffer = {shard_.buffers[g].data(), shard_.buffers[g].size()};
  std::vector<std::string> lines;
  std::exception_ptr failed;
  std::mutex mu;
  std::condition_variable cv;
  size_t weights_left = weight_reads;
  bool finished = false;
  double read_end = 0;
  std::thread loader([&] {
    try {
      lines = r.read_slices(
          reads, mine,
          [&](size_t i) {
            std::lock_guard<std::mutex> lock(mu);
            if (i < weight_reads && --weights_left == 0) cv.notify_all();
          },
          io_buffer);
      read_end = now_s();
    } catch (...) {
      failed = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu);
    finished = true;
    cv.notify_all();
  });
  struct Join {  // also when the all-gather below throws
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{loader};
  // The working weights from the loaded ones, and under ZeRO-1 the all-gather of everyone's.
  auto weights_to_parameters = [&] {
    if (host[0]) dev_.copy_from_host(targets[0], host[0]);
    if (master) ops::convert(dev_, range, optimizer_->master());
    gather_parameters();
  };
  if (zero) {  // once every rank has its weights, while the moments are still being read
    bool ready;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return weights_left == 0 || finished; });
      ready = weights_left == 0;
    }
    if (!world_ || world_->first_rank_with(!ready) < 0) weights_to_parameters();
  }
  loader.join();
  run_agreed(world_, [&] {
    if (failed) std::rethrow_exception(failed);
  });
  const size_t shards = r.shards().size();
  std::vector<double> bad(shards, 0.0);
  for (size_t k = 0; k < mine.size(); ++k) bad[mine[k]] = lines[k].empty() ? 0 : 1;
  if (shards) world_sum(bad.data(), static_cast<int64_t>(shards));
  for (size_t i = 0; i < shards; ++i)
    if (bad[i] > 0) throw ShardChecksumError(r.dir() + "/" + r.shards()[i].file + ": shard fails its checksum");

  if (!zero) weights_to_parameters();
  for (int g = 1; g < 3; ++g)
    if (host[g]) dev_.copy_from_host(targets[g], host[g]);
  start_step_ = meta.step;
  // The windows of data the checkpoint's run skipped, then those of train.skip_data still ahead.
  std::vector<DataSkip> skips = data_skips_parse(meta.data_skips, r.dir() + "/index.h5");
  sample_base_ = meta.samples - (meta.step + data_skips_shift(skips, meta.step)) * cfg_.train.global_batch;
  for (const DataSkip& s : data_skips_parse(cfg_.train.skip_data, cfg_.source)) {
    if (std::find(skips.begin(), skips.end(), s) != skips.end()) continue;
    if (s.from < meta.step)
      throw UserError(cfg_.source + ": train.skip_data: the window " + data_skips_text({s}) + " starts before step " +
                      std::to_string(meta.step) + " of " + r.dir() + ", which was trained without it");
    data_skips_insert(skips, s);
  }
  data_skips_ = skips;
  spikes_.restore(meta.loss_window, r.dir() + "/index.h5");
  if (rank_ == 0 && meta.seed != cfg_.train.seed)
    log_info("checkpoint: warning: it was written with train.seed = %lld, this run uses %lld "
             "(data order and dropout differ from the run that wrote it)",
             static_cast<long long>(meta.seed), static_cast<long long>(cfg_.train.seed));
  return read_end;
}

void Trainer::resume() {
  const std::string mode = cfg_.checkpoint.resume;
  if (mode == "none") return;
  const std::string root = cfg_.checkpoint.root(cfg_.log.dir);
  const bool automatic = mode == "auto";
  if (!resume_from(automatic ? checkpoint_list(root) : std::vector<std::string>{mode}, automatic) && rank_ == 0)
    log_info("checkpoint: no valid checkpoint in %s; starting from step 0", root.c_str());
}

bool Trainer::resume_from(const std::vector<std::string>& candidates, bool automatic) {
  for (const std::string& dir : candidates) {
    world_sum(0.0);  // the clock starts when every rank is here
    const double t0 = now_s();
    std::unique_ptr<CheckpointReader> reader;
    std::string problem = checkpoint_problem(dir, reader);
    double read_end = t0;
    if (problem.empty()) {
      try {
        read_end = load_checkpoint(*reader);  // agrees on its errors itself
      } catch (const ShardChecksumError& e) {
        problem = e.what();
        // The range may already hold the failed checkpoint's elements: back to the initial state.
        ParamRegistry& reg = model_->registry();
        ops::fill_zero(dev_, reg.flat_values());
        init_parameters(dev_, reg, static_cast<uint64_t>(cfg_.train.seed));
        optimizer_->init_master(dev_);
        ops::fill_zero(dev_, optimizer_->exp_avg());
        ops::fill_zero(dev_, optimizer_->exp_avg_sq());
      }
    }
    if (problem.empty()) {
      const CheckpointReader& r = *reader;
      dev_.synchronize();
      // t[0]: until every rank's reads (and checksums) were done; t[1]: until the state was ready
      // everywhere (the ZeRO all-gather and copies to the device included).
      double t[2] = {read_end - t0, now_s() - t0};
      comms_.world->all_reduce(Tensor{t, DType::f64, DeviceKind::cpu, Shape{2}}, ReduceOp::max);
      resumed_from_ = dir;
      if (rank_ == 0) {
        int64_t bytes = 0;
        for (const ShardFile& f : r.shards()) bytes += f.bytes;
        log_info("checkpoint: resuming from %s (step %lld, %lld tokens; written by %s; %.1f MiB "
                 "read in %.2f s%s; loaded in %.2f s)",
                 dir.c_str(), static_cast<long long>(r.meta().step),
                 static_cast<long long>(r.meta().tokens), r.meta().layout.c_str(),
                 bytes / 1048576.0, t[0], cfg_.checkpoint.verify ? ", checksums verified" : " (checksums not verified)", t[1]);
      }
      return true;
    }
    if (!automatic) fail_together(world_, problem, rank_ == 0);
    if (rank_ == 0) log_info("checkpoint: skipping %s: %s", dir.c_str(), problem.c_str());
  }
  return false;
}

bool Trainer::rewind_after_spike(int64_t step, const StepResult& r) {
  drain_save();  // a checkpoint still being written may be the newest
  // Checkpoints of steps up to the spike's only (a reused log.dir may hold later ones).
  if (!resume_from(checkpoint_list(cfg_.checkpoint.root(cfg_.log.dir), step), true)) return false;
  // The batches from the checkpoint up to and including the spike's are never read again.
  const DataSkip skip{start_step_, step + 1};
  data_skips_insert(data_skips_, skip);
  record_spike(step, r, "rewound", start_step_);
  return true;
}

}  // namespace tessera
