// dsalign eval gen: generation benchmarks (gsm8k, math, humaneval, chat) with answer checking.
#include <algorithm>
#include <cstdio>
#include <random>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/chat_model.h"
#include "cli/commands.h"
#include "cli/eval_flags.h"
#include "eval/gen_tasks.h"
#include "util/error.h"

namespace dsalign::cli {
namespace {

// One answer on one line: the wrong ones after the table, and --samples.
// chat: both whitespace-normalised, as they are compared.
void print_answer(GenTaskKind kind, const GenProblem& problem, const GenSample& s) {
  auto one_line = [](std::string text) {
    for (char& c : text)
      if (c == '\n') c = ' ';
    return text.size() > 160 ? text.substr(0, 160) + "..." : text;
  };
  const bool chat = kind == GenTaskKind::chat;
  const std::string text = one_line(chat ? s.answer : s.generated.text);
  const std::string gold = one_line(chat ? normalise_whitespace(problem.answer) : problem.answer);
  if (kind == GenTaskKind::humaneval) std::printf("  %s: %s, %s\n", problem.id.c_str(), outcome_name(s.run.outcome), text.c_str());
  else std::printf("  %s: %s '%s', gold '%s'%s\n", problem.id.c_str(), s.correct ? "right," : "answered", text.c_str(),
                   gold.c_str(), s.generated.repetitive ? " (loops)" : "");
}

// `count` distinct indices below `n`, drawn with `seed` (a Fisher-Yates prefix on mt19937_64,
// so the same on every platform), in the order drawn.
std::vector<size_t> draw_indices(size_t n, size_t count, uint64_t seed) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  count = std::min(count, n);
  for (size_t i = 0; i < count; ++i) std::swap(order[i], order[i + static_cast<size_t>(rng() % (n - i))]);
  order.resize(count);
  return order;
}

}  // namespace

