// Work over many texts on all cores: dataset preprocessing. Each thread keeps its own
// EncodeScratch (regex state, BPE word cache); the tokenizer itself is shared read-only.
#pragma once
#include <functional>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"

namespace dsalign {

// Calls fn(i, scratch) for i in [0, n) on `threads` threads (<= 0: all cores). `progress(done)`
// is called now and then from one thread (may be empty). The first exception is rethrown.
void parallel_for(size_t n, int threads, const std::function<void(size_t, EncodeScratch&)>& fn,
                  const std::function<void(size_t)>& progress = {});

// ids[i] = tokenizer.encode(texts[i], add_special_tokens), in parallel.
std::vector<std::vector<int32_t>> encode_batch(const Tokenizer& tokenizer, const std::vector<std::string_view>& texts,
                                               bool add_special_tokens, int threads,
                                               const std::function<void(size_t)>& progress = {});

}  // namespace dsalign
