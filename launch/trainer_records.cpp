// Trainer: what a run records of itself — the step log (console, metrics.jsonl, TensorBoard),
// stragglers, loss spikes, and the launch records with the run's model card at the end.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "launch/layout.h"
#include "launch/run_report.h"
#include "launch/session.h"
#include "launch/trainer.h"
#include "launch/version.h"
#include "parallel/mpi_comm.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace tessera {

void Trainer::log_step(int64_t step, const StepResult& r) {
  if (rank_ != 0) return;
  const double eta = seconds_since_start_ / static_cast<double>(step + 1 - start_step_) *
                     static_cast<double>(cfg_.train.steps - step - 1);
  const double mb = 1.0 / (1024.0 * 1024.0);
  char line[768];
  std::snprintf(line, sizeof line,
                "step %5lld/%lld | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | MFU %.1f%% | "
                "%.0f ms = compute %.0f + comm %.0f + bubble %.0f + data %.1f | ETA %s",
                static_cast<long long>(step + 1), static_cast<long long>(cfg_.train.steps), r.loss,
                r.lr, r.grad_norm, r.tokens_per_s, 100.0 * r.mfu, r.step_ms, r.split.compute,
                r.split.exposed_comm, r.split.bubble, r.split.data, format_duration(eta).c_str());
  log_info("%s", line);
  if (topology_.world() > 1 && (step == 0 || step + 1 == cfg_.train.steps))
    log_info("step %5lld | rank 0 moved tp %.3f MB, pp %.3f MB, dp %.3f MB, embedding %.3f MB "
             "(ring bus volume per collective)",
             static_cast<long long>(step + 1), r.comm_bytes[0] * mb, r.comm_bytes[1] * mb,
             r.comm_bytes[2] * mb, r.comm_bytes[3] * mb);
  // JSON has no NaN or infinity: a non-finite value is null (a skipped step's loss may be).
  auto number = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.17g", v);
    return std::isfinite(v) ? std::string(b) : std::string("null");
  };
  const std::string loss = number(r.loss), norm = number(r.grad_norm);
  std::snprintf(line, sizeof line,
                "{\"step\": %lld, \"tokens\": %lld, \"loss\": %s, \"lr\": %.9g, \"grad_norm\": %s, %s"
                "\"tokens_per_s\": %.6g, \"mfu\": %.6g, \"step_ms\": %.6g, \"data_ms\": %.6g, "
                "\"compute_ms\": %.6g, \"exposed_comm_ms\": %.6g, \"bubble_ms\": %.6g, "
                "\"comm_bytes\": {\"tp\": %.17g, \"pp\": %.17g, \"dp\": %.17g, \"embedding\": %.17g}}\n",
                static_cast<long long>(step + 1),
                static_cast<long long>((sample_base_ + (step + 1) * cfg_.train.global_batch) * cfg_.model.seq_len),  // trained on
                loss.c_str(), r.lr, norm.c_str(), r.spike ? "\"skipped\": true, \"spike\": true, " : r.skipped ? "\"skipped\": true, " : "", r.tokens_per_s,
                r.mfu, r.step_ms, r.split.data, r.split.compute, r.split.exposed_comm,
                r.split.bubble, r.comm_bytes[0], r.comm_bytes[1], r.comm_bytes[2], r.comm_bytes[3]);
  metrics_ << line << std::flush;
  tensorboard_scalars(step + 1, {{"train/loss", r.loss}, {"train/lr", r.lr}, {"train/grad_norm", r.grad_norm},
                                 {"perf/tokens_per_s", r.tokens_per_s}, {"perf/mfu", r.mfu},
                                 {"perf/step_ms", r.step_ms}});
}

void Trainer::tensorboard_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  if (!tensorboard_) return;
  try {
    tensorboard_->scalars(step, values);
  } catch (const UserError& e) {
    log_warn("tensorboard: %s; no more events are written", e.what());
    tensorboard_.reset();
  }
}

namespace {

// "AMD EPYC" for the CPU backend (the first model name in /proc/cpuinfo), the GPU's name for CUDA.
std::string device_description(Device& dev) {
  if (dev.kind() != DeviceKind::cpu) return dev.name();
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
      return "cpu (" + line.substr(line.find(':') + 2) + ")";
  return "cpu";
}

}  // namespace

