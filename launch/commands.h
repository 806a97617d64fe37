// The `tessera` subcommands. argv[0] is the subcommand name. User mistakes throw UserError.
#pragma once

namespace tessera {

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
