#include "launch/run_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "launch/commands.h"
#include "launch/config.h"
#include "runtime/error.h"

namespace tessera {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// 1234567 -> "1,234,567".
std::string thousands(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return (v < 0 ? "-" : "") + out;
}

// A Markdown table cell: no line breaks, pipes escaped.
std::string cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

// Ticks at round values (1, 2 or 5 times a power of ten) covering [lo, hi], about `want` of them.
std::vector<double> ticks(double lo, double hi, int want) {
  const double raw = (hi - lo) / want, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    out.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return out;
}

std::string tick_label(double v, double step) {
  if (std::abs(v) >= 1e4 && step >= 1000) return fmt("%gk", v / 1000);
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}


// What metrics.jsonl holds, the last record of each step kept (a run resumed from an earlier
// checkpoint logs those steps again).
struct Metrics {
  std::map<int64_t, json> steps, evals;
  int damaged = 0;  // lines that are not JSON (torn by a launch killed while writing them)
};

Metrics read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UserError(path + ": cannot read (no training step logged yet?)");
  Metrics m;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    json r = json::parse(line, nullptr, false);
    if (r.is_discarded()) {
      ++m.damaged;
      continue;
    }
    if (!r.is_object() || !r.contains("step") || !r["step"].is_number_integer())
      throw UserError(path + ":" + std::to_string(n) + ": not a metrics record");
    const int64_t step = r["step"].get<int64_t>();
    if (r.contains("loss")) m.steps[step] = r;
    if (r.contains("val_loss")) m.evals[step] = r;
  }
  if (m.steps.empty()) throw UserError(path + ": no training step logged yet");
  return m;
}

double median_of(const std::map<int64_t, json>& recs, const char* key, int64_t after) {
  std::vector<double> v;
  for (const auto& [step, r] : recs)
    if (step > after && r.contains(key) && r[key].is_number()) v.push_back(r[key].get<double>());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return (v[(v.size() - 1) / 2] + v[v.size() / 2]) / 2;
}

std::vector<json> read_lines(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    json r = json::parse(line, nullptr, false);
    if (!r.is_discarded() && r.is_object()) out.push_back(std::move(r));  // a torn last line: skipped
  }
  return out;
}

std::string str(const json& r, const char* key, const std::string& otherwise = "") {
  return r.contains(key) && r[key].is_string() ? r[key].get<std::string>() : otherwise;
}

}  // namespace

std::string utc_timestamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".partial";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw UserError(path + ": cannot write (directory not writable or disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw UserError(path + ": cannot replace (" + ec.message() + ")");
  }
}

std::string model_card_front_matter(const std::string& library, const std::string& family,
                                    const std::vector<std::string>& languages) {
  std::string t = "---\nlibrary_name: " + library + "\ntags:\n- tessera\n- " + family + "\n- pretraining\n";
  if (!languages.empty()) {
    t += "language:\n";
    for (const std::string& l : languages) t += "- " + l + "\n";
  }
  return t + "---\n";
}

void append_launch_record(const std::string& run_dir, const std::string& json_text) {
  std::ofstream out(run_dir + "/launches.jsonl", std::ios::app);
  out << json_text << '\n' << std::flush;
  if (!out) throw UserError(run_dir + "/launches.jsonl: cannot write");
}

