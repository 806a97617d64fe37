// `tessera export CHECKPOINT_DIR --format hf --out DIR`: a checkpoint's model as a Hugging Face
// model directory (model.safetensors in f32 + config.json; GPT2LMHeadModel for gpt2,
// LlamaForCausalLM for llama, through the family's adapter in checkpoints/hf/), loadable with
// transformers' from_pretrained(DIR).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
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
          meta.layout + ". `model.safetensors` holds the weights in f32 with " + hf.architecture + " names, "
          "`config.json` the architecture.\n\n```python\nfrom transformers import AutoModelForCausalLM\n"
          "model = AutoModelForCausalLM.from_pretrained(\"" + out + "\")\n```\n\n";
  card += "Tokenizer: " + tokenizer_note + ".\n\n";
  card += "The resolved training configuration (`tessera train` with it retrains these weights):\n\n```toml\n" +
          meta.config_toml + (meta.config_toml.ends_with("\n") ? "" : "\n") + "```\n";
  return card;
}

}  // namespace

int cmd_export(int argc, char** argv) {
  const char* usage = "usage: tessera export CHECKPOINT_DIR --format hf --out DIR";
  std::string ckpt, format, out;
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

  // Every tensor in f32 (an f64 checkpoint is rounded), in the HF layout.
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<float>> data;
  int64_t bytes = 0;
  for (Param p : session_param_list(m)) {
    p.local_shape = p.global_shape;
    std::vector<float> ours(static_cast<size_t>(p.global_shape.numel()));
    r.read("model", p, 0, p.global_shape.numel(), ours.data(), DType::f32, 0);
    for (const HfPiece& piece : hf->tensor_map(m, p.name).pieces) {
      names.push_back(piece.name);
      shapes.push_back(hf_piece_shape(p, piece));
      data.push_back(hf_piece_from_tessera(p, piece, ours));
      bytes += static_cast<int64_t>(data.back().size()) * 4;
    }
  }
  std::vector<SafetensorsEntry> entries;
  for (size_t i = 0; i < names.size(); ++i) entries.push_back({names[i], shapes[i], data[i].data()});

  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec || !fs::is_directory(out))
    throw UserError(out + ": cannot create the output directory (" + (ec ? ec.message() : "not a directory") + ")");
  safetensors_write(out + "/model.safetensors", entries, {{"format", "pt"}});
  hf_tokenizer_files_write(tokenizer_files, out);

  write_text_file(out + "/config.json", config_json);
  write_text_file(out + "/README.md", export_card(*hf, r, cfg, tokenizer_note, out));

  std::printf("exported %s (step %lld, %s) to %s\n", r.dir().c_str(), static_cast<long long>(r.meta().step),
              r.meta().dtype == "f64" ? "f64 rounded to f32" : "f32", out.c_str());
  std::printf("  model.safetensors  %zu tensors, %lld bytes of F32 (%s names; vocabulary rows %lld of %lld "
              "padded)\n",
              entries.size(), static_cast<long long>(bytes), hf->architecture.c_str(),
              static_cast<long long>(m.vocab_size), static_cast<long long>(m.padded_vocab()));
  std::printf("  config.json        %s\n", hf->config_summary(m).c_str());
  std::printf("  tokenizer          %s\n", tokenizer_note.c_str());
  std::printf("  README.md          model card: step, tokens, languages, the checkpoint and the resolved config\n");
  return 0;
}

}  // namespace tessera
