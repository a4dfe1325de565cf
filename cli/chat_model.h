// A model for inference as the eval and generate commands load it: weights in `dtype` on
// `device` (default bf16 on CUDA, fp32 on CPU), its tokenizer and chat format.
#pragma once
#include <string>

#include "cli/args.h"
#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"

namespace dsalign::cli {

struct ChatModel {
  CausalLM model{nullptr};
  Tokenizer tokenizer;
  ChatFormat format;
};

inline ChatModel load_chat_model(const std::string& dir, const std::string& device, const std::string& dtype,
                                 const std::string& chat_template) {
  DecoderOptions o;
  o.device = parse_device(device);
  o.param_dtype = o.compute_dtype = parse_dtype(dtype.empty() ? (o.device.is_cuda() ? "bf16" : "fp32") : dtype);
  Tokenizer tokenizer = Tokenizer::load(dir);
  ChatFormat format = resolve_chat_format(chat_template, tokenizer);
  return {load_model(dir, o, frozen_model_reads()), std::move(tokenizer), format};
}

}  // namespace dsalign::cli
