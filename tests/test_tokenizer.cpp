// The tokenizer against the `tokenizers` library: llama.cpp's vectors (shipped in assets/), and
// the oracle corpus and pre-tokenizer variants made by tests/oracles/make_tokenizer_cases.py.
#include <gtest/gtest.h>

#include <fstream>

#include "data/tokenizer.h"
#include "data/utf8.h"
#include "util/error.h"
#include "util/files.h"

using namespace dsalign;
using nlohmann::json;

namespace {

fs::path assets() { return fs::path(DSALIGN_SOURCE_DIR) / "assets" / "tokenizers"; }
fs::path oracle() { return fs::path(DSALIGN_TOKENIZER_ORACLE_DIR); }

std::vector<json> read_jsonl(const fs::path& path) {
  std::vector<json> rows;
  std::string text = read_text_file(path);
  size_t start = 0;
  while (start < text.size()) {  // split on \n only: texts may hold U+2028 and U+0085
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) rows.push_back(json::parse(text.substr(start, end - start)));
    start = end + 1;
  }
  return rows;
}

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

// Every corpus text: same ids, same decode (with and without special tokens), and the
// incremental decoder's output equals the full decode without ever splitting a character.
void expect_corpus_parity(const Tokenizer& tokenizer, const fs::path& jsonl) {
  auto rows = read_jsonl(jsonl);
  ASSERT_GT(rows.size(), 100u) << jsonl;
  EncodeScratch scratch;
  int failures = 0;
  for (const auto& row : rows) {
    const std::string text = row["text"];
    std::vector<int32_t> ids;
    tokenizer.encode(text, false, ids, scratch);
    if (ids != ids_of(row["ids"]) && ++failures <= 5) ADD_FAILURE() << jsonl.filename() << ": ids differ for " << json(text).dump().substr(0, 200);
    if (!row.contains("decoded")) continue;
    auto expected = ids_of(row["ids"]);
    EXPECT_EQ(tokenizer.decode(expected, false), row["decoded"].get<std::string>()) << json(text).dump().substr(0, 200);
    EXPECT_EQ(tokenizer.decode(expected, true), row["decoded_skip"].get<std::string>()) << json(text).dump().substr(0, 200);
    IncrementalDecoder incremental(tokenizer, false);
    std::string streamed;
    for (int32_t id : expected) {
      std::string part = incremental.push(id);
      EXPECT_FALSE(utf8::first_invalid(part).has_value());
      streamed += part;
    }
    streamed += incremental.finish();
    EXPECT_EQ(streamed, row["decoded"].get<std::string>());
  }
  EXPECT_EQ(failures, 0) << jsonl;
}

// llama.cpp's vector files: inputs separated by "\n__ggml_vocab_test__\n", one line of ids per
// input. (The copies here have CRLF line ends; the ids are for the LF text.)
void expect_llama_cpp_vectors(const std::string& name) {
  auto unix_lines = [](std::string s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i)
      if (!(s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) out += s[i];
    return out;
  };
  std::string inp = unix_lines(read_text_file(assets() / "vectors" / ("ggml-vocab-" + name + ".gguf.inp")));
  std::string out = unix_lines(read_text_file(assets() / "vectors" / ("ggml-vocab-" + name + ".gguf.out")));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t start = 0;;) {
    size_t end = inp.find(sep, start);
    if (end == std::string::npos) break;
    inputs.push_back(inp.substr(start, end - start));
    start = end + sep.size();
  }
  std::vector<std::vector<int32_t>> outputs;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream numbers(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (numbers >> id) ids.push_back(id);
    outputs.push_back(ids);
  }
  ASSERT_EQ(inputs.size(), outputs.size());
  ASSERT_GT(inputs.size(), 40u);
  Tokenizer tokenizer = Tokenizer::load(assets() / name);
  for (size_t i = 0; i < inputs.size(); ++i)
    EXPECT_EQ(tokenizer.encode(inputs[i]), outputs[i]) << name << " vector " << i << ": " << json(inputs[i]).dump();
}

}  // namespace

