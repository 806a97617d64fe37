// Token shards: the on-disk form of a prepared corpus (format in docs/data-format.md).
//
// A corpus directory holds shard_00000.tok, shard_00001.tok, ...; read in name order they are
// one token stream in which every document ends with the tokenizer's end-of-document id.
//   ShardWriter  appends documents and rolls to a new shard past a size threshold; a shard
//                appears under its final name only once it is complete.
//   TokenShard   one shard, memory-mapped read-only and validated on open.
//   ShardSet     every shard of a directory as one stream, addressed by global token offset.
// A file that is truncated, foreign or of another version is a UserError naming the file.
// Readers are immutable after open and may be used from any number of threads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace tessera::data {

inline constexpr uint64_t kDefaultShardBytes = 256ull << 20;

enum class TokenDtype : uint32_t { kUint16 = 1, kUint32 = 2 };

// uint16 when every id fits (vocab_size <= 65535), else uint32.
TokenDtype token_dtype_for_vocab(int64_t vocab_size);
// Bytes per stored token: 2 or 4.
inline size_t dtype_width(TokenDtype dtype) { return dtype == TokenDtype::kUint16 ? 2 : 4; }

class TokenShard;

// Whether a document of `count` tokens goes to a new shard: the open one (holding
// `shard_tokens`) would pass `shard_bytes` of tokens with it. ShardWriter's rule, also used
// by prepare's merge to lay shards out before their tokens are written.
inline bool shard_is_full(uint64_t shard_tokens, uint64_t count, TokenDtype dtype, uint64_t shard_bytes) {
  return shard_tokens > 0 && (shard_tokens + count) * dtype_width(dtype) > shard_bytes;
}
// Writes data[0, n) at `offset` of `fd`, through short writes and interrupted calls; false on an
// error (errno says which).
bool write_at(int fd, const void* data, size_t n, uint64_t offset);
// Byte offset of token `t` in a shard file.
uint64_t shard_token_offset(TokenDtype dtype, uint64_t t);
// Writes a whole shard file at `path` except its tokens: header, zero-filled token region,
// padding and the document index (`doc_starts`), synced. The tokens are then written in
// place (at shard_token_offset) by whoever holds them. Throws UserError when it cannot write.
void shard_write_frame(const std::string& path, TokenDtype dtype, int64_t vocab_size, uint64_t tokens,
                       const std::vector<uint64_t>& doc_starts);
// "shard_00042.tok"
std::string shard_file_name(size_t index);

class ShardWriter {
 public:
  // Creates `dir` if needed. Throws UserError if it cannot, or if it already holds shards
  // (mixing two corpora would go unnoticed). `shard_bytes` bounds the token bytes per shard;
  // documents are never split, so a single larger document makes one larger shard.
  ShardWriter(std::string dir, int64_t vocab_size, uint64_t shard_bytes = kDefaultShardBytes);
  // Without finish(), removes the temporary file of the open shard: no half-written shards.
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Appends one document; its tokens (including any end-of-document id) must be < vocab_size.
  void append_document(const int32_t* tokens, size_t count);
  // Completes the open shard (if it has any document). No appends afterwards.
  void finish();

  size_t shard_count() const { return shards_done_ + (file_ ? 1 : 0); }
  uint64_t token_count() const { return tokens_total_; }
  uint64_t document_count() const { return documents_total_; }

 private:
  void shard_begin();
  void shard_end();

  std::string dir_;
  int64_t vocab_size_;
  uint64_t shard_bytes_;
  TokenDtype dtype_;
  std::FILE* file_ = nullptr;  // open shard, written under its temporary name
  std::vector<char> file_buffer_;  // its stdio buffer
  std::string temp_path_;
  std::vector<uint64_t> doc_starts_;  // of the open shard, in tokens
  uint64_t shard_tokens_ = 0;
  size_t shards_done_ = 0;
  uint64_t tokens_total_ = 0;
  uint64_t documents_total_ = 0;
  bool finished_ = false;
};

class TokenShard {
 public:
  static TokenShard open(const std::string& path);
  ~TokenShard();
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  const std::string& path() const { return path_; }
  TokenDtype dtype() const { return dtype_; }
  int64_t vocab_size() const { return vocab_size_; }
  int64_t token_count() const { return token_count_; }
  int64_t document_count() const { return document_count_; }
  // First token of document d, as an offset within this shard.
  int64_t document_start(int64_t d) const;
  // Tokens [offset, offset + count) widened to int32. The range must lie inside the shard.
  void read(int64_t offset, int64_t count, int32_t* out) const;
  // The stored bytes of token `offset` onwards (dtype() wide each).
  const unsigned char* token_bytes(int64_t offset) const { return tokens_ + offset * dtype_width(dtype_); }

 private:
  TokenShard() = default;
  void unmap();

  std::string path_;
  void* map_ = nullptr;  // owned read-only mapping of the whole file
  size_t map_bytes_ = 0;
  TokenDtype dtype_ = TokenDtype::kUint16;
  int64_t vocab_size_ = 0;
  int64_t token_count_ = 0;
  int64_t document_count_ = 0;
  const unsigned char* tokens_ = nullptr;  // into map_
  const unsigned char* index_ = nullptr;   // into map_
};

class ShardSet {
 public:
  // Opens every shard_NNNNN.tok in `dir` in name order. A missing directory, one without
  // shards, or shards that disagree on vocab_size are UserErrors.
  static ShardSet open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  int64_t vocab_size() const { return vocab_size_; }
  int64_t total_tokens() const { return starts_.back(); }
  int64_t total_documents() const;
  size_t shard_count() const { return shards_.size(); }
  const TokenShard& shard(size_t i) const { return shards_[i]; }
  // Tokens [offset, offset + count) of the whole stream, across shard boundaries.
  void read(int64_t offset, int64_t count, int32_t* out) const;

 private:
  std::string dir_;
  int64_t vocab_size_ = 0;
  std::vector<TokenShard> shards_;
  std::vector<int64_t> starts_;  // starts_[i] = first global token of shard i; back() = total
};

}  // namespace tessera::data
