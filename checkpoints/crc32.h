// zlib's CRC-32 (the checksum every shard records), computed with carry-less multiplication
// where the CPU has it. zlib 1.2's table-driven crc32 runs at 2-4 GB/s per core, which on a small
// machine costs as much CPU as reading the checkpoint; folding 64 bytes at a time with PCLMULQDQ
// (Gopal et al., "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ Instruction",
// Intel 2009) is several times faster. Results are zlib's bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera::ckpt {

// The CRC-32 of the bytes before (`crc`, 0 for none) followed by data[0, n), as zlib's
// crc32(crc, data, n).
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);
// crc32_update(crc, src, n), also copying src[0, n) to dst (not overlapping) in the same pass:
// the bytes are read from memory once instead of twice.
uint32_t crc32_copy(uint32_t crc, void* dst, const void* src, size_t n);

}  // namespace tessera::ckpt
