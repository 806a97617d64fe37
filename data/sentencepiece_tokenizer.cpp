#include "data/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include "runtime/error.h"

namespace tessera::data {
namespace {
namespace fs = std::filesystem;

// SentencePiece's default sentence limit, in bytes; longer lines are left out of training
// (and counted) here rather than skipped with a warning inside the trainer.
constexpr size_t kMaxSentenceBytes = 4192;

// SentencePiece ids are int; the tokenizer interface hands them on without copying.
static_assert(std::is_same_v<int, int32_t>);

// A SentencePiece status message as one line of a UserError: without the newlines and the
// "./src/file.cc(660) [condition] " prefix its failed checks carry.
std::string status_text(const sentencepiece::util::Status& status) {
  std::string text = status.message();
  if (const size_t at = text.find(") ["); at != std::string::npos && text.starts_with("./"))
    if (const size_t end = text.find("] ", at); end != std::string::npos) text.erase(0, end + 2);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor,
                         std::string path)
      : processor_(std::move(processor)),
        path_(std::move(path)),
        vocab_size_(processor_->GetPieceSize()),
        eod_(processor_->eos_id()) {}

  // Concurrent calls are safe: Encode is const and keeps its lattice/heap per call (the
  // library's own batch encoder calls it on one processor from a thread pool).
  // Invalid UTF-8 does not fail either: the normalizer turns each bad byte into U+FFFD.
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const sentencepiece::util::Status status = processor_->Encode(text, &ids);
    TS_ASSERT(status.ok(), status.ToString());
    return ids;
  }

  std::string decode(const int32_t* ids, size_t count) const override {
    // Out-of-range ids index the model's piece table unchecked inside SentencePiece.
    for (size_t i = 0; i < count; ++i)
      TS_ASSERT(ids[i] >= 0 && ids[i] < vocab_size_, "sentencepiece tokenizer: id out of range");
    std::string text;
    const sentencepiece::util::Status status =
        processor_->Decode(std::vector<int>(ids, ids + count), &text);
    TS_ASSERT(status.ok(), status.ToString());
    return text;  // control pieces (</s>, <s>) decode to nothing
  }

  int32_t vocab_size() const override { return vocab_size_; }
  int32_t eod_id() const override { return eod_; }
  std::string name() const override { return "sentencepiece:" + path_; }

 private:
  std::unique_ptr<const sentencepiece::SentencePieceProcessor> processor_;
  std::string path_;
  int32_t vocab_size_;
  int32_t eod_;
};

// The training sentences: every line of every input that is neither empty nor a fortune
// separator ("%") or longer than kMaxSentenceBytes, without "\r\n" or a leading byte-order
// mark, with invalid UTF-8 repaired.
// Streams: one read buffer and one line at a time. Read errors end the iteration with a
// non-OK status(), which the trainer returns.
class CorpusSentences final : public sentencepiece::SentenceIterator {
 public:
  explicit CorpusSentences(const std::vector<std::string>& paths) : paths_(paths) { Next(); }
  ~CorpusSentences() override { close(); }

