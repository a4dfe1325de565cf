// Large host tensors for data on its way to or from a GPU, or kept from one checkpoint to the
// next (issue 17). One of 2 MiB or more is aligned to 2 MiB and advised to use huge pages, so
// first touch costs one fault per 2 MiB rather than per 4 KiB. Pinned (page-locked with
// cudaHostRegister) when asked and a GPU is present: the GPU then copies to and from it
// asynchronously at the bus's speed. LibTorch's own pinned allocator rounds every size up to a
// power of two (a 1.6 GB embedding would hold 2 GiB), hence the registration here.
#pragma once
#include <torch/torch.h>

#include <optional>

namespace dsalign {

// An uninitialised contiguous CPU tensor. With `pinned_for` (a GPU), page-locked for copies with
// it when the driver accepts the range; otherwise (no GPU, a refusal) ordinary memory, which every
// copy still accepts (an asynchronous copy to it is then synchronous).
torch::Tensor host_buffer(at::IntArrayRef sizes, torch::ScalarType dtype, std::optional<torch::Device> pinned_for);

// Whether `t` is page-locked memory a GPU can reach asynchronously (always false without CUDA).
bool is_pinned_host(const torch::Tensor& t);

}  // namespace dsalign
