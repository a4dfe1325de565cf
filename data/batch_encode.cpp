#include "data/batch_encode.h"

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

namespace dsalign {

void parallel_for(size_t n, int threads, const std::function<void(size_t, EncodeScratch&)>& fn,
                  const std::function<void(size_t)>& progress) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), std::max<size_t>(n, 1)));
  std::atomic<size_t> next{0}, done{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  constexpr size_t kChunk = 64;  // items taken at a time: few atomics, good balance
  auto worker = [&](bool reports) {
    EncodeScratch scratch;
    try {
      for (size_t begin = next.fetch_add(kChunk); begin < n; begin = next.fetch_add(kChunk)) {
        size_t end = std::min(begin + kChunk, n);
        for (size_t i = begin; i < end; ++i) fn(i, scratch);
        size_t finished = done.fetch_add(end - begin) + (end - begin);
        if (reports && progress) progress(finished);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next = n;  // stop the others early
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker, false);
  worker(true);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  if (progress) progress(n);
}

std::vector<std::vector<int32_t>> encode_batch(const Tokenizer& tokenizer, const std::vector<std::string_view>& texts,
                                               bool add_special_tokens, int threads,
                                               const std::function<void(size_t)>& progress) {
  std::vector<std::vector<int32_t>> out(texts.size());
  parallel_for(
      texts.size(), threads,
      [&](size_t i, EncodeScratch& scratch) { tokenizer.encode(texts[i], add_special_tokens, out[i], scratch); },
      progress);
  return out;
}

}  // namespace dsalign
