#include "checkpoints/hf/tokenizer_files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "data/tokenizer.h"
#include "runtime/error.h"

namespace tessera {
namespace {
namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

// The names tessera's hf: tokenizer looks for, in that order, among the special added tokens
// for its end-of-document token (data/hf_tokenizer_internal.h).
constexpr const char* kEodNames[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"};

std::string file_read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot read (" + std::strerror(errno) + ")");
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw UserError(path + ": cannot read");
  return text;
}

// tokenizer_config.json and special_tokens_map.json for a tokenizer.json whose end-of-document
// token is `eod` (and unknown token `unk`, when it has one): what the model saw at every
// document boundary is both its bos and its eos, and nothing is added around a text.
std::string tokenizer_config_text(const std::string& eod, const std::string& unk) {
  ordered_json j = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                    {"bos_token", eod},
                    {"eos_token", eod}};
  if (!unk.empty()) j["unk_token"] = unk;
  j["pad_token"] = nullptr;
  j["add_bos_token"] = false;
  j["add_eos_token"] = false;
  // The library's decode, unchanged (transformers would otherwise remove spaces before
  // punctuation).
  j["clean_up_tokenization_spaces"] = false;
  return j.dump(2, ' ', false) + "\n";
}

std::string special_tokens_map_text(const std::string& eod, const std::string& unk) {
  ordered_json j = {{"bos_token", eod}, {"eos_token", eod}};
  if (!unk.empty()) j["unk_token"] = unk;
  return j.dump(2, ' ', false) + "\n";
}

HfTokenizerFiles hf_files(const std::string& path, const data::Tokenizer& tokenizer) {
  HfTokenizerFiles out;
  std::string json_text = file_read(path);
  const nlohmann::json root = nlohmann::json::parse(json_text, nullptr, false);
  if (!root.is_object()) throw UserError(path + ": not a JSON object");
  std::string eod;
  for (const char* name : kEodNames) {
    if (!eod.empty() || !root.contains("added_tokens") || !root["added_tokens"].is_array()) break;
    for (const nlohmann::json& token : root["added_tokens"])
      if (token.value("special", false) && token.value("content", "") == name) eod = name;
  }
  if (eod.empty()) throw UserError(path + ": no end-of-document token among the special added tokens");
  std::string unk;
  if (root.contains("model") && root["model"].contains("unk_token") && root["model"]["unk_token"].is_string())
    unk = root["model"]["unk_token"].get<std::string>();
  out.files.emplace_back("tokenizer.json", std::move(json_text));

  const fs::path beside = fs::path(path).parent_path();
  std::string made;
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const std::string there = (beside / name).string();
    if (fs::exists(there)) {
      std::string text = file_read(there);
      if (!nlohmann::json::parse(text, nullptr, false).is_object()) throw UserError(there + ": not a JSON object");
      out.files.emplace_back(name, std::move(text));
      made += std::string(", ") + name + " (copied)";
    } else {
      out.files.emplace_back(name, name == std::string("tokenizer_config.json") ? tokenizer_config_text(eod, unk)
                                                                               : special_tokens_map_text(eod, unk));
      made += std::string(", ") + name + " (bos_token = eos_token = end-of-document)";
    }
  }
  out.note = tokenizer.name() + ": tokenizer.json (copied)" + made + "; end-of-document \"" + eod + "\" = id " +
             std::to_string(tokenizer.eod_id());
  return out;
}

HfTokenizerFiles sentencepiece_files(const std::string& path, const data::Tokenizer& tokenizer) {
  const HfSentencePieceJson sp = hf_sentencepiece_tokenizer_json(path, tokenizer.eod_id());
  HfTokenizerFiles out;
  out.files.emplace_back("tokenizer.json", sp.json);
  out.files.emplace_back("tokenizer_config.json", tokenizer_config_text(sp.eos_token, sp.unk_token));
  out.files.emplace_back("special_tokens_map.json", special_tokens_map_text(sp.eos_token, sp.unk_token));
  out.note = tokenizer.name() + " (" + sp.summary + "): tokenizer.json converted to encode as SentencePiece does, "
             "tokenizer_config.json, special_tokens_map.json; end-of-document \"" + sp.eos_token + "\" = id " +
             std::to_string(tokenizer.eod_id()) + " is bos_token and eos_token, nothing is added around a text, "
             "no padding token";
  return out;
}

}  // namespace

HfTokenizerFiles hf_tokenizer_files_make(const std::string& tokenizer_spec) {
  const auto tokenizer = data::tokenizer_create(tokenizer_spec);
  if (tokenizer_spec.starts_with("hf:")) return hf_files(tokenizer_spec.substr(3), *tokenizer);
  if (tokenizer_spec.starts_with("sentencepiece:")) return sentencepiece_files(tokenizer_spec.substr(14), *tokenizer);
  HfTokenizerFiles out;
  out.note =
      "byte-level: ids 0..255 are the bytes of the UTF-8 text, 256 is end-of-document "
      "(bos_token_id = eos_token_id = 256). No Hugging Face tokenizer files are written; encode "
      "with list(text.encode(\"utf-8\")), decode with bytes(ids).decode(\"utf-8\", \"replace\")";
  return out;
}

void hf_tokenizer_files_write(const HfTokenizerFiles& files, const std::string& out_dir) {
  for (const auto& [name, content] : files.files) {
    const std::string path = out_dir + "/" + name, temp = path + ".tmp";
    std::FILE* file = std::fopen(temp.c_str(), "wb");
    bool ok = file != nullptr && std::fwrite(content.data(), 1, content.size(), file) == content.size();
    if (file != nullptr) ok = std::fclose(file) == 0 && ok;
    if (!ok || std::rename(temp.c_str(), path.c_str()) != 0) {
      const std::string reason = std::strerror(errno);
      std::remove(temp.c_str());
      throw UserError(path + ": cannot write (" + reason + ")");
    }
  }
}

}  // namespace tessera
