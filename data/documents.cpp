#include "data/documents.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

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

// Drops whole blank lines at both ends; keeps the indentation of the first kept line.
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

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_readable(const std::string& path, const std::string& who) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw UserError(who + ": cannot read input " + path + ": " + std::strerror(errno));
  std::fclose(f);
}

}  // namespace

// Buffered lines out of a plain or gzip file. Lines keep their "\n".
class LineSource {
 public:
  LineSource(const std::string& path, uint64_t begin) : path_(path) {
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) throw UserError("cannot read input " + path + ": " + std::strerror(errno));
    gzbuffer(file_, 1 << 18);
    if (begin > 0 && gzseek(file_, static_cast<z_off_t>(begin), SEEK_SET) < 0)
      throw UserError("cannot seek in input " + path);
    buffer_.resize(1 << 18);
  }
  ~LineSource() {
    if (file_) gzclose(file_);
  }

  // Appends the next line (with its "\n", if any) to `line`; false at the end of the file.
  bool getline(std::string& line) {
    line.clear();
    for (;;) {
      if (head_ == tail_ && !refill()) return !line.empty();
      const char* start = buffer_.data() + head_;
      const void* nl = std::memchr(start, '\n', tail_ - head_);
      const size_t take = nl ? static_cast<const char*>(nl) - start + 1 : tail_ - head_;
      line.append(start, take);
      head_ += take;
      if (nl) return true;
    }
  }

 private:
  bool refill() {
    const int got = gzread(file_, buffer_.data(), static_cast<unsigned>(buffer_.size()));
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(file_, &code);
      throw UserError("input " + path_ + " is corrupt or truncated (" + msg + ")");
    }
    head_ = 0;
    tail_ = static_cast<size_t>(got);
    if (got == 0) {
      int code = 0;
      gzerror(file_, &code);
      if (code != Z_OK && code != Z_STREAM_END)
        throw UserError("input " + path_ + " is a truncated gzip stream");
    }
    return got > 0;
  }

  std::string path_;
  gzFile file_ = nullptr;
  std::vector<char> buffer_;
  size_t head_ = 0, tail_ = 0;
};

const char* format_name(DocumentFormat format) {
  switch (format) {
    case DocumentFormat::kFortune: return "fortune";
    case DocumentFormat::kParagraphs: return "paragraphs";
    case DocumentFormat::kJsonl: return "jsonl";
  }
  return "?";
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs, const std::string& who) {
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    std::error_code ec;
    const fs::file_status status = fs::status(input, ec);
    if (!fs::exists(status)) throw UserError(who + ": input " + input + " does not exist");
    if (!fs::is_directory(status)) {
      check_readable(input, who);
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
        check_readable(it->path().string(), who);
        found.push_back(it->path().string());
      }
    }
    if (ec) throw UserError(who + ": cannot list input directory " + input + ": " + ec.message());
    if (found.empty()) throw UserError(who + ": input directory " + input + " holds no files");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

