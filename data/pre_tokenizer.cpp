#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/pre_tokenizer.h"

#include <pcre2.h>

#include "util/error.h"

namespace dsalign {

namespace {

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct Span {
  size_t begin, end;
  bool is_match;
};

Behavior parse_behavior(const std::string& name, const std::string& where) {
  if (name == "Removed") return Behavior::removed;
  if (name == "Isolated") return Behavior::isolated;
  if (name == "MergedWithPrevious") return Behavior::merged_with_previous;
  if (name == "MergedWithNext") return Behavior::merged_with_next;
  if (name == "Contiguous") return Behavior::contiguous;
  fail(where, ": unknown Split behavior '", name, "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

// The `tokenizers` library's SplitDelimiterBehavior applied to (span, is_match) runs.
std::vector<Span> apply_behavior(const std::vector<Span>& spans, Behavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::isolated:
      return spans;
    case Behavior::removed:
      for (const auto& s : spans)
        if (!s.is_match) out.push_back(s);
      return out;
    case Behavior::merged_with_previous:
      for (const auto& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) out.back().end = s.end;
        else out.push_back({s.begin, s.end, false});
        previous_match = s.is_match;
      }
      return out;
    case Behavior::merged_with_next:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) out.back().begin = it->begin;
        else out.push_back({it->begin, it->end, false});
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      return out;
    case Behavior::contiguous:
      for (const auto& s : spans) {
        if (s.is_match == previous_match && !out.empty()) out.back().end = s.end;
        else out.push_back({s.begin, s.end, false});
        previous_match = s.is_match;
      }
      return out;
  }
  return out;
}

class Regex {
 public:
  Regex(const std::string& pattern, bool literal, const std::string& where) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    uint32_t options = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_MULTILINE);
    std::string translated = literal ? pattern : translate_pattern(pattern);
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), options, &error, &offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      fail(where, ": cannot compile pattern ", nlohmann::json(pattern).dump(), " at offset ", offset, ": ",
           reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Like the `tokenizers` library's find_matches: spans covering all of `text`.
  void spans(std::string_view text, std::vector<Span>& out, RegexScratch& scratch) const {
    out.clear();
    if (text.empty()) {
      out.push_back({0, 0, false});
      return;
    }
    auto* md = static_cast<pcre2_match_data*>(scratch.match_data());
    auto* mc = static_cast<pcre2_match_context*>(scratch.match_context());
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t prev = 0, start = 0;
    while (start <= text.size()) {
      int rc = pcre2_match(code_, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, mc);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        fail("pre-tokenizer regex failed: ", reinterpret_cast<const char*>(message));
      }
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t s = ov[0], e = ov[1];
      if (prev != s) out.push_back({prev, s, false});
      out.push_back({s, e, true});
      prev = e;
      if (e == s) {  // empty match: step over one character
        if (e >= text.size()) break;
        size_t step = 1;
        while (e + step < text.size() && (static_cast<uint8_t>(text[e + step]) & 0xC0) == 0x80) ++step;
        start = e + step;
      } else {
        start = e;
      }
    }
    if (prev != text.size()) out.push_back({prev, text.size(), false});
  }

 private:
  pcre2_code* code_ = nullptr;
};

}  // namespace

// One pre-tokenizer of the chain.
struct PreTokenizer::Step {
  enum class Kind { split, byte_level } kind = Kind::split;
  std::unique_ptr<Regex> regex;  // split pattern; for byte_level, the GPT-2 regex when use_regex
  Behavior behavior = Behavior::isolated;
  bool invert = false;
  bool add_prefix_space = false;
};

namespace {

// GPT-2's pattern, which ByteLevel uses when use_regex is true.
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string get_string(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) fail(where, ": '", key, "' must be a string");
  return j[key].get<std::string>();
}

bool get_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) fail(where, ": '", key, "' must be true or false");
  return j[key].get<bool>();
}

