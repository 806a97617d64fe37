// `tessera import DIR --out CHECKPOINT_DIR [--config CONFIG.toml]`: a Hugging Face model
// directory (config.json + model.safetensors or its shards with model.safetensors.index.json;
// read by the adapter of its model_type in checkpoints/hf/: "gpt2", "llama", "gpt_neox",
// "bloom") as a one-shard tessera checkpoint at
// step 0 without optimizer state, which `tessera train` resumes from (checkpoint.resume = the
// directory) with zero AdamW moments, and which `tessera eval` and `tessera export` read.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "checkpoints/hf/adapter.h"
#include "checkpoints/hf/safetensors.h"
#include "data/tokenizer.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/session.h"
#include "launch/version.h"
#include "runtime/error.h"

namespace tessera {
namespace fs = std::filesystem;
namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t d = 0; d < s.size(); ++d) out += (d ? ", " : "") + std::to_string(s[d]);
  return out + "]";
}

// The stored name of HF tensor `name` in `st`: as the LM-head model saves it (GPT2LMHeadModel),
// or without the base model's prefix (GPT2Model and the original OpenAI checkpoints).
std::string find_tensor(const HfAdapter& hf, const SafetensorsSet& st, const std::string& name) {
  if (st.find(name)) return name;
  const std::string& prefix = hf.base_model_prefix;
  if (!prefix.empty() && name.rfind(prefix, 0) == 0 && st.find(name.substr(prefix.size())))
    return name.substr(prefix.size());
  return "";
}

// Tensors the family's state dict may carry that are not weights (GPT-2's causal-mask buffers).
bool is_buffer(const HfAdapter& hf, const std::string& name) {
  for (const std::string& suffix : hf.buffer_suffixes)
    if (name.ends_with(suffix)) return true;
  return false;
}

}  // namespace