bool is_gzip_file(const std::string& path) {
  unsigned char magic[2] = {0, 0};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw UserError("cannot read input " + path + ": " + std::strerror(errno));
  const size_t got = std::fread(magic, 1, 2, f);
  std::fclose(f);
  return got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

DocumentFormat detect_format(const std::string& path) {
  std::string name = path;
  if (ends_with(name, ".gz")) name.resize(name.size() - 3);
  if (ends_with(name, ".jsonl") || ends_with(name, ".ndjson")) return DocumentFormat::kJsonl;
  // Only the head of the text decides, so planning reads a bounded amount of every file.
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw UserError("cannot read input " + path + ": " + std::strerror(errno));
  std::string head(kFormatProbeBytes, '\0');
  const int got = gzread(file, head.data(), static_cast<unsigned>(head.size()));
  gzclose(file);
  if (got < 0) throw UserError("input " + path + " is corrupt or truncated");
  head.resize(static_cast<size_t>(got));
  const bool whole = head.size() < kFormatProbeBytes;
  for (size_t at = 0; at < head.size();) {
    const size_t nl = head.find('\n', at);
    const std::string_view line(head.data() + at, (nl == std::string::npos ? head.size() : nl) - at);
    // The head's last line counts only when it is complete (or the file's last).
    if ((line == "%" || line == "%\r") && (nl != std::string::npos || whole))
      return DocumentFormat::kFortune;
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  return DocumentFormat::kParagraphs;
}

namespace {

// True when `line` (with its "\n") is one after which a new document begins.
bool is_boundary_line(DocumentFormat format, std::string_view line) {
  switch (format) {
    case DocumentFormat::kJsonl: return !line.empty() && line.back() == '\n';
    case DocumentFormat::kFortune: return line == "%\n" || line == "%\r\n";
    case DocumentFormat::kParagraphs: return !line.empty() && line.back() == '\n' && is_blank(line);
  }
  return false;
}

}  // namespace

std::vector<InputRange> plan_ranges(const std::vector<std::string>& files, uint64_t target_bytes) {
  std::vector<InputRange> ranges;
  for (const std::string& path : files) {
    InputRange whole;
    whole.path = path;
    whole.compressed = is_gzip_file(path);
    whole.format = detect_format(path);
    std::error_code ec;
    const uint64_t size = fs::file_size(path, ec);
    if (whole.compressed || ec || target_bytes == 0 || size <= target_bytes) {
      ranges.push_back(whole);
      continue;
    }
    // Cut after the first boundary line that ends at or past each multiple of target_bytes.
    uint64_t begin = 0;
    for (uint64_t cut = target_bytes; cut < size; cut += target_bytes) {
      if (cut <= begin) continue;
      // Start at the line holding byte cut - 1, found by reading from the previous newline.
      LineSource source(path, cut - 1);
      std::string line;
      uint64_t pos = cut - 1;
      source.getline(line);  // the rest of the line holding cut - 1 (maybe just its "\n")
      pos += line.size();
      bool found = false;
      // Only whole lines after it can be boundaries, so a range never ends before its cut.
      while (source.getline(line)) {
        pos += line.size();
        if (is_boundary_line(whole.format, line)) {
          found = true;
          break;
        }
      }
      if (!found || pos >= size) break;
      InputRange r = whole;
      r.begin = begin;
      r.end = pos;
      ranges.push_back(r);
      begin = pos;
    }
    InputRange last = whole;
    last.begin = begin;
    ranges.push_back(last);
  }
  return ranges;
}

DocumentReader::DocumentReader(const InputRange& range, const DocumentOptions& options)
    : range_(range), options_(options), source_(std::make_unique<LineSource>(range.path, range.begin)) {
  pos_ = range.begin;
  at_file_start_ = range.begin == 0;
  // A range other than the first starts right after a "%" line of a fortune file.
  seen_separator_ = range.begin > 0;
}

DocumentReader::~DocumentReader() = default;

bool DocumentReader::read_line(std::string& line) {
  if (pos_ >= range_.end || !source_->getline(line)) return false;
  line_start_ = pos_;
  pos_ += line.size();
  if (at_file_start_ && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
  at_file_start_ = false;
  return true;
}

void DocumentReader::fail_at(uint64_t offset, const std::string& what) const {
  throw UserError(range_.path + ":" + std::to_string(line_number_at(range_.path, offset)) + ": " + what);
}

bool DocumentReader::finish_text(std::string& raw, uint64_t offset, Document& doc) {
  const std::string_view trimmed = trim_blank_lines(raw);
  if (trimmed.empty()) return false;
  doc.repaired = utf8_repair(trimmed, doc.text);
  doc.language.clear();
  doc.offset = offset;
  return true;
}

bool DocumentReader::next_jsonl(Document& doc) {
  std::string repaired;
  while (read_line(line_)) {
    if (is_blank(line_)) continue;
    const uint64_t bad = utf8_repair(line_, repaired);
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(repaired);
    } catch (const nlohmann::json::exception&) {
      fail_at(line_start_, "not a JSON object");
    }
    if (!object.is_object()) fail_at(line_start_, "not a JSON object");
    const auto text = object.find(options_.text_field);
    if (text == object.end())
      fail_at(line_start_, "no \"" + options_.text_field + "\" field (choose it with --text-field)");
    if (!text->is_string()) fail_at(line_start_, "field \"" + options_.text_field + "\" is not a string");
    const std::string& value = text->get_ref<const std::string&>();
    if (is_blank(value)) {
      ++empty_skipped_;
      continue;
    }
    doc.text = value;
    doc.repaired = bad;
    doc.offset = line_start_;
    doc.language.clear();
    if (!options_.language_field.empty()) {
      const auto lang = object.find(options_.language_field);
      if (lang != object.end()) {
        if (!lang->is_string())
          fail_at(line_start_, "field \"" + options_.language_field + "\" is not a string");
        doc.language = lang->get<std::string>();
      }
    }
    return true;
  }
  return false;
}

bool DocumentReader::next(Document& doc) {
  if (done_) return false;
  if (range_.format == DocumentFormat::kJsonl) {
    if (next_jsonl(doc)) return true;
    done_ = true;
    return false;
  }
  const bool fortune = range_.format == DocumentFormat::kFortune;
  raw_.clear();
  uint64_t doc_offset = pos_;
  while (read_line(line_)) {
    if (line_.ends_with('\n')) line_.pop_back();
    if (line_.ends_with('\r')) line_.pop_back();
    const bool ends_document = fortune ? line_ == "%" : is_blank(line_);
    if (ends_document) {
      // Blank text before the first "%" is a preamble, not an empty document.
      const bool counts = fortune && seen_separator_;
      seen_separator_ = true;
      if (finish_text(raw_, doc_offset, doc)) return true;
      if (counts) ++empty_skipped_;
      raw_.clear();
      doc_offset = pos_;
      continue;
    }
    if (!raw_.empty() || !line_.empty()) {
      if (raw_.empty()) doc_offset = line_start_;
      else raw_.push_back('\n');
      raw_ += line_;
    }
  }
  done_ = true;
  // A file ends with "%\n" or a blank line: an empty remainder is not a document.
  return finish_text(raw_, doc_offset, doc);
}

uint64_t line_number_at(const std::string& path, uint64_t offset) {
  LineSource source(path, 0);
  std::string line;
  uint64_t pos = 0, number = 1;
  while (pos < offset && source.getline(line)) {
    pos += line.size();
    if (pos <= offset && line.ends_with('\n')) ++number;
  }
  return number;
}

}  // namespace tessera::data
