// Command-line flags of the subcommands (prepare, tokenizer, contamination): "--flag value" or
// "--flag=value"; a list flag takes every following argument up to the next "--" flag and may
// be repeated; a switch takes no value. Mistakes go to `fail`, which throws a UserError that
// names the command and its usage.
#pragma once
#include <charconv>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

struct FlagSpec {
  std::vector<std::string_view> valued;       // the last value given wins
  std::vector<std::string_view> lists;        // values accumulate
  std::vector<std::string_view> switches;     // present or not
  std::vector<std::string_view> may_be_empty;  // valued flags that accept ""
};

struct Flags {
  bool help = false;  // -h or --help was given (nothing after it is parsed)
  std::map<std::string, std::vector<std::string>> values;

  bool has(const std::string& flag) const { return values.count(flag) > 0; }
  // The last value of `flag`, or `fallback` when it was not given.
  std::string one(const std::string& flag, const std::string& fallback = "") const;
  std::vector<std::string> list(const std::string& flag) const;
};

// `fail(message)` must throw.
using FlagError = std::function<void(const std::string&)>;

Flags parse_flags(int argc, char** argv, const FlagSpec& spec, const FlagError& fail);

// The value of `flag` as a number in [low, high] (open at low when `low_open`), else
// fail("FLAG wants WHAT, got \"...\"").
template <typename T>
T flag_number(const Flags& flags, const std::string& flag, T low, bool low_open, T high,
              const std::string& what, const FlagError& fail) {
  const std::string text = flags.one(flag);
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < low ||
      (low_open && value == low) || value > high)
    fail(flag + " wants " + what + ", got \"" + text + "\"");
  return value;
}

}  // namespace tessera
