#include "eval/eval_data.h"

#include <fstream>
#include <sstream>

#include "data/utf8.h"
#include "util/error.h"

namespace dsalign {
namespace {

std::string string_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) fail(where, ": expected a string \"", key, "\"");
  std::string s = j[key].get<std::string>();
  if (auto bad = utf8::first_invalid(s)) fail(where, ": \"", key, "\" is not valid UTF-8 at byte ", *bad);
  return s;
}

}  // namespace

void for_each_jsonl_object(const std::filesystem::path& path, int64_t limit,
                     const std::function<void(const nlohmann::json&, const std::string&)>& record) {
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open the file");
  int64_t line_no = 0, taken = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(where, ": not valid JSON (", first_line(e), ")");
    }
    if (!j.is_object()) fail(where, ": expected a JSON object");
    record(j, where);
    if (limit > 0 && ++taken == limit) break;
  }
}

std::vector<LoglikRequest> read_loglik_requests(const std::filesystem::path& path, int64_t limit) {
  std::vector<LoglikRequest> out;
  for_each_jsonl_object(path, limit, [&](const nlohmann::json& j, const std::string& where) {
    LoglikRequest r{string_field(j, "context", where), string_field(j, "continuation", where)};
    if (r.continuation.empty()) fail(where, ": \"continuation\" is empty (nothing to score)");
    out.push_back(std::move(r));
  });
  if (out.empty()) fail(path.string(), ": no requests");
  return out;
}

std::vector<McQuestion> read_mc_questions(const std::filesystem::path& path, int64_t limit) {
  std::vector<McQuestion> out;
  for_each_jsonl_object(path, limit, [&](const nlohmann::json& j, const std::string& where) {
    McQuestion q;
    if (j.contains("query")) q.query = string_field(j, "query", where);
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].size() < 2)
      fail(where, ": expected \"choices\", an array of at least two strings");
    for (const auto& c : j["choices"]) {
      if (!c.is_string()) fail(where, ": every choice must be a string");
      q.choices.push_back(c.get<std::string>());
      if (q.choices.back().empty()) fail(where, ": choice ", q.choices.size() - 1, " is empty");
    }
    if (!j.contains("gold") || !j["gold"].is_number_integer()) fail(where, ": expected an integer \"gold\"");
    q.gold = j["gold"].get<int64_t>();
    if (q.gold < 0 || q.gold >= static_cast<int64_t>(q.choices.size()))
      fail(where, ": \"gold\" ", q.gold, " is not the index of a choice (0..", q.choices.size() - 1, ")");
    if (j.contains("contexts")) {
      if (!j["contexts"].is_array() || j["contexts"].size() != q.choices.size())
        fail(where, ": \"contexts\" must be an array of strings, one per choice");
      for (const auto& c : j["contexts"]) {
        if (!c.is_string()) fail(where, ": every context must be a string");
        q.contexts.push_back(c.get<std::string>());
      }
      q.continuation = string_field(j, "continuation", where);
      if (q.continuation.empty()) fail(where, ": \"continuation\" is empty");
    } else if (!j.contains("query")) {
      fail(where, ": expected a string \"query\" (or \"contexts\" and \"continuation\")");
    }
    if (j.contains("target_delimiter")) q.target_delimiter = string_field(j, "target_delimiter", where);
    if (j.contains("unconditional_context")) q.unconditional_context = string_field(j, "unconditional_context", where);
    out.push_back(std::move(q));
  });
  if (out.empty()) fail(path.string(), ": no questions");
  return out;
}

std::vector<GenProblem> read_gen_problems(const std::filesystem::path& path, bool code_tests, int64_t limit) {
  std::vector<GenProblem> out;
  for_each_jsonl_object(path, limit, [&](const nlohmann::json& j, const std::string& where) {
    GenProblem p;
    const char* id_key = j.contains("id") ? "id" : j.contains("task_id") ? "task_id" : nullptr;
    if (id_key && j[id_key].is_string()) p.id = string_field(j, id_key, where);
    else if (id_key && j[id_key].is_number_integer()) p.id = std::to_string(j[id_key].get<int64_t>());
    else if (id_key) fail(where, ": \"", id_key, "\" must be a string or an integer");
    else p.id = where.substr(where.rfind(':') + 1);
    p.prompt = string_field(j, "prompt", where);
    if (p.prompt.empty()) fail(where, ": \"prompt\" is empty");
    if (code_tests) {
      p.test = string_field(j, "test", where);
      p.entry_point = string_field(j, "entry_point", where);
      if (p.entry_point.empty()) fail(where, ": \"entry_point\" is empty");
    } else {
      p.answer = string_field(j, "answer", where);
    }
    out.push_back(std::move(p));
  });
  if (out.empty()) fail(path.string(), ": no problems");
  return out;
}

std::vector<std::string> read_documents(const std::filesystem::path& path, int64_t limit) {
  std::vector<std::string> out;
  if (path.extension() == ".txt") {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path.string(), ": cannot open the file");
    std::stringstream text;
    text << in.rdbuf();
    if (auto bad = utf8::first_invalid(text.str())) fail(path.string(), ": not valid UTF-8 at byte ", *bad);
    out.push_back(text.str());
  } else {
    for_each_jsonl_object(path, limit, [&](const nlohmann::json& j, const std::string& where) {
      out.push_back(string_field(j, "text", where));
    });
  }
  if (out.empty() || (out.size() == 1 && out[0].empty())) fail(path.string(), ": no text");
  return out;
}

}  // namespace dsalign