int cmd_import(int argc, char** argv) {
  const char* usage = "usage: tessera import HF_DIR --out CHECKPOINT_DIR [--config CONFIG.toml]";
  std::string src, out, config_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      if (!src.empty()) throw UserError("import: more than one input directory given (" + std::string(usage) + ")");
      src = a;
      continue;
    }
    if (i + 1 >= argc) throw UserError("import: " + a + " needs a value (" + usage + ")");
    if (a == "--out") out = argv[++i];
    else if (a == "--config") config_path = argv[++i];
    else throw UserError("import: unknown option " + a + " (" + usage + ")");
  }
  if (src.empty() || out.empty()) throw UserError(usage);
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (!fs::is_directory(src)) throw UserError(src + ": no such directory (expected config.json and model.safetensors)");
  std::error_code ec;
  if (fs::exists(out, ec)) throw UserError(out + ": already exists (remove it or choose another --out)");

  // The model from config.json; everything else (tokenizer, training, precision) from --config.
  RunConfig cfg = config_load(config_path, {});
  const std::string config_json = src + "/config.json";
  const ModelConfig before = cfg.model;
  const HfAdapter& hf = hf_adapter_for_config(config_json);
  cfg.model = hf.read_config(config_json, cfg.model);
  {
    const auto tok = data::tokenizer_create(cfg.data.tokenizer);
    if (cfg.model.vocab_size < tok->vocab_size())
      throw UserError(config_json + ": vocab_size = " + std::to_string(cfg.model.vocab_size) +
                      " is smaller than the vocabulary of tokenizer " + cfg.data.tokenizer + " (" +
                      std::to_string(tok->vocab_size()) + ")");
  }
  const ModelConfig& m = cfg.model;
  const bool f64 = cfg.train.precision == "fp64";

  // Every tensor is found and its shape checked before anything is written; the shard is then
  // written one parameter at a time (ShardData::source), each assembled from its HF tensors
  // straight into one buffer of the parameter's size: memory follows the largest tensor.
  const SafetensorsSet st(src);
  struct Source {
    const Param* param;
    int64_t offset;  // of its first element in the shard's flat order
    std::vector<std::pair<HfPiece, std::string>> pieces;  // and each one's stored name
  };
  std::vector<Source> sources;
  std::set<std::string> used;
  const std::vector<Param> params = session_param_list(m);
  ShardData shard;
  shard.dtype = f64 ? "f64" : "f32";
  shard.groups = {"master"};
  int64_t offset = 0, largest = 0;
  for (const Param& p : params) {
    Source source{&p, offset, {}};
    for (const HfPiece& piece : hf.tensor_map(m, p.name).pieces) {
      const std::string name = find_tensor(hf, st, piece.name);
      if (name.empty())
        throw UserError(st.source() + ": tensor " + piece.name + " is missing (not a " + hf.architecture +
                        " of this config.json?)");
      const std::vector<int64_t> want = hf_piece_shape(p, piece);
      const std::vector<int64_t>& have = st.find(name)->find(name)->shape;
      if (have != want)
        throw UserError(st.find(name)->path() + ": tensor " + name + " is " + shape_text(have) +
                        ", config.json implies " + shape_text(want));
      source.pieces.emplace_back(piece, name);
      used.insert(name);
    }
    const int64_t n = p.global_shape.numel();
    shard.entries.push_back({p.name, p.global_shape, param_slices(p, 0, n, offset)});
    sources.push_back(std::move(source));
    offset += n;
    largest = std::max(largest, n);
  }
  std::vector<char> staging(static_cast<size_t>(largest) * (f64 ? 8 : 4));
  size_t staged = sources.size();  // the source in `staging`
  auto assemble = [&]<typename T>(const Source& source, T* ours) {
    const Param& p = *source.param;
    std::fill_n(ours, p.global_shape.numel(), T(0));  // padding rows stay 0
    const int64_t C = p.global_shape.numel() / p.global_shape[0];
    std::vector<T> theirs;
    for (const auto& [piece, name] : source.pieces) {
      if (piece.transform == HfTransform::none) {  // its rows, in place
        st.find(name)->read_into(name, ours + piece.row_begin * C);
        continue;
      }
      theirs.resize(static_cast<size_t>(hf_piece_numel(p, piece)));
      st.find(name)->read_into(name, theirs.data());
      hf_piece_to_tessera(p, piece, theirs.data(), ours);
    }
  };
  shard.source = [&](const SliceCopy& s) -> const char* {
    size_t i = 0;  // the parameter whose elements hold s.buf_offset
    while (i + 1 < sources.size() && sources[i + 1].offset <= s.buf_offset) ++i;
    if (staged != i) {
      if (f64) assemble(sources[i], reinterpret_cast<double*>(staging.data()));
      else assemble(sources[i], reinterpret_cast<float*>(staging.data()));
      staged = i;
    }
    return staging.data() + (s.buf_offset - sources[i].offset) * (f64 ? 8 : 4);
  };
  std::vector<std::string> ignored;
  for (const std::string& name : st.names())
    if (!used.count(name) && !is_buffer(hf, name) && !(name == "lm_head.weight" && m.tie_embeddings))
      ignored.push_back(name);

  // Written as a checkpoint root of its own beside `out` (commit renames step_00000000.partial
  // and writes `latest` there), then moved into place: nothing else in out's parent is touched.
  const fs::path target = fs::absolute(out);
  fs::create_directories(target.parent_path(), ec);
  const std::string root = (target.parent_path() / ("." + target.filename().string() + ".import")).string();
  const std::string partial = root + "/" + checkpoint_dir_name(0) + ".partial";
  const std::string final_dir = root + "/" + checkpoint_dir_name(0);
  fs::remove_all(root, ec);
  if (!fs::create_directories(partial, ec) || ec)
    throw UserError(partial + ": cannot create (" + (ec ? ec.message() : std::string("exists")) +
                    "; is the directory of --out writable?)");
  try {
    const ShardFile file = shard_write(partial + "/shard_00000.h5", 0, shard);
    CheckpointMeta meta;
    meta.step = 0;
    meta.tokens = 0;
    meta.samples = 0;
    meta.seed = cfg.train.seed;
    meta.dtype = shard.dtype;
    meta.config_toml = config_to_toml(cfg);
    meta.layout = "tessera import of " + src + " (Hugging Face " + hf.display_name +
                  "; world 1, one shard, no optimizer state)";
    meta.layout_ints = {1, 1, 1, 1, 0, 1, 0};
    meta.tessera_version = tessera_version();
    meta.git_commit = tessera_git_commit();
    meta.has_optimizer = false;
    checkpoint_commit(root, partial, final_dir, meta, {file}, 1, 0);
    fs::rename(final_dir, target, ec);
    if (ec) throw UserError(out + ": cannot move the imported checkpoint into place (" + ec.message() + ")");
  } catch (...) {
    fs::remove_all(root, ec);
    throw;
  }
  fs::remove_all(root, ec);

  std::printf("imported %s to %s (step 0, %s, no optimizer state: AdamW moments start at zero)\n",
              src.c_str(), out.c_str(), shard.dtype.c_str());
  std::printf("  model  %s; padding rows zero\n", model_describe(m).c_str());
  std::printf("  %zu tensors, %lld parameters; config: %s with [model] from config.json\n",
              params.size(), static_cast<long long>(m.num_parameters()),
              config_path.empty() ? "tessera defaults" : config_path.c_str());
  if (!config_path.empty() &&
      (before.family != m.family || before.n_layer != m.n_layer || before.d_model != m.d_model ||
       before.n_head != m.n_head || before.kv_heads() != m.kv_heads() ||
       before.ff() != m.ff() || (before.vocab_size && before.vocab_size != m.vocab_size) || before.seq_len != m.seq_len ||
       before.tie_embeddings != m.tie_embeddings || before.norm_eps != m.norm_eps))
    std::printf("  note: %s's [model] differs from config.json; the checkpoint records config.json's "
                "(train with a config whose [model] matches it)\n",
                config_path.c_str());
  if (!ignored.empty())
    std::printf("  note: ignored %zu tensors that %s does not use (first: %s)\n", ignored.size(),
                hf.display_name.c_str(), ignored.front().c_str());
  std::printf("  resume with: tessera train CONFIG.toml --set checkpoint.resume=\"%s\"\n", out.c_str());
  return 0;
}

}  // namespace tessera
