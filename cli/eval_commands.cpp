// dsalign eval <task>: repetition (chat generation), loglik, mc and bpb (scored by log-likelihood
// with lm-evaluation-harness's rules); gen and suite are in eval_gen_command.cpp and eval_suite_command.cpp.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/chat_model.h"
#include "cli/commands.h"
#include "cli/eval_flags.h"
#include "eval/repetition_eval.h"
#include "eval/scored_tasks.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign::cli {
namespace {

int eval_repetition(const Args& args) {
  po::options_description options("options");
  std::string task, model_dir, device = "cpu", dtype, chat_template = "auto", out = "repetition.jsonl";
  RepetitionEvalConfig c;
  std::string prompts;
  options.add_options()
      ("task", po::value(&task)->required(), "repetition")
      ("model", po::value(&model_dir)->required(), "a Hugging Face directory or a training checkpoint (with tokenizer files)")
      ("prompts", po::value(&prompts)->required(), "JSONL, one {\"prompt\": ...} or {\"messages\": [...]} per line (e.g. assets/prompts/repetition_heldout.jsonl)")
      ("out", po::value(&out)->default_value(out), "the report (JSONL: a summary line, then repetitive cases)")
      ("max-new-tokens", po::value(&c.max_new_tokens)->default_value(c.max_new_tokens), "a response that reaches this without ending is a candidate")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size), "prompts generated together")
      ("limit", po::value(&c.max_prompts)->default_value(0), "use the first N prompts (0 = all)")
      ("cases", po::value(&c.report_cases)->default_value(c.report_cases), "repetitive responses written out in full")
      ("max-unit", po::value(&c.rule.max_unit)->default_value(c.rule.max_unit), "longest repeating unit, in tokens")
      ("min-repeats", po::value(&c.rule.min_repeats)->default_value(c.rule.min_repeats), "the unit must repeat this often at the end")
      ("min-tail-fraction", po::value(&c.rule.min_tail_fraction)->default_value(c.rule.min_tail_fraction), "share of the response the periodic tail must cover")
      ("loop-ngram", po::value(&c.rule.loop_ngram)->default_value(c.rule.loop_ngram), "loop rule: n-gram length, in tokens")
      ("loop-min-count", po::value(&c.rule.loop_min_count)->default_value(c.rule.loop_min_count), "loop rule: occurrences that make an n-gram a repeat")
      ("loop-min-coverage", po::value(&c.rule.loop_min_coverage)->default_value(c.rule.loop_min_coverage), "loop rule: share of the response's second half repeats must cover")
      ("device", po::value(&device)->default_value(device), "cpu | cuda[:N]")
      ("dtype", po::value(&dtype), "fp32 | bf16 (default: bf16 on CUDA, fp32 on CPU)")
      ("chat-template", po::value(&chat_template)->default_value(chat_template), "auto | deepseek-llm | deepseek-coder");
  po::positional_options_description positional;
  positional.add("task", 1);
  po::variables_map vm;
  if (!parse(args, "dsalign eval repetition --model <dir> --prompts <file.jsonl> [options]\n\n"
                   "The repetition ratio (DeepSeek LLM paper, section 4): each prompt (a user turn, or a conversation\n"
                   "ending with one) is rendered in the chat format and answered greedily; a response is repetitive\n"
                   "when it reaches max-new-tokens without the end-of-turn token and either its tail repeats one unit\n"
                   "(<= max-unit tokens) exactly, at least min-repeats times, covering >= min-tail-fraction of the\n"
                   "response, or it loops with variations: in its second half, n-grams of loop-ngram tokens that\n"
                   "occur >= loop-min-count times there cover >= loop-min-coverage of it.",
             options, positional, vm))
    return 0;
  c.prompts = prompts;
  validate(c, "eval repetition");
  check_output_path(out, "--out", OutputKind::file);
  std::vector<EvalPrompt> eval_prompts = read_eval_prompts(c.prompts, c.max_prompts);
  ChatModel m = load_chat_model(model_dir, device, dtype, chat_template);
  RepetitionResult r = measure_repetition(m.model, m.tokenizer, m.format, eval_prompts, c, out, model_dir);
  std::cout << "repetition ratio " << r.ratio << ": " << r.repetitive << " of " << r.prompts << " responses repeat, "
            << r.terminated << " ended with the end-of-turn token (" << r.seconds << " s)\nreport: " << out << "\n";
  return 0;
}

