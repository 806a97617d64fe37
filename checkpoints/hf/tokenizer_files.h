// The run's tokenizer in Hugging Face form, for `tessera export --format hf`: the files that
// let `tokenizers.Tokenizer.from_file(DIR/tokenizer.json)` and
// `transformers.AutoTokenizer.from_pretrained(DIR)` encode text as the model was trained.
//
//   hf:PATH             tokenizer.json copied byte for byte; tokenizer_config.json and
//                       special_tokens_map.json copied from beside PATH, or generated
//   sentencepiece:PATH  tokenizer.json converted from a BPE .model, encoding exactly as the
//                       model does (unigram models are refused), both special-token files
//                       generated
//   byte                no files (the model card says how to encode)
//
// Generated special-token files name tessera's end-of-document token (the one `prepare`
// appends after every document) as both bos_token and eos_token, as config.json's
// bos_token_id and eos_token_id do; nothing is added to an encoded text and there is no
// padding token, because training never added or padded anything.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace tessera {

struct HfTokenizerFiles {
  std::string note;  // one line for the export's summary and the model card
  std::vector<std::pair<std::string, std::string>> files;  // (name in the directory, content)
};

// Everything checked and generated in memory: a one-line UserError naming the file for a
// tokenizer that cannot be written exactly (a SentencePiece model with normalization rules,
// user-defined pieces, ...), an unreadable file, or malformed JSON beside an hf: tokenizer.
HfTokenizerFiles hf_tokenizer_files_make(const std::string& tokenizer_spec);

// Writes each file under `out_dir` (which exists), each under a temporary name first.
void hf_tokenizer_files_write(const HfTokenizerFiles& files, const std::string& out_dir);

// tokenizer.json for a SentencePiece BPE .model file: the legacy LLaMA layout (Prepend and
// Replace normalizers, no pre-tokenizer, so a text is one BPE word, as in SentencePiece), every
// piece at its id, control and unknown pieces as special added tokens. Checked against the
// model on a multilingual text and every piece spelled out (through tessera's hf: tokenizer,
// which encodes as the library does) before it is returned. UserError naming the file for a
// model that the library cannot reproduce exactly.
struct HfSentencePieceJson {
  std::string json;
  std::string summary;    // e.g. "BPE, 3000 pieces"
  std::string eos_token;  // the piece at `eod_id`
  std::string unk_token;
};
HfSentencePieceJson hf_sentencepiece_tokenizer_json(const std::string& model_path, int eod_id);

}  // namespace tessera