// A moved tokenizer still encodes added tokens (it once kept a pointer into its old self).
TEST(Tokenizer, StaysValidWhenMoved) {
  Tokenizer original = Tokenizer::load(fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-coder");
  std::vector<int32_t> expected = original.encode("<|EOT|>hello world", false);
  std::vector<Tokenizer> holder;
  holder.push_back(std::move(original));
  Tokenizer moved = std::move(holder.back());
  holder.clear();
  EXPECT_EQ(moved.encode("<|EOT|>hello world", false), expected);
}

TEST(Tokenizer, LlamaCppVectorsDeepSeekLlm) { expect_llama_cpp_vectors("deepseek-llm"); }
TEST(Tokenizer, LlamaCppVectorsDeepSeekCoder) { expect_llama_cpp_vectors("deepseek-coder"); }

TEST(Tokenizer, OracleCorpusDeepSeekLlm) {
  expect_corpus_parity(Tokenizer::load(assets() / "deepseek-llm"), oracle() / "deepseek-llm.jsonl");
}
TEST(Tokenizer, OracleCorpusDeepSeekCoder) {
  expect_corpus_parity(Tokenizer::load(assets() / "deepseek-coder"), oracle() / "deepseek-coder.jsonl");
}
TEST(Tokenizer, OracleCorpusDeepSeekV3) {
  expect_corpus_parity(Tokenizer::load(oracle() / "deepseek-v3"), oracle() / "deepseek-v3.jsonl");
}

TEST(Tokenizer, PreTokenizerVariants) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(oracle() / "variants")) {
    if (!entry.is_directory()) continue;
    SCOPED_TRACE(entry.path().filename().string());
    expect_corpus_parity(Tokenizer::load(entry.path()), entry.path().string() + ".jsonl");
    ++checked;
  }
  EXPECT_GE(checked, 14);
}

TEST(Tokenizer, SpecialTokensAndBos) {
  Tokenizer llm = Tokenizer::load(assets() / "deepseek-llm");
  EXPECT_EQ(llm.bos_id(), 100000);
  EXPECT_EQ(llm.eos_id(), 100001);
  EXPECT_TRUE(llm.settings().add_bos_token);
  auto plain = llm.encode("Hello", false);
  auto with_bos = llm.encode("Hello", true);
  ASSERT_EQ(with_bos.size(), plain.size() + 1);
  EXPECT_EQ(with_bos[0], 100000);
  // A special token written in the text is that token.
  auto ids = llm.encode("a<｜end▁of▁sentence｜>b");
  EXPECT_NE(std::find(ids.begin(), ids.end(), 100001), ids.end());
  EXPECT_EQ(llm.decode(ids, true), "ab");
}

