// Chat formats against transformers' apply_chat_template (oracle: tests/oracles/make_chat_cases.py),
// template recognition, and the assistant-only loss mask.
#include <gtest/gtest.h>

#include "data/chat_template.h"
#include "util/error.h"
#include "util/files.h"

using namespace dsalign;
using nlohmann::json;

namespace {

fs::path assets() { return fs::path(DSALIGN_SOURCE_DIR) / "assets" / "tokenizers"; }

std::vector<ChatMessage> messages_of(const json& j) {
  std::vector<ChatMessage> out;
  for (const auto& m : j) out.push_back({m["role"], m["content"]});
  return out;
}

void expect_chat_parity(const std::string& name) {
  Tokenizer tokenizer = Tokenizer::load(assets() / name);
  ChatFormat format = resolve_chat_format("auto", tokenizer);
  EXPECT_STREQ(chat_format_name(format), name.c_str());
  std::string all = read_text_file(fs::path(DSALIGN_CHAT_ORACLE_DIR) / ("chat_" + name + ".jsonl"));
  int rows = 0;
  EncodeScratch scratch;
  for (size_t start = 0; start < all.size();) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    json row = json::parse(all.substr(start, end - start));
    start = end + 1;
    auto messages = messages_of(row["messages"]);
    bool generation = row["add_generation_prompt"];
    RenderedChat chat = render_chat(format, messages, tokenizer.settings().bos_token, tokenizer.settings().eos_token, generation);
    EXPECT_EQ(chat.text, row["text"].get<std::string>()) << name << " row " << rows;
    TokenizedChat tokens = tokenize_chat(tokenizer, format, messages, generation, ChatLossOptions{}, scratch);
    EXPECT_EQ(tokens.ids, row["ids"].get<std::vector<int32_t>>()) << name << " row " << rows;
    ++rows;
  }
  EXPECT_GE(rows, 60);
}

// The tokens that carry loss, decoded, one string per contiguous run.
std::vector<std::string> loss_runs(const Tokenizer& tokenizer, const TokenizedChat& chat) {
  std::vector<std::string> runs;
  std::vector<int32_t> run;
  for (size_t i = 0; i <= chat.ids.size(); ++i) {
    if (i < chat.ids.size() && chat.loss_mask[i]) {
      run.push_back(chat.ids[i]);
    } else if (!run.empty()) {
      runs.push_back(tokenizer.decode(run));
      run.clear();
    }
  }
  return runs;
}

}  // namespace

TEST(Chat, DeepSeekLlmMatchesTransformers) { expect_chat_parity("deepseek-llm"); }
TEST(Chat, DeepSeekCoderMatchesTransformers) { expect_chat_parity("deepseek-coder"); }

// The default span is TRL's: everything the template renders after the generation prompt. For
// deepseek-coder that ends with the newline after <|EOT|>; end_of_turn stops at <|EOT|>.
TEST(Chat, LossMaskCoversWhatTheTemplateRendersAfterTheGenerationPrompt) {
  EncodeScratch scratch;
  std::vector<ChatMessage> conversation = {
      {"system", "Be brief."}, {"user", "Hi there"}, {"assistant", "Hello! How can I help?"},
      {"user", "2+2?"},        {"assistant", "4"}};
  Tokenizer llm = Tokenizer::load(assets() / "deepseek-llm");
  for (ResponseSpan span : {ResponseSpan::rendered, ResponseSpan::end_of_turn}) {
    auto runs = loss_runs(llm, tokenize_chat(llm, ChatFormat::deepseek_llm, conversation, false, {false, span, 0}, scratch));
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[0], " Hello! How can I help?<｜end▁of▁sentence｜>");
    EXPECT_EQ(runs[1], " 4<｜end▁of▁sentence｜>");
  }

  Tokenizer coder = Tokenizer::load(assets() / "deepseek-coder");
  auto runs = loss_runs(coder, tokenize_chat(coder, ChatFormat::deepseek_coder, conversation, false, ChatLossOptions{}, scratch));
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0], "Hello! How can I help?\n<|EOT|>\n");
  EXPECT_EQ(runs[1], "4\n<|EOT|>\n");
  runs = loss_runs(coder, tokenize_chat(coder, ChatFormat::deepseek_coder, conversation, false,
                                        {false, ResponseSpan::end_of_turn, 0}, scratch));
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0], "Hello! How can I help?\n<|EOT|>");
  EXPECT_EQ(runs[1], "4\n<|EOT|>");

  // skip_assistant_turns: only the last turn is scored (a preference pair's response).
  runs = loss_runs(coder, tokenize_chat(coder, ChatFormat::deepseek_coder, conversation, false,
                                        {false, ResponseSpan::rendered, 1}, scratch));
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0], "4\n<|EOT|>\n");

  TokenizedChat all = tokenize_chat(coder, ChatFormat::deepseek_coder, conversation, false, {true}, scratch);
  EXPECT_EQ(std::count(all.loss_mask.begin(), all.loss_mask.end(), 1), static_cast<long>(all.ids.size()));
  EXPECT_THROW(response_span_from_name("eot"), Error);
}

TEST(Chat, UnknownTemplatesAndRolesAreErrors) {
  Tokenizer llm = Tokenizer::load(assets() / "deepseek-llm");
  try {
    chat_format_from_name("chatml");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("deepseek-llm, deepseek-coder"), std::string::npos);
  }
  EXPECT_FALSE(recognise_chat_template("{{ messages }}").has_value());
  try {
    render_chat(ChatFormat::deepseek_llm, {{"tool", "x"}}, "", "", false);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown role 'tool'"), std::string::npos);
  }
}