std::string loss_chart_svg(const std::vector<LossPoint>& train_logged, const std::vector<LossPoint>& valid) {
  TS_ASSERT(!train_logged.empty(), "a loss chart needs at least one training step");
  // At most 1000 points for the training loss: a long run's chart stays small, each point the
  // mean of `per_point` consecutive logged steps (at the last of them).
  constexpr size_t kMaxPoints = 1000;
  const size_t per_point = (train_logged.size() + kMaxPoints - 1) / kMaxPoints;
  std::vector<LossPoint> train;
  for (size_t i = 0; i < train_logged.size(); i += per_point) {
    const size_t end = std::min(train_logged.size(), i + per_point);
    double sum = 0;
    size_t n = 0;
    for (size_t j = i; j < end; ++j)
      if (std::isfinite(train_logged[j].loss)) sum += train_logged[j].loss, ++n;
    train.push_back({train_logged[end - 1].step, n ? sum / static_cast<double>(n) : NAN});
  }
  constexpr double W = 720, H = 360, L = 64, R = 20, T = 40, B = 48;
  double s0 = 0, s1 = train.back().step, v0 = INFINITY, v1 = -INFINITY;  // steps from 0
  for (const std::vector<LossPoint>* set : std::initializer_list<const std::vector<LossPoint>*>{&train, &valid})
    for (const LossPoint& p : *set) {
      s1 = std::max<double>(s1, p.step);
      if (std::isfinite(p.loss)) v0 = std::min(v0, p.loss), v1 = std::max(v1, p.loss);
    }
  if (!(v1 >= v0)) v0 = 0, v1 = 1;
  if (s1 <= s0) s1 = s0 + 1;
  const double pad = std::max((v1 - v0) * 0.05, 1e-3);
  v0 -= pad, v1 += pad;
  auto x = [&](double s) { return L + (s - s0) / (s1 - s0) * (W - L - R); };
  auto y = [&](double v) { return T + (1 - (v - v0) / (v1 - v0)) * (H - T - B); };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" viewBox=\"0 0 " << W << ' ' << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << L << "\" y=\"22\" font-size=\"14\">loss (nats per token)"
    << (per_point > 1 ? ", training: mean of " + std::to_string(per_point) + " logged steps a point" : "")
    << "</text>\n";
  const std::vector<double> xs = ticks(s0, s1, 6), ys = ticks(v0, v1, 5);
  const double xstep = xs.size() > 1 ? xs[1] - xs[0] : 1, ystep = ys.size() > 1 ? ys[1] - ys[0] : 1;
  o << "<g stroke=\"#dddddd\">\n";
  for (double t : xs) o << fmt("<line x1=\"%.1f\"", x(t)) << fmt(" x2=\"%.1f\"", x(t)) << " y1=\"" << T << "\" y2=\"" << H - B << "\"/>\n";
  for (double t : ys) o << "<line x1=\"" << L << "\" x2=\"" << W - R << fmt("\" y1=\"%.1f\"", y(t)) << fmt(" y2=\"%.1f\"/>\n", y(t));
  o << "</g>\n<g fill=\"#333333\">\n";
  for (double t : xs)
    o << fmt("<text x=\"%.1f\"", x(t)) << " y=\"" << H - B + 16 << "\" text-anchor=\"middle\">"
      << tick_label(t, xstep) << "</text>\n";
  for (double t : ys)
    o << "<text x=\"" << L - 6 << fmt("\" y=\"%.1f\"", y(t) + 4) << " text-anchor=\"end\">"
      << tick_label(t, ystep) << "</text>\n";
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">step</text>\n</g>\n";
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
    << "\" fill=\"none\" stroke=\"#333333\"/>\n";
  auto line = [&](const std::vector<LossPoint>& pts, const char* colour, const char* id) {
    o << "<polyline id=\"" << id << "\" fill=\"none\" stroke=\"" << colour
      << "\" stroke-width=\"1.5\" points=\"";
    for (const LossPoint& p : pts)
      if (std::isfinite(p.loss)) o << fmt("%.1f,", x(p.step)) << fmt("%.1f ", y(p.loss));
    o << "\"/>\n";
  };
  line(train, "#1f77b4", "train");
  if (!valid.empty()) {
    line(valid, "#ff7f0e", "valid");
    for (const LossPoint& p : valid)
      if (std::isfinite(p.loss))
        o << fmt("<circle cx=\"%.1f\"", x(p.step)) << fmt(" cy=\"%.1f\" r=\"3\" fill=\"#ff7f0e\"/>\n", y(p.loss));
  }
  // Legend, top right.
  const double lx = W - R - 175;
  o << "<g font-size=\"12\">\n"
    << "<line x1=\"" << lx << "\" x2=\"" << lx + 20 << "\" y1=\"22\" y2=\"22\" stroke=\"#1f77b4\" stroke-width=\"2\"/>"
    << "<text x=\"" << lx + 25 << "\" y=\"26\">train</text>\n";
  if (!valid.empty())
    o << "<line x1=\"" << lx + 70 << "\" x2=\"" << lx + 90 << "\" y1=\"22\" y2=\"22\" stroke=\"#ff7f0e\" stroke-width=\"2\"/>"
      << "<text x=\"" << lx + 95 << "\" y=\"26\">validation</text>\n";
  o << "</g>\n</svg>\n";
  return o.str();
}

