// A SentencePiece .model as a Hugging Face tokenizer.json that encodes exactly as the model.
//
// SentencePiece BPE, with the identity normalization tessera trains with, puts "▁" before a
// non-empty text, turns every ' ' into "▁" and encodes the whole result at once, merging the
// adjacent pair whose concatenation is the best-scored piece (leftmost among equals);
// characters without a piece become their <0xNN> byte pieces. The tokenizers library does
// the same with a Prepend and a Replace normalizer, no pre-tokenizer (a Metaspace
// pre-tokenizer would split runs of spaces that SentencePiece keeps together), and a BPE model
// with byte fallback whose merges are every (left, right) pair of pieces that concatenate to a
// piece, ranked by that piece's score. Unigram models are refused (see sp_model_check).
// The model file is read as protobuf wire format: its header is not installed with the
// library, and only a few fields matter.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "checkpoints/hf/tokenizer_files.h"
#include "data/hf_tokenizer.h"
#include "data/tokenizer.h"
#include "runtime/error.h"

namespace tessera {
namespace {

using ordered_json = nlohmann::ordered_json;
constexpr const char* kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// ModelProto.SentencePiece.Type
enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
// TrainerSpec.ModelType
enum ModelType { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

struct Piece {
  std::string text;
  float score = 0;
  int type = kNormal;
};

// The fields of ModelProto that decide how text is encoded, with the proto's defaults.
struct SpModel {
  std::vector<Piece> pieces;                 // ModelProto.pieces = 1
  int model_type = kUnigram;                 // TrainerSpec.model_type = 3
  bool treat_whitespace_as_suffix = false;   // TrainerSpec = 24
  bool byte_fallback = false;                // TrainerSpec = 35
  std::string normalizer_name;               // NormalizerSpec.name = 1
  bool has_charsmap = false;                 // NormalizerSpec.precompiled_charsmap = 2
  bool add_dummy_prefix = true;              // NormalizerSpec = 3
  bool remove_extra_whitespaces = true;      // NormalizerSpec = 4
  bool escape_whitespaces = true;            // NormalizerSpec = 5
};

// Protobuf wire format: (field number << 3 | wire type) varints followed by the value.
class ProtoReader {
 public:
  ProtoReader(std::string_view bytes, const std::string& path) : rest_(bytes), path_(path) {}
  bool done() const { return rest_.empty(); }
  // The next field's number; its wire type in `wire`.
  uint64_t field(int& wire) {
    const uint64_t key = varint();
    wire = static_cast<int>(key & 7);
    return key >> 3;
  }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (rest_.empty()) bad();
      const auto byte = static_cast<unsigned char>(rest_[0]);
      rest_.remove_prefix(1);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (byte < 0x80) return value;
    }
    bad();
  }
  std::string_view bytes() {
    const uint64_t size = varint();
    if (size > rest_.size()) bad();
    const std::string_view out = rest_.substr(0, size);
    rest_.remove_prefix(size);
    return out;
  }
  float fixed32() {
    if (rest_.size() < 4) bad();
    uint32_t bits = 0;
    for (int i = 3; i >= 0; --i) bits = bits << 8 | static_cast<unsigned char>(rest_[i]);
    rest_.remove_prefix(4);
    float value;
    std::memcpy(&value, &bits, 4);
    return value;
  }
  void skip(int wire) {
    if (wire == 0) varint();
    else if (wire == 1) take(8);
    else if (wire == 2) bytes();
    else if (wire == 5) take(4);
    else bad();
  }

 private:
  void take(size_t n) {
    if (rest_.size() < n) bad();
    rest_.remove_prefix(n);
  }
  [[noreturn]] void bad() const { throw UserError(path_ + ": not a SentencePiece model (malformed protobuf)"); }
  std::string_view rest_;
  const std::string& path_;
};

SpModel sp_model_read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (!in && !in.eof()) throw UserError(path + ": cannot read the SentencePiece model");
  SpModel m;
  ProtoReader model(bytes, path);
  while (!model.done()) {
    int wire;
    const uint64_t field = model.field(wire);
    if (wire != 2 || (field != 1 && field != 2 && field != 3)) {
      model.skip(wire);
      continue;
    }
    ProtoReader sub(model.bytes(), path);
    Piece piece;
    while (!sub.done()) {
      int w;
      const uint64_t f = sub.field(w);
      if (field == 1 && f == 1 && w == 2) piece.text = sub.bytes();
      else if (field == 1 && f == 2 && w == 5) piece.score = sub.fixed32();
      else if (field == 1 && f == 3 && w == 0) piece.type = static_cast<int>(sub.varint());
      else if (field == 2 && f == 3 && w == 0) m.model_type = static_cast<int>(sub.varint());
      else if (field == 2 && f == 24 && w == 0) m.treat_whitespace_as_suffix = sub.varint() != 0;
      else if (field == 2 && f == 35 && w == 0) m.byte_fallback = sub.varint() != 0;
      else if (field == 3 && f == 1 && w == 2) m.normalizer_name = sub.bytes();
      else if (field == 3 && f == 2 && w == 2) m.has_charsmap = !sub.bytes().empty();
      else if (field == 3 && f == 3 && w == 0) m.add_dummy_prefix = sub.varint() != 0;
      else if (field == 3 && f == 4 && w == 0) m.remove_extra_whitespaces = sub.varint() != 0;
      else if (field == 3 && f == 5 && w == 0) m.escape_whitespaces = sub.varint() != 0;
      else sub.skip(w);
    }
    if (field == 1) m.pieces.push_back(std::move(piece));
  }
  return m;
}

