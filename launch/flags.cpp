#include "launch/flags.h"

#include <algorithm>

namespace tessera {
namespace {

bool listed(const std::vector<std::string_view>& names, const std::string& flag) {
  return std::find(names.begin(), names.end(), flag) != names.end();
}

}  // namespace

std::string Flags::one(const std::string& flag, const std::string& fallback) const {
  const auto it = values.find(flag);
  return it == values.end() || it->second.empty() ? fallback : it->second.back();
}

std::vector<std::string> Flags::list(const std::string& flag) const {
  const auto it = values.find(flag);
  return it == values.end() ? std::vector<std::string>{} : it->second;
}

Flags parse_flags(int argc, char** argv, const FlagSpec& spec, const FlagError& fail) {
  Flags flags;
  // argv[0] is the subcommand.
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    bool has_inline_value = false;
    if (const size_t eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
      has_inline_value = true;
    }
    if (flag == "-h" || flag == "--help") {
      flags.help = true;
      return flags;
    }
    if (listed(spec.switches, flag)) {
      if (has_inline_value) fail(flag + " takes no value");
      flags.values[flag];
      continue;
    }
    const bool is_list = listed(spec.lists, flag);
    if (!is_list && !listed(spec.valued, flag)) fail("unknown argument \"" + std::string(argv[i]) + "\"");
    std::vector<std::string>& kept = flags.values[flag];
    if (is_list) {
      if (has_inline_value) kept.push_back(value);
      const size_t before = kept.size();
      while (i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--")) kept.push_back(argv[++i]);
      if (kept.size() == before && !has_inline_value) fail(flag + " needs at least one value");
      continue;
    }
    if (!has_inline_value) {
      if (i + 1 >= argc) fail(flag + " needs a value");
      value = argv[++i];
    }
    if (value.empty() && !listed(spec.may_be_empty, flag)) fail(flag + " needs a non-empty value");
    kept.assign(1, value);
  }
  return flags;
}

}  // namespace tessera