  bool done() const override { return done_; }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return status_; }
  uint64_t sentences() const { return sentences_; }
  uint64_t too_long() const { return too_long_; }

  void Next() override {
    std::string_view line;
    while (next_line(line)) {
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (first_line_ && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
      first_line_ = false;
      if (line.empty() || line == "%") continue;
      utf8_repair(line, value_);
      if (value_.size() > kMaxSentenceBytes) {
        ++too_long_;
        continue;
      }
      ++sentences_;
      return;
    }
    done_ = true;
  }

 private:
  static constexpr size_t kChunk = 1 << 20;

  // The next line of the current input without its "\n", opening the next input at the end
  // of one; false when every input is read or reading failed.
  bool next_line(std::string_view& line) {
    while (true) {
      if (file_ != nullptr) {
        const size_t newline = buffer_.find('\n', pos_);
        if (newline != std::string::npos) {
          line = std::string_view(buffer_).substr(pos_, newline - pos_);
          pos_ = newline + 1;
          return true;
        }
        if (!fill()) return false;
        if (file_ != nullptr) continue;
        if (pos_ < buffer_.size()) {  // the last line has no "\n"
          line = std::string_view(buffer_).substr(pos_);
          pos_ = buffer_.size();
          return true;
        }
      }
      if (next_path_ == paths_.size()) return false;
      if (!open(paths_[next_path_++])) return false;
    }
  }

  // Appends the next chunk of the current input; closes it at its end. False on an error.
  bool fill() {
    buffer_.erase(0, pos_);
    pos_ = 0;
    const size_t kept = buffer_.size();
    buffer_.resize(kept + kChunk);
    const int got = gzread(file_, buffer_.data() + kept, kChunk);
    if (got < 0) {
      int code = 0;
      fail("cannot read input " + path_ + ": " + gzerror(file_, &code));
      return false;
    }
    buffer_.resize(kept + static_cast<size_t>(got));
    if (got == 0) close();
    return true;
  }

  bool open(const std::string& path) {
    path_ = path;
    buffer_.clear();
    pos_ = 0;
    first_line_ = true;
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) {
      fail("cannot read input " + path + ": " + std::strerror(errno));
      return false;
    }
    gzbuffer(file_, kChunk);
    return true;
  }

  void close() {
    if (file_ != nullptr) gzclose(file_);
    file_ = nullptr;
  }

  void fail(const std::string& what) {
    status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kDataLoss, what);
    close();
  }

  const std::vector<std::string>& paths_;
  size_t next_path_ = 0;
  std::string path_;  // the input being read
  gzFile file_ = nullptr;
  std::string buffer_;
  size_t pos_ = 0;  // start of the unread part of buffer_
  bool first_line_ = true;
  bool done_ = false;
  std::string value_;
  uint64_t sentences_ = 0;
  uint64_t too_long_ = 0;
  sentencepiece::util::Status status_;
};

// Checks up front what would otherwise fail only after minutes of training.
void check_train_options(const SentencePieceTrainOptions& options) {
  if (options.inputs.empty()) throw UserError("tokenizer train: no input files");
  for (const std::string& input : options.inputs) {
    std::error_code ec;
    const fs::file_status status = fs::status(input, ec);
    if (!fs::exists(status)) throw UserError("tokenizer train: input " + input + " does not exist");
    if (fs::is_directory(status))
      throw UserError("tokenizer train: input " + input + " is a directory; name its files");
    if (!std::ifstream(input, std::ios::binary))
      throw UserError("tokenizer train: cannot read input " + input + ": " + std::strerror(errno));
  }
  if (options.vocab_size <= 0)
    throw UserError("tokenizer train: the vocabulary size must be positive");
  if (!(options.character_coverage > 0 && options.character_coverage <= 1))
    throw UserError("tokenizer train: the character coverage must be in (0, 1]");
  // SentencePiece refuses samples of 100 sentences or fewer.
  if (options.max_sentences <= 100)
    throw UserError("tokenizer train: the sentence limit must be above 100");
  if (options.out.empty()) throw UserError("tokenizer train: no output path");
  const fs::path parent = fs::path(options.out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    throw UserError("tokenizer train: output directory " + parent.string() + " does not exist");
}

// Written under a temporary name and renamed, so a failed run leaves no half-written file.
void write_file_atomically(const std::string& path, std::string_view content) {
  const std::string temp_path = path + ".tmp";
  std::FILE* file = std::fopen(temp_path.c_str(), "wb");
  bool ok =
      file != nullptr && std::fwrite(content.data(), 1, content.size(), file) == content.size();
  if (file != nullptr) ok = std::fclose(file) == 0 && ok;
  if (!ok || std::rename(temp_path.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temp_path.c_str());
    throw UserError("tokenizer train: cannot write " + path + ": " + reason);
  }
}

}  // namespace