RunSummary write_run_report(const std::string& run_dir) {
  const std::string config_path = run_dir + "/config.toml";
  if (!fs::exists(config_path)) throw UserError(config_path + ": missing (not a tessera run directory?)");
  const RunConfig cfg = config_load(config_path, {});
  const Metrics metrics = read_metrics(run_dir + "/metrics.jsonl");
  const std::vector<json> launches = read_lines(run_dir + "/launches.jsonl");
  json mixture;
  if (std::ifstream in(run_dir + "/mixture.json"); in) mixture = json::parse(in, nullptr, false);
  const ModelConfig& m = cfg.model;
  const TrainConfig& t = cfg.train;
  const OptimConfig& op = cfg.optim;

  std::vector<LossPoint> train, valid;
  for (const auto& [step, r] : metrics.steps)
    if (r["loss"].is_number()) train.push_back({step, r["loss"].get<double>()});
  for (const auto& [step, r] : metrics.evals)
    if (r["val_loss"].is_number()) valid.push_back({step, r["val_loss"].get<double>()});
  if (train.empty()) throw UserError(run_dir + "/metrics.jsonl: no training loss logged yet");
  write_text_file(run_dir + "/loss.svg", loss_chart_svg(train, valid));

  const int64_t steps_done = train.back().step;
  const int64_t tokens_per_step = t.global_batch * m.seq_len;
  // Recorded by the trainer (exact also when a resume changed the batch size); older records lack it.
  const json& last_step = metrics.steps.rbegin()->second;
  const int64_t tokens = last_step.contains("tokens") && last_step["tokens"].is_number_integer()
                             ? last_step["tokens"].get<int64_t>()
                             : steps_done * tokens_per_step;
  std::string name = fs::path(fs::absolute(run_dir).lexically_normal()).filename().string();
  if (name.empty()) name = fs::absolute(run_dir).lexically_normal().parent_path().filename().string();

  std::ostringstream o;
  // Front matter in the Hugging Face model-card form, so that the card travels with an export.
  std::vector<std::string> languages;
  if (mixture.is_object() && mixture.contains("sources"))
    for (const json& s : mixture["sources"]) {
      const std::string lang = str(s, "language");
      if (!lang.empty() && std::find(languages.begin(), languages.end(), lang) == languages.end())
        languages.push_back(lang);
    }
  o << model_card_front_matter("tessera", m.family, languages) << "\n# " << name << "\n\n";
  o << "A language model (" << model_describe(m) << ") pretrained from scratch with tessera: "
    << thousands(steps_done) << " of " << thousands(t.steps) << " planned steps, "
    << thousands(tokens) << " tokens.\n\n";
  o << "![training and validation loss against step](loss.svg)\n\n";
  if (metrics.damaged)
    o << "(" << metrics.damaged << " damaged line" << (metrics.damaged > 1 ? "s" : "")
      << " of metrics.jsonl skipped: a launch killed while writing?)\n\n";

  o << "## Results\n\n";
  o << "| | step | loss (nats per token) |\n|---|---|---|\n";
  o << "| training, last logged | " << train.back().step << " | " << fmt("%.4f", train.back().loss) << " |\n";
  if (!valid.empty()) {
    const auto best = std::min_element(valid.begin(), valid.end(),
                                       [](const LossPoint& a, const LossPoint& b) { return a.loss < b.loss; });
    o << "| validation, last | " << valid.back().step << " | " << fmt("%.4f", valid.back().loss) << " |\n";
    o << "| validation, best | " << best->step << " | " << fmt("%.4f", best->loss) << " |\n";
    const json& last = metrics.evals.rbegin()->second;
    if (last.contains("val_loss_by_language") && last["val_loss_by_language"].is_object()) {
      o << "\nValidation loss per language at step " << valid.back().step
        << " (the overall figure weights them by their sampling probability):\n\n"
        << "| language | loss |\n|---|---|\n";
      for (const auto& [lang, loss] : last["val_loss_by_language"].items())
        if (loss.is_number()) o << "| " << cell(lang) << " | " << fmt("%.4f", loss.get<double>()) << " |\n";
    }
  } else {
    o << "\nNo validation set was configured (data.valid or a source's valid).\n";
  }

  o << "\n## Data\n\n";
  o << "Tokenizer: `" << cfg.data.tokenizer << "`.";
  if (mixture.is_object() && mixture.contains("sources") && mixture["sources"].is_array()) {
    if (mixture.contains("temperature") && mixture["temperature"].is_number() && mixture["temperature"].get<double>() > 0)
      o << " Sources mixed with temperature " << fmt("%g", mixture["temperature"].get<double>())
        << " (p ∝ tokens^(1/T)).";
    o << " Each sample's source is a pure function of the seed and the sample's index, so the data "
         "order does not depend on the parallel layout.\n\n"
      << "| source | language | tokens | sampling probability | epochs over the planned run |\n|---|---|---|---|---|\n";
    for (const json& s : mixture["sources"]) {
      auto num = [&](const char* k) { return s.contains(k) && s[k].is_number() ? s[k].get<double>() : NAN; };
      o << "| " << cell(str(s, "name")) << " | " << cell(str(s, "language")) << " | "
        << thousands(static_cast<int64_t>(num("tokens"))) << " | " << fmt("%.4f", num("probability")) << " | "
        << fmt("%.3f", num("expected_epochs")) << " |\n";
    }
  } else {
    o << " Training data: `" << cfg.data.train << "`.\n";
  }

  o << "\n## Training\n\n";
  o << "- Batch: " << t.global_batch << " sequences of " << m.seq_len << " tokens per step ("
    << thousands(tokens_per_step) << " tokens), micro-batches of " << t.micro_batch << "; precision "
    << t.precision << ", device " << t.device << ", seed " << t.seed << ".\n";
  o << "- Optimiser: AdamW, lr " << fmt("%g", op.lr) << " → " << fmt("%g", op.min_lr) << " (" << op.schedule
    << ", " << op.warmup_steps << " warm-up steps), betas " << fmt("%g", op.beta1) << "/" << fmt("%g", op.beta2)
    << ", eps " << fmt("%g", op.eps) << ", weight decay " << fmt("%g", op.weight_decay) << ", gradient clipping "
    << fmt("%g", op.grad_clip) << ".\n";
  o << "- Dropout " << fmt("%g", m.dropout) << "; embeddings " << (m.tie_embeddings ? "tied" : "untied") << ".\n";
  const double tok_s = median_of(metrics.steps, "tokens_per_s", 1), mfu = median_of(metrics.steps, "mfu", 1),
               step_ms = median_of(metrics.steps, "step_ms", 1);
  if (std::isfinite(tok_s))
    o << "- Throughput (median over the logged steps, step 1 and its one-time costs left out): " << thousands(std::llround(tok_s))
      << " tokens/s, " << fmt("%.0f", step_ms) << " ms per step, MFU " << fmt("%.1f%%", 100 * mfu)
      << " (docs/performance.md).\n";
  const double compute = median_of(metrics.steps, "compute_ms", 1), comm = median_of(metrics.steps, "exposed_comm_ms", 1),
               bubble = median_of(metrics.steps, "bubble_ms", 1);
  if (std::isfinite(compute) && std::isfinite(comm) && std::isfinite(bubble))
    o << "- Where a step's time goes (medians): compute " << fmt("%.1f", compute) << " ms, communication not hidden "
      << fmt("%.1f", comm) << " ms, pipeline bubble " << fmt("%.1f", bubble) << " ms.\n";

  o << "\n## Launches\n\n";
  if (launches.empty()) {
    o << "No launch records (launches.jsonl is missing).\n";
  } else {
    o << "| started (UTC) | host | layout | device | from step | ended |\n|---|---|---|---|---|---|\n";
    for (size_t i = 0; i < launches.size(); ++i) {
      const json& s = launches[i];
      if (str(s, "event") != "start") continue;
      std::string ended = "no end record (an error, a crash or a kill)";
      size_t next = i + 1;  // the launch's end record, if any, is the next start or end record
      while (next < launches.size() && str(launches[next], "event") != "start" && str(launches[next], "event") != "end") ++next;
      if (next < launches.size() && str(launches[next], "event") == "end") {
        const json& e = launches[next];
        ended = str(e, "how") + " at step " + std::to_string(e.value("step", int64_t{0})) + ", " + str(e, "time");
      }
      std::string from = std::to_string(s.value("step", int64_t{0}));
      if (!str(s, "resumed_from").empty()) from += " (" + str(s, "resumed_from") + ")";
      std::string host = str(s, "host");
      if (s.contains("hosts") && s["hosts"].is_array() && s["hosts"].size() > 1) {
        const json& hs = s["hosts"];
        host = std::to_string(hs.size()) + " hosts: ";
        for (size_t h = 0; h < hs.size() && h < 4; ++h) host += (h ? ", " : "") + (hs[h].is_string() ? hs[h].get<std::string>() : "?");
        if (hs.size() > 4) host += ", ...";
      }
      if (!str(s, "slurm_job").empty()) host += " (Slurm job " + str(s, "slurm_job") + ", nodes " + str(s, "nodes", "?") + ")";
      o << "| " << cell(str(s, "time")) << " | " << cell(host) << " | " << cell(str(s, "layout"))
        << " | " << cell(str(s, "device")) << " | " << cell(from) << " | " << cell(ended) << " |\n";
    }
    const json& first = launches.front();
    o << "\nBuilt from tessera " << str(first, "version", "?") << " (commit " << str(first, "commit", "?") << ")";
    for (const json& l : launches)
      if (str(l, "event") == "start" && str(l, "commit") != str(first, "commit"))
        o << "; a later launch ran commit " << str(l, "commit");
    o << ".\n";
  }

  // Loss spikes (train.spike_zscore): each skipped step or rewind, and the data windows skipped.
  std::string skip_data;
  bool spikes = false;
  for (const json& l : launches) {
    if (str(l, "event") != "spike") continue;
    if (!spikes) {
      o << "\n## Loss spikes\n\n| step | loss | mean of the window | standard deviation | what was done |\n|---|---|---|---|---|\n";
      spikes = true;
    }
    const auto number = [&](const char* key) {
      return l.contains(key) && l[key].is_number() ? fmt("%.4f", l[key].get<double>()) : std::string("?");
    };
    std::string action = "update skipped";
    if (str(l, "action") == "rewound") {
      const int64_t to = l.value("rewound_to", int64_t{0}), at = l.value("step", int64_t{0});
      action = "rewound to step " + std::to_string(to) + ", batches of steps " + std::to_string(to + 1) + "-" +
               std::to_string(at) + " skipped";
      skip_data = str(l, "skip_data");
    }
    o << "| " << l.value("step", int64_t{0}) << " | " << number("loss") << " | " << number("mean") << " | "
      << number("stddev") << " | " << cell(action) << " |\n";
  }
  if (!skip_data.empty())
    o << "\nThe run never trained on the skipped batches: `train.skip_data = \"" << skip_data
      << "\"` reproduces it from step 0.\n";

  std::string launcher = "mpirun -np N ";  // as the last launch ran
  for (const json& l : launches)
    if (str(l, "event") == "start" && l.contains("world") && l["world"].is_number_integer())
      launcher = l["world"].get<int64_t>() > 1 ? "mpirun -np " + std::to_string(l["world"].get<int64_t>()) + " " : "";
  o << "\n## Reproduce\n\n"
    << "`config.toml` is the resolved configuration; training it again,\n\n"
    << "```\n" << launcher << "build/tessera train " << run_dir
    << "/config.toml --set log.dir='\"NEW_DIR\"' --set checkpoint.resume='\"none\"'"
    << (skip_data.empty() ? "" : " --set train.skip_data='\"" + skip_data + "\"'") << "\n```\n\n"
    << "gives the same losses bit for bit on the CPU backend under the same layout, and the same to float "
       "rounding under any other [parallel] layout: the data order, the initialisation and dropout are "
       "functions of the seed, not of the layout. A run stopped and resumed from its checkpoints continues "
       "exactly as if it had not stopped.\n\n";
  o << "## Files\n\n"
    << "- `config.toml`: the resolved configuration\n"
    << "- `metrics.jsonl`: one record per logged step (loss, lr, grad_norm, tokens_per_s, mfu, step_ms) and per evaluation\n";
  if (!mixture.is_discarded() && mixture.is_object()) o << "- `mixture.json`: the training mixture\n";
  if (!launches.empty()) o << "- `launches.jsonl`: one record per launch start and end\n";
  if (fs::exists(run_dir + "/model.h5")) o << "- `model.h5`: the final weights (docs/weights-format.md)\n";
  const std::string ck_root = cfg.checkpoint.root(run_dir);
  if (std::ifstream latest(ck_root + "/latest"); latest) {
    std::string dir;
    std::getline(latest, dir);
    o << "- checkpoints: latest `" << ck_root << "/" << dir << "` (`tessera inspect` describes it, `tessera export` "
      << "turns it into a Hugging Face model)\n";
  }
  write_text_file(run_dir + "/README.md", o.str());
  RunSummary sum;
  sum.dir = run_dir;
  sum.parameters = m.num_parameters();
  sum.step = steps_done;
  sum.tokens = tokens;
  sum.flops = m.flops_per_token() * static_cast<double>(tokens);
  sum.train_loss = train.back().loss;
  for (const LossPoint& v : valid)
    if (!(v.loss >= sum.best_val_loss)) sum.best_val_loss = v.loss;  // NaN at first
  sum.tokens_per_s = tok_s;
  sum.mfu = mfu;
  return sum;
}

