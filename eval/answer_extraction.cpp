#include "eval/answer_extraction.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <utility>
#include <vector>

namespace dsalign {
namespace {

std::string strip(const std::string& s) {
  const char* space = " \t\n\r\f\v";
  const size_t first = s.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

// Python's re.findall's first or last match; for a pattern with groups, the first non-empty
// group of the match, as lm-eval's RegexFilter takes it.
std::optional<std::string> regex_match(const std::string& text, const std::regex& pattern, bool last) {
  std::optional<std::string> found;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), pattern); it != std::sregex_iterator(); ++it) {
    const std::smatch& m = *it;
    std::string value;
    for (size_t g = 1; g < m.size(); ++g)
      if (m[g].matched && m[g].length() > 0) {
        value = m[g].str();
        break;
      }
    found = value;
    if (!last) break;
  }
  return found;
}

}  // namespace

std::string gsm8k_strict_answer(const std::string& response) {
  static const std::regex answer_is("[Tt]he answer is (-?[0-9.,]+).");
  static const std::regex hashes("#### (-?[0-9.,]+)");
  if (auto m = regex_match(response, answer_is, false)) return strip(*m);
  if (auto m = regex_match(response, hashes, false)) return strip(*m);
  return kInvalidAnswer;
}

std::string gsm8k_flexible_answer(const std::string& response) {
  static const std::regex number("(-?[$0-9.,]{2,})|(-?[0-9]+)");
  if (auto m = regex_match(response, number, true)) return strip(*m);
  return kInvalidAnswer;
}

std::string gsm8k_normalise(const std::string& answer) {
  std::string s = answer;
  s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  s.erase(std::remove(s.begin(), s.end(), '$'), s.end());
  if (const size_t hashes = s.rfind("#### "); hashes != std::string::npos) s.erase(0, hashes + 5);
  // Python's `\.$` also matches a period before a final newline.
  if (s.size() >= 2 && s.compare(s.size() - 2, 2, ".\n") == 0) s.erase(s.size() - 2, 1);
  else if (!s.empty() && s.back() == '.') s.pop_back();
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string minerva_final_answer(const std::string& response) {
  // The harness appends the closing sentence first, so an answer line cut before it still counts.
  static const std::regex line("Final Answer: The final answer is(.*?). I hope it is correct.");
  const std::string text = response + "I hope it is correct.";
  std::smatch m;
  if (std::regex_search(text, m, line)) return strip(m[1].str());
  return kInvalidMathAnswer;
}

std::optional<std::string> last_boxed_content(const std::string& text) {
  if (const size_t spaced = text.rfind("\\boxed "); spaced != std::string::npos) {
    // "\boxed 5$": up to the next '$', as the MATH reference code takes it.
    std::string rest = text.substr(spaced + 7);
    return rest.substr(0, rest.find('$'));
  }
  size_t at = text.rfind("\\boxed");
  size_t name = 6;
  if (at == std::string::npos) {
    at = text.rfind("\\fbox");
    name = 5;
    if (at == std::string::npos) return std::nullopt;
  }
  int open = 0;
  for (size_t i = at; i < text.size(); ++i) {
    if (text[i] == '{') ++open;
    if (text[i] == '}' && --open == 0) {
      if (text[at + name] != '{') return std::nullopt;  // "\boxedx}" is no box
      return text.substr(at + name + 1, i - at - name - 1);
    }
  }
  return std::nullopt;
}

namespace {

bool word_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '_' || u >= 0x80;  // Python's \w; any non-ASCII byte counts as a letter
}

// re.sub(r"(?<!\\)\bWORD\b", "", s): WORD standing alone, not right after a backslash.
void remove_word(std::string& s, const std::string& word) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const bool starts = s.compare(i, word.size(), word) == 0 && (i == 0 || (!word_char(s[i - 1]) && s[i - 1] != '\\')) &&
                        (i + word.size() == s.size() || !word_char(s[i + word.size()]));
    if (starts) {
      i += word.size();
    } else {
      out += s[i++];
    }
  }
  s = std::move(out);
}

// Removes `word` outside LaTeX command names (the spans matching \\[a-zA-Z]+), so "ft" leaves
// "\left" alone.
void remove_outside_commands(std::string& s, const std::string& word) {
  std::string out, text;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '\\' && i + 1 < s.size() && std::isalpha(static_cast<unsigned char>(s[i + 1]))) {
      replace_all(text, word, "");
      out += text;
      text.clear();
      size_t j = i + 1;
      while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
      out.append(s, i, j - i);
      i = j;
    } else {
      text += s[i++];
    }
  }
  replace_all(text, word, "");
  s = out + text;
}

bool alphabetic(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalpha(c); });
}

}  // namespace

std::string normalise_math_answer(std::string a) {
  static const std::vector<std::pair<std::string, std::string>> substitutions = {
      {"an ", ""}, {"a ", ""}, {".$", "$"}, {"\\$", ""}, {"\\ ", ""}, {" ", ""},
      {"mbox", "text"}, {",\\text{and}", ","}, {"\\text{and}", ","}, {"\\text{m}", "\\text{}"}};
  static const std::vector<std::string> removed = {
      "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units", "\\ldots", "sue",
      "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals", "edges",
      "students", "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2",
      "\\text{}^3", "\\text{\n}", "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", "\"",
      "\\dots"};
  static const std::regex dollars("(.*?)(\\$)(.*?)(\\$)(.*)");
  static const std::regex text("(\\\\text\\{)(.*?)(\\})");
  static const std::regex textbf("(\\\\textbf\\{)(.*?)(\\})");
  static const std::regex overline("(\\\\overline\\{)(.*?)(\\})");
  static const std::regex boxed("(\\\\boxed\\{)(.*)(\\})");
  static const std::regex frac("(frac)([^{])(.)");
  static const std::regex indexed_root("(sqrt)(\\[[^\\]]*\\])(\\w)");
  static const std::regex root("(sqrt)(?!\\[)([^{])");
  static const std::regex thousands("-?[0-9]{1,3}(,[0-9]{3})+");
  if (const size_t eq = a.rfind('='); eq != std::string::npos) a.erase(0, eq + 1);
  // Unit words go first, while whitespace still delimits them.
  for (const std::string& expr : removed)
    if (alphabetic(expr)) remove_word(a, expr);
  for (const auto& [before, after] : substitutions) replace_all(a, before, after);
  for (const std::string& expr : removed) {
    if (alphabetic(expr)) remove_outside_commands(a, expr);
    else replace_all(a, expr, "");
  }
  a = std::regex_replace(a, dollars, "$$$3$$");
  a = std::regex_replace(a, text, "$2");
  a = std::regex_replace(a, textbf, "$2");
  a = std::regex_replace(a, overline, "$2");
  a = std::regex_replace(a, boxed, "$2");
  a = std::regex_replace(a, frac, "frac{$2}{$3}");
  a = std::regex_replace(a, indexed_root, "$1$2{$3}");
  a = std::regex_replace(a, root, "sqrt{$2}");
  a.erase(std::remove(a.begin(), a.end(), '$'), a.end());
  if (std::regex_match(a, thousands)) a.erase(std::remove(a.begin(), a.end(), ','), a.end());
  return a;
}

}  // namespace dsalign
