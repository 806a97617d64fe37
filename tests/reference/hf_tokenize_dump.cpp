// hf_tokenize_dump: drives a tokenizer spec from the command line for the reference test
// against the tokenizers library (hf_tokenizer_check.py) and the benchmark
// (bench/hf_tokenizer_bench.sh). Texts travel as hex so that any bytes, newlines and invalid
// UTF-8 included, survive the trip.
//   hf_tokenize_dump info SPEC                    {"vocab_size": V, "eod_id": E}
//   hf_tokenize_dump encode SPEC < hex lines      one JSON array of ids per line
//   hf_tokenize_dump decode SPEC < id lines       (JSON arrays) one hex line of bytes per line
//   hf_tokenize_dump bench SPEC FILE THREADS      encodes FILE's lines on THREADS threads;
//                                                 prints MB/s of the encode alone
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data/tokenizer.h"
#include "runtime/error.h"

namespace tessera {
namespace {

std::string hex_decode(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

std::string hex_encode(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex.push_back(digits[c >> 4]);
    hex.push_back(digits[c & 15]);
  }
  return hex;
}

int bench(const data::Tokenizer& tokenizer, const std::string& path, int threads) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw UserError("cannot open " + path);
  std::vector<std::string> lines;
  size_t bytes = 0;
  for (std::string line; std::getline(file, line);) {
    bytes += line.size();
    lines.push_back(std::move(line));
  }
  std::vector<size_t> tokens(threads, 0);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (size_t i = t; i < lines.size(); i += threads)
        tokens[t] += tokenizer.encode(lines[i]).size();
    });
  }
  for (auto& w : workers) w.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t total = 0;
  for (size_t n : tokens) total += n;
  std::printf("{\"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.4f, \"mb_per_s\": %.3f}\n", bytes,
              total, seconds, bytes / seconds / 1e6);
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: hf_tokenize_dump info|encode|decode|bench SPEC [FILE THREADS]\n");
    return 2;
  }
  const std::string mode = argv[1];
  const auto tokenizer = data::tokenizer_create(argv[2]);
  if (mode == "info") {
    std::printf("{\"vocab_size\": %d, \"eod_id\": %d, \"name\": %s}\n", tokenizer->vocab_size(),
                tokenizer->eod_id(), nlohmann::json(tokenizer->name()).dump().c_str());
    return 0;
  }
  if (mode == "bench" && argc == 5) return bench(*tokenizer, argv[3], std::stoi(argv[4]));
  std::string line;
  while (std::getline(std::cin, line)) {
    if (mode == "encode") {
      std::cout << nlohmann::json(tokenizer->encode(hex_decode(line))).dump() << '\n';
    } else if (mode == "decode") {
      const auto ids = nlohmann::json::parse(line).get<std::vector<int32_t>>();
      std::cout << hex_encode(tokenizer->decode(ids.data(), ids.size())) << '\n';
    } else {
      std::fprintf(stderr, "hf_tokenize_dump: unknown mode %s\n", mode.c_str());
      return 2;
    }
  }
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  try {
    return tessera::run(argc, argv);
  } catch (const tessera::UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