void add_steps(const nlohmann::json& config, const std::string& where, std::vector<std::unique_ptr<PreTokenizer::Step>>& steps) {
  if (config.is_null()) return;
  if (!config.is_object()) fail(where, ": expected an object");
  const std::string type = get_string(config, "type", where);
  const std::string here = where + " (" + type + ")";
  auto step = std::make_unique<PreTokenizer::Step>();
  if (type == "Sequence") {
    if (!config.contains("pretokenizers") || !config["pretokenizers"].is_array())
      fail(here, ": 'pretokenizers' must be a list");
    size_t i = 0;
    for (const auto& child : config["pretokenizers"]) add_steps(child, where + ".pretokenizers[" + std::to_string(i++) + "]", steps);
    return;
  } else if (type == "Split") {
    if (!config.contains("pattern") || !config["pattern"].is_object()) fail(here, ": 'pattern' must be {\"Regex\": ...} or {\"String\": ...}");
    const auto& pattern = config["pattern"];
    if (pattern.contains("Regex")) step->regex = std::make_unique<Regex>(get_string(pattern, "Regex", here), false, here);
    else if (pattern.contains("String")) step->regex = std::make_unique<Regex>(get_string(pattern, "String", here), true, here);
    else fail(here, ": 'pattern' must be {\"Regex\": ...} or {\"String\": ...}");
    step->behavior = parse_behavior(get_string(config, "behavior", here), here);
    step->invert = get_bool(config, "invert", false, here);
  } else if (type == "Digits") {
    // Rust's char::is_numeric is the Unicode N categories.
    bool individual = get_bool(config, "individual_digits", false, here);
    step->regex = std::make_unique<Regex>("\\p{N}", false, here);
    step->behavior = individual ? Behavior::isolated : Behavior::contiguous;
  } else if (type == "ByteLevel") {
    step->kind = PreTokenizer::Step::Kind::byte_level;
    step->add_prefix_space = get_bool(config, "add_prefix_space", true, here);
    if (get_bool(config, "use_regex", true, here)) {
      // The `tokenizers` library prepends the space and then splits with the regex; pieces here are
      // slices of the input, so that combination is refused rather than approximated.
      if (step->add_prefix_space) fail(here, ": add_prefix_space together with use_regex is not supported");
      step->regex = std::make_unique<Regex>(kGpt2Pattern, false, here);
    }
  } else {
    fail(here, ": pre-tokenizer type '", type, "' is not supported (supported: Sequence, Split, Digits, ByteLevel)");
  }
  steps.push_back(std::move(step));
}

}  // namespace

RegexScratch::RegexScratch() {
  match_data_ = pcre2_match_data_create(4, nullptr);
  jit_stack_ = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  match_context_ = pcre2_match_context_create(nullptr);
  pcre2_jit_stack_assign(static_cast<pcre2_match_context*>(match_context_), nullptr, jit_stack_);
}

RegexScratch::~RegexScratch() {
  pcre2_match_data_free(static_cast<pcre2_match_data*>(match_data_));
  pcre2_match_context_free(static_cast<pcre2_match_context*>(match_context_));
  pcre2_jit_stack_free(static_cast<pcre2_jit_stack*>(jit_stack_));
}

PreTokenizer::PreTokenizer(const nlohmann::json& config, const std::string& where) { add_steps(config, where, steps_); }
PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;

bool PreTokenizer::byte_level() const { return !steps_.empty() && steps_.back()->kind == Step::Kind::byte_level; }

void PreTokenizer::run(std::string_view text, std::vector<Piece>& out, RegexScratch& scratch) const {
  std::vector<Piece> current{{text, false}}, next;
  std::vector<Span> spans;
  for (const auto& step : steps_) {
    next.clear();
    for (const Piece& piece : current) {
      if (step->kind == Step::Kind::byte_level) {
        // add_prefix_space applies to every piece that does not already start with a space.
        bool prefix = piece.prefix_space || (step->add_prefix_space && (piece.text.empty() || piece.text[0] != ' '));
        if (!step->regex) {
          next.push_back({piece.text, prefix});
          continue;
        }
      }
      step->regex->spans(piece.text, spans, scratch);
      if (step->invert)
        for (auto& s : spans) s.is_match = !s.is_match;
      for (const Span& s : apply_behavior(spans, step->behavior))
        if (s.end > s.begin) next.push_back({piece.text.substr(s.begin, s.end - s.begin), piece.prefix_space && s.begin == 0});
    }
    current.swap(next);
  }
  out.insert(out.end(), current.begin(), current.end());
}

std::string translate_pattern(const std::string& p) {
  std::string out;
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      ++i;
      if (e == 's') out += class_depth ? "\\s\\x{85}" : "[\\s\\x{85}]";
      else if (e == 'S') out += class_depth ? "\\S" : "[^\\s\\x{85}]";
      else if (e == 'h') out += class_depth ? "0-9a-fA-F" : "[0-9a-fA-F]";
      else if (e == 'H') out += class_depth ? "\\H" : "[^0-9a-fA-F]";
      else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[') ++class_depth;
    else if (c == ']' && class_depth > 0) --class_depth;
    out += c;
  }
  return out;
}

}  // namespace dsalign
