// generate, export: the subcommands that use or ship a chat model.
#include <iostream>

#include "cli/args.h"
#include "cli/chat_model.h"
#include "model/checkpoint.h"
#include "model/export.h"
#include "model/generate.h"
#include "util/error.h"
#include "util/files.h"
#include "util/interrupt.h"

namespace dsalign::cli {

int generate_command(const Args& args) {
  po::options_description options("options");
  std::string model_dir, device = "cpu", dtype, chat_template = "auto";
  std::vector<std::string> prompts;
  int64_t max_new_tokens = 256;
  options.add_options()
      ("model", po::value(&model_dir)->required(), "a Hugging Face directory or a training checkpoint")
      ("prompt", po::value(&prompts)->required()->multitoken(), "user message(s); each gets its own response")
      ("max-new-tokens", po::value(&max_new_tokens)->default_value(max_new_tokens), "")
      ("device", po::value(&device)->default_value(device), "cpu | cuda[:N]")
      ("dtype", po::value(&dtype), "fp32 | bf16 (default: bf16 on CUDA, fp32 on CPU)")
      ("chat-template", po::value(&chat_template)->default_value(chat_template), "auto | deepseek-llm | deepseek-coder");
  po::positional_options_description positional;
  po::variables_map vm;
  if (!parse(args, "dsalign generate --model <dir> --prompt <text> [--prompt <text> ...] [options]\n\n"
                   "Greedy chat responses: each prompt is one user turn in the model's chat format; generation\n"
                   "stops at the end-of-turn token or max-new-tokens.",
             options, positional, vm))
    return 0;
  ChatModel m = load_chat_model(model_dir, device, dtype, chat_template);
  GenerationOptions g = chat_generation_options(m.tokenizer, m.format, max_new_tokens, GenerationOptions{}.batch_size);
  std::vector<Generation> out = generate_greedy(m.model, chat_prompt_ids(m.tokenizer, m.format, prompts), g);
  for (size_t i = 0; i < prompts.size(); ++i)
    std::cout << "### prompt: " << prompts[i] << "\n" << m.tokenizer.decode(out[i].tokens, true)
              << (out[i].terminated ? "" : " [... max-new-tokens reached]") << "\n";
  return 0;
}

int export_command(const Args& args) {
  po::options_description options("options");
  std::string source, out, dtype = "bf16", shard_size = "5GB", chat_template = "auto";
  bool overwrite = false;
  options.add_options()
      ("source", po::value(&source)->required(), "a run directory (its newest checkpoint), a checkpoints/step_N, or a Hugging Face directory")
      ("out", po::value(&out)->required(), "the Hugging Face directory to write")
      ("dtype", po::value(&dtype)->default_value(dtype), "bf16 | fp32 | fp16")
      ("max-shard-size", po::value(&shard_size)->default_value(shard_size), "safetensors shard size (5GB, 500MB, 2GiB, bytes)")
      ("chat-template", po::value(&chat_template)->default_value(chat_template), "auto (from the checkpoint) | deepseek-llm | deepseek-coder")
      ("overwrite", po::bool_switch(&overwrite), "replace an existing output directory");
  po::positional_options_description positional;
  positional.add("source", 1).add("out", 1);
  po::variables_map vm;
  if (!parse(args, "dsalign export <run|checkpoint|hf_dir> <out_dir> [--dtype bf16] [options]\n\n"
                   "Writes a chat checkpoint that transformers and vLLM load unchanged: config.json\n"
                   "(LlamaForCausalLM), safetensors shards (+ index when more than one), tokenizer.json,\n"
                   "tokenizer_config.json with the chat template, generation_config.json whose EOS is the\n"
                   "chat format's end-of-turn token.",
             options, positional, vm))
    return 0;
  ExportOptions o;
  o.dtype = parse_dtype(dtype);
  o.max_shard_bytes = parse_byte_size(shard_size);
  o.overwrite = overwrite;
  InterruptScope interrupts;  // SIGINT / SIGTERM stop between tensors (util/interrupt)
  // The output's place first: a bad path fails at once, not after reading the whole model.
  create_parent_directories(std::filesystem::absolute(out));
  std::filesystem::path from = export_model(source, out, chat_template, o);
  std::cout << "exported " << from.string() << " -> " << out << " (" << dtype_name(o.dtype) << ")\n";
  return 0;
}

}  // namespace dsalign::cli
