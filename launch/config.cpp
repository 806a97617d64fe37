#include "launch/config.h"

#include <cmath>
#include <algorithm>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>
#include <variant>

#include "optim/loss_spike.h"
#include "runtime/error.h"

namespace tessera {
namespace {

// One configurable key: where it lives, its type and the values it accepts.
struct Field {
  std::string section, key;
  std::variant<int64_t*, double*, bool*, std::string*> target;
  std::vector<std::string> choices;  // strings: allowed values (empty = any)
  double min = -INFINITY, max = INFINITY;

  template <typename T>
  Field(std::string s, std::string k, T* p, std::vector<std::string> c = {}, double lo = -INFINITY,
        double hi = INFINITY)
      : section(std::move(s)), key(std::move(k)), target(p), choices(std::move(c)), min(lo), max(hi) {}
};

std::vector<Field> fields_of(RunConfig& c) {
  const double inf = INFINITY;
  return {
      {"model", "family", &c.model.family, {"gpt2", "llama", "neox", "bloom"}},
      {"model", "n_layer", &c.model.n_layer, {}, 1, 4096},
      {"model", "d_model", &c.model.d_model, {}, 1, 1 << 20},
      {"model", "n_head", &c.model.n_head, {}, 1, 4096},
      {"model", "n_kv_head", &c.model.n_kv_head, {}, 0, 4096},
      {"model", "d_ff", &c.model.d_ff, {}, 0, 1 << 22},
      {"model", "vocab_size", &c.model.vocab_size, {}, 0, 1 << 24},
      {"model", "seq_len", &c.model.seq_len, {}, 1, 1 << 20},
      {"model", "dropout", &c.model.dropout, {}, 0, 0.999},
      {"model", "tie_embeddings", &c.model.tie_embeddings},
      {"model", "norm", &c.model.norm, {"layernorm", "rmsnorm"}},
      {"model", "norm_eps", &c.model.norm_eps, {}, 0, 1},
      {"model", "bias", &c.model.bias},
      {"model", "qkv_bias", &c.model.qkv_bias},
      {"model", "position", &c.model.position, {"learned", "rope", "alibi"}},
      {"model", "rope_theta", &c.model.rope_theta, {}, 1, 1e12},
      {"model", "rope_fraction", &c.model.rope_fraction, {}, 0, 1},
      {"model", "activation", &c.model.activation, {"gelu_tanh", "gelu", "swiglu"}},
      {"model", "residual", &c.model.residual, {"sequential", "parallel"}},
      {"model", "embedding_norm", &c.model.embedding_norm},
      {"model", "init", &c.model.init, {"gpt2", "neox", "normal"}},
      {"model", "init_std", &c.model.init_std, {}, 1e-9, 1},
      {"parallel", "tp", &c.parallel.tp, {}, 1, 4096},
      {"parallel", "pp", &c.parallel.pp, {}, 1, 4096},
      {"parallel", "dp", &c.parallel.dp, {}, 0, 1 << 20},
      {"parallel", "schedule", &c.parallel.schedule, {"1f1b", "gpipe", "interleaved"}},
      {"parallel", "virtual_stages", &c.parallel.virtual_stages, {}, 1, 64},
      {"parallel", "sequence_parallel", &c.parallel.sequence_parallel},
      {"parallel", "zero", &c.parallel.zero, {}, 0, 1},
      {"parallel", "bucket_mb", &c.parallel.bucket_mb, {}, 0.001, 1 << 16},
      {"parallel", "node_local_tp", &c.parallel.node_local_tp},
      {"train", "steps", &c.train.steps, {}, 0, inf},
      {"train", "micro_batch", &c.train.micro_batch, {}, 1, 1 << 20},
      {"train", "global_batch", &c.train.global_batch, {}, 0, 1 << 24},
      {"train", "seed", &c.train.seed, {}, 0, inf},
      {"train", "device", &c.train.device, {"cpu", "cuda"}},
      {"train", "precision", &c.train.precision, {"fp32", "bf16", "fp64"}},
      {"train", "recompute", &c.train.recompute, {"none", "full"}},
      {"train", "eval_every", &c.train.eval_every, {}, 0, inf},
      {"train", "eval_batches", &c.train.eval_batches, {}, 1, inf},
      {"train", "threads", &c.train.threads, {}, 0, 4096},
      {"train", "stop_at", &c.train.stop_at, {}, 0, inf},
      {"train", "collective_timeout_s", &c.train.collective_timeout_s, {}, 0, 1e7},
      {"train", "straggler_ratio", &c.train.straggler_ratio, {}, 0, 1e6},
      {"train", "on_nonfinite", &c.train.on_nonfinite, {"stop", "skip"}},
      {"train", "max_skipped", &c.train.max_skipped, {}, 1, 1 << 20},
      {"train", "spike_zscore", &c.train.spike_zscore, {}, 0, 1e6},
      {"train", "spike_window", &c.train.spike_window, {}, 2, 1 << 20},
      {"train", "on_spike", &c.train.on_spike, {"skip", "rewind"}},
      {"train", "skip_data", &c.train.skip_data},
      {"optim", "lr", &c.optim.lr, {}, 0, 10},
      {"optim", "min_lr", &c.optim.min_lr, {}, 0, 10},
      {"optim", "warmup_steps", &c.optim.warmup_steps, {}, 0, inf},
      {"optim", "schedule", &c.optim.schedule, {"cosine", "linear", "constant", "wsd"}},
      {"optim", "decay_fraction", &c.optim.decay_fraction, {}, 1e-9, 1},
      {"optim", "weight_decay", &c.optim.weight_decay, {}, 0, 10},
      {"optim", "beta1", &c.optim.beta1, {}, 0, 0.999999},
      {"optim", "beta2", &c.optim.beta2, {}, 0, 0.999999999},
      {"optim", "eps", &c.optim.eps, {}, 0, 1},
      {"optim", "grad_clip", &c.optim.grad_clip, {}, 0, inf},
      {"optim", "decay_embeddings", &c.optim.decay_embeddings},
      {"optim", "decay_norms_and_biases", &c.optim.decay_norms_and_biases},
      {"data", "tokenizer", &c.data.tokenizer},
      {"data", "train", &c.data.train},
      {"data", "valid", &c.data.valid},
      {"data", "temperature", &c.data.temperature, {}, 0, 1e6},
      {"checkpoint", "dir", &c.checkpoint.dir},
      {"checkpoint", "every", &c.checkpoint.every, {}, 0, inf},
      {"checkpoint", "keep", &c.checkpoint.keep, {}, 1, inf},
      {"checkpoint", "keep_every", &c.checkpoint.keep_every, {}, 0, inf},
      {"checkpoint", "async", &c.checkpoint.async},
      {"checkpoint", "resume", &c.checkpoint.resume},
      {"checkpoint", "verify", &c.checkpoint.verify},
      {"log", "dir", &c.log.dir},
      {"log", "every", &c.log.every, {}, 1, inf},
      {"log", "tensorboard", &c.log.tensorboard},
  };
}

std::string fmt_number(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::string type_name(const Field& f) {
  switch (f.target.index()) {
    case 0: return "an integer";
    case 1: return "a number";
    case 2: return "true or false";
    default: return "a string";
  }
}

// Assigns one TOML value to its field, or throws naming file, key and what is allowed.
void assign(const Field& f, const toml::node& v, const std::string& where) {
  const std::string name = f.section + "." + f.key;
  auto bad = [&](const std::string& why) { throw UserError(where + ": " + name + " " + why); };
  if (auto* p = std::get_if<int64_t*>(&f.target)) {
    auto x = v.value_exact<int64_t>();
    if (!x) bad("must be " + type_name(f));
    if (*x < f.min || *x > f.max)
      bad("= " + std::to_string(*x) + " is out of range [" + std::to_string(int64_t(f.min)) +
          (std::isinf(f.max) ? ", ...)" : ", " + std::to_string(int64_t(f.max)) + "]"));
    **p = *x;
  } else if (auto* p = std::get_if<double*>(&f.target)) {
    auto x = v.value<double>();
    if (!x || v.is_boolean() || v.is_string()) bad("must be " + type_name(f));
    if (!(*x >= f.min && *x <= f.max)) {
      std::ostringstream os;
      os << "= " << *x << " is out of range [" << f.min << ", " << f.max << "]";
      bad(os.str());
    }
    **p = *x;
  } else if (auto* p = std::get_if<bool*>(&f.target)) {
    auto x = v.value_exact<bool>();
    if (!x) bad("must be " + type_name(f));
    **p = *x;
  } else {
    auto x = v.value_exact<std::string>();
    if (!x) bad("must be " + type_name(f));
    // Every string names a file, a directory or a choice: control characters (a NUL would cut a
    // path short where the system reads it) are a mistake, not a name.
    if (std::any_of(x->begin(), x->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
      bad("must not contain control characters (NUL, newline, tab, ...)");
    if (x->size() > 4096) bad("is " + std::to_string(x->size()) + " characters long (at most 4096)");
    if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), *x) == f.choices.end())
      bad("= \"" + *x + "\" is not allowed (allowed: " + join(f.choices) + ")");
    *std::get<std::string*>(f.target) = *x;
  }
}

// [[data.sources]]: an array of tables, each a corpus of the training mixture.
void assign_sources(DataConfig& data, const toml::node& node, const std::string& where) {
  const toml::array* array = node.as_array();
  if (!array || (!array->empty() && !array->is_array_of_tables()))
    throw UserError(where + ": data.sources must be an array of tables ([[data.sources]] with name, "
                            "language, path, valid, weight)");
  const std::vector<std::string> keys = {"name", "language", "path", "valid", "weight"};
  data.sources.clear();
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::table& t = *array->get(i)->as_table();
    const std::string at = where + ": data.sources[" + std::to_string(i) + "]";
    DataSourceConfig s;
    for (const auto& [k, v] : t) {
      const std::string key(k.str());
      if (std::find(keys.begin(), keys.end(), key) == keys.end())
        throw UserError(at + ": unknown key " + key + " (allowed: " + join(keys) + ")");
      if (key == "weight") {
        const auto w = v.value<double>();
        if (!w || v.is_boolean() || v.is_string() || !(*w >= 0) || !std::isfinite(*w))
          throw UserError(at + ": weight must be a number >= 0");
        s.weight = *w;
        continue;
      }
      const auto x = v.value_exact<std::string>();
      if (!x) throw UserError(at + ": " + key + " must be a string");
      (key == "name" ? s.name : key == "language" ? s.language : key == "path" ? s.path : s.valid) = *x;
    }
    if (s.name.empty()) throw UserError(at + ": name is not set");
    if (s.path.empty()) throw UserError(at + " (\"" + s.name + "\"): path is not set (a directory of token shards)");
    if (s.language.empty()) s.language = s.name;
    for (const DataSourceConfig& other : data.sources)
      if (other.name == s.name) throw UserError(at + ": a second source named \"" + s.name + "\"");
    data.sources.push_back(s);
  }
}

void apply_table(RunConfig& cfg, const toml::table& root, const std::string& where) {
  auto fields = fields_of(cfg);
  for (const auto& [sec_key, sec_node] : root) {
    const std::string section(sec_key.str());
    const toml::table* sec = sec_node.as_table();
    std::vector<std::string> keys;
    for (const auto& f : fields)
      if (f.section == section) keys.push_back(f.key);
    if (keys.empty()) {
      std::vector<std::string> sections;
      for (const auto& f : fields)
        if (sections.empty() || sections.back() != f.section) sections.push_back(f.section);
      throw UserError(where + ": unknown section [" + section + "] (allowed: " + join(sections) + ")");
    }
    if (!sec) throw UserError(where + ": " + section + " must be a table [" + section + "]");
    for (const auto& [k, v] : *sec) {
      const std::string key(k.str());
      if (section == "data" && key == "sources") {
        assign_sources(cfg.data, v, where);
        continue;
      }
      // Configs written before the norm became a component name its epsilon layernorm_eps.
      const std::string name = section == "model" && key == "layernorm_eps" ? "norm_eps" : key;
      auto it = std::find_if(fields.begin(), fields.end(),
                             [&](const Field& f) { return f.section == section && f.key == name; });
      if (it == fields.end())
        throw UserError(where + ": unknown key " + section + "." + key + " (allowed in [" +
                        section + "]: " + join(keys) + (section == "data" ? ", sources" : "") + ")");
      assign(*it, v, where);
    }
  }
}

void validate(RunConfig& c, const std::string& where) {
  auto bad = [&](const std::string& why) { throw UserError(where + ": " + why); };
  const ModelConfig& m = c.model;
  if (m.d_model % m.n_head != 0)
    bad("model.d_model = " + std::to_string(m.d_model) + " is not divisible by model.n_head = " +
        std::to_string(m.n_head));
  if (m.n_head % m.kv_heads() != 0)
    bad("model.n_kv_head = " + std::to_string(m.n_kv_head) + " does not divide model.n_head = " +
        std::to_string(m.n_head) + " (allowed: a divisor of n_head, or 0 = n_head)");
  if (m.position == "rope") {
    if (!(m.rope_fraction > 0))
      bad("model.rope_fraction must be in (0, 1] (the share of each head's dimensions rotated)");
    const double dims = m.rope_fraction * static_cast<double>(m.head_size());
    if (dims != std::round(dims) || m.rotary_dims() % 2 != 0)
      bad("model.rope_fraction = " + fmt_number(m.rope_fraction) + " of head size " +
          std::to_string(m.head_size()) + " gives " + fmt_number(dims) +
          " rotary dimensions; it must be an even whole number");
  }
  if (c.train.device == "cuda" && (m.head_size() % 8 != 0 || m.head_size() > 256))
    bad("model head size d_model / n_head = " + std::to_string(m.head_size()) +
        " is not one cuDNN's fused attention takes on train.device = \"cuda\" (allowed: a "
        "multiple of 8, at most 256)");
  if (c.optim.min_lr > c.optim.lr) bad("optim.min_lr must not exceed optim.lr");
  const DataConfig& d = c.data;
  if (!d.sources.empty()) {
    if (!d.train.empty() || !d.valid.empty())
      bad("set either data.train / data.valid or [[data.sources]] (each with its own path and valid)");
    for (const DataSourceConfig& s : d.sources) {
      if (d.temperature > 0 && s.weight > 0)
        bad("data.sources \"" + s.name + "\" has a weight, and data.temperature = " +
            std::to_string(d.temperature) + " derives the weights: set one or the other");
      if (d.temperature == 0 && d.sources.size() > 1 && !(s.weight > 0))
        bad("data.sources \"" + s.name + "\" needs a weight > 0 (or set data.temperature)");
    }
  }
  if (c.train.precision == "fp64" && c.train.device != "cpu")
    bad("train.precision = \"fp64\" is the CPU reference mode (train.device = \"cpu\")");
  if (c.train.precision == "bf16" && c.train.device != "cuda")
    bad("train.precision = \"bf16\" needs train.device = \"cuda\" (the CPU backend runs fp32 or fp64)");
  if (c.train.device == "cuda" && c.train.precision != "bf16")
    bad("train.device = \"cuda\" trains in bf16: set train.precision = \"bf16\"");
  data_skips_parse(c.train.skip_data, where);  // throws naming the window at fault
  if (c.train.global_batch && c.train.global_batch % c.train.micro_batch != 0)
    bad("train.global_batch = " + std::to_string(c.train.global_batch) +
        " is not a multiple of train.micro_batch = " + std::to_string(c.train.micro_batch));
}

// The config file and each --set as tables, in the order they apply.
std::vector<std::pair<toml::table, std::string>> config_tables(
    const std::string& text, const std::string& where, const std::vector<std::string>& overrides) {
  std::vector<std::pair<toml::table, std::string>> tables;
  try {
    tables.emplace_back(toml::parse(text, where), where);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw UserError(where + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) +
                    ": TOML syntax error: " + std::string(e.description()));
  }
  for (const std::string& o : overrides) {
    const auto eq = o.find('='), dot = o.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq)
      throw UserError("--set " + o + ": expected section.key=value");
    const std::string section = o.substr(0, dot), key = o.substr(dot + 1, eq - dot - 1);
    std::string value = o.substr(eq + 1);
    toml::table t;
    try {
      t = toml::parse("[" + section + "]\n" + key + " = " + value + "\n");
    } catch (const toml::parse_error&) {  // a bare word is taken as a string
      toml::table sec;
      sec.insert(key, value);
      t.insert(section, std::move(sec));
    }
    tables.emplace_back(std::move(t), "--set " + o);
  }
  return tables;
}

