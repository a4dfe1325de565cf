// Batched greedy generation (temperature 0) with a KV cache: what the repetition ratio measures.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "data/chat_template.h"
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
  // Ends a row (terminated) when it returns true for the row's tokens so far, checked after each
  // token, which stays in the response: stop strings.
  std::function<bool(const std::vector<int32_t>&)> stop_when;
};

struct Generation {
  std::vector<int32_t> tokens;  // the response, without the stop token
  bool terminated = false;      // ended with a stop token (or stop_when) rather than at max_new_tokens
};

// Chat answers: each prompt rendered as one user turn with the generation prompt, and options that
// stop at the format's end-of-turn token (and EOS), pad with the tokenizer's pad (or EOS) and
// generate only the tokenizer's ids. Error when there is nothing to stop at.
std::vector<std::vector<int32_t>> chat_prompt_ids(const Tokenizer& tokenizer, ChatFormat format,
                                                  const std::vector<std::string>& user_messages);
// The same for whole conversations, each ending with the user turn to answer.
std::vector<std::vector<int32_t>> chat_prompt_ids(const Tokenizer& tokenizer, ChatFormat format,
                                                  const std::vector<std::vector<ChatMessage>>& conversations);
GenerationOptions chat_generation_options(const Tokenizer& tokenizer, ChatFormat format, int64_t max_new_tokens,
                                          int64_t batch_size);

// One greedy response per prompt, in the prompts' order. Prompts are batched by length to keep
// padding small; `on_batch(done, total)` reports progress after each batch.
std::vector<Generation> generate_greedy(CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                                        const GenerationOptions& options,
                                        const std::function<void(size_t, size_t)>& on_batch = nullptr);

}  // namespace dsalign
