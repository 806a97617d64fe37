// `tessera export CHECKPOINT_DIR --format hf --out DIR`: a checkpoint's model as a Hugging Face
// model directory (model.safetensors in f32, cut into model-0000i-of-0000n.safetensors with
// model.safetensors.index.json past --max-shard-size, + config.json, the model card and the
// tokenizer's files; GPT2LMHeadModel, LlamaForCausalLM, GPTNeoXForCausalLM or BloomForCausalLM
// through the family's adapter in checkpoints/hf/), loadable with transformers'
// from_pretrained(DIR). One parameter is in memory at a time.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "checkpoints/hf/adapter.h"
#include "checkpoints/hf/safetensors.h"
#include "checkpoints/hf/tokenizer_files.h"
#include "data/tokenizer.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/run_report.h"
#include "launch/session.h"
#include "runtime/error.h"

namespace tessera {
namespace fs = std::filesystem;

namespace {

// README.md of the exported directory: a Hugging Face model card saying what the weights are
// (model, step, tokens, languages), where they come from (the checkpoint, its layout, the
// tessera build) and the resolved training configuration, whole.
std::string export_card(const HfAdapter& hf, const CheckpointReader& r, const RunConfig& cfg,
                        const std::string& tokenizer_note, const std::string& out) {
  const ModelConfig& m = cfg.model;
  const CheckpointMeta& meta = r.meta();
  std::vector<std::string> languages;
  for (const DataSourceConfig& s : cfg.data.sources) {
    const std::string lang = s.language.empty() ? s.name : s.language;
    if (std::find(languages.begin(), languages.end(), lang) == languages.end()) languages.push_back(lang);
  }
  std::string card = model_card_front_matter("transformers", hf.model_type, languages);
  char text[256];
  std::snprintf(text, sizeof text, " pretrained from scratch with tessera %s (commit %s): step %lld, %lld tokens.\n\n",
                meta.tessera_version.c_str(), meta.git_commit.c_str(), static_cast<long long>(meta.step),
                static_cast<long long>(meta.tokens));
  card += "\n# " + fs::path(fs::absolute(out).lexically_normal()).filename().string() + "\n\nA " +
          hf.display_name + " model (" + model_describe(m) + ")" + text;
  card += "Exported by `tessera export` from the checkpoint `" + r.dir() + "`, written under the layout " +
          meta.layout + ". `model.safetensors` (past the size limit, the files `model.safetensors.index.json` lists) "
          "holds the weights in f32 with " + hf.architecture + " names, "
          "`config.json` the architecture.\n\n```python\nfrom transformers import AutoModelForCausalLM\n"
          "model = AutoModelForCausalLM.from_pretrained(\"" + out + "\")\n```\n\n";
  card += "Tokenizer: " + tokenizer_note + ".\n\n";
  card += "The resolved training configuration (`tessera train` with it retrains these weights):\n\n```toml\n" +
          meta.config_toml + (meta.config_toml.ends_with("\n") ? "" : "\n") + "```\n";
  return card;
}

// "5GB", "500MB", "2GiB", "123" (bytes): decimal units as transformers reads them, binary ones
// with "i". UserError naming `what`.
int64_t parse_size(const std::string& text, const std::string& what) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  static const std::map<std::string, double> units = {
      {"", 1},       {"B", 1},          {"KB", 1e3},       {"MB", 1e6},          {"GB", 1e9},
      {"KiB", 1024}, {"MiB", 1 << 20},  {"GiB", 1 << 30}};
  const auto it = units.find(unit);
  if (used == 0 || it == units.end() || !(value > 0))
    throw UserError(what + " " + text + ": expected a size such as 5GB, 500MB, 2GiB or a number of bytes");
  return static_cast<int64_t>(value * it->second);
}

// Moves the export written in `staging` to `target`: renamed when target does not exist;
// otherwise the weight files of an earlier export there are removed (a different sharding would
// leave stale ones) and the new files moved in over the old, other files left alone.
void export_move_into_place(const fs::path& staging, const fs::path& target) {
  std::error_code ec;
  if (!fs::exists(target, ec)) {
    fs::rename(staging, target, ec);
    if (ec) throw UserError(target.string() + ": cannot move the export into place (" + ec.message() + ")");
    return;
  }
  if (!fs::is_directory(target, ec)) throw UserError(target.string() + ": exists and is not a directory");
  for (const auto& e : fs::directory_iterator(target, ec)) {
    const std::string n = e.path().filename().string();
    const bool weights = n.starts_with("model") && (n.ends_with(".safetensors") || n.ends_with(".safetensors.index.json"));
    if (weights) fs::remove(e.path(), ec);
  }
  for (const auto& e : fs::directory_iterator(staging, ec)) {
    fs::rename(e.path(), target / e.path().filename(), ec);
    if (ec) throw UserError((target / e.path().filename()).string() + ": cannot replace (" + ec.message() + ")");
  }
  fs::remove_all(staging, ec);
}

}  // namespace

