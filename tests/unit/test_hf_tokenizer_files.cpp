// checkpoints/hf/tokenizer_files: the tokenizer files of `tessera export --format hf`. A tiny
// SentencePiece BPE model trained here is converted (special tokens at their ids, byte
// fallback, merges ranked by score, and the same ids as SentencePiece through the hf:
// tokenizer); hf: files are copied or their special-token files generated; unigram models
// and malformed files are refused with one line. tests/reference/run_hf_tokenizer_export_check.sh
// compares exports with the tokenizers library and transformers.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoints/hf/tokenizer_files.h"
#include "data/sentencepiece_tokenizer.h"
#include "data/tokenizer.h"
#include "runtime/error.h"
#include "test_files.h"

namespace tessera {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using test::fresh_dir;
using test::read_file;
using test::user_error_of;
using test::write_file;

// A few thousand sentences in four scripts, with runs of spaces.
std::string training_text() {
  const std::vector<std::string> subjects = {"The quick brown fox", "A lazy dog", "Мой дядя", "我们的老师",
                                             "Der alte Mann", "  indented   text"};
  const std::vector<std::string> verbs = {"jumps over", "reads", "читает", "喜欢", "sieht"};
  const std::vector<std::string> objects = {"the fence.", "книгу.", "中文书。", "den Apfel.", "🍎 and 🍐!"};
  std::string text;
  for (const std::string& s : subjects)
    for (const std::string& v : verbs)
      for (const std::string& o : objects) text += s + " " + v + " " + o + "\n";
  return text;
}

std::string train(const std::string& dir, data::SentencePieceModelType type) {
  write_file(dir + "/corpus.txt", training_text());
  data::SentencePieceTrainOptions options;
  options.inputs = {dir + "/corpus.txt"};
  options.out = dir + (type == data::SentencePieceModelType::bpe ? "/bpe" : "/unigram");
  options.type = type;
  options.vocab_size = type == data::SentencePieceModelType::bpe ? 400 : 330;
  options.threads = 1;
  return data::sentencepiece_train(options).model_path;
}

const std::string* find_file(const HfTokenizerFiles& files, const std::string& name) {
  for (const auto& [file, content] : files.files)
    if (file == name) return &content;
  return nullptr;
}

TEST(HfTokenizerFiles, SentencePieceBpeBecomesALlamaStyleTokenizerJson) {
  const std::string dir = fresh_dir("sp");
  const std::string model = train(dir, data::SentencePieceModelType::bpe);
  const HfSentencePieceJson sp = hf_sentencepiece_tokenizer_json(model, 2);
  EXPECT_EQ(sp.eos_token, "</s>");
  EXPECT_EQ(sp.unk_token, "<unk>");
  EXPECT_EQ(sp.summary, "BPE, 400 pieces");
  const json j = json::parse(sp.json);

  // <unk> <s> </s> at 0, 1, 2 as special tokens, matched in the raw text.
  ASSERT_EQ(j["added_tokens"].size(), 3u);
  const char* specials[] = {"<unk>", "<s>", "</s>"};
  for (int id = 0; id < 3; ++id) {
    EXPECT_EQ(j["added_tokens"][id]["id"], id);
    EXPECT_EQ(j["added_tokens"][id]["content"], specials[id]);
    EXPECT_EQ(j["added_tokens"][id]["special"], true);
    EXPECT_EQ(j["added_tokens"][id]["normalized"], false);
  }
  const json& m = j["model"];
  EXPECT_EQ(m["type"], "BPE");
  EXPECT_EQ(m["byte_fallback"], true);
  EXPECT_EQ(m["unk_token"], "<unk>");
  EXPECT_EQ(m["vocab"].size(), 400u);
  EXPECT_EQ(m["vocab"]["</s>"], 2);
  EXPECT_EQ(m["vocab"]["<0x00>"], 3);
  EXPECT_EQ(m["vocab"]["<0x41>"], 3 + 0x41);
  EXPECT_EQ(m["vocab"]["<0xFF>"], 258);
  // The first merge makes the best-scored piece of two characters or more (the first one after
  // the byte pieces, as SentencePiece's BPE trainer orders them), and every merge joins two
  // pieces into a third.
  ASSERT_GT(m["merges"].size(), 50u);
  const json& first = m["merges"][0];
  const auto sp_model = data::sentencepiece_tokenizer_load(model);
  EXPECT_EQ(m["vocab"][first[0].get<std::string>() + first[1].get<std::string>()], 259);
  for (const json& merge : m["merges"]) {
    ASSERT_TRUE(m["vocab"].contains(merge[0].get<std::string>()));
    ASSERT_TRUE(m["vocab"].contains(merge[1].get<std::string>()));
    ASSERT_TRUE(m["vocab"].contains(merge[0].get<std::string>() + merge[1].get<std::string>()));
  }
  EXPECT_EQ(j["normalizer"]["normalizers"][0], json({{"type", "Prepend"}, {"prepend", "\u2581"}}));
  EXPECT_EQ(j["normalizer"]["normalizers"][1]["content"], "\u2581");
  EXPECT_TRUE(j["pre_tokenizer"].is_null());
  EXPECT_TRUE(j["post_processor"].is_null());
  EXPECT_EQ(j["decoder"]["decoders"].size(), 4u);

  // Read back through the hf: tokenizer (which encodes as the tokenizers library does): the ids
  // of SentencePiece, byte fallback included.
  write_file(dir + "/tokenizer.json", sp.json);
  const auto hf = data::tokenizer_create("hf:" + dir + "/tokenizer.json");
  EXPECT_EQ(hf->eod_id(), 2);
  for (const std::string& text : {std::string("Der alte Mann reads книгу.  "), std::string("   spaced   out "),
                                 std::string("我们的老师 龘 𝔘 ☃ 👨‍👩‍👧"), std::string("")})
    EXPECT_EQ(hf->encode(text), sp_model->encode(text)) << text;
  fs::remove_all(dir);
}

TEST(HfTokenizerFiles, SentencePieceSpecialTokenFilesNameEndOfDocument) {
  const std::string dir = fresh_dir("sp_files");
  const std::string model = train(dir, data::SentencePieceModelType::bpe);
  const HfTokenizerFiles files = hf_tokenizer_files_make("sentencepiece:" + model);
  ASSERT_EQ(files.files.size(), 3u);
  ASSERT_NE(find_file(files, "tokenizer.json"), nullptr);
  const json config = json::parse(*find_file(files, "tokenizer_config.json"));
  EXPECT_EQ(config["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(config["bos_token"], "</s>");  // what the model saw at every document boundary
  EXPECT_EQ(config["eos_token"], "</s>");
  EXPECT_EQ(config["unk_token"], "<unk>");
  EXPECT_TRUE(config["pad_token"].is_null());
  EXPECT_EQ(config["add_bos_token"], false);
  EXPECT_EQ(config["add_eos_token"], false);
  const json map = json::parse(*find_file(files, "special_tokens_map.json"));
  EXPECT_EQ(map, json({{"bos_token", "</s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}}));
  EXPECT_NE(files.note.find("end-of-document \"</s>\" = id 2"), std::string::npos) << files.note;
  EXPECT_EQ(files.note.find('\n'), std::string::npos);

  const std::string out = dir + "/out";
  fs::create_directories(out);
  hf_tokenizer_files_write(files, out);
  for (const auto& [name, content] : files.files) EXPECT_EQ(read_file(out + "/" + name), content);
  EXPECT_FALSE(fs::exists(out + "/tokenizer.json.tmp"));
  fs::remove_all(dir);
}

TEST(HfTokenizerFiles, SentencePieceUnigramIsRefusedWithOneLine) {
  const std::string dir = fresh_dir("unigram");
  const std::string model = train(dir, data::SentencePieceModelType::unigram);
  const std::string error = user_error_of([&] { hf_tokenizer_files_make("sentencepiece:" + model); });
  EXPECT_EQ(error.rfind(model + ": cannot be written as an exact Hugging Face tokenizer.json: a unigram model", 0),
            0u)
      << error;
  EXPECT_EQ(error.find('\n'), std::string::npos);
  fs::remove_all(dir);
}

// A LLaMA-2-style tokenizer.json: <unk> <s> </s>, the byte tokens, ▁ a b ▁a.
json tiny_hf_tokenizer() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  vocab["\u2581"] = 259;
  vocab["a"] = 260;
  vocab["b"] = 261;
  vocab["\u2581a"] = 262;
  json added = json::array();
  const char* specials[] = {"<unk>", "<s>", "</s>"};
  for (int id = 0; id < 3; ++id)
    added.push_back({{"id", id}, {"content", specials[id]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  const json replace = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}};
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "\u2581"}}, replace}}}},
          {"pre_tokenizer", nullptr},
          {"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true},
                     {"vocab", vocab}, {"merges", json::array({json::array({"\u2581", "a"})})}}},
          {"decoder", {{"type", "Sequence"},
                       {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                     {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                     {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}}};
}

TEST(HfTokenizerFiles, HfTokenizerIsCopiedAndItsSpecialTokenFilesGenerated) {
  const std::string dir = fresh_dir("hf");
  const std::string text = tiny_hf_tokenizer().dump();
  write_file(dir + "/tokenizer.json", text);
  const HfTokenizerFiles files = hf_tokenizer_files_make("hf:" + dir + "/tokenizer.json");
  ASSERT_EQ(files.files.size(), 3u);
  EXPECT_EQ(*find_file(files, "tokenizer.json"), text);  // byte for byte
  const json config = json::parse(*find_file(files, "tokenizer_config.json"));
  EXPECT_EQ(config["bos_token"], "</s>");
  EXPECT_EQ(config["eos_token"], "</s>");
  EXPECT_EQ(config["unk_token"], "<unk>");
  EXPECT_EQ(config["add_bos_token"], false);
  EXPECT_EQ(json::parse(*find_file(files, "special_tokens_map.json"))["eos_token"], "</s>");
  EXPECT_NE(files.note.find("end-of-document \"</s>\" = id 2"), std::string::npos) << files.note;
  fs::remove_all(dir);
}

TEST(HfTokenizerFiles, HfSpecialTokenFilesBesideTheTokenizerAreCopied) {
  const std::string dir = fresh_dir("hf_beside");
  write_file(dir + "/tokenizer.json", tiny_hf_tokenizer().dump());
  const std::string config = "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"chat_template\": \"x\"}";
  write_file(dir + "/tokenizer_config.json", config);
  const HfTokenizerFiles files = hf_tokenizer_files_make("hf:" + dir + "/tokenizer.json");
  EXPECT_EQ(*find_file(files, "tokenizer_config.json"), config);
  EXPECT_EQ(json::parse(*find_file(files, "special_tokens_map.json"))["bos_token"], "</s>");  // generated

  write_file(dir + "/special_tokens_map.json", "{\"bos_token\": ");
  const std::string error = user_error_of([&] { hf_tokenizer_files_make("hf:" + dir + "/tokenizer.json"); });
  EXPECT_EQ(error, dir + "/special_tokens_map.json: not a JSON object");
  fs::remove_all(dir);
}

TEST(HfTokenizerFiles, ByteTokenizerHasNoFiles) {
  const HfTokenizerFiles files = hf_tokenizer_files_make("byte");
  EXPECT_TRUE(files.files.empty());
  EXPECT_EQ(files.note.rfind("byte-level: ids 0..255 are the bytes of the UTF-8 text, 256 is end-of-document", 0),
            0u);
}

}  // namespace
}  // namespace tessera
