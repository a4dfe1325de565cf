// DeepSeek's chat formats, rendered by hand (no Jinja engine): byte-identical to transformers'
// apply_chat_template with the templates DeepSeek ships, and aware of which bytes are the
// assistant's (what the model should learn to generate, end-of-turn token included).
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/tokenizer.h"

namespace dsalign {

enum class ChatFormat {
  deepseek_llm,    // "User: ...\n\nAssistant: ...<｜end▁of▁sentence｜>", system text first
  deepseek_coder,  // default system prompt, "### Instruction:\n" / "### Response:\n", "<|EOT|>"
};

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

struct RenderedChat {
  std::string text;
  // Byte ranges of `text` that carry loss: for each assistant turn, everything after the
  // generation prompt up to and including the end-of-turn token.
  std::vector<std::pair<size_t, size_t>> assistant_spans;
};

// "deepseek-llm" | "deepseek-coder"; anything else is an Error listing the built-in names.
ChatFormat chat_format_from_name(const std::string& name);
const char* chat_format_name(ChatFormat format);
std::string chat_format_names();  // "deepseek-llm, deepseek-coder"

// The built-in format whose Jinja template this is (as shipped in tokenizer_config.json).
std::optional<ChatFormat> recognise_chat_template(const std::string& jinja);
// The Jinja template DeepSeek ships for `format` (what exported tokenizer_config.json carries).
const char* chat_template_jinja(ChatFormat format);
// `name` may be "auto": the tokenizer's chat_template must then be one dsalign knows.
ChatFormat resolve_chat_format(const std::string& name, const Tokenizer& tokenizer);

// Roles must be system, user or assistant (Error otherwise). bos/eos are the tokenizer's strings.
RenderedChat render_chat(ChatFormat format, const std::vector<ChatMessage>& messages, const std::string& bos_token,
                         const std::string& eos_token, bool add_generation_prompt);

// The end-of-turn token that closes an assistant turn, as text.
std::string end_of_turn_token(ChatFormat format, const std::string& eos_token);

struct TokenizedChat {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss_mask;  // 1 where the token carries loss
};

// Renders and tokenizes the whole text at once (so ids equal tokenizing apply_chat_template's
// output); a token carries loss when it overlaps an assistant span, or always with train_on_all.
// The first `skip_assistant_turns` assistant turns carry no loss (a preference pair's prompt may
// hold earlier turns; only the response is scored).
TokenizedChat tokenize_chat(const Tokenizer& tokenizer, ChatFormat format, const std::vector<ChatMessage>& messages,
                            bool add_generation_prompt, bool train_on_all, EncodeScratch& scratch,
                            size_t skip_assistant_turns = 0);

}  // namespace dsalign