// The UTF-8 characters of `text` (well-formed: SentencePiece stores its pieces so).
std::vector<std::string_view> utf8_chars(std::string_view text) {
  std::vector<std::string_view> chars;
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    const size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    chars.push_back(text.substr(i, std::min(n, text.size() - i)));
    i += n;
  }
  return chars;
}

// What tokenizers cannot reproduce exactly, refused with one line naming the file.
void sp_model_check(const SpModel& m, const std::string& path) {
  const auto refuse = [&](const std::string& why) {
    throw UserError(path + ": cannot be written as an exact Hugging Face tokenizer.json: " + why);
  };
  // The library's Unigram breaks exact ties between segmentations that are permutations of
  // the same pieces (a run of 13 spaces as 12 + 1 or 1 + 12) the other way round from
  // SentencePiece, and every model with whitespace pieces has such runs.
  if (m.model_type == kUnigram)
    refuse("a unigram model (the tokenizers library breaks ties between equally scored "
           "segmentations, e.g. of runs of spaces, differently; only BPE models convert exactly)");
  if (m.model_type != kBpe) refuse(std::string("model type ") + (m.model_type == kWord ? "word" : "char"));
  if (m.has_charsmap)
    refuse("normalization rule \"" + m.normalizer_name + "\" (only identity, as `tessera tokenizer train` writes)");
  if (m.remove_extra_whitespaces) refuse("remove_extra_whitespaces is on");
  if (!m.escape_whitespaces) refuse("escape_whitespaces is off");
  if (m.treat_whitespace_as_suffix) refuse("treat_whitespace_as_suffix is on");
  if (!m.byte_fallback) refuse("byte_fallback is off");
  int unknown = 0;
  for (const Piece& p : m.pieces) {
    if (p.type == kUserDefined) refuse("user-defined piece \"" + p.text + "\"");
    if (p.type == kUnused) refuse("unused piece \"" + p.text + "\"");
    if (p.type < kNormal || p.type > kByte) refuse("piece \"" + p.text + "\" of unknown type " + std::to_string(p.type));
    unknown += p.type == kUnknown;
  }
  if (unknown != 1) refuse(std::to_string(unknown) + " unknown pieces (<unk>), wanted one");
}

// BPE: the vocab, and the merges (left, right) of every normal piece made of two normal
// pieces, best-scored result first. SentencePiece merges the best-scored pair anywhere (the
// leftmost among equal scores) and the library the lowest-ranked pair (leftmost among
// equal ranks), so distinct pieces must have distinct scores; splits of one piece follow
// transformers' own conversion (shorter left part first).
ordered_json bpe_model(const SpModel& m, const std::string& path, const std::string& unk) {
  std::unordered_map<std::string_view, int> normal;
  for (size_t id = 0; id < m.pieces.size(); ++id)
    if (m.pieces[id].type == kNormal) normal.emplace(m.pieces[id].text, static_cast<int>(id));
  struct Merge {
    float score;
    int id;
    size_t left_size;
    std::string_view left, right;
  };
  std::vector<Merge> merges;
  std::map<float, int> multi_char_scores;
  for (const auto& [text, id] : normal) {
    const std::vector<std::string_view> chars = utf8_chars(text);
    if (chars.size() < 2) continue;
    const float score = m.pieces[id].score;
    if (const auto [it, fresh] = multi_char_scores.emplace(score, id); !fresh)
      throw UserError(path + ": cannot be written as an exact Hugging Face tokenizer.json: BPE pieces \"" +
                      m.pieces[it->second].text + "\" and \"" + std::string(text) + "\" have the same score");
    size_t at = 0;
    for (size_t c = 0; c + 1 < chars.size(); ++c) {
      at += chars[c].size();
      const std::string_view left = text.substr(0, at), right = text.substr(at);
      if (normal.contains(left) && normal.contains(right)) merges.push_back({score, id, at, left, right});
    }
  }
  std::sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.id != b.id) return a.id < b.id;
    return a.left_size < b.left_size;
  });
  ordered_json vocab = ordered_json::object();
  for (size_t id = 0; id < m.pieces.size(); ++id) vocab[m.pieces[id].text] = id;
  ordered_json pairs = ordered_json::array();
  for (const Merge& merge : merges) pairs.push_back({merge.left, merge.right});
  return {{"type", "BPE"},          {"dropout", nullptr},        {"unk_token", unk},
          {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
          {"fuse_unk", true},       {"byte_fallback", true},     {"ignore_merges", false},
          {"vocab", std::move(vocab)}, {"merges", std::move(pairs)}};
}