TEST(Tokenizer, InvalidUtf8IsAnErrorNamingTheByte) {
  Tokenizer coder = Tokenizer::load(assets() / "deepseek-coder");
  for (std::string bad : {std::string("ok \xff"), std::string("\xc3"), std::string("ab\xed\xa0\x80"), std::string("\xf4\x90\x80\x80")}) {
    try {
      coder.encode(bad);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not valid UTF-8 (byte"), std::string::npos) << e.what();
    }
  }
}

TEST(Tokenizer, LossyDecodingMatchesRust) {
  // Rust's from_utf8_lossy: one U+FFFD per maximal invalid subpart.
  EXPECT_EQ(utf8::lossy("a\xF0\x9F\x98z"), "a\xEF\xBF\xBDz");            // truncated 4-byte sequence
  EXPECT_EQ(utf8::lossy("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");         // two bad bytes
  EXPECT_EQ(utf8::lossy("\xE0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");         // bad second byte
  EXPECT_EQ(utf8::complete_prefix("ab\xE4\xB8"), 2u);                     // hold an incomplete char
  EXPECT_EQ(utf8::complete_prefix("ab\xFF"), 3u);                         // invalid: emit (as U+FFFD)
}

TEST(Tokenizer, BadTokenizerFilesAreOneLineErrors) {
  json base = json::parse(read_text_file(assets() / "deepseek-coder" / "tokenizer.json"));
  auto error_of = [](const json& j) {
    try {
      Tokenizer t(j, "tokenizer.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  json j = base;
  j["normalizer"] = {{"type", "NFKC"}};
  EXPECT_NE(error_of(j).find("normalizer type 'NFKC' is not supported"), std::string::npos) << error_of(j);
  j = base;
  j["normalizer"]["normalizers"] = json::array({{{"type", "Lowercase"}}});
  EXPECT_NE(error_of(j).find("'Lowercase'"), std::string::npos);
  j = base;
  j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Whitespace"}};
  EXPECT_NE(error_of(j).find("pre-tokenizer type 'Whitespace' is not supported"), std::string::npos) << error_of(j);
  j = base;
  j["pre_tokenizer"]["pretokenizers"][1]["pattern"]["Regex"] = "(unclosed";
  EXPECT_NE(error_of(j).find("cannot compile pattern"), std::string::npos) << error_of(j);
  j = base;
  j["pre_tokenizer"]["pretokenizers"][1]["behavior"] = "Sideways";
  EXPECT_NE(error_of(j).find("unknown Split behavior 'Sideways'"), std::string::npos);
  j = base;
  j["model"]["merges"][5] = "nosuchtoken xyz";
  EXPECT_NE(error_of(j).find("merge 5"), std::string::npos) << error_of(j);
  j = base;
  j["decoder"] = {{"type", "WordPiece"}};
  EXPECT_NE(error_of(j).find("decoder type"), std::string::npos);
  j = base;
  j["model"]["type"] = "Unigram";
  EXPECT_NE(error_of(j).find("expected BPE"), std::string::npos);
  j = base;
  j["added_tokens"][0]["lstrip"] = "yes";
  EXPECT_NE(error_of(j).find("'lstrip' must be true or false, got \"yes\""), std::string::npos) << error_of(j);
}

TEST(Tokenizer, CliTokenize) {
  if (std::string(DSALIGN_CLI).empty()) GTEST_SKIP() << "a core-only (sanitizer) build has no dsalign executable";
  fs::path input = fs::temp_directory_path() / ("dsalign_tokenize_" + std::to_string(::getpid()) + ".txt");
  std::string text = "def f(x):\n    return x * 2  # 二倍\n";
  std::ofstream(input) << text;
  std::string command = std::string(DSALIGN_CLI) + " tokenize --tokenizer " + (assets() / "deepseek-coder").string() +
                        " --bos " + input.string();
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  EXPECT_EQ(::pclose(pipe), 0);
  std::vector<int32_t> ids;
  std::istringstream numbers(out);
  int32_t id;
  while (numbers >> id) ids.push_back(id);
  EXPECT_EQ(ids, Tokenizer::load(assets() / "deepseek-coder").encode(text, true));
  EXPECT_EQ(ids.front(), 32013);
  fs::remove(input);
}

// Fuzzing findings, kept as regression inputs in fuzz/corpus/: a number too large for any type
// (nlohmann's out_of_range, not a parse_error), an added token whose flag is a string (nlohmann's
// type_error, which escaped as a crash) and a tokenizer_config.json whose fields have the wrong
// types are one-line errors naming the file.
TEST(Tokenizer, FuzzFindingsAreOneLineErrors) {
  const fs::path dir = fs::temp_directory_path() / ("dsalign_tokenizer_fuzz_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << read_text_file(fs::path(DSALIGN_SOURCE_DIR) / "fuzz/corpus/tokenizer_json/regression-number-overflow");
  std::string e;
  try {
    Tokenizer::load(dir);
  } catch (const Error& error) {
    e = error.what();
  }
  EXPECT_NE(e.find("tokenizer.json: invalid JSON"), std::string::npos) << e;
  std::ofstream(dir / "tokenizer.json", std::ios::trunc)
      << read_text_file(fs::path(DSALIGN_SOURCE_DIR) / "fuzz/corpus/tokenizer_json/regression-added-token-flag-type");
  e.clear();
  try {
    Tokenizer::load(dir);
  } catch (const Error& error) {
    e = error.what();
  }
  EXPECT_NE(e.find("must be true or false"), std::string::npos) << e;
  EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 0) << e;
  std::ofstream(dir / "tokenizer_config.json") << R"({"tokenizer_class": 5, "chat_template": [{"name": 1, "template": 2}]})";
  const TokenizerSettings settings = read_tokenizer_config(dir / "tokenizer_config.json");
  EXPECT_FALSE(settings.add_bos_token);
  EXPECT_EQ(settings.chat_template, "");
  fs::remove_all(dir);
}
