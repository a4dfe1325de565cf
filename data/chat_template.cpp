#include "data/chat_template.h"

#include "util/error.h"

namespace dsalign {
namespace {

// The templates as DeepSeek ships them in tokenizer_config.json ("chat_template").
const char* kDeepSeekLlmTemplate =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}{% for "
    "message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif "
    "message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == "
    "'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% "
    "endif %}";

const char* kDeepSeekCoderTemplate =
    "{% if not add_generation_prompt is defined %}\n{% set add_generation_prompt = false %}\n{% endif %}\n{%- set ns = "
    "namespace(found=false) -%}\n{%- for message in messages -%}\n    {%- if message['role'] == 'system' -%}\n        {%- "
    "set ns.found = true -%}\n    {%- endif -%}\n{%- endfor -%}\n{{bos_token}}{%- if not ns.found -%}\n{{'You are an AI "
    "programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you only answer "
    "questions related to computer science. For politically sensitive questions, security and privacy issues, and other "
    "non-computer science questions, you will refuse to answer\\n'}}\n{%- endif %}\n{%- for message in messages %}\n    "
    "{%- if message['role'] == 'system' %}\n{{ message['content'] }}\n    {%- else %}\n        {%- if message['role'] == "
    "'user' %}\n{{'### Instruction:\\n' + message['content'] + '\\n'}}\n        {%- else %}\n{{'### Response:\\n' + "
    "message['content'] + '\\n<|EOT|>\\n'}}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{% if "
    "add_generation_prompt %}\n{{'### Response:'}}\n{% endif %}";

const char* kCoderDefaultSystem =
    "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you only "
    "answer questions related to computer science. For politically sensitive questions, security and privacy issues, and "
    "other non-computer science questions, you will refuse to answer\n";

std::string normalise_newlines(std::string s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i)
    if (!(s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) out += s[i];
  return out;
}

}  // namespace

ChatFormat chat_format_from_name(const std::string& name) {
  if (name == "deepseek-llm") return ChatFormat::deepseek_llm;
  if (name == "deepseek-coder") return ChatFormat::deepseek_coder;
  fail("unknown chat template '", name, "' (built-in: ", chat_format_names(), ", or auto)");
}

const char* chat_format_name(ChatFormat format) {
  return format == ChatFormat::deepseek_llm ? "deepseek-llm" : "deepseek-coder";
}

std::string chat_format_names() { return "deepseek-llm, deepseek-coder"; }

ResponseSpan response_span_from_name(const std::string& name) {
  if (name == "rendered") return ResponseSpan::rendered;
  if (name == "end_of_turn") return ResponseSpan::end_of_turn;
  fail("unknown response span '", name, "' (expected rendered or end_of_turn)");
}

const char* response_span_name(ResponseSpan span) { return span == ResponseSpan::rendered ? "rendered" : "end_of_turn"; }

std::optional<ChatFormat> recognise_chat_template(const std::string& jinja) {
  std::string t = normalise_newlines(jinja);
  if (t == kDeepSeekLlmTemplate) return ChatFormat::deepseek_llm;
  if (t == kDeepSeekCoderTemplate) return ChatFormat::deepseek_coder;
  return std::nullopt;
}

const char* chat_template_jinja(ChatFormat format) {
  return format == ChatFormat::deepseek_llm ? kDeepSeekLlmTemplate : kDeepSeekCoderTemplate;
}

ChatFormat resolve_chat_format(const std::string& name, const Tokenizer& tokenizer) {
  if (name != "auto") return chat_format_from_name(name);
  const std::string& jinja = tokenizer.settings().chat_template;
  if (jinja.empty())
    fail("chat_template: auto, but tokenizer_config.json has no chat_template (name one of: ", chat_format_names(), ")");
  if (auto format = recognise_chat_template(jinja)) return *format;
  fail("chat_template: auto, but the tokenizer's chat_template is not one dsalign renders (a general Jinja engine is not "
       "included); name one of the built-in formats: ", chat_format_names());
}

std::string end_of_turn_token(ChatFormat format, const std::string& eos_token) {
  return format == ChatFormat::deepseek_llm ? eos_token : "<|EOT|>";
}

RenderedChat render_chat(ChatFormat format, const std::vector<ChatMessage>& messages, const std::string& bos_token,
                         const std::string& eos_token, bool add_generation_prompt) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant")
      fail("message ", i, ": unknown role '", r, "' (expected system, user or assistant)");
  }
  RenderedChat out;
  std::string& t = out.text;
  t += bos_token;
  if (format == ChatFormat::deepseek_llm) {
    for (const auto& m : messages) {
      if (m.role == "user") {
        t += "User: " + m.content + "\n\n";
      } else if (m.role == "assistant") {
        t += "Assistant:";  // the generation prompt; what follows is generated
        size_t begin = t.size();
        t += " " + m.content + eos_token;
        out.assistant_spans.push_back({begin, t.size(), t.size()});
      } else {
        t += m.content + "\n\n";
      }
    }
    if (add_generation_prompt) t += "Assistant:";
  } else {
    bool has_system = false;
    for (const auto& m : messages) has_system |= m.role == "system";
    if (!has_system) t += kCoderDefaultSystem;
    for (const auto& m : messages) {
      if (m.role == "system") {
        t += m.content;
      } else if (m.role == "user") {
        t += "### Instruction:\n" + m.content + "\n";
      } else {
        t += "### Response:\n";  // the generation prompt
        size_t begin = t.size();
        t += m.content + "\n<|EOT|>";
        size_t end_of_turn = t.size();
        t += "\n";
        out.assistant_spans.push_back({begin, end_of_turn, t.size()});
      }
    }
    if (add_generation_prompt) t += "### Response:\n";
  }
  return out;
}

TokenizedChat tokenize_chat(const Tokenizer& tokenizer, ChatFormat format, const std::vector<ChatMessage>& messages,
                            bool add_generation_prompt, const ChatLossOptions& loss, EncodeScratch& scratch) {
  RenderedChat chat = render_chat(format, messages, tokenizer.settings().bos_token, tokenizer.settings().eos_token,
                                  add_generation_prompt);
  std::vector<std::pair<size_t, size_t>> spans;  // [begin, end) bytes that carry loss, in order
  for (size_t k = loss.skip_assistant_turns; k < chat.assistant_spans.size(); ++k) {
    const AssistantSpan& a = chat.assistant_spans[k];
    spans.emplace_back(a.begin, loss.span == ResponseSpan::rendered ? a.end : a.end_of_turn);
  }
  TokenizedChat out;
  Tokenizer::Offsets offsets;
  tokenizer.encode(chat.text, false, out.ids, scratch, &offsets);
  out.loss_mask.assign(out.ids.size(), loss.train_on_all ? 1 : 0);
  if (!loss.train_on_all) {
    size_t span = 0;
    for (size_t i = 0; i < out.ids.size(); ++i) {
      auto [begin, end] = offsets[i];
      while (span < spans.size() && spans[span].second <= begin) ++span;
      if (span < spans.size() && end > spans[span].first && begin < spans[span].second) out.loss_mask[i] = 1;
    }
  }
  return out;
}

}  // namespace dsalign
