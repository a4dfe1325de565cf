// JSONL training records. SFT: {"messages": [{"role", "content"}, ...]} or {"prompt", "response"},
// or {"text"} (plain text for continued pretraining: no chat template, every token trained);
// preference: {"prompt", "chosen", "rejected"}, each a string or a list of messages. Either may
// carry "domain" (general, math, code, safety, ...). Every problem names file:line.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/chat_template.h"

namespace dsalign {

enum class OnError { fail, skip };

struct SftRecord {
  std::vector<ChatMessage> messages;
  // prompt/response records: the assistant turns inside the prompt, which carry no loss (only the
  // response does, as in TRL's completion-only loss).
  size_t prompt_assistant_turns = 0;
  std::string text;    // a plain-text record (then messages is empty)
  std::string domain;  // "" when the record has none
  size_t line = 0;
};

struct PreferenceRecord {
  std::vector<ChatMessage> prompt;    // ends with a user turn
  std::vector<ChatMessage> chosen;    // assistant turn(s)
  std::vector<ChatMessage> rejected;
  std::string domain;
  size_t line = 0;
};

// What reading skipped, by reason (only with OnError::skip; with fail the first problem throws).
struct ReadReport {
  size_t records = 0;
  std::map<std::string, size_t> skipped;
  size_t skipped_total() const;
};

std::vector<SftRecord> read_sft_jsonl(const std::filesystem::path& path, OnError on_error, ReadReport& report);
std::vector<PreferenceRecord> read_preference_jsonl(const std::filesystem::path& path, OnError on_error, ReadReport& report);

}  // namespace dsalign
