// Chat checkpoints out: a Hugging Face directory that transformers and vLLM load unchanged:
// config.json (LlamaForCausalLM), safetensors shards with their index, the tokenizer files with
// tokenizer_config.json carrying the chat template, and generation_config.json whose EOS is the
// chat format's end-of-turn token.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "data/chat_template.h"
#include "model/checkpoint.h"

namespace dsalign {

struct ExportOptions {
  torch::ScalarType dtype = torch::kBFloat16;
  int64_t max_shard_bytes = int64_t{5} << 30;
  bool overwrite = false;  // replace an existing out_dir
};

// `tokenizer_dir` holds tokenizer.json and tokenizer_config.json (and may hold
// special_tokens_map.json). Written under a temporary name and renamed.
void export_chat_checkpoint(const ModelConfig& config, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                            const std::filesystem::path& tokenizer_dir, ChatFormat format,
                            const std::filesystem::path& out_dir, const ExportOptions& options);

// The same from tensors produced one at a time as they are written.
void export_chat_checkpoint(const ModelConfig& config, std::vector<TensorToWrite> tensors,
                            const std::filesystem::path& tokenizer_dir, ChatFormat format,
                            const std::filesystem::path& out_dir, const ExportOptions& options);

// What `dsalign export` accepts: a run directory (its newest checkpoint), a training checkpoint
// (checkpoints/step_N, which records its chat format; a sharded one is assembled one tensor at a
// time), or a Hugging Face directory (chat format
// from its tokenizer, or `chat_template` when not "auto"). Returns the directory exported.
std::filesystem::path export_model(const std::filesystem::path& source, const std::filesystem::path& out_dir,
                                   const std::string& chat_template, const ExportOptions& options);

// "5GB", "500MB", "1.5GiB", "123" (bytes) -> bytes; Error otherwise.
int64_t parse_byte_size(const std::string& text);

}  // namespace dsalign
