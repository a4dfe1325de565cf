// Tokenizer throughput: single-thread encode MB/s and all-core batch encode MB/s over a corpus
// file (one document per line). bench/tokenizer.sh runs it beside the `tokenizers` library.
//
//   dsalign_bench_tokenizer --tokenizer assets/tokenizers/deepseek-llm --corpus corpus.txt

#include <chrono>
#include <iostream>
#include <thread>

#include "data/batch_encode.h"
#include "cli/args.h"
#include "util/error.h"
#include "util/files.h"

using namespace dsalign;
namespace po = dsalign::cli::po;

int main(int argc, char** argv) {
  try {
    std::string tokenizer_dir, corpus;
    int threads = 0;
    po::options_description options("dsalign_bench_tokenizer: encode throughput");
    options.add_options()
        ("tokenizer", po::value(&tokenizer_dir)->required(), "tokenizer directory")
        ("corpus", po::value(&corpus)->required(), "UTF-8 text, one document per line")
        ("threads", po::value(&threads)->default_value(0), "threads for the batch encoder (0: all)");
    po::variables_map vm;
    if (!cli::parse(cli::Args(argv + 1, argv + argc), "dsalign_bench_tokenizer --tokenizer <dir> --corpus <file> [--threads N]", options, {}, vm)) return 0;
    Tokenizer tokenizer = Tokenizer::load(tokenizer_dir);
    std::string text = read_text_file(corpus);
    std::vector<std::string_view> docs;
    for (size_t start = 0; start < text.size();) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      docs.push_back(std::string_view(text).substr(start, end - start));
      start = end + 1;
    }
    const double mb = static_cast<double>(text.size()) / 1e6;
    auto seconds_since = [](auto start) {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    // Single thread: one pass to warm the word cache (the library keeps one too), one timed.
    EncodeScratch scratch;
    std::vector<int32_t> ids;
    size_t tokens = 0;
    for (int pass = 0; pass < 2; ++pass) {
      tokens = 0;
      auto start = std::chrono::steady_clock::now();
      for (auto doc : docs) {
        ids.clear();
        tokenizer.encode(doc, false, ids, scratch);
        tokens += ids.size();
      }
      if (pass == 1) std::printf("dsalign single-thread: %.2f MB/s (%zu docs, %.1f MB, %zu tokens)\n", mb / seconds_since(start), docs.size(), mb, tokens);
    }
    int n = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
    auto start = std::chrono::steady_clock::now();
    auto batch = encode_batch(tokenizer, docs, false, n);
    std::printf("dsalign batch (%d threads): %.2f MB/s\n", n, mb / seconds_since(start));
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "dsalign_bench_tokenizer: error: " << first_line(e) << "\n";
    return 1;
  }
}
