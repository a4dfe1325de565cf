#include "model/rope.h"

#include <cmath>

namespace dsalign {

torch::Tensor rope_inv_freq(const ModelConfig& c, int64_t seq_len) {
  const int64_t dim = c.head_dim;
  const RopeScaling& s = c.rope_scaling;
  double base = c.rope_theta;
  if (s.type == RopeScalingType::dynamic && seq_len > c.max_position_embeddings) {
    double ratio = s.factor * static_cast<double>(seq_len) / static_cast<double>(c.max_position_embeddings) - (s.factor - 1.0);
    base = base * std::pow(ratio, static_cast<double>(dim) / static_cast<double>(dim - 2));
  }
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  // Same op order as transformers (fp32): 1 / base ** (arange(0, dim, 2) / dim).
  torch::Tensor exponent = torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(dim);
  torch::Tensor inv_freq = 1.0 / torch::pow(torch::scalar_tensor(base, f32), exponent);
  switch (s.type) {
    case RopeScalingType::none:
    case RopeScalingType::dynamic:
      return inv_freq;
    case RopeScalingType::linear:
      return inv_freq / s.factor;
    case RopeScalingType::llama3: {
      double old_len = static_cast<double>(s.original_max_position_embeddings);
      double low_freq_wavelen = old_len / s.low_freq_factor;
      double high_freq_wavelen = old_len / s.high_freq_factor;
      torch::Tensor wavelen = 2.0 * M_PI / inv_freq;
      torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
      torch::Tensor smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      torch::Tensor smoothed = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
      torch::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
      return torch::where(medium, smoothed, scaled);
    }
  }
  return inv_freq;
}

RopeTables rope_tables(const ModelConfig& c, const torch::Tensor& position_ids, torch::ScalarType dtype) {
  int64_t max_position = position_ids.numel() ? position_ids.max().item<int64_t>() : 0;
  torch::Tensor inv_freq = rope_inv_freq(c, max_position + 1).to(position_ids.device());
  // freqs[b, t, i] = position[b, t] * inv_freq[i]  (fp32, as transformers' matmul of the two)
  torch::Tensor freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq.view({1, 1, -1});
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

}  // namespace dsalign