int eval_gen_command(const Args& args) {
  po::options_description options("options");
  std::string task, data, task_name;
  ScoredFlags flags;
  GenTaskOptions gen;
  int64_t cases = 5, samples = 0;
  uint64_t seed = 0;
  options.add_options()("command", po::value(&task)->required(), "gen")
      ("data", po::value(&data)->required(), "JSONL: {\"prompt\", \"answer\"} (gsm8k, math, chat) or {\"prompt\", \"test\", \"entry_point\"} (humaneval)")
      ("task", po::value(&task_name)->required(), "gsm8k | math | humaneval | chat (how answers are checked)")
      ("max-new-tokens", po::value(&gen.max_new_tokens)->default_value(0), "tokens generated at most (0: the task's, gsm8k 512, math 1024, humaneval 512, chat 64)")
      ("stop", po::value(&gen.stop)->multitoken(), "stop strings, replacing the task's (repeat the flag)")
      ("python", po::value(&gen.python)->default_value(gen.python), "humaneval: the Python that runs the tests")
      ("timeout", po::value(&gen.sandbox.wall_seconds)->default_value(gen.sandbox.wall_seconds), "humaneval: seconds each program may run (wall clock; CPU time the same)")
      ("memory-mib", po::value<int64_t>()->default_value(gen.sandbox.memory_bytes >> 20), "humaneval: address space per program, MiB")
      ("workers", po::value(&gen.workers)->default_value(0), "humaneval: programs run at once (0: hardware threads)")
      ("cases", po::value(&cases)->default_value(cases), "wrong answers printed after the table")
      ("samples", po::value(&samples)->default_value(0), "answers drawn at random (right or wrong) printed after them")
      ("seed", po::value(&seed)->default_value(0), "the random draw of --samples");
  flags.add_to(options, "gen.jsonl", /*shared_contexts=*/false);
  flags.scoring.batch_size = 8;
  po::positional_options_description positional;
  positional.add("command", 1);
  po::variables_map vm;
  if (!parse(args, "dsalign eval gen --task gsm8k|math|humaneval|chat --model <dir> --data <file.jsonl> [options]\n\n"
                   "Greedy generation until EOS or a stop string, then a programmatic check, as\n"
                   "lm-evaluation-harness's generate_until runs it: gsm8k takes the number after \"the answer is\"\n"
                   "(exact_match; exact_match_flexible: the last number), math the normalised Minerva\n"
                   "\"Final Answer: The final answer is X.\" (flexible: else the last \\boxed{}), humaneval runs\n"
                   "prompt + completion + the tests in a sandbox (pass@1). chat asks a chat model: the prompt\n"
                   "is one user turn in the model's chat format, answered greedily until the end of its turn, and\n"
                   "exact_match compares it with the answer after whitespace normalisation (flexible: the\n"
                   "response starts with the answer).\n\n"
                   "humaneval EXECUTES MODEL-WRITTEN CODE: each program runs as its own process tree in new\n"
                   "network, PID, mount and IPC namespaces (no network), in a private 64 MiB tmpfs, as an\n"
                   "unprivileged uid when run as root, with CPU, memory, process, file-size and open-file limits\n"
                   "and a wall-clock limit. Where the namespaces cannot be made it refuses to run.",
             options, positional, vm))
    return 0;
  flags.validate();
  const GenTaskKind kind = parse_gen_task(task_name);
  if (cases < 0) fail("--cases must be 0 or positive, got ", cases);
  if (samples < 0) fail("--samples must be 0 or positive, got ", samples);
  if (gen.max_new_tokens < 0) fail("--max-new-tokens must be 0 or positive, got ", gen.max_new_tokens);
  if (gen.sandbox.wall_seconds <= 0) fail("--timeout must be positive, got ", gen.sandbox.wall_seconds);
  if (gen.workers < 0) fail("--workers must be 0 or positive, got ", gen.workers);
  const int64_t memory_mib = vm["memory-mib"].as<int64_t>();
  if (memory_mib < 64) fail("--memory-mib must be at least 64, got ", memory_mib);
  gen.sandbox.memory_bytes = memory_mib << 20;
  gen.sandbox.cpu_seconds = std::max<int64_t>(1, static_cast<int64_t>(gen.sandbox.wall_seconds + 0.999));
  gen.batch_size = flags.scoring.batch_size;
  gen.max_length = flags.scoring.max_length;
  const std::vector<GenProblem> problems = read_gen_problems(data, kind == GenTaskKind::humaneval, flags.limit);
  ChatModel m = load_chat_model(flags.model_dir, flags.device, flags.dtype, "auto");
  const GenReport report = run_generation_task(m.model, m.tokenizer, kind, problems, gen);
  const bool code = kind == GenTaskKind::humaneval;
  nlohmann::json summary = {{"task", gen_task_name(kind)}, {"data", data}, {"problems", problems.size()},
                            {"generation_seconds", report.generation_seconds}};
  if (code) {
    summary["pass@1"] = report.pass_at_1.mean;
    summary["pass@1_stderr"] = report.pass_at_1.stderr_;
    summary["execution_seconds"] = report.execution_seconds;
  } else {
    summary["exact_match"] = report.exact_match.mean;
    summary["exact_match_stderr"] = report.exact_match.stderr_;
    summary["exact_match_flexible"] = report.exact_match_flexible.mean;
    summary["exact_match_flexible_stderr"] = report.exact_match_flexible.stderr_;
  }
  if (kind == GenTaskKind::chat) {
    summary["repetition_ratio"] = report.repetition_ratio.mean;
    summary["repetition_ratio_stderr"] = report.repetition_ratio.stderr_;
  }
  std::vector<nlohmann::json> lines = {summary};
  for (size_t i = 0; i < problems.size(); ++i) {
    const GenSample& s = report.samples[i];
    nlohmann::json line = {{"id", problems[i].id}, {"completion", s.generated.text}, {"stopped", s.generated.stopped},
                           {"tokens", s.generated.tokens}, {"correct", s.correct}};
    if (code) {
      line["outcome"] = outcome_name(s.run.outcome);
      line["exit_code"] = s.run.exit_code;
      if (!s.correct) line["output"] = s.run.output;
    } else {
      line["answer"] = s.answer;
      line["answer_flexible"] = s.answer_flexible;
      line["correct_flexible"] = s.correct_flexible;
      line["gold"] = problems[i].answer;
    }
    if (kind == GenTaskKind::chat) line["repetitive"] = s.generated.repetitive;
    lines.push_back(line);
  }
  write_report(flags.out, lines);
  std::printf("| task | metric | value | stderr |\n| --- | --- | ---: | ---: |\n");
  auto row = [&](const char* metric, const MeanStderr& v) {
    std::printf("| %s | %s | %.4f | %.4f |\n", gen_task_name(kind), metric, v.mean, v.stderr_);
  };
  if (code) {
    row("pass@1", report.pass_at_1);
  } else {
    row("exact_match", report.exact_match);
    row("exact_match_flexible", report.exact_match_flexible);
  }
  if (kind == GenTaskKind::chat) row("repetition_ratio", report.repetition_ratio);
  int64_t shown = 0;
  for (size_t i = 0; i < problems.size() && shown < cases; ++i) {
    if (report.samples[i].correct) continue;
    if (shown++ == 0) std::printf("wrong answers (at most --cases %lld):\n", static_cast<long long>(cases));
    print_answer(kind, problems[i], report.samples[i]);
  }
  if (samples > 0) std::printf("answers drawn at random (--samples %lld --seed %llu):\n", static_cast<long long>(samples),
                               static_cast<unsigned long long>(seed));
  for (size_t i : draw_indices(problems.size(), static_cast<size_t>(samples), seed))
    print_answer(kind, problems[i], report.samples[i]);
  std::printf("%zu problems (generation %.1f s", problems.size(), report.generation_seconds);
  if (code) std::printf(", tests %.1f s", report.execution_seconds);
  std::printf("); report: %s\n", flags.out.c_str());
  return 0;
}

}  // namespace dsalign::cli
