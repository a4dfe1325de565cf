// Peak memory of the device a model runs on: the CUDA caching allocator's peak on a GPU, the
// process's peak resident set on the CPU. For metrics.jsonl and the benchmarks.
#pragma once
#include <torch/torch.h>

namespace dsalign {

double peak_memory_bytes(const torch::Device& device);
void reset_peak_memory(const torch::Device& device);

}  // namespace dsalign
