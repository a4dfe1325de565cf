// Batched greedy generation (temperature 0) with a KV cache: what the repetition ratio measures.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/decoder.h"

namespace dsalign {

struct GenerationOptions {
  int64_t max_new_tokens = 256;
  std::vector<int32_t> stop_ids;  // generation of a row ends at the first of these
  int64_t batch_size = 8;         // prompts decoded together (left-padded)
  int32_t pad_id = 0;             // fills padding slots; never attended to
  // > 0: only ids below this are generated (a vocabulary padded past the tokenizer's tokens, as
  // deepseek-coder's 32256 rows for 32022 tokens, has rows no text decodes from).
  int64_t vocab_size = 0;
};

struct Generation {
  std::vector<int32_t> tokens;  // the response, without the stop token
  bool terminated = false;      // ended with a stop token rather than at max_new_tokens
};

// One greedy response per prompt, in the prompts' order. Prompts are batched by length to keep
// padding small; `on_batch(done, total)` reports progress after each batch.
std::vector<Generation> generate_greedy(CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                                        const GenerationOptions& options,
                                        const std::function<void(size_t, size_t)>& on_batch = nullptr);

}  // namespace dsalign