int cmd_export(int argc, char** argv) {
  const char* usage = "usage: tessera export CHECKPOINT_DIR --format hf --out DIR [--max-shard-size SIZE]";
  std::string ckpt, format, out;
  int64_t max_shard_bytes = 5'000'000'000;  // transformers' "5GB"
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      if (!ckpt.empty()) throw UserError("export: more than one checkpoint given (" + std::string(usage) + ")");
      ckpt = a;
      continue;
    }
    if (i + 1 >= argc) throw UserError("export: " + a + " needs a value (" + usage + ")");
    if (a == "--format") format = argv[++i];
    else if (a == "--out") out = argv[++i];
    else if (a == "--max-shard-size") max_shard_bytes = parse_size(argv[++i], "export: --max-shard-size");
    else throw UserError("export: unknown option " + a + " (" + usage + ")");
  }
  if (ckpt.empty() || out.empty() || format.empty()) throw UserError(usage);
  if (format != "hf") throw UserError("export: --format " + format + " is not supported (allowed: hf)");

  const CheckpointReader r(ckpt);
  if (std::string problem = r.first_problem(true); !problem.empty()) throw UserError(problem);
  const RunConfig cfg = config_parse(r.meta().config_toml, r.dir() + "/index.h5 (stored config)");
  const ModelConfig& m = cfg.model;
  const HfAdapter* hf = hf_adapter_for(m.family);
  if (!hf) throw UserError(r.dir() + ": model family " + m.family + " has no Hugging Face adapter yet");

  int64_t eod = -1;
  HfTokenizerFiles tokenizer_files;
  try {
    eod = data::tokenizer_create(cfg.data.tokenizer)->eod_id();
  } catch (const UserError&) {
    tokenizer_files.note = cfg.data.tokenizer + " (not known to this build); no tokenizer files are written";
  }
  // Checked and generated in memory, so that a tokenizer that cannot be exported exactly
  // stops the export before anything is written.
  if (eod >= 0) tokenizer_files = hf_tokenizer_files_make(cfg.data.tokenizer);
  const std::string& tokenizer_note = tokenizer_files.note;
  // Before anything is written: the adapter refuses a model its architecture cannot compute.
  const std::string config_json = hf->config_json(m, eod);

  // The HF tensors in order, each with its parameter, cut into files of at most
  // max_shard_bytes (a tensor larger than that gets a file of its own).
  struct Planned {
    size_t param;
    HfPiece piece;
    int64_t bytes;
    size_t file;
  };
  const std::vector<Param> params = session_param_list(m);
  std::vector<Planned> plan;
  std::vector<int64_t> file_bytes;
  int64_t bytes = 0;
  for (size_t i = 0; i < params.size(); ++i)
    for (const HfPiece& piece : hf->tensor_map(m, params[i].name).pieces) {
      const int64_t b = hf_piece_numel(params[i], piece) * 4;
      if (file_bytes.empty() || (file_bytes.back() > 0 && file_bytes.back() + b > max_shard_bytes))
        file_bytes.push_back(0);
      file_bytes.back() += b;
      bytes += b;
      plan.push_back({i, piece, b, file_bytes.size() - 1});
    }
  const size_t files = file_bytes.size();
  auto file_name = [&](size_t f) {
    if (files == 1) return std::string("model.safetensors");
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", f + 1, files);
    return std::string(name);
  };

  // Written into a directory beside --out, then moved into place: an export that fails leaves
  // --out as it was.
  const fs::path target = fs::absolute(out).lexically_normal();
  std::error_code ec;
  const fs::path staging = target.parent_path() / ("." + target.filename().string() + ".export");
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec || !fs::is_directory(staging))
    throw UserError(out + ": cannot create the output directory (" + (ec ? ec.message() : "not a directory") + ")");
  try {
    // One parameter in memory at a time (f32; an f64 checkpoint is rounded), its HF tensors
    // appended to their files as they come.
    std::vector<std::unique_ptr<SafetensorsWriter>> writers(files);
    nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
    for (size_t f = 0, k = 0; f < files; ++f) {
      std::vector<SafetensorsWriter::Tensor> tensors;
      for (; k < plan.size() && plan[k].file == f; ++k) {
        tensors.push_back({plan[k].piece.name, hf_piece_shape(params[plan[k].param], plan[k].piece)});
        weight_map[plan[k].piece.name] = file_name(f);
      }
      writers[f] = std::make_unique<SafetensorsWriter>((staging / file_name(f)).string(), tensors,
                                                       std::map<std::string, std::string>{{"format", "pt"}});
    }
    std::vector<float> ours;
    for (size_t k = 0; k < plan.size(); ++k) {
      Param p = params[plan[k].param];
      if (k == 0 || plan[k - 1].param != plan[k].param) {
        p.local_shape = p.global_shape;
        ours.resize(static_cast<size_t>(p.global_shape.numel()));
        r.read("model", p, 0, p.global_shape.numel(), ours.data(), DType::f32, 0);
      }
      const HfPiece& piece = plan[k].piece;
      SafetensorsWriter& w = *writers[plan[k].file];
      if (piece.transform == HfTransform::none) {  // its rows of ours, as they are
        const int64_t C = p.global_shape.numel() / p.global_shape[0];
        w.append(ours.data() + piece.row_begin * C, hf_piece_numel(p, piece));
      } else {
        const std::vector<float> theirs = hf_piece_from_tessera(p, piece, ours.data());
        w.append(theirs.data(), static_cast<int64_t>(theirs.size()));
      }
      if (k + 1 == plan.size() || plan[k + 1].file != plan[k].file) writers[plan[k].file]->finish();
    }
    if (files > 1) {
      nlohmann::ordered_json index;
      index["metadata"] = {{"total_size", bytes}};
      index["weight_map"] = weight_map;
      write_text_file((staging / "model.safetensors.index.json").string(), index.dump(2) + "\n");
    }
    hf_tokenizer_files_write(tokenizer_files, staging.string());
    write_text_file((staging / "config.json").string(), config_json);
    write_text_file((staging / "README.md").string(), export_card(*hf, r, cfg, tokenizer_note, out));
    export_move_into_place(staging, target);
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }

  std::printf("exported %s (step %lld, %s) to %s\n", r.dir().c_str(), static_cast<long long>(r.meta().step),
              r.meta().dtype == "f64" ? "f64 rounded to f32" : "f32", out.c_str());
  if (files == 1)
    std::printf("  model.safetensors  %zu tensors, %lld bytes of F32 (%s names; vocabulary rows %lld of %lld "
                "padded)\n",
                plan.size(), static_cast<long long>(bytes), hf->architecture.c_str(),
                static_cast<long long>(m.vocab_size), static_cast<long long>(m.padded_vocab()));
  else
    std::printf("  model-*-of-%05zu.safetensors  %zu tensors in %zu files of at most %lld bytes, %lld bytes of F32 "
                "(%s names; vocabulary rows %lld of %lld padded), listed in model.safetensors.index.json\n",
                files, plan.size(), files, static_cast<long long>(max_shard_bytes), static_cast<long long>(bytes),
                hf->architecture.c_str(), static_cast<long long>(m.vocab_size),
                static_cast<long long>(m.padded_vocab()));
  std::printf("  config.json        %s\n", hf->config_summary(m).c_str());
  std::printf("  tokenizer          %s\n", tokenizer_note.c_str());
  std::printf("  README.md          model card: step, tokens, languages, the checkpoint and the resolved config\n");
  return 0;
}

}  // namespace tessera