int eval_loglik(const Args& args) {
  po::options_description options("options");
  std::string task, requests_path;
  ScoredFlags flags;
  options.add_options()("task", po::value(&task)->required(), "loglik")
      ("requests", po::value(&requests_path)->required(), "JSONL, one {\"context\": str, \"continuation\": str} per line");
  flags.add_to(options, "loglik.jsonl");
  po::positional_options_description positional;
  positional.add("task", 1);
  po::variables_map vm;
  if (!parse(args, "dsalign eval loglik --model <dir> --requests <file.jsonl> [options]\n\n"
                   "The log-likelihood of each continuation after its context, with lm-evaluation-harness's\n"
                   "tokenisation (trailing context spaces move to the continuation; the pair is encoded as one\n"
                   "string and split at the context's length; an empty context is the BOS token). Writes\n"
                   "{\"loglik\", \"is_greedy\", \"tokens\"} per request, in input order.",
             options, positional, vm))
    return 0;
  flags.validate();
  const std::vector<LoglikRequest> requests = read_loglik_requests(requests_path, flags.limit);
  ChatModel m = load_chat_model(flags.model_dir, flags.device, flags.dtype, "auto");
  std::vector<TokenizedRequest> tokenized;
  for (const LoglikRequest& r : requests) tokenized.push_back(tokenize_request(m.tokenizer, r));
  const std::vector<LoglikResult> results = score_with_progress(m.model, tokenized, flags.scoring, "loglik");
  std::vector<nlohmann::json> lines;
  double total = 0;
  int64_t greedy = 0;
  for (const LoglikResult& r : results) {
    lines.push_back({{"loglik", r.loglik}, {"is_greedy", r.is_greedy}, {"tokens", r.tokens}});
    total += r.loglik;
    greedy += r.is_greedy;
  }
  write_report(flags.out, lines);
  std::printf("requests %zu  mean loglik %.6f  greedy %lld\nreport: %s\n", results.size(),
              total / static_cast<double>(results.size()), static_cast<long long>(greedy), flags.out.c_str());
  return 0;
}

int eval_mc(const Args& args) {
  po::options_description options("options");
  std::string task, data;
  bool unconditional = false;
  ScoredFlags flags;
  options.add_options()("task", po::value(&task)->required(), "mc")
      ("data", po::value(&data)->required(), "JSONL, one {\"query\", \"choices\": [...], \"gold\"} per line")
      ("unconditional", po::bool_switch(&unconditional),
       "also score each choice after the question's \"unconditional_context\" (default \"\") for acc_mutual_info");
  flags.add_to(options, "mc.jsonl");
  po::positional_options_description positional;
  positional.add("task", 1);
  po::variables_map vm;
  if (!parse(args, "dsalign eval mc --model <dir> --data <file.jsonl> [--unconditional] [options]\n\n"
                   "Multiple choice by log-likelihood, as lm-evaluation-harness scores it: each choice is the\n"
                   "continuation target_delimiter + choice (default \" \") of the query; acc takes the largest\n"
                   "log-likelihood, acc_norm divides it by the choice's length in characters, acc_bytes by its\n"
                   "UTF-8 bytes, acc_mutual_info subtracts the log-likelihood after the unconditional context.",
             options, positional, vm))
    return 0;
  flags.validate();
  const std::vector<McQuestion> questions = read_mc_questions(data, flags.limit);
  ChatModel m = load_chat_model(flags.model_dir, flags.device, flags.dtype, "auto");
  const McReport report = run_multiple_choice(m.model, m.tokenizer, questions, unconditional, flags.scoring);
  nlohmann::json summary = {{"task", "mc"},
                            {"data", data},
                            {"questions", questions.size()},
                            {"acc", report.acc.mean},
                            {"acc_stderr", report.acc.stderr_},
                            {"acc_norm", report.acc_norm.mean},
                            {"acc_norm_stderr", report.acc_norm.stderr_},
                            {"acc_bytes", report.acc_bytes.mean},
                            {"acc_bytes_stderr", report.acc_bytes.stderr_}};
  if (unconditional) {
    summary["acc_mutual_info"] = report.acc_mutual_info.mean;
    summary["acc_mutual_info_stderr"] = report.acc_mutual_info.stderr_;
  }
  std::vector<nlohmann::json> lines = {summary};
  for (const McResult& r : report.questions) {
    nlohmann::json line = {{"lls", r.lls}, {"pred", r.scores.pred}, {"acc", r.scores.acc},
                           {"acc_norm", r.scores.acc_norm}, {"acc_bytes", r.scores.acc_bytes}};
    if (unconditional) {
      line["unconditional_lls"] = r.unconditional_lls;
      line["acc_mutual_info"] = *r.scores.acc_mutual_info;
    }
    lines.push_back(line);
  }
  write_report(flags.out, lines);
  std::printf("| metric | value | stderr |\n| --- | ---: | ---: |\n");
  auto row = [](const char* name, const MeanStderr& m) { std::printf("| %s | %.4f | %.4f |\n", name, m.mean, m.stderr_); };
  row("acc", report.acc);
  row("acc_norm", report.acc_norm);
  row("acc_bytes", report.acc_bytes);
  if (unconditional) row("acc_mutual_info", report.acc_mutual_info);
  std::printf("%zu questions; report: %s\n", questions.size(), flags.out.c_str());
  return 0;
}