std::string runs_table(std::vector<RunSummary> runs) {
  std::stable_sort(runs.begin(), runs.end(), [](const RunSummary& a, const RunSummary& b) { return a.flops < b.flops; });
  auto or_dash = [](double v, const char* f) { return std::isfinite(v) ? fmt(f, v) : std::string("-"); };
  std::string t = "| run | parameters | steps | tokens | training FLOPs | last training loss | best validation loss | "
                  "tokens/s | MFU |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const RunSummary& r : runs)
    t += "| " + cell(r.dir) + " | " + thousands(r.parameters) + " | " + thousands(r.step) + " | " + thousands(r.tokens) +
         " | " + fmt("%.3g", r.flops) + " | " + fmt("%.4f", r.train_loss) + " | " + or_dash(r.best_val_loss, "%.4f") +
         " | " + or_dash(r.tokens_per_s, "%.0f") + " | " + or_dash(100 * r.mfu, "%.1f%%") + " |\n";
  return t;
}

int cmd_report(int argc, char** argv) {
  const char* usage = "usage: tessera report RUN_DIR... (train runs' log.dir)";
  if (argc < 2) throw UserError(usage);
  std::vector<RunSummary> runs;
  for (int i = 1; i < argc; ++i) {
    const std::string dir = argv[i];
    if (dir.starts_with("-")) throw UserError(std::string("report: unknown option ") + dir + " (" + usage + ")");
    if (!fs::is_directory(dir)) throw UserError(dir + ": no such run directory");
    runs.push_back(write_run_report(dir));
    std::printf("%s/README.md\n%s/loss.svg\n", dir.c_str(), dir.c_str());
  }
  if (runs.size() > 1) std::printf("\n%s", runs_table(runs).c_str());
  return 0;
}

}  // namespace tessera
