// tessera: one binary, subcommands. User mistakes end here as one line and exit code 2.
#include <cstdio>
#include <cstring>
#include <exception>
#include <ios>
#include <new>
#include <string>

#include "launch/commands.h"
#include "launch/version.h"
#include "runtime/error.h"


namespace {

void print_usage() {
  std::puts(
      "usage: tessera <command> [args]\n"
      "  train CONFIG.toml [--set section.key=value ...]   pretrain a model\n"
      "  prepare --tokenizer SPEC --input PATH... --out DIR [--language CODE] [--dedup] ...\n"
      "                                                    tokenize a corpus into shards (mpirun: in parallel)\n"
      "  eval --model WEIGHTS.h5|CKPT --tokens DIR         loss per token on prepared shards\n"
      "  eval --model WEIGHTS.h5|CKPT --ids FILE.json [--logits OUT.npy] [--grads OUT.safetensors]\n"
      "                                                    loss (logits, gradients) on given token ids\n"
      "  generate --model WEIGHTS.h5 --prompt TEXT         sample a continuation\n"
      "  inspect CHECKPOINT_DIR                            describe a checkpoint, verify its shards\n"
      "  export CHECKPOINT_DIR --format hf --out DIR [--max-shard-size 5GB]\n"
      "                                                    write a Hugging Face model directory\n"
      "  import HF_DIR --out CHECKPOINT_DIR [--config C]   a Hugging Face GPT-2, LLaMA, GPT-NeoX or BLOOM\n"
      "                                                    as a checkpoint\n"
      "  tokenizer train --input FILE... --vocab-size N --type bpe|unigram --out PATH\n"
      "  tokenizer encode|decode --tokenizer SPEC          text lines <-> JSON id arrays (stdin)\n"
      "  contamination --train DIR --eval FILE... [--n 13] [--top K] [--json] [--threads N]\n"
      "                                                    eval documents sharing n-grams with training\n"
      "  report RUN_DIR...                                 write each run's README.md (model card) and loss.svg;\n"
      "                                                    several runs: a table of them by training FLOPs\n"
      "  version                                           print version and build");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "train") return tessera::cmd_train(argc - 1, argv + 1);
    if (cmd == "prepare") return tessera::cmd_prepare(argc - 1, argv + 1);
    if (cmd == "eval") return tessera::cmd_eval(argc - 1, argv + 1);
    if (cmd == "generate") return tessera::cmd_generate(argc - 1, argv + 1);
    if (cmd == "inspect") return tessera::cmd_inspect(argc - 1, argv + 1);
    if (cmd == "export") return tessera::cmd_export(argc - 1, argv + 1);
    if (cmd == "import") return tessera::cmd_import(argc - 1, argv + 1);
    if (cmd == "tokenizer") return tessera::cmd_tokenizer(argc - 1, argv + 1);
    if (cmd == "contamination") return tessera::cmd_contamination(argc - 1, argv + 1);
    if (cmd == "report") return tessera::cmd_report(argc - 1, argv + 1);
    if (cmd == "version" || cmd == "--version") {
      std::printf("tessera %s (commit %s)\n", tessera::tessera_version(), tessera::tessera_git_commit());
      return 0;
    }
    std::fprintf(stderr, "tessera: error: unknown command '%s' (try: tessera help)\n", cmd.c_str());
    return 2;
  } catch (const tessera::AgreedError& e) {
    if (e.report()) std::fprintf(stderr, "tessera: error: %s\n", e.what());
    return 2;
  } catch (const tessera::UserError& e) {
    std::fprintf(stderr, "tessera: error: %s\n", e.what());
    return 2;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "tessera: error: a numeric option has a value that is not a number\n");
    return 2;
  } catch (const std::out_of_range& e) {
    std::fprintf(stderr, "tessera: error: a numeric option has a value out of range\n");
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tessera: error: out of memory: the run as configured does not fit this "
                         "machine (lower train.micro_batch, train.global_batch, model.seq_len or the model)\n");
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    std::fprintf(stderr, "tessera: error: %s\n", tessera::filesystem_error_line(e).c_str());
    return 2;
  } catch (const std::ios_base::failure& e) {
    std::fprintf(stderr, "tessera: error: a file given could not be read (%s)\n", e.what());
    return 2;
  }
}