std::unique_ptr<Tokenizer> sentencepiece_tokenizer_load(const std::string& path) {
  const std::string prefix = "tokenizer \"sentencepiece:" + path + "\": ";
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw UserError(prefix + path + " is a directory, not a model file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(prefix + "cannot read " + path + ": " + std::strerror(errno));
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw UserError(prefix + "cannot read " + path);

  auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const sentencepiece::util::Status status = processor->LoadFromSerializedProto(bytes);
  // An empty file parses as an empty model; a model needs pieces to encode anything.
  if (!status.ok() || processor->GetPieceSize() <= 0)
    throw UserError(prefix + path + " is not a SentencePiece model" +
                    (status.ok() ? std::string(" (no pieces)") : " (" + status_text(status) + ")"));
  if (processor->eos_id() < 0)
    throw UserError(prefix + path +
                    " has no end-of-sentence piece (</s>), which marks where documents end");
  return std::make_unique<SentencePieceTokenizer>(std::move(processor), path);
}

SentencePieceTrainStats sentencepiece_train(const SentencePieceTrainOptions& options) {
  check_train_options(options);
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  char coverage[32];  // shortest text that reads back as the same double
  const std::string_view coverage_text(
      coverage,
      std::to_chars(coverage, coverage + sizeof coverage, options.character_coverage).ptr);
  const std::unordered_map<std::string, std::string> spec = {
      {"model_type", options.type == SentencePieceModelType::bpe ? "bpe" : "unigram"},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", std::string(coverage_text)},
      // Characters outside the coverage become their UTF-8 bytes instead of <unk>, so every
      // text survives encode/decode.
      {"byte_fallback", "true"},
      // A uniform sample (reservoir, fixed seed inside SentencePiece) bounds the trainer's
      // memory whatever the corpus size.
      {"input_sentence_size", std::to_string(options.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(threads)},
      // No normalization: a pretraining tokenizer must give back exactly the text it was
      // given (decode(encode(x)) == x), which NFKC does not (it folds full-width forms,
      // ligatures and compatibility characters), and indentation and runs of spaces in code
      // and verse must survive, so they are kept and may form pieces of their own.
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"max_sentence_length", std::to_string(kMaxSentenceBytes)},
      // Errors only: the outcome comes back as a status (one line for the user) and in the
      // stats; the trainer's progress log and warnings would be many lines on stderr.
      {"minloglevel", "2"},
  };
  // The sentence sample already uses a fixed seed inside SentencePiece; the global seed covers
  // any other draw, which would otherwise come from std::random_device.
  sentencepiece::SetRandomGeneratorSeed(20240601);

  CorpusSentences sentences(options.inputs);
  if (sentences.done() && sentences.status().ok())
    throw UserError("tokenizer train: the inputs hold no text lines");
  std::string model;
  const sentencepiece::util::Status status =
      sentencepiece::SentencePieceTrainer::Train(spec, &sentences, &model);
  if (!sentences.status().ok())
    throw UserError("tokenizer train: " + status_text(sentences.status()));
  if (!status.ok()) {
    std::string text = status_text(status);  // name our flag, not spm_train's
    if (const size_t at = text.find("--character_coverage option"); at != std::string::npos)
      text.replace(at, 27, "--character-coverage");
    throw UserError("tokenizer train: " + text);
  }

  sentencepiece::SentencePieceProcessor processor;
  const sentencepiece::util::Status loaded = processor.LoadFromSerializedProto(model);
  TS_ASSERT(loaded.ok(), loaded.ToString());
  std::ostringstream vocab;
  for (int id = 0; id < processor.GetPieceSize(); ++id)
    vocab << processor.IdToPiece(id) << '\t' << processor.GetScore(id) << '\n';

  SentencePieceTrainStats stats;
  stats.sentences_read = sentences.sentences();
  stats.sentences_too_long = sentences.too_long();
  stats.sentences_used = std::min<uint64_t>(stats.sentences_read, options.max_sentences);
  stats.vocab_size = processor.GetPieceSize();
  stats.model_path = options.out + ".model";
  stats.vocab_path = options.out + ".vocab";
  write_file_atomically(stats.model_path, model);
  write_file_atomically(stats.vocab_path, vocab.str());
  return stats;
}

}  // namespace tessera::data
