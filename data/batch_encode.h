// Encoding many texts on all cores: dataset preprocessing. Each thread keeps its own scratch
// (regex state, BPE word cache); the tokenizer itself is shared read-only.
#pragma once
#include <functional>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"

namespace dsalign {

// ids[i] = tokenizer.encode(texts[i], add_special_tokens). threads <= 0: all hardware threads.
// `progress(done)` is called now and then from one thread (may be empty).
std::vector<std::vector<int32_t>> encode_batch(const Tokenizer& tokenizer, const std::vector<std::string_view>& texts,
                                               bool add_special_tokens, int threads,
                                               const std::function<void(size_t)>& progress = {});

}  // namespace dsalign
