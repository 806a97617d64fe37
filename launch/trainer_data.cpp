// Trainer: the training data — the sources of the mixture and their held-out sets, the
// report of the resolved mixture, each step's batch, and the validation log records.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoints/failpoint.h"
#include "launch/session.h"
#include "launch/trainer.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace tessera {

void Trainer::setup_data() {
  const DataConfig& d = cfg_.data;
  std::vector<data::SourceSpec> specs;
  std::vector<std::string> valid_dirs;
  if (d.sources.empty()) {
    if (d.train.empty())
      throw UserError(cfg_.source + ": data.train is not set (a directory of token shards from "
                                    "`tessera prepare`), nor any [[data.sources]]");
    specs.push_back({"train", "", d.train, 1.0});
    valid_dirs.push_back(d.valid);
  }
  for (const DataSourceConfig& s : d.sources) {
    specs.push_back({s.name, s.language, s.path, s.weight});
    valid_dirs.push_back(s.valid);
  }
  mixture_ = std::make_unique<data::Mixture>(specs, d.temperature, cfg_.model.seq_len,
                                             static_cast<uint64_t>(cfg_.train.seed));
  for (size_t i = 0; i < mixture_->size(); ++i) {
    session_check_shards(cfg_, mixture_->shards(i));
    if (valid_dirs[i].empty()) continue;
    ValidSet v{specs[i].name, specs[i].language, mixture_->probability(i),
               std::make_unique<data::ShardSet>(data::ShardSet::open(valid_dirs[i]))};
    session_check_shards(cfg_, *v.shards);
    valid_.push_back(std::move(v));
  }
}

// The resolved mixture, printed at start and saved as <log.dir>/mixture.json.
void Trainer::report_mixture() {
  const int64_t planned = cfg_.train.steps * cfg_.train.global_batch;
  nlohmann::ordered_json sources = nlohmann::ordered_json::array();
  for (size_t i = 0; i < mixture_->size(); ++i) {
    const data::SourceSpec& s = mixture_->source(i);
    const double epochs = mixture_->expected_epochs(i, planned);
    log_info("data source %-8s %-4s %12lld tokens | p = %.4f (target %.4f) | %.3g epochs in %lld steps",
             s.name.c_str(), s.language.empty() ? "-" : s.language.c_str(),
             static_cast<long long>(mixture_->tokens(i)), mixture_->probability(i),
             mixture_->target_probability(i), epochs, static_cast<long long>(cfg_.train.steps));
    sources.push_back({{"name", s.name}, {"language", s.language}, {"path", s.path},
                       {"tokens", mixture_->tokens(i)}, {"windows", mixture_->num_windows(i)},
                       {"weight", s.weight}, {"target_probability", mixture_->target_probability(i)},
                       {"probability", mixture_->probability(i)}, {"expected_epochs", epochs}});
  }
  const nlohmann::ordered_json j{{"temperature", cfg_.data.temperature},
                                 {"block", data::Mixture::kBlock},
                                 {"planned_samples", planned},
                                 {"sources", sources}};
  std::ofstream out(cfg_.log.dir + "/mixture.json");
  out << j.dump(2) << "\n";
  if (!out) throw UserError(cfg_.log.dir + "/mixture.json: cannot write");
}

void Trainer::load_batch(int64_t step) {
  const TrainConfig& t = cfg_.train;
  const int64_t per_rank = micro_per_step_ * t.micro_batch;
  const int64_t first = me_.dp * per_rank;  // this rank's slice of the global batch
  const int64_t at = samples_at(step) + first;
  mixture_->samples(at, per_rank, host_inputs_.data(), host_targets_.data());
  if (const int64_t n = failpoint_number("poison-batch", rank_); n > 0) {  // tests: a bad data window
    const int64_t T = cfg_.model.seq_len, lo = (n - 1) * t.global_batch, hi = n * t.global_batch;
    for (int64_t i = std::max(at, lo); i < std::min(at + per_rank, hi); ++i)
      std::fill_n(host_targets_.data() + (i - at) * T, T, 0);
  }
  dev_.copy_from_host(inputs_, host_inputs_.data());
  dev_.copy_from_host(targets_, host_targets_.data());
}

// The validation losses: overall, and per language (the mean over the sets of one language)
// when there are several sets.
void Trainer::log_validation(int64_t step, const Validation& v) {
  std::vector<std::string> languages;  // in the order of the sources
  std::vector<double> sum, sets;
  for (size_t i = 0; i < valid_.size(); ++i) {
    const std::string& lang = valid_[i].language.empty() ? valid_[i].name : valid_[i].language;
    const size_t at = std::find(languages.begin(), languages.end(), lang) - languages.begin();
    if (at == languages.size()) {
      languages.push_back(lang);
      sum.push_back(0);
      sets.push_back(0);
    }
    sum[at] += v.per_set[i];
    sets[at] += 1;
  }
  // metrics.jsonl keeps the style of the step records: "key": value, numbers to 17 digits.
  const auto number = [](double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    return std::string(buf);
  };
  std::vector<std::pair<std::string, double>> scalars = {{"val/loss", v.overall}};
  char text[256];
  std::snprintf(text, sizeof text, "%.4f", v.overall);
  std::string line = "step " + std::to_string(step) + " | validation loss " + text;
  std::string json = "{\"step\": " + std::to_string(step) + ", \"val_loss\": " + number(v.overall);
  if (valid_.size() > 1) {
    line += " |";
    json += ", \"val_loss_by_language\": {";
    for (size_t l = 0; l < languages.size(); ++l) {
      const double loss = sum[l] / sets[l];
      std::snprintf(text, sizeof text, " %s %.4f", languages[l].c_str(), loss);
      line += text;
      json += (l ? ", " : "") + nlohmann::json(languages[l]).dump() + ": " + number(loss);
      scalars.push_back({"val/loss/" + languages[l], loss});
    }
    json += "}";
  }
  log_info("%s", line.c_str());
  metrics_ << json << "}\n" << std::flush;
  tensorboard_scalars(step, scalars);
}

}  // namespace tessera