// Named when it first lags past the threshold, then every 100 steps while it stays behind, and
// again whenever another rank takes its place.
void Trainer::report_straggler(int64_t step, const StepResult& r) {
  const double ratio = cfg_.train.straggler_ratio, mean = r.split.compute;
  const bool lagging = r.slowest_rank >= 0 && ratio > 0 && r.slowest_compute_ms > ratio * mean &&
                       r.slowest_compute_ms - mean > 10;
  if (!lagging) {
    straggler_ = -1;
    return;
  }
  if (r.slowest_rank == straggler_ && (step + 1 - straggler_since_) % 100 != 0) return;
  if (r.slowest_rank != straggler_) straggler_ = r.slowest_rank, straggler_since_ = step + 1;
  if (rank_ != 0) return;
  const std::string host = r.slowest_rank < static_cast<int>(rank_hosts_.size()) ? rank_hosts_[r.slowest_rank] : "?";
  log_warn("step %lld: rank %d (%s) is a straggler: its compute took %.0f ms, the ranks' mean %.0f ms "
           "(%.1fx; train.straggler_ratio = %g)",
           static_cast<long long>(step + 1), r.slowest_rank, host.c_str(), r.slowest_compute_ms, mean,
           r.slowest_compute_ms / std::max(mean, 1e-9), ratio);
}

void Trainer::check_node_local_tp() const {
  const std::string spanning = tp_group_spanning_hosts(rank_hosts_, topology_);
  if (spanning.empty()) return;
  const std::string what = "tensor-parallel group of " + spanning;
  if (cfg_.parallel.node_local_tp)
    throw UserError("parallel.node_local_tp: " + what + " (give each node a multiple of parallel.tp = " +
                    std::to_string(topology_.tp()) + " tasks, e.g. --ntasks-per-node)");
  log_warn("%s: its traffic crosses the network every layer (parallel.node_local_tp = true makes this an error)",
           what.c_str());
}

void Trainer::record_launch_start() {
  if (rank_ != 0) return;
  // Every host of the job, each once, in rank order; and each rank's.
  std::vector<std::string> hosts;
  for (const std::string& h : rank_hosts_)
    if (std::find(hosts.begin(), hosts.end(), h) == hosts.end()) hosts.push_back(h);
  nlohmann::json r = {{"event", "start"},
                      {"time", utc_timestamp()},
                      {"host", rank_hosts_.front()},
                      {"hosts", hosts},
                      {"rank_hosts", rank_hosts_},
                      {"world", topology_.world()},
                      {"layout", layout_text()},
                      {"device", device_description(dev_)},
                      {"precision", cfg_.train.precision},
                      {"step", start_step_},
                      {"resumed_from", resumed_from_},
                      {"version", tessera_version()},
                      {"commit", tessera_git_commit()}};
  if (const char* job = std::getenv("SLURM_JOB_ID")) r["slurm_job"] = job;
  if (const char* nodes = std::getenv("SLURM_JOB_NODELIST")) r["nodes"] = nodes;
  try {
    append_launch_record(cfg_.log.dir, r.dump());
  } catch (const UserError& e) {  // a missing record costs the report a line, not the run
    log_warn("%s", e.what());
  }
}

// A loss spike: a warning line, and (rank 0) an event in launches.jsonl that the model card lists.
void Trainer::record_spike(int64_t step, const StepResult& r, const char* action, int64_t to_step) {
  if (rank_ != 0) return;
  const bool rewound = std::string(action) == "rewound";
  log_warn("step %lld: loss %.4f is a spike (mean %.4f, standard deviation %.4f of the last %lld; "
           "train.spike_zscore = %g): %s",
           static_cast<long long>(step + 1), r.loss, r.spike_mean, r.spike_stddev,
           static_cast<long long>(cfg_.train.spike_window), cfg_.train.spike_zscore,
           rewound ? ("rewound to step " + std::to_string(to_step) + ", the batches of steps " + std::to_string(to_step + 1) +
                      "-" + std::to_string(step + 1) + " skipped (train.skip_data = \"" + data_skips_text(data_skips_) + "\")")
                         .c_str()
                   : "the update was skipped");
  nlohmann::json e = {{"event", "spike"}, {"time", utc_timestamp()}, {"step", step + 1}, {"loss", r.loss},
                      {"mean", r.spike_mean}, {"stddev", r.spike_stddev}, {"zscore", cfg_.train.spike_zscore},
                      {"action", action}};
  if (rewound) e["rewound_to"] = to_step, e["skip_data"] = data_skips_text(data_skips_);
  try {
    append_launch_record(cfg_.log.dir, e.dump());
  } catch (const UserError& err) {
    log_warn("%s", err.what());
  }
}

void Trainer::record_launch_end(const char* how, int64_t step) {
  if (rank_ != 0) return;
  try {
    append_launch_record(cfg_.log.dir, nlohmann::json{{"event", "end"}, {"time", utc_timestamp()}, {"how", how}, {"step", step}}.dump());
    write_run_report(cfg_.log.dir);
    log_info("report: %s/README.md (model card) and loss.svg", cfg_.log.dir.c_str());
  } catch (const UserError& e) {  // the run's results are written already; say so and go on
    log_warn("report: not written: %s", e.what());
  }
}

}  // namespace tessera
