// The element types the fused kernels take (no ATen in kernel code).
#pragma once

namespace dsalign::kernels {

enum class DType { f32, bf16 };

}  // namespace dsalign::kernels
