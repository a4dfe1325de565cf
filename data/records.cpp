#include "data/records.h"

#include <nlohmann/json.hpp>

#include "data/utf8.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace {

using nlohmann::json;

// A record problem: the reason (for counting) and the detail (for the message).
struct BadRecord {
  std::string reason, detail;
};

[[noreturn]] void bad(const std::string& reason, const std::string& detail) { throw BadRecord{reason, detail}; }

std::vector<ChatMessage> parse_messages(const json& v, const char* field) {
  if (!v.is_array() || v.empty()) bad("bad messages", std::string("'") + field + "' must be a non-empty list of {role, content}");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const json& m = v[i];
    std::string where = std::string(field) + "[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m.contains("content")) bad("missing field", where + " needs 'role' and 'content'");
    if (!m["role"].is_string()) bad("bad messages", where + ".role must be a string");
    if (!m["content"].is_string()) bad("bad messages", where + ".content must be a string");
    std::string role = m["role"], content = m["content"];
    if (role != "system" && role != "user" && role != "assistant")
      bad("unknown role", where + " has unknown role '" + role + "' (expected system, user or assistant)");
    if (content.find_first_not_of(" \t\r\n") == std::string::npos) bad("empty content", where + " (" + role + ") has empty content");
    out.push_back({role, content});
  }
  return out;
}

// A string (one turn of `role`) or a list of messages.
std::vector<ChatMessage> turn_or_messages(const json& record, const char* field, const char* role) {
  if (!record.contains(field)) bad("missing field", std::string("missing '") + field + "'");
  const json& v = record[field];
  if (v.is_string()) {
    std::string s = v;
    if (s.find_first_not_of(" \t\r\n") == std::string::npos) bad("empty content", std::string("'") + field + "' is empty");
    return {{role, s}};
  }
  return parse_messages(v, field);
}

std::string domain_of(const json& record) {
  if (!record.contains("domain") || record["domain"].is_null()) return "";
  if (!record["domain"].is_string()) bad("bad domain", "'domain' must be a string");
  return record["domain"];
}

template <typename Record, typename Parse>
std::vector<Record> read_jsonl(const std::filesystem::path& path, OnError on_error, ReadReport& report, Parse parse) {
  if (!is_existing_file(path)) fail(path.string(), ": data file not found");
  std::string text = read_text_file(path);
  std::vector<Record> out;
  size_t line_number = 0, records_seen = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are allowed
    ++records_seen;
    try {
      if (auto invalid = utf8::first_invalid(line)) bad("invalid UTF-8", "invalid UTF-8 at byte " + std::to_string(*invalid) + " of the line");
      json record;
      try {
        record = json::parse(line);
      } catch (const json::exception& e) {
        bad("malformed JSON", std::string("malformed JSON: ") + first_line(e));
      }
      if (!record.is_object()) bad("malformed JSON", "expected a JSON object");
      Record r = parse(record);
      r.line = line_number;
      out.push_back(std::move(r));
      report.records += 1;
    } catch (const BadRecord& b) {
      if (on_error == OnError::fail)
        fail(path.string(), ":", line_number, ": ", b.detail, " (set data.on_error: skip to skip such records)");
      report.skipped[b.reason] += 1;
    }
  }
  if (records_seen == 0)
    fail(path.string(), ": holds no records (expected JSONL: one JSON object per line)");
  return out;
}

}  // namespace

size_t ReadReport::skipped_total() const {
  size_t n = 0;
  for (const auto& [reason, count] : skipped) n += count;
  return n;
}

std::vector<SftRecord> read_sft_jsonl(const std::filesystem::path& path, OnError on_error, ReadReport& report) {
  return read_jsonl<SftRecord>(path, on_error, report, [](const json& record) {
    SftRecord r;
    if (record.contains("messages")) {
      r.messages = parse_messages(record["messages"], "messages");
    } else if (record.contains("prompt") || record.contains("response")) {
      r.messages = turn_or_messages(record, "prompt", "user");
      for (const auto& m : r.messages) r.prompt_assistant_turns += m.role == "assistant";
      auto response = turn_or_messages(record, "response", "assistant");
      r.messages.insert(r.messages.end(), response.begin(), response.end());
    } else if (record.contains("text")) {
      if (!record["text"].is_string() || record["text"].get<std::string>().empty())
        bad("bad text", "'text' must be a non-empty string");
      r.text = record["text"].get<std::string>();
      r.domain = domain_of(record);
      return r;
    } else {
      bad("missing field", "expected 'messages', 'prompt' and 'response', or 'text'");
    }
    bool has_assistant = false;
    for (const auto& m : r.messages) has_assistant |= m.role == "assistant";
    if (!has_assistant) bad("no assistant turn", "no assistant message: nothing to learn");
    r.domain = domain_of(record);
    return r;
  });
}

std::vector<PreferenceRecord> read_preference_jsonl(const std::filesystem::path& path, OnError on_error, ReadReport& report) {
  return read_jsonl<PreferenceRecord>(path, on_error, report, [](const json& record) {
    PreferenceRecord r;
    r.prompt = turn_or_messages(record, "prompt", "user");
    if (r.prompt.back().role != "user") bad("bad messages", "'prompt' must end with a user message");
    r.chosen = turn_or_messages(record, "chosen", "assistant");
    r.rejected = turn_or_messages(record, "rejected", "assistant");
    for (const auto* side : {&r.chosen, &r.rejected})
      for (const auto& m : *side)
        if (m.role != "assistant") bad("bad messages", "'chosen' and 'rejected' must hold assistant messages");
    r.domain = domain_of(record);
    return r;
  });
}

}  // namespace dsalign