RunConfig parse_with_overrides(const std::string& text, const std::string& where,
                               const std::vector<std::string>& overrides) {
  const auto tables = config_tables(text, where, overrides);
  // model.family is a preset of the component keys: find the family that finally applies,
  // start from its values, then apply every key, so explicit keys win wherever they stand.
  RunConfig probe;
  for (const auto& [t, at] : tables) apply_table(probe, t, at);
  RunConfig cfg;
  cfg.source = where;
  model_apply_family(cfg.model, probe.model.family);
  for (const auto& [t, at] : tables) apply_table(cfg, t, at);
  validate(cfg, where);
  return cfg;
}

std::string format_value(const Field& f) {
  std::ostringstream os;
  std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>)
          os << toml::value<std::string>(*p);
        else if constexpr (std::is_same_v<T, bool>)
          os << (*p ? "true" : "false");
        else if constexpr (std::is_same_v<T, double>)
          os << toml::value<double>(*p);
        else
          os << *p;
      },
      f.target);
  return os.str();
}

std::string quoted(const std::string& s) {
  std::ostringstream os;
  os << toml::value<std::string>(s);
  return os.str();
}

}  // namespace

RunConfig config_parse(const std::string& text, const std::string& source_name) {
  return parse_with_overrides(text, source_name, {});
}

RunConfig config_load(const std::string& path, const std::vector<std::string>& overrides) {
  std::string text;
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) throw UserError(path + ": cannot read config file");
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  return parse_with_overrides(text, path.empty() ? "<defaults>" : path, overrides);
}

std::string config_to_toml(const RunConfig& cfg) {
  RunConfig copy = cfg;
  std::string out, section;
  for (const Field& f : fields_of(copy)) {
    if (f.section != section) {
      out += (section.empty() ? "[" : "\n[") + f.section + "]\n";
      section = f.section;
    }
    out += f.key + " = " + format_value(f) + "\n";
  }
  for (const DataSourceConfig& s : cfg.data.sources) {
    out += "\n[[data.sources]]\nname = " + quoted(s.name) + "\nlanguage = " + quoted(s.language) +
           "\npath = " + quoted(s.path) + "\nvalid = " + quoted(s.valid) + "\n";
    std::ostringstream w;
    w << toml::value<double>(s.weight);
    out += "weight = " + w.str() + "\n";
  }
  return out;
}

}  // namespace tessera
