#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include "runtime/error.h"

namespace tessera::data {
namespace fs = std::filesystem;

// Headers, tokens and the index are written and mapped in host order; the format is
// little-endian, so a big-endian host would need byte swaps that nobody can test today.
static_assert(std::endian::native == std::endian::little, "token shards are little-endian");

namespace {

constexpr char kMagic[8] = {'T', 'S', 'R', 'A', 'T', 'O', 'K', '\0'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderBytes = 64;
// Byte offsets of the header fields (docs/data-format.md).
constexpr size_t kOffVersion = 8, kOffDtype = 12, kOffVocab = 16, kOffTokens = 24,
                 kOffDocuments = 32, kOffIndex = 40;

uint64_t align8(uint64_t n) {
  return (n + 7) & ~uint64_t{7};
}

// Where the document index starts: after the tokens, padded so the u64 entries are aligned.
uint64_t index_offset_for(uint64_t tokens, size_t width) {
  return align8(kHeaderBytes + tokens * width);
}

template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void store(unsigned char* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

// "shard_00042.tok" -> 42; anything else (temporary files, stats.json) -> nullopt.
std::optional<size_t> shard_index_from_name(const std::string& name) {
  constexpr std::string_view kPrefix = "shard_", kSuffix = ".tok";
  if (name.size() <= kPrefix.size() + kSuffix.size() || !name.starts_with(kPrefix) ||
      !name.ends_with(kSuffix))
    return std::nullopt;
  const std::string digits =
      name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  if (digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return static_cast<size_t>(std::stoull(digits));
}

[[noreturn]] void throw_io(const std::string& what, const std::string& path) {
  throw UserError("data: cannot " + what + " " + path + ": " + std::strerror(errno));
}

[[noreturn]] void throw_bad_shard(const std::string& path, const std::string& what) {
  throw UserError("data: " + path + ": " + what);
}

void encode_header(unsigned char* header, TokenDtype dtype, int64_t vocab_size, uint64_t tokens,
                   uint64_t documents) {
  std::memset(header, 0, kHeaderBytes);
  std::memcpy(header, kMagic, sizeof(kMagic));
  store<uint32_t>(header + kOffVersion, kFormatVersion);
  store<uint32_t>(header + kOffDtype, static_cast<uint32_t>(dtype));
  store<uint32_t>(header + kOffVocab, static_cast<uint32_t>(vocab_size));
  store<uint64_t>(header + kOffTokens, tokens);
  store<uint64_t>(header + kOffDocuments, documents);
  store<uint64_t>(header + kOffIndex, index_offset_for(tokens, dtype_width(dtype)));
}

}  // namespace

bool write_at(int fd, const void* data, size_t n, uint64_t offset) {
  for (size_t done = 0; done < n;) {
    const ssize_t w = ::pwrite(fd, static_cast<const char*>(data) + done, n - done, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
  }
  return true;
}

uint64_t shard_token_offset(TokenDtype dtype, uint64_t t) { return kHeaderBytes + t * dtype_width(dtype); }

void shard_write_frame(const std::string& path, TokenDtype dtype, int64_t vocab_size, uint64_t tokens,
                       const std::vector<uint64_t>& doc_starts) {
  unsigned char header[kHeaderBytes];
  encode_header(header, dtype, vocab_size, tokens, doc_starts.size());
  const uint64_t index_offset = index_offset_for(tokens, dtype_width(dtype));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_io("create", path);
  // The token region stays a hole until written: reads as zeros, like the padding after it.
  bool ok = write_at(fd, header, kHeaderBytes, 0) &&
            write_at(fd, doc_starts.data(), doc_starts.size() * sizeof(uint64_t), index_offset) &&
            ::ftruncate(fd, static_cast<off_t>(index_offset + doc_starts.size() * sizeof(uint64_t))) == 0 &&
            ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  errno = err;
  if (!ok) throw_io("write", path);
}

TokenDtype token_dtype_for_vocab(int64_t vocab_size) {
  return vocab_size <= 65535 ? TokenDtype::kUint16 : TokenDtype::kUint32;
}

std::string shard_file_name(size_t index) {
  char name[32];
  std::snprintf(name, sizeof(name), "shard_%05zu.tok", index);
  return name;
}

// ---------------------------------------------------------------------------------- writer

ShardWriter::ShardWriter(std::string dir, int64_t vocab_size, uint64_t shard_bytes)
    : dir_(std::move(dir)),
      vocab_size_(vocab_size),
      shard_bytes_(shard_bytes),
      dtype_(token_dtype_for_vocab(vocab_size)) {
  TS_ASSERT(vocab_size > 0 && vocab_size <= UINT32_MAX, "vocab_size out of range");
  TS_ASSERT(shard_bytes > 0, "shard_bytes must be positive");
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw UserError("data: cannot create directory " + dir_ + ": " + ec.message());
  for (const auto& entry : fs::directory_iterator(dir_, ec))
    if (shard_index_from_name(entry.path().filename().string()))
      throw UserError("data: " + dir_ + " already holds token shards (" +
                      entry.path().filename().string() + "); remove them or choose another --out");
  if (ec) throw UserError("data: cannot list directory " + dir_ + ": " + ec.message());
}

ShardWriter::~ShardWriter() {
  if (file_) {
    std::fclose(file_);
    std::remove(temp_path_.c_str());
  }
}

void ShardWriter::shard_begin() {
  temp_path_ = dir_ + "/" + shard_file_name(shards_done_) + ".tmp";
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) throw_io("create", temp_path_);
  file_buffer_.resize(1 << 20);  // few large writes rather than one per 4 KiB
  std::setvbuf(file_, file_buffer_.data(), _IOFBF, file_buffer_.size());
  const unsigned char placeholder[kHeaderBytes] = {};  // the real header is known at the end
  if (std::fwrite(placeholder, 1, kHeaderBytes, file_) != kHeaderBytes)
    throw_io("write", temp_path_);
  doc_starts_.clear();
  shard_tokens_ = 0;
}

void ShardWriter::append_document(const int32_t* tokens, size_t count) {
  TS_ASSERT(!finished_, "append_document after finish");
  if (file_ && shard_is_full(shard_tokens_, count, dtype_, shard_bytes_)) shard_end();
  if (!file_) shard_begin();
  doc_starts_.push_back(shard_tokens_);
  const size_t width = dtype_width(dtype_);

  // Narrow through a small buffer so memory stays bounded whatever the document size.
  unsigned char buffer[1 << 16];
  const size_t per_chunk = sizeof(buffer) / width;
  for (size_t done = 0; done < count;) {
    const size_t n = std::min(per_chunk, count - done);
    for (size_t i = 0; i < n; ++i) {
      const int32_t t = tokens[done + i];
      TS_ASSERT(t >= 0 && t < vocab_size_, "token id outside the vocabulary");
      if (dtype_ == TokenDtype::kUint16)
        store<uint16_t>(buffer + 2 * i, static_cast<uint16_t>(t));
      else
        store<uint32_t>(buffer + 4 * i, static_cast<uint32_t>(t));
    }
    if (std::fwrite(buffer, width, n, file_) != n) throw_io("write", temp_path_);
    done += n;
  }
  shard_tokens_ += count;
  tokens_total_ += count;
  ++documents_total_;
}

void ShardWriter::shard_end() {
  const size_t width = dtype_width(dtype_);
  const uint64_t index_offset = index_offset_for(shard_tokens_, width);
  const unsigned char padding[8] = {};
  const size_t pad = index_offset - (kHeaderBytes + shard_tokens_ * width);
  bool ok = std::fwrite(padding, 1, pad, file_) == pad;
  ok = ok && std::fwrite(doc_starts_.data(), sizeof(uint64_t), doc_starts_.size(), file_) ==
                 doc_starts_.size();

  unsigned char header[kHeaderBytes];
  encode_header(header, dtype_, vocab_size_, shard_tokens_, doc_starts_.size());
  ok = ok && std::fseek(file_, 0, SEEK_SET) == 0;
  ok = ok && std::fwrite(header, 1, kHeaderBytes, file_) == kHeaderBytes;
  // Synced before the rename, so a crash leaves either no shard or a whole one.
  ok = ok && std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  if (!ok) throw_io("write", temp_path_);
  std::fclose(file_);
  file_ = nullptr;
  const std::string final_path = dir_ + "/" + shard_file_name(shards_done_);
  if (std::rename(temp_path_.c_str(), final_path.c_str()) != 0) throw_io("rename", temp_path_);
  ++shards_done_;
}

void ShardWriter::finish() {
  if (finished_) return;
  if (file_) shard_end();
  finished_ = true;
  // Make the renames themselves durable.
  const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

// ----------------------------------------------------------------------------- one shard

TokenShard TokenShard::open(const std::string& path) {
  TokenShard shard;
  shard.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_io("open token shard", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw_io("stat", path);
  }
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes > 0) {
    shard.map_ = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    if (shard.map_ == MAP_FAILED) {
      shard.map_ = nullptr;
      ::close(fd);
      throw_io("map", path);
    }
    shard.map_bytes_ = file_bytes;
  }
  ::close(fd);  // the mapping keeps the file alive; no descriptor per shard held open

  const auto* base = static_cast<const unsigned char*>(shard.map_);
  if (file_bytes < sizeof(kMagic) || std::memcmp(base, kMagic, sizeof(kMagic)) != 0)
    throw_bad_shard(path, "not a tessera token shard (no TSRATOK magic)");
  if (file_bytes < kHeaderBytes)
    throw_bad_shard(path, "truncated: " + std::to_string(file_bytes) +
                              " bytes, shorter than the 64-byte header");
  const uint32_t version = load<uint32_t>(base + kOffVersion);
  if (version != kFormatVersion)
    throw_bad_shard(path, "format version " + std::to_string(version) +
                              ", this build reads version " + std::to_string(kFormatVersion));
  const uint32_t dtype = load<uint32_t>(base + kOffDtype);
  if (dtype != static_cast<uint32_t>(TokenDtype::kUint16) &&
      dtype != static_cast<uint32_t>(TokenDtype::kUint32))
    throw_bad_shard(path,
                    "unknown token dtype " + std::to_string(dtype) + " (1 = uint16, 2 = uint32)");
  shard.dtype_ = static_cast<TokenDtype>(dtype);
  const uint32_t vocab = load<uint32_t>(base + kOffVocab);
  if (vocab == 0 || (shard.dtype_ == TokenDtype::kUint16 && vocab > 65536))
    throw_bad_shard(path, "vocab_size " + std::to_string(vocab) + " does not fit its dtype");
  shard.vocab_size_ = vocab;

  const uint64_t tokens = load<uint64_t>(base + kOffTokens);
  const uint64_t documents = load<uint64_t>(base + kOffDocuments);
  const uint64_t index_offset = load<uint64_t>(base + kOffIndex);
  const size_t width = dtype_width(shard.dtype_);
  // Bounded by the file size first so the products below cannot overflow.
  if (tokens > file_bytes / width || documents > file_bytes / 8 ||
      index_offset != index_offset_for(tokens, width) ||
      index_offset + documents * 8 != file_bytes) {
    const bool sane = tokens <= file_bytes / width && documents <= file_bytes / 8;
    throw_bad_shard(path, sane ? "truncated or corrupt: " + std::to_string(file_bytes) +
                                     " bytes, header says " +
                                     std::to_string(index_offset_for(tokens, width) + documents * 8)
                               : "truncated or corrupt: header counts exceed the file size");
  }
  shard.token_count_ = static_cast<int64_t>(tokens);
  shard.document_count_ = static_cast<int64_t>(documents);
  shard.tokens_ = base + kHeaderBytes;
  shard.index_ = base + index_offset;
  // The document index is checked entry by entry where it is read (document_start): training
  // never reads it, so opening a corpus costs the same whatever its number of documents.
  return shard;
}

TokenShard::~TokenShard() {
  unmap();
}

TokenShard::TokenShard(TokenShard&& other) noexcept {
  *this = std::move(other);
}

TokenShard& TokenShard::operator=(TokenShard&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    dtype_ = other.dtype_;
    vocab_size_ = other.vocab_size_;
    token_count_ = other.token_count_;
    document_count_ = other.document_count_;
    tokens_ = std::exchange(other.tokens_, nullptr);
    index_ = std::exchange(other.index_, nullptr);
  }
  return *this;
}

void TokenShard::unmap() {
  if (map_) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

int64_t TokenShard::document_start(int64_t d) const {
  TS_ASSERT(d >= 0 && d < document_count_, "document index out of range");
  const uint64_t start = load<uint64_t>(index_ + 8 * d);
  const uint64_t previous = d > 0 ? load<uint64_t>(index_ + 8 * (d - 1)) : 0;
  if ((d == 0 && start != 0) || start < previous || start > static_cast<uint64_t>(token_count_))
    throw_bad_shard(path_, "corrupt document index at entry " + std::to_string(d));
  return static_cast<int64_t>(start);
}

void TokenShard::read(int64_t offset, int64_t count, int32_t* out) const {
  TS_ASSERT(offset >= 0 && count >= 0 && offset + count <= token_count_,
            "token range outside the shard");
  if (dtype_ == TokenDtype::kUint16) {
    const unsigned char* p = tokens_ + 2 * offset;
    for (int64_t i = 0; i < count; ++i) out[i] = load<uint16_t>(p + 2 * i);
  } else {
    const unsigned char* p = tokens_ + 4 * offset;
    for (int64_t i = 0; i < count; ++i) out[i] = static_cast<int32_t>(load<uint32_t>(p + 4 * i));
  }
}

// ---------------------------------------------------------------------------- shard set

ShardSet ShardSet::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw UserError("data: token directory " + dir + " does not exist or is not a directory");
  std::vector<std::pair<size_t, std::string>> found;  // (index, name)
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (auto index = shard_index_from_name(name)) found.emplace_back(*index, name);
  }
  if (ec) throw UserError("data: cannot list directory " + dir + ": " + ec.message());
  if (found.empty())
    throw UserError("data: " + dir + " holds no shard_*.tok files (run `tessera prepare`)");
  // Numeric order, which is name order while indices have five digits.
  std::sort(found.begin(), found.end());

  ShardSet set;
  set.dir_ = dir;
  set.starts_.push_back(0);
  for (size_t i = 0; i < found.size(); ++i) {
    // A gap means a shard was lost; reading on would silently train on part of the corpus.
    if (found[i].first != i)
      throw UserError("data: " + dir + ": " + shard_file_name(i) + " is missing (found " +
                      found[i].second + ")");
    TokenShard shard = TokenShard::open(dir + "/" + found[i].second);
    if (i == 0) set.vocab_size_ = shard.vocab_size();
    if (shard.vocab_size() != set.vocab_size_)
      throw UserError("data: " + shard.path() + ": vocab_size " +
                      std::to_string(shard.vocab_size()) + " differs from " +
                      std::to_string(set.vocab_size_) + " in " + set.shards_[0].path());
    set.starts_.push_back(set.starts_.back() + shard.token_count());
    set.shards_.push_back(std::move(shard));
  }
  return set;
}

int64_t ShardSet::total_documents() const {
  int64_t n = 0;
  for (const TokenShard& s : shards_) n += s.document_count();
  return n;
}

void ShardSet::read(int64_t offset, int64_t count, int32_t* out) const {
  TS_ASSERT(offset >= 0 && count >= 0 && offset + count <= total_tokens(),
            "token range outside the corpus");
  // Last shard starting at or before offset; empty shards are skipped by the loop.
  size_t s = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                                 starts_.begin()) -
             1;
  while (count > 0) {
    const int64_t local = offset - starts_[s];
    const int64_t n = std::min(count, shards_[s].token_count() - local);
    shards_[s].read(local, n, out);
    out += n;
    offset += n;
    count -= n;
    ++s;
  }
}

}  // namespace tessera::data
