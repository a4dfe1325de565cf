// SFT preprocessing throughput: examples/s and tokens/s from JSONL to tokenized examples, cold
// (tokenizing on all cores) and warm (token cache), on a generated JSONL file.
//
//   dsalign_bench_preprocess --tokenizer assets/tokenizers/deepseek-llm --examples 200000

#include <chrono>
#include <fstream>
#include <iostream>
#include <random>

#include "data/sft_data.h"
#include "cli/args.h"
#include "util/error.h"
#include "util/files.h"

using namespace dsalign;
namespace po = dsalign::cli::po;

namespace {

// Multi-turn records in English, Chinese and code, lengths varying, with domain tags.
void write_jsonl(const fs::path& path, int64_t n) {
  std::mt19937_64 rng(0);
  const char* words[] = {"the", "model", "learns", "to", "answer", "questions", "about", "data", "and", "code",
                         "训练", "模型", "数据", "def", "return", "for", "i", "in", "range(10):", "print(i)"};
  const char* domains[] = {"general", "math", "code", "safety"};
  auto sentence = [&](int words_n) {
    std::string s;
    for (int w = 0; w < words_n; ++w) s += std::string(w ? " " : "") + words[rng() % 20];
    return s;
  };
  std::ofstream out(path);
  for (int64_t i = 0; i < n; ++i) {
    nlohmann::json messages = nlohmann::json::array();
    int turns = 1 + static_cast<int>(rng() % 3);
    for (int t = 0; t < turns; ++t) {
      messages.push_back({{"role", "user"}, {"content", sentence(5 + static_cast<int>(rng() % 30))}});
      messages.push_back({{"role", "assistant"}, {"content", sentence(10 + static_cast<int>(rng() % 120))}});
    }
    out << nlohmann::json{{"messages", messages}, {"domain", domains[rng() % 4]}}.dump() << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string tokenizer_dir;
    int64_t examples = 0, threads = 0;
    po::options_description options("dsalign_bench_preprocess: JSONL -> tokens throughput");
    options.add_options()
        ("tokenizer", po::value(&tokenizer_dir)->required(), "tokenizer directory")
        ("examples", po::value(&examples)->default_value(100000), "records to generate")
        ("threads", po::value(&threads)->default_value(0), "threads (0: all cores)");
    po::variables_map vm;
    if (!cli::parse(cli::Args(argv + 1, argv + argc), "dsalign_bench_preprocess --tokenizer <dir> [--examples N] [--threads N]", options, {}, vm)) return 0;
    fs::path dir = fs::temp_directory_path() / ("dsalign_bench_preprocess_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    write_jsonl(dir / "data.jsonl", examples);
    Tokenizer tokenizer = Tokenizer::load(tokenizer_dir);
    DataConfig config;
    config.sources = {{"data.jsonl", 1.0}};
    config.max_seq_len = 4096;
    config.threads = threads;
    config.cache_dir = (dir / "cache").string();
    ChatFormat format = resolve_chat_format("auto", tokenizer);
    for (const char* pass : {"cold (tokenize)", "warm (token cache)"}) {
      auto start = std::chrono::steady_clock::now();
      SftData data = prepare_sft_data(config, tokenizer, format, dir);
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      double tokens = 0;
      for (const auto& e : data.train) tokens += static_cast<double>(e.ids.size());
      std::printf("%s: %zu examples, %.0f tokens in %.2f s: %.0f examples/s, %.0f tokens/s\n", pass, data.train.size(),
                  tokens, seconds, static_cast<double>(data.train.size()) / seconds, tokens / seconds);
      if (pass[0] == 'w') {
        std::vector<const TokenizedExample*> order;
        for (size_t i : epoch_order(data, config, 0)) order.push_back(&data.train[i]);
        auto rows = pack_examples(order, config.max_seq_len, true, 0);
        std::printf("packing into rows of %lld: %zu rows, efficiency %.3f\n", static_cast<long long>(config.max_seq_len),
                    rows.size(), packing_efficiency(rows));
      }
    }
    fs::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "dsalign_bench_preprocess: error: " << first_line(e) << "\n";
    return 1;
  }
}
