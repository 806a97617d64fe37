// The `tessera` subcommands. argv[0] is the subcommand name. User mistakes throw UserError.
#pragma once
#include <filesystem>
#include <string>

namespace tessera {

// A file-system failure the user caused (a name too long, a directory not writable) as the
// one-line error: "PATH: what went wrong", a very long path shortened in the middle.
inline std::string filesystem_error_line(const std::filesystem::filesystem_error& e) {
  std::string path = e.path1().string();
  if (path.size() > 160) path = path.substr(0, 80) + "..." + path.substr(path.size() - 60);
  return (path.empty() ? std::string("file system") : path) + ": " + e.code().message();
}

int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_prepare(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_import(int argc, char** argv);
int cmd_tokenizer(int argc, char** argv);
int cmd_contamination(int argc, char** argv);
int cmd_report(int argc, char** argv);

}  // namespace tessera