ordered_json string_pattern(const char* pattern, const char* content) {
  return {{"type", "Replace"}, {"pattern", {{"String", pattern}}}, {"content", content}};
}

// Texts both encoders must agree on before a BPE file is written: a multilingual paragraph
// and every normal piece spelled out (which exercises every merge).
void bpe_self_check(const SpModel& m, const std::string& model_path, const std::string& json) {
  const std::string temp = (std::filesystem::temp_directory_path() /
                            ("tessera_sp_export_" + std::to_string(::getpid()) + ".json")).string();
  {
    std::ofstream out(temp, std::ios::binary);
    out << json;
    if (!out) throw UserError(temp + ": cannot write a temporary file");
  }
  std::unique_ptr<data::Tokenizer> ours, theirs;
  try {
    ours = data::tokenizer_create("sentencepiece:" + model_path);
    theirs = data::hf_tokenizer_load(temp);
  } catch (const UserError& e) {
    std::filesystem::remove(temp);
    throw UserError(model_path + ": the converted tokenizer.json does not load: " + e.what());
  }
  std::filesystem::remove(temp);
  std::vector<std::string> texts = {
      "Hello, world! Привет, мир. 你好，世界。 مرحبا بالعالم שלום עולם 👍🏽👨‍👩‍👧 e\u0301 a  b   c\t\td",
      "   leading and trailing   ", "x", " "};
  std::vector<std::string> specials;
  for (const Piece& p : m.pieces)
    if (p.type == kControl || p.type == kUnknown) specials.push_back(p.text);
  for (const Piece& p : m.pieces) {
    if (p.type != kNormal) continue;
    std::string text = p.text;
    for (size_t at; (at = text.find(kSpace)) != std::string::npos;) text.replace(at, 3, " ");
    // Control pieces written in a text are special tokens to the library, never to SentencePiece.
    if (std::none_of(specials.begin(), specials.end(), [&](const std::string& s) { return text.find(s) != std::string::npos; }))
      texts.push_back(text + " " + text + text);
  }
  for (const std::string& text : texts)
    if (ours->encode(text) != theirs->encode(text))
      throw UserError(model_path + ": cannot be written as an exact Hugging Face tokenizer.json: the converted "
                      "BPE encodes \"" + text + "\" differently");
}

}  // namespace

HfSentencePieceJson hf_sentencepiece_tokenizer_json(const std::string& model_path, int eod_id) {
  const SpModel m = sp_model_read(model_path);
  sp_model_check(m, model_path);
  if (eod_id < 0 || eod_id >= static_cast<int>(m.pieces.size()) || m.pieces[eod_id].type != kControl)
    throw UserError(model_path + ": the end-of-document id " + std::to_string(eod_id) + " is not a control piece");
  HfSentencePieceJson out;
  out.eos_token = m.pieces[eod_id].text;
  ordered_json added = ordered_json::array();
  for (size_t id = 0; id < m.pieces.size(); ++id) {
    const Piece& p = m.pieces[id];
    if (p.type == kUnknown) out.unk_token = p.text;
    if (p.type == kUnknown || p.type == kControl)
      added.push_back({{"id", id}, {"content", p.text}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  ordered_json normalizers = ordered_json::array();
  if (m.add_dummy_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", kSpace}});
  normalizers.push_back(string_pattern(" ", kSpace));
  ordered_json decoders = ordered_json::array({string_pattern(kSpace, " "), {{"type", "ByteFallback"}}, {{"type", "Fuse"}}});
  if (m.add_dummy_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});

  ordered_json root = {{"version", "1.0"},
                       {"truncation", nullptr},
                       {"padding", nullptr},
                       {"added_tokens", std::move(added)},
                       {"normalizer", {{"type", "Sequence"}, {"normalizers", std::move(normalizers)}}},
                       {"pre_tokenizer", nullptr},
                       {"model", bpe_model(m, model_path, out.unk_token)},
                       {"post_processor", nullptr},
                       {"decoder", {{"type", "Sequence"}, {"decoders", std::move(decoders)}}}};
  out.json = root.dump(1, ' ', false) + "\n";
  bpe_self_check(m, model_path, out.json);
  out.summary = "BPE, " + std::to_string(m.pieces.size()) + " pieces";
  return out;
}

}  // namespace tessera
