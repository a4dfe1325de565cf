// eval, generate, export: the subcommands that use or ship a chat model.
#include <iostream>

#include "cli/args.h"
#include "eval/repetition_eval.h"
#include "model/checkpoint.h"
#include "model/export.h"
#include "model/generate.h"
#include "util/error.h"

namespace dsalign::cli {
namespace {

// A chat model for inference: weights in `dtype` on `device`, its tokenizer and chat format.
struct ChatModel {
  CausalLM model{nullptr};
  Tokenizer tokenizer;
  ChatFormat format;
};

ChatModel load_chat_model(const std::string& dir, const std::string& device, const std::string& dtype,
                          const std::string& chat_template) {
  DecoderOptions o;
  o.device = parse_device(device);
  o.param_dtype = o.compute_dtype = parse_dtype(dtype.empty() ? (o.device.is_cuda() ? "bf16" : "fp32") : dtype);
  Tokenizer tokenizer = Tokenizer::load(dir);
  ChatFormat format = resolve_chat_format(chat_template, tokenizer);
  return {load_model(dir, o), std::move(tokenizer), format};
}

}  // namespace

int eval_command(const Args& args) {
  po::options_description options("options");
  std::string task, model_dir, device = "cpu", dtype, chat_template = "auto", out = "repetition.jsonl";
  RepetitionEvalConfig c;
  std::string prompts;
  options.add_options()
      ("task", po::value(&task)->required(), "repetition")
      ("model", po::value(&model_dir)->required(), "a Hugging Face directory or a training checkpoint (with tokenizer files)")
      ("prompts", po::value(&prompts)->required(), "JSONL, one {\"prompt\": ...} per line (e.g. assets/prompts/repetition_heldout.jsonl)")
      ("out", po::value(&out)->default_value(out), "the report (JSONL: a summary line, then repetitive cases)")
      ("max-new-tokens", po::value(&c.max_new_tokens)->default_value(c.max_new_tokens), "a response that reaches this without ending is a candidate")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size), "prompts generated together")
      ("limit", po::value(&c.max_prompts)->default_value(0), "use the first N prompts (0 = all)")
      ("cases", po::value(&c.report_cases)->default_value(c.report_cases), "repetitive responses written out in full")
      ("max-unit", po::value(&c.rule.max_unit)->default_value(c.rule.max_unit), "longest repeating unit, in tokens")
      ("min-repeats", po::value(&c.rule.min_repeats)->default_value(c.rule.min_repeats), "the unit must repeat this often at the end")
      ("min-tail-fraction", po::value(&c.rule.min_tail_fraction)->default_value(c.rule.min_tail_fraction), "share of the response the periodic tail must cover")
      ("device", po::value(&device)->default_value(device), "cpu | cuda[:N]")
      ("dtype", po::value(&dtype), "fp32 | bf16 (default: bf16 on CUDA, fp32 on CPU)")
      ("chat-template", po::value(&chat_template)->default_value(chat_template), "auto | deepseek-llm | deepseek-coder");
  po::positional_options_description positional;
  positional.add("task", 1);
  po::variables_map vm;
  if (!parse(args, "dsalign eval repetition --model <dir> --prompts <file.jsonl> [options]\n\n"
                   "The repetition ratio (DeepSeek LLM paper, section 4): each prompt is rendered as one user turn in\n"
                   "the chat format and answered greedily; a response is repetitive when it reaches max-new-tokens\n"
                   "without the end-of-turn token and its tail repeats one unit (<= max-unit tokens) at least\n"
                   "min-repeats times, covering >= min-tail-fraction of the response.",
             options, positional, vm))
    return 0;
  if (task != "repetition") fail("unknown eval task '", task, "' (expected: repetition)");
  c.prompts = prompts;
  validate(c, "eval repetition");
  std::vector<EvalPrompt> eval_prompts = read_eval_prompts(c.prompts, c.max_prompts);
  ChatModel m = load_chat_model(model_dir, device, dtype, chat_template);
  RepetitionResult r = measure_repetition(m.model, m.tokenizer, m.format, eval_prompts, c, out, model_dir);
  std::cout << "repetition ratio " << r.ratio << ": " << r.repetitive << " of " << r.prompts << " responses repeat, "
            << r.terminated << " ended with the end-of-turn token (" << r.seconds << " s)\nreport: " << out << "\n";
  return 0;
}

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
  std::filesystem::path from = export_model(source, out, chat_template, o);
  std::cout << "exported " << from.string() << " -> " << out << " (" << dtype_name(o.dtype) << ")\n";
  return 0;
}

}  // namespace dsalign::cli
