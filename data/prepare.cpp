#include "data/prepare.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "data/tokenizer.h"
#include "runtime/error.h"

namespace tessera::data {
namespace fs = std::filesystem;
namespace {

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
  });
}

// Drops whole blank lines at both ends; keeps indentation of the first kept line.
std::string_view trim_blank_lines(std::string_view doc) {
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  const size_t first = doc.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const size_t last = doc.find_last_not_of(kSpace);
  const size_t line_start = doc.rfind('\n', first);
  const size_t begin = line_start == std::string_view::npos ? 0 : line_start + 1;
  const size_t end = std::min(doc.find('\n', last), doc.size());
  return doc.substr(begin, end - begin);
}

std::ifstream open_input(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("prepare: cannot read input " + path + ": " + std::strerror(errno));
  return in;
}

// Inputs in a reproducible order: arguments as given, directory contents sorted by path.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    std::error_code ec;
    const fs::file_status status = fs::status(input, ec);
    if (!fs::exists(status)) throw UserError("prepare: input " + input + " does not exist");
    if (!fs::is_directory(status)) {
      open_input(input);
      files.push_back(input);
      continue;
    }
    std::vector<std::string> found;
    fs::recursive_directory_iterator it(input, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().starts_with(".")) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file()) {
        open_input(it->path().string());
        found.push_back(it->path().string());
      }
    }
    if (ec) throw UserError("prepare: cannot list input directory " + input + ": " + ec.message());
    if (found.empty()) throw UserError("prepare: input directory " + input + " holds no files");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

// Reads one line without its "\n" or "\r\n"; false at end of file.
bool read_line(std::ifstream& in, const std::string& path, std::string& line) {
  if (!std::getline(in, line)) {
    if (in.bad()) throw UserError("prepare: error reading input " + path);
    return false;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

bool has_fortune_separator(const std::string& path) {
  std::ifstream in = open_input(path);
  std::string line;
  while (read_line(in, path, line))
    if (line == "%") return true;
  return false;
}

class DocumentSink {
 public:
  DocumentSink(const Tokenizer& tokenizer, ShardWriter& writer)
      : tokenizer_(tokenizer), writer_(writer) {}

  // `blank_counts` says whether a document without text is reported as skipped.
  void add(std::string_view raw, bool blank_counts, PrepareCounts& counts) {
    const std::string_view doc = trim_blank_lines(raw);
    if (doc.empty()) {
      if (blank_counts) ++counts.empty_skipped;
      return;
    }
    counts.invalid_utf8_repaired += utf8_repair(doc, clean_);
    tokens_ = tokenizer_.encode(clean_);
    tokens_.push_back(tokenizer_.eod_id());
    writer_.append_document(tokens_.data(), tokens_.size());
    ++counts.documents;
    counts.bytes += clean_.size();
    counts.tokens += tokens_.size();
  }

 private:
  const Tokenizer& tokenizer_;
  ShardWriter& writer_;
  std::string clean_;            // reused across documents
  std::vector<int32_t> tokens_;  // reused across documents
};

PrepareCounts prepare_file(const std::string& path, DocumentSink& sink) {
  const bool fortune_format = has_fortune_separator(path);
  std::ifstream in = open_input(path);
  PrepareCounts counts;
  std::string doc, line;
  bool first_line = true, seen_separator = false;
  while (read_line(in, path, line)) {
    if (first_line && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    first_line = false;
    const bool ends_document = fortune_format ? line == "%" : is_blank(line);
    if (ends_document) {
      // Blank text before the first "%" is a preamble, not an empty document.
      sink.add(doc, fortune_format && seen_separator, counts);
      seen_separator = true;
      doc.clear();
      continue;
    }
    if (!doc.empty() || !line.empty()) {
      if (!doc.empty()) doc.push_back('\n');
      doc += line;
    }
  }
  // A file ends with "%\n" or a blank line: the empty remainder is not a document.
  sink.add(doc, false, counts);
  return counts;
}

void counts_add(PrepareCounts& into, const PrepareCounts& c) {
  into.documents += c.documents;
  into.bytes += c.bytes;
  into.tokens += c.tokens;
  into.invalid_utf8_repaired += c.invalid_utf8_repaired;
  into.empty_skipped += c.empty_skipped;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\u%04x", static_cast<unsigned>(c));
      out += esc;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_counts(const PrepareCounts& c) {
  return "\"documents\": " + std::to_string(c.documents) +
         ", \"bytes\": " + std::to_string(c.bytes) + ", \"tokens\": " + std::to_string(c.tokens) +
         ", \"invalid_utf8_repaired\": " + std::to_string(c.invalid_utf8_repaired) +
         ", \"empty_skipped\": " + std::to_string(c.empty_skipped);
}

void write_stats(const std::string& dir, const PrepareStats& stats) {
  std::string json = "{\n  \"tokenizer\": " + json_string(stats.tokenizer) +
                     ",\n  \"vocab_size\": " + std::to_string(stats.vocab_size) +
                     ",\n  \"shards\": " + std::to_string(stats.shards) + ",\n  " +
                     json_counts(stats.total) + ",\n  \"files\": [";
  for (size_t i = 0; i < stats.files.size(); ++i) {
    // Paths are bytes; repaired so stats.json stays valid JSON.
    std::string path;
    utf8_repair(stats.files[i].path, path);
    json += std::string(i ? "," : "") + "\n    {\"path\": " + json_string(path) + ", " +
            json_counts(stats.files[i].counts) + "}";
  }
  json += "\n  ]\n}\n";
  const std::string final_path = dir + "/stats.json", temp_path = final_path + ".tmp";
  std::FILE* f = std::fopen(temp_path.c_str(), "wb");
  const bool ok = f && std::fwrite(json.data(), 1, json.size(), f) == json.size();
  if (f && std::fclose(f) != 0) throw UserError("prepare: cannot write " + temp_path);
  if (!ok || std::rename(temp_path.c_str(), final_path.c_str()) != 0)
    throw UserError("prepare: cannot write " + final_path + ": " + std::strerror(errno));
}

}  // namespace

PrepareStats prepare(const PrepareOptions& options) {
  if (options.inputs.empty()) throw UserError("prepare: no inputs given");
  if (options.out.empty()) throw UserError("prepare: no output directory given");
  if (options.shard_bytes == 0) throw UserError("prepare: shard size must be positive");
  const std::unique_ptr<Tokenizer> tokenizer = tokenizer_create(options.tokenizer);
  // Expanded (and checked) before anything is written: a typo leaves no output behind.
  const std::vector<std::string> files = expand_inputs(options.inputs);

  PrepareStats stats;
  stats.tokenizer = tokenizer->name();
  stats.vocab_size = tokenizer->vocab_size();
  ShardWriter writer(options.out, tokenizer->vocab_size(), options.shard_bytes);
  DocumentSink sink(*tokenizer, writer);
  for (const std::string& path : files) {
    PrepareFileStats file{path, prepare_file(path, sink)};
    counts_add(stats.total, file.counts);
    stats.files.push_back(std::move(file));
  }
  if (stats.total.documents == 0) throw UserError("prepare: the inputs hold no non-empty document");
  writer.finish();
  stats.shards = writer.shard_count();
  write_stats(options.out, stats);
  return stats;
}

}  // namespace tessera::data
