// Documents out of corpus files: what `tessera prepare` tokenizes and what
// `tessera contamination` compares.
//
// Formats (detect_format decides once per file):
//   kJsonl       names ending in .jsonl or .ndjson (optionally .gz): one JSON object per
//                non-blank line; the text is the string field `text_field`, the language the
//                optional string field `language_field`.
//   kFortune     any other file with a line that is just "%" in its first kFormatProbeBytes
//                (1 MiB of text, after decompression): those lines separate documents (the
//                fortune format). Only the head is looked at, so planning reads a bounded amount
//                of each file however large it is.
//   kParagraphs  any other file: each run of non-blank lines is one document.
// Files whose first two bytes are the gzip magic are decompressed on the fly (zlib), whatever
// their name. Line endings become "\n", a leading byte-order mark is dropped, and a text
// document loses its leading and trailing blank lines. Invalid UTF-8 is replaced by U+FFFD
// (one per run of bad bytes) and counted; a document without text is skipped and counted.
//
// A reader can cover a byte range of an uncompressed file (plan_ranges cuts files at document
// boundaries), so one large file is read by many workers at once. Errors are UserErrors that
// name the file and the line.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace tessera::data {

enum class DocumentFormat { kFortune, kParagraphs, kJsonl };
inline constexpr size_t kFormatProbeBytes = size_t{1} << 20;
const char* format_name(DocumentFormat format);

struct DocumentOptions {
  std::string text_field = "text";          // JSONL only
  std::string language_field = "language";  // JSONL only; "" = never read a language
};

struct Document {
  std::string text;         // valid UTF-8, never blank
  std::string language;     // from the JSONL language field; "" when absent
  uint64_t offset = 0;      // byte offset of the document's first line in the file
  uint64_t repaired = 0;    // runs of invalid UTF-8 replaced in this document
};

// A part of one input file, read by one worker. `first` says whether the range starts the file
// (text before the first "%" of a fortune file is a preamble, not a document).
struct InputRange {
  std::string path;
  DocumentFormat format = DocumentFormat::kParagraphs;
  bool compressed = false;
  uint64_t begin = 0, end = UINT64_MAX;  // bytes of the (uncompressed) file
};

// Files or directories -> regular files: arguments in the order given, a directory's files
// (recursively, names starting with '.' skipped) sorted by path. `who` prefixes the errors
// for a missing input, an unreadable file or an empty directory.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs, const std::string& who);

bool is_gzip_file(const std::string& path);
DocumentFormat detect_format(const std::string& path);

// Cuts every file into ranges of about `target_bytes` that begin and end at document
// boundaries (compressed files stay whole). The same inputs give the same ranges on every
// rank; a range may hold no document.
std::vector<InputRange> plan_ranges(const std::vector<std::string>& files, uint64_t target_bytes);

class LineSource;  // buffered lines of a plain or gzip file (documents.cpp)

class DocumentReader {
 public:
  DocumentReader(const InputRange& range, const DocumentOptions& options);
  ~DocumentReader();
  DocumentReader(const DocumentReader&) = delete;
  DocumentReader& operator=(const DocumentReader&) = delete;

  // The next document of the range; false at its end.
  bool next(Document& doc);
  // Documents without text (blank paragraphs between two "%" lines, blank JSONL texts).
  uint64_t empty_skipped() const { return empty_skipped_; }

 private:
  bool read_line(std::string& line);  // false at the end of the range
  [[noreturn]] void fail_at(uint64_t offset, const std::string& what) const;
  bool finish_text(std::string& raw, uint64_t offset, Document& doc);
  bool next_jsonl(Document& doc);

  InputRange range_;
  DocumentOptions options_;
  std::unique_ptr<LineSource> source_;
  uint64_t pos_ = 0;         // byte offset of the next line
  uint64_t line_start_ = 0;  // byte offset of the line read last
  bool at_file_start_ = true;
  bool seen_separator_ = false;
  bool done_ = false;
  std::string line_, raw_;
  uint64_t empty_skipped_ = 0;
};

// 1-based number of the line holding byte `offset` of `path` (counted on demand, for errors).
uint64_t line_number_at(const std::string& path, uint64_t offset);

}  // namespace tessera::data