int eval_bpb(const Args& args) {
  po::options_description options("options");
  std::string task, text;
  ScoredFlags flags;
  options.add_options()("task", po::value(&task)->required(), "bpb")
      ("text", po::value(&text)->required(), "JSONL, one {\"text\": str} document per line, or a .txt file (one document)");
  flags.add_to(options, "bpb.jsonl");
  po::positional_options_description positional;
  positional.add("task", 1);
  po::variables_map vm;
  if (!parse(args, "dsalign eval bpb --model <dir> --text <file.jsonl|file.txt> [options]\n\n"
                   "Language modelling as lm-evaluation-harness's rolling log-likelihood: each document is\n"
                   "encoded whole and cut into disjoint windows of the model's length (the first conditioned on\n"
                   "BOS); bits_per_byte = -sum loglik / sum UTF-8 bytes / ln 2, byte_perplexity =\n"
                   "exp(-sum loglik / bytes), word_perplexity = exp(-sum loglik / words).",
             options, positional, vm))
    return 0;
  flags.validate();
  const std::vector<std::string> documents = read_documents(text, flags.limit);
  ChatModel m = load_chat_model(flags.model_dir, flags.device, flags.dtype, "auto");
  const BpbReport report = run_bits_per_byte(m.model, m.tokenizer, documents, flags.scoring);
  const PerplexityTotals& t = report.totals;
  std::vector<nlohmann::json> lines = {{{"task", "bpb"},
                                        {"text", text},
                                        {"documents", documents.size()},
                                        {"bits_per_byte", t.bits_per_byte()},
                                        {"byte_perplexity", t.byte_perplexity()},
                                        {"word_perplexity", t.word_perplexity()},
                                        {"loglik", t.loglik},
                                        {"bytes", t.bytes},
                                        {"words", t.words}}};
  for (const BpbDocument& d : report.documents)
    lines.push_back({{"loglik", d.loglik}, {"bytes", d.bytes}, {"words", d.words}, {"tokens", d.tokens}, {"windows", d.windows}});
  write_report(flags.out, lines);
  std::printf("| metric | value |\n| --- | ---: |\n| bits_per_byte | %.6f |\n| byte_perplexity | %.6f |\n"
              "| word_perplexity | %.6f |\n%zu documents, %lld bytes; report: %s\n",
              t.bits_per_byte(), t.byte_perplexity(), t.word_perplexity(), documents.size(),
              static_cast<long long>(t.bytes), flags.out.c_str());
  return 0;
}

}  // namespace

int eval_command(const Args& args) {
  const std::string task = args.empty() ? "" : args.front();
  if (task == "repetition") return eval_repetition(args);
  if (task == "loglik") return eval_loglik(args);
  if (task == "mc") return eval_mc(args);
  if (task == "bpb") return eval_bpb(args);
  if (task == "gen") return eval_gen_command(args);
  if (task == "suite") return eval_suite_command(args);
  if (task == "-h" || task == "--help" || task.empty()) {
    std::cout << "usage: dsalign eval <task> [options]   (dsalign eval <task> --help for each)\n\n"
                 "  repetition  the repetition ratio of a chat model on held-out prompts\n"
                 "  loglik      log-likelihood of continuations after contexts (lm-evaluation-harness's rules)\n"
                 "  mc          multiple choice: acc, acc_norm, acc_bytes, acc_mutual_info\n"
                 "  bpb         bits per byte, byte and word perplexity over documents\n"
                 "  gen         generation benchmarks: gsm8k, math (exact match), humaneval (pass@1; runs model code)\n"
                 "  suite       a YAML list of tasks, one table (recipes/eval/deepseek-llm.yaml, recipes/eval/quick.yaml)\n";
    return task.empty() ? 2 : 0;
  }
  fail("unknown eval task '", task, "' (expected: repetition, loglik, mc, bpb, gen, suite)");
}

}  // namespace dsalign::cli
