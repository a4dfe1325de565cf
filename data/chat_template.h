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

// Which bytes of an assistant turn carry loss.
enum class ResponseSpan {
  // Everything the template renders for the turn after the generation prompt: what TRL trains on
  // (DPOTrainer's and SFTTrainer's completion ids, the {% generation %} span of its training
  // templates). deepseek-coder: "content\n<|EOT|>\n", the newline after <|EOT|> included.
  rendered,
  // Up to and including the end-of-turn token (deepseek-coder: without that last newline).
  end_of_turn,
};

// "rendered" | "end_of_turn"; anything else is an Error naming both.
ResponseSpan response_span_from_name(const std::string& name);
const char* response_span_name(ResponseSpan span);

// One assistant turn in the rendered text, as byte offsets: [begin, end) is the rendered turn
// after the generation prompt, [begin, end_of_turn) stops after the end-of-turn token.
struct AssistantSpan {
  size_t begin = 0, end_of_turn = 0, end = 0;
};

struct RenderedChat {
  std::string text;
  std::vector<AssistantSpan> assistant_spans;
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

struct ChatLossOptions {
  bool train_on_all = false;                     // every token carries loss
  ResponseSpan span = ResponseSpan::rendered;    // otherwise: these bytes of each assistant turn
  size_t skip_assistant_turns = 0;               // the first K assistant turns carry none (a
                                                 // preference pair's prompt may hold earlier turns)
};

// Renders and tokenizes the whole text at once (so ids equal tokenizing apply_chat_template's
// output); a token carries loss when it overlaps an assistant span (as transformers'
// return_assistant_tokens_mask marks the tokens from the span's first to its last byte).
TokenizedChat tokenize_chat(const Tokenizer& tokenizer, ChatFormat format, const std::vector<ChatMessage>& messages,
                            bool add_generation_prompt, const ChatLossOptions& loss, EncodeScratch& scratch);

}  // namespace dsalign
